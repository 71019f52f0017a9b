"""Side-by-side timings of neuroreg against its references (not a test: run it, read the table).

    python benchmarks/run.py [--device cuda] [--quick] [--cases 1,4] [--json results.json] [--baseline old.json]

For each case every implementation is timed in the same run, interleaved (A, B, A, B, ...) after a warm-up,
and the median of the repeats is reported with its ratio to the case's reference and the peak extra memory
(bytes of tensors allocated while it runs and still alive at the peak; the inputs and existing gradients
are not counted). ``--baseline`` compares each median with an earlier ``--json`` file, to catch regressions
between commits.

Cases (targets from the performance issue):
  1. DaleLawL2 forward+backward vs the trace formula tr(Wᵀ(αW − (1−α)S)): >= 20x at n = 2048, growing with n.
  2. L2 over 20 x 1024² parameters: joint mode vs autograd vs ``torch._foreach_add_`` (weight decay, the floor):
     joint <= 1.5x the floor and >= 5x faster than autograd.
  3. RegularizationList(L1 + L2 + DaleLaw) over 200 64x64 parameters: direct call no slower than a naive
     per-parameter loop, joint mode >= 5x faster than it.
  4. Each ported loss, forward+backward, at a representative size.
  5. CompactnessLoss (parcels over sphere vertices) and ModularityLoss (soft communities of a graph),
     forward+backward: eager vs ``torch.compile``, beside hypercoil's ``jax.jit`` where hypercoil imports.
  6. FiringRateRange on a (64, 200, 512) activity, task + penalty forward+backward: joint mode (attached: the
     closed-form gradient joins in a tensor hook) vs the same penalty written by hand in autograd and added to the
     loss, beside the task alone (the floor): joint no slower than by hand, with less peak memory.
  7. The proximal L1 step (soft-thresholding) over 20 x 1024² parameters: ``functional.l1_prox_`` and
     ``L1(update="proximal").prox_step_`` vs ``torch._foreach`` soft-thresholding written by hand
     (``sign(w) * max(|w| - t, 0)``, and the ``w - clamp(w, -t, t)`` form): within 1.2x of by hand.
  8. SpectralNorm of an n x n recurrent weight, gradient of one step (the weight changed, so one power iteration):
     joint mode and the direct call vs autograd of ``torch.linalg.matrix_norm(W, 2)`` (an SVD): >= 10x at 1024.
  9. One training step of a 16-seed ensemble under torch.func (vmap of grad), neuroreg's penalty_of vs by hand.
 10. Every parameter penalty, ``reg().backward()`` vs the same penalty written by hand in autograd (and
     NeuroTorch 0.0.2's class where it computes the same number), on one n x n tensor (n = 16 ... 4096) and on
     ten (n = 16 ... 1024): <= 1.0x by hand from n = 256, at most 10 µs more per call at n = 16 and 64 (the
     'Δ µs' column). Each sample times a batch of calls; the table gives one call.
 11. Joint mode at the memory floor, n = 2048: ``accumulate_grad()`` of DaleLawL2, L1 and squared L2 vs the one
     kernel with the traffic the update needs (``grad.addcmul_(W, S)``, ``grad.add_(W)``): <= 1.2x.
 12. A whole training step (Adam) of a 64-neuron E/I rate RNN, 50 time steps, batch 32, with L1 + DaleLawL2 +
     ExcRatioTarget in a RegularizationList, attached (joint mode) and added to the loss, vs the same penalties
     by hand, beside the task alone: within 3 % of by hand.

Compiled columns (cases 1, 2, 4, 5): ``torch.compile`` (inductor) of the same forward+backward, timed after its
warm-up like the others, its compile time (the first call: tracing and code generation) in a separate column,
as is ``jax.jit``'s for hypercoil (where hypercoil and JAX import: the ``bench`` extra). Targets: every ported
loss compiled >= 2x faster than hypercoil's ``jax.jit(value_and_grad)``, and eager no slower than it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import sys
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import neuroreg as nr


class PeakMemory(TorchDispatchMode):
    """Peak bytes of the tensors that ops allocate while active (views and in-place results excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0

    def _free(self, nbytes: int) -> None:
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat_inputs = tree_flatten((args, kwargs))[0]
        inputs = {t.untyped_storage().data_ptr() for t in flat_inputs if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and not tensor._is_view():
                storage = tensor.untyped_storage()
                if storage.data_ptr() not in inputs and storage.nbytes() > 0:
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(tensor, self._free, storage.nbytes())
        return out


@dataclass
class Case:
    name: str
    implementations: Dict[str, Callable[[], object]]
    reference: str
    notes: str = ""
    results: Dict[str, dict] = field(default_factory=dict)
    compiled: Tuple[str, ...] = ()   # labels whose first call compiles (its time is reported as compile time)
    calls: int = 1   # calls per timed sample (the median is reported per call): a few µs each is below noise


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_case(case: Case, device: torch.device, repeats: int, warmup: int) -> None:
    first_call: Dict[str, float] = {}
    for label, fn in case.implementations.items():
        for index in range(warmup * case.calls):
            start = time.perf_counter()
            fn()
            synchronize(device)
            if index == 0:
                first_call[label] = time.perf_counter() - start
    synchronize(device)
    times: Dict[str, List[float]] = {label: [] for label in case.implementations}
    order = list(case.implementations.items())
    shuffler = random.Random(0)
    for _ in range(repeats):
        # A fresh order each repeat, so that no implementation always runs in the same slot.
        shuffler.shuffle(order)
        for label, fn in order:
            synchronize(device)
            start = time.perf_counter()
            for _ in range(case.calls):
                fn()
            synchronize(device)
            times[label].append((time.perf_counter() - start) / case.calls)
    for label, fn in case.implementations.items():
        with PeakMemory() as memory:
            fn()
        synchronize(device)
        peak = float("nan") if getattr(fn, "outside_torch", False) else memory.peak / 2**20
        case.results[label] = {"median_ms": 1e3 * statistics.median(times[label]), "peak_mib": peak}
        if label in case.compiled:
            case.results[label]["compile_s"] = first_call[label]
    reference = case.results[case.reference]["median_ms"]
    for result in case.results.values():
        result["speedup_vs_reference"] = reference / result["median_ms"]
        result["extra_us"] = 1e3 * (result["median_ms"] - reference)


def parameters(shapes, device, dtype=torch.float32, seed=0) -> List[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=generator, dtype=dtype).to(device)) for s in shapes]
    for p in params:
        p.grad = torch.zeros_like(p)
    return params


