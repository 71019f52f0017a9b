"""Lp/L1/L2 and ``functional.lp_norm``: values against NumPy, closed-form gradients against autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

import neuroreg as nr
from neuroreg.functional import lp_norm, lp_norm_add_grad_, lp_norm_grad
from tests.protocol import SIZE_PATHS, use_size_path
from tests.registry import make_params

P_VALUES = [0.5, 1, 1.5, 2, 3, math.inf]
SHAPES = [(1,), (7,), (4, 5), (3, 1, 4), (2, 3, 2, 2)]


def with_zeros(shape, seed: int) -> torch.Tensor:
    """Random float64 values with about a third of them exactly zero."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=generator, dtype=torch.float64)
    return values * (torch.rand(shape, generator=generator, dtype=torch.float64) > 0.33)


def autograd_grads(tensors, p, squared):
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    lp_norm(leaves, p, squared=squared).backward()
    return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("p", P_VALUES)
def test_closed_form_equals_autograd_on_many_shapes_with_zeros(p: float, squared: bool) -> None:
    tensors = [with_zeros(shape, seed) for seed, shape in enumerate(SHAPES)]
    tensors.append(torch.zeros(3, 3, dtype=torch.float64))  # an all-zero tensor: gradient 0, not NaN
    for closed, auto in zip(lp_norm_grad(tensors, p, squared=squared), autograd_grads(tensors, p, squared)):
        torch.testing.assert_close(closed, auto)


