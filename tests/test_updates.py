"""updates.py's trainer glue: which optimizers a callback attaches to at start and at the first training hook."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import neuroreg as nr
from tests.registry import make_params


class _LearningAlgorithm:
    """A NeuroTorch-style learning algorithm (not a module) that may make its optimizer in its own start."""

    def __init__(self, optimizer=None) -> None:
        self.optimizer = optimizer


def test_an_optimizer_holding_none_of_the_parameters_is_refused_with_nothing_attached() -> None:
    (w,) = make_params((3, 3))
    (other,) = make_params((2, 2), seed=1)
    optimizer = torch.optim.SGD([other], lr=0.1)
    trainer = SimpleNamespace(optimizer=None, callbacks=[_LearningAlgorithm(optimizer)])
    reg = nr.L1([w])
    with pytest.raises(ValueError, match=r"found 1 optimizer\(s\) on SimpleNamespace but none holds any of its"):
        reg.start(trainer)
    assert not optimizer._optimizer_step_pre_hooks


def test_an_optimizer_made_in_the_algorithms_own_start_is_attached_at_train_begin() -> None:
    (w,) = make_params((3, 3))
    algorithm = _LearningAlgorithm()
    trainer = SimpleNamespace(optimizer=None, callbacks=[algorithm])
    reg = nr.L1([w], Lambda=0.5)
    reg.start(trainer)   # its optimizer is still to come: not an error yet
    algorithm.optimizer = torch.optim.SGD([w], lr=1.0)
    reg.on_train_begin(trainer)
    w.grad = torch.zeros_like(w)
    before = w.detach().clone()
    algorithm.optimizer.step()   # the attached pre-hook adds the penalty's gradient first
    torch.testing.assert_close(w.detach(), before - 0.5 * before.sign())
    reg.close(trainer)
    trainer_without = SimpleNamespace(optimizer=None, callbacks=[_LearningAlgorithm()])
    with pytest.raises(ValueError, match="found no optimizer to attach to"):
        nr.L1([w]).on_train_begin(trainer_without)
