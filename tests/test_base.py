"""BaseRegularization and RegularizationList: the generic tests over every registered class, then the
base class's own behaviour (parameter selection, Lambda, state, names, lists, bad input)."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch._dynamo.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import neuroreg as nr
from neuroreg.functional import lp_norm
from tests.protocol import SIZE_PATHS, use_size_path
from tests.registry import REGISTRY, RegularizationInfo, make_params

ids = [info.id for info in REGISTRY]


def differentiable_inputs(reg: nr.BaseRegularization, args: tuple) -> list:
    return [*reg.params, *[a for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]]


def call_with(reg: nr.BaseRegularization, args: tuple, inputs: list) -> torch.Tensor:
    """Call ``reg`` with its parameters and floating inputs replaced by ``inputs`` (for gradcheck)."""
    n = len(reg.params)
    replaced = {f"params.{i}": t for i, t in enumerate(inputs[:n])}
    rest = iter(inputs[n:])
    new_args = tuple(next(rest) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
    if isinstance(reg, nr.RegularizationList):
        return reg(*new_args)  # members hold their own parameters; gradcheck then runs through them
    return torch.func.functional_call(reg, replaced, new_args)


# --- generic tests over the registry ---------------------------------------------------------------------
@pytest.mark.parametrize("info", REGISTRY, ids=ids)
def test_value_is_lambda_times_functional(info: RegularizationInfo) -> None:
    reg, args = info.build(torch.float64, 0)
    value = reg(*args)
    assert value.dim() == 0 and value.dtype == torch.float64
    torch.testing.assert_close(value, reg.Lambda * info.reference(reg, args))


@pytest.mark.parametrize("info", REGISTRY, ids=ids)
def test_gradcheck_float64(info: RegularizationInfo) -> None:
    reg, args = info.build(torch.float64, 0)
    if isinstance(reg, nr.RegularizationList):
        # A list's parameters live in its members; check the gradient it leaves in them instead.
        reg().backward()
        for member_param in reg.params:
            assert member_param.grad is not None and torch.isfinite(member_param.grad).all()
        return
    inputs = [t.detach().clone().requires_grad_(True) for t in differentiable_inputs(reg, args)]
    assert torch.autograd.gradcheck(lambda *ts: call_with(reg, args, list(ts)), inputs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("info", REGISTRY, ids=ids)
def test_low_precision_dtypes(info: RegularizationInfo, dtype: torch.dtype) -> None:
    reg, args = info.build(dtype, 0)
    exact_reg, exact_args = info.build(torch.float64, 0)
    value = reg(*args)
    assert value.dtype == dtype and torch.isfinite(value)
    tolerance = 1e-4 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(value.double(), exact_reg(*exact_args), rtol=tolerance, atol=tolerance)
    value.backward()
    for param in reg.regularized_parameters():
        assert param.grad is not None and param.grad.dtype == dtype and torch.isfinite(param.grad).all()


@pytest.mark.parametrize("info", REGISTRY, ids=ids)
def test_state_dict_round_trip(info: RegularizationInfo) -> None:
    reg, args = info.build(torch.float64, 0)
    reg.Lambda = 0.25
    state = reg.state_dict()
    param_storages = {p.untyped_storage().data_ptr() for p in reg.params}
    assert not any(t.untyped_storage().data_ptr() in param_storages for t in state.values()), "holds parameters"
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored_state = torch.load(buffer, weights_only=True)
    clone, clone_args = info.build(torch.float64, 0)
    clone.load_state_dict(restored_state)
    assert clone.Lambda == 0.25
    torch.testing.assert_close(clone(*clone_args), reg(*args))


@pytest.mark.parametrize("info", REGISTRY, ids=ids)
def test_to_moves_buffers_not_model_parameters(info: RegularizationInfo) -> None:
    reg, args = info.build(torch.float32, 0)
    reg.Lambda = 0.1
    before = [(p, p.dtype) for p in reg.params]
    reg.to(torch.float64)
    assert [(p, p.dtype) for p in reg.params] == before
    assert reg.Lambda == 0.1 and reg._lambda.dtype == torch.float64
    for name, buffer in reg.named_buffers():
        if buffer.is_floating_point() and not name.endswith("_lambda"):
            assert buffer.dtype == torch.float64, name
    reg.to(torch.float32)
    assert torch.isfinite(reg(*args))


@pytest.mark.parametrize("info", REGISTRY, ids=ids)
def test_member_of_a_list(info: RegularizationInfo) -> None:
    reg, args = info.build(torch.float64, 0)
    # A loss on call-time inputs shares the list with another member that takes the same inputs.
    other = info.build(torch.float64, 1)[0] if args else nr.L2(make_params((3, 3), seed=7), Lambda=0.5)
    regs = nr.RegularizationList([reg, other])
    torch.testing.assert_close(regs(*args), reg(*args) + other(*args))
    assert set(regs.last_values()) >= {other.name}
    assert all(any(p is q for q in regs.params) for p in reg.params)


CLOSED_FORM = [info for info in REGISTRY if info.build(torch.float64, 0)[0].closed_form_grad]


@pytest.mark.parametrize("path", SIZE_PATHS)
@pytest.mark.parametrize("info", CLOSED_FORM, ids=lambda info: info.id)
def test_closed_form_grad_equals_autograd(info: RegularizationInfo, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A direct call differentiates through the closed form, or (small tensors) by autograd through the
    # value's few kernels: both against autograd of the functional reference, as joint mode.
    use_size_path(monkeypatch, path)
    reg, args = info.build(torch.float64, 0)
    params = reg.regularized_parameters()
    expected = torch.autograd.grad(reg.Lambda * info.reference(reg, args), params)
    reg(*args).backward()
    raw_node = reg(*args).grad_fn.next_functions[0][0]  # the weighted value is raw * Lambda
    # (the closed form where it makes no more passes than autograd: not for a norm autograd keeps)
    assert (type(raw_node).__name__ == "_ClosedFormPenaltyBackward") == (path == "closed form"
                                                                         and reg._closed_form_backward)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.grad, e)
    task_grads = [torch.randn_like(p) for p in reg.regularized_parameters()]
    for p, g in zip(reg.regularized_parameters(), task_grads):
        p.grad = g.clone()
    reg.accumulate_grad()
    for p, g, e in zip(reg.regularized_parameters(), task_grads, expected):
        torch.testing.assert_close(p.grad, g + e)


@pytest.mark.parametrize("info", REGISTRY, ids=ids)
def test_torch_compile_same_value_and_no_recompile_when_lambda_changes(info: RegularizationInfo) -> None:
    torch._dynamo.reset()
    reg, args = info.build(torch.float32, 0)
    counter = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(reg, backend=counter)
    torch.testing.assert_close(compiled(*args), reg(*args))
    frames = counter.frame_count
    reg.Lambda = 2 * reg.Lambda + 1
    torch.testing.assert_close(compiled(*args), reg(*args))
    assert counter.frame_count == frames, "changing Lambda recompiled"


def test_inductor_compiles_a_penalty_and_its_gradient() -> None:
    torch._dynamo.reset()
    params = make_params((16, 16), (16,), dtype=torch.float32)
    reg = nr.RegularizationList([nr.L1(params, Lambda=0.1), nr.L2(params, Lambda=0.2, squared=True)])
    compiled = torch.compile(reg)
    value = compiled()
    torch.testing.assert_close(value, reg())
    value.backward()
    expected = [0.1 * p.detach().sign() + 0.4 * p.detach() for p in params]
    for param, grad in zip(params, expected):
        torch.testing.assert_close(param.grad, grad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("info", REGISTRY, ids=ids)
def test_cuda_matches_cpu(info: RegularizationInfo) -> None:
    cpu_reg, cpu_args = info.build(torch.float32, 0)
    reg, args = info.build(torch.float32, 0)
    for param in reg.params:
        param.data = param.data.cuda()
    reg.cuda()
    args = tuple(a.cuda() if isinstance(a, torch.Tensor) else a for a in args)
    value = reg(*args)
    assert value.device.type == "cuda"
    torch.testing.assert_close(value.cpu(), cpu_reg(*cpu_args), rtol=1e-4, atol=1e-5)
    if reg.closed_form_grad:
        value.backward()
        expected = [p.grad.clone() for p in reg.regularized_parameters()]
        for param in reg.regularized_parameters():
            param.grad = None
        reg.accumulate_grad()
        for param, grad in zip(reg.regularized_parameters(), expected):
            torch.testing.assert_close(param.grad, grad, rtol=1e-4, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(index=st.integers(0, len(REGISTRY) - 1), seed=st.integers(0, 2**16), Lambda=st.floats(0, 10))
def test_properties_nonnegative_and_linear_in_lambda(index: int, seed: int, Lambda: float) -> None:
    info = REGISTRY[index]
    reg, args = info.build(torch.float64, seed)
    reg.Lambda = 1.0
    unit = reg(*args).detach()
    reg.Lambda = Lambda
    torch.testing.assert_close(reg(*args).detach(), Lambda * unit)
    if info.nonnegative:
        assert unit >= 0


# --- parameter selection ------------------------------------------------------------------------------------
class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, 4)
        self.decoder = nn.Linear(4, 2)


def test_module_dict_and_iterable_params_are_the_users_own_objects() -> None:
    model = TwoLayers()
    reg = nr.L2(model)
    assert reg.param_names == ["encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"]
    assert all(a is b for a, b in zip(reg.params, model.parameters()))
    by_dict = nr.L2(dict(model.named_parameters()), include="encoder.*")
    assert by_dict.param_names == ["encoder.weight", "encoder.bias"]
    by_list = nr.L2(list(model.parameters()))
    assert by_list.param_names == ["0", "1", "2", "3"]
    single = nr.L2(model.encoder.weight)
    assert single.params[0] is model.encoder.weight


def test_include_exclude_patterns_and_dedup() -> None:
    model = TwoLayers()
    assert nr.L1(model, exclude="*.bias").param_names == ["encoder.weight", "decoder.weight"]
    assert nr.L1(model, include=["decoder.*"], exclude="*.weight").param_names == ["decoder.bias"]
    w = model.encoder.weight
    assert len(nr.L1([w, w, model.decoder.weight]).params) == 2


def test_gradients_reach_the_model() -> None:
    model = TwoLayers()
    nr.L1(model, exclude="*.bias")().backward()
    torch.testing.assert_close(model.encoder.weight.grad, model.encoder.weight.detach().sign())
    assert model.encoder.bias.grad is None


def test_state_dict_never_holds_model_weights_and_loading_cannot_overwrite_them() -> None:
    model = TwoLayers()
    reg = nr.L2(model, Lambda=0.5)
    assert set(reg.state_dict()) == {"_lambda", "_step"}
    weights = model.encoder.weight.detach().clone()
    reg.load_state_dict({"_lambda": torch.tensor(2.0, dtype=torch.float64), "_step": torch.tensor(3)})
    assert reg.Lambda == 2.0
    torch.testing.assert_close(model.encoder.weight.detach(), weights)


# --- values on hand formulas ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(7,), (4, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("p", [0.5, 1, 2, 3, math.inf])
def test_lp_entrywise_hand_formula(shape: tuple, p: float) -> None:
    (w,) = make_params(shape)
    expected = w.detach().abs().max() if math.isinf(p) else (w.detach().abs() ** p).sum() ** (1 / p)
    torch.testing.assert_close(nr.Lp([w], p=p)(), expected)
    torch.testing.assert_close(nr.Lp([w], p=p, squared=True)(), expected**2)


def test_lp_skips_frozen_and_0d_parameters() -> None:
    w, b = make_params((3, 3), (3,))
    scalar = nn.Parameter(torch.tensor(5.0, dtype=torch.float64))
    b.requires_grad_(False)
    reg = nr.L1([w, b, scalar])
    torch.testing.assert_close(reg(), w.detach().abs().sum())
    assert reg.regularized_parameters() == [w]


def test_l2_is_not_the_spectral_norm() -> None:
    w = nn.Parameter(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    assert float(nr.L2([w])().detach()) == 5.0  # torch.linalg.norm(w, 2) would be 4 (NeuroTorch's value)
    assert float(nr.L1([w])().detach()) == 7.0  # torch.linalg.norm(w, 1) would be 4


@pytest.mark.parametrize(
    "reg",
    [
        lambda: nr.L2([]),
        lambda: nr.L1([nn.Parameter(torch.ones(3), requires_grad=False)]),
        lambda: nr.L1([nn.Parameter(torch.tensor(1.0))]),
        lambda: nr.RegularizationList(),
    ],
)
def test_nothing_to_regularize_gives_a_floating_zero_that_backpropagates(reg) -> None:
    value = reg()()
    assert isinstance(value, torch.Tensor) and value.dim() == 0 and value.is_floating_point()
    assert float(value.detach()) == 0.0
    value.backward()


# --- Lambda ---------------------------------------------------------------------------------------------
def test_lambda_is_read_write_and_in_state_dict() -> None:
    (w,) = make_params((3,))
    reg = nr.L1([w], Lambda=0.1)
    assert reg.Lambda == 0.1
    reg.Lambda = 3
    assert reg.Lambda == 3.0 and isinstance(reg.Lambda, float)
    torch.testing.assert_close(reg(), 3 * w.detach().abs().sum())
    assert float(reg.state_dict()["_lambda"]) == 3.0


# --- names and logging ----------------------------------------------------------------------------------
def test_names_are_unique_per_instance_unless_given() -> None:
    (w,) = make_params((3,))
    first, second = nr.L2([w]), nr.L2([w])
    assert first.name != second.name
    assert nr.L2([w], name="decay").name == "decay"


def test_list_sums_nests_dedups_and_reports_members() -> None:
    w1, w2 = make_params((3, 3), (4,))
    l1 = nr.L1([w1], Lambda=0.5, name="l1")
    l2 = nr.L2([w1, w2], Lambda=2.0, name="l2")
    inner = nr.RegularizationList([l2], name="inner")
    regs = nr.RegularizationList([l1], name="outer")
    regs.append(inner)
    assert len(regs) == 2 and regs[0] is l1 and list(regs) == [l1, inner]
    assert len(regs.params) == 2 and regs.params[0] is w1 and regs.params[1] is w2
    expected = 0.5 * w1.detach().abs().sum() + 2.0 * (w1.detach().norm() + w2.detach().norm())
    torch.testing.assert_close(regs(), expected)
    values = regs.last_values()
    assert set(values) == {"l1", "l2"}
    assert values["l1"] == pytest.approx(float(0.5 * w1.detach().abs().sum()))
    assert regs.last_values("raw")["l2"] == pytest.approx(float(w1.detach().norm() + w2.detach().norm()))
    assert regs.on_pbar_update(None) == values
    with pytest.raises(ValueError, match=r"kind must be one of \['weighted', 'raw'\], got 'both'"):
        regs.last_values("both")
    prefixes = ["", "regularizations.0.", "regularizations.1.", "regularizations.1.regularizations.0."]
    assert set(regs.state_dict()) == {prefix + key for prefix in prefixes for key in ("_lambda", "_step")}
    regs.double()
    regs.train(False)
    assert not l2.training


def test_list_accumulate_grad_scales_members_by_the_list_lambda() -> None:
    (w,) = make_params((4, 4))
    regs = nr.RegularizationList([nr.L1([w], Lambda=0.5), nr.L2([w], Lambda=2.0, squared=True)], Lambda=3.0)
    regs().backward()
    expected = w.grad.clone()
    w.grad = None
    regs.accumulate_grad()
    torch.testing.assert_close(w.grad, expected)


# --- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda w: nr.Lp([w], p=0), ValueError, r"p must be in \(0, inf\], got 0"),
        (lambda w: nr.Lp([w], p=-1), ValueError, "p must be"),
        (lambda w: nr.Lp([w], p="2"), TypeError, "p must be a real number, got '2'"),
        (lambda w: nr.Lp([w], p=float("nan")), ValueError, "p must be a finite real number"),
        (lambda w: nr.L1([w], Lambda=float("nan")), ValueError, "Lambda must be a finite real number, got nan"),
        (lambda w: nr.L1([w], Lambda=-1.0), ValueError, r"Lambda must be in \[0, inf\], got -1.0"),
        (lambda w: nr.L1([w], Lambda=True), TypeError, "Lambda must be a real number, got True"),
        (lambda w: nr.L1(42), TypeError, "params must be .* got 42"),
        (lambda w: nr.L1([w, "weight"]), TypeError, r"params\['1'\] must be a torch.nn.Parameter"),
        (lambda w: nr.L1([w.detach()]), TypeError, "not an nn.Parameter"),
        (lambda w: nr.L1({1: w}), TypeError, "params keys must be parameter names"),
        (lambda w: nr.L1([w], include="*.weight"), ValueError, "include/exclude select parameters by name"),
        (lambda w: nr.L1(nn.Linear(2, 2), exclude=3), TypeError, "exclude must be a glob pattern"),
        (lambda w: nr.L2([w], squared=1), TypeError, "squared must be a bool, got 1"),
        (lambda w: nr.L1([w], optimizer="sgd"), TypeError, "optimizer must be a torch.optim.Optimizer"),
        (lambda w: nr.L1([w], priority=1.5), TypeError, "priority must be an integer, got 1.5"),
        (lambda w: nr.L1([w], name=""), TypeError, "name must be a non-empty str"),
        (lambda w: nr.L1([w], unknown=1), TypeError, "unknown"),
        (lambda w: nr.RegularizationList([nr.L1([w]), "l2"]), TypeError, r"regularizations\[1\] must be a neuroreg"),
        (lambda w: nr.RegularizationList(nr.L1([w])), TypeError, "must be an iterable of regularizations"),
        (lambda w: nr.RegularizationList([nr.L1([w], name="a"), nr.L2([w], name="a")]), ValueError, "named 'a'"),
    ],
)
def test_bad_input_is_a_clear_error(build, error, match) -> None:
    (w,) = make_params((3,))
    with pytest.raises(error, match=match):
        build(w)


def test_bad_lambda_assignment_changes_nothing() -> None:
    (w,) = make_params((3,))
    reg = nr.L1([w], Lambda=0.5)
    with pytest.raises(ValueError, match="Lambda"):
        reg.Lambda = float("inf")
    assert reg.Lambda == 0.5 and float(reg._lambda) == 0.5


def test_list_append_refuses_non_members_and_cycles() -> None:
    (w,) = make_params((3,))
    regs = nr.RegularizationList([nr.L1([w])])
    with pytest.raises(TypeError, match="regularization must be a neuroreg regularization, got 3"):
        regs.append(3)
    outer = nr.RegularizationList([regs])
    with pytest.raises(ValueError, match="a list it contains"):
        regs.append(outer)
    assert len(regs) == 1


def test_functional_rejects_non_tensors() -> None:
    with pytest.raises(TypeError, match=r"tensors\[0\] must be a tensor"):
        lp_norm([[1.0, 2.0]])
    with pytest.raises(TypeError, match="floating-point"):
        lp_norm([torch.tensor([1, 2])])


def test_direct_call_through_the_closed_form_is_first_order_and_forward_gives_higher_orders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = nn.Parameter(torch.randn(3, 3, dtype=torch.float64))
    reg = nr.L2([w], Lambda=0.5, squared=True)
    (first,) = torch.autograd.grad(reg(), w, create_graph=True)   # small: autograd through the value
    (second,) = torch.autograd.grad(first.sum(), w)
    torch.testing.assert_close(second, torch.ones_like(w))
    use_size_path(monkeypatch, "closed form")
    (first,) = torch.autograd.grad(reg(), w, create_graph=True)
    torch.testing.assert_close(first, w.detach())
    with pytest.raises(RuntimeError, match="does not require grad"):  # the closed form is first order
        torch.autograd.grad(first.sum(), w)
    (first,) = torch.autograd.grad(reg.Lambda * reg.forward(), w, create_graph=True)
    (second,) = torch.autograd.grad(first.sum(), w)
    torch.testing.assert_close(second, torch.ones_like(w))


# --- parametrized modules: the effective weight ------------------------------------------------------------------
class _SignedSquare(nn.Module):
    """A parametrization whose effective weight is w * |w|: far from the raw tensor, so a mix-up shows."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * w.abs()


