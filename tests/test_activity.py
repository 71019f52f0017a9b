"""Activity regularization: the functions against NumPy and autograd, recording from a model's forward, the
three ways of use (added to the loss, on tensors, joint mode in a plain loop, Lightning and NeuroTorch), memory
and bad input."""

from __future__ import annotations

import gc
import math
import warnings
import weakref
from types import SimpleNamespace
from typing import Callable, List

import numpy as np
import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg import functional as F
from neuroreg.functional.activity import rate_sums
from tests.neurotorch_support import import_neurotorch


def tensor(*shape: int, seed: int = 0, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(*shape, generator=generator, dtype=torch.float64)).requires_grad_(True)


def np_rates(a: np.ndarray, axes: tuple) -> np.ndarray:
    return a.mean(axis=axes)


def np_range(rates: np.ndarray, low: float, high, reduction: str) -> float:
    values = np.maximum(low - rates, 0) ** 2 + (0 if high is None else np.maximum(rates - high, 0) ** 2)
    return float(values.sum() if reduction == "sum" else values.mean())


def np_kl(rates: np.ndarray, target: float, eps: float, reduction: str) -> float:
    r = np.clip(rates, eps, 1 - eps)
    values = target * np.log(target / r) + (1 - target) * np.log((1 - target) / (1 - r))
    return float(values.sum() if reduction == "sum" else values.mean())


# --- the functions: values against NumPy, closed-form gradients against autograd -------------------------------
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_l1_l2_values_and_gradients(reduction: str) -> None:
    a = tensor(4, 5, 3)
    x = a.detach().numpy()
    agg = np.sum if reduction == "sum" else np.mean
    torch.testing.assert_close(F.activity_l1(a, reduction=reduction), torch.tensor(agg(np.abs(x)), dtype=a.dtype))
    torch.testing.assert_close(F.activity_l2(a, reduction=reduction), torch.tensor(agg(x**2), dtype=a.dtype))
    for value, grad in [(F.activity_l1, F.activity_l1_grad), (F.activity_l2, F.activity_l2_grad)]:
        (expected,) = torch.autograd.grad(value(a, reduction=reduction), a)
        torch.testing.assert_close(grad(a.detach(), reduction=reduction), expected)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_records_are_pooled_and_count_gives_one_records_share(reduction: str) -> None:
    records = [tensor(3, 4, seed=s) for s in range(3)]
    stacked = torch.stack(records)
    for value, grad in [(F.activity_l1, F.activity_l1_grad), (F.activity_l2, F.activity_l2_grad)]:
        torch.testing.assert_close(value(records, reduction=reduction), value(stacked, reduction=reduction))
        expected = torch.autograd.grad(value(stacked, reduction=reduction), records)
        for record, e, g in zip(records, expected, grad(records, reduction=reduction)):
            torch.testing.assert_close(g, e)
            torch.testing.assert_close(grad(record.detach(), reduction=reduction, count=stacked.numel()), e)


