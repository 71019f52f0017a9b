"""Configs: every regularization of tests/registry.py round-trips through JSON and from_config, then
load_state_dict of the old one's state gives identical penalties, gradients and schedule position."""

from __future__ import annotations

import json
import math
from typing import Dict

import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg.config import registered
from tests.registry import REGISTRY, convex

#: Entries whose construction holds a callable that is no plain data: get_config must refuse them, naming
#: the argument (hypercoil's scalarisation maps return closures, which record none of their options).
UNSERIALIZABLE: Dict[str, str] = {
    "BatchCorrelationLoss-signed": "scalarisation",
    "ReferenceTetherLoss-held-sphere-distance": "scalarisation",
    "InterhemisphericTetherLoss-inputs": "scalarisation",
    "InterhemisphericTetherLoss-held-pair": "scalarisation",
    "HingeLoss-held-mean": "scalarisation",
    "ConstraintViolationLoss-inputs-broadcast": "constraints",
}
# A function of the test suite's own, registered by name as a user would register theirs.
nr.register("tests.registry.convex")(convex)


def leaves(reg: nr.BaseRegularization):
    if isinstance(reg, nr.RegularizationList):
        for member in reg:
            yield from leaves(member)
    else:
        yield reg


def models_of(reg: nr.BaseRegularization) -> Dict[str, nn.Module]:
    """One model per leaf: a ParameterList of its parameters, so their positional names are its names."""
    return {leaf.name: nn.ParameterList(list(leaf.params)) for leaf in leaves(reg)}


def penalty_and_grads(reg, args):
    value = reg(*args)
    inputs = [*reg.regularized_parameters(), *(a for a in args if a.requires_grad)]
    grads = torch.autograd.grad(value, inputs, allow_unused=True) if value.requires_grad else []
    return value.detach(), [None if g is None else g.detach() for g in grads]


@pytest.mark.parametrize("info", REGISTRY, ids=[info.id for info in REGISTRY])
def test_round_trip(info):
    reg, args = info.build(torch.float64, 0)
    # A schedule and a position along it, on every member: from_config must rebuild the schedule and
    # load_state_dict restore its position.
    for leaf in {id(r): r for r in [reg, *leaves(reg)]}.values():
        leaf.Lambda = nr.schedules.LinearWarmup(2 * leaf.Lambda + 0.5, warmup_steps=7, initial=0.25)
    for _ in range(3):
        reg.step()
    if info.id in UNSERIALIZABLE:
        with pytest.raises(ValueError, match=UNSERIALIZABLE[info.id]):
            reg.get_config()
        return
    config = reg.get_config()
    text = json.dumps(config)
    assert "tensor(" not in text
    loaded = json.loads(text)
    rebuilt = nr.from_config(loaded, models_of(reg) if isinstance(reg, nr.RegularizationList) else
                             nn.ParameterList(list(reg.params)))
    assert type(rebuilt) is type(reg)
    assert rebuilt.get_config() == loaded
    assert rebuilt.param_names == reg.param_names
    assert rebuilt.global_step == 0
    rebuilt.load_state_dict(reg.state_dict())
    assert rebuilt.global_step == reg.global_step == 3
    expected_lambda = 0.25 + (2 * info.build(torch.float64, 0)[0].Lambda + 0.5 - 0.25) * 3 / 7
    assert math.isclose(reg.Lambda, expected_lambda) and rebuilt.Lambda == reg.Lambda
    for old, new in zip(leaves(reg), leaves(rebuilt)):
        assert new.name == old.name and new.Lambda == old.Lambda and new.global_step == old.global_step
        assert all(p is q for p, q in zip(new.params, old.params))
    value, grads = penalty_and_grads(reg, args)
    new_value, new_grads = penalty_and_grads(rebuilt, args)
    assert torch.equal(new_value, value)
    assert len(new_grads) == len(grads)
    for old, new in zip(grads, new_grads):
        assert (old is None) == (new is None)
        if old is not None:
            assert torch.equal(new, old)
    # And the schedule goes on from there.
    reg.step()
    rebuilt.step()
    assert rebuilt.Lambda == reg.Lambda


