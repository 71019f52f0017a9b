"""neuroreg.functional.basic (identity, zero, difference, constraint violations, hinge, bimodal symmetry) and
its modules (MSELoss, NormedLoss, ConstraintViolationLoss, UnilateralLoss, HingeLoss, BimodalSymmetricLoss):
hypercoil's own tests translated, then NumPy checks of every option."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

import neuroreg as nr
from neuroreg.functional import (
    bimodal_symmetric,
    constraint_violation,
    difference,
    hinge_loss,
    identity,
    unilateral_loss,
    zero,
)
from neuroreg.scalarise import mean_scalarise, meansq_scalarise, sum_scalarise, vnorm_scalarise
from tests.registry import make_params

# hypercoil's integer inputs, as floats: its functions accept ints, neuroreg's scores take floating tensors.
X_SIGNED = torch.tensor([[-1, 2, 0, 2, 1], [0, 1, 0, 0, -1], [3, -1, 0, -2, 0]], dtype=torch.float32)
X_CONSTRAINED = torch.tensor([[1.0, -1.0], [-2.0, 1.0], [-1.0, 2.0], [0.0, 0.0]])


# --- hypercoil's tests/loss/test_functional.py ---------------------------------------------------------
def test_unilateral_loss() -> None:
    uL0 = vnorm_scalarise(p=0, axis=None)(unilateral_loss)
    assert uL0(X_SIGNED) == 5
    assert uL0(-X_SIGNED) == 4
    uL1 = vnorm_scalarise(p=1, axis=None)(unilateral_loss)
    assert uL1(X_SIGNED) == 9
    assert uL1(-X_SIGNED) == 5
    uL2 = vnorm_scalarise(p=2, axis=None)(unilateral_loss)
    assert torch.isclose(uL2(X_SIGNED), torch.tensor(19.0).sqrt())
    assert torch.isclose(uL2(-X_SIGNED), torch.tensor(7.0).sqrt())


def test_constraint_violation_loss() -> None:
    X = X_CONSTRAINED
    f = vnorm_scalarise(p=1, axis=None)(constraint_violation)
    g = vnorm_scalarise(p=0, axis=None)(constraint_violation)
    h = vnorm_scalarise(p=1, axis=None)(unilateral_loss)
    assert f(X, constraints=(identity,)) == 4
    assert f(X, constraints=(identity,)) == h(X)

    constraints = (lambda x: x @ torch.tensor([[1.0], [1.0]]),)
    assert f(X, constraints=constraints) == 1
    assert f(X, constraints=constraints, broadcast_against_input=True) == 2

    constraints = (lambda x: x @ torch.tensor([[0.0], [1.0]]), lambda x: x @ torch.tensor([[1.0], [0.0]]))
    assert g(X, constraints=constraints) == 3

    constraints = (lambda x: torch.tensor([1.0, 1.0, 1.0, 1.0]) @ x,)
    assert f(X, constraints=constraints) == 2

    constraints = (lambda x: x @ torch.tensor([[-1.0], [1.0]]),)
    assert f(X, constraints=constraints) == 6


def test_hinge_loss() -> None:
    Y = torch.tensor([-1.0, 1.0, 1, -1.0, 1.0])
    hinge = sum_scalarise()(hinge_loss)
    assert hinge(Y, torch.zeros(5)) == 5
    assert hinge(Y, torch.ones(5)) == 4
    assert hinge(Y, -torch.ones(5)) == 6


def test_bimodal_symmetric_loss() -> None:
    X1 = torch.tensor([[0.2, 0, 1, 0.7, 1], [1.2, 0, 0.8, -0.2, 0], [0, 1, 0.3, 0, 1]])
    X2 = torch.tensor([0.8, 0.5, 0.1])
    assert float(vnorm_scalarise(axis=None)(bimodal_symmetric)(X1)) == pytest.approx(0.58309518948453)
    symbm_loss = vnorm_scalarise(p=1, axis=None)(bimodal_symmetric)
    assert float(symbm_loss(X2, modes=(0.95, 0.05))) == pytest.approx(0.65)


# --- hypercoil's tests/loss/test_nn.py: each module wraps its functional ----------------------------------
XY = torch.randn(2, 10, 10, generator=torch.Generator().manual_seed(578423))
X, Y = XY[0], XY[1]


def test_loss_modules_wrap_their_functionals() -> None:
    torch.testing.assert_close(nr.MSELoss()(X, Y), meansq_scalarise()(difference)(X, Y), rtol=0, atol=0)
    torch.testing.assert_close(
        nr.NormedLoss(p=2, axis=-1)(X), mean_scalarise(inner=vnorm_scalarise(p=2, axis=-1))()(X), rtol=0, atol=0
    )
    constraints = (lambda x: torch.eye(10) @ x,)
    torch.testing.assert_close(
        nr.ConstraintViolationLoss(constraints=constraints, broadcast_against_input=True)(X),
        mean_scalarise()(constraint_violation)(X, constraints=constraints, broadcast_against_input=True),
        rtol=0,
        atol=0,
    )
    torch.testing.assert_close(nr.UnilateralLoss()(X), mean_scalarise()(unilateral_loss)(X), rtol=0, atol=0)
    torch.testing.assert_close(nr.HingeLoss()(X, Y), sum_scalarise()(hinge_loss)(X, Y), rtol=0, atol=0)
    torch.testing.assert_close(
        nr.BimodalSymmetricLoss(modes=(-1, 1))(X), mean_scalarise()(bimodal_symmetric)(X, modes=(-1, 1)), rtol=0, atol=0
    )


# --- NumPy checks of every function and option ----------------------------------------------------------
def test_scores_equal_numpy() -> None:
    x, y = X.double().numpy(), Y.double().numpy()
    Xd, Yd = X.double(), Y.double()
    np.testing.assert_array_equal(identity(Xd).numpy(), x)
    np.testing.assert_array_equal(difference(Xd, Yd[0]).numpy(), x - y[0])
    np.testing.assert_array_equal(unilateral_loss(Xd).numpy(), np.maximum(x, 0))
    np.testing.assert_allclose(hinge_loss(Xd, Yd).numpy(), np.maximum(1 - x * y, 0), rtol=1e-15)
    for modes in [(0, 1), (1, 0), (-1, 1), (0.95, 0.05), (2, 2)]:
        expected = np.minimum(np.abs(x - modes[0]), np.abs(x - modes[1]))   # distance to the nearer mode
        np.testing.assert_allclose(bimodal_symmetric(Xd, modes=modes).numpy(), expected, atol=1e-14)


def test_zero_shapes_and_dtype() -> None:
    X = torch.ones(2, 3, dtype=torch.float64)
    assert zero(X).shape == () and zero(X).dtype == torch.float64 and float(zero(X)) == 0
    assert torch.equal(zero(X, broadcast=True), torch.zeros(2, 3, dtype=torch.float64))


def test_constraint_violation_is_the_max_over_constraints_and_zero() -> None:
    x = X.double().numpy()
    constraints = (lambda t: t - 1, lambda t: -t - 2, lambda t: t[:, :1] * 0.5)
    expected = functools.reduce(np.maximum, [np.zeros(()), x - 1, -x - 2, x[:, :1] * 0.5])
    np.testing.assert_allclose(constraint_violation(X.double(), constraints=constraints).numpy(), expected)
    # A constraint smaller than X gives a smaller result unless broadcast against X.
    small = (lambda t: t.sum(-1, keepdim=True),)
    assert constraint_violation(X, constraints=small).shape == (10, 1)
    assert constraint_violation(X, constraints=small, broadcast_against_input=True).shape == (10, 10)


def test_constraint_and_bimodal_gradients_equal_numpy_subgradients() -> None:
    x = X.double().requires_grad_()
    unilateral_loss(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (x.detach().numpy() > 0).astype(float))
    x.grad = None
    bimodal_symmetric(x, modes=(-1, 1)).sum().backward()
    d = x.detach().numpy()
    np.testing.assert_array_equal(x.grad.numpy(), np.sign(np.abs(d) - 1) * np.sign(d))


def test_normed_loss_options_equal_numpy() -> None:
    x = X.double().numpy()
    assert float(nr.NormedLoss()(X.double())) == pytest.approx(np.linalg.norm(x.ravel()))
    assert float(nr.NormedLoss(p=1, axis=0)(X.double())) == pytest.approx(np.abs(x).sum(0).mean())
    assert float(nr.NormedLoss(p=math.inf, axis=-1, outer_scalarise=sum_scalarise)(X.double())) == pytest.approx(
        np.abs(x).max(-1).sum()
    )
    assert float(nr.NormedLoss(score=torch.sin, p=3)(X.double())) == pytest.approx(
        (np.abs(np.sin(x)) ** 3).sum() ** (1 / 3)
    )


def test_mse_and_hinge_on_held_parameters_compare_with_target() -> None:
    (W,) = make_params((4, 3))
    target = torch.randn(3, dtype=torch.float64)
    mse = nr.MSELoss(W, Lambda=2.0, target=target)
    assert float(mse().detach()) == pytest.approx(2.0 * ((W.detach().numpy() - target.numpy()) ** 2).mean())
    labels = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    hinge = nr.HingeLoss(W, target=labels)
    assert float(hinge().detach()) == pytest.approx(np.maximum(1 - W.detach().numpy() * labels.numpy(), 0).sum())


def test_default_scalarisations_are_hypercoils() -> None:
    x, y = X.double(), Y.double()
    assert float(nr.UnilateralLoss()(x)) == pytest.approx(np.maximum(x.numpy(), 0).mean())
    assert float(nr.HingeLoss()(x, y)) == pytest.approx(np.maximum(1 - x.numpy() * y.numpy(), 0).sum())
    assert float(nr.UnilateralLoss(scalarisation=sum_scalarise())(x)) == pytest.approx(np.maximum(x.numpy(), 0).sum())
    assert float(nr.BimodalSymmetricLoss(nu=3.0)(x)) == pytest.approx(
        3.0 * np.minimum(np.abs(x.numpy()), np.abs(x.numpy() - 1)).mean()
    )


# --- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: constraint_violation(X, constraints=identity), TypeError, "constraints must be a sequence"),
        (lambda: constraint_violation(X, constraints=(identity, 1)), TypeError, r"constraints\[1\] must be callable"),
        (lambda: nr.ConstraintViolationLoss(constraints="x"), TypeError, "constraints must be a sequence"),
        (lambda: constraint_violation(X, constraints=(), broadcast_against_input=1), TypeError, "must be a bool"),
        (lambda: bimodal_symmetric(X, modes=(0, 1, 2)), ValueError, "modes must be a pair"),
        (lambda: nr.BimodalSymmetricLoss(modes=(0, math.nan)), ValueError, r"modes\[1\] must be a finite"),
        (lambda: nr.BimodalSymmetricLoss(modes=0.5), TypeError, "modes must be a pair"),
        (lambda: difference(X, torch.ones(3)), ValueError, "X and Y must have shapes that broadcast"),
        (lambda: difference(X.long(), X), TypeError, "X must be a floating-point tensor"),
        (lambda: difference(X, [1.0]), TypeError, "Y must be a tensor"),
        (lambda: hinge_loss(X.long(), X), TypeError, "Y_hat must be a floating-point tensor"),
        (lambda: hinge_loss(X, torch.ones(3)), ValueError, "Y_hat and Y must have shapes that broadcast"),
        (lambda: hinge_loss(X, torch.ones(10, dtype=torch.long)), TypeError, "Y must be a floating-point tensor"),
        (lambda: unilateral_loss([1.0]), TypeError, "X must be a tensor"),
        (lambda: nr.NormedLoss(p="fro"), TypeError, "p must be a real number"),
        (lambda: nr.NormedLoss(score=3), TypeError, "score must be callable"),
        (lambda: nr.MSELoss(make_params((3,))), ValueError, "compares each with target="),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- parity with hypercoil itself (JAX), where it is installed -------------------------------------------
def test_parity_with_hypercoil() -> None:
    hc = pytest.importorskip("hypercoil.loss")
    jnp = pytest.importorskip("jax.numpy")
    x, y = jnp.asarray(X.numpy()), jnp.asarray(Y.numpy())
    pairs = [
        (nr.MSELoss()(X, Y), hc.MSELoss()(x, y)),
        (nr.NormedLoss(p=1, axis=0)(X), hc.NormedLoss(p=1, axis=0)(x)),
        (nr.UnilateralLoss()(X), hc.UnilateralLoss()(x)),
        (nr.HingeLoss()(X, Y), hc.HingeLoss()(x, y)),
        (nr.BimodalSymmetricLoss(modes=(-1, 1))(X), hc.BimodalSymmetricLoss(modes=(-1, 1))(x)),
        (
            nr.ConstraintViolationLoss(constraints=(lambda t: t - 0.5,))(X),
            hc.ConstraintViolationLoss(constraints=(lambda t: t - 0.5,))(x),
        ),
    ]
    for ours, theirs in pairs:
        assert float(ours) == pytest.approx(float(theirs), rel=1e-6)