def test_l1_gradient_at_zero_is_zero_as_autograd() -> None:
    a = torch.tensor([0.0, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
    (expected,) = torch.autograd.grad(F.activity_l1(a), a)
    torch.testing.assert_close(F.activity_l1_grad(a.detach()), expected)
    assert float(expected[0]) == 0.0


@pytest.mark.parametrize(
    ("shape", "kwargs", "axes"),
    [
        ((4, 6, 5), {}, (0, 1)),                               # (batch, time, neurons)
        ((4, 5), {}, (0,)),                                    # (batch, neurons): one per-step call
        ((4, 6, 5), {"time_axis": 1}, (1,)),                   # one rate per trial and neuron
        ((5, 6, 4), {"neuron_axis": 0}, (1, 2)),               # (neurons, time, batch)
        ((3, 4, 2, 5), {"neuron_axis": (-2, -1)}, (0, 1)),     # a 2-D grid of neurons
    ],
)
def test_firing_rates_against_numpy(shape: tuple, kwargs: dict, axes: tuple) -> None:
    a = tensor(*shape, low=0.0)
    torch.testing.assert_close(F.firing_rates(a, **kwargs), torch.from_numpy(np_rates(a.detach().numpy(), axes)))


def test_firing_rates_pool_per_step_records() -> None:
    steps = [tensor(4, 5, seed=s, low=0.0) for s in range(6)]
    torch.testing.assert_close(F.firing_rates(steps), torch.stack(steps, 1).mean((0, 1)))
    # On (batch, neurons) records time_axis=0 is the batch: the same pooled rates.
    torch.testing.assert_close(F.firing_rates(steps, time_axis=0), F.firing_rates(steps))


#: (options, the axes a rate averages over): (batch, time, neurons) pooled or per trial, and neurons first.
LAYOUTS = [({}, (0, 1)), ({"time_axis": 1}, (1,)), ({"neuron_axis": 0}, (1, 2))]
LAYOUT_IDS = ["pooled", "per-trial", "neurons-first"]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize(("low", "high"), [(0.3, 0.6), (0.0, 0.5), (0.55, None), (0.5, 0.5)])
@pytest.mark.parametrize(("kwargs", "axes"), LAYOUTS, ids=LAYOUT_IDS)
def test_firing_rate_range_value_and_gradient(low: float, high, reduction: str, kwargs: dict, axes: tuple) -> None:
    a = tensor(7, 2, 3, low=0.0) if "neuron_axis" in kwargs else tensor(4, 6, 7, low=0.0)
    expected = np_range(np_rates(a.detach().numpy(), axes), low, high, reduction)
    value = F.firing_rate_range(a, low, high, reduction=reduction, **kwargs)
    assert value.dtype == a.dtype
    assert float(value) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert expected > 0 or (low, high) == (0.0, None)
    (autograd,) = torch.autograd.grad(value, a)
    torch.testing.assert_close(F.firing_rate_range_grad(a.detach(), low, high, reduction=reduction, **kwargs), autograd)


def test_firing_rate_range_is_zero_inside_the_band() -> None:
    a = torch.full((8, 10, 3), 0.05, dtype=torch.float64)
    assert float(F.firing_rate_range(a, 0.01, 0.1)) == 0.0
    assert float(F.firing_rate_range_grad(a, 0.01, 0.1).abs().max()) == 0.0


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize(("target", "eps"), [(0.1, 1e-6), (0.4, 1e-3)])
@pytest.mark.parametrize(("kwargs", "axes"), LAYOUTS, ids=LAYOUT_IDS)
def test_firing_rate_kl_value_and_gradient(target: float, eps: float, reduction: str, kwargs: dict, axes: tuple):
    a = tensor(7, 2, 3, low=0.0) if "neuron_axis" in kwargs else tensor(4, 6, 7, low=0.0)
    value = F.firing_rate_kl(a, target, eps=eps, reduction=reduction, **kwargs)
    expected = np_kl(np_rates(a.detach().numpy(), axes), target, eps, reduction)
    assert float(value) == pytest.approx(expected, rel=1e-12)
    (autograd,) = torch.autograd.grad(value, a)
    grad = F.firing_rate_kl_grad(a.detach(), target, eps=eps, reduction=reduction, **kwargs)
    torch.testing.assert_close(grad, autograd)


def test_firing_rate_kl_is_finite_at_rates_0_and_1_and_pushes_toward_the_target() -> None:
    spikes = torch.zeros(4, 5, 3, dtype=torch.float64)
    spikes[..., 1] = 1.0
    spikes[..., 2] = 0.2
    value = F.firing_rate_kl(spikes, 0.2, eps=1e-4)
    assert float(value) == pytest.approx(np_kl(np.array([0.0, 1.0, 0.2]), 0.2, 1e-4, "sum"), rel=1e-12)
    grad = F.firing_rate_kl_grad(spikes, 0.2, eps=1e-4)
    n = 20  # elements per rate
    expected = np.array([-0.2 / 1e-4 + 0.8 / (1 - 1e-4), -0.2 / (1 - 1e-4) + 0.8 / 1e-4, 0.0]) / n
    torch.testing.assert_close(grad[0, 0], torch.from_numpy(expected))
    assert grad[..., 0].lt(0).all() and grad[..., 1].gt(0).all()   # gradient descent raises 0 and lowers 1


def test_firing_rate_kl_propagates_nan_and_refuses_infinite_rates() -> None:
    a = torch.full((4, 3), 0.3, dtype=torch.float64)
    a[1, 2] = float("nan")
    value = F.firing_rate_kl(a, 0.2)
    assert torch.isnan(value)
    a[1, 2] = float("inf")
    with pytest.raises(ValueError, match="firing rates must be in"):
        F.firing_rate_kl(a, 0.2)


def test_rate_sums_default_to_one_rate_per_neuron_on_the_last_axis() -> None:
    a = tensor(2, 3, 4, low=0.0).detach()   # (batch, time, neurons)
    sums, count = rate_sums(a)
    np.testing.assert_allclose(sums.numpy(), a.numpy().sum((0, 1)), rtol=1e-12)
    assert count == 6
    b = tensor(5, 4, seed=1, low=0.0).detach()   # a second record of the same 4 neurons: the sums add up
    sums, count = rate_sums([a, b])
    np.testing.assert_allclose(sums.numpy(), a.numpy().sum((0, 1)) + b.numpy().sum(0), rtol=1e-12)
    assert count == 11


def test_a_silent_neuron_takes_the_default_eps_of_1e_6() -> None:
    # Rate 0 is clipped to eps = 1e-6: KL(0.1 || eps) and its gradient -t/eps + (1-t)/(1-eps), spread over the
    # 4 elements of the rate.
    a, t, eps = torch.zeros(4, 1, dtype=torch.float64), 0.1, 1e-6
    kl = t * math.log(t / eps) + (1 - t) * math.log((1 - t) / (1 - eps))
    assert float(F.firing_rate_kl(a)) == pytest.approx(kl, rel=1e-12)
    rate_grad = -t / eps + (1 - t) / (1 - eps)
    np.testing.assert_allclose(F.firing_rate_kl_grad(a).numpy(), np.full((4, 1), rate_grad / 4), rtol=1e-12)
    # The default target 0.1 at rate 0.5: -0.1 / 0.5 + 0.9 / 0.5.
    assert float(F.rate_kl_grad(torch.tensor([0.5], dtype=torch.float64))) == pytest.approx(1.6, rel=1e-12)


def test_the_mean_over_one_rate_is_that_rate() -> None:
    # One rate at 0 below low = 0.5: -2 relu(0.5 - 0) over one rate.
    assert float(F.rate_range_grad(torch.tensor([0.0]), 0.5, reduction="mean")) == -1.0


def test_rate_functions_against_numpy() -> None:
    rates = torch.tensor([0.0, 0.05, 0.2, 0.9, 1.0], dtype=torch.float64)
    assert float(F.rate_range(rates, 0.1, 0.3, reduction="mean")) == pytest.approx(
        np_range(rates.numpy(), 0.1, 0.3, "mean"))
    assert float(F.rate_kl(rates, 0.3, eps=1e-5)) == pytest.approx(np_kl(rates.numpy(), 0.3, 1e-5, "sum"))
    r = rates.clone().requires_grad_(True)
    torch.testing.assert_close(F.rate_range_grad(rates, 0.1, 0.3), torch.autograd.grad(F.rate_range(r, 0.1, 0.3), r)[0])
    torch.testing.assert_close(F.rate_kl_grad(rates, 0.3, reduction="mean"),
                               torch.autograd.grad(F.rate_kl(r, 0.3, reduction="mean"), r)[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_is_reduced_in_float32_and_returned_in_its_dtype(dtype: torch.dtype) -> None:
    a = tensor(16, 50, 8, low=0.0)
    for function in [F.activity_l1, F.activity_l2, lambda x: F.firing_rate_range(x, 0.6, 0.7),
                     lambda x: F.firing_rate_kl(x, 0.2)]:
        value = function(a.detach().to(dtype))
        assert value.dtype == dtype
        torch.testing.assert_close(value.double(), function(a.detach()), rtol=1e-2, atol=1e-3)


# --- a small model: per-step calls of a sigmoid rate layer, and what the test computes by hand -------------------
class RateRNN(nn.Module):
    """A rate RNN whose ``act`` module is called once per time step; returns the readout and the rates."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.inp = nn.Linear(3, 6)
        self.rec = nn.Linear(6, 6, bias=False)
        self.act = nn.Sigmoid()
        self.out = nn.Linear(6, 2)
        self.double()

    def forward(self, x: torch.Tensor):
        h = x.new_zeros(x.shape[0], 6)
        rates = []
        for t in range(x.shape[1]):
            h = self.act(self.inp(x[:, t]) + self.rec(h))
            rates.append(h)
        rates = torch.stack(rates, 1)
        return self.out(rates), rates


def batches(n: int = 5, batch: int = 8, time: int = 7, seed: int = 1) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, time, 3, generator=generator, dtype=torch.float64),
             torch.randn(batch, time, 2, generator=generator, dtype=torch.float64)) for _ in range(n)]


def relu(x):
    return torch.clamp(x, min=0)


#: id -> (build on a RateRNN, the weighted penalty by hand on the (batch, time, 6) rates)
CASES = {
    "L1-sum": (lambda m: nr.ActivityL1(m, Lambda=0.02, include="act"), lambda r: 0.02 * r.abs().sum()),
    "L2-mean": (lambda m: nr.ActivityL2(m, Lambda=0.5, include="act", reduction="mean"),
                lambda r: 0.5 * (r**2).mean()),
    "Range": (lambda m: nr.FiringRateRange(m, Lambda=3.0, include="act", low=0.55, high=0.6),
              lambda r: 3.0 * (relu(0.55 - r.mean((0, 1)))**2 + relu(r.mean((0, 1)) - 0.6)**2).sum()),
    "Range-low-mean": (
        lambda m: nr.FiringRateRange(m, Lambda=2.0, include=["ac*"], low=0.62, reduction="mean"),
        lambda r: 2.0 * (relu(0.62 - r.mean((0, 1)))**2).mean()),
    "KL": (lambda m: nr.FiringRateKL(m, Lambda=0.7, include="act", target=0.3),
           lambda r: 0.7 * (0.3 * torch.log(0.3 / r.mean((0, 1))) + 0.7 * torch.log(0.7 / (1 - r.mean((0, 1))))).sum()),
}


def train(case: str, way: str, steps: int = 4, lr: float = 0.5) -> tuple:
    """SGD on task loss (+ penalty): ``way`` is "hand" (the penalty written here), "loss" (``act()`` added to
    the loss), "joint" (``act.attach(optimizer)``) or "none"."""
    build, by_hand = CASES[case]
    model = RateRNN()
    act = build(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    if way == "joint":
        act.attach(optimizer)
    values = []
    for x, y in batches(steps):
        optimizer.zero_grad()
        pred, rates = model(x)
        loss = nn.functional.mse_loss(pred, y)
        if way == "hand":
            loss = loss + by_hand(rates)
        elif way == "loss":
            loss = loss + act()
        loss.backward()
        optimizer.step()
        if way != "joint":
            act.step()
        values.append(float(by_hand(rates.detach())))
    return [p.detach().clone() for p in model.parameters()], act, values


@pytest.mark.parametrize("case", sorted(CASES))
def test_added_to_the_loss_and_joint_mode_equal_sgd_on_the_penalty_by_hand(case: str) -> None:
    by_hand, _, values = train(case, "hand")
    in_loss, _, _ = train(case, "loss")
    joint, act, _ = train(case, "joint")
    without, _, _ = train(case, "none")
    for a, b, c in zip(by_hand, in_loss, joint):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(c, a, rtol=1e-9, atol=1e-12)
    assert any(not torch.allclose(a, b) for a, b in zip(by_hand, without))
    assert act.global_step == 4 and act.n_recorded == 0   # cleared at each step, schedule advanced
    assert act.last_values()[act.name] == pytest.approx(values[-1], rel=1e-9)


@pytest.mark.parametrize("batch_first", [True, False])
def test_per_trial_rates_of_a_sequence_output_in_joint_mode_equal_the_penalty_by_hand(batch_first: bool) -> None:
    data = [(x, y) if batch_first else (x.transpose(0, 1), y.transpose(0, 1)) for x, y in batches(3)]
    time_axis = 1 if batch_first else 0
    results = []
    for joint in (True, False):
        torch.manual_seed(0)
        rnn = nn.RNN(3, 5, batch_first=batch_first, nonlinearity="relu").double()
        act = nr.FiringRateRange(rnn, Lambda=3.0, low=0.2, high=0.4, time_axis=time_axis, reduction="mean")
        optimizer = torch.optim.SGD(rnn.parameters(), lr=0.3)
        if joint:
            act.attach(optimizer)
        for x, y in data:
            optimizer.zero_grad()
            out, _ = rnn(x)
            loss = nn.functional.mse_loss(out[..., :2], y)
            if not joint:
                rates = out.mean(time_axis)   # (batch, neurons): one rate per trial
                loss = loss + 3.0 * (relu(0.2 - rates) ** 2 + relu(rates - 0.4) ** 2).mean()
            loss.backward()
            optimizer.step()
        results.append([p.detach() for p in rnn.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_a_layer_called_per_step_is_recorded_once_per_call_and_the_value_is_lambda_times_the_function() -> None:
    model = RateRNN()
    act = nr.FiringRateRange(model, Lambda=2.0, include="act", low=0.6, high=0.7)
    x, _ = batches(1)[0]
    _, rates = model(x)
    assert act.n_recorded == x.shape[1]
    torch.testing.assert_close(act(), 2.0 * F.firing_rate_range(rates, 0.6, 0.7))
    torch.testing.assert_close(act(), 2.0 * F.firing_rate_range(list(rates.unbind(1)), 0.6, 0.7))  # calls again


def test_called_on_tensors() -> None:
    spikes = (tensor(8, 20, 5, low=0.0) > 0.9).double()
    reg = nr.FiringRateRange(None, low=0.01, high=0.1, Lambda=4.0)
    torch.testing.assert_close(reg(spikes), 4.0 * F.firing_rate_range(spikes, 0.01, 0.1))
    steps = list(spikes.unbind(1))
    torch.testing.assert_close(reg(*steps), reg(spikes))   # per-step tensors are pooled
    torch.testing.assert_close(nr.ActivityL1(None)(spikes), spikes.sum())
    torch.testing.assert_close(nr.FiringRateKL(None, target=0.2)(spikes), F.firing_rate_kl(spikes, 0.2))


def test_output_picks_the_tensor_of_a_tuple() -> None:
    torch.manual_seed(0)
    rnn = nn.RNN(3, 4, batch_first=True).double()
    default, h_n, by_callable = (nr.ActivityL2(rnn), nr.ActivityL2(rnn, output=1),
                                 nr.ActivityL2(rnn, output=lambda out: out[0][:, -1]))
    output, hidden = rnn(torch.randn(2, 5, 3, dtype=torch.float64))
    torch.testing.assert_close(default(), output.square().sum())
    torch.testing.assert_close(h_n(), hidden.square().sum())
    torch.testing.assert_close(by_callable(), output[:, -1].square().sum())


def test_modules_by_glob_list_or_module_and_exclude() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Sequential(nn.Linear(3, 3), nn.Tanh()))
    assert nr.ActivityL1(model, include="*", exclude=["2", "2.0", "0"]).module_names == ["1", "2.1"]
    assert nr.ActivityL1([model[1], model[2][1], model[1]]).module_names == ["0", "1"]
    whole = nr.ActivityL1(model)
    both = nr.ActivityL1(model, include=["1", "2.1"])
    x = torch.randn(4, 2)
    hidden = torch.tanh(model[0](x))
    out = model(x)
    torch.testing.assert_close(whole(), out.abs().sum())
    torch.testing.assert_close(both(), hidden.abs().sum() + out.abs().sum())


def test_eval_no_grad_and_inference_mode_record_nothing() -> None:
    model = RateRNN()
    act = nr.ActivityL2(model, include="act")
    x, _ = batches(1)[0]
    with torch.no_grad():
        model(x)
    with torch.inference_mode():
        model(x)
    model.eval()
    model(x)
    assert act.n_recorded == 0 and float(act()) == 0.0
    model.train()
    model(x)
    assert act.n_recorded == x.shape[1]


def test_a_new_training_forward_after_a_backward_starts_a_new_record() -> None:
    model = RateRNN()
    act = nr.ActivityL1(model, include="act")
    (x1, y1), (x2, _) = batches(2)
    pred, _ = model(x1)
    (nn.functional.mse_loss(pred, y1) + act()).backward()
    _, rates = model(x2)    # no optimizer step in between (gradient accumulation)
    assert act.n_recorded == x2.shape[1]
    torch.testing.assert_close(act(), rates.abs().sum())


def test_joint_mode_under_gradient_accumulation_adds_each_micro_batchs_penalty() -> None:
    data = batches(4)
    results = []
    for joint in (True, False):
        model = RateRNN()
        act = nr.FiringRateRange(model, Lambda=2.0, include="act", low=0.6, high=0.65)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        if joint:
            act.attach(optimizer)
        for start in (0, 2):
            optimizer.zero_grad()
            for x, y in data[start:start + 2]:
                pred, rates = model(x)
                loss = nn.functional.mse_loss(pred, y) / 2
                if not joint:
                    loss = loss + 2.0 * F.firing_rate_range(rates, 0.6, 0.65)
                loss.backward()
            optimizer.step()
        results.append([p.detach() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_lambda_schedule_and_removal_of_the_attachment() -> None:
    import copy

    model = RateRNN()
    twin = copy.deepcopy(model)   # records into nothing
    act = nr.ActivityL2(model, Lambda=nr.schedules.LinearWarmup(1.0, warmup_steps=4), include="act")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    handle = act.attach(optimizer)
    for x, y in batches(3):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x)[0], y).backward()
        optimizer.step()
    assert act.global_step == 3 and act.Lambda == pytest.approx(0.75)
    twin.load_state_dict(model.state_dict())
    x, _ = batches(1)[0]

    def input_weight_grad(net: nn.Module) -> torch.Tensor:
        net.zero_grad()
        net(x)[0].sum().backward()
        return net.inp.weight.grad.clone()

    assert not torch.allclose(input_weight_grad(model), input_weight_grad(twin))   # attached: the penalty joins
    handle.remove()
    torch.testing.assert_close(input_weight_grad(model), input_weight_grad(twin))  # removed: it no longer does


def test_in_a_list_beside_a_parameter_penalty_with_last_values_by_name() -> None:
    model = RateRNN()
    regs = nr.RegularizationList([nr.L1(model, Lambda=0.1, include="rec.weight", name="l1"),
                                  nr.FiringRateRange(model, Lambda=2.0, include="act", low=0.6, name="rates")])
    x, _ = batches(1)[0]
    _, rates = model(x)
    expected_rates = 2.0 * F.firing_rate_range(rates, 0.6)
    torch.testing.assert_close(regs(), 0.1 * model.rec.weight.abs().sum() + expected_rates)
    values = regs.last_values()
    assert set(values) == {"l1", "rates"} and values["rates"] == pytest.approx(float(expected_rates))


def test_an_attached_list_acts_for_its_activity_members_in_joint_mode() -> None:
    """The list, not its members, is attached: it switches its activity member's joint mode on (weighted by
    the list's Lambda) and off again when its attachment is removed."""

    def run(way: str) -> list:
        model = RateRNN()
        regs = nr.RegularizationList([nr.L1(model, Lambda=0.1, include="rec.weight"),
                                      nr.FiringRateRange(model, Lambda=2.0, include="act", low=0.6)], Lambda=1.5)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        handle = regs.attach(optimizer) if way == "attached" else None
        for x, y in batches(3):
            optimizer.zero_grad()
            pred, rates = model(x)
            loss = nn.functional.mse_loss(pred, y)
            if way == "hand":
                loss = loss + 1.5 * (0.1 * model.rec.weight.abs().sum()
                                     + 2.0 * (relu(0.6 - rates.mean((0, 1))) ** 2).sum())
            loss.backward()
            optimizer.step()
        if handle is not None:
            handle.remove()
            assert regs[1]._joint_scale() == 0   # switched off with the list's attachment
        return [p.detach().clone() for p in model.parameters()]

    for a, b in zip(run("attached"), run("hand")):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_lightning_callback_runs_an_activity_penalty_in_joint_mode(tmp_path) -> None:
    pl = pytest.importorskip("lightning.pytorch")
    from neuroreg.integrations.lightning import RegularizationCallback

    build, _ = CASES["Range"]
    data = batches(4)

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = RateRNN()

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.mse_loss(self.net(x)[0], y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.net.parameters(), lr=0.5)

    module = Module()
    act = build(module.net)
    loader = torch.utils.data.DataLoader(list(zip(*(torch.cat(t) for t in zip(*data)))), batch_size=8)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                         callbacks=[RegularizationCallback(act)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, loader)
    reference, _, _ = train("Range", "hand", steps=4)
    for a, b in zip(module.net.parameters(), reference):
        torch.testing.assert_close(a.detach(), b, rtol=1e-9, atol=1e-12)
    assert act.global_step == 4 and act._joint_scale() == 0


def test_joint_mode_asked_for_without_attaching_is_a_clear_error_not_a_silent_no_op() -> None:
    model = RateRNN()
    act = nr.ActivityL1(model, include="act", name="spikes")
    x, y = batches(1)[0]
    nn.functional.mse_loss(model(x)[0], y).backward()
    with pytest.raises(RuntimeError, match="spikes adds its gradient during the backward"):
        act.accumulate_grad()
    # A list attached between this step's forward and its step: the record was made outside joint mode.
    regs = nr.RegularizationList([act])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    regs.attach(optimizer)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(RuntimeError, match="spikes adds its gradient during the backward"):
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_backward_outside_its_record_adds_only_the_task_gradient() -> None:
    # A hook on a recorded output acts for its own record only: not once that record was cleared (a step), not
    # once the penalty is gone, and not when joint mode was switched on after the forward.
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = x.sum(0).expand(2, 3)   # d sum(x W^T + b) / dW: every row is the sum of the inputs

    def weight_grad(layer: nn.Linear, out: torch.Tensor) -> torch.Tensor:
        out.sum().backward()
        return layer.weight.grad

    cleared = nn.Linear(3, 2).double()
    act = nr.ActivityL2(cleared, Lambda=0.5)
    act.attach(torch.optim.SGD(cleared.parameters(), lr=0.1))
    out = cleared(x)
    act.step()
    torch.testing.assert_close(weight_grad(cleared, out), expected)

    gone = nn.Linear(3, 2).double()
    act = nr.ActivityL2(gone, Lambda=0.5)
    out, alive = gone(x), weakref.ref(act)
    del act
    gc.collect()
    assert alive() is None
    torch.testing.assert_close(weight_grad(gone, out), expected)

    late = nn.Linear(3, 2).double()
    act = nr.ActivityL2(late, Lambda=0.5)
    out = late(x)
    optimizer = torch.optim.SGD(late.parameters(), lr=0.1)
    act.attach(optimizer)
    torch.testing.assert_close(weight_grad(late, out), expected)
    with pytest.raises(RuntimeError, match="adds its gradient during the backward"):
        optimizer.step()


def test_joint_mode_with_lambda_1_adds_the_whole_penalty_gradient() -> None:
    # alpha = Lambda * scale = 1: the gradient of sum(out) + sum(out^2), by autograd on a copy of the layer.
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    layer = nn.Linear(3, 2).double()
    reference = nn.Linear(3, 2).double()
    reference.load_state_dict(layer.state_dict())
    act = nr.ActivityL2(layer, Lambda=1.0)
    act.attach(torch.optim.SGD(layer.parameters(), lr=0.1))
    layer(x).sum().backward()
    out = reference(x)
    (out.sum() + out.square().sum()).backward()
    torch.testing.assert_close(layer.weight.grad, reference.weight.grad)
    torch.testing.assert_close(layer.bias.grad, reference.bias.grad)


# --- memory and references ------------------------------------------------------------------------------------
@pytest.mark.parametrize("way", ["loss", "joint"])
def test_memory_does_not_grow_over_1000_steps(way: str) -> None:
    model = RateRNN()
    act = nr.FiringRateRange(model, Lambda=1.0, include="act", low=0.6, high=0.7)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    if way == "joint":
        act.attach(optimizer)
    outputs: List[weakref.ref] = []
    tracker = model.act.register_forward_hook(lambda module, inputs, output: outputs.append(weakref.ref(output)))
    x, y = batches(1, batch=2, time=3)[0]
    for step in range(1000):
        earlier = outputs[:]
        outputs.clear()
        optimizer.zero_grad()
        pred, _ = model(x)
        loss = nn.functional.mse_loss(pred, y)
        (loss + act() if way == "loss" else loss).backward()
        optimizer.step()
        if way == "loss":
            act.step()
        assert act.n_recorded == 0 and len(outputs) == 3
        # No recorded output (nor the graph behind it) outlives its step.
        assert all(ref() is None for ref in earlier)
        if step == 10:
            gc.collect()
            objects = len(gc.get_objects())
    tracker.remove()
    gc.collect()
    assert len(gc.get_objects()) <= objects + 100


def test_the_regularization_never_keeps_the_model_alive_and_remove_takes_its_hooks_off() -> None:
    model = RateRNN()
    act = nr.ActivityL2(model, include="act")
    model(batches(1)[0][0])
    assert len(model.act._forward_hooks) == 1
    act.remove()
    assert len(model.act._forward_hooks) == 0 and act.n_recorded == 0
    model(batches(1)[0][0])
    assert act.n_recorded == 0
    act.start(SimpleNamespace(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), callbacks=[]))  # records again
    model(batches(1)[0][0])
    assert act.n_recorded > 0
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None and float(act()) > 0   # the record outlives the model until the next step


def test_copies_record_nothing_and_a_copied_model_does_not_record_into_the_original() -> None:
    import copy

    model = RateRNN()
    act = nr.ActivityL1(model, include="act")
    twin = copy.deepcopy(model)
    twin(batches(1)[0][0])
    assert act.n_recorded == 0
    model(batches(1)[0][0])
    clone = copy.deepcopy(act)
    assert clone.n_recorded == 0 and act.n_recorded > 0
    assert set(clone.state_dict()) == {"_lambda", "_step"}


# --- real trainers ---------------------------------------------------------------------------------------------
def test_lightning_fit_in_joint_mode_equals_sgd_on_the_penalty_by_hand(tmp_path) -> None:
    pl = pytest.importorskip("lightning.pytorch")
    build, _ = CASES["Range"]
    data = batches(4)

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = RateRNN()
            self.act = build(self.net)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.mse_loss(self.net(x)[0], y)

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.mse_loss(self.net(x)[0], y))

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.net.parameters(), lr=0.5)
            self.act.attach(optimizer)   # Lightning's step (with its closure) runs the attached hooks
            return optimizer

    def loader(items):
        return torch.utils.data.DataLoader(list(zip(*(torch.cat(t) for t in zip(*items)))), batch_size=8)

    module = Module()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, loader(data), val_dataloaders=loader(data[:1]))   # validation records nothing
    reference, _, _ = train("Range", "hand", steps=4)
    for a, b in zip(module.net.parameters(), reference):
        torch.testing.assert_close(a.detach(), b, rtol=1e-9, atol=1e-12)
    assert module.act.global_step == 4


