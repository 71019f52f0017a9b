"""neuroreg.scalarise: hypercoil's scalarisation maps, checked against NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuroreg.functional import identity, smoothness
from neuroreg.scalarise import (
    max_scalarise,
    mean_scalarise,
    meansq_scalarise,
    norm_scalarise,
    selfwmean,
    selfwmean_scalarise,
    sum_scalarise,
    vnorm_scalarise,
    wmean,
    wmean_scalarise,
)

X = torch.randn(3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

NUMPY = {
    sum_scalarise: lambda a, axis, keepdims: np.sum(a, axis=axis, keepdims=keepdims),
    mean_scalarise: lambda a, axis, keepdims: np.mean(a, axis=axis, keepdims=keepdims),
    meansq_scalarise: lambda a, axis, keepdims: np.mean(a**2, axis=axis, keepdims=keepdims),
    max_scalarise: lambda a, axis, keepdims: np.max(a, axis=axis, keepdims=keepdims),
}


@pytest.mark.parametrize("scalarise", list(NUMPY), ids=lambda f: f.__name__)
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), (-1, -2, 0)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions_equal_numpy(scalarise, axis, keepdims) -> None:
    result = scalarise(axis=axis, keepdims=keepdims)()(X)
    expected = NUMPY[scalarise](X.numpy(), axis, keepdims)
    assert result.shape == np.shape(expected)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("p", [1, 2, 3.5, math.inf])
@pytest.mark.parametrize("axis", [None, 1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_vnorm_is_the_vector_norm_over_all_reduced_axes(p, axis, keepdims) -> None:
    result = vnorm_scalarise(p=p, axis=axis, keepdims=keepdims)()(X)
    absolute = np.abs(X.numpy())
    expected = (
        np.max(absolute, axis=axis, keepdims=keepdims)
        if p == math.inf
        else np.sum(absolute**p, axis=axis, keepdims=keepdims) ** (1 / p)
    )
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(("p", "axis"), [(2, -1), (1, 0), ("fro", (0, 1)), ("nuc", (1, 2)), (2, (2, 1)), (1, (0, 1))])
def test_norm_equals_numpy_linalg_norm(p, axis) -> None:
    result = norm_scalarise(p=p, axis=axis)()(X)
    np.testing.assert_allclose(result.numpy(), np.linalg.norm(X.numpy(), ord=p, axis=axis), rtol=1e-10)


def test_composition_is_innermost_first() -> None:
    # The mean over rows of each row's L2 norm, and hypercoil's documented smoothness values.
    scalarised = mean_scalarise(inner=vnorm_scalarise(axis=-1))()
    torch.testing.assert_close(scalarised(X), X.norm(dim=-1).mean())
    three = sum_scalarise(inner=max_scalarise(inner=vnorm_scalarise(p=1, axis=-1), axis=-1))()
    torch.testing.assert_close(three(X), X.abs().sum(-1).amax(-1).sum())
    H = torch.tensor([[0, 0.1, 0.2, 0.3], [0.2, 0.3, 0.4, 0.5], [0.4, 0.5, 0.6, 0.7]])
    assert float(mean_scalarise(inner=vnorm_scalarise(axis=0))(smoothness)(H, axis=0)) == pytest.approx(0.2828427)


def test_the_score_function_gets_all_arguments() -> None:
    f = sum_scalarise()(lambda a, b, *, scale: scale * (a - b))
    torch.testing.assert_close(f(torch.ones(3), torch.zeros(3), scale=2.0), torch.tensor(6.0))


def test_empty_axis_reduces_nothing_as_numpy() -> None:
    torch.testing.assert_close(sum_scalarise(axis=())()(X), X)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_reduces_in_float32_and_returns_the_dtype(dtype) -> None:
    big = torch.full((4096,), 1.0, dtype=dtype)
    result = sum_scalarise()()(big)
    assert result.dtype == dtype and float(result) == 4096.0  # a float16 running sum would stall at 2048
    assert meansq_scalarise()()(big).dtype == dtype


def test_gradients_flow_through_composed_maps() -> None:
    Y = X.clone().requires_grad_()
    assert torch.autograd.gradcheck(mean_scalarise(inner=vnorm_scalarise(axis=0))(smoothness), (Y,))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: sum_scalarise(axis="rows"), TypeError, "axis must be an int or a sequence"),
        (lambda: sum_scalarise(axis=(1, 1)), ValueError, "axis .* names the same axis twice"),
        (lambda: sum_scalarise(axis=3)()(X), ValueError, "axis 3 is out of range"),
        (lambda: mean_scalarise(keepdims="yes"), TypeError, "keepdims must be a bool"),
        (lambda: mean_scalarise(inner=2), TypeError, "inner must be callable, got 2"),
        (lambda: norm_scalarise(p="max"), ValueError, "p must be one of"),
        (lambda: vnorm_scalarise(p="fro"), TypeError, "p must be a real number"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- hypercoil's tests/loss/test_scalarise.py and test_functional.py::test_normed_losses -----------------
def test_vnorm_scalarise() -> None:
    X = torch.rand(10, 20, generator=torch.Generator().manual_seed(0))
    out = mean_scalarise(inner=vnorm_scalarise(axis=-1))(identity)(X)
    assert torch.isclose(out, torch.linalg.norm(X, dim=-1).mean())
    out = mean_scalarise(inner=vnorm_scalarise(axis=None))(identity)(X)
    assert torch.isclose(out, torch.linalg.norm(X.ravel()))
    out = mean_scalarise(inner=vnorm_scalarise(axis=0))(identity)(X)
    assert torch.isclose(out, torch.linalg.norm(X, dim=0).mean())
    out = mean_scalarise(inner=vnorm_scalarise(axis=(0, 1)))(identity)(X)
    assert torch.isclose(out, torch.linalg.norm(X.ravel()))


def test_normed_losses() -> None:
    X = torch.tensor([[-1, 2, 0, 2, 1], [0, 1, 0, 0, -1], [3, -1, 0, -2, 0]], dtype=torch.float32)
    assert vnorm_scalarise(p=0, axis=None)()(X) == 9
    assert torch.isclose(mean_scalarise(inner=norm_scalarise(p=0, axis=0))()(X), (X != 0).sum() / 5)
    assert torch.isclose(mean_scalarise(inner=norm_scalarise(p=0, axis=-1))()(X), (X != 0).sum() / 3)
    assert vnorm_scalarise(p=1, axis=None)()(X) == 14
    assert torch.isclose(mean_scalarise(inner=norm_scalarise(p=1, axis=0))()(X), X.abs().sum() / 5)
    assert torch.isclose(mean_scalarise(inner=norm_scalarise(p=1, axis=-1))()(X), X.abs().sum() / 3)
    assert torch.isclose(vnorm_scalarise(p=2, axis=None)()(X), (X**2).sum().sqrt())
    assert torch.isclose(mean_scalarise(inner=norm_scalarise(p=2, axis=0))()(X), (X**2).sum(0).sqrt().mean())
    assert torch.isclose(mean_scalarise(inner=norm_scalarise(p=2, axis=-1))()(X), (X**2).sum(-1).sqrt().mean())


Z = torch.tensor(
    [[[1.0, 4.0, 2.0], [0.0, 9.0, 1.0], [4.0, 6.0, 7.0]], [[0.0, 9.0, 1.0], [4.0, 6.0, 7.0], [1.0, 4.0, 2.0]]]
)


def test_norm_defaults_are_the_l2_norm_over_the_last_axis() -> None:
    expected = np.linalg.norm(X.numpy(), axis=-1)
    np.testing.assert_allclose(norm_scalarise()()(X).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(vnorm_scalarise()()(X).numpy(), expected, rtol=1e-12)


def test_weighted_mean_maps_defaults_and_inner_maps() -> None:
    w = torch.rand(5, dtype=torch.float64)
    assert wmean_scalarise(axis=-1)()(X, scalarisation_weight=w).shape == (3, 4)   # keepdims=False
    x = X.abs()
    torch.testing.assert_close(selfwmean_scalarise()()(x), (x * x).sum() / x.sum())   # weighted by itself
    norms = X.norm(dim=-1)
    torch.testing.assert_close(
        selfwmean_scalarise(inner=vnorm_scalarise(axis=-1), axis=0)()(X), (norms * norms).sum(0) / norms.sum(0)
    )


def test_wmean_over_no_axis_is_the_input_itself() -> None:
    assert torch.equal(wmean(X, torch.tensor(3.0, dtype=torch.float64), axis=()), X)   # not X * 3 / 3


def test_wmean() -> None:
    z = Z
    assert torch.allclose(wmean(z, torch.ones_like(z)), z.mean())
    w = torch.tensor([1.0, 0.0, 1.0])
    expected_1 = [[(1 + 4) / 2, (4 + 6) / 2, (2 + 7) / 2], [(0 + 1) / 2, (9 + 4) / 2, (1 + 2) / 2]]
    assert torch.equal(wmean(z, w, axis=1), torch.tensor(expected_1))
    expected_2 = [[(1 + 2) / 2, (0 + 1) / 2, (4 + 7) / 2], [(0 + 1) / 2, (4 + 7) / 2, (1 + 2) / 2]]
    assert torch.equal(wmean(z, w, axis=2), torch.tensor(expected_2))
    w = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    expected_01 = torch.tensor([(1 + 4 + 4 + 1) / 4, (4 + 6 + 6 + 4) / 4, (2 + 7 + 7 + 2) / 4])
    assert torch.equal(wmean(z, w, axis=(0, 1)), expected_01)
    assert torch.equal(
        wmean(z, w, axis=(0, 2)), torch.tensor([(1 + 2 + 9 + 1) / 4, (0 + 1 + 6 + 7) / 4, (4 + 7 + 4 + 2) / 4])
    )
    loss = mean_scalarise(inner=wmean_scalarise(axis=(0, 1)))(identity)
    assert torch.isclose(loss(z, scalarisation_weight=w), expected_01.mean())


def test_selfwmean() -> None:
    X = torch.tensor([[-100, -100, 0, -100, -100], [0, -100, -100, -100, -100], [-100, -100, -100, -100.0, 0]])
    Y = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    assert torch.isclose(selfwmean(X, softmax_axis=-1), torch.tensor(0.0))
    assert not torch.isclose(selfwmean(Y, softmax_axis=-1), torch.tensor(0.0))
    assert torch.isclose(selfwmean_scalarise(axis=None, softmax_axis=-1)(identity)(X), torch.tensor(0.0))


# --- weighted means against NumPy -----------------------------------------------------------------------
@pytest.mark.parametrize(("axis", "weight_shape"), [(None, (3, 4, 5)), (-1, (5,)), ((0, 2), (3, 5)), ((-1, 0), (3, 1))])
@pytest.mark.parametrize("keepdims", [False, True])
def test_wmean_equals_numpy_average(axis, weight_shape, keepdims) -> None:
    weight = torch.rand(weight_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    axes = range(3) if axis is None else (axis,) if isinstance(axis, int) else axis
    dims = tuple(sorted(a % 3 for a in axes))
    shape = [1] * 3
    for size, dim in zip(weight_shape, dims):
        shape[dim] = size
    w = np.broadcast_to(weight.numpy().reshape(shape), X.shape)
    expected = np.sum(w * X.numpy(), axis=dims, keepdims=keepdims) / np.sum(w, axis=dims, keepdims=keepdims)
    np.testing.assert_allclose(wmean(X, weight, axis=axis, keepdims=keepdims).numpy(), expected, rtol=1e-12)
    scalarised = wmean_scalarise(axis=axis, keepdims=keepdims)(identity)(X, scalarisation_weight=weight)
    np.testing.assert_allclose(scalarised.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("softmax_axis", [False, True, -1, (0, 2)])
@pytest.mark.parametrize("softmax_invert", [False, True])
@pytest.mark.parametrize("axis", [None, 1])
def test_selfwmean_equals_numpy(softmax_axis, softmax_invert, axis) -> None:
    x = X.abs().numpy() if softmax_axis is False else X.numpy()   # self-weights must not sum to 0
    if softmax_axis is False:
        w = x
    else:
        axes = None if softmax_axis is True else softmax_axis
        e = np.exp(-x if softmax_invert else x)
        w = e / e.sum(axis=axes, keepdims=True)
    expected = np.sum(w * x, axis=axis) / np.sum(w, axis=axis)
    result = selfwmean(torch.from_numpy(x), axis=axis, softmax_axis=softmax_axis, softmax_invert=softmax_invert)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12)


def test_selfwmean_softmax_is_a_soft_max_and_inverted_a_soft_min() -> None:
    big = 1000 * X   # well-separated values: the softmax puts all weight on the extreme
    torch.testing.assert_close(selfwmean(big, axis=-1, softmax_axis=-1), big.amax(-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        selfwmean(big, axis=-1, softmax_axis=-1, softmax_invert=True), big.amin(-1), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("gradpath", ["input", "weight", None])
def test_selfwmean_gradpath_selects_what_is_differentiated(gradpath) -> None:
    x = X.abs().clone().requires_grad_()
    selfwmean(x, gradpath=gradpath).backward()
    w = x.detach()
    s, sw = w.sum(), (w * w).sum()
    through_input, through_weight = w / s, (w - sw / s) / s   # ∂/∂x of Σwx/Σw with w fixed, and x fixed
    expected = {"input": through_input, "weight": through_weight, None: through_input + through_weight}[gradpath]
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: wmean(X, torch.ones(4), axis=-1), ValueError, "weight must have one axis per reduced axis"),
        (lambda: wmean(X, torch.ones(3, 5), axis=-1), ValueError, "weight must have one axis per reduced axis"),
        (lambda: wmean(X, [1.0], axis=-1), TypeError, "weight must be a tensor"),
        (lambda: wmean_scalarise(axis=0)()(X), TypeError, "keyword argument 'scalarisation_weight'"),
        (lambda: selfwmean(X, gradpath="both"), ValueError, "gradpath must be one of"),
        (lambda: selfwmean_scalarise(gradpath="both"), ValueError, "gradpath must be one of"),
        (lambda: selfwmean_scalarise(softmax_axis="rows"), TypeError, "softmax_axis must be an int"),
        (lambda: selfwmean(X, softmax_axis=5), ValueError, "softmax_axis 5 is out of range"),
        (lambda: selfwmean(X, softmax_invert=1), TypeError, "softmax_invert must be a bool"),
        (lambda: wmean(X, torch.ones(5), axis=-1, keepdims="yes"), TypeError, "keepdims must be a bool"),
        (lambda: selfwmean(X, keepdims=0), TypeError, "keepdims must be a bool"),
        (lambda: selfwmean_scalarise(softmax_invert=1), TypeError, "softmax_invert must be a bool"),
    ],
)
def test_weighted_mean_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_parity_with_hypercoil() -> None:
    hs = pytest.importorskip("hypercoil.loss.scalarise")
    jnp = pytest.importorskip("jax.numpy")
    w = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    np.testing.assert_allclose(wmean(Z, w, axis=(0, 2)).numpy(), hs.wmean(jnp.asarray(Z), jnp.asarray(w), axis=(0, 2)))
    Y = torch.randn(3, 5)
    for options in [{"softmax_axis": -1}, {"softmax_axis": True}, {}]:
        Yp = Y.abs() if not options else Y
        np.testing.assert_allclose(
            selfwmean(Yp, **options).numpy(), hs.selfwmean(jnp.asarray(Yp.numpy()), **options), rtol=1e-6
        )


@pytest.mark.parametrize("p", [1, -1, math.inf, -math.inf])
@pytest.mark.parametrize("axis", [(1, 0), (2, 0), (-1, 1)])
def test_matrix_norm_takes_its_axes_in_the_order_given(p, axis) -> None:
    # The induced 1- and inf-norms (max column / row sum) swap with the axes: NumPy's value for the unsorted
    # pair, and it is not the value for the sorted pair on this tensor.
    result = norm_scalarise(p=p, axis=axis)()(X)
    expected = np.linalg.norm(X.numpy(), ord=p, axis=axis)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12)
    assert not np.allclose(expected, np.linalg.norm(X.numpy(), ord=p, axis=tuple(sorted(a % 3 for a in axis))))
