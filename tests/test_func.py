"""torch.func: every registry class under functional_call with grad, vmap, vmap(grad) and jacrev, and the
name-keyed penalty_of for stacked ensembles."""

from __future__ import annotations

from typing import Dict, Tuple

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, stack_module_state, vmap
from torch.nn.utils.stateless import _reparametrize_module

import neuroreg as nr
from tests.registry import REGISTRY, RegularizationInfo

COPIES = 3


def held_tensors(reg: nr.BaseRegularization) -> Dict[str, Tensor]:
    """The regularization's parameters by module path (``params.0``, ``regularizations.1.params.0``, ...),
    each once: functional_call swaps a list's copy of a member's parameter with it (tied weights)."""
    return {name: p.detach() for name, p in reg.named_parameters() if p.requires_grad}


def perturbed(tensors: Dict[str, Tensor], copies: int) -> Dict[str, Tensor]:
    """``copies`` versions of each tensor, each entry scaled by a random factor near 1 (signs kept, so that
    probabilities stay probabilities)."""
    generator = torch.Generator().manual_seed(7)
    return {name: t * torch.exp(0.1 * torch.randn((copies, *t.shape), generator=generator, dtype=t.dtype))
            for name, t in tensors.items()}


def expected_value(info: RegularizationInfo, reg: nr.BaseRegularization, args: tuple, tensors: Dict[str, Tensor]):
    """Lambda times the registry's reference (the functional form), with ``tensors`` in place of the held ones."""
    with _reparametrize_module(reg, tensors, tie_weights=True):   # as functional_call: a list's copies too
        return reg.Lambda * info.reference(reg, args)


def copy_of(batched: Dict[str, Tensor], index: int) -> Dict[str, Tensor]:
    return {name: t[index].clone().requires_grad_(True) for name, t in batched.items()}


def build(info: RegularizationInfo) -> Tuple[nr.BaseRegularization, tuple]:
    return info.build(torch.float64, 0)


@pytest.mark.parametrize("info", REGISTRY, ids=[info.id for info in REGISTRY])
def test_every_class_under_grad_vmap_and_jacrev(info: RegularizationInfo) -> None:
    reg, args = build(info)
    tensors = held_tensors(reg)
    if not tensors:   # a loss on call-time inputs: transform over the inputs
        inputs = tuple(a.detach() for a in args)
        batched_inputs = tuple(perturbed({"a": a}, COPIES)["a"] for a in inputs)
        values = vmap(reg)(*batched_inputs)
        for index in range(COPIES):
            torch.testing.assert_close(values[index], reg(*(a[index] for a in batched_inputs)))
        argnums = tuple(range(len(inputs)))
        grads = grad(reg, argnums=argnums)(*inputs)
        leaves = tuple(a.clone().requires_grad_(True) for a in inputs)
        want = torch.autograd.grad(reg.Lambda * info.reference(reg, leaves), leaves)
        for got, expected in zip(grads, want):
            torch.testing.assert_close(got, expected)
        return

    def penalty(ts: Dict[str, Tensor]) -> Tensor:
        return functional_call(reg, ts, ())

    batched = perturbed(tensors, COPIES)
    values = vmap(penalty)(batched)
    batched_grads = vmap(grad(penalty))(batched)
    for index in range(COPIES):
        leaves = copy_of(batched, index)
        expected = expected_value(info, reg, args, leaves)
        torch.testing.assert_close(values[index], expected.detach())
        want = torch.autograd.grad(expected, list(leaves.values()), allow_unused=True)
        got = grad(penalty)(copy_of(batched, index))
        jac = jacrev(penalty)(copy_of(batched, index))
        for name, expected_grad in zip(leaves, want):
            expected_grad = torch.zeros_like(leaves[name]) if expected_grad is None else expected_grad
            torch.testing.assert_close(got[name], expected_grad)
            torch.testing.assert_close(jac[name], expected_grad)
            torch.testing.assert_close(batched_grads[name][index], expected_grad)
    # The transforms leave the held parameters and the logged values alone.
    assert all(torch.equal(p.detach(), tensors[name]) for name, p in held_tensors(reg).items())


def test_frozen_parameters_stay_frozen_under_functional_call() -> None:
    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    reg = nr.L1(model, Lambda=1.0)
    ones = {name: torch.ones_like(p) for name, p in model.named_parameters()}
    assert reg.param_names == ["weight", "bias"]
    torch.testing.assert_close(reg.penalty_of(ones), torch.tensor(6.0))   # the weight only: the bias is frozen
    batched = {name: torch.ones(4, *p.shape) for name, p in model.named_parameters()}
    torch.testing.assert_close(vmap(reg.penalty_of)(batched), torch.full((4,), 6.0))


def test_penalty_of_a_stacked_ensemble_of_models_with_a_list() -> None:
    torch.manual_seed(0)
    models = [nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)) for _ in range(4)]
    template = models[0]
    reg = nr.RegularizationList([
        nr.L1(template, Lambda=0.1, include="*.weight"),
        nr.DaleLawL2(template, alpha=0.6, Lambda=0.5, include="0.weight", seed=0),
    ])
    params, _ = stack_module_state(models)
    values = vmap(reg.penalty_of)(params)
    grads = vmap(grad(reg.penalty_of))(params)
    signs = reg[1].reference_signs[0]
    for index, model in enumerate(models):
        w0, w2 = model[0].weight, model[2].weight
        by_hand = 0.1 * (w0.abs().sum() + w2.abs().sum()) + 0.5 * (w0 * (0.6 * w0 - 0.4 * signs)).sum()
        torch.testing.assert_close(values[index], by_hand.detach())
        want = torch.autograd.grad(by_hand, [w0, w2])
        torch.testing.assert_close(grads["0.weight"][index], want[0])
        torch.testing.assert_close(grads["2.weight"][index], want[1])


def test_penalty_of_refuses_a_dict_without_a_selected_name() -> None:
    model = nn.Linear(3, 2)
    reg = nr.L1(model, name="sparse")
    with pytest.raises(ValueError, match=r"params lacks \['bias'\], regularized by sparse"):
        reg.penalty_of({"weight": torch.ones(2, 3)})
    with pytest.raises(TypeError, match="params must be a dict"):
        reg.penalty_of([torch.ones(2, 3)])
