"""neuroreg._validation: every check accepts exactly what it documents and names the argument and the value."""

from __future__ import annotations

import math
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from neuroreg._validation import (
    check_axes,
    check_axes_spec,
    check_bool,
    check_broadcastable,
    check_callable,
    check_choice,
    check_dale_arguments,
    check_dale_options,
    check_dale_shape,
    check_floating_tensor,
    check_grads,
    check_int,
    check_keywords,
    check_matrix,
    check_names,
    check_norm_ord,
    check_open_unit,
    check_per_parameter,
    check_real,
    check_reference_tensors,
    check_size,
    check_update,
    collect_modules,
    collect_parameters,
    unwrapped_name,
)


# --- numbers --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (0.5, {}, 0.5),
        (3, {}, 3.0),
        (np.float32(0.25), {}, 0.25),
        (torch.tensor(2.5), {}, 2.5),
        (torch.tensor([1.5]), {}, 1.5),  # one element, any shape
        (0, {"low": 0}, 0.0),  # bounds are inclusive by default
        (1, {"high": 1}, 1.0),
        (-1e300, {}, -1e300),
        (math.inf, {"allow_inf": True}, math.inf),
        (-math.inf, {"allow_inf": True, "high": 0}, -math.inf),
    ],
)
def test_check_real_accepts(value, kwargs, expected) -> None:
    result = check_real("x", value, **kwargs)
    assert type(result) is float and result == expected


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "message"),
    [
        (True, {}, TypeError, "x must be a real number, got True of type bool"),
        ("1", {}, TypeError, "x must be a real number, got '1' of type str"),
        (1j, {}, TypeError, "x must be a real number, got 1j of type complex"),
        (torch.ones(2), {}, TypeError, "x must be a real number, got tensor([1., 1.]) of type Tensor"),
        (torch.tensor(1j), {}, TypeError, "x must be a real number"),
        (math.nan, {}, ValueError, "x must be a finite real number, got nan"),
        (math.nan, {"allow_inf": True}, ValueError, "x must be a finite real number, got nan"),
        (math.inf, {}, ValueError, "x must be a finite real number, got inf"),
        (-0.5, {"low": 0}, ValueError, "x must be in [0, inf], got -0.5"),
        (0, {"low": 0, "low_inclusive": False}, ValueError, "x must be in (0, inf], got 0"),
        (1.5, {"high": 1}, ValueError, "x must be in [-inf, 1], got 1.5"),
        (1, {"high": 1, "high_inclusive": False}, ValueError, "x must be in [-inf, 1), got 1"),
        (2, {"low": 0, "high": 1}, ValueError, "x must be in [0, 1], got 2"),
        (0.25, {"low": 0.5, "high": 2.5}, ValueError, "x must be in [0.5, 2.5], got 0.25"),
        (math.inf, {"allow_inf": True, "high": 1}, ValueError, "x must be in [-inf, 1], got inf"),
    ],
)
def test_check_real_refuses(value, kwargs, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        check_real("x", value, **kwargs)


def test_check_real_just_inside_exclusive_bounds() -> None:
    assert check_real("x", 1e-300, low=0, low_inclusive=False) == 1e-300
    below_one = math.nextafter(1.0, 0.0)
    assert check_real("x", below_one, high=1, high_inclusive=False) == below_one


def test_check_int() -> None:
    assert check_int("n", 3) == 3 and type(check_int("n", np.int64(4))) is int
    assert check_int("n", 0, low=0) == 0 and check_int("n", -5) == -5
    with pytest.raises(ValueError, match=re.escape("n must be >= 1, got 0")):
        check_int("n", 0, low=1)
    for bad in (True, 2.0, "2", None):
        with pytest.raises(TypeError, match=re.escape(f"n must be an integer, got {bad!r} of type")):
            check_int("n", bad)


def test_check_open_unit() -> None:
    assert check_open_unit("r", 0.5) == 0.5
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match=re.escape(f"r must be in (0, 1), got {bad!r}")):
            check_open_unit("r", bad)


