"""Scaling out on 2 gloo processes: FSDP2 (DTensor parameters) and DistributedDataParallel (rank-consistent
references, wrapper prefixes). Each test spawns its workers once (tests/distributed_support.py) and compares
their results with the same computation in one process."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict

import torch
from torch import nn

import neuroreg as nr
from tests.distributed_support import WORLD_SIZE, finish_worker, init_worker, run_workers

LR, STEPS = 0.1, 3


def model_of(seed: int = 0) -> nn.Module:
    # Linear(16, 1)'s weight has one row: sharded on dim 0 over 2 ranks, one rank holds nothing (uneven shards).
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))


def batches() -> list:
    generator = torch.Generator().manual_seed(5)
    return [(torch.randn(8, 16, generator=generator), torch.randn(8, 1, generator=generator)) for _ in range(STEPS)]


#: name -> build on a model. Built before fully_shard (the model's Parameters are then replaced).
CASES: Dict[str, Callable[[nn.Module], nr.BaseRegularization]] = {
    "L1": lambda m: nr.L1(m, Lambda=0.1),
    "L2": lambda m: nr.L2(m, Lambda=0.3),
    "L2-squared": lambda m: nr.L2(m, Lambda=0.3, squared=True),
    "Lp-3": lambda m: nr.Lp(m, Lambda=0.5, p=3),
    "DaleLawL2": lambda m: nr.DaleLawL2(m, alpha=0.6, Lambda=0.2, include="*weight", seed=0),
    "DaleSignPenalty": lambda m: nr.DaleSignPenalty(m, Lambda=2.0, include="*weight", seed=1),
    "WeightsDistance": lambda m: nr.WeightsDistance(m, [torch.full_like(p, 0.05) for p in m.parameters()], p=2),
    "ExcRatioTarget": lambda m: nr.ExcRatioTargetRegularization(m, exc_target_ratio=0.7, include="*weight"),
    "list": lambda m: nr.RegularizationList([nr.L2(m, Lambda=0.3), nr.DaleLawL2(m, include="*weight", seed=0)]),
}
TRAINED = ("L2", "DaleLawL2", "WeightsDistance", "list")
MODES = ("loss", "joint", "accumulate")


def train(model: nn.Module, reg: nr.BaseRegularization, mode: str) -> None:
    """SGD with the penalty added to the loss ("loss"), attached ("joint"), or attached with two micro-batches
    per step ("accumulate": under FSDP2 the first backward without gradient sync)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    if mode in ("joint", "accumulate"):
        reg.attach(optimizer)
    for x, y in batches():
        optimizer.zero_grad()
        if mode == "accumulate":
            for index, half in enumerate((slice(0, 4), slice(4, 8))):
                if hasattr(model, "set_requires_gradient_sync"):
                    model.set_requires_gradient_sync(index == 1)
                (nn.functional.mse_loss(model(x[half]), y[half]) / 2).backward()
        else:
            loss = nn.functional.mse_loss(model(x), y)
            (loss + reg() if mode == "loss" else loss).backward()
        optimizer.step()


def full_parameters(model: nn.Module) -> list:
    return [(p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone() for p in model.parameters()]


def _fsdp_worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    store = init_worker(rank, port, out_dir)
    try:
        results: dict = {}
        model = model_of()
        regs = {name: build(model) for name, build in CASES.items()}
        for module in (model[0], model[2], model):
            fully_shard(module)
        for name, reg in regs.items():
            value = reg().detach()
            results[f"{name}/plain"] = type(value) is torch.Tensor
            results[f"{name}/value"] = float(value)
            results[f"{name}/logged"] = reg.last_values()
            built_after = CASES[name](model)   # on the DTensor parameters themselves
            results[f"{name}/after"] = float(built_after().detach())
        for name in TRAINED:
            for mode in MODES:
                sharded = model_of()
                reg = CASES[name](sharded)
                for module in (sharded[0], sharded[2], sharded):
                    fully_shard(module)
                train(sharded, reg, mode)
                results[f"{name}/{mode}"] = full_parameters(sharded)
        torch.save(results, Path(out_dir, f"rank{rank}.pt"))
        finish_worker(store)
    finally:   # reached on an error only: finish_worker ends the process
        dist.destroy_process_group()


def test_fsdp2_values_logs_and_training_equal_the_unsharded_model(tmp_path: Path) -> None:
    run_workers(_fsdp_worker, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD_SIZE)]
    for name, build in CASES.items():
        model = model_of()
        reg = build(model)
        expected = float(reg().detach())
        for results in ranks:   # every rank holds the global value, as a plain tensor, and logs it
            assert results[f"{name}/plain"], name
            assert abs(results[f"{name}/value"] - expected) <= 1e-5 * max(1.0, abs(expected)), name
            assert abs(results[f"{name}/after"] - expected) <= 1e-5 * max(1.0, abs(expected)), name
            # by member, in order (the default names count instances, which differ between processes)
            logged, wanted = list(results[f"{name}/logged"].values()), list(reg.last_values().values())
            assert len(logged) == len(wanted)
            assert all(abs(a - b) <= 1e-5 * max(1.0, abs(b)) for a, b in zip(logged, wanted)), name
    for name in TRAINED:
        for mode in MODES:
            model = model_of()
            train(model, CASES[name](model), mode)
            for results in ranks:
                for got, want in zip(results[f"{name}/{mode}"], model.parameters()):
                    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-6, msg=f"{name} {mode}")


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    store = init_worker(rank, port, out_dir)
    try:
        results: dict = {}
        for mode in ("loss", "joint"):
            model = model_of()
            torch.manual_seed(100 + rank)   # rank-dependent: what a per-rank script would draw or initialise
            dale = nr.DaleSignPenalty(model, Lambda=1.0, include="*weight", seed=None)
            distance = nr.WeightsDistance(model, [torch.randn_like(p) for p in model.parameters()], p=2)
            regs = nr.RegularizationList([dale, distance])
            ddp = nn.parallel.DistributedDataParallel(model)
            train(ddp, regs, mode)
            results[mode] = parameters = [p.detach().clone() for p in model.parameters()]
            results[f"{mode}/references"] = [b.clone() for name, b in regs.named_buffers() if "reference" in name]
            assert parameters
        results["names"] = nr.L2(nn.parallel.DistributedDataParallel(model_of()), include="2.*").param_names
        torch.save(results, Path(out_dir, f"rank{rank}.pt"))
        finish_worker(store)
    finally:   # reached on an error only: finish_worker ends the process
        dist.destroy_process_group()


def test_ddp_references_drawn_per_rank_are_made_identical_and_names_are_unwrapped(tmp_path: Path) -> None:
    run_workers(_ddp_worker, tmp_path)
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD_SIZE))
    for mode in ("loss", "joint"):
        assert rank0[f"{mode}/references"], mode
        for a, b in zip(rank0[f"{mode}/references"], rank1[f"{mode}/references"]):
            assert torch.equal(a, b), mode   # rank 0's references, broadcast
        for a, b in zip(rank0[mode], rank1[mode]):
            assert torch.equal(a, b), mode   # so the replicas never drift apart
    assert rank0["names"] == rank1["names"] == ["2.weight", "2.bias"]
