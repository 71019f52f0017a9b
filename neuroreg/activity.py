r"""Penalties on what neurons do — activations, spikes, firing rates — recorded from the model's own forward.

An activity regularization is built on modules (``nr.ActivityL2(model, Lambda=1e-3, include="rnn*")``): a
forward hook records each selected module's output on every call (a layer called once per time step is
recorded once per call, in order), and the penalty is that of everything recorded since the last step.

What is recorded, and when it is cleared:

- only training forwards: nothing in ``eval()`` mode (of the recorded module) or under ``torch.no_grad()`` /
  ``torch.inference_mode()``, so validation never leaks into the penalty;
- the record is cleared at each optimizer step (:meth:`~_ActivityRegularization.step`, which an attached
  regularization calls inside ``optimizer.step()``) and at the first training forward after a backward pass
  went through it (so each micro-batch of an accumulated step has its own penalty, and memory never grows);
- :meth:`~_ActivityRegularization.remove` (and ``close`` at the end of training) removes the forward hooks; the
  regularization holds its modules through weak references and never keeps the model alive.

Used the three ways of the parameter penalties:

1. added to the loss: ``loss = task_loss + act()`` is ``Lambda * penalty`` of the activity recorded in this
   step's forward, differentiable (a zero tensor when nothing was recorded);
2. on tensors given at call time, with ``None`` for the modules: ``nr.FiringRateRange(None, low=0.01,
   high=0.1)(spikes)``;
3. attached (joint mode: ``act.attach(optimizer)``, or as a trainer callback): during the forward, a tensor
   hook on each recorded activation adds ``Lambda * ∂penalty/∂a`` (the closed form of
   :mod:`neuroreg.functional.activity`) to the gradient that flows into it in the task's backward — nothing
   extra is differentiated by autograd and no activation is kept for a penalty graph. A direct call then
   returns the value (detached: the gradient is already in the task's). The record must be on the path of the
   task loss for its hook to fire.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any, Callable, ClassVar, Dict, List, Literal, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from neuroreg._validation import (
    check_axes_spec,
    check_choice,
    check_output_selector,
    collect_modules,
    select_output,
)
from neuroreg.base import BaseRegularization, LambdaLike
from neuroreg.functional._common import Axes
from neuroreg.functional.activity import (
    REDUCTIONS,
    Activity,
    _kl_options,
    _range_options,
    activity_l1,
    activity_l1_grad,
    activity_l2,
    activity_l2_grad,
    firing_rate_kl,
    firing_rate_range,
    firing_rates,
    rate_kl,
    rate_kl_grad,
    rate_range,
    rate_range_grad,
    rate_sums,
    spread_rate_grad,
)

__all__ = ["ActivityL1", "ActivityL2", "FiringRateKL", "FiringRateRange"]

ModulesLike = Union[nn.Module, List[nn.Module], None]
OutputSelector = Union[int, Callable[[Any], Tensor], None]


def _record_hook(
    reg_ref: weakref.ref, target: weakref.ref, label: str, module: nn.Module, inputs: Any, output: Any
) -> None:
    reg = reg_ref()
    # A deep copy of the model carries the hook too: only the module the regularization was built on records.
    if reg is not None and target() is module and module.training and torch.is_grad_enabled():
        reg._record(label, output)


def _backward_hook(
    reg_ref: weakref.ref, generation: int, activation: Optional[Tensor], grad: Tensor
) -> Optional[Tensor]:
    reg = reg_ref()
    if reg is None or generation != reg._generation:
        return None
    reg._backpropagated = True
    if activation is None and not reg._joint_records:
        return None
    return reg._joint_grad(grad, activation)


class _ActivityRegularization(BaseRegularization):
    """The recording, clearing and joint-mode machinery shared by the activity penalties (see the module
    docstring). A subclass gives the penalty on records (:meth:`_penalty`), the statistic a joint step
    accumulates (:meth:`_statistic`), the value from it (:meth:`_value`) and the gradient of one record
    (:meth:`_activity_grad`)."""

    #: Whether the joint-mode gradient of a record needs the record itself (L1/L2), not only its shape.
    needs_activation: ClassVar[bool] = False

    def __init__(
        self,
        modules: ModulesLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        include: Union[str, List[str], None] = None,
        exclude: Union[str, List[str], None] = None,
        output: OutputSelector = None,
        reduction: Literal["sum", "mean"] = "sum",
        name: Optional[str] = None,
        priority: Optional[int] = None,
        save_state: bool = True,
        load_state: Optional[bool] = None,
    ) -> None:
        reduction = check_choice("reduction", reduction, REDUCTIONS)
        output = check_output_selector("output", output)
        names, targets = collect_modules(modules, include, exclude)
        super().__init__(None, Lambda, name=name, priority=priority, save_state=save_state, load_state=load_state)
        self.reduction = reduction
        self.output = output
        self.module_names: List[str] = names
        self._records_modules = bool(targets)
        self._targets = [weakref.ref(module) for module in targets]
        self._record_handles: List[Any] = []
        self._joint_sources: Dict[Any, Callable[[], float]] = {}
        self._generation = 0
        self._reset_record()
        self._register_hooks()

    # --- recording -------------------------------------------------------------------------------------
    def _register_hooks(self) -> None:
        if self._record_handles:
            return
        me = weakref.ref(self)
        for label, target in zip(self.module_names, self._targets):
            module = target()
            if module is not None:
                hook = functools.partial(_record_hook, me, target, f"module {label!r}")
                self._record_handles.append(module.register_forward_hook(hook))

    def remove(self) -> None:
        """Stop recording: remove the forward hooks, detach from every optimizer and clear the record.
        ``start`` (a trainer's) registers the hooks again while the modules are alive."""
        self.detach()
        self._stop_recording()

    def _stop_recording(self) -> None:
        for handle in self._record_handles:
            handle.remove()
        self._record_handles = []
        self._clear()

    @property
    def n_recorded(self) -> int:
        """How many outputs were recorded since the record was last cleared."""
        return self._n_recorded

    def _reset_record(self) -> None:
        self._records: List[Tensor] = []
        self._stats: Optional[Tensor] = None
        self._count = 0
        self._n_recorded = 0
        self._joint_records = False
        self._backpropagated = False
        self._rate_grad: Optional[Tensor] = None
        self._generation += 1

    def _clear(self) -> None:
        """Forget the record; a joint record's value is kept for :meth:`last_values` first."""
        if self._stats is not None and self._value_stale:
            with torch.no_grad():
                self()
        self._reset_record()

    def _record(self, label: str, output: Any) -> None:
        tensor = select_output(label, output, self.output)
        if self._backpropagated:
            self._clear()
        scale = self._joint_scale()
        self._check_record(label, tensor)
        self._n_recorded += 1
        me = weakref.ref(self)
        if scale:
            stats, count = self._statistic(tensor.detach())
            if self._stats is not None and self._stats.shape != stats.shape:
                raise ValueError(
                    f"{label} gives rates of shape {tuple(stats.shape)}, but the earlier records of this step gave "
                    f"{tuple(self._stats.shape)}: records pooled into one rate per neuron must have the same neurons"
                )
            self._stats = stats if self._stats is None else self._stats + stats
            self._count += count
            self._joint_records = True
            self._rate_grad = None
            self._value_stale = True
            if tensor.requires_grad:
                activation = tensor.detach() if self.needs_activation else None
                tensor.register_hook(functools.partial(_backward_hook, me, self._generation, activation))
        else:
            self._records.append(tensor)
            if tensor.requires_grad:
                tensor.register_hook(functools.partial(_backward_hook, me, self._generation, None))

    def _check_record(self, label: str, tensor: Tensor) -> None:
        """Checks of a recorded output beyond its type (a subclass adds its own)."""

    # --- joint mode --------------------------------------------------------------------------------------
    def _joint_scale(self) -> float:
        """The weight the joint gradient is added with beside ``Lambda``: 1 when attached to an optimizer, plus
        the scale of each container that applies it in joint mode (0: not in joint mode)."""
        return float(bool(self.attached_optimizers)) + sum(scale() for scale in self._joint_sources.values())

    def _start_joint(self, key: Any, scale: Callable[[], float]) -> None:
        """Add the joint gradient, weighted by ``scale()``, from the next forward on, until :meth:`_stop_joint`
        with the same ``key`` (how a container acting in joint mode, such as a list, switches it on)."""
        self._joint_sources[key] = scale

    def _stop_joint(self, key: Any) -> None:
        self._joint_sources.pop(key, None)

    def _joint_grad(self, grad: Tensor, activation: Optional[Tensor]) -> Tensor:
        alpha = self._lambda_value * self._joint_scale()
        if alpha == 0:
            return grad
        return grad.add(self._activity_grad(grad, activation), alpha=alpha)

    def _require_joint(self) -> None:
        # Joint mode is asked for after the backward: too late for this penalty, whose gradient joins the task's
        # during it. Never a silent no-op: neither when it was never switched on, nor when it was switched on
        # after this step's forward had recorded outside it (attached between the forward and the step).
        if not self._joint_scale() or self._records:
            raise RuntimeError(
                f"{self.name} adds its gradient during the backward, so it must be in joint mode before the forward: "
                f"attach it to the optimizer itself ({self.name}.attach(optimizer), or pass it to the trainer as a "
                f"callback on its own), or add {self.name}() to the loss"
            )

    def _accumulate_grad(self, scale: float, with_value: bool) -> None:
        self._require_joint()
        # The gradient joined the task's during the backward; only the value may be wanted now.
        if with_value and self._stats is not None:
            with torch.no_grad():
                self()

    def _add_joint_grad_(self, held: Any, scale: float) -> None:
        self._require_joint()

    def _penalty_grads(self, scale: float) -> Dict[int, Tensor]:
        return {}

    def step(self) -> None:
        """Clear the record and advance the Lambda schedule (once per optimizer step: attached, it runs inside
        ``optimizer.step()``)."""
        self._clear()
        super().step()

    def start(self, trainer: Any = None, **kwargs: Any) -> None:
        """Record again if :meth:`remove` or ``close`` stopped it, and attach to the trainer's optimizers."""
        self._register_hooks()
        super().start(trainer, **kwargs)

    def close(self, trainer: Any = None, **kwargs: Any) -> None:
        """Detach from the trainer's optimizers, remove the forward hooks and clear the record."""
        super().close(trainer, **kwargs)
        self._stop_recording()

    # --- the penalty -------------------------------------------------------------------------------------
    def forward(self, *activity: Tensor) -> Tensor:
        """The penalty of the activity given (pooled), or, called with none, of the activity recorded since
        the last step (in joint mode its value, detached)."""
        if activity:
            if self._records_modules:
                raise TypeError(
                    f"{self.name} records the activity of its modules and takes no inputs, got {len(activity)}"
                )
            return self._penalty(activity[0] if len(activity) == 1 else list(activity))
        if not self._records_modules:
            raise ValueError(
                f"{self.name} records no module and was called without activity: build it on modules, or call it "
                f"as {type(self).__name__}(None, ...)(activity)"
            )
        if self._joint_records:
            with torch.no_grad():
                return self._value(self._stats, self._count)
        return self._penalty(self._records) if self._records else self._zero()

    def _penalty(self, activity: Activity) -> Tensor:
        raise NotImplementedError

    def _statistic(self, activity: Tensor) -> Tuple[Tensor, int]:
        raise NotImplementedError

    def _value(self, stats: Tensor, count: int) -> Tensor:
        raise NotImplementedError

    def _activity_grad(self, grad: Tensor, activation: Optional[Tensor]) -> Tensor:
        raise NotImplementedError

    def __getstate__(self) -> Dict[str, Any]:
        # A copy records nothing (hooks and weak references never cross a copy) and holds no record.
        state = super().__getstate__()
        state.update(_targets=[], _record_handles=[], _records=[], _stats=None, _count=0, _n_recorded=0,
                     _joint_records=False, _rate_grad=None, _joint_sources={})
        return state

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, Lambda={self.Lambda:g}, modules={self.module_names!r}, reduction={self.reduction!r}"
        )