# --- other kinds ----------------------------------------------------------------------------------------
def test_check_bool_choice_callable() -> None:
    assert check_bool("b", False) is False and check_bool("b", True) is True
    with pytest.raises(TypeError, match=re.escape("b must be a bool, got 1 of type int")):
        check_bool("b", 1)
    assert check_choice("mode", "joint", ("joint", "separate")) == "joint"
    with pytest.raises(ValueError, match=re.escape("mode must be one of ['joint', 'separate'], got 'both'")):
        check_choice("mode", "both", ("joint", "separate"))
    assert check_callable("f", abs) is abs
    with pytest.raises(TypeError, match=re.escape("f must be callable, got 3 of type int")):
        check_callable("f", 3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ()), ("*.bias", ("*.bias",)), (["a", "b*"], ("a", "b*")), (("x",), ("x",)), (iter(["y"]), ("y",)),
     ([], ())],
)
def test_check_names_accepts(value, expected) -> None:
    assert check_names("include", value) == expected


@pytest.mark.parametrize("value", [3, b"bias", {"a": 1}, ["a", 2]])
def test_check_names_refuses(value) -> None:
    message = f"include must be a glob pattern or a sequence of them, got {value!r}"
    with pytest.raises(TypeError, match=re.escape(message)):
        check_names("include", value)


def test_check_keywords() -> None:
    check_keywords("kw", {"rho": 1}, ["rho", "seed"])
    check_keywords("kw", {}, [])
    with pytest.raises(ValueError, match=re.escape("kw: unknown keyword argument 'b' (expected one of ['a'])")):
        check_keywords("kw", {"a": 1, "b": 2}, ["a"])


def test_check_dale_arguments() -> None:
    assert check_dale_arguments(0, 1e-9, False, 0) == (0.0, 1e-9, False, 0)
    assert check_dale_arguments(1, 1, True, None) == (1.0, 1.0, True, None)
    for args, error, message in [
        ((1.5, 1, True, None), ValueError, "inh_ratio must be in [0, 1], got 1.5"),
        ((-0.1, 1, True, None), ValueError, "inh_ratio must be in [0, 1], got -0.1"),
        ((0.2, 0, True, None), ValueError, "rho must be in (0, 1], got 0"),
        ((0.2, 1.1, True, None), ValueError, "rho must be in (0, 1], got 1.1"),
        ((0.2, 1, 1, None), TypeError, "inh_first must be a bool, got 1"),
        ((0.2, 1, True, -1), ValueError, "seed must be >= 0, got -1"),
        ((0.2, 1, True, 1.0), TypeError, "seed must be an integer, got 1.0"),
    ]:
        with pytest.raises(error, match=re.escape(message)):
            check_dale_arguments(*args)


# --- axes -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("axes", "ndim", "expected"),
    [(0, 3, (0,)), (-1, 3, (2,)), ((2, -3), 3, (0, 2)), ([1], 2, (1,)), ((), 2, ()), (np.int64(-2), 2, (0,)),
     (0, 0, (0,)), (-1, 1, (0,))],
)
def test_check_axes_normalises_and_sorts(axes, ndim, expected) -> None:
    result = check_axes("axis", axes, ndim)
    assert result == expected and all(type(axis) is int for axis in result)