def _parametrized_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    torch.nn.utils.parametrize.register_parametrization(model[0], "weight", _SignedSquare())
    return model


EFFECTIVE_CASES = {
    "L1": (lambda m: nr.L1(m, Lambda=0.7, include="*weight"), lambda ws: 0.7 * sum(w.abs().sum() for w in ws)),
    "L2-squared": (lambda m: nr.L2(m, Lambda=0.7, squared=True, include="*weight"),
                   lambda ws: 0.7 * sum(w.pow(2).sum() for w in ws)),
    "DaleSignPenalty": (lambda m: nr.DaleSignPenalty(m, Lambda=0.7, include="*weight", seed=0),
                        None),
}


@pytest.mark.parametrize("case", sorted(EFFECTIVE_CASES))
def test_penalties_on_a_parametrized_module_act_on_its_effective_weight(case: str) -> None:
    build, by_hand = EFFECTIVE_CASES[case]
    model = _parametrized_model()
    reg = build(model)
    assert reg.param_names == ["0.weight", "2.weight"]   # include="*weight" finds the parametrized weight
    raw = model[0].parametrizations.weight.original
    weights = lambda: [model[0].weight, model[2].weight]  # noqa: E731  (recomputed: effective tensors)
    if by_hand is None:   # sum relu(-W * S)^2 with the penalty's own reference signs
        signs = reg.reference_signs
        by_hand = lambda ws: 0.7 * sum(torch.relu(-w * s).pow(2).sum() for w, s in zip(ws, signs))  # noqa: E731
    expected = by_hand(weights())
    want = torch.autograd.grad(expected, [raw, model[2].weight])
    torch.testing.assert_close(reg(), expected.detach())
    direct = torch.autograd.grad(reg(), [raw, model[2].weight])
    model.zero_grad()
    reg.accumulate_grad()
    for got in (direct, (raw.grad, model[2].weight.grad)):
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)
    assert not torch.allclose(want[0], torch.autograd.grad(by_hand([raw, model[2].weight]), raw)[0])


