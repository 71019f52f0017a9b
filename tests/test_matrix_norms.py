"""norm="matrix" on Lp, L1, L2 and WeightsDistance: NeuroTorch 0.0.2's values and gradients, the functional's
closed-form gradients against autograd (ties and zeros included), and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg import functional as F
from tests.neurotorch_support import import_neurotorch

MATRIX_ORDS = [1, 2, math.inf, -1, -2, -math.inf, "fro", "nuc"]
VECTOR_ORDS = [1, 2, 3, 0.5, math.inf, -1, -2, -math.inf, 0]


def params_for(ord, seed: int = 0) -> list:
    """A 2-D weight, a 0-d scalar and, where the order has a vector norm, a 1-D bias (float64)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = [(5, 4), ()] + ([] if isinstance(ord, str) else [(4,)])
    return [nn.Parameter(torch.randn(shape, generator=generator, dtype=torch.float64)) for shape in shapes]


def grads_of(value: torch.Tensor, params: list) -> list:
    for p in params:
        p.grad = None
    value.backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]


@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
def test_lp_matrix_equals_neurotorch_value_and_gradient(ord) -> None:
    nt = import_neurotorch()
    params = params_for(ord)
    theirs = nt.regularization.Lp(params, Lambda=0.7, p=ord)
    ours = nr.Lp(params, Lambda=0.7, p=ord, norm="matrix")
    their_value = theirs()
    expected = grads_of(their_value, params)
    value = ours()
    torch.testing.assert_close(value, their_value)
    got = grads_of(value, params)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)
    # Joint mode: the closed form added to the task gradients.
    for p in params:
        p.grad = torch.ones_like(p)
    ours.accumulate_grad()
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.grad, 1 + e)


def test_l1_l2_matrix_equal_neurotorch_l1_l2_in_a_list() -> None:
    nt = import_neurotorch()
    params = params_for(2, seed=3)
    theirs = nt.regularization.RegularizationList([nt.regularization.L2(params, 1e-5),
                                                   nt.regularization.L1(params, 1e-6)])
    ours = nr.RegularizationList([nr.L2(params, 1e-5, norm="matrix"), nr.L1(params, 1e-6, norm="matrix")])
    their_value = theirs()
    expected = grads_of(their_value, params)
    value = ours()
    torch.testing.assert_close(value, their_value)
    for g, e in zip(grads_of(value, params), expected):
        torch.testing.assert_close(g, e)
    # The entrywise default is another number (the 17x on the Heidelberg tutorial).
    assert not torch.isclose(nr.RegularizationList([nr.L2(params, 1e-5), nr.L1(params, 1e-6)])(), their_value)


@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
def test_weights_distance_matrix_equals_neurotorch(ord) -> None:
    nt = import_neurotorch()
    params = [p for p in params_for(ord, seed=1) if p.ndim > 0]   # NeuroTorch's norm refuses a 0-d tensor
    references = [torch.randn_like(p) for p in params]
    theirs = nt.regularization.connectome.WeightsDistance(params, references, Lambda=0.3, p=ord)
    ours = nr.WeightsDistance(params, references, Lambda=0.3, p=ord, norm="matrix")
    their_value = theirs()
    expected = grads_of(their_value, params)
    value = ours()
    torch.testing.assert_close(value, their_value)
    for g, e in zip(grads_of(value, params), expected):
        torch.testing.assert_close(g, e)
    for p in params:
        p.grad = None
    ours.accumulate_grad()
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.grad, e)


TIED = {
    "zero": torch.zeros(3, 3, dtype=torch.float64),
    "tied-columns-rows": torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64),
    "identity": torch.eye(3, dtype=torch.float64),
    "zero-entries": torch.tensor([[0.0, 2.0, -1.0], [3.0, 0.0, 0.5]], dtype=torch.float64),
}


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
@pytest.mark.parametrize("case", TIED, ids=str)
def test_closed_form_gradient_is_autograds_at_ties_and_zeros(case: str, ord, squared: bool) -> None:
    w = TIED[case].clone().requires_grad_(True)
    norm = torch.linalg.norm(w, ord)
    (expected,) = torch.autograd.grad(norm * norm if squared else norm, w)
    torch.testing.assert_close(F.matrix_norm_grad([w.detach()], ord, squared=squared)[0], expected)
    torch.testing.assert_close(F.matrix_norm([w.detach()], ord, squared=squared), (norm * norm if squared else norm))