class _ElementwiseActivity(_ActivityRegularization):
    needs_activation = True
    _function: ClassVar[Callable[..., Tensor]]
    _grad_function: ClassVar[Callable[..., Tensor]]

    def _penalty(self, activity: Activity) -> Tensor:
        return type(self)._function(activity, reduction=self.reduction)

    def _statistic(self, activity: Tensor) -> Tuple[Tensor, int]:
        return type(self)._function(activity, reduction="sum"), activity.numel()

    def _value(self, stats: Tensor, count: int) -> Tensor:
        return stats / count if self.reduction == "mean" else stats

    def _activity_grad(self, grad: Tensor, activation: Optional[Tensor]) -> Tensor:
        return type(self)._grad_function(activation, reduction=self.reduction, count=self._count)


class ActivityL1(_ElementwiseActivity):
    r"""L1 penalty on recorded activity: the spike count when the outputs are spikes (NeuroTorch's
    ``spikes_regularization_factor``, Keras' ``ActivityRegularization(l1=...)``).

    .. math::
        \mathcal{L} = \Lambda \sum_{\text{records}} \sum_i |a_i| \quad (\text{mean}: \text{divided by the
        number of elements})

    Args:
        modules: What to record: an ``nn.Module`` (itself, or the submodules ``include`` selects), a list of
            modules, or ``None`` to call it on tensors (``ActivityL1(None)(a)``).
        Lambda: Weight of the penalty (or a schedule).
        include: Glob pattern(s) on ``modules``' submodule names (``"rnn*"``); a ``ValueError`` if none matches.
        exclude: Glob pattern(s) dropping some of the included submodules.
        output: Which tensor of a module's output: ``None`` (the output if it is a tensor, else its first
            element: ``nn.RNN``'s ``output``, a NeuroTorch layer's spikes), an index, or a callable.
        reduction: ``"sum"`` or ``"mean"`` over the elements of all records.
        name, priority, save_state, load_state: As in :class:`~neuroreg.BaseRegularization`.

    Example:
        >>> import torch, neuroreg as nr
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
        >>> act = nr.ActivityL1(model, Lambda=0.1, include="1")
        >>> hidden = model(torch.ones(2, 3))
        >>> bool(torch.isclose(act(), 0.1 * hidden.abs().sum()))
        True
        >>> nr.ActivityL1(None, reduction="mean")(torch.tensor([1.0, -3.0]))
        tensor(2.)
    """

    _function = staticmethod(activity_l1)
    _grad_function = staticmethod(activity_l1_grad)


