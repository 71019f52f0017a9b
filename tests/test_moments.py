"""Moment losses (hypercoil's second_moment, second_moment_centred, qcfc, multivariate_kurtosis): hypercoil's
own tests translated, NumPy references for every option, precision of the expanded second moment, held
parameters, bad input, and parity with hypercoil where it imports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg.functional import batch_corr, multivariate_kurtosis, qcfc, second_moment, second_moment_centred
from neuroreg.scalarise import mean_scalarise


def normal(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def np_second_moment(X, weight, mu=None, standardise=False, standardise_mu=False, skip_normalise=False):
    """hypercoil's formula with its (W, N, T) intermediate, in NumPy."""
    if standardise:
        X = (X - X.mean(-1, keepdims=True)) / X.std(-1, keepdims=True)
    if mu is None:
        mu = weight @ X / weight.sum(-1, keepdims=True)
    elif standardise_mu:
        mu = (mu - mu.mean(-1, keepdims=True)) / mu.std(-1, keepdims=True)
    mass = np.abs(weight)[..., None]
    sigma = (mass * (X[None] - mu[:, None, :]) ** 2).sum(-2)
    return sigma if skip_normalise else sigma / mass.sum(-2)


# --- hypercoil's tests, translated ----------------------------------------------------------------------
def test_hypercoil_second_moment() -> None:
    n_channels, n_observations = 10, 20
    src = torch.zeros(n_channels, dtype=torch.int64)
    src[n_channels // 2:] = 1
    weight = 0.5 * torch.eye(2, dtype=torch.float64)[src].T
    data = normal(n_channels, n_observations, seed=0)
    ref = torch.stack([data[: n_channels // 2].var(-2, correction=0), data[n_channels // 2:].var(-2, correction=0)])
    torch.testing.assert_close(mean_scalarise()(second_moment)(data, weight, standardise=False), ref.mean())
    mu = weight @ data / weight.sum(-1, keepdim=True)
    torch.testing.assert_close(second_moment_centred(data, weight, mu), ref)


def test_hypercoil_second_moment_centre_equivalence() -> None:
    data, weight = normal(10, 20, seed=0), normal(3, 10, seed=1)   # signed weights, as hypercoil's test
    mu = weight @ data / weight.sum(-1, keepdim=True)
    torch.testing.assert_close(mean_scalarise()(second_moment_centred)(data, weight, mu),
                               mean_scalarise()(second_moment)(data, weight))


def test_hypercoil_batch_corr_through_qcfc() -> None:
    n_channels, n_observations = 10, 20
    for n in (100, 1000):
        base = torch.linspace(0.8, 1.2, n, dtype=torch.float64)
        data = 0.1 * normal(n, n_channels, n_observations, seed=0) + 0.9 * base[:, None, None]
        q_noise = normal(n, seed=1)
        plain, thresholded = [], []
        for c in (0.1, 0.5, 0.9):
            q = c * base + (1 - c) * q_noise
            assert qcfc(data, q, tol="auto").shape == (n_channels * n_observations, 1)
            plain.append(mean_scalarise()(batch_corr)(data, q))
            thresholded.append(mean_scalarise()(qcfc)(data, q, tol="auto"))
            assert plain[-1] > thresholded[-1]
        assert plain[0] < plain[1] < plain[2] and thresholded[0] < thresholded[1] < thresholded[2]


@pytest.mark.parametrize("d", [5, 10, 20, 50, 100])
def test_hypercoil_multivariate_kurtosis_expected_value(d) -> None:
    ts = normal(10, d, 2000, seed=0)
    torch.testing.assert_close(mean_scalarise()(multivariate_kurtosis)(ts), torch.tensor(-d * (d + 2.0),
                               dtype=torch.float64), rtol=0.05, atol=0)
    torch.testing.assert_close(mean_scalarise()(multivariate_kurtosis)(ts, dimensional_scaling=True),
                               torch.tensor(-1.0, dtype=torch.float64), rtol=0, atol=0.01)


def test_hypercoil_moment_modules_wrap_their_functionals() -> None:
    X, Y = normal(10, 10, seed=0), normal(10, 10, seed=1)
    torch.testing.assert_close(nr.SecondMomentLoss(standardise=True, skip_normalise=True)(X, Y),
                               mean_scalarise()(second_moment)(X, Y, standardise=True, skip_normalise=True))
    Z = Y @ X
    options = {"standardise_data": True, "standardise_mu": True, "skip_normalise": True}
    torch.testing.assert_close(nr.SecondMomentCentredLoss(**options)(X, Y, Z),
                               mean_scalarise()(second_moment_centred)(X, Y, Z, **options))
    N = Y.sum(-1)
    torch.testing.assert_close(nr.BatchCorrelationLoss(tol="auto", tol_sig=0.1, abs=True)(X, N),
                               mean_scalarise()(batch_corr)(X, N, tol="auto", tol_sig=0.1, abs=True))
    torch.testing.assert_close(nr.QCFCLoss(tol="auto", tol_sig=0.1, abs=False)(X, N),
                               mean_scalarise()(qcfc)(X, N, tol="auto", tol_sig=0.1, abs=False))
    U = X @ X.T
    torch.testing.assert_close(nr.MultivariateKurtosis(l2=0.01, dimensional_scaling=True)(U),
                               mean_scalarise()(multivariate_kurtosis)(U, l2=0.01, dimensional_scaling=True))


# --- every option against NumPy -------------------------------------------------------------------------
@pytest.mark.parametrize("standardise", [False, True])
@pytest.mark.parametrize("skip_normalise", [False, True])
def test_second_moment_options_against_numpy(standardise, skip_normalise) -> None:
    X, weight = normal(12, 7, seed=0) + 3.0, normal(4, 12, seed=1).abs()
    value = second_moment(X, weight, standardise=standardise, skip_normalise=skip_normalise)
    expected = np_second_moment(X.numpy(), weight.numpy(), standardise=standardise, skip_normalise=skip_normalise)
    torch.testing.assert_close(value, torch.from_numpy(expected))


@pytest.mark.parametrize("standardise_data", [False, True])
@pytest.mark.parametrize("standardise_mu", [False, True])
def test_second_moment_centred_options_against_numpy(standardise_data, standardise_mu) -> None:
    # W != T: hypercoil's standardise_mu (means without keepdims) would not broadcast here; this z-scores rows.
    X, weight, mu = normal(12, 7, seed=0), normal(4, 12, seed=1), normal(4, 7, seed=2) + 1.0
    value = second_moment_centred(X, weight, mu, standardise_data=standardise_data, standardise_mu=standardise_mu,
                                  skip_normalise=True)
    expected = np_second_moment(X.numpy(), weight.numpy(), mu.numpy(), standardise_data, standardise_mu, True)
    torch.testing.assert_close(value, torch.from_numpy(expected))


def test_second_moment_batched() -> None:
    X, weight = normal(2, 9, 5, seed=0), normal(2, 3, 9, seed=1).abs()
    value = second_moment(X, weight)
    for b in range(2):
        torch.testing.assert_close(value[b], torch.from_numpy(np_second_moment(X[b].numpy(), weight[b].numpy())))


def test_expanded_second_moment_keeps_float32_precision_on_offset_data() -> None:
    # Data far from 0 (a BOLD-like baseline of 1000) with unit spread: the expansion must not cancel.
    X, weight = 1000.0 + normal(50, 30, seed=0), normal(6, 50, seed=1).abs()
    exact = torch.from_numpy(np_second_moment(X.numpy(), weight.numpy()))
    value = second_moment(X.float(), weight.float())
    torch.testing.assert_close(value.double(), exact, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_multivariate_kurtosis_against_numpy(l2) -> None:
    ts = normal(2, 4, 30, seed=0) + 0.5
    value = multivariate_kurtosis(ts, l2=l2)
    expected = []
    for series in ts.numpy():
        precision = np.linalg.inv(np.cov(series) + l2 * np.eye(4))
        expected.append(-np.mean([(x @ precision @ x) ** 2 for x in series.T]))
    torch.testing.assert_close(value, torch.tensor(expected, dtype=torch.float64))


# --- gradients, held parameters ---------------------------------------------------------------------------
def test_gradients_in_float64() -> None:
    X, weight, mu = (t.requires_grad_(True) for t in (normal(6, 5, seed=0), normal(3, 6, seed=1), normal(3, 5, seed=2)))
    assert torch.autograd.gradcheck(lambda X, w: second_moment(X, w, standardise=True), (X, weight))
    assert torch.autograd.gradcheck(lambda X, w, m: second_moment_centred(X, w, m, standardise_mu=True),
                                    (X, weight, mu))
    ts = normal(3, 12, seed=3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda ts: multivariate_kurtosis(ts, l2=0.1), (ts,))


def test_second_moment_loss_on_a_held_parcellation_of_bound_data() -> None:
    X = normal(20, 8, seed=0)
    weight = nn.Parameter(normal(3, 20, seed=1).softmax(0))
    loss = nr.SecondMomentLoss(weight, Lambda=0.5, X=X, skip_normalise=True)
    torch.testing.assert_close(loss(), 0.5 * second_moment(X, weight, skip_normalise=True).mean())
    loss().backward()
    assert weight.grad is not None and "X" in loss.state_dict()
    mu = torch.zeros(3, 8, dtype=torch.float64)
    centred = nr.SecondMomentCentredLoss(weight, X=X, mu=mu)
    torch.testing.assert_close(centred(), second_moment_centred(X, weight, mu).mean())


@pytest.mark.parametrize("build", [
    lambda: (nr.SecondMomentLoss(standardise=True), (normal(20, 8, seed=0), normal(3, 20, seed=1).abs())),
    lambda: (nr.SecondMomentCentredLoss(), (normal(20, 8, seed=0), normal(3, 20, seed=1).abs(), normal(3, 8, seed=2))),
    lambda: (nr.MultivariateKurtosis(l2=0.1), (normal(3, 40, seed=0),)),
    lambda: (nr.QCFCLoss(tol="auto"), (normal(12, 4, seed=0), normal(12, seed=1))),
], ids=["second-moment", "second-moment-centred", "kurtosis", "qcfc"])
def test_compiles_to_one_graph(build) -> None:
    torch._dynamo.reset()
    loss, args = build()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*args), loss(*args))


# --- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: second_moment(torch.ones(5, 3), torch.ones(2, 4)), ValueError, "weight must have one column per"),
        (lambda: second_moment(torch.ones(5, 3), torch.ones(2, 5), standardise=1), TypeError, "standardise must be"),
        (lambda: second_moment_centred(torch.ones(5, 3), torch.ones(2, 5), [1.0]), TypeError, "mu must be a tensor"),
        (lambda: multivariate_kurtosis(torch.ones(5, 3), l2=-1.0), ValueError, "l2 must be in"),
        (lambda: multivariate_kurtosis(torch.ones(5)), ValueError, "ts must have at least 2 dimensions"),
        (lambda: qcfc(torch.ones(5, 3), torch.ones(4)), ValueError, "N must hold one value per batch element"),
        (lambda: nr.SecondMomentLoss()(torch.ones(5, 3)), ValueError, "SecondMomentLoss needs weight"),
        (lambda: nr.SecondMomentLoss([nn.Parameter(torch.ones(2, 5))]), ValueError, "SecondMomentLoss needs X"),
        (lambda: nr.SecondMomentCentredLoss(skip_normalise="yes"), TypeError, "skip_normalise must be a bool"),
        (lambda: nr.MultivariateKurtosis(dimensional_scaling=None), TypeError, "dimensional_scaling must be"),
        (lambda: nr.QCFCLoss(tol=-0.1), ValueError, "tol must be in"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- parity with hypercoil (JAX), where it imports -----------------------------------------------------------
def test_parity_with_hypercoil() -> None:
    hf = pytest.importorskip("hypercoil.loss.functional")
    jnp = pytest.importorskip("jax.numpy")
    X, weight, mu = normal(12, 7, seed=0).float(), normal(4, 12, seed=1).float(), normal(4, 7, seed=2).float()
    ts = normal(3, 5, 40, seed=3).float()

    def same(ours: torch.Tensor, theirs) -> None:
        torch.testing.assert_close(ours, torch.from_numpy(np.asarray(theirs)), rtol=1e-4, atol=1e-4)

    j = lambda t: jnp.asarray(t.numpy())  # noqa: E731
    for options in ({}, {"standardise": True}, {"skip_normalise": True}):
        same(second_moment(X, weight, **options), hf.second_moment(j(X), j(weight), **options))
    same(second_moment_centred(X, weight, mu, standardise_data=True),
         hf.second_moment_centred(j(X), j(weight), j(mu), standardise_data=True))
    for options in ({}, {"l2": 0.1, "dimensional_scaling": True}):
        same(multivariate_kurtosis(ts, **options), hf.multivariate_kurtosis(j(ts), **options))
    same(qcfc(X, X[:, 0] + mu[0, 0], tol="auto"), hf.qcfc(j(X), j(X[:, 0] + mu[0, 0]), tol="auto"))
