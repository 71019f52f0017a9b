"""neuroreg.functional.equilibrium and the EquilibriumLoss / EquilibriumLogitLoss modules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg.functional import equilibrium, equilibrium_logit
from tests.registry import make_params


def reference(X: torch.Tensor, level: tuple, instance: tuple) -> torch.Tensor:
    return (X.mean(level, keepdim=True) - X.mean(instance, keepdim=True)).abs()


# --- values ---------------------------------------------------------------------------------------------
def test_zero_on_a_constant_tensor_and_grows_with_noise() -> None:
    base = torch.full((6, 40), 0.5, dtype=torch.float64)
    assert torch.count_nonzero(equilibrium(base)) == 0
    assert float(nr.EquilibriumLoss()(base)) == 0.0
    assert float(nr.EquilibriumLogitLoss()(base)) < 1e-15  # softmax gives 1/6, rounded
    noise = torch.randn(6, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for loss in (nr.EquilibriumLoss(), nr.EquilibriumLogitLoss()):
        values = [float(loss(base + scale * noise)) for scale in (1e-1, 1e0, 1e1)]
        assert 0 < values[0] < values[1] < values[2], (loss, values)


def test_parcel_sizes_by_hand() -> None:
    X = torch.tensor([[0.2, 0.2], [0.3, 0.3], [0.5, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(equilibrium(X), torch.tensor([[2 / 15], [1 / 30], [1 / 6]], dtype=torch.float64))
    # meansq is EquilibriumLoss's default scalarisation, mean EquilibriumLogitLoss's
    torch.testing.assert_close(nr.EquilibriumLoss()(X), equilibrium(X).square().mean())
    logits = torch.randn(3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(nr.EquilibriumLogitLoss()(logits), equilibrium_logit(logits).mean())


@pytest.mark.parametrize(
    ("shape", "level", "prob", "instance", "out"),
    [
        ((4, 7), -1, -2, (-1, -2), (4, 1)),
        ((2, 4, 7), -1, -2, (-2, -1), (2, 4, 1)),
        ((2, 3, 4, 7), -1, -2, (-1, -2), (2, 3, 4, 1)),
        ((7, 4), 0, 1, (0, 1), (1, 4)),
        ((2, 4, 3, 5), (-2, -1), 1, (1, 2, 3), (2, 4, 1, 1)),
    ],
)
def test_shapes_and_values_for_ranks_and_axes(shape, level, prob, instance, out) -> None:
    X = torch.randn(shape, dtype=torch.float64)
    norm = lambda a: tuple(sorted({x % len(shape) for x in ((a,) if isinstance(a, int) else a)}))  # noqa: E731
    assert equilibrium(X.abs(), level_axis=level, instance_axes=instance).shape == out
    torch.testing.assert_close(
        equilibrium(X.abs(), level_axis=level, instance_axes=instance), reference(X.abs(), norm(level), norm(instance))
    )
    probs = X.softmax(norm(prob)[0]) if isinstance(prob, int) else None
    result = equilibrium_logit(X, level_axis=level, prob_axis=prob, instance_axes=instance)
    assert result.shape == out
    torch.testing.assert_close(result, reference(probs, norm(level), norm(instance)))


def test_logit_softmax_over_several_axes() -> None:
    X = torch.randn(3, 4, 5, dtype=torch.float64)
    probs = X.flatten(1).softmax(-1).reshape(X.shape)
    result = equilibrium_logit(X, level_axis=0, prob_axis=(1, 2), instance_axes=(0, 1, 2))
    torch.testing.assert_close(result, reference(probs, (0,), (0, 1, 2)))


# --- gradients and numerics ---------------------------------------------------------------------------
@pytest.mark.parametrize("function", [equilibrium, equilibrium_logit])
def test_gradcheck(function) -> None:
    X = torch.rand(2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: function(x), (X,))


def test_logits_up_to_1e4_in_float32_are_finite() -> None:
    X = (torch.randn(4, 30) * 1e4).requires_grad_()
    value = nr.EquilibriumLogitLoss()(X)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(X.grad).all()


@pytest.mark.parametrize("prob_axis", [-2, (0, 1)])
def test_minus_inf_logits_are_zero_probabilities_with_finite_gradients(prob_axis) -> None:
    X = torch.randn(2, 3, 4, dtype=torch.float64)
    X[0, 1, 2] = X[1, 0, :] = -math.inf  # masked assignments
    X.requires_grad_()
    value = equilibrium_logit(X, prob_axis=prob_axis)
    (grad,) = torch.autograd.grad(value.sum(), X)
    axes = (1,) if prob_axis == -2 else (0, 1)
    logits = X.detach().numpy()
    probs = np.exp(logits - logits.max(axis=axes, keepdims=True))
    probs /= probs.sum(axis=axes, keepdims=True)
    assert (probs == 0).sum() == 5
    torch.testing.assert_close(value, reference(torch.from_numpy(probs), (-1,), (-1, -2)))
    assert torch.isfinite(grad).all()
    # NaN logits, by contrast, give NaN (never a number).
    assert torch.isnan(equilibrium_logit(torch.tensor([[0.0, math.nan], [1.0, 2.0]]))).any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_computes_in_float32_and_returns_the_input_dtype(dtype) -> None:
    X = torch.randn(4, 300)
    for function in (equilibrium, equilibrium_logit):
        low = function(X.to(dtype))
        assert low.dtype == dtype
        torch.testing.assert_close(low.float(), function(X.to(dtype).float()), rtol=1e-2, atol=1e-3)


# --- modules --------------------------------------------------------------------------------------------
def test_held_parameters_sum_the_scalarised_score_of_each() -> None:
    w1, w2 = make_params((3, 8), (2, 3, 8))
    reg = nr.EquilibriumLogitLoss([w1, w2], Lambda=0.5)
    expected = equilibrium_logit(w1).mean() + equilibrium_logit(w2).mean()
    torch.testing.assert_close(reg(), 0.5 * expected)
    reg().backward()
    assert w1.grad is not None and w2.grad is not None


def test_nu_is_another_name_for_lambda() -> None:
    X = torch.rand(3, 5)
    assert nr.EquilibriumLoss(nu=3.0).Lambda == 3.0
    assert nr.EquilibriumLoss(Lambda=3.0, nu=3.0).Lambda == 3.0
    torch.testing.assert_close(nr.EquilibriumLoss(nu=3.0)(X), 3 * nr.EquilibriumLoss()(X))


def test_in_a_list_with_an_l2() -> None:
    logits, weight = make_params((4, 10), (3, 3))
    eq = nr.EquilibriumLogitLoss(logits, Lambda=2.0, name="eq")
    masses = nr.EquilibriumLoss(make_params((4, 10), seed=1), name="mass")
    regs = nr.RegularizationList([eq, masses, nr.L2([weight], Lambda=0.5, name="l2")])
    torch.testing.assert_close(regs(), eq() + masses() + 0.5 * weight.detach().norm())
    assert set(regs.last_values()) == {"eq", "mass", "l2"}


def test_module_defaults_on_a_batch_of_parcellations() -> None:
    # (batch, parcels, voxels): a parcel's mass is the mean over the last axis, its instance the last two.
    X = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = X.numpy()
    E = np.abs(x.mean(-1, keepdims=True) - x.mean((-2, -1), keepdims=True))
    assert float(nr.EquilibriumLoss()(X)) == pytest.approx((E**2).mean(), rel=1e-12)
    p = np.exp(x) / np.exp(x).sum(-2, keepdims=True)
    E = np.abs(p.mean(-1, keepdims=True) - p.mean((-2, -1), keepdims=True))
    assert float(nr.EquilibriumLogitLoss()(X)) == pytest.approx(E.mean(), rel=1e-12)


def test_scalarisation_and_repr() -> None:
    X = torch.rand(2, 3, 4)
    loss = nr.EquilibriumLoss(scalarisation=nr.scalarise.max_scalarise(), level_axis=-2, instance_axes=(-1, -2))
    torch.testing.assert_close(loss(X), equilibrium(X, level_axis=-2).max())
    assert "level_axis=-2" in repr(loss)


# --- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: equilibrium(torch.rand(3, 4), level_axis=2), ValueError, "level_axis 2 is out of range"),
        (lambda: equilibrium(torch.rand(4), instance_axes=(-1, -2)), ValueError, r"instance_axes \(-1, -2\) is out"),
        (lambda: equilibrium_logit(torch.rand(3, 4), prob_axis=-3), ValueError, "prob_axis -3 is out of range"),
        (lambda: equilibrium(torch.ones(3, 4, dtype=torch.int64)), TypeError, "X must be a floating-point tensor"),
        (lambda: equilibrium([[1.0, 2.0]]), TypeError, "X must be a tensor"),
        (lambda: nr.EquilibriumLoss(level_axis="rows"), TypeError, "level_axis must be an int or a sequence"),
        (lambda: nr.EquilibriumLogitLoss(prob_axis=(0, 0)), ValueError, "prob_axis .* names the same axis twice"),
        (lambda: nr.EquilibriumLoss(make_params((4,)), level_axis=-1), ValueError, "instance_axes .* out of range"),
        (lambda: nr.EquilibriumLoss()(), ValueError, "holds no parameters and was called without inputs"),
        (lambda: nr.EquilibriumLoss()(torch.rand(3, 4), torch.rand(3, 4)), TypeError, r"takes 1 input\(s\) \(X\)"),
        (lambda: nr.EquilibriumLoss(make_params((3, 4)))(torch.rand(3, 4)), TypeError, "takes no inputs, got 1"),
        (lambda: nr.EquilibriumLoss(0.5), TypeError, "nu, is Lambda here"),
        (lambda: nr.EquilibriumLoss(Lambda=2.0, nu=3.0), ValueError, "Lambda=2.0, nu=3.0"),
        (lambda: nr.EquilibriumLoss(nu=-1.0), ValueError, r"Lambda must be in \[0, inf\], got -1.0"),
        (lambda: nr.EquilibriumLoss(scalarisation="mean"), TypeError, "scalarisation must be callable, got 'mean'"),
        (lambda: nr.EquilibriumLoss(scalarisation=nr.scalarise.mean_scalarise(axis=0))(torch.rand(3, 4)),
         ValueError, r"must reduce its score to a 0-d tensor, got shape \(1\,\)"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_frozen_held_parameters_give_a_zero() -> None:
    w = nn.Parameter(torch.rand(3, 4), requires_grad=False)
    assert float(nr.EquilibriumLoss([w])().detach()) == 0.0
