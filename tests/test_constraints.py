"""neuroreg.constraints: Dale's law and masks that hold exactly at every step, by reparametrization
(dale_, mask_) and by projection after each optimizer step (SignProjection, MaskProjection); the nn.RNN
layout without a transpose; bad input refused before the module changes."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import neuroreg as nr
from neuroreg import constraints
from neuroreg.init import dale_ as dale_init
from neuroreg.testing import BPTT, ProtocolTrainer
from tests.protocol import make_batches, seeded_model

STEPS = 200
LR = 1.0  # large enough that unconstrained Adam steps flip many signs


def adam_steps(params: list, loss_fn, steps: int = STEPS, **kwargs) -> torch.optim.Optimizer:
    """``steps`` Adam steps on ``loss_fn()``, a loss that pulls the weights toward random signs."""
    optimizer = torch.optim.Adam(params, lr=LR, **kwargs)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()
    return optimizer


def pull_toward(weight_fn, shape: tuple, seed: int = 0):
    """A loss pulling the weight toward a new random target of both signs at every call."""
    generator = torch.Generator().manual_seed(seed)
    return lambda: (weight_fn() - 3 * torch.randn(shape, generator=generator)).square().sum()


# --- dale_ ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["abs", "softplus", "relu"])
def test_dale_signs_hold_exactly_after_adam_steps_at_a_large_learning_rate(mode: str) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(7, 6)
    constraints.dale_(layer, inh_ratio=0.3, rho=0.6, seed=4, convention="j->i", mode=mode)
    # The reference: neuroreg.init.dale_'s draw in nn.Linear's layout, each column (presynaptic neuron) one sign.
    signs = dale_init(torch.empty(6, 7, dtype=torch.float64), 0.3, 0.6, seed=4, convention="j->i").sign().float()
    torch.testing.assert_close(layer.parametrizations.weight[0].signs, signs)
    raw = layer.parametrizations.weight.original
    free = nn.Parameter(raw.detach().clone())  # the same steps without the constraint
    adam_steps([raw, layer.bias], pull_toward(lambda: layer.weight, (6, 7)))
    adam_steps([free], pull_toward(lambda: free, (6, 7)))
    weight = layer.weight.detach()
    assert (weight * signs >= 0).all() and (weight[signs == 0] == 0).all()
    assert int((free.detach() * signs < 0).sum()) > 5, "the test's steps would flip signs unconstrained"
    if mode != "relu":  # relu's raw weights that went below 0 get no gradient again: at lr=1 most die
        assert (weight != 0).sum() > 0.5 * (signs != 0).sum()


def test_dale_effective_weight_equals_the_current_one_where_its_sign_matches() -> None:
    weight = torch.tensor([[0.5, -2.0, 3.0], [-1.0, 0.25, 0.0]])
    reference = torch.tensor([[1.0, 1.0, -1.0], [-1.0, 1.0, 1.0]])
    for mode in ("abs", "relu", "softplus"):
        layer = nn.Linear(3, 2)
        with torch.no_grad():
            layer.weight.copy_(weight)
        constraints.dale_(layer, reference_weights=reference, mode=mode)
        # Matching signs: the weight itself; wrong signs: its magnitude with the reference sign.
        expected = reference * weight.abs()
        torch.testing.assert_close(layer.weight.detach(), expected, atol=1e-30, rtol=1e-6)
        if mode != "softplus":
            assert torch.equal(layer.weight.detach(), expected)


def test_dale_gradient_reaches_the_raw_parameter_through_f_and_the_signs() -> None:
    torch.manual_seed(1)
    layer = nn.Linear(4, 3, dtype=torch.float64)
    constraints.dale_(layer, rho=1.0, seed=0, convention="j->i")
    raw = layer.parametrizations.weight.original
    x = torch.randn(5, 4, dtype=torch.float64)
    layer(x).square().sum().backward()
    # d/draw sum((x W^T + b)^2) with W = |raw| * S: (dL/dW) * S * sign(raw).
    out = x @ layer.weight.detach().T + layer.bias.detach()
    dweight = 2 * out.T @ x
    signs = layer.parametrizations.weight[0].signs
    torch.testing.assert_close(raw.grad, dweight * signs * raw.detach().sign())


def test_dale_state_dict_to_and_remove() -> None:
    layer = constraints.dale_(nn.Linear(4, 4), inh_ratio=0.5, rho=1.0, seed=2)
    state = layer.state_dict()
    assert {"parametrizations.weight.original", "parametrizations.weight.0.signs"} <= set(state)
    rebuilt = constraints.dale_(nn.Linear(4, 4), inh_ratio=0.5, rho=1.0, seed=3, inh_first=False)
    rebuilt.load_state_dict(state)
    assert torch.equal(rebuilt.weight, layer.weight)
    layer.to(torch.float64)
    assert layer.parametrizations.weight[0].signs.dtype == torch.float64 and layer.weight.dtype == torch.float64
    effective = layer.weight.detach().clone()
    parametrize.remove_parametrizations(layer, "weight")
    assert not parametrize.is_parametrized(layer)
    assert isinstance(layer.weight, nn.Parameter) and torch.equal(layer.weight.detach(), effective)


def test_dale_composes_with_torch_parametrizations() -> None:
    torch.manual_seed(2)
    layer = nn.utils.parametrizations.weight_norm(nn.Linear(5, 5), name="weight", dim=0)
    constraints.dale_(layer, inh_ratio=0.4, rho=1.0, seed=1)
    signs = layer.parametrizations.weight[1].signs
    params = [layer.parametrizations.weight.original0, layer.parametrizations.weight.original1]
    adam_steps(params, pull_toward(lambda: layer.weight, (5, 5)), steps=50)
    assert (layer.weight.detach() * signs > 0).all()


def test_rnn_needs_no_transpose() -> None:
    """In nn.RNN, h' = tanh(W_ih x + W_hh h): column j of weight_hh_l0 is what hidden neuron j sends."""
    torch.manual_seed(3)
    n = 8
    rnn = nn.RNN(2, n, batch_first=True)
    constraints.dale_(rnn, "weight_hh_l0", inh_ratio=0.25, rho=1.0, seed=0, convention="j->i")
    penalty = nr.DaleSignPenalty([rnn.parametrizations.weight_hh_l0.original], inh_ratio=0.25, rho=1.0, seed=0,
                                 convention="j->i")
    assert torch.equal(penalty.reference_signs[0], rnn.parametrizations.weight_hh_l0[0].signs)
    with torch.no_grad():
        for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(rnn, name).zero_()
    x = torch.zeros(1, 1, 2)
    for j in range(n):
        h0 = torch.zeros(1, 1, n)
        h0[0, 0, j] = 1.0  # only neuron j active
        response = rnn(x, h0)[0][0, 0]
        # Neurons 0 and 1 are inhibitory (inh_first): they lower every neuron's input, the others raise it.
        assert (response < 0).all() if j < 2 else (response > 0).all()


