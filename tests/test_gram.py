"""neuroreg.functional.gram (det_gram, log_det_gram, linear_kernel, corr_kernel) and GramDeterminantLoss /
GramLogDeterminantLoss: hypercoil's own tests translated, then NumPy checks of every option."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuroreg as nr
from neuroreg.functional import corr_kernel, det_gram, linear_kernel, log_det_gram
from neuroreg.scalarise import mean_scalarise, sum_scalarise
from tests.registry import make_params


def gaussian_kernel(X0: torch.Tensor, theta=None) -> torch.Tensor:
    """hypercoil's gaussian_kernel with its default sigma (gamma = 1 / features), for the module test."""
    return torch.exp(-torch.cdist(X0, X0).square() / X0.shape[-1])


# --- hypercoil's tests/loss/test_functional.py ---------------------------------------------------------
def test_det_loss() -> None:
    X = torch.randn(2, 10, 5, generator=torch.Generator().manual_seed(0))
    det_loss = sum_scalarise()(det_gram)
    logdet_loss = sum_scalarise()(log_det_gram)

    assert torch.isclose(det_loss(X, op=linear_kernel), torch.tensor(0.0), atol=1e-3)
    # Really, this is infinite. But due to numerical issues, it's not.
    assert logdet_loss(X, op=linear_kernel) > 100
    assert logdet_loss(X, op=linear_kernel, psi=1) < 1
    assert logdet_loss(X, op=linear_kernel, psi=1, xi=1, generator=torch.Generator().manual_seed(0)) < 1
    out0 = det_loss(X, op=linear_kernel, psi=1)
    out1 = det_loss(X, op=linear_kernel, psi=1, xi=1, generator=torch.Generator().manual_seed(1))
    assert out1 < -1
    assert out0 < out1

    X = torch.eye(10)
    assert torch.isclose(det_loss(X, op=linear_kernel), torch.tensor(-1.0))
    assert torch.isclose(logdet_loss(X, op=linear_kernel), torch.tensor(0.0))


# --- hypercoil's tests/loss/test_nn.py ----------------------------------------------------------------------
def test_loss_modules_wrap_their_functionals() -> None:
    S = torch.randn(10, 100, generator=torch.Generator().manual_seed(578423))
    torch.manual_seed(47)
    out = nr.GramLogDeterminantLoss(op=gaussian_kernel, psi=0.001, xi=0.001)(S)
    torch.manual_seed(47)
    ref = mean_scalarise()(log_det_gram)(S, op=gaussian_kernel, psi=0.001, xi=0.001)
    assert torch.isclose(out, ref)
    assert torch.isclose(nr.GramDeterminantLoss()(S), mean_scalarise()(det_gram)(S))


# --- NumPy checks of every option ---------------------------------------------------------------------------
X64 = torch.randn(3, 4, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(5))


def test_corr_kernel_is_numpy_corrcoef() -> None:
    for x, K in zip(X64.numpy(), corr_kernel(X64)):
        np.testing.assert_allclose(K.numpy(), np.corrcoef(x), rtol=1e-12)
    Y = torch.randn(3, 2, 9, dtype=torch.float64)
    for x, y, K in zip(X64.numpy(), Y.numpy(), corr_kernel(X64, Y)):
        np.testing.assert_allclose(K.numpy(), np.corrcoef(x, y)[:4, 4:], rtol=1e-12)


