"""neuroreg.functional.entropy and the information modules (EntropyLoss, EntropyLogitLoss, KLDivergenceLoss,
KLDivergenceLogitLoss): hypercoil's own tests translated, then SciPy/NumPy/autograd checks of every option."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as entropy_ref

import neuroreg as nr
from neuroreg.functional import entropy, entropy_logit, kl_divergence, kl_divergence_logit
from neuroreg.scalarise import max_scalarise, mean_scalarise, sum_scalarise
from tests.registry import make_params


def distributions(seed: int = 0, shape: tuple = (5, 10)) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator)
    probs = torch.rand(shape, generator=generator)
    return logits, probs / probs.sum(-1, keepdim=True)


# --- hypercoil's tests/loss/test_functional.py ---------------------------------------------------------
def test_entropy_loss() -> None:
    distr_logits, distr = distributions()
    out = mean_scalarise()(entropy)(distr)
    assert torch.isclose(out, torch.tensor(entropy_ref(distr.numpy(), axis=1).mean()))
    out = mean_scalarise()(entropy_logit)(distr_logits)
    ref = entropy_ref(torch.softmax(distr_logits, -1).numpy(), axis=1).mean()
    assert torch.isclose(out, torch.tensor(ref, dtype=torch.float32))


def test_kl_loss() -> None:
    P_logits, P = distributions(1)
    Q_logits, Q = distributions(2)
    out = mean_scalarise()(kl_divergence)(P, Q)
    assert float(out) == pytest.approx(entropy_ref(P.numpy(), Q.numpy(), axis=1).mean(), abs=1e-4)
    out = mean_scalarise()(kl_divergence_logit)(P_logits, Q_logits)
    ref = entropy_ref(P_logits.softmax(-1).numpy(), Q_logits.softmax(-1).numpy(), axis=1).mean()
    assert float(out) == pytest.approx(ref, abs=1e-4)


# --- hypercoil's tests/loss/test_nn.py ----------------------------------------------------------------------
def test_loss_modules_wrap_their_functionals() -> None:
    XY = torch.randn(2, 10, 10, generator=torch.Generator().manual_seed(578423))
    X, Y = XY[0], XY[1]
    S, T = X.abs(), Y.abs()
    S, T = S / S.sum(-2, keepdim=True), T / T.sum(-2, keepdim=True)
    torch.testing.assert_close(nr.EntropyLoss(axis=-2)(S), mean_scalarise()(entropy)(S, axis=-2))
    torch.testing.assert_close(nr.EntropyLogitLoss(axis=-2)(X), mean_scalarise()(entropy_logit)(X, axis=-2))
    torch.testing.assert_close(nr.KLDivergenceLoss(axis=-2)(S, T), mean_scalarise()(kl_divergence)(S, T, axis=-2))
    torch.testing.assert_close(
        nr.KLDivergenceLogitLoss(axis=-2)(X, Y), mean_scalarise()(kl_divergence_logit)(X, Y, axis=-2)
    )


# --- SciPy / NumPy checks of every option -------------------------------------------------------------------
@pytest.mark.parametrize(("axis", "keepdims"), [(-1, True), (0, False), ((0, 2), True), ((-1, -2), False)])
def test_entropy_over_axes_equals_numpy(axis, keepdims) -> None:
    logits = torch.randn(3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    P = logits.exp() / logits.exp().sum(axis, keepdim=True)
    p = P.numpy()
    expected = -(p * np.log(p)).sum(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(entropy(P, axis=axis, keepdims=keepdims).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(entropy_logit(logits, axis=axis, keepdims=keepdims).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(entropy(P, reduce=False).numpy(), -p * np.log(p), rtol=1e-12)


def test_default_axis_is_the_last_of_any_rank() -> None:
    logits = torch.randn(2, 3, 4, dtype=torch.float64)
    p = logits.softmax(-1).numpy()
    expected = entropy_ref(p, axis=-1)[..., None]
    np.testing.assert_allclose(entropy(logits.softmax(-1)).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(entropy_logit(logits).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("temperature", [0.25, 1.0, 2.0, 3.0])
def test_temperature_divides_the_logits(temperature) -> None:
    logits = torch.randn(4, 6, dtype=torch.float64)
    p = torch.softmax(logits / temperature, -1).numpy()
    np.testing.assert_allclose(
        entropy_logit(logits, temperature=temperature, keepdims=False).numpy(), entropy_ref(p, axis=1), rtol=1e-12
    )


def test_exact_zeros_are_zero_terms_with_finite_gradients() -> None:
    P = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    H = entropy(P, keepdims=False)
    torch.testing.assert_close(H.detach(), torch.tensor([math.log(2), 0.0], dtype=torch.float64))
    H.sum().backward()
    expected = torch.tensor([[math.log(2) - 1, math.log(2) - 1, 0.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(P.grad, expected)  # -(log p + 1), and 0 at the zeros


def test_a_negative_probability_is_nan_not_a_number() -> None:
    H = entropy(torch.tensor([[0.5, 0.5], [1.5, -0.5]]), keepdims=False)
    assert torch.isfinite(H[0]) and torch.isnan(H[1])


def test_masked_and_huge_logits_are_finite() -> None:
    logits = torch.tensor([[0.0, 0.0, -math.inf], [1e4, -1e4, 0.0]], requires_grad=True)
    H = entropy_logit(logits, keepdims=False)
    torch.testing.assert_close(H.detach(), torch.tensor([math.log(2), 0.0]))
    H.sum().backward()
    assert torch.isfinite(logits.grad).all()
    terms = entropy_logit(logits, reduce=False)
    assert torch.isfinite(terms).all()


@pytest.mark.parametrize(
    "options",
    [{}, {"axis": 0}, {"axis": (0, 2), "keepdims": False}, {"temperature": 0.3, "axis": -2, "keepdims": False}],
)
def test_closed_form_gradient_equals_autograd(options) -> None:
    logits = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: entropy_logit(x, **options), (logits,))
    # Against autograd through the unreduced terms, which the closed form does not use.
    axis = options.get("axis", -1)
    weights = torch.randn_like(entropy_logit(logits, **options))
    closed = torch.autograd.grad((entropy_logit(logits, **options) * weights).sum(), logits)[0]
    unreduced = {k: v for k, v in options.items() if k != "keepdims"}
    terms = entropy_logit(logits, reduce=False, **unreduced).sum(axis, keepdim=options.get("keepdims", True))
    torch.testing.assert_close(closed, torch.autograd.grad((terms * weights).sum(), logits)[0])


def test_torch_func_transforms_differentiate_the_terms() -> None:
    logits = torch.randn(3, 4, 5, dtype=torch.float64)
    values = torch.func.vmap(lambda x: entropy_logit(x, axis=0).sum())(logits)
    torch.testing.assert_close(values, torch.stack([entropy_logit(x, axis=0).sum() for x in logits]))
    got = torch.func.grad(lambda x: entropy_logit(x, keepdims=False).sum())(logits)
    leaf = logits.clone().requires_grad_()
    torch.testing.assert_close(got, torch.autograd.grad(entropy_logit(leaf, keepdims=False).sum(), leaf)[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_is_computed_in_float32(dtype) -> None:
    logits = torch.randn(4, 300)
    H = entropy_logit(logits.to(dtype))
    assert H.dtype == dtype
    torch.testing.assert_close(H.float(), entropy_logit(logits), rtol=1e-2, atol=1e-2)
    assert entropy(logits.softmax(-1).to(dtype)).dtype == dtype


def test_modules_on_held_parameters_and_their_defaults() -> None:
    logits = make_params((4, 6), (2, 3, 6))
    reg = nr.EntropyLogitLoss(logits, Lambda=0.5)
    expected = 0.5 * sum(entropy_ref(p.detach().softmax(-1).numpy(), axis=-1).mean() for p in logits)
    assert float(reg().detach()) == pytest.approx(expected, rel=1e-12)
    target = torch.randn(6, dtype=torch.float64)
    kl = nr.KLDivergenceLogitLoss(logits, target=target, scalarisation=sum_scalarise())
    q = target.softmax(-1).numpy()
    expected = sum(
        entropy_ref(p.detach().softmax(-1).numpy(), np.broadcast_to(q, p.shape), axis=-1).sum() for p in logits
    )
    assert float(kl().detach()) == pytest.approx(expected, rel=1e-12)
    P = [torch.nn.Parameter(p.detach().softmax(-1)) for p in logits]
    assert float(nr.EntropyLoss(P, keepdims=True)().detach()) == pytest.approx(
        sum(entropy_ref(p.detach().numpy(), axis=-1).mean() for p in P), rel=1e-12
    )


def test_the_losses_drop_the_summed_axis_by_default() -> None:
    # keepdims=False (hypercoil's default) leaves one entropy per row: a max over the last axis is over the rows.
    P = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], dtype=torch.float64)
    out = nr.EntropyLoss(scalarisation=max_scalarise(axis=-1))(P)
    assert out.shape == ()
    assert float(out) == pytest.approx(entropy_ref(P.numpy(), axis=-1).max(), rel=1e-12)


def test_a_gradient_step_on_entropy_sharpens_the_distributions() -> None:
    (logits,) = make_params((8, 5))
    reg = nr.EntropyLogitLoss(logits)
    before = float(reg().detach())
    optimizer = torch.optim.SGD([logits], lr=8.0)  # the mean over 8 rows scales the gradient by 1/8
    for _ in range(20):
        optimizer.zero_grad()
        reg().backward()
        optimizer.step()
    assert float(reg().detach()) < 0.5 * before


# --- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: entropy(torch.ones(3, dtype=torch.long)), TypeError, "X must be a floating-point tensor"),
        (lambda: entropy(torch.ones(3), axis=2), ValueError, "axis 2 is out of range"),
        (lambda: entropy_logit(torch.ones(3), temperature=0), ValueError, r"temperature must be in \(0, inf\]"),
        (lambda: entropy_logit(torch.ones(3), reduce="no"), TypeError, "reduce must be a bool"),
        (lambda: nr.EntropyLoss(axis=(0, 0)), ValueError, "names the same axis twice"),
        (lambda: nr.EntropyLogitLoss(keepdims=None), TypeError, "keepdims must be a bool"),
        (lambda: nr.KLDivergenceLoss(make_params((3,))), ValueError, "compares each with target="),
        (lambda: nr.EntropyLoss()(torch.ones(2), torch.ones(2)), TypeError, r"takes 1 input\(s\)"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- parity with hypercoil itself (JAX), where it is installed -------------------------------------------
def test_parity_with_hypercoil() -> None:
    hc = pytest.importorskip("hypercoil.loss")
    jnp = pytest.importorskip("jax.numpy")
    logits_p, P = distributions(1, (6, 7))
    logits_q, Q = distributions(2, (6, 7))
    lp, lq, p, q = (jnp.asarray(t.numpy()) for t in (logits_p, logits_q, P, Q))
    pairs = [
        (nr.EntropyLoss()(P), hc.EntropyLoss()(p)),
        (nr.EntropyLoss(axis=0)(P), hc.EntropyLoss(axis=0)(p)),
        (nr.EntropyLogitLoss(axis=-2)(logits_p), hc.EntropyLogitLoss(axis=-2)(lp)),
        (nr.KLDivergenceLoss()(P, Q), hc.KLDivergenceLoss()(p, q)),
        (nr.KLDivergenceLogitLoss(axis=0)(logits_p, logits_q), hc.KLDivergenceLogitLoss(axis=0)(lp, lq)),
    ]
    for ours, theirs in pairs:
        # hypercoil adds machine epsilon inside its logarithms: agreement to float32 precision, not exactly.
        assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