def test_inf_norm_ties_share_the_subgradient_like_autograd() -> None:
    tensor = torch.tensor([[1.0, -3.0], [3.0, 0.5]], dtype=torch.float64)
    (closed,) = lp_norm_grad([tensor], math.inf)
    torch.testing.assert_close(closed, torch.tensor([[0.0, -0.5], [0.5, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(closed, autograd_grads([tensor], math.inf, False)[0])


def test_subgradient_at_zero_is_zero_for_l1() -> None:
    (closed,) = lp_norm_grad([torch.tensor([0.0, 2.0, -1.0])], 1)
    assert closed.tolist() == [0.0, 1.0, -1.0]


def test_add_grad_accumulates_scaled_in_place() -> None:
    tensors = [with_zeros((4, 4), 0), with_zeros((5,), 1)]
    grads = [torch.ones_like(t) for t in tensors]
    targets = [g.clone() for g in grads]
    lp_norm_add_grad_(grads, tensors, 2, alpha=0.3)
    for grad, target, expected in zip(grads, targets, lp_norm_grad(tensors, 2)):
        torch.testing.assert_close(grad, target + 0.3 * expected)


def test_mixed_dtypes_are_grouped() -> None:
    tensors = [with_zeros((3, 3), 0), with_zeros((4,), 1).float()]
    value = lp_norm(tensors, 1)
    expected = sum(float(t.abs().sum()) for t in tensors)
    assert float(value) == pytest.approx(expected, rel=1e-6)
    grads = lp_norm_grad(tensors, 2, squared=True)
    assert [g.dtype for g in grads] == [torch.float64, torch.float32]


@settings(max_examples=50, deadline=None)
@given(
    arrays=st.lists(
        hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                   elements=st.floats(-1e3, 1e3, allow_subnormal=False)),
        min_size=1, max_size=3,
    ),
    p=st.sampled_from(P_VALUES),
    squared=st.booleans(),
    Lambda=st.floats(0, 100),
)
def test_value_matches_numpy_and_properties(arrays, p, squared, Lambda) -> None:
    params = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in arrays]
    reg = nr.Lp(params, Lambda=Lambda, p=p, squared=squared)
    norms = [np.linalg.norm(a.ravel(), ord=p) for a in arrays]
    expected = Lambda * sum(n**2 if squared else n for n in norms)
    value = float(reg().detach())
    assert value == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert value >= 0
    if not any(a.any() for a in arrays):
        assert value == 0  # zero at the optimum


def test_list_value_is_sum_of_members() -> None:
    params = make_params((3, 4), (5,))
    members = [nr.L1(params, Lambda=0.2), nr.L2(params, Lambda=0.7), nr.Lp(params, p=3, squared=True)]
    total = nr.RegularizationList(members)()
    torch.testing.assert_close(total, sum(member() for member in members))


def test_conv_weights_of_any_rank_are_regularized() -> None:
    conv = torch.nn.Conv3d(2, 3, kernel_size=2)
    value = nr.L2(conv, include="weight")()
    torch.testing.assert_close(value, conv.weight.detach().flatten().norm())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_lambda_keeps_its_value_through_a_low_precision_cast(dtype) -> None:
    # 0.3 is not a bfloat16 (nor float16) number: a Lambda cast with the module would weight the penalty by
    # 0.30078125 (0.2998 in float16) while reg.Lambda still reports 0.3.
    (w,) = make_params((4, 5))
    reg = nr.L1([w], Lambda=0.3).to(dtype)
    assert reg.Lambda == 0.3
    assert float(reg().detach()) == pytest.approx(0.3 * np.abs(w.detach().numpy()).sum(), rel=1e-15)


@pytest.mark.parametrize("p", [1.5, 2, 3, math.inf])
def test_a_single_tensor_is_one_tensor_not_its_rows(p: float) -> None:
    # One 2-D tensor given alone is one norm over all its entries (NumPy's norm of the flattened array), not
    # the sum of the norms of its rows; its gradient comes back as one tensor of its shape.
    W = with_zeros((4, 6), 5)
    expected = np.linalg.norm(W.numpy().ravel(), ord=p)
    assert float(lp_norm(W, p)) == pytest.approx(expected, rel=1e-12)
    assert float(lp_norm(W, p, squared=True)) == pytest.approx(expected**2, rel=1e-12)
    (grad,) = lp_norm_grad(W, p)
    torch.testing.assert_close(grad, autograd_grads([W], p, False)[0])
    assert float(nr.Lp(torch.nn.Parameter(W), p=p)().detach()) == pytest.approx(expected, rel=1e-12)


# --- reduction="mean" (issue 14) -------------------------------------------------------------------------------
def mean_forms():
    """(regularization builder, the mean form written with torch ops for autograd) per penalty."""
    refs = [p.detach() for p in make_params((4, 3), (5,), (2, 3, 2), seed=11)]
    signs = [torch.sign(torch.randn(4, 3, generator=torch.Generator().manual_seed(k), dtype=torch.float64))
             for k in range(2)]
    return {
        "L1": (lambda ps: nr.L1(ps, reduction="mean"), lambda ps: sum(p.abs().mean() for p in ps)),
        "L2": (lambda ps: nr.L2(ps, reduction="mean"), lambda ps: sum(p.square().sum().sqrt() / p.numel() for p in ps)),
        "L2-squared": (lambda ps: nr.L2(ps, squared=True, reduction="mean"),
                       lambda ps: sum(p.square().mean() for p in ps)),
        "Lp-3": (lambda ps: nr.Lp(ps, p=3, reduction="mean"),
                 lambda ps: sum(p.abs().pow(3).sum().pow(1 / 3) / p.numel() for p in ps)),
        "WeightsDistance-p1": (lambda ps: nr.WeightsDistance(ps, reference_weights=refs, reduction="mean"),
                               lambda ps: sum((p - r).abs().mean() for p, r in zip(ps, refs))),
        "WeightsDistance-p2-squared": (
            lambda ps: nr.WeightsDistance(ps, reference_weights=refs, p=2, squared=True, reduction="mean"),
            lambda ps: sum((p - r).square().mean() for p, r in zip(ps, refs))),
    }, {
        "DaleLawL2": (lambda ps: nr.DaleLawL2(ps, alpha=0.3, reference_weights=signs, reduction="mean"),
                      lambda ps: sum((p * (0.3 * p - 0.7 * s)).mean() for p, s in zip(ps, signs))),
        "DaleLaw": (lambda ps: nr.DaleLaw(ps, reference_weights=signs, reduction="mean"),
                    lambda ps: sum((-p * s).mean() for p, s in zip(ps, signs))),
        "DaleSignPenalty-p1": (lambda ps: nr.DaleSignPenalty(ps, reference_weights=signs, p=1, reduction="mean"),
                               lambda ps: sum(torch.relu(-p * s).mean() for p, s in zip(ps, signs))),
        "DaleSignPenalty-p2": (lambda ps: nr.DaleSignPenalty(ps, reference_weights=signs, reduction="mean"),
                               lambda ps: sum(torch.relu(-p * s).square().mean() for p, s in zip(ps, signs))),
    }


ENTRYWISE, CONNECTOME = mean_forms()


@pytest.mark.parametrize("path", SIZE_PATHS)
@pytest.mark.parametrize("case", [*ENTRYWISE, *CONNECTOME])
def test_mean_reduction_value_and_closed_form_gradient_against_autograd_of_the_mean_form(
    case: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_size_path(monkeypatch, path)
    build, mean_form = {**ENTRYWISE, **CONNECTOME}[case]
    # Two tensors share a size, so a size group holds several tensors (one functional call for both).
    shapes = ((4, 3), (4, 3)) if case in CONNECTOME else ((4, 3), (5,), (2, 3, 2))
    params = make_params(*shapes, seed=3)
    reg = build(params)
    reg.Lambda = 1.7
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    expected_value = 1.7 * mean_form(leaves)
    expected_grads = torch.autograd.grad(expected_value, leaves)
    torch.testing.assert_close(reg(), expected_value.detach())
    reg().backward()                                   # a direct call: closed form, or autograd when small
    for p, e in zip(params, expected_grads):
        torch.testing.assert_close(p.grad, e)
    for p in params:
        p.grad = None
    reg.accumulate_grad()                              # joint mode's multi-tensor path
    for p, e in zip(params, expected_grads):
        torch.testing.assert_close(p.grad, e)
    assert "reduction='mean'" in repr(reg)


def test_mean_is_the_sum_divided_by_each_tensors_size() -> None:
    params = make_params((10, 10), (3,), seed=4)
    total = nr.L1(params, reduction="sum")()
    mean = nr.L1(params, reduction="mean")()
    assert not torch.isclose(mean, total / 103)        # per tensor, not over all entries at once
    torch.testing.assert_close(mean, params[0].abs().sum() / 100 + params[1].abs().sum() / 3)


# --- empty, half precision and sparse gradients ---------------------------------------------------------
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("p", P_VALUES)
def test_zero_element_tensors_contribute_nothing(p: float, squared: bool) -> None:
    W = with_zeros((4, 5), 1)
    empties = [torch.empty(0, dtype=torch.float64), torch.empty(3, 0, dtype=torch.float64)]
    expected = np.linalg.norm(W.numpy().ravel(), ord=p) ** (2 if squared else 1)
    assert float(lp_norm([W, *empties], p, squared=squared)) == pytest.approx(expected, rel=1e-12)
    assert float(lp_norm(empties, p, squared=squared)) == 0.0
    grads = lp_norm_grad([W, *empties], p, squared=squared)
    torch.testing.assert_close(grads[0], autograd_grads([W], p, squared)[0])
    assert [g.shape for g in grads[1:]] == [e.shape for e in empties]
    params = [nn.Parameter(W.clone()), *(nn.Parameter(e) for e in empties)]
    reg = nr.Lp(params, p=p, squared=squared)
    assert float(reg().detach()) == pytest.approx(expected, rel=1e-12)
    reg.accumulate_grad()
    torch.testing.assert_close(params[0].grad, grads[0])


@pytest.mark.parametrize("p", [1.5, 2, 3, math.inf])
@pytest.mark.parametrize("squared", [False, True])
def test_float16_reduces_in_float32_and_returns_float16(p: float, squared: bool) -> None:
    # ||W||_2 = 94868 > 65504: a float16 reduction is inf, and the joint gradient W/||W|| was exactly 0.
    values = torch.full((1000,), 3000.0, dtype=torch.float64)
    values[::7] = -1000.0
    w = nn.Parameter(values.to(torch.float16))
    exact = values.to(torch.float16).double()
    norm = np.linalg.norm(exact.numpy(), ord=p)
    value = nr.Lp([w], p=p, squared=squared)()
    assert value.dtype == torch.float16
    expected_value = norm**2 if squared else norm
    if expected_value > torch.finfo(torch.float16).max:
        assert value == math.inf  # the value itself does not fit float16
    else:
        assert float(value.detach()) == pytest.approx(expected_value, rel=1e-3)
    value32 = lp_norm([w.detach()], p, squared=squared, dtype=torch.float32)
    assert value32.dtype == torch.float32
    assert float(value32) == pytest.approx(expected_value, rel=1e-4)
    expected_grad = autograd_grads([exact], p, squared)[0]
    direct = torch.autograd.grad(nr.Lp([w], p=p, squared=squared)(), w)[0]
    for grad in (lp_norm_grad([w.detach()], p, squared=squared)[0], direct):
        assert grad.dtype == torch.float16
        torch.testing.assert_close(grad.double(), expected_grad.to(torch.float16).double(), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("build", [nr.L1, nr.L2, lambda m: nr.L2(m, squared=True), lambda m: nr.Lp(m, p=3)])
def test_sparse_gradients_stay_sparse_and_get_the_penalty_on_their_rows(build) -> None:
    embedding = nn.Embedding(6, 3, sparse=True).double()
    rows = torch.tensor([1, 4, 1])
    reg = build(embedding)
    embedding(rows).sum().backward()
    task = embedding.weight.grad.to_dense().clone()
    penalty = torch.autograd.grad(reg.Lambda * reg.forward(), embedding.weight)[0]
    grad_before = embedding.weight.grad
    reg.accumulate_grad()
    grad = embedding.weight.grad
    assert grad is grad_before and grad.is_sparse
    touched = torch.zeros(6, 1, dtype=torch.float64)
    touched[[1, 4]] = 1
    torch.testing.assert_close(grad.to_dense(), task + touched * penalty)
    torch.optim.SparseAdam(embedding.parameters(), lr=0.1).step()  # what the sparse layout is for


def graph_nodes(value: torch.Tensor) -> set:
    """Names of the autograd nodes behind ``value``."""
    names, stack = set(), [value.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and type(node).__name__ not in names:
            names.add(type(node).__name__)
            stack.extend(next_node for next_node, _ in node.next_functions)
    return names


@pytest.mark.parametrize(("p", "squared"), [(1, False), (2, False), (2, True), (3, False), (3, True), (math.inf, True)])
@pytest.mark.parametrize("path", SIZE_PATHS)
def test_module_gradients_direct_and_joint_equal_autograd_of_the_function(
    p: float, squared: bool, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The module's closed forms (its own fast path for squared L2, the functional's for the others), or at
    # small sizes autograd through its value, against autograd through lp_norm's forward, in a direct call
    # and in joint mode (accumulate_grad), with Lambda.
    use_size_path(monkeypatch, path)
    tensors = [with_zeros((4, 5), 11), with_zeros((6,), 12)]
    expected = autograd_grads(tensors, p, squared)
    params = [torch.nn.Parameter(t.clone()) for t in tensors]
    reg = nr.Lp(params, Lambda=0.7, p=p, squared=squared)
    value = reg()
    # the closed form only where it makes no more passes than autograd (which reuses the forward's norms)
    closed_form = path == "closed form" and (p, squared) in ((1, False), (2, True))
    assert ("_ClosedFormPenaltyBackward" in graph_nodes(value)) == closed_form
    value.backward()
    for param, grad in zip(params, expected):
        torch.testing.assert_close(param.grad, 0.7 * grad)
    for param in params:
        param.grad = torch.ones_like(param)
    reg.accumulate_grad()
    for param, grad in zip(params, expected):
        torch.testing.assert_close(param.grad, 1 + 0.7 * grad)


def test_defaults_are_l1_with_weight_one() -> None:
    (w,) = make_params((3, 4))
    expected = np.abs(w.detach().numpy()).sum()
    assert float(nr.Lp([w])().detach()) == pytest.approx(expected, rel=1e-12)
    assert float(nr.L1([w])().detach()) == pytest.approx(expected, rel=1e-12)
    assert float(nr.L2([w])().detach()) == pytest.approx(np.linalg.norm(w.detach().numpy()), rel=1e-12)
    with pytest.raises(ValueError, match=r"p must be in \(0, inf\], got 0"):
        nr.Lp([w], p=0)


def test_zero_dimensional_parameters_are_not_regularized() -> None:
    w, scale = make_params((3, 4), ())
    reg = nr.L2([w, scale])
    assert reg.regularized_parameters() == [w]
    assert float(reg().detach()) == pytest.approx(np.linalg.norm(w.detach().numpy()), rel=1e-12)
    only_scalars = nr.L1([scale])  # nothing to regularize: a zero of the parameters' dtype that backpropagates
    value = only_scalars()
    assert value.dtype == torch.float64 and float(value.detach()) == 0.0
    value.backward()


def test_functional_defaults_and_argument_checks() -> None:
    # Defaults as documented (p=1), an empty sequence or only zero-element tensors give a zero of their dtype,
    # p must be > 0, and grads must match tensors one to one: values from NumPy.
    W = with_zeros((3, 4), 21)
    assert float(lp_norm(W)) == pytest.approx(np.abs(W.numpy()).sum(), rel=1e-12)
    grad = torch.zeros_like(W)
    lp_norm_add_grad_([grad], [W])
    np.testing.assert_array_equal(grad.numpy(), np.sign(W.numpy()))
    np.testing.assert_array_equal(lp_norm_grad(W)[0].numpy(), np.sign(W.numpy()))
    assert float(lp_norm([])) == 0.0
    empty = lp_norm([torch.empty(0, 3, dtype=torch.float64)], p=2)
    assert empty.dtype == torch.float64 and float(empty) == 0.0
    with pytest.raises(ValueError, match=r"p must be in \(0, inf\], got 0"):
        lp_norm(W, p=0)
    with pytest.raises(ValueError, match="grads must hold one tensor per tensor: 1 tensors, 2 grads"):
        lp_norm_add_grad_([grad, grad], [W])


@pytest.mark.parametrize("path", SIZE_PATHS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize(("p", "squared"),
                         [(1, False), (1, True), (2, False), (2, True), (3, False), (math.inf, False)])
def test_lp_norm_value_on_either_size_path_equals_numpy(
    p: float, squared: bool, dtype: torch.dtype, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The value's form depends on the size (fewer kernels when small, fewer passes when large): both against
    # NumPy in float64, float16 included (reduced in float32).
    use_size_path(monkeypatch, path)
    tensors = [with_zeros((4, 5), 21).to(dtype), with_zeros((7,), 22).to(dtype)]
    norms = [np.linalg.norm(t.double().numpy().ravel(), ord=p) for t in tensors]
    expected = sum(n**2 if squared else n for n in norms)
    value = lp_norm(tensors, p, squared=squared)
    assert value.dtype == dtype
    tolerance = 2e-3 if dtype == torch.float16 else 1e-6
    assert float(value) == pytest.approx(expected, rel=tolerance)


def test_matrix_norm_order_is_checked_at_construction_and_shown() -> None:
    (w,) = make_params((3, 4))
    with pytest.raises(ValueError, match="p"):
        nr.Lp([w], p=3, norm="matrix")   # no induced 3-norm of a matrix in torch.linalg.norm
    assert "norm='matrix'" in repr(nr.Lp([w], p=1, norm="matrix"))
    assert "norm=" not in repr(nr.Lp([w], p=1))
