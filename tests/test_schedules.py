"""Lambda schedules: values, validation, and how a regularization follows them."""

from __future__ import annotations

import math

import pytest
import torch
import torch._dynamo.testing
from hypothesis import given
from hypothesis import strategies as st

import neuroreg as nr
from neuroreg import schedules
from tests.registry import make_params


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (schedules.Constant(0.3), {0: 0.3, 100: 0.3}),
        (schedules.LinearWarmup(2.0, warmup_steps=4, initial=1.0), {0: 1.0, 1: 1.25, 4: 2.0, 50: 2.0}),
        (schedules.CosineDecay(1.0, decay_steps=10, final=0.1), {0: 1.0, 5: 0.55, 10: 0.1, 20: 0.1}),
        (schedules.ExponentialDecay(1.0, rate=0.1, decay_steps=2), {0: 1.0, 1: 0.1**0.5, 4: 0.01}),
        (schedules.ExponentialDecay(1.0, rate=0.1, decay_steps=2, staircase=True), {1: 1.0, 3: 0.1}),
        (schedules.StepWise([3, 6], [1.0, 0.5, 0.0]), {0: 1.0, 2: 1.0, 3: 0.5, 6: 0.0}),
    ],
    ids=repr,
)
def test_schedule_values(schedule, expected) -> None:
    for step, value in expected.items():
        assert schedule(step) == pytest.approx(value)


@given(step=st.integers(0, 10_000))
def test_cosine_stays_between_its_ends(step: int) -> None:
    assert 0.1 - 1e-12 <= schedules.CosineDecay(1.0, decay_steps=100, final=0.1)(step) <= 1.0 + 1e-12


def test_config_round_trip_and_repr() -> None:
    schedule = schedules.StepWise([3], [1.0, 0.5])
    assert schedules.StepWise.from_config(schedule.get_config()) == schedule
    assert repr(schedule) == "StepWise(boundaries=[3], values=[1.0, 0.5])"


def test_any_callable_is_a_schedule_and_lambda_follows_step() -> None:
    (w,) = make_params((3,))
    reg = nr.L1([w], Lambda=lambda step: 0.1 * step)
    assert reg.Lambda == 0.0
    reg.step()
    reg.step()
    assert reg.Lambda == pytest.approx(0.2) and reg.global_step == 2
    torch.testing.assert_close(reg(), 0.2 * w.detach().abs().sum())
    reg.Lambda = 1.5  # a number fixes the weight and drops the schedule
    reg.step()
    assert reg.Lambda == 1.5 and reg.schedule is None
    reg.Lambda = schedules.LinearWarmup(1.0, warmup_steps=6)  # a schedule is followed from the current step
    assert reg.Lambda == pytest.approx(0.5)


def test_schedule_position_survives_state_dict() -> None:
    (w,) = make_params((3,))
    reg = nr.L1([w], Lambda=schedules.CosineDecay(1.0, decay_steps=10))
    for _ in range(4):
        reg.step()
    clone = nr.L1([w], Lambda=schedules.CosineDecay(1.0, decay_steps=10))
    clone.load_state_dict(reg.state_dict())
    assert clone.global_step == 4 and clone.Lambda == reg.Lambda
    clone.step()
    reg.step()
    assert clone.Lambda == reg.Lambda


def test_changing_lambda_does_not_recompile() -> None:
    (w,) = make_params((8,))
    reg = nr.L2([w], Lambda=0.5)
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(reg, backend=counter)
    first = compiled()
    frames = counter.frame_count   # not 1 necessarily: Dynamo may restart an analysis of the one graph
    reg.Lambda = 2.0
    second = compiled()
    torch.testing.assert_close(second, 4 * first)
    assert counter.frame_count == frames


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: schedules.Constant(-1), ValueError, r"value must be in \[0, inf\], got -1"),
        (lambda: schedules.LinearWarmup(1.0, warmup_steps=0), ValueError, "warmup_steps must be >= 1, got 0"),
        (lambda: schedules.CosineDecay(1.0, decay_steps=2.5), TypeError, "decay_steps must be an integer"),
        (lambda: schedules.ExponentialDecay(1.0, rate=0), ValueError, "rate must be in"),
        (lambda: schedules.ExponentialDecay(1.0, rate=0.5, staircase=1), TypeError, "staircase must be a bool"),
        (lambda: schedules.StepWise([5, 2], [1, 2, 3]), ValueError, "strictly increasing"),
        (lambda: schedules.StepWise([5], [1.0]), ValueError, "one more entry than boundaries"),
        (lambda: nr.L1(make_params((2,)), Lambda=lambda step: -1.0), ValueError, "value of schedule .* at step 0"),
        (lambda: nr.L1(make_params((2,)), Lambda=lambda step: math.nan), ValueError, "finite"),
    ],
)
def test_bad_schedules(build, error, match) -> None:
    with pytest.raises(error, match=match):
        build()


def test_a_schedule_going_bad_mid_training_changes_nothing() -> None:
    reg = nr.L1(make_params((2,)), Lambda=lambda step: 1.0 if step < 1 else -1.0)
    with pytest.raises(ValueError, match="at step 1"):
        reg.step()
    assert reg.global_step == 0 and reg.Lambda == 1.0


def test_the_base_class_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        schedules.LambdaSchedule()(0)


def test_equality_needs_the_same_class_and_the_same_config() -> None:
    class Shifted(schedules.Constant):
        pass

    assert schedules.Constant(0.5) == schedules.Constant(0.5)
    assert schedules.Constant(0.5) != schedules.Constant(0.25)
    assert schedules.Constant(0.5) != Shifted(0.5)  # same config, another class
    assert schedules.LinearWarmup(1.0, warmup_steps=2) != schedules.CosineDecay(1.0, decay_steps=2)


@pytest.mark.parametrize(
    ("schedule", "formula"),
    [
        (schedules.Constant(0.0), lambda t: 0.0),
        (schedules.LinearWarmup(0.0, warmup_steps=1, initial=0.0), lambda t: 0.0),
        (schedules.LinearWarmup(0.25, warmup_steps=1, initial=0.75), lambda t: 0.75 if t == 0 else 0.25),
        (schedules.CosineDecay(0.0, decay_steps=1, final=0.0), lambda t: 0.0),
        (schedules.CosineDecay(0.5, decay_steps=1, final=0.0), lambda t: 0.5 if t == 0 else 0.0),
        (schedules.ExponentialDecay(0.0, rate=1e-9, decay_steps=1), lambda t: 0.0),
        (schedules.ExponentialDecay(0.5, rate=3.0), lambda t: 0.5 * 3.0**t),
        (schedules.StepWise([0], [0.0, 0.0]), lambda t: 0.0),
    ],
    ids=lambda value: repr(value) if isinstance(value, schedules.LambdaSchedule) else "",
)
def test_the_smallest_allowed_arguments_are_accepted(schedule, formula) -> None:
    # Zero weights and one-step ramps are valid; the values follow the closed forms of the docstrings.
    for step in (0, 1, 5):
        assert schedule(step) == pytest.approx(formula(step), rel=1e-12, abs=0)
