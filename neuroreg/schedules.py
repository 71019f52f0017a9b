"""Schedules for ``Lambda``: maps from the optimizer-step count to the penalty weight.

A regularization built with ``Lambda=<schedule>`` evaluates it at step 0, and again each time it advances
(:meth:`neuroreg.BaseRegularization.step`): once per optimizer step on training batches, which the trainer
callbacks do for you (never on validation batches). Any callable ``step -> float`` is a schedule too; the
classes here add a readable ``repr`` and ``get_config``/``from_config``.

Example:
    >>> import torch, neuroreg as nr
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> reg = nr.L1([w], Lambda=nr.schedules.LinearWarmup(0.1, warmup_steps=4))
    >>> values = [reg.Lambda]
    >>> for _ in range(5):
    ...     reg.step()
    ...     values.append(round(reg.Lambda, 3))
    >>> values
    [0.0, 0.025, 0.05, 0.075, 0.1, 0.1]
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Dict, Sequence

from neuroreg._validation import check_bool, check_int, check_real

__all__ = [
    "Constant",
    "CosineDecay",
    "ExponentialDecay",
    "LambdaSchedule",
    "LinearWarmup",
    "StepWise",
]


class LambdaSchedule:
    """Base class of the schedules: ``schedule(step) -> float``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        """The constructor's arguments (Keras' convention), so that ``type(s).from_config(s.get_config())``
        rebuilds the same schedule."""
        return dict(vars(self))

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> LambdaSchedule:
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()  # type: ignore[union-attr]

    __hash__ = None  # type: ignore[assignment]


class Constant(LambdaSchedule):
    """``value`` at every step.

    Example:
        >>> Constant(0.5)(1000)
        0.5
    """

    def __init__(self, value: float) -> None:
        self.value = check_real("value", value, low=0)

    def __call__(self, step: int) -> float:
        return self.value


class LinearWarmup(LambdaSchedule):
    r"""Linear ramp from ``initial`` to ``final`` over ``warmup_steps`` steps, then ``final``.

    .. math:: \Lambda(t) = \text{initial} + (\text{final} - \text{initial}) \min(t / T, 1)

    Example:
        >>> [LinearWarmup(1.0, warmup_steps=4)(t) for t in (0, 2, 4, 9)]
        [0.0, 0.5, 1.0, 1.0]
    """

    def __init__(self, final: float, warmup_steps: int, initial: float = 0.0) -> None:
        self.final = check_real("final", final, low=0)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=1)
        self.initial = check_real("initial", initial, low=0)

    def __call__(self, step: int) -> float:
        fraction = min(step / self.warmup_steps, 1.0)
        return self.initial + (self.final - self.initial) * fraction


class CosineDecay(LambdaSchedule):
    r"""Half-cosine from ``initial`` to ``final`` over ``decay_steps`` steps, then ``final``.

    .. math:: \Lambda(t) = \text{final} + \tfrac12 (\text{initial} - \text{final})
        \left(1 + \cos\left(\pi \min(t / T, 1)\right)\right)

    Example:
        >>> [round(CosineDecay(1.0, decay_steps=4)(t), 3) for t in (0, 2, 4, 8)]
        [1.0, 0.5, 0.0, 0.0]
    """

    def __init__(self, initial: float, decay_steps: int, final: float = 0.0) -> None:
        self.initial = check_real("initial", initial, low=0)
        self.decay_steps = check_int("decay_steps", decay_steps, low=1)
        self.final = check_real("final", final, low=0)

    def __call__(self, step: int) -> float:
        fraction = min(step / self.decay_steps, 1.0)
        return self.final + 0.5 * (self.initial - self.final) * (1.0 + math.cos(math.pi * fraction))


class ExponentialDecay(LambdaSchedule):
    r"""``initial · rate^(t / decay_steps)`` (with ``staircase``, the exponent is rounded down).

    Example:
        >>> [ExponentialDecay(1.0, rate=0.5, decay_steps=2)(t) for t in (0, 2, 4)]
        [1.0, 0.5, 0.25]
    """

    def __init__(self, initial: float, rate: float, decay_steps: int = 1, staircase: bool = False) -> None:
        self.initial = check_real("initial", initial, low=0)
        self.rate = check_real("rate", rate, low=0, low_inclusive=False)
        self.decay_steps = check_int("decay_steps", decay_steps, low=1)
        self.staircase = check_bool("staircase", staircase)

    def __call__(self, step: int) -> float:
        exponent = step / self.decay_steps
        return self.initial * self.rate ** (math.floor(exponent) if self.staircase else exponent)


class StepWise(LambdaSchedule):
    """Piecewise constant: ``values[i]`` from step ``boundaries[i-1]`` on (``values[0]`` before the first).

    Example:
        >>> schedule = StepWise(boundaries=[10, 20], values=[0.0, 0.1, 1.0])
        >>> [schedule(t) for t in (0, 9, 10, 25)]
        [0.0, 0.0, 0.1, 1.0]
    """

    def __init__(self, boundaries: Sequence[int], values: Sequence[float]) -> None:
        boundaries = [check_int(f"boundaries[{i}]", b, low=0) for i, b in enumerate(boundaries)]
        values = [check_real(f"values[{i}]", v, low=0) for i, v in enumerate(values)]
        if boundaries != sorted(set(boundaries)):
            raise ValueError(f"boundaries must be strictly increasing, got {boundaries!r}")
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"values must have one more entry than boundaries: {len(boundaries)} boundaries, "
                f"got {len(values)} values"
            )
        self.boundaries = boundaries
        self.values = values

    def __call__(self, step: int) -> float:
        return self.values[bisect.bisect_right(self.boundaries, step)]

