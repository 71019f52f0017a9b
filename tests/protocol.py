"""Shared test data: small seeded models and batches."""

from __future__ import annotations

from typing import List, Tuple

import pytest
import torch
from torch import Tensor, nn

from neuroreg.functional import _multi_tensor, lp

Batch = Tuple[Tensor, Tensor]


def seeded_model(seed: int = 0) -> nn.Module:
    """A small model whose weights have mixed signs and magnitudes."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def make_batches(n_batches: int, batch_size: int = 16, seed: int = 1) -> List[Batch]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch_size, 6, generator=generator), torch.randn(batch_size, 3, generator=generator))
        for _ in range(n_batches)
    ]


def parameters_of(model: nn.Module) -> List[Tensor]:
    return [p.detach().clone() for p in model.parameters()]


#: The task optimizer's learning rate in the reference trainings below.
LR = 0.1


def train_by_hand(make_reg, batches: List[Batch], with_penalty: bool = True, lr: float = LR) -> List[Tensor]:
    """The reference of joint mode: SGD on task_loss + penalty, written out, from :func:`seeded_model`."""
    model = seeded_model()
    reg = make_reg(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for x, y in batches:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        if with_penalty:
            loss = loss + reg()
        loss.backward()
        optimizer.step()
    return parameters_of(model)


def train_then_separate_step(batches: List[Batch], Lambda: float = 0.05, own_lr: float = 0.2) -> List[Tensor]:
    """The reference of separate mode: each task SGD step, then an SGD step of its own on an L1 penalty alone."""
    from neuroreg import L1

    model = seeded_model()
    reg = L1(model, Lambda=Lambda)
    task, own = torch.optim.SGD(model.parameters(), lr=LR), torch.optim.SGD(model.parameters(), lr=own_lr)
    for x, y in batches:
        task.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        task.step()
        own.zero_grad()
        reg().backward()
        own.step()
    return parameters_of(model)


def assert_same(params_a: List[Tensor], params_b: List[Tensor]) -> None:
    assert len(params_a) == len(params_b)
    for a, b in zip(params_a, params_b):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


#: The two ways a direct call differentiates a penalty with a closed-form gradient, by the size below which
#: autograd differentiates its value (the fast path at small sizes) instead of the closed form.
SIZE_PATHS = {"closed form": 0, "autograd": 1 << 62}


def use_size_path(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """Make every call take ``path`` (a key of :data:`SIZE_PATHS`), whatever the tensors' size: the forms of
    large tensors ("closed form") or of small ones ("autograd"), the 1-norm's included."""
    monkeypatch.setattr(_multi_tensor, "SMALL_NUMEL", SIZE_PATHS[path])
    monkeypatch.setattr(lp, "_ONE_KERNEL_1_NORM", SIZE_PATHS[path])

