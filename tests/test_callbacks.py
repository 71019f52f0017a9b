"""The callback protocol: hooks exist with NeuroTorch's names, run in its order and by priority."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, List

import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg.callbacks import HOOK_ORDER, BaseCallback
from neuroreg.testing import BPTT, ProtocolTrainer
from tests.distributed_support import WORLD_SIZE, finish_worker, init_worker, run_workers
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


class Recorder(BaseCallback):
    """Records every hook call as (name, hook)."""

    def __init__(self, log: List[tuple], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log = log

    def __getattribute__(self, attribute: str) -> Any:
        value = super().__getattribute__(attribute)
        if attribute in HOOK_ORDER:
            log, name = super().__getattribute__("log"), super().__getattribute__("name")

            def recorded(*args: Any, **kwargs: Any) -> Any:
                log.append((name, attribute))
                return value(*args, **kwargs)

            return recorded
        return value


def data(n_batches: int = 2) -> list:
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, generator=generator), torch.randn(4, 2, generator=generator)) for _ in range(n_batches)]


def test_every_hook_exists_on_callbacks_and_regularizations() -> None:
    reg = nr.L2(nn.Linear(2, 2))
    for hook in HOOK_ORDER:
        assert callable(getattr(BaseCallback, hook)), hook
        assert callable(getattr(reg, hook)), hook
    assert BaseCallback().on_pbar_update(None) == {}
    assert reg.priority == 10 and reg.save_state and reg.load_state


def test_hooks_run_in_neurotorch_order_and_by_priority() -> None:
    log: List[tuple] = []
    model = nn.Linear(3, 2)
    late, early = Recorder(log, name="late", priority=60), Recorder(log, name="early", priority=5)
    trainer = ProtocolTrainer(model, [late, early, BPTT(torch.optim.SGD(model.parameters(), lr=0.1))], n_epochs=2)
    trainer.train(data(2), data(1), n_iterations=2)

    early_hooks = [hook for name, hook in log if name == "early"]
    first_seen = list(dict.fromkeys(early_hooks))
    assert first_seen == list(HOOK_ORDER)
    assert early_hooks.count("start") == 1 and early_hooks.count("close") == 1
    # 2 iterations x 2 epochs x 2 training batches; validation batches never reach the optimization hooks.
    assert early_hooks.count("on_optimization_begin") == 8
    assert early_hooks.count("on_validation_batch_begin") == 2
    assert early_hooks.count("on_batch_begin") == 10
    # Within each hook, ascending priority.
    for index in range(0, len(log), 2):
        assert [log[index][0], log[index + 1][0]] == ["early", "late"]
        assert log[index][1] == log[index + 1][1]


def test_regularization_in_the_trainer_reports_and_checkpoints() -> None:
    model = nn.Linear(3, 2)
    reg = nr.L1(model, Lambda=0.1, name="sparsity")
    trainer = ProtocolTrainer(model, [reg, BPTT(torch.optim.SGD(model.parameters(), lr=0.1))])
    trainer.train(data(2), n_iterations=1)
    state = trainer.checkpoints[-1]["sparsity"]   # at the top level, under its name, as NeuroTorch stores it
    assert set(state["state_dict"]) == {"_lambda", "_step"}
    reg.Lambda = 5.0
    reg.load_checkpoint_state(None, trainer.checkpoints[-1])
    assert reg.Lambda == 0.1


def test_the_bptt_stand_in_has_neurotorchs_priority() -> None:
    nt = import_neurotorch()
    assert BPTT.DEFAULT_PRIORITY == nt.BPTT.DEFAULT_PRIORITY
    assert BPTT(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)).priority == nt.BPTT.DEFAULT_PRIORITY


def test_default_names_are_the_class_name_then_a_counter() -> None:
    class Fresh(BaseCallback):   # a class of its own: its counter starts here
        pass

    names = [Fresh().name, Fresh().name, Fresh(name="mine").name, Fresh().name]
    assert names == ["Fresh", "Fresh_1", "mine", "Fresh_2"]


def test_callbacks_derive_from_neurotorchs_once_it_imports_and_only_once() -> None:
    import types

    from neuroreg.callbacks import _derive_from_neurotorch, _NeuroTorchBase, neurotorch_compatible

    nt = import_neurotorch()   # imported after neuroreg: the import hook derives BaseCallback from NeuroTorch's
    assert neurotorch_compatible() and isinstance(nr.L1(nn.Linear(2, 2)), nt.callbacks.base_callback.BaseCallback)
    bases = _NeuroTorchBase.__bases__
    other = types.ModuleType("stand_in")
    other.BaseCallback = type("BaseCallback", (), {})
    _derive_from_neurotorch(other)                               # a second module changes nothing
    _derive_from_neurotorch(types.ModuleType("no_callbacks"))     # nor one without the class
    assert _NeuroTorchBase.__bases__ == bases


def test_verbose_without_tqdm_prints_each_iteration(monkeypatch, capsys) -> None:
    monkeypatch.setattr(ProtocolTrainer, "_progress_bar", staticmethod(lambda n_iterations: None))
    model = nn.Linear(3, 2)
    reg = nr.L1(model, Lambda=0.1, name="sparsity")
    trainer = ProtocolTrainer(model, [reg, BPTT(torch.optim.SGD(model.parameters(), lr=0.1))], verbose=True)
    trainer.train(data(2), n_iterations=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["iteration", "1/2"], ["iteration", "2/2"]]
    assert all("sparsity=" in line for line in lines)


@pytest.mark.parametrize("save_state", [True, False])
def test_save_state_and_load_state_flags(save_state: bool) -> None:
    reg = nr.L1(nn.Linear(2, 2), Lambda=0.5, save_state=save_state)
    state = reg.get_checkpoint_state(None)
    assert (state is not None) == save_state
    reg2 = nr.L1(nn.Linear(2, 2), Lambda=1.0, name="other", load_state=False)
    reg2.load_checkpoint_state(None, {"state_dict": {"_lambda": torch.tensor(3.0, dtype=torch.float64),
                                                     "_step": torch.tensor(0)}})
    assert reg2.Lambda == 1.0


# --- regularizations acting through the trainer: joint and separate modes ------------------------------------

STEPS = 6


def l1_without_bias(model: nn.Module) -> nr.BaseRegularization:
    return nr.L1(model, Lambda=0.05, exclude="*.bias")


def l1_list(model: nn.Module) -> nr.BaseRegularization:
    # A list whose members overlap (the first weight is in both): the gradients must add up.
    return nr.RegularizationList(
        [nr.L1(model, Lambda=0.05, include="0.weight"), nr.L2(model, Lambda=0.02, squared=True, exclude="*.bias")],
        Lambda=2.0,
    )


class AutogradOnlyL1(nr.L1):
    """An L1 without its closed form: exercises the autograd fallback of the trainer path."""

    closed_form_grad = False


def autograd_l1(model: nn.Module) -> nr.BaseRegularization:
    return AutogradOnlyL1(model, Lambda=0.05, exclude="*.bias")


@pytest.mark.parametrize("make_reg", [l1_without_bias, l1_list, autograd_l1], ids=["L1", "list", "autograd"])
def test_joint_mode_in_the_neurotorch_protocol_equals_training_on_the_sum(make_reg) -> None:
    batches = make_batches(STEPS)
    model = seeded_model()
    reg = make_reg(model)
    bptt = BPTT(torch.optim.SGD(model.parameters(), lr=LR))
    ProtocolTrainer(model, [reg, bptt]).train(batches, val_batches=make_batches(2, seed=9))
    assert_same(parameters_of(model), train_by_hand(make_reg, batches))
    without = train_by_hand(make_reg, batches, with_penalty=False)
    assert not torch.allclose(parameters_of(model)[0], without[0])
    # close() took the step hooks off the optimizer again.
    assert reg.attached_optimizers == [] and not bptt.optimizer._optimizer_step_pre_hooks


def test_joint_mode_l1_shrinks_weights_toward_zero() -> None:
    batches = make_batches(STEPS)
    model = seeded_model()
    ProtocolTrainer(model, [nr.L1(model, Lambda=0.5), BPTT(torch.optim.SGD(model.parameters(), lr=LR))]).train(batches)
    without = train_by_hand(l1_without_bias, batches, with_penalty=False)
    assert model[0].weight.abs().sum() < without[0].abs().sum()


def test_neurotorchs_own_semantics_would_throw_the_gradient_away() -> None:
    """What NeuroTorch does (penalty backward in on_optimization_end, no optimizer) changes nothing."""

    class NeuroTorchStyleL1(nr.L1):
        def start(self, trainer=None, **kwargs):
            pass

        def on_train_begin(self, trainer=None, **kwargs):
            pass

        def on_optimization_end(self, trainer=None, **kwargs):
            self().backward()

    batches = make_batches(STEPS)
    model = seeded_model()
    reg = NeuroTorchStyleL1(model, Lambda=0.5)
    ProtocolTrainer(model, [reg, BPTT(torch.optim.SGD(model.parameters(), lr=LR))]).train(batches)
    assert_same(parameters_of(model), train_by_hand(l1_without_bias, batches, with_penalty=False))


def test_plain_loop_accumulate_grad_equals_adding_the_penalty_to_the_loss() -> None:
    batches = make_batches(STEPS)
    model = seeded_model()
    reg = l1_list(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for x, y in batches:
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        reg.accumulate_grad()
        optimizer.step()
        reg.step()
    assert_same(parameters_of(model), train_by_hand(l1_list, batches))
    assert reg.global_step == STEPS and reg[0].global_step == STEPS


def test_separate_mode_takes_its_own_step_and_leaves_task_gradients_alone() -> None:
    batches = make_batches(STEPS)
    model = seeded_model()
    reg = nr.L1(model, Lambda=0.05, optimizer=torch.optim.SGD(model.parameters(), lr=0.2))
    assert reg.mode == "separate"
    ProtocolTrainer(model, [reg, BPTT(torch.optim.SGD(model.parameters(), lr=LR))]).train(batches)
    assert_same(parameters_of(model), train_then_separate_step(batches))

    grads = [torch.randn_like(p) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    reg.separate_step()
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


def test_separate_step_without_optimizer_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="has no optimizer"):
        nr.L1(seeded_model()).separate_step()


# --- attached to an optimizer: once per step, whoever calls it -------------------------------------------------
def test_attached_penalty_equals_adding_it_to_the_loss_and_detaches() -> None:
    batches = make_batches(STEPS)
    model = seeded_model()
    reg = l1_list(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    handle = reg.attach(optimizer)
    assert reg.attach(optimizer) is handle and reg.attached_optimizers == [optimizer]
    for x, y in batches:
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    assert_same(parameters_of(model), train_by_hand(l1_list, batches))
    assert reg.global_step == STEPS and reg[1].global_step == STEPS   # the schedule counts optimizer steps
    handle.remove()
    assert reg.attached_optimizers == [] and not optimizer._optimizer_step_pre_hooks
    before = parameters_of(model)
    optimizer.zero_grad(set_to_none=False)
    optimizer.step()
    assert_same(parameters_of(model), before)


@pytest.mark.parametrize("path", ["loss", "accumulate_after_unscale", "attached"])
def test_under_a_grad_scaler_the_update_is_that_of_task_plus_penalty(path: str) -> None:
    """AMP's GradScaler scales the loss: the penalty's gradient must join unscaled gradients (or be scaled)."""
    batches = make_batches(STEPS)
    model = seeded_model()
    reg = l1_list(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)
    if path == "attached":
        reg.attach(optimizer)
    for x, y in batches:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        scaler.scale(loss + reg() if path == "loss" else loss).backward()
        if path == "accumulate_after_unscale":
            scaler.unscale_(optimizer)
            reg.accumulate_grad()
        scaler.step(optimizer)
        scaler.update()
    assert scaler.get_scale() > 1024.0   # the scale did grow: gradients really were scaled
    assert_same(parameters_of(model), train_by_hand(l1_list, batches))


def test_accumulate_grad_before_unscaling_is_off_by_the_scale() -> None:
    """Why README says to unscale first: the same loop without ``unscale_`` gives another update."""
    batches = make_batches(2)
    model = seeded_model()
    reg = l1_list(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    for x, y in batches:
        optimizer.zero_grad()
        scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
        reg.accumulate_grad()
        scaler.step(optimizer)
        scaler.update()
    assert not torch.allclose(parameters_of(model)[0], train_by_hand(l1_list, batches)[0], atol=1e-4)


def test_gradient_accumulation_adds_the_penalty_once_per_optimizer_step() -> None:
    micro, steps = 3, 4
    batches = make_batches(micro * steps)
    model = seeded_model()
    reg = l1_list(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    reg.attach(optimizer)
    for index, (x, y) in enumerate(batches):
        (nn.functional.mse_loss(model(x), y) / micro).backward()
        if index % micro == micro - 1:
            optimizer.step()
            optimizer.zero_grad()

    ref = seeded_model()
    ref_reg = l1_list(ref)
    ref_optimizer = torch.optim.SGD(ref.parameters(), lr=LR)
    for step in range(steps):
        ref_optimizer.zero_grad()
        chunk = batches[step * micro:(step + 1) * micro]
        loss = sum(nn.functional.mse_loss(ref(x), y) for x, y in chunk) / micro + ref_reg()
        loss.backward()
        ref_optimizer.step()
    assert_same(parameters_of(model), parameters_of(ref))
    assert reg.global_step == steps


def test_parameters_split_across_two_optimizers_each_get_their_share_once() -> None:
    batches = make_batches(STEPS)
    model = seeded_model()
    reg = l1_list(model)
    first = torch.optim.SGD(model[0].parameters(), lr=LR)
    second = torch.optim.SGD(model[2].parameters(), lr=LR)
    reg.attach(first), reg.attach(second)
    for x, y in batches:
        first.zero_grad(), second.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        first.step(), second.step()
    assert_same(parameters_of(model), train_by_hand(l1_list, batches))


def test_attach_refuses_closure_optimizers_and_strangers() -> None:
    model = seeded_model()
    reg = nr.L1(model, Lambda=0.1, name="sparse")
    with pytest.raises(ValueError, match=r"LBFGS.*closure"):
        reg.attach(torch.optim.LBFGS(model.parameters()))
    with pytest.raises(ValueError, match="holds none of its parameters"):
        reg.attach(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1))
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer"):
        reg.attach("sgd")
    assert reg.attached_optimizers == []


class _NoOptimizer(BaseCallback):
    """A learning-algorithm-like callback whose optimizer is never made."""

    optimizer = None


@pytest.mark.parametrize("case", ["nothing", "never-made", "two-hold-one-parameter"])
def test_a_trainer_without_a_usable_optimizer_fails_at_start_and_attaches_nothing(case: str) -> None:
    model = seeded_model()
    reg = nr.L1(model, Lambda=0.1, name="sparse")
    before = parameters_of(model)
    if case == "nothing":
        callbacks, message = [reg], "sparse found no optimizer"
    elif case == "never-made":
        callbacks, message = [reg, _NoOptimizer()], "sparse found no optimizer"
    else:
        shared = list(model[0].parameters())
        callbacks = [reg, BPTT(torch.optim.SGD(model.parameters(), lr=LR)), BPTT(torch.optim.Adam(shared))]
        message = r"two optimizers of the trainer .*SGD and Adam.* both hold"
    with pytest.raises(ValueError, match=message):
        ProtocolTrainer(model, callbacks).train(make_batches(1))
    assert reg.attached_optimizers == []
    assert_same(parameters_of(model), before)


def test_a_copy_is_attached_to_nothing() -> None:
    import copy

    model = seeded_model()
    reg = nr.L1(model, Lambda=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    reg.attach(optimizer)
    clone = copy.deepcopy(reg)
    assert clone.attached_optimizers == [] and reg.attached_optimizers == [optimizer]
    assert len(optimizer._optimizer_step_pre_hooks) == 1


# --- schedules, logging and checkpoints through the trainer ---------------------------------------------------
def test_schedule_advances_once_per_training_step_never_on_validation() -> None:
    model = seeded_model()
    reg = nr.L1(model, Lambda=nr.schedules.LinearWarmup(0.1, warmup_steps=10), name="warm")
    trainer = ProtocolTrainer(model, [reg, BPTT(torch.optim.SGD(model.parameters(), lr=LR))], n_epochs=2)
    trainer.train(make_batches(3), val_batches=make_batches(4, seed=5), n_iterations=1)
    assert reg.global_step == 6
    assert reg.Lambda == pytest.approx(0.06)
    assert set(trainer.pbar_postfixes[-1]) == {"warm"}


def test_progress_bar_values_are_unique_per_member_and_match_the_penalty() -> None:
    model = seeded_model()
    first, second = nr.L2(model, Lambda=0.1), nr.L2(model, Lambda=0.3)
    regs = nr.RegularizationList([first, second])
    trainer = ProtocolTrainer(model, [regs, BPTT(torch.optim.SGD(model.parameters(), lr=LR))])
    trainer.train(make_batches(2))
    postfix = trainer.pbar_postfixes[-1]
    assert set(postfix) == {first.name, second.name} and first.name != second.name
    with torch.no_grad():
        assert postfix[second.name] == pytest.approx(float(second()), rel=1e-6)
        assert regs.last_values("raw")[first.name] == pytest.approx(float(first()) / 0.1, rel=1e-6)


def test_resuming_from_a_checkpoint_continues_exactly() -> None:
    batches = make_batches(4)
    schedule = nr.schedules.CosineDecay(0.2, decay_steps=8)

    def build():
        model = seeded_model()
        reg = nr.RegularizationList([nr.L1(model, Lambda=schedule, name="l1"), nr.L2(model, Lambda=0.01, name="l2")],
                                    name="regs")
        return model, reg, BPTT(torch.optim.SGD(model.parameters(), lr=LR))

    model, reg, bptt = build()
    trainer = ProtocolTrainer(model, [reg, bptt])
    trainer.train(batches, n_iterations=2)
    uninterrupted = (parameters_of(model), reg[0].Lambda, trainer.pbar_postfixes)

    model, reg, bptt = build()
    first = ProtocolTrainer(model, [reg, bptt])
    first.train(batches, n_iterations=1)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "trainer": first.checkpoints[-1]}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # plain data only: no pickled objects

    model, reg, bptt = build()
    model.load_state_dict(saved["model"])
    resumed = ProtocolTrainer(model, [reg, bptt])
    resumed.train(batches, n_iterations=1, checkpoint=saved["trainer"])
    assert reg[0].global_step == 8 and reg[0].Lambda == uninterrupted[1]
    assert_same(parameters_of(model), uninterrupted[0])
    assert resumed.pbar_postfixes[-1] == pytest.approx(uninterrupted[2][-1])


# --- DistributedDataParallel on gloo (see tests/distributed_support.py) ----------------------------------------
DDP_BATCHES = 4


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    store = init_worker(rank, port, out_dir)
    try:
        model = seeded_model()
        ddp = nn.parallel.DistributedDataParallel(model)
        reg = l1_list(model)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=LR)
        for x, y in make_batches(DDP_BATCHES):
            shard = slice(rank * len(x) // WORLD_SIZE, (rank + 1) * len(x) // WORLD_SIZE)
            optimizer.zero_grad()
            nn.functional.mse_loss(ddp(x[shard]), y[shard]).backward()
            reg.accumulate_grad()
            optimizer.step()
        torch.save(parameters_of(model), Path(out_dir, f"rank{rank}.pt"))
        finish_worker(store)
    finally:   # reached on an error only: finish_worker ends the process
        dist.destroy_process_group()


def test_distributed_data_parallel_replicas_match_single_process_training(tmp_path: Path) -> None:
    run_workers(_ddp_worker, tmp_path)
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE))
    assert all(torch.equal(a, b) for a, b in zip(rank0, rank1))
    assert_same(rank0, train_by_hand(l1_list, make_batches(DDP_BATCHES)))


def test_a_parameter_missing_from_a_steps_loss_gets_the_penalty_of_that_step_only() -> None:
    """Attached, the penalty reaches a parameter the task loss did not touch (its .grad was None), as
    ``task_loss + reg()`` would, and nothing of it is left over for the next step."""

    def run(attached: bool) -> list:
        torch.manual_seed(0)
        a, b = nn.Linear(3, 2), nn.Linear(3, 2)
        reg = nr.L2(nn.ModuleList([a, b]), Lambda=0.3, squared=True)
        optimizer = torch.optim.SGD([*a.parameters(), *b.parameters()], lr=LR)
        if attached:
            reg.attach(optimizer)
        x = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
        for uses_b in (False, True, False):
            optimizer.zero_grad()
            loss = a(x).square().mean() + (b(x).square().mean() if uses_b else 0.0)
            (loss if attached else loss + reg()).backward()
            optimizer.step()
        return [p.detach().clone() for p in [*a.parameters(), *b.parameters()]]

    assert_same(run(True), run(False))


class _Affine(BaseCallback):
    """Applies ``w <- scale * w + shift`` to a shared tensor at the end of each optimization."""

    def __init__(self, w: torch.Tensor, scale: float, shift: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.w, self.scale, self.shift = w, scale, shift

    def on_optimization_end(self, trainer: Any = None, **kwargs: Any) -> None:
        self.w.mul_(self.scale).add_(self.shift)


@pytest.mark.parametrize("double_first", [True, False])
def test_priorities_decide_the_order_of_the_callbacks_effects(double_first: bool) -> None:
    model = seeded_model()
    w = torch.ones(())
    double = _Affine(w, 2.0, 0.0, priority=5 if double_first else 20, name="double")
    add_one = _Affine(w, 1.0, 1.0, priority=20 if double_first else 5, name="add_one")
    ProtocolTrainer(model, [add_one, double, BPTT(torch.optim.SGD(model.parameters(), lr=LR))]).train(
        make_batches(1, batch_size=4)
    )
    assert float(w) == (3.0 if double_first else 4.0)   # (1 * 2) + 1, or (1 + 1) * 2
