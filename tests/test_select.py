"""``select=`` and the presets of ``neuroreg.select``: what each keeps on torch and NeuroTorch models, with
include/exclude, on dicts and iterables, the warning when nothing is selected, and bad input."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg import select
from tests.neurotorch_support import import_neurotorch


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.rnn = nn.LSTM(4, 5, num_layers=2, bidirectional=True)
        self.cell = nn.GRUCell(10, 3)
        self.norm = nn.LayerNorm(3)
        self.bn = nn.BatchNorm1d(3)
        self.attention = nn.MultiheadAttention(3, 1)
        self.conv = nn.Conv1d(3, 2, 3)
        self.head = nn.Linear(3, 2)
        self.scale = nn.Parameter(torch.ones(()))


def by_hand(model: nn.Module, keep) -> list:
    """The names that ``keep(name, param, owner)`` accepts, the owner found by walking the name."""
    return [name for name, p in model.named_parameters() if keep(name, p, model.get_submodule(name.rpartition(".")[0]))]


def test_weights_keeps_tensors_of_two_or_more_dimensions() -> None:
    model = Model()
    expected = [name for name, p in model.named_parameters() if p.dim() >= 2]
    assert nr.L2(model, select=select.weights).param_names == expected
    assert "embed.weight" in expected and "conv.weight" in expected and "head.bias" not in expected


def test_no_decay_drops_biases_normalisation_and_embeddings() -> None:
    names = nr.L2(Model(), squared=True, select=select.no_decay).param_names
    assert names == [
        "scale", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l0_reverse", "rnn.weight_hh_l0_reverse",
        "rnn.weight_ih_l1", "rnn.weight_hh_l1", "rnn.weight_ih_l1_reverse", "rnn.weight_hh_l1_reverse",
        "cell.weight_ih", "cell.weight_hh", "attention.in_proj_weight", "attention.out_proj.weight",
        "conv.weight", "head.weight",
    ]


def test_no_decay_on_a_dict_knows_biases_by_name_only() -> None:
    model = Model()
    params = dict(model.named_parameters())
    names = nr.L2(params, select=select.no_decay).param_names
    # Without modules, LayerNorm's weight cannot be told from a Linear's; its bias still goes.
    assert "norm.weight" in names and "norm.bias" not in names and "rnn.bias_hh_l0" not in names


def test_module_types_and_its_name() -> None:
    model = Model()
    chosen = select.module_types(nn.Conv1d, nn.Linear)
    assert chosen.__name__ == "module_types(Conv1d, Linear)"
    names = nr.L1(model, select=chosen).param_names
    # MultiheadAttention's out_proj is a NonDynamicallyQuantizableLinear, a Linear subclass.
    assert names == ["attention.out_proj.weight", "attention.out_proj.bias", "conv.weight", "conv.bias", "head.weight",
                     "head.bias"]
    assert names == by_hand(model, lambda n, p, m: isinstance(m, (nn.Conv1d, nn.Linear)))
    with pytest.raises(TypeError, match=r"module_types takes one or more nn\.Module subclasses"):
        select.module_types()
    with pytest.raises(TypeError, match="module_types"):
        select.module_types(nn.Linear, int)


def test_recurrent_keeps_hidden_to_hidden_weights_of_torch_layers() -> None:
    model = Model()
    names = nr.L2(model, select=select.recurrent).param_names
    assert names == ["rnn.weight_hh_l0", "rnn.weight_hh_l0_reverse", "rnn.weight_hh_l1", "rnn.weight_hh_l1_reverse",
                     "cell.weight_hh"]
    # A Linear whose attribute happens to be called weight_hh is not recurrent.
    impostor = nn.Module()
    impostor.layer = nn.Linear(2, 2)
    impostor.layer.weight_hh = nn.Parameter(torch.ones(2, 2))
    with pytest.warns(UserWarning, match="selects no parameter"):
        assert nr.L2(impostor, select=select.recurrent).param_names == []


def test_recurrent_keeps_neurotorchs_recurrent_weights_only() -> None:
    nt = import_neurotorch()
    layers = nn.ModuleDict({
        "lif": nt.LIFLayer(4, 3, use_recurrent_connection=True, force_dale_law=True),
        "wc": nt.WilsonCowanLayer(3, 3, use_recurrent_connection=True),
        "feedforward": nt.LIFLayer(3, 2, use_recurrent_connection=False),
    })
    for layer in layers.values():
        layer.build()
    reg = nr.L2(layers, select=select.recurrent)
    assert reg.param_names == ["lif._recurrent_weights", "wc._recurrent_weights"]
    assert reg.params[0] is layers["lif"].get_recurrent_weights_parameter()
    # The forward weights, signs and mask stay out.
    assert not any(name.endswith(("_forward_weights", "_recurrent_sign", "rec_mask")) for name in reg.param_names)


def test_select_combines_with_include_and_exclude_and_sees_the_owner() -> None:
    model = Model()
    seen = []

    def record(name, param, module):
        seen.append((name, module))
        return True

    names = nr.L1(model, include="rnn.*", exclude="*reverse", select=record).param_names
    assert names == [name for name, _ in seen]
    assert all(module is model.rnn for _, module in seen)
    assert names == [n for n, _ in model.named_parameters() if n.startswith("rnn.") and not n.endswith("reverse")]
    assert nr.L1(model, include="rnn.*", select=select.recurrent, exclude="*reverse").param_names == [
        "rnn.weight_hh_l0", "rnn.weight_hh_l1"]


def test_select_on_an_iterable_and_on_a_parametrized_module() -> None:
    w, b = nn.Parameter(torch.ones(3, 2)), nn.Parameter(torch.ones(3))
    reg = nr.L1([w, b], select=select.weights)
    assert reg.param_names == ["0"] and reg.params[0] is w
    layer = nn.Linear(3, 3)
    torch.nn.utils.parametrize.register_parametrization(layer, "weight", nn.Identity())
    owners = []
    nr.L1(layer, select=lambda n, p, m: owners.append((n, m)) or True)
    assert ("weight", layer) in owners   # the parametrized module, under the effective name


def test_selecting_nothing_warns_once_naming_the_regularization_and_patterns() -> None:
    model = nn.Linear(2, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = nr.L1(model, include="rnn.*", select=select.recurrent, name="sparse-rnn")
    assert len(caught) == 1 and caught[0].category is UserWarning
    message = str(caught[0].message)
    assert "sparse-rnn selects no parameter" in message and "('rnn.*',)" in message and "recurrent" in message
    assert caught[0].filename == __file__       # points at the user's line, not inside neuroreg
    assert reg.param_names == [] and float(reg()) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nr.L1(model, select=select.weights)     # selecting something: no warning
        nr.L1(nn.ReLU())                        # no filters at all: no warning


def test_select_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"select must be None or a predicate \(name, param, module\) -> bool"):
        nr.L1(nn.Linear(2, 2), select="weight")
    with pytest.raises(TypeError, match="got 'weights' of type str"):
        nr.DaleSignPenalty(nn.Linear(2, 2), select="weights")
