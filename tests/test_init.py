"""neuroreg.init.dale_: Dale's law by rows, density, scale, determinism, the in-place contract, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neuroreg as nr
from neuroreg.init import dale_


def row_signs(w: torch.Tensor) -> torch.Tensor:
    """+1/-1 for a row whose non-zero entries are all positive/negative, 0 for a mixed or empty row."""
    positive, negative = (w > 0).any(dim=1), (w < 0).any(dim=1)
    return positive.int() - negative.int()


def test_reachable_from_the_package() -> None:
    assert nr.init.dale_ is dale_


@pytest.mark.parametrize("shape", [(10, 10), (6, 15), (15, 6), (1, 7), (7, 1)])
@pytest.mark.parametrize("inh_ratio", [0.0, 0.2, 0.5, 1.0])
def test_inhibitory_rows_first_and_every_row_one_sign(shape: tuple, inh_ratio: float) -> None:
    w = dale_(torch.empty(shape), inh_ratio=inh_ratio, rho=1.0, seed=0)
    n_inh = int(shape[0] * inh_ratio)
    assert (w[:n_inh] < 0).all() and (w[n_inh:] > 0).all()


def test_random_choice_of_inhibitory_rows() -> None:
    w = dale_(torch.empty(40, 12), inh_ratio=0.25, rho=0.7, inh_first=False, seed=3)
    signs = row_signs(w)
    assert (signs != 0).all()  # every row is all-positive or all-negative
    inhibitory = (signs < 0).nonzero().flatten()
    assert len(inhibitory) == 10
    assert inhibitory.tolist() != list(range(10))


def test_inhibitory_count_survives_floating_point_products() -> None:
    # 100 * 0.29 is 28.999999999999996 in floating point: still 29 inhibitory neurons.
    w = dale_(torch.empty(100, 4), inh_ratio=0.29, rho=1.0, seed=0)
    assert int((row_signs(w) < 0).sum()) == 29


@pytest.mark.parametrize("rho", [0.1, 0.5, 0.99, 1.0])
@pytest.mark.parametrize("shape", [(50, 50), (30, 70)])
def test_density_is_rho(rho: float, shape: tuple) -> None:
    w = dale_(torch.empty(shape), rho=rho, seed=1)
    n = shape[0] * shape[1]
    assert int((w != 0).sum()) == round(rho * n)


def test_rho_one_is_fully_connected_and_finite() -> None:
    w = dale_(torch.empty(64, 64), rho=1.0, seed=0)
    assert torch.isfinite(w).all() and (w != 0).all()


def test_scale_gives_each_neuron_unit_summed_squared_input() -> None:
    # Magnitudes |N(0, 1/(N rho))|: each column (a neuron's inputs) has a squared sum near 1 at any density.
    for rho in (0.2, 1.0):
        w = dale_(torch.empty(400, 300, dtype=torch.float64), rho=rho, seed=2)
        assert float(w.square().sum(dim=0).mean()) == pytest.approx(1.0, rel=0.05)


def test_same_seed_same_tensor_in_every_dtype_and_global_rng_untouched() -> None:
    state = torch.get_rng_state()
    a = dale_(torch.empty(20, 30), inh_ratio=0.3, rho=0.6, inh_first=False, seed=7)
    b = dale_(torch.empty(20, 30), inh_ratio=0.3, rho=0.6, inh_first=False, seed=7)
    c = dale_(torch.empty(20, 30), inh_ratio=0.3, rho=0.6, inh_first=False, seed=8)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(a, b) and not torch.equal(a, c)
    exact = dale_(torch.empty(20, 30, dtype=torch.float64), inh_ratio=0.3, rho=0.6, inh_first=False, seed=7)
    torch.testing.assert_close(a, exact.float())
    for dtype in (torch.float16, torch.bfloat16):
        low = dale_(torch.empty(20, 30, dtype=dtype), inh_ratio=0.3, rho=0.6, inh_first=False, seed=7)
        assert torch.equal(low.sign(), exact.sign().to(dtype))


def test_no_seed_draws_from_the_global_generator() -> None:
    torch.manual_seed(123)
    first = dale_(torch.empty(8, 8))
    second = dale_(torch.empty(8, 8))
    torch.manual_seed(123)
    again = dale_(torch.empty(8, 8))
    assert not torch.equal(first, second)
    assert torch.equal(first, again)


def test_fills_in_place_and_returns_the_tensor_even_a_parameter() -> None:
    param = torch.nn.Parameter(torch.zeros(5, 6))
    pointer = param.data_ptr()
    out = dale_(param, seed=0)
    assert out is param and param.data_ptr() == pointer
    assert param.is_leaf and param.requires_grad and param.grad_fn is None
    assert (param != 0).any()


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 12),
    inh_ratio=st.floats(0, 1),
    rho=st.floats(0.01, 1),
    inh_first=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_properties(rows: int, cols: int, inh_ratio: float, rho: float, inh_first: bool, seed: int) -> None:
    w = dale_(torch.empty(rows, cols, dtype=torch.float64), inh_ratio, rho, inh_first, seed)
    assert torch.isfinite(w).all()
    assert int((w != 0).sum()) == round(rho * rows * cols)
    signs = row_signs(w)
    assert not ((w > 0).any(dim=1) & (w < 0).any(dim=1)).any(), "a row with both signs"
    assert int((signs < 0).sum()) <= int(round(rows * inh_ratio, 9))
    assert int((signs > 0).sum()) <= rows - int(round(rows * inh_ratio, 9))
    if math.isclose(rho, 1.0):
        assert int((signs < 0).sum()) == int(round(rows * inh_ratio, 9))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tensor": [[1.0]]}, TypeError, "tensor must be a tensor"),
        ({"tensor": torch.full((3,), 7.0)}, ValueError, r"tensor must be 2-D .* got shape \(3,\)"),
        ({"tensor": torch.full((2, 2, 2), 7.0)}, ValueError, "tensor must be 2-D"),
        ({"tensor": torch.zeros(3, 3, dtype=torch.int64)}, TypeError, "tensor must be a floating-point tensor"),
        ({"inh_ratio": 1.5}, ValueError, r"inh_ratio must be in \[0, 1\], got 1.5"),
        ({"inh_ratio": -0.1}, ValueError, "inh_ratio must be in"),
        ({"inh_ratio": "half"}, TypeError, "inh_ratio must be a real number"),
        ({"rho": 0}, ValueError, r"rho must be in \(0, 1\], got 0"),
        ({"rho": 1.2}, ValueError, "rho must be in"),
        ({"rho": float("nan")}, ValueError, "rho must be a finite real number"),
        ({"inh_first": 1}, TypeError, "inh_first must be a bool, got 1"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"seed": 1.5}, TypeError, "seed must be an integer, got 1.5"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(kwargs: dict, error: type, match: str) -> None:
    kwargs = dict(kwargs)
    tensor = kwargs.pop("tensor", torch.full((3, 3), 7.0))
    before = tensor.clone() if isinstance(tensor, torch.Tensor) else None
    with pytest.raises(error, match=match):
        dale_(tensor, **kwargs)
    if before is not None:
        assert torch.equal(tensor, before)
