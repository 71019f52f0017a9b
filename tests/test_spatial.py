"""Spatial losses (hypercoil's reference_tether, interhemispheric_tether, compactness, dispersion) and their
geometry (cmass_coor, spherical_geodesic, linear_distance, sym2vec): hypercoil's own tests translated, NumPy
references for every option, gradients, bad input, held parameters, and parity with hypercoil where it
imports."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg.functional import (
    cmass_coor,
    compactness,
    dispersion,
    dispersion_add_grad_,
    interhemispheric_tether,
    linear_distance,
    reference_tether,
    spherical_geodesic,
    sym2vec,
)
from neuroreg.scalarise import mean_scalarise, vnorm_scalarise


def uniform(*shape: int, seed: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- NumPy references (independent formulas: arccos of normalised dot products, loops over pairs) ----------
def np_cmass(X: np.ndarray, coor: np.ndarray, radius=None) -> np.ndarray:
    centres = np.stack([(coor * row).sum(-1) / row.sum() for row in X], axis=-1)  # (D, W)
    return centres if radius is None else radius * centres / np.linalg.norm(centres, axis=0)


def np_geodesic(a: np.ndarray, b: np.ndarray, r: float) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return r * np.arccos(np.clip(a @ b.T, -1, 1))


def np_compactness(X, coor, norm=2, floor=0.0, radius=100.0) -> np.ndarray:
    centres = np_cmass(X, coor, radius)
    if radius is None:
        distance = np.array([[np.linalg.norm(centres[:, w] - coor[:, v], ord=norm) for v in range(coor.shape[1])]
                             for w in range(X.shape[0])])
    else:
        distance = np_geodesic(centres.T, coor.T, radius)
    return (X * np.maximum(distance - floor, 0)).mean(-1)


def sphere(n: int, seed: int, radius: float = 100.0) -> torch.Tensor:
    points = torch.randn(3, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return radius * points / points.norm(dim=0)


# --- hypercoil's tests, translated ----------------------------------------------------------------------
def test_hypercoil_spatial_losses() -> None:
    # hypercoil's test_spatial_losses (smoke tests there): the same shapes, with values checked here.
    data, coor, coor_ref = uniform(5, 100, seed=0), uniform(3, 100, seed=1), uniform(3, 5, seed=2)
    value = mean_scalarise()(reference_tether)(data, coor_ref, coor)
    expected = (np_cmass(data.numpy(), coor.numpy(), 100.0) - coor_ref.numpy()).mean()
    torch.testing.assert_close(value, torch.tensor(expected, dtype=torch.float64))

    lh, rh = uniform(5, 100, seed=3), uniform(5, 100, seed=4)
    lh_coor, rh_coor = uniform(3, 100, seed=5), uniform(3, 100, seed=6)
    value = mean_scalarise()(interhemispheric_tether)(lh, rh, lh_coor, rh_coor)
    mirror = np_cmass(lh.numpy(), lh_coor.numpy(), 100.0) * np.array([[-1.0], [1.0], [1.0]])
    expected = (np_cmass(rh.numpy(), rh_coor.numpy(), 100.0) - mirror).mean()
    torch.testing.assert_close(value, torch.tensor(expected, dtype=torch.float64))

    value = mean_scalarise()(compactness)(data, coor)
    expected = np_compactness(data.numpy(), coor.numpy()).mean()
    torch.testing.assert_close(value, torch.tensor(expected, dtype=torch.float64))

    centres = uniform(3, 5, seed=7)
    value = mean_scalarise()(dispersion)(centres.T)
    points = centres.T.numpy()
    expected = -np.mean([((points[i] - points[j]) ** 2).sum() for i in range(5) for j in range(i + 1, 5)])
    torch.testing.assert_close(value, torch.tensor(expected, dtype=torch.float64))


def test_hypercoil_spatial_modules_wrap_their_functionals() -> None:
    # hypercoil's test_loss_modules, spatial part: every way of giving ref/coor gives the functional's value.
    coor_ref, data_lh, data_rh = uniform(3, 5, seed=0), uniform(5, 100, seed=1), uniform(5, 100, seed=2)
    coor_lh, coor_rh = uniform(3, 100, seed=3), uniform(3, 100, seed=4)
    ref = mean_scalarise()(reference_tether)(data_lh, ref=coor_ref, coor=coor_lh)
    torch.testing.assert_close(nr.ReferenceTetherLoss(ref=coor_ref, coor=coor_lh)(data_lh), ref)
    torch.testing.assert_close(nr.ReferenceTetherLoss(coor=coor_lh)(data_lh, ref=coor_ref), ref)
    torch.testing.assert_close(nr.ReferenceTetherLoss()(data_lh, ref=coor_ref, coor=coor_lh), ref)

    ref = mean_scalarise()(interhemispheric_tether)(data_lh, data_rh, coor_lh, coor_rh)
    torch.testing.assert_close(nr.InterhemisphericTetherLoss(lh_coor=coor_lh, rh_coor=coor_rh)(data_lh, data_rh), ref)
    torch.testing.assert_close(nr.InterhemisphericTetherLoss()(data_lh, data_rh, lh_coor=coor_lh, rh_coor=coor_rh),
                               ref)

    ref = mean_scalarise()(compactness)(data_lh, coor_lh, norm="inf", floor=0.05)
    torch.testing.assert_close(nr.CompactnessLoss(norm="inf", floor=0.05)(data_lh, coor_lh), ref)
    torch.testing.assert_close(torch.tensor(np_compactness(data_lh.numpy(), coor_lh.numpy(), floor=0.05).mean()), ref)

    ref = mean_scalarise()(dispersion)(coor_lh.T, metric=linear_distance)
    torch.testing.assert_close(nr.DispersionLoss(metric=linear_distance)(coor_lh.T), ref)


# --- every option against NumPy -------------------------------------------------------------------------
@pytest.mark.parametrize("norm", [1, 2, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("floor", [0.0, 0.2])
def test_compactness_in_euclidean_space_uses_the_documented_norm_and_floor(norm, floor) -> None:
    X, coor = uniform(4, 30, seed=0), uniform(2, 30, seed=1)
    value = compactness(X, coor, norm=norm, floor=floor, radius=None)
    order = math.inf if norm == "inf" else norm
    torch.testing.assert_close(value, torch.from_numpy(np_compactness(X.numpy(), coor.numpy(), order, floor, None)))


def test_compactness_of_a_batch_checks_the_coordinates_against_the_locations() -> None:
    # X of shape (batch 2, parcels 4, locations 30): coor has one column per location, the last axis of X.
    X, coor = uniform(2, 4, 30, seed=0), uniform(2, 30, seed=1)
    value = compactness(X, coor, radius=None)
    expected = np.stack([np_compactness(x, coor.numpy(), 2, 0.0, None) for x in X.numpy()])
    torch.testing.assert_close(value, torch.from_numpy(expected))


@pytest.mark.parametrize("radius", [1.0, 50.0])
def test_compactness_on_the_sphere_is_geodesic_and_scales_with_the_radius(radius) -> None:
    X, coor = uniform(3, 40, seed=0), sphere(40, seed=1, radius=radius)
    value = compactness(X, coor, radius=radius, floor=0.01 * radius, norm=1)  # norm ignored on the sphere
    expected = np_compactness(X.numpy(), coor.numpy(), floor=0.01 * radius, radius=radius)
    torch.testing.assert_close(value, torch.from_numpy(expected))


def test_a_compact_parcel_scores_lower_than_a_diffuse_one() -> None:
    coor = sphere(200, seed=0)
    near = (coor[:, :1] * coor).sum(0) > 0.9 * 100**2          # a cap around the first point
    compact, diffuse = near.double() + 1e-3, torch.ones(200, dtype=torch.float64)
    values = compactness(torch.stack([compact, diffuse]), coor)
    assert values[0] < 0.2 * values[1]


def test_reference_tether_in_euclidean_space_and_its_distance_scalarisation() -> None:
    X, coor, ref = uniform(5, 50, seed=0), uniform(3, 50, seed=1), uniform(3, 5, seed=2)
    displacement = reference_tether(X, ref, coor, radius=None)
    expected = np_cmass(X.numpy(), coor.numpy()) - ref.numpy()
    torch.testing.assert_close(displacement, torch.from_numpy(expected))
    distance = mean_scalarise(inner=vnorm_scalarise(axis=-2))(reference_tether)(X, ref, coor, radius=None)
    torch.testing.assert_close(distance, torch.tensor(np.linalg.norm(expected, axis=0).mean(), dtype=torch.float64))


def test_interhemispheric_tether_is_zero_for_mirror_images() -> None:
    lh_coor = sphere(60, seed=0)
    rh_coor = lh_coor * torch.tensor([[-1.0], [1.0], [1.0]], dtype=torch.float64)
    weights = uniform(4, 60, seed=1)
    for radius in (100.0, None):
        tether = interhemispheric_tether(weights, weights, lh_coor, rh_coor, radius=radius)
        torch.testing.assert_close(tether, torch.zeros(3, 4, dtype=torch.float64))
    moved = interhemispheric_tether(weights, weights.flip(0), lh_coor, rh_coor, radius=None)
    assert moved.abs().max() > 1


def test_dispersion_with_another_metric() -> None:
    points = sphere(6, seed=0).T
    value = dispersion(points, metric=lambda X: spherical_geodesic(X, r=100.0))
    expected = -np_geodesic(points.numpy(), points.numpy(), 100.0)[np.triu_indices(6, 1)]
    torch.testing.assert_close(value, torch.from_numpy(expected))


# --- geometry helpers --------------------------------------------------------------------------------------
def test_cmass_coor_batched_and_projected() -> None:
    X, coor = uniform(2, 4, 30, seed=0), uniform(2, 3, 30, seed=1)
    centres = cmass_coor(X, coor, radius=10.0)
    for b in range(2):
        torch.testing.assert_close(centres[b], torch.from_numpy(np_cmass(X[b].numpy(), coor[b].numpy(), 10.0)))
    torch.testing.assert_close(centres.norm(dim=-2), torch.full((2, 4), 10.0, dtype=torch.float64))


def test_spherical_geodesic_against_arccos_and_finite_gradient_where_points_coincide() -> None:
    a, b = sphere(5, seed=0).T, sphere(7, seed=1, radius=3.0).T     # lengths do not matter, only directions
    expected = torch.from_numpy(np_geodesic(a.numpy(), b.numpy(), 2.0))
    torch.testing.assert_close(spherical_geodesic(a, b, r=2.0), expected)
    points = a.clone().requires_grad_(True)
    spherical_geodesic(points).sum().backward()                    # the diagonal: each point with itself
    assert torch.isfinite(points.grad).all()


@pytest.mark.parametrize("theta", [None, "vector", "matrix", "batched-vector"])
def test_linear_distance_against_numpy(theta) -> None:
    X0, X1 = uniform(4, 3, seed=0), uniform(5, 3, seed=1)
    weights = {"vector": uniform(3, seed=2), "matrix": (lambda m: m @ m.T)(uniform(3, 3, seed=3)),
               "batched-vector": uniform(2, 3, seed=4), None: None}[theta]
    value = linear_distance(X0, X1, theta=weights)
    diffs = X0.numpy()[:, None, :] - X1.numpy()[None, :, :]
    if theta is None:
        expected = (diffs**2).sum(-1)
    elif theta == "vector":
        expected = (diffs**2 * weights.numpy()).sum(-1)
    elif theta == "matrix":
        expected = np.einsum("nmp,pq,nmq->nm", diffs, weights.numpy(), diffs)
    else:
        expected = np.stack([(diffs**2 * w).sum(-1) for w in weights.numpy()])
    torch.testing.assert_close(value, torch.from_numpy(expected))


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_sym2vec_is_numpys_upper_triangle(offset) -> None:
    S = uniform(2, 5, 5, seed=0)
    rows, columns = np.triu_indices(5, offset)
    torch.testing.assert_close(sym2vec(S, offset), torch.from_numpy(S.numpy()[:, rows, columns]))


# --- gradients, dtypes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("radius", [100.0, None])
def test_gradients_of_every_spatial_score_in_float64(radius) -> None:
    X = uniform(3, 12, seed=0).requires_grad_(True)
    coor = (sphere(12, seed=1) if radius else uniform(3, 12, seed=1)).requires_grad_(True)
    ref = uniform(3, 3, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda X, coor: compactness(X, coor, radius=radius, floor=0.01), (X, coor))
    assert torch.autograd.gradcheck(lambda X, coor, ref: reference_tether(X, ref, coor, radius=radius),
                                    (X, coor, ref))
    assert torch.autograd.gradcheck(lambda X, coor: interhemispheric_tether(X, X.flip(0), coor, coor, radius=radius),
                                    (X, coor))
    assert torch.autograd.gradcheck(lambda X, coor: dispersion(cmass_coor(X, coor).mT), (X, coor))


def test_bfloat16_is_computed_in_float32() -> None:
    X, coor = uniform(4, 50, seed=0), sphere(50, seed=1)
    exact = compactness(X, coor)
    low = compactness(X.bfloat16(), coor.bfloat16())
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.double(), exact, rtol=2e-2, atol=0)


def test_dispersion_closed_form_gradient_equals_autograd() -> None:
    tensors = [uniform(6, 3, seed=0).requires_grad_(True), uniform(2, 4, 2, seed=1).requires_grad_(True)]
    expected = torch.autograd.grad(sum(dispersion(X).mean() for X in tensors), tensors)
    grads = [torch.ones_like(X) for X in tensors]
    dispersion_add_grad_(grads, [X.detach() for X in tensors], alpha=0.5)
    for grad, e in zip(grads, expected):
        torch.testing.assert_close(grad, 1 + 0.5 * e)
    with pytest.raises(ValueError, match="number of vectors in each tensor must be >= 2"):
        dispersion_add_grad_([torch.zeros(1, 3)], [torch.ones(1, 3)])


def test_dispersion_loss_uses_its_closed_form_only_for_the_default_metric_and_scalarisation() -> None:
    centres = [nn.Parameter(uniform(5, 3, seed=0))]
    assert nr.DispersionLoss(centres).closed_form_grad
    assert not nr.DispersionLoss(centres, metric=lambda X: linear_distance(X).sqrt()).closed_form_grad
    assert not nr.DispersionLoss(centres, scalarisation=mean_scalarise()).closed_form_grad


# --- modules: held parameters, bound coordinates ---------------------------------------------------------
def test_compactness_loss_on_held_parcellations_sums_them_and_its_coordinates_are_a_buffer() -> None:
    coor = sphere(30, seed=0)
    parcels = [nn.Parameter(uniform(4, 30, seed=1)), nn.Parameter(uniform(2, 30, seed=2))]
    loss = nr.CompactnessLoss(parcels, Lambda=2.0, coor=coor)
    expected = sum(np_compactness(p.detach().numpy(), coor.numpy()).mean() for p in parcels)
    torch.testing.assert_close(loss(), torch.tensor(2.0 * expected, dtype=torch.float64))
    assert "coor" in loss.state_dict() and loss.coor.dtype == torch.float64
    loss.to(torch.float32)
    assert loss.coor.dtype == torch.float32 and parcels[0].dtype == torch.float64


def test_joint_mode_adds_the_penalty_gradient_of_held_parcellations() -> None:
    coor = sphere(30, seed=0)
    parcels = nn.Parameter(uniform(4, 30, seed=1))
    loss = nr.CompactnessLoss(parcels, Lambda=0.7, coor=coor, floor=1.0)
    (expected,) = torch.autograd.grad(0.7 * compactness(parcels, coor, floor=1.0).mean(), parcels)
    parcels.grad = torch.ones_like(parcels)
    loss.accumulate_grad()
    torch.testing.assert_close(parcels.grad, 1 + expected)


def test_interhemispheric_tether_on_held_pairs() -> None:
    lh_coor, rh_coor = sphere(20, seed=0), sphere(25, seed=1)
    pairs = [nn.Parameter(uniform(3, 20, seed=2)), nn.Parameter(uniform(3, 25, seed=3))]
    loss = nr.InterhemisphericTetherLoss(pairs, lh_coor=lh_coor, rh_coor=rh_coor,
                                         scalarisation=mean_scalarise(inner=vnorm_scalarise(axis=0)))
    expected = mean_scalarise(inner=vnorm_scalarise(axis=0))(interhemispheric_tether)(*pairs, lh_coor, rh_coor)
    torch.testing.assert_close(loss(), expected)
    loss().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pairs)
    with pytest.raises(ValueError, match="groups of 2"):
        nr.InterhemisphericTetherLoss(pairs[:1], lh_coor=lh_coor, rh_coor=rh_coor)


def test_a_call_overrides_the_bound_coordinates() -> None:
    X, coor, other = uniform(3, 20, seed=0), sphere(20, seed=1), sphere(20, seed=2)
    loss = nr.CompactnessLoss(coor=coor)
    torch.testing.assert_close(loss(X, other), compactness(X, other).mean())
    torch.testing.assert_close(loss(X, coor=other), compactness(X, other).mean())


@pytest.mark.parametrize("build", [
    lambda: (nr.CompactnessLoss(coor=sphere(30, seed=0)), (uniform(4, 30, seed=1),)),
    lambda: (nr.ReferenceTetherLoss(coor=sphere(30, seed=0), ref=sphere(4, seed=2)), (uniform(4, 30, seed=1),)),
    lambda: (nr.InterhemisphericTetherLoss(lh_coor=sphere(30, seed=0), rh_coor=sphere(30, seed=3)),
             (uniform(4, 30, seed=1), uniform(4, 30, seed=4))),
    lambda: (nr.DispersionLoss(), (uniform(5, 3, seed=1),)),
], ids=["compactness", "reference-tether", "interhemispheric-tether", "dispersion"])
def test_compiles_to_one_graph(build) -> None:
    torch._dynamo.reset()
    loss, args = build()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*args), loss(*args))


# --- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: compactness(torch.ones(3, 20), torch.ones(3, 19)), ValueError, "coor must have one column per"),
        (lambda: compactness(torch.ones(3, 20), torch.ones(2, 20)), ValueError, r"coor must have 3-D"),
        (lambda: compactness(torch.ones(3, 20, dtype=torch.int64), torch.ones(3, 20)), TypeError, "X must be a float"),
        (lambda: compactness(torch.ones(3, 20), torch.ones(3, 20), norm="l1"), ValueError, "norm must be one of"),
        (lambda: compactness(torch.ones(3, 20), torch.ones(3, 20), norm=0.5), ValueError, "norm must be in"),
        (lambda: compactness(torch.ones(3, 20), torch.ones(3, 20), radius=-1.0), ValueError, "radius must be in"),
        (lambda: reference_tether(torch.ones(3, 20), torch.ones(3, 4), torch.ones(3, 20)), ValueError,
         "ref and the centres of mass"),
        (lambda: interhemispheric_tether(torch.ones(3, 20), torch.ones(3, 9), torch.ones(3, 20), torch.ones(3, 10)),
         ValueError, "rh_coor must have one column per location"),
        (lambda: dispersion(torch.ones(4, 2), metric=3), TypeError, "metric must be callable"),
        (lambda: spherical_geodesic(torch.ones(4, 2)), ValueError, "X must have 3-D coordinates"),
        (lambda: nr.CompactnessLoss()(torch.ones(3, 20)), ValueError, "CompactnessLoss needs coor"),
        (lambda: nr.CompactnessLoss(norm="two"), ValueError, "norm must be one of"),
        (lambda: nr.CompactnessLoss(coor=torch.ones(3, 20, dtype=torch.int32)), TypeError, "coor must be a float"),
        (lambda: nr.CompactnessLoss(radius=0.0), ValueError, "radius must be in"),
        (lambda: nr.CompactnessLoss(coor=torch.ones(3, 20))(torch.ones(3, 20), cor=1), TypeError, "unknown argument"),
        (lambda: nr.CompactnessLoss([nn.Parameter(torch.ones(3, 20))], coor=torch.ones(3, 21)), ValueError,
         "coor must have one column per location"),
        (lambda: nr.DispersionLoss(metric="euclidean"), TypeError, "metric must be callable"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- parity with hypercoil (JAX), where it imports -----------------------------------------------------------
def test_parity_with_hypercoil() -> None:
    hf = pytest.importorskip("hypercoil.loss.functional")
    jnp = pytest.importorskip("jax.numpy")
    data, coor, ref = uniform(5, 100, seed=0).float(), uniform(3, 100, seed=1).float(), uniform(3, 5, seed=2).float()
    lh, rh, rh_coor = uniform(5, 100, seed=3).float(), uniform(5, 80, seed=4).float(), uniform(3, 80, seed=5).float()

    def same(ours: torch.Tensor, theirs) -> None:
        torch.testing.assert_close(ours, torch.from_numpy(np.asarray(theirs)), rtol=1e-4, atol=1e-4)

    j = lambda t: jnp.asarray(t.numpy())  # noqa: E731
    for radius in (100.0, None):
        same(reference_tether(data, ref, coor, radius=radius), hf.reference_tether(j(data), j(ref), j(coor),
                                                                                   radius=radius))
        same(compactness(data, coor, radius=radius, floor=0.05), hf.compactness(j(data), j(coor), radius=radius,
                                                                                  floor=0.05))
    same(interhemispheric_tether(lh, rh, coor, rh_coor), hf.interhemispheric_tether(j(lh), j(rh), j(coor), j(rh_coor)))
    same(dispersion(ref.T), hf.dispersion(j(ref.T)))
