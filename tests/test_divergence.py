"""neuroreg.functional.divergence (KL and JS) and the JSDivergenceLoss / JSDivergenceLogitLoss modules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

import neuroreg as nr
from neuroreg.functional import js_divergence, js_divergence_logit, kl_divergence, kl_divergence_logit
from tests.registry import make_params

DIVERGENCES = [kl_divergence, kl_divergence_logit, js_divergence, js_divergence_logit]


def distributions(rows: int = 5, k: int = 7, seed: int = 0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    P, Q = (torch.randn(rows, k, generator=generator, dtype=torch.float64) for _ in range(2))
    return P, Q


# --- values against scipy -------------------------------------------------------------------------------
def test_mean_js_over_rows_equals_scipy() -> None:
    logits_p, logits_q = distributions()
    P, Q = logits_p.softmax(-1), logits_q.softmax(-1)
    expected = np.mean(jensenshannon(P.numpy(), Q.numpy(), axis=1) ** 2)
    assert float(js_divergence(P, Q).mean()) == pytest.approx(expected, rel=1e-10)
    assert float(js_divergence_logit(logits_p, logits_q).mean()) == pytest.approx(expected, rel=1e-10)
    assert float(nr.JSDivergenceLoss()(P, Q)) == pytest.approx(expected, rel=1e-10)
    assert float(nr.JSDivergenceLogitLoss()(logits_p, logits_q)) == pytest.approx(expected, rel=1e-10)


def test_mean_kl_over_rows_equals_scipy() -> None:
    logits_p, logits_q = distributions()
    P, Q = logits_p.softmax(-1), logits_q.softmax(-1)
    expected = entropy(P.numpy(), Q.numpy(), axis=1).mean()
    assert float(kl_divergence(P, Q).mean()) == pytest.approx(expected, rel=1e-10)
    assert float(kl_divergence_logit(logits_p, logits_q).mean()) == pytest.approx(expected, rel=1e-10)


def test_js_with_disjoint_supports_is_log_2_and_exact_zeros_are_finite() -> None:
    P = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], requires_grad=True)
    Q = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.5, 0.5]], requires_grad=True)
    js = js_divergence(P, Q)
    torch.testing.assert_close(js[0, 0], torch.tensor(math.log(2)))
    expected = jensenshannon(P.detach().numpy(), Q.detach().numpy(), axis=1) ** 2
    np.testing.assert_allclose(js.detach().squeeze(-1).numpy(), expected, rtol=1e-6)
    for value in (js.sum(), kl_divergence(P, Q).sum(), kl_divergence(Q, P).sum()):
        P.grad = Q.grad = None
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(P.grad).all() and torch.isfinite(Q.grad).all()


def test_kl_terms_where_p_is_zero_vanish() -> None:
    P = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    Q = torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64)
    assert float(kl_divergence(P, Q)) == pytest.approx(math.log(2))


@pytest.mark.parametrize("function", [js_divergence_logit, kl_divergence_logit])
def test_logits_up_to_1e4_in_float32_are_finite(function) -> None:
    P = (torch.randn(6, 9) * 1e4).requires_grad_()
    Q = (torch.randn(6, 9) * 1e4).requires_grad_()
    value = function(P, Q).sum()
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(P.grad).all() and torch.isfinite(Q.grad).all()


# --- NaN, inf and -inf inputs ---------------------------------------------------------------------------
@pytest.mark.parametrize("function", [kl_divergence, js_divergence])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.5])
def test_nan_inf_or_negative_probability_is_never_a_finite_number(function, bad: float) -> None:
    P = torch.tensor([[0.2, 0.3, 0.5], [0.0, 0.5, 0.5]], dtype=torch.float64)
    Q = torch.tensor([[0.1, 0.1, 0.8], [0.5, 0.5, 0.0]], dtype=torch.float64)
    for row, column in ((0, 1), (1, 0)):  # (1, 0): where P is an exact zero, a masked term
        for bad_p in (True, False):
            p, q = P.clone(), Q.clone()
            (p if bad_p else q)[row, column] = bad
            value = function(p, q)
            assert not torch.isfinite(value[row]), (row, column, bad_p, value)
            torch.testing.assert_close(value[1 - row], function(P, Q)[1 - row])  # the other row is untouched
    all_nan = function(torch.full((3,), math.nan), torch.tensor([0.2, 0.3, 0.5]))
    assert torch.isnan(all_nan).all()


def test_js_loss_on_a_held_parameter_holding_a_nan_is_nan() -> None:
    probs = torch.nn.Parameter(torch.tensor([[0.2, 0.8], [math.nan, 0.5]]))
    assert torch.isnan(nr.JSDivergenceLoss([probs], target=torch.tensor([0.5, 0.5]))())


@pytest.mark.parametrize("function", [js_divergence_logit, kl_divergence_logit])
def test_nan_or_inf_logits_give_nan(function) -> None:
    for bad in (math.nan, math.inf):
        logits = torch.tensor([[0.0, bad, 1.0], [0.0, 2.0, 1.0]], dtype=torch.float64)
        for value in (function(logits, torch.zeros(3, dtype=torch.float64)),
                      function(torch.zeros(3, dtype=torch.float64), logits)):
            assert torch.isnan(value[0]).all() and torch.isfinite(value[1]).all()


@pytest.mark.parametrize("reduce", [True, False])
def test_minus_inf_logits_are_zero_probabilities_with_finite_gradients(reduce: bool) -> None:
    P = torch.tensor([[0.0, 1.0, -math.inf], [-math.inf, 2.0, 0.5]], dtype=torch.float64, requires_grad=True)
    Q = torch.tensor([[1.0, -math.inf, 0.0], [-math.inf, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    probs_p, probs_q = P.detach().softmax(-1).numpy(), Q.detach().softmax(-1).numpy()
    assert (probs_p == 0).sum() == 2 and (probs_q == 0).sum() == 2
    # JS as scipy computes it on the probabilities with their exact zeros.
    js = js_divergence_logit(P, Q, reduce=reduce)
    js_rows = js if reduce else js.sum(-1, keepdim=True)
    np.testing.assert_allclose(js_rows.detach().squeeze(-1).numpy(),
                               jensenshannon(probs_p, probs_q, axis=1) ** 2, rtol=1e-12)
    # KL: a zero q (where p > 0) counts as the smallest normal number, as kl_divergence's zero Q does.
    kl = kl_divergence_logit(P, Q, reduce=reduce)
    safe_q = np.where(probs_q == 0, np.finfo(np.float64).tiny, probs_q)
    expected_kl = np.where(probs_p == 0, 0.0, probs_p * (np.log(np.where(probs_p == 0, 1, probs_p)) - np.log(safe_q)))
    kl_rows = kl if reduce else kl.sum(-1, keepdim=True)
    np.testing.assert_allclose(kl_rows.detach().squeeze(-1).numpy(), expected_kl.sum(-1), rtol=1e-12)
    kl_grads = torch.autograd.grad(kl.sum(), (P, Q))
    assert all(torch.isfinite(g).all() for g in kl_grads) and kl_grads[0][0, 2] == 0 and kl_grads[0][1, 0] == 0
    # JS's gradient equals autograd's on the same distributions with the masked classes at a finite logit so
    # low that its probability underflows to 0 (where the earlier formula had no 0 * -inf).
    js_grads = torch.autograd.grad(js.sum(), (P, Q))
    finite_p, finite_q = (t.detach().clamp_min(-1e3).requires_grad_() for t in (P, Q))
    log_p, log_q = finite_p.log_softmax(-1), finite_q.log_softmax(-1)
    log_m = torch.logaddexp(log_p, log_q) - math.log(2)
    reference = 0.5 * (log_p.exp() * (log_p - log_m) + log_q.exp() * (log_q - log_m))
    for got, want in zip(js_grads, torch.autograd.grad(reference.sum(), (finite_p, finite_q))):
        torch.testing.assert_close(got, want)


# --- shapes and options -----------------------------------------------------------------------------------
@pytest.mark.parametrize("function", DIVERGENCES)
@pytest.mark.parametrize(
    ("shape_p", "shape_q", "axis", "keepdims", "out"),
    [
        ((5, 7), (5, 7), -1, True, (5, 1)),
        ((5, 7), (7,), -1, False, (5,)),
        ((2, 5, 7), (2, 5, 7), 1, True, (2, 1, 7)),
        ((2, 5, 7), (5, 7), (-2, -1), False, (2,)),
        ((3, 2, 5, 7), (3, 2, 5, 7), (0, 3), True, (1, 2, 5, 1)),
    ],
)
def test_shapes_axes_keepdims_and_broadcasting(function, shape_p, shape_q, axis, keepdims, out) -> None:
    P, Q = torch.rand(shape_p, dtype=torch.float64), torch.rand(shape_q, dtype=torch.float64)
    reduced = function(P, Q, axis=axis, keepdims=keepdims)
    assert reduced.shape == out
    terms = function(P, Q, axis=axis, reduce=False)
    assert terms.shape == torch.broadcast_shapes(P.shape, Q.shape)
    torch.testing.assert_close(terms.sum(axis, keepdim=keepdims), reduced)


@settings(max_examples=40, deadline=None)
@given(
    p=st.lists(st.floats(0, 1), min_size=4, max_size=4).filter(lambda v: sum(v) > 1e-3),
    q=st.lists(st.floats(0, 1), min_size=4, max_size=4).filter(lambda v: sum(v) > 1e-3),
)
def test_js_properties_nonnegative_zero_on_itself_symmetric_bounded(p, q) -> None:
    P = torch.tensor(p, dtype=torch.float64)
    Q = torch.tensor(q, dtype=torch.float64)
    P, Q = P / P.sum(), Q / Q.sum()
    js = js_divergence(P, Q)
    assert 0 <= float(js) <= math.log(2) + 1e-12
    assert float(js_divergence(P, P)) == pytest.approx(0, abs=1e-15)
    torch.testing.assert_close(js, js_divergence(Q, P))


# --- gradients and dtypes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("function", DIVERGENCES)
def test_gradcheck(function) -> None:
    P, Q = (torch.rand(3, 4, dtype=torch.float64) + 0.1 for _ in range(2))
    inputs = (P.requires_grad_(), Q.requires_grad_())
    assert torch.autograd.gradcheck(lambda p, q: function(p, q, axis=(0, 1)), inputs)


@pytest.mark.parametrize(
    ("shape_p", "shape_q", "axis", "keepdims"),
    [
        ((5, 7), (5, 7), -1, False),
        ((5, 7), (7,), -1, True),
        ((2, 5, 7), (5, 1), (0, 2), False),
        ((3, 4), (3, 4), 0, True),
    ],
)
def test_js_logit_closed_form_gradient_equals_autograd_of_the_terms(shape_p, shape_q, axis, keepdims) -> None:
    P = torch.randn(shape_p, dtype=torch.float64, requires_grad=True)
    Q = torch.randn(shape_q, dtype=torch.float64, requires_grad=True)
    weights = torch.rand_like(js_divergence_logit(P, Q, axis=axis, keepdims=keepdims))
    closed = torch.autograd.grad((js_divergence_logit(P, Q, axis=axis, keepdims=keepdims) * weights).sum(), (P, Q))
    terms = js_divergence_logit(P, Q, axis=axis, reduce=False).sum(axis, keepdim=keepdims)
    expected = torch.autograd.grad((terms * weights).sum(), (P, Q))
    for got, want in zip(closed, expected):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want)
    only_p = torch.autograd.grad(js_divergence_logit(P, Q.detach(), axis=axis).sum(), P)[0]
    assert torch.isfinite(only_p).all()


def test_torch_func_transforms_differentiate_js_logit_terms() -> None:
    # The closed form is a plain autograd.Function, which functorch cannot batch: under vmap and grad the
    # terms are differentiated instead. Reference: JS written out with torch ops, and SciPy's distance squared.
    P = torch.randn(3, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    Q = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    values = torch.func.vmap(lambda x: js_divergence_logit(x, Q).sum())(P)
    p, q = P.softmax(-1).numpy(), Q.softmax(-1).numpy()
    expected = [sum(jensenshannon(row, q) ** 2 for row in rows) for rows in p]
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-10)

    def written_out(x: torch.Tensor) -> torch.Tensor:
        px, qx = x.softmax(-1), Q.softmax(-1)
        m = 0.5 * (px + qx)
        return 0.5 * ((px * (px / m).log()).sum() + (qx * (qx / m).log()).sum())

    got = torch.func.grad(lambda x: js_divergence_logit(x, Q).sum())(P)
    leaf = P.clone().requires_grad_()
    torch.testing.assert_close(got, torch.autograd.grad(written_out(leaf), leaf)[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("function", DIVERGENCES)
def test_reduced_precision_returns_the_input_dtype(function, dtype) -> None:
    logits_p, logits_q = (t.float() for t in distributions(rows=4, k=50))
    if "logit" not in function.__name__:
        logits_p, logits_q = logits_p.softmax(-1), logits_q.softmax(-1)
    low = function(logits_p.to(dtype), logits_q.to(dtype))
    assert low.dtype == dtype and torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), function(logits_p.to(dtype).float(), logits_q.to(dtype).float()),
                               rtol=1e-2, atol=1e-3)


# --- modules --------------------------------------------------------------------------------------------
def test_module_defaults_keepdims_false_and_mean() -> None:
    logits_p, logits_q = distributions(rows=4)
    P, Q = logits_p.softmax(-1), logits_q.softmax(-1)
    loss = nr.JSDivergenceLoss(scalarisation=nr.scalarise.sum_scalarise(axis=0))
    torch.testing.assert_close(loss(P, Q), js_divergence(P, Q, keepdims=False).sum(0))


def test_held_parameters_against_a_target_buffer() -> None:
    w1, w2 = make_params((3, 5), (2, 4, 5))
    target = torch.randn(5, dtype=torch.float64)
    reg = nr.JSDivergenceLogitLoss([w1, w2], nu=2.0, target=target)
    assert "target" in dict(reg.named_buffers())
    expected = js_divergence_logit(w1, target).mean() + js_divergence_logit(w2, target).mean()
    torch.testing.assert_close(reg(), 2.0 * expected)
    torch.testing.assert_close(reg.state_dict()["target"], target)


def test_in_a_list_with_an_l2() -> None:
    logits, weight = make_params((4, 6), (3, 3))
    js = nr.JSDivergenceLogitLoss([logits], target=torch.zeros(6, dtype=torch.float64), name="js")
    regs = nr.RegularizationList([js, nr.L2([weight], name="l2")])
    torch.testing.assert_close(regs(), js() + weight.detach().norm())
    regs().backward()
    assert torch.isfinite(logits.grad).all()


# --- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: js_divergence(torch.rand(2, 3), torch.rand(4)), ValueError,
         r"P and Q must have shapes that broadcast together, got \(2, 3\) and \(4,\)"),
        (lambda: kl_divergence(torch.rand(2, 3), torch.rand(2, 3), axis=2), ValueError, "axis 2 is out of range"),
        (lambda: js_divergence_logit(torch.rand(3), torch.rand(3), keepdims=1), TypeError, "keepdims must be a bool"),
        (lambda: kl_divergence_logit(torch.rand(3), torch.rand(3), reduce="no"), TypeError, "reduce must be a bool"),
        (lambda: js_divergence(torch.rand(3), [0.5, 0.5, 0.0]), TypeError, "Q must be a tensor"),
        (lambda: nr.JSDivergenceLoss()(torch.rand(3)), TypeError, r"takes 2 input\(s\) \(P, Q\), got 1"),
        (lambda: nr.JSDivergenceLoss()(), ValueError, "holds no parameters"),
        (lambda: nr.JSDivergenceLogitLoss(make_params((3, 4))), ValueError, "compares each with target="),
        (lambda: nr.JSDivergenceLogitLoss(target=torch.rand(4)), ValueError, "target is only used with params"),
        (lambda: nr.JSDivergenceLogitLoss(make_params((3, 4)), target=torch.rand(5)), ValueError, "broadcast"),
        (lambda: nr.JSDivergenceLogitLoss(make_params((3, 4)), target=[0.0] * 4), TypeError, "target must be a tensor"),
        (lambda: nr.JSDivergenceLoss(axis=1.0), TypeError, "axis must be an int or a sequence of ints"),
        (lambda: nr.JSDivergenceLoss(keepdims=None), TypeError, "keepdims must be a bool, got None"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kl_where_q_is_zero_uses_the_smallest_normal_number(dtype) -> None:
    # A term with P > 0 = Q is P log(P / tiny) (353.5 for P = 1/2 in float64, 43.0 in float32): large but
    # finite, with the gradient of that expression in P and none in the zero Q. NumPy computes it here.
    P = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=dtype, requires_grad=True)
    Q = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.0, 0.8]], dtype=dtype, requires_grad=True)
    p, q = P.detach().double().numpy(), Q.detach().double().numpy()
    tiny = float(torch.finfo(dtype).tiny)
    log_q = np.log(np.where(q > 0, q, tiny))
    safe_p = np.where(p > 0, p, 1.0)
    expected = np.where(p > 0, p * (np.log(safe_p) - log_q), 0.0).sum(-1, keepdims=True)
    result = kl_divergence(P, Q)
    np.testing.assert_allclose(result.detach().double().numpy(), expected, rtol=1e-6)
    result.sum().backward()
    np.testing.assert_allclose(P.grad.double().numpy(), np.where(p > 0, np.log(safe_p) - log_q + 1, 0.0), rtol=1e-6)
    np.testing.assert_allclose(Q.grad.double().numpy(), np.where(q > 0, -p / np.where(q > 0, q, 1.0), 0.0),
                               rtol=1e-6)