def test_effective_false_regularizes_the_raw_parameter_under_its_own_name() -> None:
    model = _parametrized_model()
    reg = nr.L1(model, Lambda=1.0, effective=False, include="*weight*")
    assert reg.param_names == ["0.parametrizations.weight.original", "2.weight"]
    raw = model[0].parametrizations.weight.original
    torch.testing.assert_close(reg(), raw.abs().sum() + model[2].weight.abs().sum())
    with pytest.raises(TypeError, match="effective must be a bool"):
        nr.L1(model, effective="yes")


def test_wrapper_prefixes_are_left_out_of_names() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))

    class DataParallelLike(nn.Module):   # DistributedDataParallel keeps the model as .module
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    for wrapped in (DataParallelLike(model), torch.compile(model)):
        reg = nr.L2(wrapped, include="2.*")
        assert reg.param_names == ["2.weight", "2.bias"]
        assert reg.params[0] is model[2].weight and reg.params[1] is model[2].bias


# --- copies and replaced parameters ------------------------------------------------------------------------------
def _grads_after_accumulate(reg: nr.BaseRegularization, model: nn.Module) -> list:
    model.zero_grad()
    reg.accumulate_grad()
    return [None if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("order", ["model first", "regularization first"])
def test_a_deepcopy_with_its_model_is_bound_to_the_copied_model(order: str) -> None:
    import copy

    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    reg = nr.RegularizationList(
        [nr.L1(model, Lambda=0.5, include="*.weight"), nr.DaleLawL2(model[0], include="weight", seed=0)]
    )
    copied = copy.deepcopy([model, reg] if order == "model first" else [reg, model])
    model_copy, reg_copy = copied if order == "model first" else copied[::-1]
    grads = _grads_after_accumulate(reg_copy, model_copy)
    assert all(p.grad is None for p in model.parameters())   # the original model is untouched
    want = torch.autograd.grad(reg(), list(model.parameters()), allow_unused=True)
    for got, expected in zip(grads, want):   # the biases are not regularized: no gradient at all
        assert (got is None) == (expected is None)
        if expected is not None:
            torch.testing.assert_close(got, expected)
    assert reg_copy[1].reference_signs[0] is not reg[1].reference_signs[0]


def test_a_deepcopy_alone_keeps_acting_on_the_models_parameters() -> None:
    import copy

    model = nn.Linear(3, 2)
    reg_copy = copy.deepcopy(nr.L2(model, Lambda=0.5, squared=True))
    grads = _grads_after_accumulate(reg_copy, model)
    torch.testing.assert_close(grads[0], model.weight.detach())   # 0.5 * 2 * W reached the model itself


def test_a_deepcopy_through_a_cycle_is_one_copy() -> None:
    import copy

    reg = nr.L1(make_params((2, 2)), Lambda=0.5)
    reg.notes = {"self": reg}   # state that refers back to the regularization: copied once, not recursed into
    duplicate = copy.deepcopy(reg)
    assert duplicate is not reg and duplicate.notes["self"] is duplicate


def test_torch_save_of_model_and_regularization_together_loads_bound() -> None:
    model = nn.Linear(3, 2)
    buffer = io.BytesIO()
    torch.save({"model": model, "reg": nr.L1(model, Lambda=1.0)}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    grads = _grads_after_accumulate(loaded["reg"], loaded["model"])
    torch.testing.assert_close(grads[0], loaded["model"].weight.detach().sign())
    assert loaded["reg"].attached_optimizers == []


def test_a_regularization_loaded_alone_is_re_bound_with_bind() -> None:
    model = nn.Linear(3, 2)
    buffer = io.BytesIO()
    torch.save(nr.L1(model, Lambda=1.0, name="sparse"), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert loaded.bind(model) is loaded and loaded.params[0] is model.weight
    grads = _grads_after_accumulate(loaded, model)
    torch.testing.assert_close(grads[0], model.weight.detach().sign())
    with pytest.raises(ValueError, match=r"sparse cannot bind to Sequential: it has no parameter \['weight', 'bias'\]"):
        loaded.bind(nn.Sequential(nn.Linear(3, 2)))
    assert loaded.params[0] is model.weight


def test_parameters_replaced_after_construction_are_followed() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    reg = nr.L2(model, Lambda=1.0, squared=True, include="*.weight")
    state = {key: torch.full_like(value, 2.0) for key, value in model.state_dict().items()}
    model.load_state_dict(state, assign=True)   # new Parameter objects
    torch.testing.assert_close(reg(), torch.tensor(4.0 * (12 + 8)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    reg.attach(optimizer)   # matches the optimizer's (new) parameters
    model.zero_grad()
    optimizer.zero_grad(set_to_none=False)
    optimizer.step()
    torch.testing.assert_close(model[0].weight.detach(), torch.full((4, 3), 2.0 - 0.1 * 4.0))
    del model[1].weight
    model[1].weight = torch.ones(2, 4)   # no longer a Parameter
    with pytest.raises(RuntimeError, match=r"no longer has the parameter '1.weight'"):
        reg()