# --- mask_ ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("as_bool", [False, True])
def test_masked_entries_stay_zero_and_get_zero_gradient(as_bool: bool) -> None:
    torch.manual_seed(4)
    mask = torch.rand(6, 5) > 0.4
    layer = constraints.mask_(nn.Linear(5, 6), mask=mask if as_bool else mask.double())
    raw = layer.parametrizations.weight.original
    layer(torch.randn(3, 5)).sum().backward()
    assert (raw.grad[~mask] == 0).all() and (raw.grad[mask] != 0).all()
    adam_steps([raw, layer.bias], pull_toward(lambda: layer.weight, (6, 5)), weight_decay=0.1)
    assert (layer.weight.detach()[~mask] == 0).all() and (layer.weight.detach()[mask] != 0).all()


def test_mask_broadcasts_and_is_a_buffer() -> None:
    layer = constraints.mask_(nn.Linear(3, 2), mask=torch.tensor([1.0, 0.0, 1.0]))  # one column cut
    assert (layer.weight[:, 1] == 0).all() and (layer.weight[:, [0, 2]] != 0).all()
    assert "parametrizations.weight.0.mask" in layer.state_dict()


# --- SignProjection -------------------------------------------------------------------------------------------------
def test_sign_projection_is_the_nearest_right_signed_weight() -> None:
    w = nn.Parameter(torch.randn(6, 6, dtype=torch.float64))
    before = w.detach().numpy().copy()
    projection = constraints.SignProjection([w], inh_ratio=0.5, rho=0.7, inh_first=False, seed=5)
    signs = dale_init(torch.empty(6, 6, dtype=torch.float64), 0.5, 0.7, False, seed=5).sign()
    torch.testing.assert_close(projection.reference_signs[0], signs)
    projection.project_()
    s = signs.numpy()
    np.testing.assert_array_equal(w.detach().numpy(), np.where(np.sign(before) == s, before, 0.0))


