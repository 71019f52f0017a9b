"""neuroreg inside NeuroTorch 0.0.2 itself: its Trainer, learning algorithms, CheckpointManager and progress bar.

Every test here uses the real NeuroTorch (see tests/neurotorch_support.py) and is skipped where it is not
installed; CI installs it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Optional

import pytest
import torch
from torch import nn

import neuroreg as nr
from tests.neurotorch_support import import_neurotorch
from tests.protocol import (
    LR,
    assert_same,
    make_batches,
    parameters_of,
    seeded_model,
    train_by_hand,
    train_then_separate_step,
)

nt = import_neurotorch()

STEPS, CPU = 6, torch.device("cpu")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def loader(batches: list, batch_size: int = 16) -> torch.utils.data.DataLoader:
    x, y = (torch.cat(tensors) for tensors in zip(*batches))
    return torch.utils.data.DataLoader(list(zip(x, y)), batch_size=batch_size)


def l1_list(model: nn.Module) -> nr.BaseRegularization:
    return nr.RegularizationList(
        [nr.L1(model, Lambda=0.05, include="0.weight", name="l1"),
         nr.L2(model, Lambda=0.02, squared=True, exclude="*.bias", name="l2")],
        Lambda=2.0, name="regs",
    )


def bptt_trainer(model: nn.Module, *callbacks) -> nt.trainers.Trainer:
    bptt = nt.BPTT(optimizer=torch.optim.SGD(model.parameters(), lr=LR), criterion=nn.MSELoss(), name="bptt")
    return nt.trainers.Trainer(model, callbacks=[*callbacks, bptt], device=CPU, verbose=False)


# --- accepted as they are -----------------------------------------------------------------------------------------
def test_neurotorchs_trainer_accepts_every_neuroreg_callback_directly() -> None:
    model = seeded_model()
    regs = [nr.L1(model), l1_list(model), nr.DaleLawL2([model[0].weight], seed=0), nr.SmoothnessLoss(model[0].weight)]
    assert nr.callbacks.neurotorch_compatible()
    for reg in regs:
        assert isinstance(reg, nt.callbacks.base_callback.BaseCallback)
    trainer = bptt_trainer(model, *regs)
    assert all(any(callback is reg for callback in trainer.callbacks) for reg in regs)


# --- BPTT -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make_reg", [lambda m: nr.L1(m, Lambda=0.05, exclude="*.bias"), l1_list], ids=["L1", "list"])
def test_bptt_joint_mode_equals_sgd_on_task_plus_penalty(make_reg: Callable) -> None:
    batches = make_batches(STEPS)
    model = seeded_model()
    reg = make_reg(model)
    bptt_trainer(model, reg).train(loader(batches), n_iterations=1)
    assert_same(parameters_of(model), train_by_hand(make_reg, batches))
    assert not torch.allclose(parameters_of(model)[0], train_by_hand(make_reg, batches, with_penalty=False)[0])
    assert reg.global_step == STEPS and reg.attached_optimizers == []   # detached at close


def test_bptt_separate_mode_takes_its_own_step_after_each_task_step() -> None:
    batches = make_batches(STEPS)
    model = seeded_model()
    reg = nr.L1(model, Lambda=0.05, optimizer=torch.optim.SGD(model.parameters(), lr=0.2))
    bptt_trainer(model, reg).train(loader(batches), n_iterations=1)
    assert_same(parameters_of(model), train_then_separate_step(batches))


def test_neurotorchs_own_regularization_beside_neuroregs_do_not_interfere() -> None:
    batches = make_batches(STEPS)
    # NeuroTorch's L2 with its own optimizer steps in on_optimization_end, after the task step.
    ref = seeded_model()
    ref_ours = nr.L1(ref, Lambda=0.05, exclude="*.bias")
    ref_task, ref_theirs = torch.optim.SGD(ref.parameters(), lr=LR), torch.optim.SGD(ref.parameters(), lr=0.05)
    for x, y in batches:
        ref_task.zero_grad()
        (nn.functional.mse_loss(ref(x), y) + ref_ours()).backward()
        ref_task.step()
        ref_theirs.zero_grad()
        (1e-2 * sum(torch.linalg.norm(p, ord=2) for p in ref.parameters() if p.dim() == 1)).backward()
        ref_theirs.step()

    model = seeded_model()
    ours = nr.L1(model, Lambda=0.05, exclude="*.bias")
    biases = [p for p in model.parameters() if p.dim() == 1]
    theirs = nt.regularization.RegularizationList(
        [nt.regularization.L2(biases, Lambda=1e-2)], optimizer=torch.optim.SGD(model.parameters(), lr=0.05)
    )
    bptt_trainer(model, ours, theirs).train(loader(batches), n_iterations=1)
    assert_same(parameters_of(model), parameters_of(ref))


# --- learning algorithms that step from their own hooks -------------------------------------------------------
def spiking_model() -> nn.Module:
    torch.manual_seed(0)
    return nt.SequentialRNN(layers=[nt.SpyLIFLayer(2, 8), nt.SpyLILayer(8, 2)], device=CPU).build()


def rate_model() -> nn.Module:
    # RLS learns a weight of shape (f_in, f_out) from the layer inputs: a 2 -> 2 Wilson-Cowan layer.
    torch.manual_seed(0)
    return nt.SequentialRNN(layers=[nt.WilsonCowanLayer(2, 2, learn_tau=False), nt.Linear(2, 2)], device=CPU).build()


def sequences(seed: int = 3, n: int = 16, time_steps: int = 20) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, time_steps, 2, generator=generator), torch.randn(n, time_steps, 2, generator=generator)
    return torch.utils.data.DataLoader(list(zip(x, y)), batch_size=8)


#: kind -> (model, learning algorithm on that model).
LEARNING_ALGORITHMS = {
    "TBPTT": (spiking_model, lambda model: nt.TBPTT(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.05), criterion=nn.MSELoss(),
        backward_time_steps=5, optim_time_steps=5, name="la",
    )),
    "Eprop": (spiking_model, lambda model: nt.Eprop(name="la")),
    "RLS": (rate_model, lambda model: nt.RLS(params=list(model.get_layer().parameters()), name="la")),
}


def run_learning_algorithm(kind: str, penalty: str) -> tuple:
    """Train the spiking model under ``kind`` with an L2 penalty attached by neuroreg (``"neuroreg"``), added by
    hand through a step pre-hook on the algorithm's optimizer (``"by hand"``), or not at all."""
    make_model, make_algorithm = LEARNING_ALGORITHMS[kind]
    model = make_model()
    algorithm = make_algorithm(model)
    callbacks: list = [algorithm]
    reg = nr.L2(model, Lambda=0.3, squared=True, name="decay")
    steps = []
    if penalty == "neuroreg":
        callbacks.insert(0, reg)

    class ByHand(nt.callbacks.base_callback.BaseCallback):
        """Adds the penalty's autograd gradient before every step of the learning algorithm's optimizer."""

        def on_train_begin(self, trainer, **kwargs):
            if getattr(self, "handle", None) is None:
                self.handle = algorithm.optimizer.register_step_pre_hook(self.add)

        def add(self, optimizer, args, kwargs):
            steps.append(1)
            if penalty != "by hand":
                return
            held = {id(p) for group in optimizer.param_groups for p in group["params"]}
            params = [p for p in model.parameters() if p.requires_grad and id(p) in held]
            with torch.enable_grad():
                grads = torch.autograd.grad(0.3 * sum(p.pow(2).sum() for p in params), params)
            for p, g in zip(params, grads):
                p.grad = g.clone() if p.grad is None else p.grad + g

    callbacks.append(ByHand(name="by_hand"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nt.trainers.Trainer(model, callbacks=callbacks, device=CPU, verbose=False).train(sequences(), n_iterations=2)
    return parameters_of(model), len(steps), reg


@pytest.mark.parametrize("kind", sorted(LEARNING_ALGORITHMS))
def test_penalty_acts_on_every_step_of_algorithms_that_step_from_their_own_hooks(kind: str) -> None:
    ours, n_steps, reg = run_learning_algorithm(kind, "neuroreg")
    by_hand, n_steps_by_hand, _ = run_learning_algorithm(kind, "by hand")
    without, _, _ = run_learning_algorithm(kind, "none")
    assert n_steps == n_steps_by_hand > 0
    assert reg.global_step == n_steps   # once per optimizer step: TBPTT and Eprop step several times a batch
    assert_same(ours, by_hand)
    assert any(not torch.allclose(a, b) for a, b in zip(ours, without))


# --- checkpoints and the progress bar -----------------------------------------------------------------------------
def checkpointed_run(folder: Path, n_iterations: int, reference: Optional[torch.Tensor] = None) -> tuple:
    """Train under NeuroTorch's CheckpointManager (which resumes from the last checkpoint in ``folder``); the
    Dale references are drawn with ``seed=None`` (another draw every run) unless ``reference`` is given."""
    model = seeded_model()
    dale = {"seed": None} if reference is None else {"reference_weights": [reference]}
    reg = nr.RegularizationList(
        [nr.L1(model, Lambda=nr.schedules.CosineDecay(0.2, decay_steps=20), exclude="*.bias", name="l1"),
         nr.DaleLawL2([model[0].weight], alpha=0.5, Lambda=0.05, name="dale", **dale)],
        name="regs",
    )
    manager = nt.callbacks.CheckpointManager(str(folder), metric="train_loss", save_freq=1)
    bptt_trainer(model, reg, manager).train(loader(make_batches(4)), n_iterations=n_iterations)
    return model, reg


def test_checkpoint_manager_saves_and_resumes_the_regularization_exactly(tmp_path: Path) -> None:
    checkpointed_run(tmp_path, 2)
    saved = torch.load(next(tmp_path.glob("*itr1*")), weights_only=False)["regs"]["state_dict"]
    assert set(saved) >= {"_lambda", "_step", "regularizations.0._lambda", "regularizations.1.reference_signs_0"}
    resumed_model, resumed = checkpointed_run(tmp_path, 4)   # NeuroTorch's own load of the last iteration
    # The drawn references are the saved ones, not this run's new draw.
    torch.testing.assert_close(resumed[1].reference_signs[0], saved["regularizations.1.reference_signs_0"])

    whole_model, whole = checkpointed_run(tmp_path / "whole", 4, reference=saved["regularizations.1.reference_signs_0"])
    assert resumed[0].global_step == whole[0].global_step == 16
    assert resumed[0].Lambda == whole[0].Lambda
    assert_same(parameters_of(resumed_model), parameters_of(whole_model))


def test_neurotorchs_progress_bar_receives_the_penalties() -> None:
    model = seeded_model()
    reg = l1_list(model)
    trainer = bptt_trainer(model, reg)
    shown = []
    on_pbar_update = trainer.callbacks.on_pbar_update

    def recorded(*args, **kwargs):
        shown.append(on_pbar_update(*args, **kwargs))
        return shown[-1]

    trainer.callbacks.on_pbar_update = recorded
    trainer.train(loader(make_batches(2)), n_iterations=2)
    assert len(shown) == 2 and set(shown[-1]) == {"l1", "l2"}
    with torch.no_grad():
        assert shown[-1]["l2"] == pytest.approx(float(reg[1]()), rel=1e-6)


# --- bad input --------------------------------------------------------------------------------------------------
def test_two_learning_algorithms_holding_one_parameter_fail_at_start() -> None:
    model = seeded_model()
    reg = nr.L1(model, Lambda=0.1, name="sparse")
    before = parameters_of(model)
    second = nt.BPTT(optimizer=torch.optim.Adam(model[0].parameters()), criterion=nn.MSELoss(), name="second")
    trainer = bptt_trainer(model, reg, second)
    with pytest.raises(ValueError, match="sparse: two optimizers of the trainer"):
        trainer.train(loader(make_batches(1)), n_iterations=1)
    assert reg.attached_optimizers == []
    assert_same(parameters_of(model), before)