def fwd_bwd(fn: Callable[..., torch.Tensor], *args) -> Callable[[], None]:
    return lambda: fn(*args).backward()


def with_compiled(implementations: Dict[str, Callable[[], object]], label: str, fn: Callable[..., torch.Tensor],
                  *args) -> Tuple[str, ...]:
    """Add ``torch.compile(fn)`` forward+backward under ``label`` (compiled on its first call) and return the
    labels whose first call compiles, for ``Case.compiled``."""
    implementations[label] = fwd_bwd(torch.compile(fn), *args)
    return (label,)


def dale_cases(device: torch.device, sizes: List[int]) -> List[Case]:
    cases = []
    for n in sizes:
        (w,) = parameters([(n, n)], device)
        reg = nr.DaleLawL2([w], alpha=0.8, seed=0).to(device)
        signs = reg._buffer_list("reference_signs")[0].to(w.dtype)

        def trace_formula(w=w, signs=signs):
            torch.trace(w.T @ (0.8 * w - 0.2 * signs)).backward()

        implementations = {"trace formula (NeuroTorch)": trace_formula}
        neurotorch_dale = neurotorch_regularization("connectome.DaleLawL2", [w], alpha=0.8,
                                                    reference_weights=[signs])
        if neurotorch_dale is not None:   # its own module: the same formula, and its Python overhead
            implementations["NeuroTorch DaleLawL2 fwd+bwd"] = fwd_bwd(neurotorch_dale)
        implementations.update({"neuroreg reg().backward()": fwd_bwd(reg),
                                "neuroreg joint accumulate_grad()": reg.accumulate_grad})
        compiled = with_compiled(implementations, "neuroreg torch.compile(reg) fwd+bwd", reg)
        cases.append(Case(f"1. DaleLawL2 n={n}", implementations, reference="trace formula (NeuroTorch)",
                          compiled=compiled))
    return cases