def test_every_registered_class_is_in_the_registry():
    # A class no registry entry builds would never be round-tripped: the registry must cover them all.
    classes = {type(leaf).__name__ for info in REGISTRY for leaf in [info.build(torch.float64, 0)[0]]
               for leaf in [leaf, *leaves(leaf)]}
    regularizations = {
        name for name in registered()
        if isinstance(getattr(nr, name, None), type) and issubclass(getattr(nr, name), nr.BaseRegularization)
    }
    untested = sorted(regularizations - classes - {"BaseRegularization", "LossApply", "LossScheme"})
    assert not untested, f"no entry of tests/registry.py builds {untested}"


def test_module_presets_and_parametrized_effective_weight():
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    torch.nn.utils.parametrize.register_parametrization(model[2], "weight", _Double())
    reg = nr.L2(model, Lambda=0.4, squared=True, include="*weight", exclude="0.*", name="decay")
    config = reg.get_config()
    assert config == {"type": "L2", "params": ["2.weight"], "Lambda": 0.4, "squared": True, "include": "*weight",
                      "exclude": "0.*", "name": "decay"}
    rebuilt = nr.from_config(json.loads(json.dumps(config)), model)
    assert rebuilt.param_names == ["2.weight"]
    # The effective (doubled) weight, as the original's.
    expected = (2 * model[2].parametrizations.weight.original).square().sum() * 0.4
    assert torch.allclose(rebuilt(), expected) and torch.equal(rebuilt(), reg())


class _Double(nn.Module):
    def forward(self, weight):
        return 2 * weight


