"""neuroreg.functional.bregman and BregmanDivergenceLoss / BregmanDivergenceLogitLoss: hypercoil's own tests
translated, then closed-form checks (squared distance, KL, Mahalanobis) of every option."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import entropy as entropy_ref

import neuroreg as nr
from neuroreg.functional import bregman_divergence, bregman_divergence_logit
from neuroreg.scalarise import mean_scalarise
from tests.registry import make_params


def squared_norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.norm(x, dim=-1) ** 2


def negentropy(p: torch.Tensor) -> torch.Tensor:
    return (p * p.log()).sum()


# --- hypercoil's tests/loss/test_functional.py and test_nn.py -------------------------------------------
def test_bregman_divergence() -> None:
    generator = torch.Generator().manual_seed(0)
    X, Y = torch.randn(3, 10, generator=generator), torch.randn(3, 10, generator=generator)
    out = mean_scalarise()(bregman_divergence)(X, Y, f=squared_norm, f_dim=1)
    assert torch.isclose(out, ((X - Y) ** 2).sum(-1).mean(), atol=1e-4)


def test_loss_modules_wrap_their_functionals() -> None:
    XY = torch.randn(2, 10, 10, generator=torch.Generator().manual_seed(578423))
    X, Y = XY[0], XY[1]
    S, T = X.abs(), Y.abs()
    S, T = S / S.sum(-2, keepdim=True), T / T.sum(-2, keepdim=True)
    torch.testing.assert_close(
        nr.BregmanDivergenceLoss(f=squared_norm, f_dim=1)(S, T),
        mean_scalarise()(bregman_divergence)(S, T, f=squared_norm, f_dim=1),
    )
    torch.testing.assert_close(
        nr.BregmanDivergenceLogitLoss(f=squared_norm, f_dim=1)(X, Y),
        mean_scalarise()(bregman_divergence_logit)(X, Y, f=squared_norm, f_dim=1),
    )


# --- closed forms of known divergences ------------------------------------------------------------------------
def test_negentropy_induces_the_kl_divergence_of_distributions() -> None:
    logits_p, logits_q = torch.randn(2, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    P, Q = logits_p.softmax(-1), logits_q.softmax(-1)
    expected = entropy_ref(Q.numpy(), P.numpy(), axis=-1)   # D_f(P, Q) = KL(Q || P)
    np.testing.assert_allclose(bregman_divergence(P, Q, f=negentropy, f_dim=1).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(
        bregman_divergence_logit(logits_p, logits_q, f=negentropy, f_dim=1).numpy(), expected, rtol=1e-10
    )


def test_f_dim_2_takes_a_mahalanobis_form_over_matrices_and_a_joint_softmax() -> None:
    A = torch.randn(3, 4, dtype=torch.float64)
    M = A @ A.T + torch.eye(3, dtype=torch.float64)

    def quadratic(x: torch.Tensor) -> torch.Tensor:   # f(X) = tr(Xᵀ M X): D_f = tr(Dᵀ M D), D = Y - X
        return torch.trace(x.T @ M @ x)

    X, Y = torch.randn(5, 3, 2, dtype=torch.float64), torch.randn(5, 3, 2, dtype=torch.float64)
    D = (Y - X).numpy()
    expected = np.einsum("bij,ik,bkj->b", D, M.numpy(), D)
    np.testing.assert_allclose(bregman_divergence(X, Y, f=quadratic, f_dim=2).numpy(), expected, rtol=1e-10)
    # The logit version takes one softmax over both trailing axes.
    P = torch.softmax(X.reshape(5, -1), -1).reshape(5, 3, 2)
    Q = torch.softmax(Y.reshape(5, -1), -1).reshape(5, 3, 2)
    torch.testing.assert_close(
        bregman_divergence_logit(X, Y, f=quadratic, f_dim=2), bregman_divergence(P, Q, f=quadratic, f_dim=2)
    )


def test_inputs_broadcast_over_outer_axes() -> None:
    X = torch.randn(4, 1, 6, dtype=torch.float64)
    Y = torch.randn(3, 6, dtype=torch.float64)
    out = bregman_divergence(X, Y, f=squared_norm, f_dim=1)
    assert out.shape == (4, 3)
    torch.testing.assert_close(out, ((X - Y) ** 2).sum(-1))
    assert bregman_divergence(Y[0], Y[1], f=squared_norm, f_dim=1).shape == ()


def test_gradient_of_the_divergence_passes_gradcheck() -> None:
    X = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    Y = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: bregman_divergence(a, b, f=lambda x: x.exp().sum(), f_dim=1), (X, Y))
    assert torch.autograd.gradcheck(lambda a, b: bregman_divergence_logit(a, b, f=negentropy, f_dim=1), (X, Y))


def test_modules_on_held_parameters_compare_with_target() -> None:
    params = make_params((4, 5), (2, 5))
    target = torch.randn(5, dtype=torch.float64)
    reg = nr.BregmanDivergenceLoss(params, Lambda=0.5, f=squared_norm, f_dim=1, target=target)
    expected = 0.5 * sum(((p.detach() - target) ** 2).sum(-1).mean() for p in params)
    torch.testing.assert_close(reg().detach(), expected)


def test_bfloat16_is_computed_in_float32() -> None:
    X, Y = torch.randn(4, 8), torch.randn(4, 8)
    out = bregman_divergence(X.bfloat16(), Y.bfloat16(), f=squared_norm, f_dim=1)
    assert out.dtype == torch.bfloat16
    exact = ((X.bfloat16().float() - Y.bfloat16().float()) ** 2).sum(-1)
    torch.testing.assert_close(out.float(), exact, rtol=2**-8, atol=0)   # the final rounding to bfloat16 only


ONES = torch.ones(3)


# --- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: bregman_divergence(ONES, ONES, f=1, f_dim=1), TypeError, "f must be callable"),
        (lambda: bregman_divergence(ONES, ONES, f=squared_norm, f_dim=0), ValueError, "f_dim must be >= 1"),
        (lambda: bregman_divergence(ONES, ONES, f=squared_norm, f_dim=2), ValueError, "f_dim must be at most"),
        (lambda: bregman_divergence(ONES, torch.ones(4), f=squared_norm, f_dim=1), ValueError, "X and Y must have"),
        (lambda: bregman_divergence_logit(ONES, torch.ones(2, 2), f=squared_norm, f_dim=2), ValueError, "axes of X"),
        (lambda: bregman_divergence(ONES.long(), ONES, f=squared_norm, f_dim=1), TypeError, "X must be a floating"),
        (lambda: bregman_divergence(ONES, [1.0], f=squared_norm, f_dim=1), TypeError, "Y must be a tensor"),
        (lambda: bregman_divergence_logit([1.0], ONES, f=squared_norm, f_dim=1), TypeError, "X must be a tensor"),
        (lambda: bregman_divergence_logit(ONES, ONES.int(), f=squared_norm, f_dim=1), TypeError, "Y must be a float"),
        (lambda: nr.BregmanDivergenceLoss(f=squared_norm, f_dim=1.5), TypeError, "f_dim must be an integer"),
        (lambda: nr.BregmanDivergenceLogitLoss(f=None, f_dim=1), TypeError, "f must be callable"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- parity with hypercoil itself (JAX), where it is installed -------------------------------------------
def test_parity_with_hypercoil() -> None:
    hc = pytest.importorskip("hypercoil.loss")
    jnp = pytest.importorskip("jax.numpy")
    generator = torch.Generator().manual_seed(3)
    X, Y = torch.randn(4, 6, generator=generator), torch.randn(4, 6, generator=generator)
    x, y = jnp.asarray(X.numpy()), jnp.asarray(Y.numpy())

    def torch_f(v: torch.Tensor) -> torch.Tensor:
        return v.exp().sum() + v.square().sum()

    def jax_f(v):
        return jnp.exp(v).sum() + (v**2).sum()

    pairs = [
        (nr.BregmanDivergenceLoss(f=torch_f, f_dim=1)(X, Y), hc.BregmanDivergenceLoss(f=jax_f, f_dim=1)(x, y)),
        (
            nr.BregmanDivergenceLogitLoss(f=torch_f, f_dim=2)(X, Y),
            hc.BregmanDivergenceLogitLoss(f=jax_f, f_dim=2)(x, y),
        ),
    ]
    for ours, theirs in pairs:
        # A divergence is a difference of nearby values of f: float32 cancellation leaves ~1e-5 relative.
        assert float(ours) == pytest.approx(float(theirs), rel=1e-4)
