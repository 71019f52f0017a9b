"""One registry of every regularization class with sample constructions (like torch's ModuleInfo).

Each entry builds a fresh regularization in a given dtype and says how to compute its unweighted value
through :mod:`neuroreg.functional` directly. The generic tests in ``test_base.py`` run over all of it; a new
class adds its entries here, in its section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Tuple

import torch
from torch import Tensor, nn

import neuroreg as nr
from neuroreg import functional as F

Built = Tuple[nr.BaseRegularization, Tuple[Tensor, ...]]


@dataclass(frozen=True)
class RegularizationInfo:
    """A sample construction of a regularization class.

    Attributes:
        id: Test id.
        build: ``build(dtype, seed)`` -> ``(regularization, call_args)``; the same seed gives the same
            parameters, references and inputs.
        reference: ``reference(regularization, call_args)`` -> the unweighted value through the functional API.
        nonnegative: Whether the penalty is >= 0 everywhere.
    """

    id: str
    build: Callable[[torch.dtype, int], Built]
    reference: Callable[[nr.BaseRegularization, Tuple[Tensor, ...]], Tensor]
    nonnegative: bool = True


def make_params(*shapes: Tuple[int, ...], dtype: torch.dtype = torch.float64, seed: int = 0) -> List[nn.Parameter]:
    """Standard-normal Parameters of the given shapes, drawn in float64 then cast (same values in all dtypes)."""
    generator = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)) for shape in shapes]


def held(reg: nr.BaseRegularization) -> List[Tensor]:
    return list(reg.regularized_parameters())


SHAPES = ((4, 3), (5,), (2, 3, 2, 2))

REGISTRY: List[RegularizationInfo] = [
    # --- norms ---------------------------------------------------------------------------------------------
    RegularizationInfo(
        "L1",
        lambda dtype, seed: (nr.L1(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=0.3), ()),
        lambda reg, args: F.lp_norm(held(reg), p=1),
    ),
    RegularizationInfo(
        "L2",
        lambda dtype, seed: (nr.L2(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=0.7), ()),
        lambda reg, args: F.lp_norm(held(reg), p=2),
    ),
    RegularizationInfo(
        "L2-squared",
        lambda dtype, seed: (nr.L2(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=0.7, squared=True), ()),
        lambda reg, args: F.lp_norm(held(reg), p=2, squared=True),
    ),
    RegularizationInfo(
        "Lp-1.5",
        lambda dtype, seed: (nr.Lp(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=2.0, p=1.5), ()),
        lambda reg, args: F.lp_norm(held(reg), p=1.5),
    ),
    RegularizationInfo(
        "Lp-3-squared",
        lambda dtype, seed: (nr.Lp(make_params(*SHAPES, dtype=dtype, seed=seed), p=3, squared=True), ()),
        lambda reg, args: F.lp_norm(held(reg), p=3, squared=True),
    ),
    RegularizationInfo(
        "Lp-inf",
        lambda dtype, seed: (nr.Lp(make_params(*SHAPES, dtype=dtype, seed=seed), p=float("inf")), ()),
        lambda reg, args: F.lp_norm(held(reg), p=float("inf")),
    ),
    RegularizationInfo(
        "RegularizationList",
        lambda dtype, seed: (
            nr.RegularizationList(
                [
                    nr.L1(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=0.5),
                    nr.RegularizationList([nr.L2(make_params((3, 3), dtype=dtype, seed=seed + 1), Lambda=2.0)]),
                ],
                Lambda=1.5,
            ),
            (),
        ),
        lambda reg, args: 0.5 * F.lp_norm(held(reg[0]), p=1) + 2.0 * F.lp_norm(held(reg[1][0]), p=2),
    ),
    # --- connectome ----------------------------------------------------------------------------------------
    # Dale penalties take their references from dale_ with the build's seed, or from given weights.
    RegularizationInfo(
        "DaleLawL2-square-rect",
        lambda dtype, seed: (nr.DaleLawL2(make_params((6, 6), (4, 7), dtype=dtype, seed=seed), alpha=0.8,
                                          Lambda=0.5, inh_ratio=0.25, seed=seed), ()),
        lambda reg, args: F.dale_law_l2(held(reg), reg.reference_signs, alpha=0.8),
        nonnegative=False,
    ),
    RegularizationInfo(
        "DaleLaw-references",
        lambda dtype, seed: (
            nr.DaleLaw(make_params((5, 5), (3, 6), dtype=dtype, seed=seed), Lambda=0.3,
                       reference_weights=[p.detach() for p in make_params((5, 5), (3, 6), seed=seed + 1)]),
            (),
        ),
        lambda reg, args: F.dale_law_l2(held(reg), reg.reference_signs, alpha=0.0),
        nonnegative=False,
    ),
    RegularizationInfo(
        "DaleSignPenalty",
        lambda dtype, seed: (nr.DaleSignPenalty(make_params((6, 6), (4, 7), dtype=dtype, seed=seed), Lambda=2.0,
                                                rho=0.8, inh_first=False, seed=seed), ()),
        lambda reg, args: F.dale_sign_penalty(held(reg), reg.reference_signs, p=2),
    ),
    RegularizationInfo(
        "DaleSignPenalty-p1.5-references",
        lambda dtype, seed: (
            nr.DaleSignPenalty(make_params((4, 5), dtype=dtype, seed=seed), p=1.5,
                               reference_weights=[make_params((4, 5), seed=seed + 1)[0].detach()]),
            (),
        ),
        lambda reg, args: F.dale_sign_penalty(held(reg), reg.reference_signs, p=1.5),
    ),
    RegularizationInfo(
        "DaleLawL2-post-to-pre-neurotorch-draw",
        lambda dtype, seed: (nr.DaleLawL2(make_params((6, 6), (6, 6), dtype=dtype, seed=seed), alpha=0.5,
                                          rho=0.7, inh_first=False, seed=seed, convention="j->i",
                                          draw="neurotorch"), ()),
        lambda reg, args: F.dale_law_l2(held(reg), reg.reference_signs, alpha=0.5),
        nonnegative=False,
    ),
    RegularizationInfo(
        "ExcRatioTarget",
        lambda dtype, seed: (
            nr.ExcRatioTargetRegularization(make_params((8,), (4, 5), dtype=dtype, seed=seed), exc_target_ratio=0.7,
                                            Lambda=0.4),
            (),
        ),
        lambda reg, args: F.exc_ratio_penalty(held(reg), target=0.7),
    ),
    RegularizationInfo(
        "ExcRatioTarget-tanh-autograd",
        lambda dtype, seed: (
            nr.ExcRatioTargetRegularization(make_params((6, 3), dtype=dtype, seed=seed), sign_func=torch.tanh), ()
        ),
        lambda reg, args: F.exc_ratio_penalty(held(reg), target=0.8, sign_func=torch.tanh),
    ),
    RegularizationInfo(
        "InhRatioTarget",
        lambda dtype, seed: (
            nr.InhRatioTargetRegularization(make_params((10,), (3, 3), dtype=dtype, seed=seed), inh_target_ratio=0.3,
                                            Lambda=1.5),
            (),
        ),
        lambda reg, args: F.exc_ratio_penalty(held(reg), target=0.7),
    ),
    RegularizationInfo(
        "WeightsDistance-p1",
        lambda dtype, seed: (
            nr.WeightsDistance(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=0.6,
                               reference_weights=[p.detach() for p in make_params(*SHAPES, seed=seed + 1)]),
            (),
        ),
        lambda reg, args: F.weights_distance(held(reg), reg.reference_weights, p=1),
    ),
    RegularizationInfo(
        "WeightsDistance-p2",
        lambda dtype, seed: (
            nr.WeightsDistance(make_params(*SHAPES, dtype=dtype, seed=seed), p=2,
                               reference_weights=[p.detach() for p in make_params(*SHAPES, seed=seed + 1)]),
            (),
        ),
        lambda reg, args: F.weights_distance(held(reg), reg.reference_weights, p=2),
    ),
    # --- NeuroTorch's matrix norms (norm="matrix") and the spectral-norm penalty -------------------------------
    RegularizationInfo(
        "L2-matrix",
        lambda dtype, seed: (nr.L2(make_params((4, 3), (5,), (), dtype=dtype, seed=seed), norm="matrix"), ()),
        lambda reg, args: F.matrix_norm(held(reg), 2),
    ),
    RegularizationInfo(
        "Lp-matrix-nuc-squared",
        lambda dtype, seed: (
            nr.Lp(make_params((4, 3), (3, 5), dtype=dtype, seed=seed), Lambda=0.4, p="nuc", squared=True,
                  norm="matrix"),
            (),
        ),
        lambda reg, args: F.matrix_norm(held(reg), "nuc", squared=True),
    ),
    RegularizationInfo(
        "L1-matrix-mean",
        lambda dtype, seed: (nr.L1(make_params((4, 3), (5,), dtype=dtype, seed=seed), norm="matrix", reduction="mean"),
                             ()),
        lambda reg, args: sum(F.matrix_norm([t], 1) / t.numel() for t in held(reg)),
    ),
    RegularizationInfo(
        "WeightsDistance-matrix-2",
        lambda dtype, seed: (
            nr.WeightsDistance(make_params((4, 3), (5,), dtype=dtype, seed=seed), p=2, norm="matrix", Lambda=0.8,
                               reference_weights=[p.detach() for p in make_params((4, 3), (5,), seed=seed + 1)]),
            (),
        ),
        lambda reg, args: F.weights_matrix_distance(held(reg), reg.reference_weights, 2),
    ),
    RegularizationInfo(
        "WeightsDistance-matrix-inf-squared",
        lambda dtype, seed: (
            nr.WeightsDistance(make_params((4, 3), dtype=dtype, seed=seed), p=float("inf"), norm="matrix",
                               squared=True,
                               reference_weights=[p.detach() for p in make_params((4, 3), seed=seed + 1)]),
            (),
        ),
        lambda reg, args: F.weights_matrix_distance(held(reg), reg.reference_weights, float("inf"), squared=True),
    ),
    RegularizationInfo(
        "SpectralNorm",
        lambda dtype, seed: (nr.SpectralNorm(make_params((6, 6), (4, 7), dtype=dtype, seed=seed), Lambda=0.5), ()),
        lambda reg, args: sum(F.spectral_norm_estimate(w, u, v) for w, u, v in
                              zip(held(reg), reg._regularized_buffers("u"), reg._regularized_buffers("v"))),
    ),
    RegularizationInfo(
        "SpectralNorm-hinge",
        lambda dtype, seed: (
            nr.SpectralNorm(make_params((6, 6), (4, 7), dtype=dtype, seed=seed), target=1.0, n_power_iterations=2), ()
        ),
        lambda reg, args: F.spectral_hinge([F.spectral_norm_estimate(w, u, v) for w, u, v in zip(
            held(reg), reg._regularized_buffers("u"), reg._regularized_buffers("v"))], 1.0),
    ),
    RegularizationInfo(
        "SpectralNorm-exact-hinge",
        lambda dtype, seed: (
            nr.SpectralNorm(make_params((6, 6), (4, 7), dtype=dtype, seed=seed), Lambda=2.0, target=1.5, exact=True), ()
        ),
        lambda reg, args: F.spectral_hinge([F.matrix_norm([w], 2) for w in held(reg)], 1.5),
    ),
    # --- update modes and reductions (the value is the same whatever the update) ------------------------------
    RegularizationInfo(
        "L1-proximal",
        lambda dtype, seed: (nr.L1(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=0.3, update="proximal"), ()),
        lambda reg, args: F.lp_norm(held(reg), p=1),
    ),
    RegularizationInfo(
        "L2-squared-decoupled",
        lambda dtype, seed: (
            nr.L2(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=0.7, squared=True, update="decoupled"), ()
        ),
        lambda reg, args: F.lp_norm(held(reg), p=2, squared=True),
    ),
    RegularizationInfo(
        "L1-mean",
        lambda dtype, seed: (nr.L1(make_params(*SHAPES, (4, 3), dtype=dtype, seed=seed), reduction="mean"), ()),
        lambda reg, args: sum(F.lp_norm([t], p=1) / t.numel() for t in held(reg)),
    ),
    RegularizationInfo(
        "L2-squared-proximal-mean",
        lambda dtype, seed: (
            nr.L2(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=2.0, squared=True, update="proximal",
                  reduction="mean"),
            (),
        ),
        lambda reg, args: sum(F.lp_norm([t], p=2, squared=True) / t.numel() for t in held(reg)),
    ),
    RegularizationInfo(
        "WeightsDistance-p2-squared-decoupled-mean",
        lambda dtype, seed: (
            nr.WeightsDistance(make_params(*SHAPES, dtype=dtype, seed=seed), p=2, squared=True, update="decoupled",
                               reduction="mean",
                               reference_weights=[p.detach() for p in make_params(*SHAPES, seed=seed + 1)]),
            (),
        ),
        lambda reg, args: sum(F.weights_distance([t], [r], p=2, squared=True) / t.numel()
                              for t, r in zip(held(reg), reg.reference_weights)),
    ),
    RegularizationInfo(
        "DaleSignPenalty-p1-proximal-mean",
        lambda dtype, seed: (
            nr.DaleSignPenalty(make_params((6, 6), (4, 7), dtype=dtype, seed=seed), p=1, seed=seed, update="proximal",
                               reduction="mean"),
            (),
        ),
        lambda reg, args: sum(F.dale_sign_penalty([t], [s], p=1) / t.numel()
                              for t, s in zip(held(reg), reg.reference_signs)),
    ),
    RegularizationInfo(
        "DaleLawL2-mean",
        lambda dtype, seed: (
            nr.DaleLawL2(make_params((6, 6), (4, 7), dtype=dtype, seed=seed), alpha=0.6, seed=seed, reduction="mean"),
            (),
        ),
        lambda reg, args: sum(F.dale_law_l2([t], [s], alpha=0.6) / t.numel()
                              for t, s in zip(held(reg), reg.reference_signs)),
        nonnegative=False,
    ),
    # --- losses --------------------------------------------------------------------------------------------
    # Call-time inputs are Parameters too, so that the penalty has a gradient to check.
    RegularizationInfo(
        "EquilibriumLoss-inputs",
        lambda dtype, seed: (nr.EquilibriumLoss(Lambda=0.5), tuple(make_params((2, 4, 6), dtype=dtype, seed=seed))),
        lambda reg, args: F.equilibrium(args[0]).square().mean(),
    ),
    RegularizationInfo(
        "EquilibriumLoss-held-axes",
        lambda dtype, seed: (
            nr.EquilibriumLoss(make_params((6, 5), dtype=dtype, seed=seed), level_axis=0, instance_axes=(0, 1)),
            (),
        ),
        lambda reg, args: F.equilibrium(held(reg)[0], level_axis=0, instance_axes=(0, 1)).square().mean(),
    ),
    RegularizationInfo(
        "EquilibriumLogitLoss-inputs",
        lambda dtype, seed: (nr.EquilibriumLogitLoss(nu=2.0), tuple(make_params((3, 5, 7), dtype=dtype, seed=seed))),
        lambda reg, args: F.equilibrium_logit(args[0]).mean(),
    ),
    RegularizationInfo(
        "EquilibriumLogitLoss-held",
        lambda dtype, seed: (
            nr.EquilibriumLogitLoss(make_params((4, 10), (2, 3, 8), dtype=dtype, seed=seed), Lambda=0.7),
            (),
        ),
        lambda reg, args: sum(F.equilibrium_logit(p).mean() for p in held(reg)),
    ),
    RegularizationInfo(
        "JSDivergenceLoss-inputs",
        lambda dtype, seed: (
            nr.JSDivergenceLoss(Lambda=3.0),
            tuple(p.softmax(-1) for p in make_params((4, 6), (4, 6), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.js_divergence(*args, keepdims=False).mean(),
    ),
    RegularizationInfo(
        "JSDivergenceLoss-held",
        lambda dtype, seed: (
            nr.JSDivergenceLoss(
                [nn.Parameter(p.detach().softmax(-1)) for p in make_params((3, 5), (2, 2, 5), dtype=dtype, seed=seed)],
                Lambda=0.5,
                target=make_params((5,), dtype=dtype, seed=seed + 1)[0].detach().softmax(-1),
            ),
            (),
        ),
        lambda reg, args: sum(F.js_divergence(p, reg.target, keepdims=False).mean() for p in held(reg)),
    ),
    RegularizationInfo(
        "JSDivergenceLogitLoss-inputs-axis0",
        lambda dtype, seed: (
            nr.JSDivergenceLogitLoss(axis=0),
            tuple(make_params((5, 3), (5, 3), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.js_divergence_logit(*args, axis=0).mean(),
    ),
    RegularizationInfo(
        "JSDivergenceLogitLoss-held",
        lambda dtype, seed: (
            nr.JSDivergenceLogitLoss(
                make_params((4, 6), (2, 3, 6), dtype=dtype, seed=seed),
                Lambda=1.5,
                target=make_params((6,), dtype=dtype, seed=seed + 1)[0].detach(),
            ),
            (),
        ),
        lambda reg, args: sum(F.js_divergence_logit(p, reg.target).mean() for p in held(reg)),
    ),
    RegularizationInfo(
        "SmoothnessLoss-inputs",
        lambda dtype, seed: (
            nr.SmoothnessLoss(n=2, pad_value=0.5, axis=0),
            tuple(make_params((6, 3), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.smoothness(args[0], n=2, pad_value=0.5, axis=0).abs().sum(),
    ),
    RegularizationInfo(
        "SmoothnessLoss-held",
        lambda dtype, seed: (nr.SmoothnessLoss(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=0.3), ()),
        lambda reg, args: sum(F.smoothness(p).abs().sum() for p in held(reg)),
    ),
    RegularizationInfo(
        "BatchCorrelationLoss-inputs",
        lambda dtype, seed: (
            nr.BatchCorrelationLoss(),
            tuple(make_params((8, 3, 2), (8,), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.batch_corr(*args).mean(),
    ),
    RegularizationInfo(
        "BatchCorrelationLoss-signed",
        lambda dtype, seed: (
            nr.BatchCorrelationLoss(tol=0.1, abs=False, scalarisation=nr.scalarise.sum_scalarise()),
            tuple(make_params((8, 4), (8,), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.batch_corr(*args, tol=0.1, abs=False).sum(),
        nonnegative=False,
    ),
    RegularizationInfo(
        "BatchCorrelationLoss-held-auto",
        lambda dtype, seed: (
            nr.BatchCorrelationLoss(
                make_params((12, 5), dtype=dtype, seed=seed),
                tol="auto",
                tol_sig=0.5,
                target=make_params((12,), dtype=dtype, seed=seed + 1)[0].detach(),
            ),
            (),
        ),
        lambda reg, args: F.batch_corr(held(reg)[0], reg.target, tol="auto", tol_sig=0.5).mean(),
    ),
    # --- activity ------------------------------------------------------------------------------------------
    # On activity given at call time (Parameters, so that the penalty has a gradient to check; rates from
    # sigmoids, in (0, 1)). Recording from a model's own forward is tested in tests/test_activity.py.
    RegularizationInfo(
        "ActivityL1-inputs",
        lambda dtype, seed: (nr.ActivityL1(None, Lambda=0.3), tuple(make_params((4, 6, 5), dtype=dtype, seed=seed))),
        lambda reg, args: F.activity_l1(args[0]),
    ),
    RegularizationInfo(
        "ActivityL2-mean-pooled",
        lambda dtype, seed: (
            nr.ActivityL2(None, Lambda=2.0, reduction="mean"),
            tuple(make_params((4, 5), (4, 5), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.activity_l2(list(args), reduction="mean"),
    ),
    RegularizationInfo(
        "FiringRateRange-inputs",
        lambda dtype, seed: (
            nr.FiringRateRange(None, Lambda=5.0, low=0.45, high=0.55),
            tuple(nn.Parameter(p.detach().sigmoid()) for p in make_params((8, 10, 6), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.firing_rate_range(args[0], 0.45, 0.55),
    ),
    RegularizationInfo(
        "FiringRateRange-per-trial-mean",
        lambda dtype, seed: (
            nr.FiringRateRange(None, Lambda=2.0, low=0.5, high=0.9, time_axis=1, reduction="mean"),
            tuple(nn.Parameter(p.detach().sigmoid()) for p in make_params((4, 10, 3), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.firing_rate_range(args[0], 0.5, 0.9, time_axis=1, reduction="mean"),
    ),
    RegularizationInfo(
        "FiringRateKL-inputs",
        lambda dtype, seed: (
            nr.FiringRateKL(None, Lambda=0.4, target=0.3, eps=1e-4),
            tuple(nn.Parameter(p.detach().sigmoid()) for p in make_params((8, 10, 6), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.firing_rate_kl(args[0], 0.3, eps=1e-4),
    ),
]


# --- hypercoil's spatial, moment and connectopic losses ------------------------------------------------------
# Masses, weights and adjacency matrices are positive (as parcellations and graphs are), coordinates on
# hypercoil's sphere of radius 100 unless Euclidean; inputs given at call time are Parameters.
def positive(*shapes: Tuple[int, ...], dtype: torch.dtype, seed: int) -> List[nn.Parameter]:
    return [nn.Parameter(p.detach().abs() + 0.1) for p in make_params(*shapes, dtype=dtype, seed=seed)]


def on_sphere(n: int, dtype: torch.dtype, seed: int) -> Tensor:
    points = make_params((3, n), seed=seed)[0].detach()
    return (100 * points / points.norm(dim=0)).to(dtype)


def graph(n: int, dtype: torch.dtype, seed: int) -> Tensor:
    weights = positive((n, n), dtype=torch.float64, seed=seed)[0].detach()
    return (weights + weights.T).to(dtype)


# The mean distance (hypercoil's examples' reduction of a tether): its signed mean cancels to near 0, where
# bfloat16's rounding of coordinates near 100 is too large a part of it.
DISTANCE = nr.scalarise.mean_scalarise(inner=nr.scalarise.vnorm_scalarise(axis=0))

REGISTRY += [
    RegularizationInfo(
        "CompactnessLoss-inputs-sphere",
        lambda dtype, seed: (nr.CompactnessLoss(coor=on_sphere(30, dtype, seed + 1)),
                             tuple(positive((4, 30), dtype=dtype, seed=seed))),
        lambda reg, args: F.compactness(args[0], reg.coor).mean(),
    ),
    RegularizationInfo(
        "CompactnessLoss-held-euclidean-norm1-floor",
        lambda dtype, seed: (
            nr.CompactnessLoss(positive((3, 20), (2, 20), dtype=dtype, seed=seed), Lambda=0.4, radius=None, norm=1,
                               floor=0.05, coor=make_params((2, 20), dtype=dtype, seed=seed + 1)[0].detach()),
            (),
        ),
        lambda reg, args: sum(F.compactness(p, reg.coor, norm=1, floor=0.05, radius=None).mean() for p in held(reg)),
    ),
    RegularizationInfo(
        "ReferenceTetherLoss-inputs-euclidean",
        lambda dtype, seed: (
            nr.ReferenceTetherLoss(coor=make_params((3, 25), dtype=dtype, seed=seed + 1)[0].detach(), radius=None),
            (*positive((4, 25), dtype=dtype, seed=seed), *make_params((3, 4), dtype=dtype, seed=seed + 2)),
        ),
        lambda reg, args: F.reference_tether(args[0], args[1], reg.coor, radius=None).mean(),
        nonnegative=False,
    ),
    RegularizationInfo(
        "ReferenceTetherLoss-held-sphere-distance",
        lambda dtype, seed: (
            nr.ReferenceTetherLoss(
                positive((4, 25), dtype=dtype, seed=seed), ref=on_sphere(4, dtype, seed + 2),
                coor=on_sphere(25, dtype, seed + 1),
                scalarisation=DISTANCE,
            ),
            (),
        ),
        lambda reg, args: F.reference_tether(held(reg)[0], reg.ref, reg.coor).norm(dim=-2).mean(),
    ),
    RegularizationInfo(
        "InterhemisphericTetherLoss-inputs",
        lambda dtype, seed: (
            nr.InterhemisphericTetherLoss(lh_coor=on_sphere(20, dtype, seed + 1),
                                          rh_coor=on_sphere(24, dtype, seed + 2), scalarisation=DISTANCE),
            tuple(positive((3, 20), (3, 24), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.interhemispheric_tether(*args, reg.lh_coor, reg.rh_coor).norm(dim=0).mean(),
    ),
    RegularizationInfo(
        "InterhemisphericTetherLoss-held-pair",
        lambda dtype, seed: (
            nr.InterhemisphericTetherLoss(positive((3, 20), (3, 24), dtype=dtype, seed=seed), Lambda=0.2,
                                          lh_coor=on_sphere(20, dtype, seed + 1),
                                          rh_coor=on_sphere(24, dtype, seed + 2), scalarisation=DISTANCE),
            (),
        ),
        lambda reg, args: F.interhemispheric_tether(*held(reg), reg.lh_coor, reg.rh_coor).norm(dim=0).mean(),
    ),
    RegularizationInfo(
        "DispersionLoss-inputs",
        lambda dtype, seed: (nr.DispersionLoss(Lambda=0.5), tuple(make_params((5, 3), dtype=dtype, seed=seed))),
        lambda reg, args: F.dispersion(args[0]).mean(),
        nonnegative=False,
    ),
    RegularizationInfo(
        "DispersionLoss-held-closed-form",
        lambda dtype, seed: (nr.DispersionLoss(make_params((6, 2), (2, 4, 3), dtype=dtype, seed=seed), Lambda=0.3), ()),
        lambda reg, args: sum(F.dispersion(p).mean() for p in held(reg)),
        nonnegative=False,
    ),
    RegularizationInfo(
        "SecondMomentLoss-inputs",
        lambda dtype, seed: (
            nr.SecondMomentLoss(),
            (*make_params((10, 6), dtype=dtype, seed=seed), *positive((3, 10), dtype=dtype, seed=seed + 1)),
        ),
        lambda reg, args: F.second_moment(*args).mean(),
    ),
    RegularizationInfo(
        "SecondMomentLoss-held-standardise-skip",
        lambda dtype, seed: (
            nr.SecondMomentLoss(positive((3, 10), dtype=dtype, seed=seed), standardise=True, skip_normalise=True,
                                X=make_params((10, 6), dtype=dtype, seed=seed + 1)[0].detach()),
            (),
        ),
        lambda reg, args: F.second_moment(reg.X, held(reg)[0], standardise=True, skip_normalise=True).mean(),
    ),
    RegularizationInfo(
        "SecondMomentCentredLoss-inputs-standardise-mu",
        lambda dtype, seed: (
            nr.SecondMomentCentredLoss(standardise_mu=True),
            (*make_params((10, 6), dtype=dtype, seed=seed), *positive((3, 10), dtype=dtype, seed=seed + 1),
             *make_params((3, 6), dtype=dtype, seed=seed + 2)),
        ),
        lambda reg, args: F.second_moment_centred(*args, standardise_mu=True).mean(),
    ),
    RegularizationInfo(
        "QCFCLoss-inputs",
        lambda dtype, seed: (nr.QCFCLoss(tol=0.05), tuple(make_params((8, 5), (8,), dtype=dtype, seed=seed))),
        lambda reg, args: F.qcfc(*args, tol=0.05).mean(),
    ),
    RegularizationInfo(
        "MultivariateKurtosis-inputs",
        lambda dtype, seed: (nr.MultivariateKurtosis(), tuple(make_params((3, 40), dtype=dtype, seed=seed))),
        lambda reg, args: F.multivariate_kurtosis(args[0]).mean(),
        nonnegative=False,
    ),
    RegularizationInfo(
        "MultivariateKurtosis-held-l2-scaled",
        lambda dtype, seed: (
            nr.MultivariateKurtosis(make_params((2, 3, 30), dtype=dtype, seed=seed), l2=0.1, dimensional_scaling=True),
            (),
        ),
        lambda reg, args: F.multivariate_kurtosis(held(reg)[0], l2=0.1, dimensional_scaling=True).mean(),
        nonnegative=False,
    ),
    RegularizationInfo(
        "ConnectopyLoss-inputs",
        lambda dtype, seed: (
            nr.ConnectopyLoss(),
            (*make_params((8, 2), dtype=dtype, seed=seed), nn.Parameter(graph(8, dtype, seed + 1))),
        ),
        lambda reg, args: F.connectopy(*args).mean(),
    ),
    RegularizationInfo(
        "ConnectopyLoss-held-progressive-D",
        lambda dtype, seed: (
            nr.ConnectopyLoss(make_params((8, 3), dtype=dtype, seed=seed), progressive_theta=True,
                              A=graph(8, dtype, seed + 1),
                              D=make_params((8, 8), dtype=dtype, seed=seed + 2)[0].detach()),
            (),
        ),
        lambda reg, args: F.connectopy(held(reg)[0], reg.A, reg.D, progressive_theta=True).mean(),
        nonnegative=False,
    ),
    RegularizationInfo(
        "ModularityLoss-inputs",
        lambda dtype, seed: (
            nr.ModularityLoss(gamma=0.5),
            (*positive((8, 3), dtype=dtype, seed=seed), nn.Parameter(graph(8, dtype, seed + 1))),
        ),
        lambda reg, args: F.modularity(*args, gamma=0.5).mean(),
        nonnegative=False,
    ),
    RegularizationInfo(
        "ModularityLoss-held-theta",
        lambda dtype, seed: (
            nr.ModularityLoss(positive((8, 3), dtype=dtype, seed=seed), Lambda=2.0, A=graph(8, dtype, seed + 1),
                              theta=positive((3, 3), dtype=dtype, seed=seed + 2)[0].detach(), exclude_diag=False),
            (),
        ),
        lambda reg, args: F.modularity(held(reg)[0], reg.A, theta=reg.theta, exclude_diag=False).mean(),
        nonnegative=False,
    ),
    RegularizationInfo(
        "EigenmapsLoss-inputs",
        lambda dtype, seed: (
            nr.EigenmapsLoss(),
            (*make_params((8, 2), dtype=dtype, seed=seed), nn.Parameter(graph(8, dtype, seed + 1))),
        ),
        lambda reg, args: F.eigenmaps(*args).mean(),
        nonnegative=False,
    ),
    RegularizationInfo(
        "EigenmapsLoss-held-unnormalised-theta",
        lambda dtype, seed: (
            nr.EigenmapsLoss(make_params((8, 2), dtype=dtype, seed=seed), normalise=False, A=graph(8, dtype, seed + 1),
                             theta=positive((2,), dtype=dtype, seed=seed + 2)[0].detach()),
            (),
        ),
        lambda reg, args: F.eigenmaps(held(reg)[0], reg.A, reg.theta, normalise=False).mean(),
        nonnegative=False,
    ),
]


# --- hypercoil's elementary, information, Gram and Bregman losses, and its scheme -------------------------------
def probabilities(*shapes: Tuple[int, ...], dtype: torch.dtype, seed: int, axis: int = -1) -> List[Tensor]:
    return [p.detach().softmax(axis).requires_grad_() for p in make_params(*shapes, dtype=dtype, seed=seed)]


def convex(x: Tensor) -> Tensor:
    """A strictly convex function of one slice, for the Bregman divergences."""
    return x.exp().sum() + x.square().sum()


REGISTRY += [
    RegularizationInfo(
        "MSELoss-inputs",
        lambda dtype, seed: (nr.MSELoss(Lambda=0.5), tuple(make_params((4, 5), (4, 5), dtype=dtype, seed=seed))),
        lambda reg, args: F.difference(*args).square().mean(),
    ),
    RegularizationInfo(
        "MSELoss-held",
        lambda dtype, seed: (
            nr.MSELoss(make_params((3, 4), (2, 4), dtype=dtype, seed=seed),
                       target=make_params((4,), dtype=dtype, seed=seed + 1)[0].detach()),
            (),
        ),
        lambda reg, args: sum(F.difference(p, reg.target).square().mean() for p in held(reg)),
    ),
    RegularizationInfo(
        "NormedLoss-inputs-p1.5-axis",
        lambda dtype, seed: (nr.NormedLoss(p=1.5, axis=-1), tuple(make_params((4, 6), dtype=dtype, seed=seed))),
        lambda reg, args: torch.linalg.vector_norm(args[0], ord=1.5, dim=-1).mean(),
    ),
    RegularizationInfo(
        "NormedLoss-held",
        lambda dtype, seed: (nr.NormedLoss(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=0.3), ()),
        lambda reg, args: sum(torch.linalg.vector_norm(p) for p in held(reg)),
    ),
    RegularizationInfo(
        "ConstraintViolationLoss-inputs-broadcast",
        lambda dtype, seed: (
            nr.ConstraintViolationLoss(
                constraints=(lambda x: x - 0.5, lambda x: -x.sum(-1, keepdim=True) - 1), broadcast_against_input=True
            ),
            tuple(make_params((5, 3), dtype=dtype, seed=seed)),
        ),
        lambda reg, args: F.constraint_violation(
            args[0], constraints=reg.options["constraints"], broadcast_against_input=True
        ).mean(),
    ),
    RegularizationInfo(
        "UnilateralLoss-held",
        lambda dtype, seed: (nr.UnilateralLoss(make_params(*SHAPES, dtype=dtype, seed=seed), Lambda=2.0), ()),
        lambda reg, args: sum(F.unilateral_loss(p).mean() for p in held(reg)),
    ),
    RegularizationInfo(
        "HingeLoss-inputs",
        lambda dtype, seed: (nr.HingeLoss(), tuple(make_params((8,), (8,), dtype=dtype, seed=seed))),
        lambda reg, args: F.hinge_loss(*args).sum(),
    ),
    RegularizationInfo(
        "HingeLoss-held-mean",
        lambda dtype, seed: (
            nr.HingeLoss(make_params((6, 4), dtype=dtype, seed=seed), scalarisation=nr.scalarise.mean_scalarise(),
                         target=torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=dtype)),
            (),
        ),
        lambda reg, args: F.hinge_loss(held(reg)[0], reg.target).mean(),
    ),
    RegularizationInfo(
        "BimodalSymmetricLoss-inputs-modes",
        lambda dtype, seed: (
            nr.BimodalSymmetricLoss(modes=(-1, 1)), tuple(make_params((5, 4), dtype=dtype, seed=seed))
        ),
        lambda reg, args: F.bimodal_symmetric(args[0], modes=(-1, 1)).mean(),
    ),
    RegularizationInfo(
        "BimodalSymmetricLoss-held",
        lambda dtype, seed: (nr.BimodalSymmetricLoss(make_params(*SHAPES, dtype=dtype, seed=seed), nu=0.5), ()),
        lambda reg, args: sum(F.bimodal_symmetric(p).mean() for p in held(reg)),
    ),
    RegularizationInfo(
        "GramLogDeterminantLoss-inputs-psi",
        lambda dtype, seed: (nr.GramLogDeterminantLoss(psi=0.1), tuple(make_params((2, 4, 9), dtype=dtype, seed=seed))),
        lambda reg, args: F.log_det_gram(args[0], psi=0.1).mean(),
        nonnegative=False,
    ),
    RegularizationInfo(
        "GramDeterminantLoss-held-linear-theta",
        lambda dtype, seed: (
            nr.GramDeterminantLoss(make_params((3, 5), dtype=dtype, seed=seed), op=F.linear_kernel, psi=1.0,
                                   theta=torch.linspace(0.5, 1.5, 5, dtype=dtype)),
            (),
        ),
        lambda reg, args: F.det_gram(held(reg)[0], reg.theta, op=F.linear_kernel, psi=1.0),
        nonnegative=False,
    ),
    RegularizationInfo(
        "EntropyLoss-inputs-axis0-keepdims",
        lambda dtype, seed: (nr.EntropyLoss(axis=0, keepdims=True),
                             tuple(probabilities((6, 4), dtype=dtype, seed=seed, axis=0))),
        lambda reg, args: F.entropy(args[0], axis=0).mean(),
    ),
    RegularizationInfo(
        "EntropyLoss-held",
        lambda dtype, seed: (
            nr.EntropyLoss(
                [nn.Parameter(p.detach()) for p in probabilities((3, 5), (2, 2, 5), dtype=dtype, seed=seed)]
            ),
            (),
        ),
        lambda reg, args: sum(F.entropy(p).mean() for p in held(reg)),
    ),
    RegularizationInfo(
        "EntropyLogitLoss-inputs-two-axes",
        lambda dtype, seed: (
            nr.EntropyLogitLoss(axis=(0, 1), nu=2.0), tuple(make_params((3, 4, 2), dtype=dtype, seed=seed))
        ),
        lambda reg, args: F.entropy_logit(args[0], axis=(0, 1)).mean(),
    ),
    RegularizationInfo(
        "EntropyLogitLoss-held-parcels",
        lambda dtype, seed: (nr.EntropyLogitLoss(make_params((6, 10), dtype=dtype, seed=seed), axis=-2), ()),
        lambda reg, args: F.entropy_logit(held(reg)[0], axis=-2).mean(),
    ),
    RegularizationInfo(
        "KLDivergenceLoss-inputs",
        lambda dtype, seed: (
            nr.KLDivergenceLoss(Lambda=3.0), tuple(probabilities((4, 6), (4, 6), dtype=dtype, seed=seed))
        ),
        lambda reg, args: F.kl_divergence(*args).mean(),
    ),
    RegularizationInfo(
        "KLDivergenceLogitLoss-held",
        lambda dtype, seed: (
            nr.KLDivergenceLogitLoss(make_params((4, 6), (2, 3, 6), dtype=dtype, seed=seed), axis=-1,
                                     target=make_params((6,), dtype=dtype, seed=seed + 1)[0].detach()),
            (),
        ),
        lambda reg, args: sum(F.kl_divergence_logit(p, reg.target).mean() for p in held(reg)),
    ),
    RegularizationInfo(
        "BregmanDivergenceLoss-inputs",
        lambda dtype, seed: (nr.BregmanDivergenceLoss(f=convex, f_dim=1),
                             tuple(make_params((3, 4), (3, 4), dtype=dtype, seed=seed))),
        lambda reg, args: F.bregman_divergence(*args, f=convex, f_dim=1).mean(),
    ),
    RegularizationInfo(
        "BregmanDivergenceLogitLoss-held-f_dim2",
        lambda dtype, seed: (
            nr.BregmanDivergenceLogitLoss(make_params((2, 3, 4), dtype=dtype, seed=seed), f=convex, f_dim=2,
                                          target=make_params((3, 4), dtype=dtype, seed=seed + 1)[0].detach()),
            (),
        ),
        lambda reg, args: F.bregman_divergence_logit(held(reg)[0], reg.target, f=convex, f_dim=2).mean(),
    ),
    # A scheme on call-time inputs is tested in test_scheme.py: the generic gradcheck calls a list without them.
    RegularizationInfo(
        "LossScheme-held-apply",
        lambda dtype, seed: (
            nr.LossScheme(
                [nr.LossApply(nr.EntropyLogitLoss(make_params((5, 7), dtype=dtype, seed=seed), Lambda=0.5)),
                 nr.EquilibriumLogitLoss(make_params((4, 6), dtype=dtype, seed=seed + 1))],
                Lambda=2.0,
            ),
            (),
        ),
        lambda reg, args: (
            0.5 * F.entropy_logit(held(reg[0].loss)[0]).mean() + F.equilibrium_logit(held(reg[1])[0]).mean()
        ),
    ),
    RegularizationInfo(
        "LossScheme-held",
        lambda dtype, seed: (
            nr.LossScheme([nr.EntropyLogitLoss(make_params((4, 6), dtype=dtype, seed=seed), axis=0),
                           nr.BimodalSymmetricLoss(make_params((5,), dtype=dtype, seed=seed + 1), Lambda=3.0)]),
            (),
        ),
        lambda reg, args: (
            F.entropy_logit(held(reg)[0], axis=0).mean() + 3.0 * F.bimodal_symmetric(held(reg)[1]).mean()
        ),
    ),
]
