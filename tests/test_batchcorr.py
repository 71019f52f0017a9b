"""neuroreg.functional.batchcorr (batch_corr, auto_tol) and the BatchCorrelationLoss module."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

import neuroreg as nr
from neuroreg.functional import auto_tol, batch_corr
from tests.registry import make_params


def reference(X: np.ndarray, N: np.ndarray, tol: float = 0.0, abs: bool = True) -> np.ndarray:
    """hypercoil's definition in NumPy: features ordered as X.swapaxes(0, -1) flattened, one Pearson r each."""
    batch = X.shape[0]
    features = np.swapaxes(X, 0, -1).reshape(-1, batch)
    r = np.array([np.corrcoef(feature, N.ravel())[0, 1] for feature in features])[:, None]
    thresholded = np.maximum(np.abs(r) - tol, 0)
    return thresholded if abs else np.sign(r) * thresholded


def shared_signal(scale: float, batch: int = 64, features: int = 20, seed: int = 0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    N = torch.randn(batch, generator=generator, dtype=torch.float64)
    X = torch.randn(batch, features, generator=generator, dtype=torch.float64) + scale * N[:, None]
    return X, N


# --- values ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(9,), (9, 4), (9, 3, 2), (9, 2, 3, 2)])
@pytest.mark.parametrize(("tol", "abs"), [(0, True), (0.2, True), (0.1, False)])
def test_equals_numpy_pearson_in_hypercoil_feature_order(shape, tol, abs) -> None:
    X = torch.randn(shape, dtype=torch.float64)
    N = torch.randn(shape[0], dtype=torch.float64)
    result = batch_corr(X, N, tol=tol, abs=abs)
    features = int(np.prod(shape[1:]))
    assert result.shape == (features, 1)
    np.testing.assert_allclose(result.numpy(), reference(X.numpy(), N.numpy(), tol, abs), rtol=1e-10, atol=1e-12)


def test_n_may_have_any_shape_with_one_value_per_batch_element() -> None:
    X, N = shared_signal(1.0, batch=10, features=3)
    torch.testing.assert_close(batch_corr(X, N[:, None]), batch_corr(X, N))
    torch.testing.assert_close(batch_corr(X, N[None, :]), batch_corr(X, N))


def test_grows_with_the_shared_signal_and_auto_tolerance_is_smaller() -> None:
    values = [float(batch_corr(*shared_signal(scale)).mean()) for scale in (0.0, 0.3, 1.0, 3.0)]
    assert values == sorted(values) and values[-1] > 0.9
    for scale in (0.0, 0.3, 1.0):
        X, N = shared_signal(scale)
        auto = batch_corr(X, N, tol="auto")
        assert float(auto.mean()) < float(batch_corr(X, N).mean())
        torch.testing.assert_close(auto, batch_corr(X, N, tol=auto_tol(64)))


def test_sign_kept_without_abs() -> None:
    N = torch.arange(6, dtype=torch.float64)
    X = torch.stack([N, -N, N**2], dim=1)
    result = batch_corr(X, N, abs=False)
    assert result[0, 0] == pytest.approx(1.0) and result[1, 0] == pytest.approx(-1.0) and result[2, 0] > 0


def test_constant_features_and_constant_n_give_zero_with_zero_gradient() -> None:
    N = torch.randn(8, dtype=torch.float64, requires_grad=True)
    X = torch.cat([torch.full((8, 1), 0.1), torch.randn(8, 2)], dim=1).double().requires_grad_()
    result = batch_corr(X, N)
    assert float(result[0, 0].detach()) == 0.0 and torch.isfinite(result).all()
    result.sum().backward()
    assert torch.isfinite(X.grad).all() and torch.isfinite(N.grad).all()
    constant_n = batch_corr(X, torch.full((8,), 3.0, dtype=torch.float64))
    assert torch.count_nonzero(constant_n) == 0


# --- auto_tol -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [3, 5, 20, 200])
@pytest.mark.parametrize("significance", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("tails", [1, 2])
def test_auto_tol_inverts_the_t_test(batch, significance, tails) -> None:
    tol = auto_tol(batch, significance=significance, tails=tails)
    t = stats.t.ppf(1 - significance / tails, batch - 2)
    assert tol == pytest.approx(math.sqrt(t**2 / (batch - 2 + t**2)), rel=1e-12)
    # r = tol is exactly significant: its t statistic is the quantile.
    assert tol * math.sqrt((batch - 2) / (1 - tol**2)) == pytest.approx(t, rel=1e-9)
    assert 0 <= tol < 1  # 0 for a one-tailed test at 0.5: the t quantile is 0


def test_auto_tol_is_cached_per_batch_size() -> None:
    from neuroreg.functional.batchcorr import _auto_tol

    _auto_tol.cache_clear()
    for _ in range(3):
        auto_tol(37)
    info = _auto_tol.cache_info()
    assert (info.misses, info.hits) == (1, 2)


# --- gradients and numerics ---------------------------------------------------------------------------
@pytest.mark.parametrize(("tol", "abs"), [(0, True), (0.05, False)])
def test_gradcheck(tol, abs) -> None:
    X = torch.randn(7, 3, 2, dtype=torch.float64, requires_grad=True)
    N = torch.randn(7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, n: batch_corr(x, n, tol=tol, abs=abs), (X, N))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_computes_in_float32_and_returns_the_input_dtype(dtype) -> None:
    X, N = shared_signal(1.0, batch=256)
    result = batch_corr(X.to(dtype), N.to(dtype))
    assert result.dtype == dtype
    torch.testing.assert_close(result.float(), batch_corr(X.to(dtype).float(), N.to(dtype).float()), atol=1e-2, rtol=0)


def test_import_does_not_load_the_compiler() -> None:
    # torch._dynamo (and with it sympy) costs over a second to import: `import neuroreg` must not pull it in.
    code = "import sys, torch, neuroreg; print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["False", "False"], result.stdout + result.stderr


def test_compiled_auto_tolerance_is_one_graph_per_batch_size_and_equals_eager() -> None:
    import torch._dynamo.testing

    torch._dynamo.reset()
    loss = nr.BatchCorrelationLoss(tol="auto", tol_sig=0.5)
    counter = torch._dynamo.testing.CompileCounterWithBackend("inductor")
    compiled = torch.compile(loss, backend=counter, fullgraph=True)  # fullgraph: a graph break is an error
    frames = []
    for batch in (10, 24, 10, 40):  # the second size makes dynamo try a dynamic batch size
        X, N = shared_signal(0.3, batch=batch, features=6, seed=batch)
        X.requires_grad_()
        value = compiled(X, N)
        (grad,) = torch.autograd.grad(value, X)
        expected_X = X.detach().clone().requires_grad_()
        expected = loss(expected_X, N)
        (expected_grad,) = torch.autograd.grad(expected, expected_X)
        torch.testing.assert_close(value, expected)
        torch.testing.assert_close(grad, expected_grad)
        assert float(expected.detach()) > 0  # the tolerance leaves something to compare
        # the tolerance in the graph is the batch size's own, not the first one traced
        np.testing.assert_allclose(float(expected.detach()),
                                   np.mean(np.maximum(np.abs(reference(X.detach().numpy(), N.numpy()))
                                                      - auto_tol(batch, 0.5), 0)), rtol=1e-10)
        frames.append(counter.frame_count)
    # A new graph for each new batch size (its own constant tolerance), none for the repeated 10. Counted as
    # changes: Dynamo may restart an analysis and call the backend twice for one graph.
    assert frames[0] >= 1 and frames[1] > frames[0] and frames[2] == frames[1] and frames[3] > frames[2]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_inf_in_a_feature_or_in_n_is_nan_not_a_number(bad: float) -> None:
    X, N = shared_signal(1.0, batch=10, features=4)
    X[3, 2] = bad
    result = batch_corr(X, N)
    assert torch.isnan(result[2]).all() and torch.isfinite(result[[0, 1, 3]]).all()
    N[0] = bad
    assert torch.isnan(batch_corr(shared_signal(1.0, batch=10, features=4)[0], N)).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_finite_inputs_give_the_correlation_of_the_rescaled_inputs(dtype) -> None:
    X, N = shared_signal(1.0, batch=12, features=5)
    expected = reference(X.numpy(), N.numpy(), tol=0.1)
    huge = 0.1 * torch.finfo(dtype).max ** 0.75  # its square, and any sum of squares, overflows
    Xh, Nh = (X * huge).to(dtype).requires_grad_(), (N * huge).to(dtype)
    result = batch_corr(Xh, Nh, tol=0.1)
    np.testing.assert_allclose(result.detach().double().numpy(), expected, rtol=1e-5, atol=1e-6)
    result.sum().backward()
    assert torch.isfinite(Xh.grad).all()


# --- modules --------------------------------------------------------------------------------------------
def test_module_default_mean_and_nu() -> None:
    X, N = shared_signal(1.0)
    torch.testing.assert_close(nr.BatchCorrelationLoss(nu=2.0)(X, N), 2 * batch_corr(X, N).mean())
    torch.testing.assert_close(nr.BatchCorrelationLoss(tol="auto")(X, N), batch_corr(X, N, tol="auto").mean())


def test_held_outputs_against_a_target_measure_in_a_list_with_an_l2() -> None:
    embedding, weight = make_params((16, 4), (3, 3))
    motion = torch.randn(16, dtype=torch.float64)
    qcfc = nr.BatchCorrelationLoss(embedding, target=motion, name="qcfc")
    assert "target" in qcfc.state_dict()
    regs = nr.RegularizationList([qcfc, nr.L2([weight], Lambda=0.5, name="l2")])
    torch.testing.assert_close(regs(), batch_corr(embedding.detach(), motion).mean() + 0.5 * weight.detach().norm())
    regs().backward()
    assert embedding.grad is not None and torch.isfinite(embedding.grad).all()


# --- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: batch_corr(torch.rand(6, 2), torch.rand(5)), ValueError, r"batch length 6, N has shape \(5,\)"),
        (lambda: batch_corr(torch.rand(6, 2), [1.0] * 6), TypeError, "N must be a tensor"),
        (lambda: batch_corr(torch.rand(6, 2), torch.rand(6), tol=-0.1), ValueError, "tol must be .*got -0.1"),
        (lambda: batch_corr(torch.rand(6, 2), torch.rand(6), tol="fixed"), ValueError, "tol must be one of"),
        (lambda: batch_corr(torch.rand(6, 2), torch.rand(6), tol_sig=1.0), ValueError, "tol_sig must be .*got 1.0"),
        (lambda: batch_corr(torch.rand(6, 2), torch.rand(6), tol_sig=0), ValueError, "tol_sig must be .*got 0"),
        (lambda: batch_corr(torch.rand(6, 2), torch.rand(6), abs=1), TypeError, "abs must be a bool"),
        (lambda: batch_corr(torch.rand(2, 3), torch.rand(2), tol="auto"), ValueError, "batch_size must be .*got 2"),
        (lambda: auto_tol(2), ValueError, "batch_size must be .*>= 3.*got 2"),
        (lambda: auto_tol(10, significance=1.5), ValueError, "significance must be .*got 1.5"),
        (lambda: auto_tol(10, tails=3), ValueError, "tails must be one of"),
        (lambda: nr.BatchCorrelationLoss(tol=-1), ValueError, "tol must be .*got -1"),
        (lambda: nr.BatchCorrelationLoss()(torch.rand(6, 2)), TypeError, r"takes 2 input\(s\) \(X, N\), got 1"),
        (lambda: nr.BatchCorrelationLoss(make_params((6, 2))), ValueError, "compares each with target="),
        (lambda: nr.BatchCorrelationLoss(target=torch.rand(6)), ValueError, "target is only used with params"),
        (lambda: nr.BatchCorrelationLoss(make_params((6, 2)), target=torch.rand(5)), ValueError, "batch length 6"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_auto_tolerance_follows_tol_sig_as_scipy_t_test() -> None:
    # The threshold for tol='auto' is the t-test's critical correlation at tol_sig, computed here with scipy
    # and NumPy's corrcoef (not with auto_tol): a tol_sig left out would fall back to 0.1 (0.378 at N=20,
    # instead of 0.166 at 0.5), which leaves most of these features under the threshold.
    generator = torch.Generator().manual_seed(3)
    N = torch.randn(20, generator=generator, dtype=torch.float64)
    X = 0.3 * N[:, None] * torch.arange(1, 7, dtype=torch.float64) + torch.randn(20, 6, generator=generator,
                                                                                 dtype=torch.float64)
    r = np.corrcoef(X.numpy().T, N.numpy())[-1, :-1]
    for tol_sig in (0.5, 0.02):
        t_squared = stats.t.ppf(1 - tol_sig / 2, 20 - 2) ** 2
        tol = np.sqrt(t_squared / (20 - 2 + t_squared))
        expected = np.clip(np.abs(r) - tol, 0, None)
        result = batch_corr(X, N, tol="auto", tol_sig=tol_sig)
        np.testing.assert_allclose(result.numpy().ravel(), expected, rtol=1e-10, atol=1e-12)
        loss = nr.BatchCorrelationLoss(tol="auto", tol_sig=tol_sig)(X, N)
        assert float(loss) == pytest.approx(expected.mean(), rel=1e-10)
        assert expected.min() < 1e-12 < expected.max()  # some features under the threshold, some above