def test_weighted_corr_kernel_is_hypercoils_weighted_cov_over_unweighted_std() -> None:
    x = X64[0].numpy()
    w = np.random.default_rng(0).uniform(0.5, 2, size=9)
    centred = x - (x * w).sum(-1, keepdims=True) / w.sum()
    cov = (centred * w) @ centred.T / (w.sum() - (w**2).sum() / w.sum())
    expected = cov / np.sqrt(np.outer(x.var(-1, ddof=1), x.var(-1, ddof=1)))
    np.testing.assert_allclose(corr_kernel(X64[0], theta=torch.from_numpy(w)).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(np.diag(np.cov(x, aweights=w)), np.diag(cov), rtol=1e-12)  # numpy's weighted cov
    M = np.diag(w)  # a diagonal coupling matrix is the same weighting, through the matrix path
    M_centred = x - (x @ (M / M.sum())).sum(-1, keepdims=True)
    cov_m = M_centred @ M @ M_centred.T / (M.sum() - (M @ M.T).sum() / M.sum())
    np.testing.assert_allclose(
        corr_kernel(X64[0], theta=torch.from_numpy(M)).numpy(),
        cov_m / np.sqrt(np.outer(x.var(-1, ddof=1), x.var(-1, ddof=1))),
        rtol=1e-12,
    )


def hypercoil_weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """hypercoil's pairedcorr with observation weights: weighted covariance over unweighted std."""
    xc = x - (x * w).sum(-1, keepdims=True) / w.sum()
    yc = y - (y * w).sum(-1, keepdims=True) / w.sum()
    cov = (xc * w) @ yc.T / (w.sum() - (w**2).sum() / w.sum())
    return cov / np.sqrt(np.outer(x.var(-1, ddof=1), y.var(-1, ddof=1)))


def test_kernels_take_a_second_input_and_batches_of_weights() -> None:
    X1 = torch.randn(2, 9, dtype=torch.float64)
    x, x1 = X64[0].numpy(), X1.numpy()
    np.testing.assert_allclose(linear_kernel(X64[0], X1).numpy(), x @ x1.T, rtol=1e-12)
    np.testing.assert_allclose(corr_kernel(X64[0], X1).numpy(), np.corrcoef(x, x1)[:4, 4:], rtol=1e-12)
    weights = torch.rand(3, 9, dtype=torch.float64) + 0.5   # one weight vector per batch element
    for theta in (weights, weights[:, None, :]):   # (*, T) and (*, 1, T) are the same weights
        for b, K in enumerate(corr_kernel(X64, theta=theta)):
            expected = hypercoil_weighted_corr(X64[b].numpy(), X64[b].numpy(), weights[b].numpy())
            np.testing.assert_allclose(K.numpy(), expected, rtol=1e-12)
        for b, K in enumerate(linear_kernel(X64, theta=theta)):
            np.testing.assert_allclose(K.numpy(), (X64[b].numpy() * weights[b].numpy()) @ X64[b].numpy().T)
    couplings = torch.randn(3, 9, 9, dtype=torch.float64)   # one coupling matrix per batch element
    for b, K in enumerate(linear_kernel(X64, theta=couplings)):
        np.testing.assert_allclose(K.numpy(), X64[b].numpy() @ couplings[b].numpy() @ X64[b].numpy().T, rtol=1e-12)
    # hypercoil's matrix-weighted covariance (non-symmetric couplings, where θθᵀ and θ∘θᵀ differ).
    couplings = couplings.abs() + 0.1
    for b, K in enumerate(corr_kernel(X64, theta=couplings)):
        x, M = X64[b].numpy(), couplings[b].numpy()
        centred = x - (x @ (M / M.sum())).sum(-1, keepdims=True)
        cov = centred @ M @ centred.T / (M.sum() - (M @ M.T).sum() / M.sum())
        np.testing.assert_allclose(K.numpy(), cov / np.sqrt(np.outer(x.var(-1, ddof=1), x.var(-1, ddof=1))), rtol=1e-10)


def test_linear_kernel_parameterisations_equal_numpy() -> None:
    x = X64[0].numpy()
    w = np.linspace(0.5, 2, 9)
    A = np.random.default_rng(1).normal(size=(9, 9))
    np.testing.assert_allclose(linear_kernel(X64[0]).numpy(), x @ x.T, rtol=1e-12)
    np.testing.assert_allclose(linear_kernel(X64[0], theta=torch.from_numpy(w)).numpy(), (x * w) @ x.T, rtol=1e-12)
    np.testing.assert_allclose(linear_kernel(X64[0], theta=torch.from_numpy(A)).numpy(), x @ A @ x.T, rtol=1e-12)
    batch_w = torch.rand(3, 9, dtype=torch.float64)   # one weight vector per batch element
    for x3, w3, K in zip(X64.numpy(), batch_w.numpy(), linear_kernel(X64, theta=batch_w)):
        np.testing.assert_allclose(K.numpy(), (x3 * w3) @ x3.T, rtol=1e-12)


@pytest.mark.parametrize("psi", [0.0, 0.5])
def test_determinants_equal_numpy(psi) -> None:
    grams = [np.corrcoef(x) + psi * np.eye(4) for x in X64.numpy()]
    np.testing.assert_allclose(det_gram(X64, psi=psi).numpy(), [-np.linalg.det(g) for g in grams], rtol=1e-10)
    np.testing.assert_allclose(
        log_det_gram(X64, psi=psi).numpy(), [-np.linalg.slogdet(g)[1] for g in grams], rtol=1e-10
    )
    linear = [x @ x.T + psi * np.eye(4) for x in X64.numpy()]
    np.testing.assert_allclose(
        log_det_gram(X64, op=linear_kernel, psi=psi).numpy(), [-np.linalg.slogdet(g)[1] for g in linear], rtol=1e-10
    )


def test_xi_adds_uniform_noise_in_psi_minus_xi_to_psi_on_the_diagonal() -> None:
    psi, xi = 0.5, 0.2
    noise = torch.rand(3, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64).numpy()
    grams = [np.corrcoef(x) + np.diag(psi - xi + xi * u) for x, u in zip(X64.numpy(), noise)]
    out = det_gram(X64, psi=psi, xi=xi, generator=torch.Generator().manual_seed(9))
    np.testing.assert_allclose(out.numpy(), [-np.linalg.det(g) for g in grams], rtol=1e-10)


def test_theta_reaches_the_kernel_and_is_a_buffer() -> None:
    w = torch.linspace(0.5, 2, 9, dtype=torch.float64)
    (held,) = make_params((4, 9))
    reg = nr.GramLogDeterminantLoss(held, theta=w, op=linear_kernel, psi=0.1)
    expected = -np.linalg.slogdet((held.detach().numpy() * w.numpy()) @ held.detach().numpy().T + 0.1 * np.eye(4))[1]
    assert float(reg().detach()) == pytest.approx(expected, rel=1e-12)
    assert "theta" in reg.state_dict()
    assert reg.to(torch.float32).theta.dtype == torch.float32
    on_inputs = nr.GramLogDeterminantLoss(theta=w, op=linear_kernel, psi=0.1)
    torch.testing.assert_close(on_inputs(held.detach()), reg().double())


def test_a_theta_that_does_not_fit_the_held_parameters_fails_at_construction() -> None:
    # The held (4, 9) parameters take a weight per feature: 9, not 5 (a check with theta, before any call).
    (held,) = make_params((4, 9))
    with pytest.raises(RuntimeError, match="size"):
        nr.GramDeterminantLoss(held, theta=torch.ones(5, dtype=torch.float64), op=linear_kernel)
    nr.GramDeterminantLoss(held, theta=torch.ones(9, dtype=torch.float64), op=linear_kernel)


def test_gradients_pass_gradcheck() -> None:
    X = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: log_det_gram(x, psi=0.1), (X,))
    assert torch.autograd.gradcheck(lambda x: det_gram(x, op=linear_kernel), (X,))


