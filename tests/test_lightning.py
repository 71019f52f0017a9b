"""The Lightning integration, with a real ``Trainer.fit`` on CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import neuroreg as nr
from tests.protocol import LR, assert_same, make_batches, parameters_of, seeded_model, train_then_separate_step

pl = pytest.importorskip("lightning.pytorch")
from neuroreg.integrations.lightning import RegularizationCallback  # noqa: E402


class Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = seeded_model()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LR)


def loader(batches):
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=len(batches[0][0]))


def fit(module, callback, batches, tmp_path, **trainer_kwargs):
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, default_root_dir=tmp_path, callbacks=[callback], **trainer_kwargs,
    )
    trainer.fit(module, loader(batches), val_dataloaders=loader(batches[:2]))
    return trainer


def make_reg(model: nn.Module) -> nr.BaseRegularization:
    return nr.RegularizationList([nr.L1(model, Lambda=0.05, exclude="*.bias", name="l1"),
                                  nr.L2(model, Lambda=0.02, squared=True, name="l2")])


@pytest.mark.parametrize("accumulate", [1, 2])
def test_fit_equals_sgd_on_the_sum_once_per_optimizer_step(tmp_path, accumulate: int) -> None:
    batches = make_batches(6)
    module = Module()
    reg = make_reg(module.net)
    trainer = fit(module, RegularizationCallback(reg), batches, tmp_path, accumulate_grad_batches=accumulate)

    model = seeded_model()
    reference = make_reg(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for start in range(0, len(batches), accumulate):
        optimizer.zero_grad()
        for x, y in batches[start:start + accumulate]:
            (nn.functional.mse_loss(model(x), y) / accumulate).backward()
        reference().backward()
        optimizer.step()
    for a, b in zip(parameters_of(module.net), parameters_of(model)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert reg.global_step == len(batches) // accumulate
    assert {"reg/l1", "reg/l2"} <= set(trainer.callback_metrics)


def test_fit_without_the_callback_differs_and_l1_shrinks(tmp_path) -> None:
    batches = make_batches(6)
    with_reg, without = Module(), Module()
    fit(with_reg, RegularizationCallback(nr.L1(with_reg.net, Lambda=0.5)), batches, tmp_path)
    fit(without, RegularizationCallback(nr.L1(without.net, Lambda=0.0), log=False), batches, tmp_path)
    assert with_reg.net[0].weight.abs().sum() < without.net[0].weight.abs().sum()


def test_fit_with_a_sign_penalty_equals_sgd_on_the_sum_and_removes_sign_violations(tmp_path) -> None:
    batches = make_batches(12)

    def sign_penalty(model: nn.Module) -> nr.DaleSignPenalty:
        return nr.DaleSignPenalty(model, Lambda=4.0, include="*.weight", inh_ratio=0.25, rho=1.0, seed=0)

    def violations(model: nn.Module, reg: nr.DaleSignPenalty) -> int:
        weights = [model[0].weight, model[2].weight]
        return sum(int((w.detach() * s < 0).sum()) for w, s in zip(weights, reg.reference_signs))

    module, without = Module(), Module()
    reg = sign_penalty(module.net)
    before = violations(module.net, reg)
    fit(module, RegularizationCallback(reg), batches, tmp_path)
    fit(without, RegularizationCallback(nr.L1(without.net, Lambda=0.0), log=False), batches, tmp_path)

    model = seeded_model()
    reference = sign_penalty(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for x, y in batches:
        optimizer.zero_grad()
        (nn.functional.mse_loss(model(x), y) + reference()).backward()
        optimizer.step()
    for a, b in zip(parameters_of(module.net), parameters_of(model)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert violations(without.net, reg) > 20 and before > 20
    assert violations(module.net, reg) <= before // 2
    assert float(reg().detach()) < 1e-3 * float(sign_penalty(without.net)().detach())


def test_separate_mode_and_schedule_in_fit(tmp_path) -> None:
    module = Module()
    reg = nr.L1(module.net, Lambda=nr.schedules.StepWise([2], [0.0, 0.1]),
                optimizer=torch.optim.SGD(module.net.parameters(), lr=0.01))
    fit(module, RegularizationCallback(reg, prog_bar=True), make_batches(4), tmp_path)
    assert reg.global_step == 4 and reg.Lambda == 0.1


def test_separate_mode_steps_after_the_task_step(tmp_path) -> None:
    batches = make_batches(4)
    module = Module()
    reg = nr.L1(module.net, Lambda=0.05, optimizer=torch.optim.SGD(module.net.parameters(), lr=0.2), name="l1")
    trainer = fit(module, RegularizationCallback(reg), batches, tmp_path)

    assert_same(parameters_of(module.net), train_then_separate_step(batches))
    assert reg.global_step == 4 and reg.attached_optimizers == []
    assert "reg/l1" in trainer.callback_metrics   # logged at the end of each batch, after its own step


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_fit_gives_the_update_of_task_plus_penalty(tmp_path, precision: str) -> None:
    batches = make_batches(6)

    def reference(with_penalty: bool) -> list:
        model = seeded_model()
        reg = make_reg(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR)
        for x, y in batches:
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            (loss + reg() if with_penalty else loss).backward()
            optimizer.step()
        return parameters_of(model)

    module = Module()
    fit(module, RegularizationCallback(make_reg(module.net)), batches, tmp_path, precision=precision)
    got, want, without = parameters_of(module.net), reference(True), reference(False)
    error = max(float((a - b).abs().max()) for a, b in zip(got, want))
    effect = max(float((a - b).abs().max()) for a, b in zip(want, without))
    # Within AMP's rounding of the forward pass, and far closer than a run that lost (or shrank) the penalty.
    assert error < 2e-2 and error < effect / 5


def test_a_proximal_penalty_in_fit_equals_sgd_then_soft_thresholding(tmp_path) -> None:
    batches = make_batches(5)
    module = Module()
    reg = nr.L1(module.net, Lambda=0.3, update="proximal", exclude="*.bias")
    fit(module, RegularizationCallback(reg), batches, tmp_path)

    model = seeded_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for x, y in batches:
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        with torch.no_grad():
            for w in (model[0].weight, model[2].weight):
                w.copy_(torch.sign(w) * torch.clamp(w.abs() - LR * 0.3, min=0))
    for a, b in zip(parameters_of(module.net), parameters_of(model)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert int((module.net[0].weight == 0).sum()) > 0 and reg.global_step == 5


def test_a_list_with_a_proximal_member_logs_its_gradient_members(tmp_path) -> None:
    # The list acts by its own step updates (attached to the fit's optimizer); its gradient member's value,
    # computed in that step, is logged at the next optimizer step.
    module = Module()
    regs = nr.RegularizationList([nr.L1(module.net, Lambda=0.3, update="proximal", exclude="*.bias", name="prox"),
                                  nr.L2(module.net, Lambda=0.02, squared=True, name="l2")])
    trainer = fit(module, RegularizationCallback(regs), make_batches(3), tmp_path)
    assert "reg/l2" in trainer.callback_metrics and regs.global_step == 3


def test_checkpoint_holds_the_regularization_state(tmp_path) -> None:
    module = Module()
    reg = nr.L1(module.net, Lambda=nr.schedules.LinearWarmup(1.0, warmup_steps=10), name="warm")
    callback = RegularizationCallback(reg)
    trainer = fit(module, callback, make_batches(3), tmp_path)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=False)["callbacks"]["RegularizationCallback[warm]"]
    assert set(state) == {"_lambda", "_step"} and int(state["_step"]) == 3
    fresh = RegularizationCallback(nr.L1(Module().net, Lambda=nr.schedules.LinearWarmup(1.0, warmup_steps=10)))
    fresh.load_state_dict(state)
    assert fresh.regularization.global_step == 3 and fresh.regularization.Lambda == pytest.approx(0.3)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="regularization must be a neuroreg regularization"):
        RegularizationCallback(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="log must be a bool"):
        RegularizationCallback(nr.L1(nn.Linear(2, 2)), log="yes")
    with pytest.raises(TypeError, match="prefix must be a str, got 1"):
        RegularizationCallback(nr.L1(nn.Linear(2, 2)), prefix=1)


def test_without_lightning_the_import_is_a_clear_error(monkeypatch) -> None:
    import importlib
    import sys

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)   # what an uninstalled package looks like to import
    monkeypatch.delitem(sys.modules, "neuroreg.integrations.lightning")
    with pytest.raises(ImportError, match=r"needs PyTorch Lightning: pip install 'neuroreg\[lightning\]'"):
        importlib.import_module("neuroreg.integrations.lightning")


def test_ddp_spawn_on_two_cpu_processes_equals_sgd_on_the_sum(tmp_path) -> None:
    """Lightning's DDP strategy (2 CPU processes, gloo): both ranks see every batch (no distributed sampler),
    so the all-reduced task gradient is the single-process one, and the replicas add the same penalty
    gradient: the update is exactly that of task_loss + penalty."""
    import socket

    try:
        with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname(), 5):
            pass
    except OSError as error:
        pytest.skip(f"no TCP on loopback here: {error}")
    batches = make_batches(4)
    module = Module()
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", use_distributed_sampler=False, max_epochs=1,
        logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        default_root_dir=tmp_path, callbacks=[RegularizationCallback(make_reg(module.net))],
    )
    trainer.fit(module, loader(batches))

    model = seeded_model()
    reference = make_reg(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for x, y in batches:
        optimizer.zero_grad()
        (nn.functional.mse_loss(model(x), y) + reference()).backward()
        optimizer.step()
    assert_same(parameters_of(module.net), parameters_of(model))
    assert not torch.allclose(parameters_of(module.net)[0], parameters_of(seeded_model())[0])