def test_sign_projection_attached_keeps_signs_exactly_after_adam_steps() -> None:
    w = nn.Parameter(torch.randn(7, 5))
    projection = constraints.SignProjection([w], inh_ratio=0.3, rho=0.8, seed=1)
    signs = projection.reference_signs[0]
    projection.project_()
    optimizer = torch.optim.Adam([w], lr=LR)
    handle = projection.attach(optimizer)
    loss = pull_toward(lambda: w, (7, 5))
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
        assert (w.detach() * signs >= 0).all() and (w.detach()[signs == 0] == 0).all()
    assert (w.detach() != 0).sum() > 0.3 * (signs != 0).sum()
    handle.remove()
    with torch.no_grad():
        w.neg_()
    optimizer.zero_grad()
    loss().backward()
    optimizer.step()
    assert (w.detach() * signs < 0).any(), "a removed projection still acts"


def test_projections_as_trainer_callbacks_attach_in_start() -> None:
    model = seeded_model()
    projection = constraints.SignProjection(model, include="*.weight", inh_ratio=0.25, rho=1.0, seed=0,
                                            convention="j->i")
    mask = torch.rand(3, 8, generator=torch.Generator().manual_seed(0)) > 0.5
    masking = constraints.MaskProjection({"2.bias": model[2].bias}, [mask[:, 0]])
    projection.project_()
    trainer = ProtocolTrainer(model, [projection, masking, BPTT(torch.optim.Adam(model.parameters(), lr=0.5))])
    trainer.train(make_batches(20))
    for weight, signs in zip((model[0].weight, model[2].weight), projection.reference_signs):
        assert (weight.detach() * signs >= 0).all()
    assert (model[2].bias.detach()[~mask[:, 0]] == 0).all()
    assert projection.attached_optimizers == [] and masking.attached_optimizers == []  # detached in close
    assert set(trainer.checkpoints[-1][projection.name]["state_dict"]) == {"constraints.0.signs",
                                                                             "constraints.1.signs"}


def test_a_copy_is_attached_to_nothing() -> None:
    w = nn.Parameter(torch.randn(3, 3))
    projection = constraints.SignProjection([w], rho=1.0, seed=0)
    projection.attach(torch.optim.SGD([w], lr=0.1))
    assert copy.deepcopy(projection).attached_optimizers == [] and len(projection.attached_optimizers) == 1


# --- MaskProjection -------------------------------------------------------------------------------------------------
def test_mask_projection_zeroes_masked_gradients_before_and_entries_after_each_step() -> None:
    torch.manual_seed(6)
    w = nn.Parameter(torch.randn(5, 4))
    mask = torch.rand(5, 4) > 0.5
    projection = constraints.MaskProjection([w], [mask])
    optimizer = torch.optim.AdamW([w], lr=LR, weight_decay=0.1)
    projection.attach(optimizer)
    projection.project_()
    loss = pull_toward(lambda: w, (5, 4))
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert (w.detach()[~mask] == 0).all() and (w.detach()[mask] != 0).all()
    assert (w.grad[~mask] == 0).all()
    state = optimizer.state[w]
    assert (state["exp_avg"][~mask] == 0).all() and (state["exp_avg_sq"][~mask] == 0).all()