@pytest.mark.parametrize(
    ("axes", "ndim", "error", "message"),
    [
        (3, 3, ValueError, "axis 3 is out of range for a tensor with 3 dimensions"),
        (-4, 3, ValueError, "axis -4 is out of range for a tensor with 3 dimensions"),
        ((0, 5), 3, ValueError, "axis (0, 5) is out of range"),
        (1, 0, ValueError, "axis 1 is out of range for a tensor with 0 dimensions"),
        (-1, 0, ValueError, "axis -1 is out of range for a tensor with 0 dimensions"),
        ((0, -3), 3, ValueError, "axis (0, -3) names the same axis twice"),
        (True, 3, TypeError, "axis must be an int or a sequence of ints, got True"),
        ((0, False), 3, TypeError, "axis must be an int or a sequence of ints, got (0, False)"),
        ((0, 1.0), 3, TypeError, "axis must be an int or a sequence of ints, got (0, 1.0)"),
        ("0", 3, TypeError, "axis must be an int or a sequence of ints, got '0'"),
        (1.0, 3, TypeError, "axis must be an int or a sequence of ints, got 1.0"),
    ],
)
def test_check_axes_refuses(axes, ndim, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        check_axes("axis", axes, ndim)


def test_check_axes_spec_checks_kind_and_repeats_not_range() -> None:
    assert check_axes_spec("axis", (0, 40, -63)) == (0, 40, -63)
    assert check_axes_spec("axis", 5) == 5
    with pytest.raises(ValueError, match=re.escape("axis (2, 2) names the same axis twice")):
        check_axes_spec("axis", (2, 2))
    with pytest.raises(TypeError, match="axis must be an int or a sequence of ints"):
        check_axes_spec("axis", None)


# --- tensors --------------------------------------------------------------------------------------------
def test_check_floating_tensor_and_matrix() -> None:
    x = torch.ones(2, 3, dtype=torch.float16)
    assert check_floating_tensor("X", x) is x and check_floating_tensor("X", x, min_ndim=2) is x
    scalar = torch.tensor(1.0, dtype=torch.float64)
    assert check_floating_tensor("X", scalar) is scalar  # any number of dimensions by default, 0 included
    assert check_matrix("W", x) is x
    for call, error, message in [
        (lambda: check_floating_tensor("X", [1.0]), TypeError, "X must be a tensor, got [1.0] of type list"),
        (lambda: check_floating_tensor("X", torch.ones(2, dtype=torch.int64)), TypeError,
         "X must be a floating-point tensor, got dtype torch.int64"),
        (lambda: check_floating_tensor("X", torch.ones(2), min_ndim=2), ValueError,
         "X must have at least 2 dimensions, got shape (2,)"),
        (lambda: check_matrix("W", torch.ones(2, 2, 2)), ValueError,
         "W must be 2-D (row i -> column j), got shape (2, 2, 2)"),
        (lambda: check_matrix("W", torch.ones(2, 2, dtype=torch.int32)), TypeError, "W must be a floating-point"),
    ]:
        with pytest.raises(error, match=re.escape(message)):
            call()


def test_check_broadcastable_and_grads() -> None:
    assert check_broadcastable("P", torch.ones(2, 1), "Q", torch.ones(3)) == (2, 3)
    message = "P and Q must have shapes that broadcast together, got (2,) and (3,)"
    with pytest.raises(ValueError, match=re.escape(message)):
        check_broadcastable("P", torch.ones(2), "Q", torch.ones(3))
    check_grads([torch.ones(1)] * 2, [torch.ones(1)] * 2)
    check_grads([], [])
    with pytest.raises(ValueError, match=re.escape("grads must hold one tensor per tensor: 1 tensors, 2 grads")):
        check_grads([torch.ones(1)] * 2, [torch.ones(1)])


def test_check_reference_tensors() -> None:
    params = [nn.Parameter(torch.ones(2, 3)), nn.Parameter(torch.ones(4))]
    reference = torch.randn(2, 3, requires_grad=True)
    checked = check_reference_tensors("ref", [reference, [1.0, 2.0, 3.0, 4.0]], params)
    assert checked[0] is not reference and not checked[0].requires_grad
    assert checked[0].data_ptr() == reference.data_ptr()  # detached, not copied
    torch.testing.assert_close(checked[1], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    (single,) = check_reference_tensors("ref", reference, params[:1])  # one tensor for one parameter
    assert torch.equal(single, reference.detach())
    for references, error, message in [
        (3, TypeError, "ref must be a sequence of tensors, got 3"),
        ("ab", TypeError, "ref must be a sequence of tensors, got 'ab'"),
        ([reference], ValueError, "ref must hold one tensor per parameter: 2 parameters, 1 references given"),
        ([reference, torch.ones(5)], ValueError,
         "ref[1] has shape (5,), but the parameter it refers to has shape (4,)"),
        ([torch.ones(3, 2), torch.ones(4)], ValueError, "ref[0] has shape (3, 2)"),
    ]:
        with pytest.raises(error, match=re.escape(message)):
            check_reference_tensors("ref", references, params)


# --- parameters -----------------------------------------------------------------------------------------
def test_collect_parameters_from_each_kind_of_params() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    names, params = collect_parameters(model)
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert all(p is q for p, q in zip(params, model.parameters()))
    assert collect_parameters(model, include=("*.weight",))[0] == ["0.weight", "1.weight"]
    assert collect_parameters(model, exclude=("*.bias",))[0] == ["0.weight", "1.weight"]
    assert collect_parameters(model, include=("0.*", "1.bias"), exclude=("*.weight",))[0] == ["0.bias", "1.bias"]
    w, b = model[0].weight, model[0].bias
    assert collect_parameters(OrderedDict(w=w, b=b), include=("w",)) == (["w"], [w])
    assert collect_parameters(w) == (["0"], [w])
    assert collect_parameters([w, b, w]) == (["0", "1"], [w, b])  # the same Parameter is kept once
    assert collect_parameters(iter([b])) == (["0"], [b])
    assert collect_parameters({"w": w, "again": w}) == (["w"], [w])


def test_collect_parameters_refuses() -> None:
    w = nn.Parameter(torch.ones(2))
    for call, error, message in [
        (lambda: collect_parameters([w], include=("0",)), ValueError,
         "include/exclude select parameters by name, so params must be an nn.Module or a dict name -> Parameter, "
         "got list"),
        (lambda: collect_parameters((w,), exclude=("0",)), ValueError, "got tuple"),
        (lambda: collect_parameters({1: w}), TypeError, "params keys must be parameter names (str), got 1"),
        (lambda: collect_parameters(3), TypeError,
         "params must be an nn.Module, a dict name -> Parameter or an iterable of Parameters, got 3 of type int"),
        (lambda: collect_parameters("w"), TypeError, "got 'w' of type str"),
        (lambda: collect_parameters([w, torch.ones(2)]), TypeError,
         "params['1'] must be a torch.nn.Parameter (gradients must reach the model), got a Tensor that is not an "
         "nn.Parameter"),
        (lambda: collect_parameters({"a": 2.0}), TypeError, "params['a'] must be a torch.nn.Parameter"),
    ]:
        with pytest.raises(error, match=re.escape(message)):
            call()


class _Halves(nn.Module):
    """A parametrization optimizing two tensors (a tuple ``right_inverse``)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    def right_inverse(self, X: torch.Tensor) -> tuple:
        return X / 2, X / 2


class _Double(nn.Module):
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return 2 * X


def test_collect_parameters_names_parametrized_and_wrapped_tensors_as_the_model_does() -> None:
    from torch.nn.utils import parametrize

    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    parametrize.register_parametrization(model[0], "weight", _Double())
    original = model[0].parametrizations.weight.original
    names, params = collect_parameters(model)
    assert names == ["0.bias", "0.weight", "1.weight", "1.bias"] and params[1] is original
    assert collect_parameters(model, effective=False)[0][1] == "0.parametrizations.weight.original"
    assert collect_parameters(model, include=("0.weight",))[1] == [original]
    wrapper = nn.Module()
    wrapper.module = nn.Module()
    wrapper.module._orig_mod = model  # DistributedDataParallel around torch.compile
    assert collect_parameters(wrapper)[0] == names
    assert unwrapped_name("module._fsdp_wrapped_module.rnn.weight") == "rnn.weight"
    assert unwrapped_name("modules.weight") == "modules.weight"  # only whole prefixes are dropped


def test_collect_parameters_refuses_a_parametrization_of_several_tensors() -> None:
    from torch.nn.utils import parametrize

    model = nn.Sequential(nn.Linear(2, 2))
    parametrize.register_parametrization(model[0], "weight", _Halves())
    message = "the parametrization of 0.weight optimizes several tensors (original0, original1, ...)"
    with pytest.raises(ValueError, match=re.escape(message)):
        collect_parameters(model)
    assert len(collect_parameters(model, effective=False)[1]) == 3  # original0, original1, bias


# --- the checks after check_broadcastable ---------------------------------------------------------------------
def test_check_per_parameter_takes_one_tensor_as_one_item() -> None:
    mask = torch.ones(2, 3)
    (got,) = check_per_parameter("masks", mask, 1)
    assert got is mask   # not its two rows
    with pytest.raises(ValueError, match="masks must hold one item per parameter: 2 parameters, 1 given"):
        check_per_parameter("masks", mask, 2)


def test_collect_modules_matches_exclude_patterns_against_names() -> None:
    model = nn.Module()
    model.lin1, model.lin2, model.act = nn.Linear(2, 2), nn.Linear(2, 2), nn.Tanh()
    assert collect_modules(model, include=("*",), exclude=("lin*",)) == (["act"], [model.act])
    with pytest.raises(TypeError, match=re.escape("modules must be an nn.Module, an iterable of them or None, got 3")):
        collect_modules(3)


def test_check_update_takes_a_non_gradient_update_without_an_optimizer_only() -> None:
    assert check_update("L1", "proximal", ("gradient", "proximal")) == "proximal"
    assert check_update("L1", "gradient", ("gradient",), optimizer=object()) == "gradient"
    with pytest.raises(ValueError, match="takes no optimizer of its own"):
        check_update("L1", "proximal", ("gradient", "proximal"), optimizer=object())


def test_check_norm_ord_takes_the_matrix_orders_torch_takes() -> None:
    W = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    for order in (1, 2, math.inf, -1, -2, -math.inf, "fro", "nuc"):
        torch.linalg.matrix_norm(W, ord=order)   # defined in torch
        assert check_norm_ord("p", order, [(3, 4)]) == order
    with pytest.raises(RuntimeError):
        torch.linalg.matrix_norm(W, ord=-3)
    with pytest.raises(ValueError, match="p=-3 is not a matrix norm order"):
        check_norm_ord("p", -3, [(3, 4)])


def test_check_dale_shape_refuses_rho_1_for_neurotorchs_draw_only() -> None:
    assert check_dale_shape((4, 4), 2, 1.0, "neuroreg", False, None) is None
    with pytest.raises(ValueError, match="draw='neurotorch' is undefined at rho=1"):
        check_dale_shape((4, 4), 2, 1.0, "neurotorch", False, None)


def test_an_empty_selection_warns_at_the_callers_line() -> None:
    with pytest.warns(UserWarning, match="sparse selects no parameter") as caught:
        assert collect_parameters(nn.Linear(2, 2), include=("rnn.*",), owner="sparse") == ([], [])
    assert len(caught) == 1 and caught[0].filename == __file__   # this line, not one inside neuroreg


def test_check_dale_options_and_check_size() -> None:
    assert check_dale_options("i->j", "neuroreg", False, None) == ("i->j", "neuroreg", False, None)
    assert check_dale_options("j->i", "neuroreg", True, 2) == ("j->i", "neuroreg", True, 2.0)
    with pytest.raises(ValueError, match=r"spectral_radius must be in \(0, inf\]"):
        check_dale_options("i->j", "neuroreg", False, -1.0)
    x = torch.ones(3, 4)
    assert check_size("x", x, 0, 3, "three rows") is x and check_size("x", x, -1, 4, "four columns") is x
    for dim in (0, -1):   # a 0-d tensor has no dimension to check: a ValueError, not an IndexError
        with pytest.raises(ValueError, match=rf"x must have one entry \(size 1 in dimension {dim}\), got shape \(\)"):
            check_size("x", torch.tensor(1.0), dim, 1, "one entry")