@pytest.mark.parametrize("ord", VECTOR_ORDS, ids=str)
def test_vector_orders_of_1d_tensors_against_autograd(ord) -> None:
    w = torch.tensor([0.5, -2.0, 0.0, 3.0], dtype=torch.float64, requires_grad=True)
    norm = torch.linalg.norm(w, ord)
    (expected,) = torch.autograd.grad(norm, w, allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(F.matrix_norm([w.detach()], ord), norm.detach())
    torch.testing.assert_close(F.matrix_norm_grad([w.detach()], ord)[0], expected, equal_nan=True)


@pytest.mark.parametrize("ord", [2, "nuc", 1])
def test_weights_matrix_distance_takes_the_norm_of_absolute_differences(ord) -> None:
    # |D| and D have other singular values: [[1, -1], [1, 1]] has sigma = sqrt(2), sqrt(2); its |.| 2 and 0.
    w = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    reference = torch.zeros(2, 2, dtype=torch.float64)
    expected = torch.linalg.norm((w - reference).abs(), ord)
    (expected_grad,) = torch.autograd.grad(expected, w)
    torch.testing.assert_close(F.weights_matrix_distance([w.detach()], [reference], ord), expected.detach())
    grad = torch.zeros(2, 2, dtype=torch.float64)
    F.weights_matrix_distance_add_grad_([grad], [w.detach()], [reference], ord)
    torch.testing.assert_close(grad, expected_grad)
    if ord == 2:
        assert float(expected.detach()) == pytest.approx(2.0)
        assert float(torch.linalg.norm(w.detach(), 2)) == pytest.approx(math.sqrt(2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_tensors_are_reduced_in_float32(dtype: torch.dtype) -> None:
    w = torch.full((4, 4), 200.0, dtype=torch.float64)   # a float16 Frobenius sum of squares overflows
    value = F.matrix_norm([w.to(dtype)], "fro", squared=True, dtype=torch.float32)
    torch.testing.assert_close(value, torch.tensor(800.0 ** 2), rtol=1e-2, atol=0)
    grad = F.matrix_norm_grad([w.to(dtype)], 2)[0]
    assert grad.dtype == dtype
    torch.testing.assert_close(grad.double(), F.matrix_norm_grad([w], 2)[0], rtol=1e-2, atol=1e-2)


def test_sgd_step_with_the_matrix_penalty_attached_minimizes_task_plus_penalty() -> None:
    params = params_for(2, seed=5)
    copies = [nn.Parameter(p.detach().clone()) for p in params]
    reg = nr.L2(params, Lambda=0.2, norm="matrix")
    optimizer = torch.optim.SGD(params, lr=0.1)
    handle = reg.attach(optimizer)
    optimizer.zero_grad()
    sum(p.sum() for p in params).backward()
    optimizer.step()
    handle.remove()
    loss = sum(c.sum() for c in copies) + 0.2 * sum(torch.linalg.norm(c, 2) for c in copies if c.ndim > 0)
    loss.backward()
    with torch.no_grad():
        for p, c in zip(params, copies):
            torch.testing.assert_close(p, c - 0.1 * c.grad)


def test_repr_and_config_name_the_norm() -> None:
    reg = nr.Lp(params_for("fro"), p="fro", norm="matrix")
    assert "p='fro'" in repr(reg) and "norm='matrix'" in repr(reg)
    assert "norm=" not in repr(nr.L1(params_for(1)))


def w2d() -> list:
    return [nn.Parameter(torch.randn(3, 4))]


@pytest.mark.parametrize("build, error, match", [
    (lambda: nr.L1(w2d(), norm="spectral"), ValueError,
     r"norm must be one of \['entrywise', 'matrix'\], got 'spectral'"),
    (lambda: nr.Lp(w2d(), p=3, norm="matrix"), ValueError, r"p=3 is not a matrix norm order.*shape \(3, 4\)"),
    (lambda: nr.Lp(w2d(), p=0.5, norm="matrix"), ValueError, r"p=0.5 is not a matrix norm order"),
    (lambda: nr.Lp([nn.Parameter(torch.randn(3))], p="nuc", norm="matrix"), ValueError,
     r"p='nuc' is a matrix norm order; 1-D tensors take a real order"),
    (lambda: nr.Lp(w2d(), p="spectral", norm="matrix"), ValueError,
     r"p must be one of \['fro', 'nuc'\], got 'spectral'"),
    (lambda: nr.Lp(w2d(), p=True, norm="matrix"), TypeError, r"p must be a real number, got True"),
    (lambda: nr.Lp(w2d(), p="fro"), TypeError, r"p must be a real number, got 'fro'"),
    (lambda: nr.L2([nn.Parameter(torch.randn(2, 3, 4))], norm="matrix"), ValueError, r"p=2 has no 3-D norm"),
    (lambda: nr.WeightsDistance([nn.Parameter(torch.tensor(1.0))], [torch.tensor(0.0)], norm="matrix"), ValueError,
     r"p=1 has no 0-D norm"),
    (lambda: nr.WeightsDistance(w2d(), [torch.zeros(3, 4)], p=-1.5, norm="matrix"), ValueError,
     r"p=-1.5 is not a matrix norm order"),
    (lambda: nr.L1(w2d(), norm="matrix", update="proximal"), ValueError,
     r"norm='matrix'\): update='proximal' needs .*supports update in \['gradient'\]"),
    (lambda: nr.WeightsDistance(w2d(), [torch.zeros(3, 4)], p=2, squared=True, norm="matrix", update="decoupled"),
     ValueError, r"update='decoupled' needs"),
    (lambda: F.matrix_norm([torch.randn(2, 2, 2)], 1), ValueError, r"ord=1 has no 3-D norm"),
])
def test_bad_input_is_a_clear_error(build, error, match) -> None:
    with pytest.raises(error, match=match):
        build()


def test_one_reference_for_several_parameters_says_how_to_pass_one_each() -> None:
    params = [nn.Parameter(torch.randn(3, 3)) for _ in range(2)]
    reference = torch.zeros(3, 3)
    for build in (lambda: nr.WeightsDistance(params, [reference]), lambda: nr.DaleLawL2(params, 0.5, [reference])):
        with pytest.raises(ValueError, match=r"2 parameters, 1 references given; .*reference_weights=\[ref\] \* "
                                             r"len\(params\)"):
            build()
    # The advice works: the same reference for both.
    reg = nr.WeightsDistance(params, [reference] * len(params), p=2)
    torch.testing.assert_close(reg(), sum(torch.linalg.vector_norm(p.detach()) for p in params))
    # Two references for three parameters get no advice about repeating one.
    with pytest.raises(ValueError, match=r"3 parameters, 2 references given$"):
        nr.WeightsDistance([*params, nn.Parameter(torch.randn(3, 3))], [reference, reference])


def test_defaults_empty_and_one_element_tensors() -> None:
    w = torch.tensor([[3.0, 1.0], [0.0, -2.0]], dtype=torch.float64)
    # Default orders: the spectral norm, and NeuroTorch's WeightsDistance p=1.
    torch.testing.assert_close(F.matrix_norm([w]), torch.linalg.matrix_norm(w, 2))
    torch.testing.assert_close(F.matrix_norm_grad([w])[0], F.matrix_norm_grad([w], 2)[0])
    reference = torch.zeros(2, 2, dtype=torch.float64)
    torch.testing.assert_close(F.weights_matrix_distance([w], [reference]), torch.linalg.matrix_norm(w, 1))
    # One-element tensors count; zero-element ones contribute 0 and get a zero gradient.
    one, empty = torch.tensor([[-3.0]], dtype=torch.float64), torch.zeros(0, 3, dtype=torch.float64)
    torch.testing.assert_close(F.matrix_norm([one, torch.tensor([2.0], dtype=torch.float64), empty], 2),
                               torch.tensor(5.0, dtype=torch.float64))
    grads = [torch.zeros_like(one), torch.zeros_like(empty)]
    F.matrix_norm_add_grad_(grads, [one, empty], 2)
    torch.testing.assert_close(grads[0], torch.tensor([[-1.0]], dtype=torch.float64))
    assert grads[1].shape == (0, 3)
    value = F.matrix_norm([empty], 2)
    assert value.dtype == torch.float64 and float(value) == 0.0
    # The value is in the tensors' dtype unless told otherwise.
    assert F.matrix_norm([w.half()], 2).dtype == torch.float16


def test_add_grad_defaults_zero_differences_and_grad_count() -> None:
    w = torch.tensor([[3.0, 1.0], [0.5, -2.0]], dtype=torch.float64)
    grad = torch.zeros_like(w)
    F.matrix_norm_add_grad_([grad], [w])   # ord=2 by default
    torch.testing.assert_close(grad, F.matrix_norm_grad([w], 2)[0])
    # A weight equal to its reference has subgradient 0 through |W - W_ref| (autograd's choice), finite.
    reference = torch.tensor([[3.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    leaf = w.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(torch.linalg.matrix_norm((leaf - reference).abs(), 1), leaf)
    grad = torch.zeros_like(w)
    F.weights_matrix_distance_add_grad_([grad], [w], [reference])   # ord=1 by default
    torch.testing.assert_close(grad, expected)
    assert grad[0, 0] == 0
    for add_grad in (lambda: F.matrix_norm_add_grad_([], [w], 2),
                     lambda: F.weights_matrix_distance_add_grad_([], [w], [reference], 2)):
        with pytest.raises(ValueError, match="grads must hold one tensor per tensor: 1 tensors, 0 grads"):
            add_grad()