def test_activity_on_modules_by_name():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Sigmoid())
    with torch.no_grad():
        # Rates near 1 in both recorded modules: above the range, a positive penalty.
        model[0].bias.fill_(5.0)
        model[2].bias.fill_(5.0)
    reg = nr.FiringRateRange(model, Lambda=0.5, include=["1", "3"], low=0.2, high=0.6)
    config = reg.get_config()
    assert config["modules"] == ["1", "3"] and config["include"] == ["1", "3"]
    rebuilt = nr.from_config(json.loads(json.dumps(config)), model)
    model(torch.randn(5, 3, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(rebuilt(), reg()) and reg() > 0
    assert rebuilt.module_names == ["1", "3"]   # bound to the model's modules through the presets, as built
    with pytest.raises(ValueError, match=r"modules.*\['3'\]"):
        nr.from_config(config, nn.Sequential(nn.Linear(3, 4), nn.Tanh()))


def test_list_on_one_model_and_appended_member():
    model = nn.Linear(3, 3)
    regs = nr.RegularizationList([nr.L1(model, exclude="bias", name="l1")], Lambda=2.0, name="all")
    regs.append(nr.DaleLaw(model, include="weight", Lambda=0.1, seed=3, name="dale"))
    config = regs.get_config()
    assert [member["type"] for member in config["regularizations"]] == ["L1", "DaleLaw"]
    rebuilt = nr.from_config(config, model)
    rebuilt.load_state_dict(regs.state_dict())
    assert torch.equal(rebuilt(), regs()) and rebuilt.last_values() == regs.last_values()
    empty = nr.RegularizationList(name="later")
    empty.append(nr.L2(model, Lambda=0.3, name="l2"))
    assert [member["name"] for member in empty.get_config()["regularizations"]] == ["l2"]


def test_schedules_and_callables():
    schedule = nr.schedules.StepWise(boundaries=[2, 5], values=[0.0, 0.5, 1.0])
    config = nr.L1([nn.Parameter(torch.ones(2))], Lambda=schedule).get_config()
    assert config["Lambda"] == {"type": "StepWise", "boundaries": [2, 5], "values": [0.0, 0.5, 1.0]}
    assert nr.from_config(config["Lambda"]) == schedule
    weights = nn.ParameterList([nn.Parameter(torch.randn(4, 4))])
    reg = nr.ExcRatioTargetRegularization(weights, sign_func=torch.tanh)
    assert reg.get_config()["sign_func"] == {"__callable__": "torch.tanh"}
    assert nr.from_config(reg.get_config(), weights).sign_func is torch.tanh


@pytest.mark.parametrize(
    ("build", "argument"),
    [
        (lambda p: nr.L1(p, Lambda=lambda step: 0.1 * step), "Lambda"),
        (lambda p: nr.ExcRatioTargetRegularization(p, sign_func=lambda w: w.tanh()), "sign_func"),
        (lambda p: nr.L1(p, optimizer=torch.optim.SGD(p, lr=0.1)), "optimizer"),
    ],
)
def test_get_config_refuses_what_is_not_data(build, argument):
    reg = build([nn.Parameter(torch.ones(3, 2))])
    with pytest.raises(ValueError, match=rf"^{argument}"):
        reg.get_config()


def test_optimizer_given_to_from_config():
    weights = nn.ParameterList([nn.Parameter(torch.ones(3))])
    config = nr.L1(weights, Lambda=0.5).get_config()
    optimizer = torch.optim.SGD(weights.parameters(), lr=0.1)
    rebuilt = nr.from_config(config, weights, optimizer=optimizer)
    assert rebuilt.mode == "separate" and rebuilt.optimizer is optimizer


def test_register_third_party_subclass():
    @nr.register("test_config_scaled_l1")
    class ScaledL1(nr.L1):
        def __init__(self, params, factor: float = 2.0, **kwargs):
            super().__init__(params, **kwargs)
            self.factor = factor

        def forward(self):
            return self.factor * super().forward()

    weights = nn.ParameterList([nn.Parameter(torch.tensor([1.0, -3.0]))])
    config = ScaledL1(weights, factor=3.0, Lambda=0.5).get_config()
    assert config["type"] == "test_config_scaled_l1" and config["factor"] == 3.0
    rebuilt = nr.from_config(config, weights)
    assert isinstance(rebuilt, ScaledL1) and float(rebuilt().detach()) == 0.5 * 3.0 * 4.0

    class Unregistered(nr.L1):
        pass

    with pytest.raises(ValueError, match="register"):
        Unregistered(weights).get_config()


def test_bad_configs():
    weights = nn.ParameterList([nn.Parameter(torch.ones(3))])
    config = nr.Lp(weights, p=3, Lambda=0.5, name="lp").get_config()
    with pytest.raises(ValueError, match=r"'NoSuchPenalty'.*known types are \[.*'L1'"):
        nr.from_config({**config, "type": "NoSuchPenalty"}, weights)
    with pytest.raises(ValueError, match="'type'"):
        nr.from_config({k: v for k, v in config.items() if k != "type"}, weights)
    with pytest.raises(TypeError, match="type"):
        nr.from_config({**config, "type": 3}, weights)
    with pytest.raises(TypeError, match="dict"):
        nr.from_config(json.dumps(config), weights)
    with pytest.raises(ValueError, match="colour"):
        nr.from_config({**config, "colour": "red"}, weights)
    with pytest.raises(TypeError, match="Lambda"):
        nr.from_config({**config, "Lambda": "big"}, weights)
    with pytest.raises(ValueError, match=r"params.*\['7'\]"):
        nr.from_config({**config, "params": ["0", "7"]}, weights)
    with pytest.raises(TypeError, match="params"):
        nr.from_config(config, None)
    with pytest.raises(TypeError, match=r"\[.params.\] names parts of a model, so model must be an nn\.Module"):
        nr.from_config(config, list(weights))
    with pytest.raises(TypeError, match="params"):
        nr.from_config({**config, "params": "0"}, weights)
    with pytest.raises(TypeError, match=r"target.*dtype"):
        nr.from_config({"type": "JSDivergenceLoss", "params": ["0"], "target": {"__tensor__": [3], "dtype": "big"}},
                       weights)
    with pytest.raises(ValueError, match="a tensor is described by the keys '__tensor__' and 'dtype'"):
        nr.from_config({"type": "JSDivergenceLoss", "params": ["0"],
                        "target": {"__tensor__": [3], "dtype": "float32", "values": [1, 2, 3]}}, weights)
    with pytest.raises(TypeError, match=r"\['Lambda'\] must be \{'__callable__'"):
        nr.from_config({**config, "Lambda": {"__callable__": "torch.tanh", "scale": 2}}, weights)
    with pytest.raises(TypeError, match=r"\['Lambda'\] must be \{'__callable__'"):
        nr.from_config({**config, "Lambda": {"__callable__": 3}}, weights)
    with pytest.raises(ValueError, match=r"'os\.system' is not a registered name"):
        nr.from_config({**config, "Lambda": {"__callable__": "os.system"}}, weights)
    with pytest.raises(TypeError, match=r"lacks.*'loss'"):
        nr.from_config({"type": "LossApply"}, weights)


def test_register_refuses_a_name_that_is_not_a_string() -> None:
    for name in ("", 3, None):
        with pytest.raises(TypeError, match="name must be a non-empty string"):
            nr.register(name)


def test_registered_lists_schedules_defined_later(monkeypatch) -> None:
    import neuroreg.config as config

    monkeypatch.setattr(config, "_REGISTRY", dict(config._REGISTRY))   # the new class leaves no trace
    later = type("LaterSchedule", (nr.schedules.Constant,), {"__module__": "neuroreg.schedules"})
    assert "LaterSchedule" in registered() and config._REGISTRY["LaterSchedule"] is later


def test_a_penalty_on_inputs_has_no_params_and_an_empty_tensor_round_trips() -> None:
    assert nr.EntropyLoss(None).get_config()["params"] is None
    assert nr.EntropyLoss([]).get_config()["params"] is None
    weights = nn.ParameterList([nn.Parameter(torch.ones(0, 3))])
    config = nr.JSDivergenceLoss(weights, target=torch.full((0, 3), 1 / 3)).get_config()
    assert config["target"] == {"__tensor__": [0, 3], "dtype": "float32"}
    rebuilt = nr.from_config(json.loads(json.dumps(config)), weights)
    assert rebuilt.state_dict()["target"].shape == (0, 3) and float(rebuilt().detach()) == 0.0


def test_dict_arguments_positional_only_arguments_and_long_reprs_in_messages() -> None:
    class Long(nn.Module):
        def extra_repr(self) -> str:
            return "x" * 100

    @nr.register("test_config_with_options")
    class WithOptions(nr.L1):
        def __init__(self, params, /, options=None, **kwargs):
            super().__init__(params, **kwargs)
            self.options = options

    weights = nn.ParameterList([nn.Parameter(torch.tensor([1.0, -3.0]))])
    config = WithOptions(weights, {"scale": 2.0}, Lambda=0.5).get_config()
    assert config["options"] == {"scale": 2.0}
    rebuilt = nr.from_config(json.loads(json.dumps(config)), weights)
    assert rebuilt.options == {"scale": 2.0} and float(rebuilt().detach()) == 0.5 * 4.0
    with pytest.raises(ValueError, match="options: a dict argument with the key 'type'"):
        WithOptions(weights, {"type": "L1"}).get_config()
    with pytest.raises(ValueError) as error:
        WithOptions(weights, {"net": Long()}).get_config()
    assert str(error.value) == (
        f"options.net: Long {repr(Long())[:77]}... cannot be in a config; pass it to "
        "from_config(config, model, options.net=...) instead"
    )
