"""neuroreg.init.dale_: Dale's law by rows, density, scale, determinism, the in-place contract, the
connectivity convention, balance, spectral radius, NeuroTorch's draw (against NeuroTorch itself), bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neuroreg as nr
from neuroreg.init import dale_
from tests.neurotorch_support import import_neurotorch


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


# --- convention ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4)])
def test_post_to_pre_layout_is_the_transpose_and_has_one_sign_per_column(shape: tuple) -> None:
    kwargs = {"inh_ratio": 0.25, "rho": 0.7, "inh_first": False, "seed": 3}
    w = dale_(torch.empty(shape), convention="j->i", **kwargs)
    assert torch.equal(w, dale_(torch.empty(shape[::-1]), **kwargs).T)
    signs = row_signs(w.T)  # column j is neuron j's outgoing weights in W @ h
    assert not ((w > 0).any(dim=0) & (w < 0).any(dim=0)).any(), "a column with both signs"
    assert int((signs < 0).sum()) <= int(shape[1] * 0.25)


def test_post_to_pre_layout_in_a_linear_layer_makes_inhibitory_inputs_negative() -> None:
    layer = torch.nn.Linear(8, 5, bias=False)
    dale_(layer.weight, inh_ratio=0.25, rho=1.0, seed=0, convention="j->i")
    for j in range(8):
        response = layer(torch.eye(8)[j])  # input neuron j alone
        assert (response < 0).all() if j < 2 else (response > 0).all()


# --- balance and spectral radius -----------------------------------------------------------------------------------
@pytest.mark.parametrize("draw", ["neuroreg", "neurotorch"])
def test_balance_scales_the_inhibitory_weights_by_the_excitatory_to_inhibitory_count(draw: str) -> None:
    kwargs = {"inh_ratio": 0.2, "rho": 0.5, "inh_first": False, "seed": 5, "draw": draw}
    plain = dale_(torch.empty(50, 50, dtype=torch.float64), **kwargs)
    balanced = dale_(torch.empty(50, 50, dtype=torch.float64), balance=True, **kwargs)
    inhibitory = (plain < 0).any(dim=1)
    assert int(inhibitory.sum()) == 10
    torch.testing.assert_close(balanced[inhibitory], plain[inhibitory] * 40 / 10)
    assert torch.equal(balanced[~inhibitory], plain[~inhibitory])


def test_balanced_inputs_sum_to_zero_in_expectation() -> None:
    w = dale_(torch.empty(400, 300, dtype=torch.float64), inh_ratio=0.2, rho=0.3, seed=1, balance=True)
    column_sums = w.sum(dim=0)  # each postsynaptic neuron's summed input
    unbalanced = dale_(torch.empty(400, 300, dtype=torch.float64), inh_ratio=0.2, rho=0.3, seed=1).sum(dim=0)
    # Zero mean across neurons, to within 4 standard errors; unbalanced, the mean is many errors away.
    assert abs(float(column_sums.mean())) < 4 * float(column_sums.std()) / math.sqrt(300)
    assert float(unbalanced.mean()) > 20 * float(unbalanced.std()) / math.sqrt(300)


@pytest.mark.parametrize("convention", ["i->j", "j->i"])
@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5])
def test_spectral_radius_rescales_to_exactly_that_radius(radius: float, convention: str) -> None:
    kwargs = {"inh_ratio": 0.2, "rho": 0.8, "seed": 2, "balance": True, "convention": convention}
    scaled = dale_(torch.empty(40, 40, dtype=torch.float64), spectral_radius=radius, **kwargs)
    plain = dale_(torch.empty(40, 40, dtype=torch.float64), **kwargs)
    assert np.abs(np.linalg.eigvals(scaled.numpy())).max() == pytest.approx(radius, rel=1e-10)
    factor = radius / np.abs(np.linalg.eigvals(plain.numpy())).max()
    torch.testing.assert_close(scaled, plain * factor)


# --- NeuroTorch's draw ---------------------------------------------------------------------------------------------
NEUROTORCH_CASES = [
    (64, 0.5, 0.99, True, 0),
    (10, 0.29, 0.5, False, 3),  # int(10 * 0.29) = 2 inhibitory neurons in NeuroTorch, as here
    (100, 0.29, 0.8, True, 5),  # int(100 * 0.29) = 28 in NeuroTorch (neuroreg's own draw counts 29)
    (7, 0.2, 0.1, False, None),  # seed=None: NeuroTorch's fresh generator, its default seed
    (1, 0.5, 0.5, True, 1),
    (33, 0.0, 0.3, False, 2**40),
]


@pytest.mark.parametrize(("n", "inh_ratio", "rho", "inh_first", "seed"), NEUROTORCH_CASES)
def test_neurotorch_draw_is_neurotorchs_exactly(n: int, inh_ratio: float, rho: float, inh_first: bool, seed) -> None:
    import_neurotorch()
    from neurotorch.init import dale_ as neurotorch_dale_

    expected = neurotorch_dale_(torch.empty(n, n), inh_ratio, rho, inh_first, seed)
    ours = dale_(torch.empty(n, n), inh_ratio, rho, inh_first, seed, draw="neurotorch")
    assert torch.equal(ours, expected) and torch.equal(ours.sign(), expected.sign())
    as_double = dale_(torch.empty(n, n, dtype=torch.float64), inh_ratio, rho, inh_first, seed, draw="neurotorch")
    assert torch.equal(as_double, expected.double())  # other dtypes: NeuroTorch's draw, cast
    transposed = dale_(torch.empty(n, n), inh_ratio, rho, inh_first, seed, draw="neurotorch", convention="j->i")
    assert torch.equal(transposed, expected.T)


def test_neurotorch_draw_with_no_seed_is_the_same_every_call_as_in_neurotorch() -> None:
    first = dale_(torch.empty(5, 5), rho=0.5, draw="neurotorch")
    torch.manual_seed(123)  # NeuroTorch never reads the global generator
    assert torch.equal(first, dale_(torch.empty(5, 5), rho=0.5, draw="neurotorch"))


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
        ({"convention": "pre->post"}, ValueError, r"convention must be one of \['i->j', 'j->i'\], got 'pre->post'"),
        ({"draw": "nest"}, ValueError, r"draw must be one of \['neuroreg', 'neurotorch'\], got 'nest'"),
        ({"balance": 1}, TypeError, "balance must be a bool, got 1"),
        ({"spectral_radius": 0}, ValueError, r"spectral_radius must be in \(0, inf\], got 0"),
        ({"spectral_radius": "1"}, TypeError, "spectral_radius must be a real number"),
        ({"tensor": torch.full((3, 4), 7.0), "spectral_radius": 1.0}, ValueError,
         r"spectral_radius needs a square tensor, got shape \(3, 4\)"),
        ({"draw": "neurotorch", "rho": 1.0}, ValueError, "draw='neurotorch' is undefined at rho=1"),
        ({"tensor": torch.full((3, 4), 7.0), "draw": "neurotorch"}, ValueError,
         r"draw='neurotorch' needs a square tensor .* got shape \(3, 4\)"),
        ({"tensor": torch.full((4, 3), 7.0), "draw": "neurotorch", "convention": "j->i"}, ValueError,
         r"got shape \(3, 4\)"),
        ({"inh_ratio": 0.0, "balance": True}, ValueError,
         "balance=True needs excitatory and inhibitory neurons, got 0 inhibitory of 3"),
        ({"inh_ratio": 1.0, "balance": True}, ValueError, "got 3 inhibitory of 3"),
        ({"tensor": torch.full((1, 1), 7.0), "rho": 0.4, "spectral_radius": 1.0}, ValueError,
         "the drawn matrix has spectral radius 0"),
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


def test_a_draw_that_zeroes_nothing_takes_no_zeroing_permutation() -> None:
    # rho=1 zeroes no entry, so no permutation is drawn for it: the inhibitory rows are the seeded generator's
    # next permutation after the float64 magnitudes.
    W = dale_(torch.empty(6, 6, dtype=torch.float64), inh_ratio=0.5, rho=1.0, inh_first=False, seed=3)
    generator = torch.Generator().manual_seed(3)
    torch.randn(6, 6, generator=generator, dtype=torch.float64)
    expected = sorted(torch.randperm(6, generator=generator)[:3].tolist())
    assert (W != 0).all()
    assert sorted(i for i in range(6) if (W[i] < 0).all()) == expected