def l2_case(device: torch.device, n_params: int, size: int) -> List[Case]:
    params = parameters([(size, size)] * n_params, device)
    grads = [p.grad for p in params]
    squared = nr.L2(params, Lambda=0.5, squared=True)
    norm = nr.L2(params, Lambda=0.5)

    def autograd_loop():
        sum(0.5 * p.pow(2).sum() for p in params).backward()

    implementations = {"foreach_add_ (weight-decay floor)": lambda: torch._foreach_add_(grads, params, alpha=1.0),
                       "autograd fwd+bwd (per-parameter loop)": autograd_loop}
    # No NeuroTorch column: its Lp is torch.linalg.norm(param, p), on a matrix the induced norm (p=2: an SVD),
    # not this entrywise penalty.
    implementations.update({"neuroreg L2(squared) reg().backward()": fwd_bwd(squared),
                            "neuroreg L2(squared) joint accumulate_grad()": squared.accumulate_grad,
                            "neuroreg L2 (norm) joint accumulate_grad()": norm.accumulate_grad,
                            "neuroreg L2 (norm) reg().backward()": fwd_bwd(norm)})
    compiled = with_compiled(implementations, "neuroreg torch.compile(L2 norm) fwd+bwd", norm)
    return [Case(f"2. L2 over {n_params}x{size}²", implementations, reference="foreach_add_ (weight-decay floor)",
                 compiled=compiled)]


def neurotorch_regularization(name: str, *args, **kwargs) -> Optional[Callable[[], torch.Tensor]]:
    """NeuroTorch's regularization ``name`` (e.g. ``"connectome.DaleLawL2"``) built on ``args``, or None where
    NeuroTorch is not installed (imported through the tests' torchvision stand-in)."""
    if importlib.util.find_spec("neurotorch") is None:
        return None
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the repository's tests/
    from tests.neurotorch_support import import_neurotorch

    module = import_neurotorch().regularization
    for part in name.split("."):
        module = getattr(module, part)
    return module(*args, **kwargs)


def list_case(device: torch.device, n_params: int) -> List[Case]:
    params = parameters([(64, 64)] * n_params, device)
    regs = nr.RegularizationList([
        nr.L1(params, Lambda=1e-3), nr.L2(params, Lambda=1e-3), nr.DaleLaw(params, Lambda=1e-3, seed=0),
    ]).to(device)
    signs = [s.to(params[0].dtype) for s in regs[2]._buffer_list("reference_signs")]

    def naive_loop():
        total = 0.0
        for p, s in zip(params, signs):
            total = total + 1e-3 * p.abs().sum() + 1e-3 * p.norm() - 1e-3 * (p * s).sum()
        total.backward()

    return [Case(
        f"3. L1+L2+DaleLaw list over {n_params}x64²",
        {"naive per-parameter loop fwd+bwd": naive_loop,
         "neuroreg reg().backward()": lambda: regs().backward(),
         "neuroreg joint accumulate_grad()": regs.accumulate_grad},
        reference="naive per-parameter loop fwd+bwd",
    )]