def test_bfloat16_is_computed_in_float32() -> None:
    X = torch.randn(4, 20)
    out = log_det_gram(X.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), log_det_gram(X), rtol=5e-2, atol=5e-2)


# --- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: det_gram(X64, psi=-1), ValueError, r"psi must be in \[0, inf\]"),
        (lambda: det_gram(X64, psi=0.1, xi=0.2), ValueError, "xi must be <= psi"),
        (lambda: log_det_gram(X64, op="corr"), TypeError, "op must be callable"),
        (lambda: log_det_gram(torch.ones(3, 3, dtype=torch.long)), TypeError, "X must be a floating-point tensor"),
        (lambda: corr_kernel(torch.ones(3)), ValueError, "X0 must have at least 2 dimensions"),
        (lambda: corr_kernel(X64, l2=-1), ValueError, r"l2 must be in \[0, inf\]"),
        (lambda: linear_kernel(X64, torch.ones(3)), ValueError, "X1 must have at least 2 dimensions"),
        (lambda: linear_kernel(X64, theta=[1.0]), TypeError, "theta must be a tensor"),
        (lambda: det_gram(X64, theta=[1.0]), TypeError, "theta must be a tensor"),
        (lambda: nr.GramDeterminantLoss(theta=1.0), TypeError, "theta must be a tensor"),
        (lambda: nr.GramLogDeterminantLoss(xi=1.0), ValueError, "xi must be <= psi"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- parity with hypercoil itself (JAX), where it is installed -------------------------------------------
def test_parity_with_hypercoil() -> None:
    hc = pytest.importorskip("hypercoil.loss")
    hcf = pytest.importorskip("hypercoil.functional")
    jnp = pytest.importorskip("jax.numpy")
    X = torch.randn(3, 4, 9, generator=torch.Generator().manual_seed(2))
    x = jnp.asarray(X.numpy())
    pairs = [
        (nr.GramDeterminantLoss()(X), hc.GramDeterminantLoss()(x)),
        (nr.GramLogDeterminantLoss(psi=0.1)(X), hc.GramLogDeterminantLoss(psi=0.1)(x)),
        (nr.GramLogDeterminantLoss(op=linear_kernel)(X), hc.GramLogDeterminantLoss(op=hcf.linear_kernel)(x)),
        (det_gram(X, torch.linspace(0.5, 2, 9)), hc.det_gram(x, jnp.linspace(0.5, 2, 9))),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.numpy(), np.asarray(theirs), rtol=1e-4)
