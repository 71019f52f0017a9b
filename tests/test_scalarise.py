"""neuroreg.scalarise: hypercoil's scalarisation maps, checked against NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuroreg.functional import smoothness
from neuroreg.scalarise import (
    max_scalarise,
    mean_scalarise,
    meansq_scalarise,
    norm_scalarise,
    sum_scalarise,
    vnorm_scalarise,
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


@pytest.mark.parametrize("p", [1, -1, math.inf, -math.inf])
@pytest.mark.parametrize("axis", [(1, 0), (2, 0), (-1, 1)])
def test_matrix_norm_takes_its_axes_in_the_order_given(p, axis) -> None:
    # The induced 1- and inf-norms (max column / row sum) swap with the axes: NumPy's value for the unsorted
    # pair, and it is not the value for the sorted pair on this tensor.
    result = norm_scalarise(p=p, axis=axis)()(X)
    expected = np.linalg.norm(X.numpy(), ord=p, axis=axis)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12)
    assert not np.allclose(expected, np.linalg.norm(X.numpy(), ord=p, axis=tuple(sorted(a % 3 for a in axis))))