def test_neurotorch_trainer_with_bptt_on_spiking_layers_equals_sgd_on_the_penalty_by_hand() -> None:
    nt = import_neurotorch()
    low, high, Lambda, lr = 0.05, 0.2, 5.0, 0.05
    generator = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 20, 2, generator=generator) * 3, torch.randn(16, 20, 2, generator=generator)

    def model_and_loader():
        torch.manual_seed(0)
        model = nt.SequentialRNN(layers=[nt.SpyLIFLayer(2, 8), nt.SpyLILayer(8, 2)], device=torch.device("cpu"))
        return model.build(), torch.utils.data.DataLoader(list(zip(x, y)), batch_size=8)

    def spiking_layer(model: nn.Module) -> str:
        (name,) = [name for name, module in model.named_modules() if type(module).__name__ == "SpyLIFLayer"]
        return name

    model, data = model_and_loader()
    act = nr.FiringRateRange(model, Lambda=Lambda, include=spiking_layer(model), low=low, high=high)
    bptt = nt.BPTT(optimizer=torch.optim.SGD(model.parameters(), lr=lr), criterion=nn.MSELoss())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nt.trainers.Trainer(model, callbacks=[act, bptt], device=torch.device("cpu"), verbose=False).train(
            data, n_iterations=2)

    reference, data = model_and_loader()
    spikes: List[torch.Tensor] = []
    dict(reference.named_modules())[spiking_layer(reference)].register_forward_hook(
        lambda module, inputs, output: spikes.append(output[0]) if module.training else None)

    class BPTTWithPenalty(nt.BPTT):
        """NeuroTorch's BPTT on task loss + the rate penalty, written here on the recorded spikes."""

        def apply_criterion(self, pred, y):
            rates = torch.stack(spikes).mean((0, 1))
            spikes.clear()
            penalty = (relu(low - rates) ** 2 + relu(rates - high) ** 2).sum()
            return super().apply_criterion(pred, y) + Lambda * penalty

    by_hand = BPTTWithPenalty(optimizer=torch.optim.SGD(reference.parameters(), lr=lr), criterion=nn.MSELoss())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nt.trainers.Trainer(reference, callbacks=[by_hand], device=torch.device("cpu"), verbose=False).train(
            data, n_iterations=2)
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert act.global_step == 4
    torch.manual_seed(0)
    untouched = nt.SequentialRNN(layers=[nt.SpyLIFLayer(2, 8), nt.SpyLILayer(8, 2)], device=torch.device("cpu")).build()
    assert any(not torch.allclose(a, b) for a, b in zip(model.parameters(), untouched.parameters()))