# --- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("apply", "error", "match"),
    [
        (lambda m: constraints.dale_(m, "weights"), ValueError, "Linear has no parameter or buffer 'weights'"),
        (lambda m: constraints.dale_(m, 3), TypeError, "name must be a str"),
        (lambda m: constraints.dale_(m, "bias"), ValueError, r"bias must be 2-D .* got shape \(3,\)"),
        (lambda m: constraints.dale_(m, mode="square"), ValueError,
         r"mode must be one of \['abs', 'softplus', 'relu'\], got 'square'"),
        (lambda m: constraints.dale_(m, convention="rows"), ValueError, "convention must be one of"),
        (lambda m: constraints.dale_(m, reference_weights=torch.ones(4, 3)), ValueError,
         r"reference_weights\[0\] has shape \(4, 3\), but the parameter it refers to has shape \(3, 4\)"),
        (lambda m: constraints.dale_(m, reference_weights=torch.ones(3, 4), convention="j->i"), ValueError,
         r"dale_kwargs \['convention'\] only apply when reference_weights is None"),
        (lambda m: constraints.dale_(m, sparsity=0.1), ValueError, "unknown keyword argument 'sparsity'"),
        (lambda m: constraints.dale_(m, draw="neurotorch"), ValueError, "draw='neurotorch' needs a square tensor"),
        (lambda m: constraints.dale_("layer"), TypeError, "module must be an nn.Module"),
        (lambda m: constraints.mask_(m, mask=torch.full((3, 4), 0.5)), ValueError,
         r"mask must hold only 0 and 1 \(or True and False\), got values \[0.5\]"),
        (lambda m: constraints.mask_(m, mask=torch.ones(4, 3)), ValueError,
         r"mask of shape \(4, 3\) does not broadcast to the tensor's shape \(3, 4\)"),
        (lambda m: constraints.mask_(m, mask=[[1, 0]]), TypeError, "mask must be a tensor of 0 and 1"),
        (lambda m: constraints.mask_(m, "weight_hh", mask=torch.ones(3, 4)), ValueError, "no parameter or buffer"),
        (lambda m: constraints.SignProjection([m.bias]), ValueError, r"params\['0'\] must be 2-D"),
        (lambda m: constraints.SignProjection([m.weight], reference_weights=[torch.ones(4, 3)]), ValueError,
         r"reference_weights\[0\] has shape \(4, 3\)"),
        (lambda m: constraints.SignProjection([m.weight], rho=0), ValueError, r"rho must be in \(0, 1\]"),
        (lambda m: constraints.MaskProjection([m.weight, m.bias], [torch.ones(3, 4)]), ValueError,
         "masks must hold one item per parameter: 2 parameters, 1 given"),
        (lambda m: constraints.MaskProjection([m.bias], [torch.tensor([0, 2, 1])]), ValueError,
         r"masks\[0\] must hold only 0 and 1"),
    ],
)
def test_bad_input_is_a_clear_error_and_leaves_the_module_as_it_was(apply, error: type, match: str) -> None:
    module = nn.Linear(4, 3)
    before = {key: value.clone() for key, value in module.state_dict().items()}
    state = torch.get_rng_state()
    with pytest.raises(error, match=match):
        apply(module)
    assert not parametrize.is_parametrized(module)
    assert type(module) is nn.Linear
    assert all(torch.equal(value, before[key]) for key, value in module.state_dict().items())
    assert torch.equal(state, torch.get_rng_state())


# --- the example ---------------------------------------------------------------------------------------------------
def test_dale_rnn_example_with_the_constraint_has_every_sign_right_at_every_step(tmp_path: Path) -> None:
    pytest.importorskip("tqdm")
    pytest.importorskip("matplotlib")
    path = Path(__file__).parents[1] / "examples" / "dale_rnn.py"
    spec = importlib.util.spec_from_file_location("dale_rnn_constraint_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "curves.png"
    history = example.main(["--epochs", "2", "--batches", "2", "--hidden", "12", "--constraint", "--out", str(out),
                            "--quiet"])
    assert history["constrained_sign_match"] == [1.0, 1.0]  # the lowest over every step of each epoch
    assert history["sign_match"][0] < 1.0  # the penalized network starts with wrong signs
    assert len(history["constrained_task_loss"]) == 2 and out.stat().st_size > 0


def test_the_mask_is_a_copy_of_the_one_given() -> None:
    mask = torch.ones(2, 3)   # already the weight's dtype and device: a plain .to() would keep this very tensor
    layer = constraints.mask_(nn.Linear(3, 2), mask=mask)
    mask[0, 0] = 0.0          # the caller reusing their tensor does not change the constraint
    assert (layer.weight != 0).all()
