"""neuroreg.functional.smoothness and the SmoothnessLoss module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neuroreg as nr
from neuroreg.functional import smoothness
from neuroreg.scalarise import mean_scalarise, vnorm_scalarise
from tests.registry import make_params

# The example of hypercoil's documentation.
HYPERCOIL_X = torch.tensor([[0, 0.1, 0.2, 0.3], [0.2, 0.3, 0.4, 0.5], [0.4, 0.5, 0.6, 0.7]])


# --- values ---------------------------------------------------------------------------------------------
def test_hypercoil_documented_values() -> None:
    over_rows = mean_scalarise(inner=vnorm_scalarise(axis=0))(smoothness)(HYPERCOIL_X, axis=0)
    over_columns = mean_scalarise(inner=vnorm_scalarise(axis=-1))(smoothness)(HYPERCOIL_X, axis=-1)
    assert float(over_rows) == pytest.approx(0.28284270, abs=1e-7)
    assert float(over_columns) == pytest.approx(0.17320508, abs=1e-7)


@pytest.mark.parametrize("shape", [(7,), (4, 6), (2, 3, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("n", [0, 1, 2, 3])
@pytest.mark.parametrize("pad_value", [None, 0.0, -1.5])
def test_equals_numpy_diff(shape, n, pad_value) -> None:
    X = torch.randn(shape, dtype=torch.float64)
    for axis in range(-len(shape), len(shape)):
        prepend = np._NoValue if pad_value is None else pad_value
        expected = np.diff(X.numpy(), n=n, axis=axis, prepend=prepend)
        result = smoothness(X, n=n, pad_value=pad_value, axis=axis)
        assert result.shape == expected.shape
        np.testing.assert_allclose(result.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_more_differences_than_elements_give_an_empty_axis_as_numpy() -> None:
    assert smoothness(torch.rand(3, 4), n=6).shape == (3, 0)
    assert float(nr.SmoothnessLoss(n=6)(torch.rand(3, 4))) == 0.0


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=12),
    offset=st.floats(-1e3, 1e3),
)
def test_first_differences_ignore_a_constant_offset_and_vanish_on_constants(values, offset) -> None:
    X = torch.tensor(values, dtype=torch.float64)
    torch.testing.assert_close(smoothness(X + offset), smoothness(X), atol=1e-9, rtol=1e-9)
    assert float(nr.SmoothnessLoss()(torch.full_like(X, offset))) == 0.0


# --- gradients and numerics ---------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "pad_value", "axis"), [(1, None, -1), (2, 0.5, 0), (3, None, 1)])
def test_gradcheck(n, pad_value, axis) -> None:
    X = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: smoothness(x, n=n, pad_value=pad_value, axis=axis), (X,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_returns_the_input_dtype(dtype) -> None:
    X = torch.randn(4, 50)
    result = smoothness(X.to(dtype))
    assert result.dtype == dtype
    # A difference of two low-precision numbers is exact in float32, then rounded once to the dtype.
    torch.testing.assert_close(result, smoothness(X.to(dtype).float()).to(dtype), rtol=0, atol=0)
    value = nr.SmoothnessLoss()(X.to(dtype))
    assert value.dtype == dtype
    torch.testing.assert_close(value.float(), nr.SmoothnessLoss()(X.to(dtype).float()), rtol=1e-2, atol=1e-2)


# --- modules --------------------------------------------------------------------------------------------
def test_default_scalarisation_is_the_l1_norm_of_all_differences() -> None:
    X = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(nr.SmoothnessLoss(nu=2.0)(X), torch.tensor(2 * np.abs(np.diff(X.numpy())).sum()))
    torch.testing.assert_close(
        nr.SmoothnessLoss(axis=0, scalarisation=nr.scalarise.meansq_scalarise())(X),
        torch.diff(X, dim=0).square().mean(),
    )


def test_held_filters_and_a_list_with_an_l2() -> None:
    kernel, weight = make_params((4, 9), (3, 3))
    smooth = nr.SmoothnessLoss(kernel, Lambda=0.1, name="smooth")
    regs = nr.RegularizationList([smooth, nr.L2([weight], name="l2")])
    expected = 0.1 * torch.diff(kernel.detach()).abs().sum() + weight.detach().norm()
    torch.testing.assert_close(regs(), expected)
    regs().backward()
    assert kernel.grad is not None and weight.grad is not None
    assert set(regs.last_values()) == {"smooth", "l2"}


def test_accepts_hypercoil_key_argument() -> None:
    X = torch.randn(3, 5)
    torch.testing.assert_close(nr.SmoothnessLoss()(X, key=None), nr.SmoothnessLoss()(X))


# --- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: smoothness(torch.rand(3, 4), n=-1), ValueError, "n must be .*>= 0.*got -1"),
        (lambda: smoothness(torch.rand(3, 4), n=1.5), TypeError, "n must be an integer, got 1.5"),
        (lambda: smoothness(torch.rand(3, 4), axis=2), ValueError, "axis 2 is out of range"),
        (lambda: smoothness(torch.rand(3, 4), axis=(0, 1)), TypeError, r"axis must be an integer, got \(0, 1\)"),
        (lambda: smoothness(torch.rand(3, 4), pad_value="zero"), TypeError, "pad_value must be a real number"),
        (lambda: smoothness(torch.rand(3, 4), pad_value=torch.zeros(3)), TypeError, "pad_value must be a real"),
        (lambda: smoothness(torch.tensor(1.0)), ValueError, "X must have at least 1 dimensions"),
        (lambda: smoothness(torch.arange(4)), TypeError, "X must be a floating-point tensor"),
        (lambda: nr.SmoothnessLoss(n=-2), ValueError, "n must be .*>= 0.*got -2"),
        (lambda: nr.SmoothnessLoss(make_params((4,)), axis=1), ValueError, "axis 1 is out of range"),
        (lambda: nr.SmoothnessLoss()(), ValueError, "holds no parameters and was called without inputs"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()