# --- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda m: nr.ActivityL1(m, include="rnn*"), ValueError, r"include \('rnn\*',\) selects no module of RateRNN"),
        (lambda m: nr.ActivityL1(m, exclude="act"), ValueError, "exclude .* give include too"),
        (lambda m: nr.ActivityL1([m.act, "x"]), TypeError, r"modules\[1\] must be a torch.nn.Module, got 'x'"),
        (lambda m: nr.ActivityL1([m.act], include="act"), ValueError, "include/exclude select modules by name"),
        (lambda m: nr.ActivityL1(3), TypeError, "modules must be an nn.Module, an iterable of them or None, got 3"),
        (lambda m: nr.ActivityL1(m, output="h"), TypeError, "output must be None, an index .* got 'h'"),
        (lambda m: nr.ActivityL1(m, reduction="max"), ValueError,
         r"reduction must be one of \['sum', 'mean'\], got 'max'"),
        (lambda m: nr.FiringRateRange(m, low=0.5, high=0.2), ValueError, "low must be <= high, got low=0.5, high=0.2"),
        (lambda m: nr.FiringRateRange(m, low="a"), TypeError, "low must be a real number, got 'a'"),
        (lambda m: nr.FiringRateRange(m, neuron_axis=1.5), TypeError, "neuron_axis must be an int or a sequence"),
        (lambda m: nr.FiringRateRange(m, time_axis=(1, 1)), ValueError,
         r"time_axis \(1, 1\) names the same axis twice"),
        (lambda m: nr.FiringRateKL(m, target=1.0), ValueError, r"target must be in \(0, 1\), got 1.0"),
        (lambda m: nr.FiringRateKL(m, eps=0.0), ValueError, r"eps must be in \(0, 0.5\), got 0.0"),
        (lambda m: nr.ActivityL1(m, Lambda=-1), ValueError, "Lambda must be in"),
        (lambda m: nr.ActivityL1(m, optimizer=None), TypeError, "optimizer"),
    ],
)
def test_bad_arguments_are_clear_errors_at_construction(build: Callable, error: type, match: str) -> None:
    model = RateRNN()
    with pytest.raises(error, match=match):
        build(model)
    assert len(model.act._forward_hooks) == 0