def loss_cases(device: torch.device, quick: bool) -> List[Case]:
    generator = torch.Generator().manual_seed(0)
    scale = 4 if quick else 1

    def tensor(*shape):
        return torch.randn(*shape, generator=generator).to(device).requires_grad_(True)

    logits = tensor(64 // scale, 400, 200)
    p_logits, q_logits = tensor(4096 // scale, 400), tensor(4096 // scale, 400)
    series = tensor(64 // scale, 400, 200)
    x, n = tensor(256, 4096 // scale), tensor(256)
    # name: (loss, its inputs, hypercoil's function and options for the same score)
    losses = {
        f"EquilibriumLogitLoss {tuple(logits.shape)}": (nr.EquilibriumLogitLoss(), (logits,), ("equilibrium_logit",)),
        f"JSDivergenceLogitLoss {tuple(p_logits.shape)}": (nr.JSDivergenceLogitLoss(), (p_logits, q_logits),
                                                           ("js_divergence_logit",)),
        f"SmoothnessLoss {tuple(series.shape)}": (nr.SmoothnessLoss(), (series,), ("smoothness",)),
        f"BatchCorrelationLoss {tuple(x.shape)}": (nr.BatchCorrelationLoss(tol="auto"), (x, n),
                                                   ("batch_corr", {"tol": "auto"})),
        f"EntropyLogitLoss {tuple(logits.shape)}": (nr.EntropyLogitLoss(), (logits,), ("entropy_logit",)),
        f"KLDivergenceLogitLoss {tuple(p_logits.shape)}": (nr.KLDivergenceLogitLoss(), (p_logits, q_logits),
                                                           ("kl_divergence_logit",)),
    }

    def naive_js():
        p, q = p_logits.softmax(-1), q_logits.softmax(-1)
        m = 0.5 * (p + q)
        (0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)).mean().backward()

    cases = []
    for name, (loss, args, (score, *options)) in losses.items():
        implementations = {"neuroreg fwd+bwd": fwd_bwd(loss, *args)}
        if name.startswith("JSDivergence"):
            implementations["naive softmax/log fwd+bwd"] = naive_js
        compiled = with_compiled(implementations, "neuroreg torch.compile fwd+bwd", loss, *args)
        jitted = hypercoil_jit(score, *args, **(options[0] if options else {})) if device.type == "cpu" else None
        if jitted is not None:
            implementations["hypercoil jax.jit value_and_grad"] = jitted
            compiled += ("hypercoil jax.jit value_and_grad",)
        cases.append(Case(f"4. {name}", implementations, reference="neuroreg fwd+bwd", compiled=compiled))
    return cases


def hypercoil_jit(score: str, *tensors: torch.Tensor, **options) -> Optional[Callable[[], object]]:
    """hypercoil's ``score`` (mean, and its gradient in every input that requires grad, as the torch
    implementations compute) under ``jax.jit``, or None where hypercoil does not import."""
    try:
        import scipy.stats._stats_py as stats_py

        if not hasattr(stats_py, "_chk2_asarray"):
            # lytemaps (imported by hypercoil 0.1.0.dev1) imports this helper, which SciPy 1.17 removed.
            def _chk2_asarray(a, b, axis):
                import numpy

                if axis is None:
                    return numpy.ravel(a), numpy.ravel(b), 0
                return numpy.asarray(a), numpy.asarray(b), axis

            stats_py._chk2_asarray = _chk2_asarray
        import hypercoil.loss.functional as hypercoil_loss
        import jax
    except ImportError:
        return None
    arrays = [jax.numpy.asarray(t.detach().cpu().numpy()) for t in tensors]
    argnums = tuple(index for index, t in enumerate(tensors) if t.requires_grad)
    step = jax.jit(jax.value_and_grad(lambda *xs: getattr(hypercoil_loss, score)(*xs, **options).mean(), argnums))
    def run():
        jax.block_until_ready(step(*arrays))
    run.outside_torch = True   # JAX's buffers: the peak-memory column cannot see them
    return run


def spatial_graph_cases(device: torch.device, quick: bool) -> List[Case]:
    generator = torch.Generator().manual_seed(0)
    parcels, vertices = (25, 2500) if quick else (100, 10000)
    coor = torch.randn(3, vertices, generator=generator)
    coor = (100 * coor / coor.norm(dim=0)).to(device)
    masses = torch.randn(parcels, vertices, generator=generator).softmax(0).to(device).requires_grad_(True)
    nodes, communities = (250, 10) if quick else (1000, 20)
    adjacency = torch.rand(nodes, nodes, generator=generator)
    adjacency = (adjacency + adjacency.T).to(device)
    affiliations = torch.randn(nodes, communities, generator=generator).softmax(-1).to(device).requires_grad_(True)
    losses = {
        f"CompactnessLoss {tuple(masses.shape)} on the sphere": (nr.CompactnessLoss(coor=coor), (masses,),
                                                                 ("compactness", masses, coor)),
        f"ModularityLoss {tuple(affiliations.shape)}": (nr.ModularityLoss(A=adjacency), (affiliations,),
                                                        ("modularity", affiliations, adjacency)),
    }
    cases = []
    for name, (loss, args, hypercoil_args) in losses.items():
        compiled = torch.compile(loss)
        implementations = {
            "eager fwd+bwd": lambda loss=loss, args=args: loss(*args).backward(),
            "torch.compile fwd+bwd": lambda compiled=compiled, args=args: compiled(*args).backward(),
        }
        jitted = hypercoil_jit(*hypercoil_args) if device.type == "cpu" else None
        if jitted is not None:
            implementations["hypercoil jax.jit value_and_grad"] = jitted
        cases.append(Case(f"5. {name}", implementations, reference="eager fwd+bwd",
                          compiled=("torch.compile fwd+bwd", "hypercoil jax.jit value_and_grad")))
    return cases


def activity_case(device: torch.device, quick: bool) -> List[Case]:
    shape = (16 if quick else 64, 200, 512)
    generator = torch.Generator().manual_seed(0)
    drive = torch.randn(shape, generator=generator).to(device).requires_grad_(True)
    readout = torch.randn(shape[-1], generator=generator).to(device)
    layer = torch.nn.Sigmoid()
    low, high, weight = 0.45, 0.55, 10.0
    reg = nr.FiringRateRange(layer, Lambda=weight, low=low, high=high)
    reg.attach(torch.optim.SGD([drive], lr=0.0))   # joint mode; stepped by hand below (reg.step clears the record)

    def task(rates):
        return (rates * readout).mean()

    def task_only():
        task(torch.sigmoid(drive)).backward()

    def by_hand():
        rates = torch.sigmoid(drive)
        mean = rates.mean((0, 1))
        (task(rates) + weight * (torch.relu(low - mean).square() + torch.relu(mean - high).square()).sum()).backward()

    def joint():
        task(layer(drive)).backward()
        reg.step()

    return [Case(
        f"6. FiringRateRange {shape}",
        {"task only fwd+bwd (floor)": task_only,
         "autograd task + penalty by hand": by_hand,
         "neuroreg joint (attached)": joint},
        reference="autograd task + penalty by hand",
    )]


def prox_case(device: torch.device, n_params: int, size: int) -> List[Case]:
    params = parameters([(size, size)] * n_params, device)
    threshold = 1e-6   # lr * Lambda: small, so that repeats keep the weights non-zero and the work the same
    reg = nr.L1(params, Lambda=1e-3, update="proximal")

    def by_hand_sign_max():
        magnitudes = torch._foreach_abs(params)
        torch._foreach_sub_(magnitudes, threshold)
        torch._foreach_clamp_min_(magnitudes, 0.0)
        torch._foreach_mul_(magnitudes, torch._foreach_sign(params))
        torch._foreach_copy_(params, magnitudes)

    def by_hand_clamp():
        clipped = torch._foreach_clamp_min(params, -threshold)
        torch._foreach_clamp_max_(clipped, threshold)
        torch._foreach_sub_(params, clipped)

    def under_no_grad(fn):
        def run():
            with torch.no_grad():
                fn()
        return run

    return [Case(
        f"7. prox L1 over {n_params}x{size}²",
        {"by hand foreach sign·max(|w|−t, 0)": under_no_grad(by_hand_sign_max),
         "by hand foreach w − clamp(w, −t, t)": under_no_grad(by_hand_clamp),
         "neuroreg functional.l1_prox_": lambda: nr.functional.l1_prox_(params, threshold),
         "neuroreg L1(update='proximal').prox_step_": lambda: reg.prox_step_(threshold / reg.Lambda)},
        reference="by hand foreach sign·max(|w|−t, 0)",
    )]


def spectral_cases(device: torch.device, sizes: List[int]) -> List[Case]:
    cases = []
    for n in sizes:
        (weight,) = parameters([(n, n)], device)
        reg = nr.SpectralNorm([weight])

        def changed(fn, weight=weight):
            def run():
                with torch.no_grad():   # a new version of the weight, as after an optimizer step
                    weight.mul_(1.0)
                weight.grad = None
                fn()
            return run

        cases.append(Case(
            f"8. SpectralNorm gradient, {n}x{n}",
            {"autograd torch.linalg.matrix_norm(W, 2)":
                 changed(lambda weight=weight: torch.linalg.matrix_norm(weight, 2).backward()),
             "neuroreg SpectralNorm joint (accumulate_grad)": changed(reg.accumulate_grad),
             "neuroreg SpectralNorm direct call + backward": changed(lambda reg=reg: reg().backward())},
            reference="autograd torch.linalg.matrix_norm(W, 2)",
        ))
    return cases


def ensemble_case(device: torch.device, quick: bool) -> List[Case]:
    """One training step of 16 seeds of examples/ensemble.py's E/I rate RNN (64 neurons, 50 time steps,
    batch 32): vmapped with neuroreg's penalty, vmapped with the penalty by hand, and a loop over 16 models."""
    import importlib.util

    from torch.func import functional_call, grad, stack_module_state, vmap

    spec = importlib.util.spec_from_file_location("ensemble_example", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "ensemble.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    seeds, hidden, time_steps = (4, 16, 10) if quick else (16, 64, 50)
    models = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        models.append(example.RateRNN(hidden).to(device))
    template = models[0]
    alpha, weight = 0.9, 1.0
    dale = nr.DaleLawL2(template, alpha=alpha, Lambda=weight, include="w_rec", seed=0).to(device)
    signs = dale.reference_signs[0]
    params, _ = stack_module_state(models)
    base = {name: p.detach() for name, p in template.named_parameters()}
    x, y = example.task(32, time_steps, torch.Generator().manual_seed(1))
    x, y = x.to(device), y.to(device)

    def task_loss(p):
        return torch.nn.functional.mse_loss(functional_call(template, {**base, **p}, (x,)), y)

    neuroreg_step = vmap(grad(lambda p: task_loss(p) + dale.penalty_of(p)))
    def by_hand(p):
        return task_loss(p) + weight * (p["w_rec"] * (alpha * p["w_rec"] - (1 - alpha) * signs)).sum()

    by_hand_step = vmap(grad(by_hand))
    regs = [nr.DaleLawL2(model, alpha=alpha, Lambda=weight, include="w_rec", reference_weights=[signs])
            for model in models]

    def loop():
        for model, reg in zip(models, regs):
            (torch.nn.functional.mse_loss(model(x), y) + reg()).backward()

    return [Case(
        f"9. ensemble step, {seeds} seeds x {hidden} neurons, {time_steps} steps",
        {"vmap(grad), penalty by hand": lambda: by_hand_step(params),
         "vmap(grad), neuroreg penalty_of": lambda: neuroreg_step(params),
         "Python loop, loss + reg()": loop},
        reference="vmap(grad), penalty by hand",
    )]


# name: (neuroreg's class on (params, signs, references), the same penalty by hand on one tensor, NeuroTorch's
# class and keywords where it computes the same number). Lambda 1e-3, alpha 0.8, E/I target 0.8.
PARAMETER_PENALTIES: Dict[str, tuple] = {
    "L1": (lambda ps, ss, rs: nr.L1(ps, Lambda=1e-3), lambda w, s, r: 1e-3 * w.abs().sum(), None),
    "L1 matrix norm": (lambda ps, ss, rs: nr.L1(ps, Lambda=1e-3, norm="matrix"),
                       lambda w, s, r: 1e-3 * torch.linalg.norm(w, 1),   # NeuroTorch's L1: the largest column sum
                       ("L1", {"Lambda": 1e-3}, None)),
    "L2": (lambda ps, ss, rs: nr.L2(ps, Lambda=1e-3), lambda w, s, r: 1e-3 * w.norm(), None),
    "L2 squared": (lambda ps, ss, rs: nr.L2(ps, Lambda=1e-3, squared=True), lambda w, s, r: 1e-3 * w.pow(2).sum(),
                   None),
    "Lp p=3": (lambda ps, ss, rs: nr.Lp(ps, Lambda=1e-3, p=3), lambda w, s, r: 1e-3 * w.norm(p=3), None),
    "DaleLawL2": (lambda ps, ss, rs: nr.DaleLawL2(ps, alpha=0.8, Lambda=1e-3, reference_weights=ss),
                  lambda w, s, r: 1e-3 * (w * (0.8 * w - 0.2 * s)).sum(),
                  ("connectome.DaleLawL2", {"alpha": 0.8, "Lambda": 1e-3}, "reference_weights")),
    "DaleLaw": (lambda ps, ss, rs: nr.DaleLaw(ps, Lambda=1e-3, reference_weights=ss),
                lambda w, s, r: -1e-3 * (w * s).sum(), None),
    "DaleSignPenalty": (lambda ps, ss, rs: nr.DaleSignPenalty(ps, Lambda=1e-3, reference_weights=ss),
                        lambda w, s, r: 1e-3 * torch.relu(-w * s).pow(2).sum(), None),
    "ExcRatioTarget": (lambda ps, ss, rs: nr.ExcRatioTargetRegularization(ps, exc_target_ratio=0.8, Lambda=1e-3),
                       lambda w, s, r: 1e-3 * (torch.nn.functional.softsign(w).mean() + 1 - 1.6).abs(),
                       ("connectome.ExcRatioTargetRegularization", {"exc_target_ratio": 0.8, "Lambda": 1e-3}, None)),
    "InhRatioTarget": (lambda ps, ss, rs: nr.InhRatioTargetRegularization(ps, inh_target_ratio=0.2, Lambda=1e-3),
                       lambda w, s, r: 1e-3 * (torch.nn.functional.softsign(w).mean() + 1 - 1.6).abs(),
                       ("connectome.InhRatioTargetRegularization", {"inh_target_ratio": 0.2, "Lambda": 1e-3}, None)),
    "WeightsDistance": (lambda ps, ss, rs: nr.WeightsDistance(ps, reference_weights=rs, Lambda=1e-3),
                        lambda w, s, r: 1e-3 * (w - r).abs().sum(), None),
}


def direct_call_cases(device: torch.device, quick: bool) -> List[Case]:
    """Case 10: the direct call against the penalty by hand, per penalty, size and number of tensors."""
    layouts = [(1, n) for n in ([16, 256] if quick else [16, 64, 256, 1024, 4096])]
    layouts += [(10, n) for n in ([16] if quick else [16, 64, 256, 1024])]
    cases = []
    for count, n in layouts:
        params = parameters([(n, n)] * count, device, seed=count)
        generator = torch.Generator().manual_seed(count + 1)
        signs = [torch.randn(n, n, generator=generator).sign().to(device) for _ in params]
        references = [torch.randn(n, n, generator=generator).to(device) for _ in params]
        calls = min(5 if quick else 200, max(1, int(2e6 // (count * n * n))))
        triples = tuple(zip(params, signs, references))
        for name, (build, by_hand, neurotorch) in PARAMETER_PENALTIES.items():
            reg = build(params, signs, references)

            def hand(fn=by_hand, triples=triples):
                # one tensor: the penalty alone, as a user writes it (no sum over a list)
                (fn(*triples[0]) if len(triples) == 1 else sum(fn(*t) for t in triples)).backward()
            implementations = {"by hand (autograd)": hand, "neuroreg reg().backward()": fwd_bwd(reg)}
            if neurotorch is not None:
                path, options, references_as = neurotorch
                if references_as is not None:
                    options = {**options, references_as: signs}
                theirs = neurotorch_regularization(path, params, **options)
                if theirs is not None:
                    implementations[f"NeuroTorch {path.split('.')[-1]}"] = fwd_bwd(theirs)
            cases.append(Case(f"10. {name} {count}x{n}²", implementations, reference="by hand (autograd)",
                              calls=calls))
    return cases


def joint_floor_cases(device: torch.device, quick: bool) -> List[Case]:
    """Case 11: accumulate_grad() against the one-pass kernel with the memory traffic the update needs."""
    n = 512 if quick else 2048
    (w,) = parameters([(n, n)], device)
    signs = torch.randn(n, n, generator=torch.Generator().manual_seed(1)).sign().to(device)
    grad = w.grad
    regs = {
        "DaleLawL2": (nr.DaleLawL2([w], alpha=0.8, Lambda=1e-3, reference_weights=[signs]),
                      "grad.addcmul_(W, S) (floor)", lambda: grad.addcmul_(w.detach(), signs, value=1e-3)),
        "L1": (nr.L1([w], Lambda=1e-3), "grad.add_(W) (floor)", lambda: grad.add_(w.detach(), alpha=1e-3)),
        "L2 squared": (nr.L2([w], Lambda=1e-3, squared=True), "grad.add_(W) (floor)",
                       lambda: grad.add_(w.detach(), alpha=1e-3)),
    }
    return [Case(f"11. joint {name} n={n}", {floor: kernel, "neuroreg accumulate_grad()": reg.accumulate_grad},
                 reference=floor, calls=5)
            for name, (reg, floor, kernel) in regs.items()]


def training_step_case(device: torch.device, quick: bool) -> List[Case]:
    """Case 12: one Adam step of examples/ensemble.py's E/I rate RNN with three penalties, four ways."""
    import copy

    spec = importlib.util.spec_from_file_location("ensemble_example", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "ensemble.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    hidden, time_steps = (16, 10) if quick else (64, 50)
    torch.manual_seed(0)
    template = example.RateRNN(hidden).to(device)
    x, y = example.task(32, time_steps, torch.Generator().manual_seed(1))
    x, y = x.to(device), y.to(device)
    signs = torch.ones(hidden, hidden, device=device)
    signs[int(0.8 * hidden):] = -1   # the last 20 % of the neurons (rows) inhibitory

    def penalties(model: torch.nn.Module) -> nr.RegularizationList:
        return nr.RegularizationList([
            nr.L1(model, Lambda=1e-4, exclude="*bias"),
            nr.DaleLawL2(model, alpha=0.8, Lambda=1e-3, include="w_rec", reference_weights=[signs]),
            nr.ExcRatioTargetRegularization(model, exc_target_ratio=0.8, Lambda=1e-3, include="w_rec"),
        ])

    def by_hand(model: torch.nn.Module) -> torch.Tensor:
        weights = [p for name, p in model.named_parameters() if not name.endswith("bias")]
        w = model.w_rec
        return (1e-4 * sum(p.abs().sum() for p in weights) + 1e-3 * (w * (0.8 * w - 0.2 * signs)).sum()
                + 1e-3 * (torch.nn.functional.softsign(w).mean() + 1 - 1.6).abs())

    def step_of(mode: str) -> Callable[[], None]:
        model = copy.deepcopy(template)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        regs = penalties(model)
        if mode == "attached":
            regs.attach(optimizer)

        def step() -> None:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            if mode == "by hand":
                loss = loss + by_hand(model)
            elif mode == "added":
                loss = loss + regs()
            loss.backward()
            optimizer.step()
        return step

    return [Case(
        f"12. training step, RNN {hidden} neurons x {time_steps} steps",
        {"by hand: loss + penalties in autograd": step_of("by hand"),
         "neuroreg: loss + regs()": step_of("added"),
         "neuroreg: regs attached (joint mode)": step_of("attached"),
         "task alone (floor)": step_of("task")},
        reference="by hand: loss + penalties in autograd",
    )]


def print_table(cases: List[Case], baseline: Optional[dict]) -> None:
    header = (f"{'case':44s} {'implementation':46s} {'median ms':>10s} {'vs ref':>8s} {'Δ µs':>9s} {'peak MiB':>9s} "
              f"{'compile s':>9s}")
    if baseline:
        header += f" {'vs baseline':>11s}"
    print(header)
    print("-" * len(header))
    for case in cases:
        for label, result in case.results.items():
            line = (f"{case.name:44s} {label:46s} {result['median_ms']:10.4f} "
                    f"{result['speedup_vs_reference']:7.2f}x {result['extra_us']:+9.1f} {result['peak_mib']:9.1f} "
                    + (f"{result['compile_s']:9.1f}" if "compile_s" in result else f"{'':9s}"))
            if baseline:
                old = baseline.get(case.name, {}).get(label)
                line += f" {old['median_ms'] / result['median_ms']:10.2f}x" if old else f" {'-':>11s}"
            print(line)
        print()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a smoke run)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--cases", help="comma-separated case numbers to run (default: all), e.g. 1,4,5")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--baseline", help="compare with the results of an earlier --json run")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device here (torch {torch.__version__}, "
                     f"torch.cuda.is_available() is False)")
    repeats = args.repeats or (3 if args.quick else 15)
    torch.manual_seed(0)

    sizes = [256, 512] if args.quick else [512, 1024, 2048, 4096]
    groups = [
        dale_cases(device, sizes),
        l2_case(device, 4 if args.quick else 20, 256 if args.quick else 1024),
        list_case(device, 20 if args.quick else 200),
        loss_cases(device, args.quick),
        spatial_graph_cases(device, args.quick),
        activity_case(device, args.quick),
        prox_case(device, 4 if args.quick else 20, 256 if args.quick else 1024),
        spectral_cases(device, [256] if args.quick else [256, 1024]),
        ensemble_case(device, args.quick),
        direct_call_cases(device, args.quick),
        joint_floor_cases(device, args.quick),
        training_step_case(device, args.quick),
    ]
    cases = [case for group in groups for case in group]
    if args.cases:
        cases = [case for case in cases if case.name.split(".")[0] in args.cases.split(",")]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"neuroreg {nr.__version__}, torch {torch.__version__}, device {device} ({where})")
    print(f"medians of {repeats} interleaved repeats after warm-up; 'vs ref' = reference time / this time\n")
    for case in cases:
        # The trace formula is O(n³): fewer repeats for the largest sizes keep the run short.
        heavy = case.name.startswith("1.") and device.type == "cpu" and "4096" in case.name
        run_case(case, device, repeats=3 if heavy else repeats, warmup=1 if heavy else 3)
        print(f"  done: {case.name}", file=sys.stderr)
    baseline = None
    if args.baseline:
        with open(args.baseline) as handle:
            baseline = json.load(handle)
    print_table(cases, baseline)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({case.name: case.results for case in cases}, handle, indent=1)


if __name__ == "__main__":
    main()