class ActivityL2(_ElementwiseActivity):
    r"""Squared-L2 penalty on recorded activity (metabolic cost of rates; PsychRNN's ``L2_firing_rate``,
    nn4n's ``FiringRateLoss``, Keras' ``ActivityRegularization(l2=...)``).

    .. math::
        \mathcal{L} = \Lambda \sum_{\text{records}} \sum_i a_i^2 \quad (\text{mean}: \text{divided by the number
        of elements})

    Args:
        modules, Lambda, include, exclude, output, reduction, name, priority, save_state, load_state: As in
            :class:`ActivityL1`.

    Example:
        >>> import torch, neuroreg as nr
        >>> rnn = torch.nn.RNN(3, 5, batch_first=True)
        >>> act = nr.ActivityL2(rnn, Lambda=1e-3, reduction="mean")   # records rnn's output, not h_n
        >>> output, h_n = rnn(torch.randn(2, 7, 3))
        >>> bool(torch.isclose(act(), 1e-3 * output.square().mean()))
        True
    """

    _function = staticmethod(activity_l2)
    _grad_function = staticmethod(activity_l2_grad)


class _RateActivity(_ActivityRegularization):
    def __init__(
        self, modules: ModulesLike, Lambda: LambdaLike, *, neuron_axis: Axes, time_axis: Optional[Axes], **kwargs: Any
    ) -> None:
        neuron_axis = check_axes_spec("neuron_axis", neuron_axis)
        time_axis = None if time_axis is None else check_axes_spec("time_axis", time_axis)
        super().__init__(modules, Lambda, **kwargs)
        self.neuron_axis = neuron_axis
        self.time_axis = time_axis

    @property
    def _axes(self) -> Dict[str, Any]:
        return {"neuron_axis": self.neuron_axis, "time_axis": self.time_axis}

    def _statistic(self, activity: Tensor) -> Tuple[Tensor, int]:
        return rate_sums(activity, **self._axes)

    def _value(self, stats: Tensor, count: int) -> Tensor:
        return self._rate_penalty(stats / count)

    def _activity_grad(self, grad: Tensor, activation: Optional[Tensor]) -> Tensor:
        if self._rate_grad is None:
            # Once per backward: every record's gradient spreads the same rate gradient.
            self._rate_grad = self._rate_penalty_grad(self._stats / self._count)
        return spread_rate_grad(self._rate_grad, grad, self._count, **self._axes)

    def _rate_penalty(self, rates: Tensor) -> Tensor:
        raise NotImplementedError

    def _rate_penalty_grad(self, rates: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, neuron_axis={self.neuron_axis!r}, time_axis={self.time_axis!r}"


class FiringRateRange(_RateActivity):
    r"""Keeps each neuron's firing rate in a band: zero when every neuron fires inside it.

    .. math::
        \mathcal{L} = \Lambda \sum_j \operatorname{relu}(\text{low} - r_j)^2 + \operatorname{relu}(r_j -
        \text{high})^2, \qquad r_j = \text{mean activity of neuron } j

    The rate :math:`r_j` is the mean over the batch and time of everything recorded since the last step: by
    default over every axis but ``neuron_axis=-1``, which fits ``(batch, time, neurons)`` outputs and the
    ``(batch, neurons)`` outputs of a layer called once per step (pooled over the calls); ``time_axis=1`` on
    ``(batch, time, neurons)`` gives one rate per trial and neuron instead. ``low=0`` (on non-negative
    activity) or ``high=None`` makes it one-sided. See :func:`neuroreg.functional.firing_rate_range`.

    Args:
        modules, Lambda, include, exclude, output, name, priority, save_state, load_state: As in
            :class:`ActivityL1`.
        low: Lower end of the band.
        high: Upper end, ``>= low``, or ``None``.
        neuron_axis: The axis (or axes) of the neurons.
        time_axis: If given, the axes a rate averages over (disjoint from ``neuron_axis``).
        reduction: ``"sum"`` or ``"mean"`` over the rates.

    Example:
        >>> import torch, neuroreg as nr
        >>> spikes = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 1.0]]])  # rates 1 and 0.25
        >>> nr.FiringRateRange(None, low=0.5, high=0.9)(spikes)   # (1 - 0.9)² + (0.5 - 0.25)²
        tensor(0.0725)
    """

    def __init__(
        self,
        modules: ModulesLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        low: float = 0.0,
        high: Optional[float] = None,
        neuron_axis: Axes = -1,
        time_axis: Optional[Axes] = None,
        **kwargs: Any,
    ) -> None:
        low, high = _range_options(low, high)
        super().__init__(modules, Lambda, neuron_axis=neuron_axis, time_axis=time_axis, **kwargs)
        self.low = low
        self.high = high

    def _penalty(self, activity: Activity) -> Tensor:
        return firing_rate_range(activity, self.low, self.high, reduction=self.reduction, **self._axes)

    def _rate_penalty(self, rates: Tensor) -> Tensor:
        return rate_range(rates, self.low, self.high, reduction=self.reduction)

    def _rate_penalty_grad(self, rates: Tensor) -> Tensor:
        return rate_range_grad(rates, self.low, self.high, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, low={self.low!r}, high={self.high!r}"


class FiringRateKL(_RateActivity):
    r"""KL divergence of each neuron's firing rate from a target rate (snnTorch's ``kl_rate_sparsity``).

    .. math::
        \mathcal{L} = \Lambda \sum_j t \log\frac{t}{\hat r_j} + (1 - t) \log\frac{1 - t}{1 - \hat r_j}, \qquad
        \hat r_j = \operatorname{clamp}(r_j, \epsilon, 1 - \epsilon)

    Rates as in :class:`FiringRateRange`; they must lie in :math:`[0, 1]` (spikes or probabilities: checked on
    the first record of each step, and at every call on tensors). Finite, with a gradient that pushes silent neurons up,
    at rates of exactly 0 and 1. See :func:`neuroreg.functional.firing_rate_kl`.

    Args:
        modules, Lambda, include, exclude, output, name, priority, save_state, load_state: As in
            :class:`ActivityL1`.
        target: The target rate, in :math:`(0, 1)`.
        eps: The clamp, in :math:`(0, 0.5)`.
        neuron_axis, time_axis, reduction: As in :class:`FiringRateRange`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.FiringRateKL(None, target=0.25)(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))   # two rates of 0.5
        tensor(0.2616)
    """

    def __init__(
        self,
        modules: ModulesLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        target: float = 0.1,
        eps: float = 1e-6,
        neuron_axis: Axes = -1,
        time_axis: Optional[Axes] = None,
        **kwargs: Any,
    ) -> None:
        target, eps = _kl_options(target, eps)
        super().__init__(modules, Lambda, neuron_axis=neuron_axis, time_axis=time_axis, **kwargs)
        self.target = target
        self.eps = eps

    def _check_record(self, label: str, tensor: Tensor) -> None:
        if self._n_recorded == 0:
            # Once per step, before any gradient: the rates of the first record must be rates.
            with torch.no_grad():
                rate_kl(firing_rates(tensor.detach(), **self._axes), self.target, eps=self.eps)

    def _penalty(self, activity: Activity) -> Tensor:
        return firing_rate_kl(activity, self.target, eps=self.eps, reduction=self.reduction, **self._axes)

    def _rate_penalty(self, rates: Tensor) -> Tensor:
        return rate_kl(rates, self.target, eps=self.eps, reduction=self.reduction)

    def _rate_penalty_grad(self, rates: Tensor) -> Tensor:
        return rate_kl_grad(rates, self.target, eps=self.eps, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, target={self.target!r}, eps={self.eps!r}"