class TupleLayer(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.linear = nn.Linear(2, 3)

    def forward(self, x):
        out = self.linear(x)
        if self.kind == "int":
            return (out > 0).long(), out
        if self.kind == "rates":
            return out * 10, out
        return out, out.sum()


@pytest.mark.parametrize(
    ("kind", "build", "error", "match"),
    [
        ("pair", lambda m: nr.ActivityL1(m, output=2), ValueError,
         "output=2 is out of range for what module 'TupleLayer' returns: a tuple of 2"),
        ("pair", lambda m: nr.ActivityL1(m.linear, output=0), ValueError,
         "output=0 indexes the tuple a module returns, but module 'Linear' returns a Tensor"),
        ("int", lambda m: nr.ActivityL1(m), TypeError,
         r"the output of module 'TupleLayer' \(picked by output=None\) must be a floating-point tensor, got dtype "
         r"torch.int64"),
        ("pair", lambda m: nr.ActivityL1(m, output=lambda out: "x"), TypeError, "must be a tensor, got 'x'"),
        ("rates", lambda m: nr.FiringRateKL(m), ValueError, "firing rates must be in \\[0, 1\\] for a KL penalty"),
    ],
)
@pytest.mark.parametrize("joint", [False, True], ids=["loss", "joint"])
def test_bad_outputs_are_clear_errors_at_the_first_forward_before_any_gradient(
    kind: str, build: Callable, error: type, match: str, joint: bool
) -> None:
    torch.manual_seed(0)
    model = TupleLayer(kind)
    reg = build(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    if joint:
        reg.attach(optimizer)
    with pytest.raises(error, match=match):
        model(torch.randn(4, 2))
    assert model.linear.weight.grad is None and reg.n_recorded == 0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: F.firing_rates(torch.ones(3, 4), neuron_axis=2), ValueError,
         "neuron_axis 2 is out of range for a tensor with 2 dimensions"),
        (lambda: F.firing_rates(torch.ones(3, 4), time_axis=-3), ValueError, "time_axis -3 is out of range"),
        (lambda: F.firing_rates(torch.ones(3, 4), time_axis=1), ValueError,
         "time_axis 1 and neuron_axis -1 share axis 1"),
        (lambda: F.firing_rates([torch.ones(3, 4), torch.ones(3, 5)]), ValueError,
         r"a\[1\] gives rates of shape \(5,\)"),
        (lambda: F.firing_rates([]), ValueError, "a must hold at least one tensor"),
        (lambda: F.activity_l1(torch.ones(3, dtype=torch.int64)), TypeError, "a must be a floating-point tensor"),
        (lambda: F.activity_l2([torch.ones(3), 2.0]), TypeError, r"a\[1\] must be a tensor"),
        (lambda: F.firing_rate_kl(torch.full((3, 2), 1.5)), ValueError,
         "firing rates must be in \\[0, 1\\] .* from 1.5 to 1.5"),
        (lambda: F.firing_rate_kl(torch.full((3, 2), -0.1)), ValueError, "firing rates must be in \\[0, 1\\]"),
        (lambda: F.firing_rate_range(torch.ones(3, 2), 0.2, 0.1), ValueError, "low must be <= high"),
        (lambda: F.activity_l1(torch.ones(3), reduction="none"), ValueError, "reduction must be one of"),
        (lambda: F.rate_range_grad(torch.zeros(3), 0.1, reduction="max"), ValueError, "reduction must be one of"),
        (lambda: F.activity_l2_grad(torch.ones(3), reduction="max"), ValueError, "reduction must be one of"),
        (lambda: nr.FiringRateRange(None)(), ValueError, "records no module and was called without activity"),
        (lambda: nr.FiringRateRange(nn.Tanh())(torch.ones(2)), TypeError, "records the activity of its modules"),
    ],
)
def test_bad_input_to_the_functions_and_calls(call: Callable, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_records_of_different_neurons_in_one_joint_step_are_a_clear_error() -> None:
    layers = nn.ModuleList([nn.Linear(2, 3), nn.Linear(2, 4)])
    reg = nr.FiringRateRange(list(layers), low=0.1)
    reg.attach(torch.optim.SGD(layers.parameters(), lr=0.1))
    x = torch.randn(5, 2)
    layers[0](x)
    match = r"module '1' gives rates of shape \(4,\), but the earlier records of this step gave \(3,\)"
    with pytest.raises(ValueError, match=match):
        layers[1](x)
