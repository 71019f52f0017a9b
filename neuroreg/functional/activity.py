r"""Penalties on activity — activations, spikes, firing rates — with their closed-form gradients.

Every function takes the activity ``a`` as one tensor or as a sequence of tensors (the records of a layer
called once per time step), pooled: an L1/L2 penalty sums over every element of every record, and a neuron's
firing rate is its mean over every record. The ``*_grad`` functions return :math:`\partial
\text{penalty} / \partial a` (a tensor, or one per record) without autograd.

Firing rates are means over the *rate axes*: by default every axis but ``neuron_axis`` (batch and time for a
``(batch, time, neurons)`` record, the batch for the ``(batch, neurons)`` records of per-step calls, pooled
over the calls), or exactly ``time_axis`` when it is given (then one rate per neuron and per index of the
other axes, e.g. per trial with ``time_axis=1``). The rate penalties are written on the rates,
:math:`P(r)`; for a record :math:`a` whose elements enter :math:`r_j` through :math:`n` pooled elements,
:math:`\partial P / \partial a = (\partial P / \partial r_j) / n`, spread along the rate axes
(:func:`spread_rate_grad`).

float16/bfloat16 activity is reduced in float32 and the result returned in its dtype.
"""

from __future__ import annotations

import math
from typing import List, Literal, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from neuroreg._validation import check_axes, check_choice, check_floating_tensor, check_open_unit, check_real
from neuroreg.functional._common import Axes, compute_dtype
from neuroreg.functional._multi_tensor import as_tensor_list, sum_scalars, unwrapped

__all__ = [
    "activity_l1",
    "activity_l1_grad",
    "activity_l2",
    "activity_l2_grad",
    "firing_rate_kl",
    "firing_rate_kl_grad",
    "firing_rate_range",
    "firing_rate_range_grad",
    "firing_rates",
    "rate_axes",
    "rate_kl",
    "rate_kl_grad",
    "rate_range",
    "rate_range_grad",
    "rate_sums",
    "spread_rate_grad",
]

Activity = Union[Tensor, Sequence[Tensor]]
Reduction = Literal["sum", "mean"]
REDUCTIONS = ("sum", "mean")


def _records(a: Activity) -> List[Tensor]:
    records = [check_floating_tensor("a", a)] if isinstance(a, Tensor) else as_tensor_list("a", a)
    if not records:
        raise ValueError("a must hold at least one tensor, got an empty sequence")
    return records


def _unpack(records: List[Tensor], a: Activity) -> Union[Tensor, List[Tensor]]:
    return records[0] if isinstance(a, Tensor) else records


# --- L1 and L2 on the activity ---------------------------------------------------------------------------
def _elementwise(a: Activity, reduction: str, power: int) -> Tensor:
    check_choice("reduction", reduction, REDUCTIONS)
    records = _records(a)
    dtype = compute_dtype(*records)
    total = sum_scalars([(r.to(dtype).abs() if power == 1 else r.to(dtype).square()).sum() for r in records])
    if reduction == "mean":
        total = total / sum(r.numel() for r in records)
    return total.to(records[0].dtype)


def _elementwise_grad(a: Activity, reduction: str, count: Optional[int], power: int) -> Union[Tensor, List[Tensor]]:
    check_choice("reduction", reduction, REDUCTIONS)
    records = _records(a)
    scale = 1.0
    if reduction == "mean":
        scale = 1.0 / (sum(r.numel() for r in records) if count is None else count)
    grads = [r.sign() * scale if power == 1 else r * (2.0 * scale) for r in records]
    return _unpack(grads, a)


def activity_l1(a: Activity, *, reduction: Reduction = "sum") -> Tensor:
    r"""L1 penalty on activity: the spike count when ``a`` are spikes (NeuroTorch's spike penalty, Keras'
    ``ActivityRegularization(l1=...)``).

    .. math::
        P(a) = \sum_i |a_i| \quad (\text{sum}), \qquad P(a) = \frac1N \sum_i |a_i| \quad (\text{mean})

    Args:
        a: Activity, any shape: a floating tensor or a sequence of them (pooled).
        reduction: ``"sum"`` over every element, or ``"mean"`` over them (:math:`N` elements in all).

    Returns:
        A 0-d tensor in ``a``'s dtype.

    Example:
        >>> activity_l1(torch.tensor([[1.0, 0.0], [0.0, -2.0]]))
        tensor(3.)
        >>> activity_l1([torch.tensor([1.0, 0.0]), torch.tensor([0.0, -2.0])], reduction="mean")
        tensor(0.7500)
    """
    return _elementwise(a, reduction, 1)


def activity_l1_grad(
    a: Activity, *, reduction: Reduction = "sum", count: Optional[int] = None
) -> Union[Tensor, List[Tensor]]:
    r""":math:`\partial P / \partial a = \operatorname{sign}(a)` (divided by :math:`N` for the mean) of
    :func:`activity_l1`; 0 where :math:`a = 0`, as autograd's.

    Args:
        a: As in :func:`activity_l1`.
        reduction: As in :func:`activity_l1`.
        count: :math:`N` for the mean when ``a`` is one record of several (default: ``a``'s own elements).

    Returns:
        A tensor of ``a``'s shape, or one per record.

    Example:
        >>> activity_l1_grad(torch.tensor([2.0, 0.0, -1.0]), reduction="mean")
        tensor([ 0.3333,  0.0000, -0.3333])
    """
    return _elementwise_grad(a, reduction, count, 1)


def activity_l2(a: Activity, *, reduction: Reduction = "sum") -> Tensor:
    r"""Squared-L2 penalty on activity (metabolic cost on rates; Keras' ``ActivityRegularization(l2=...)``,
    PsychRNN's ``L2_firing_rate``).

    .. math::
        P(a) = \sum_i a_i^2 \quad (\text{sum}), \qquad P(a) = \frac1N \sum_i a_i^2 \quad (\text{mean})

    Args:
        a: As in :func:`activity_l1`.
        reduction: As in :func:`activity_l1`.

    Returns:
        A 0-d tensor in ``a``'s dtype.

    Example:
        >>> activity_l2(torch.tensor([[1.0, 0.0], [0.0, -2.0]]), reduction="mean")
        tensor(1.2500)
    """
    return _elementwise(a, reduction, 2)


def activity_l2_grad(
    a: Activity, *, reduction: Reduction = "sum", count: Optional[int] = None
) -> Union[Tensor, List[Tensor]]:
    r""":math:`\partial P / \partial a = 2a` (divided by :math:`N` for the mean) of :func:`activity_l2`.

    Args:
        a: As in :func:`activity_l1`.
        reduction: As in :func:`activity_l1`.
        count: As in :func:`activity_l1_grad`.

    Example:
        >>> activity_l2_grad(torch.tensor([1.0, -0.5]))
        tensor([ 2., -1.])
    """
    return _elementwise_grad(a, reduction, count, 2)


# --- firing rates ----------------------------------------------------------------------------------------
def rate_axes(ndim: int, *, neuron_axis: Axes = -1, time_axis: Optional[Axes] = None) -> Tuple[int, ...]:
    """The axes a firing rate averages over, for a record with ``ndim`` dimensions (sorted, non-negative).

    Args:
        ndim: Dimensions of the record.
        neuron_axis: The axis (or axes) indexing neurons: by default the rate averages over all the others.
        time_axis: If given, the rate averages over exactly these axes instead; they must not include
            ``neuron_axis``.

    Example:
        >>> rate_axes(3), rate_axes(2), rate_axes(3, time_axis=1)
        ((0, 1), (0,), (1,))
        >>> rate_axes(3, neuron_axis=-1, time_axis=2)
        Traceback (most recent call last):
        ...
        ValueError: time_axis 2 and neuron_axis -1 share axis 2: a rate averages over time, never over neurons
    """
    neurons = check_axes("neuron_axis", neuron_axis, ndim)
    if time_axis is None:
        return tuple(axis for axis in range(ndim) if axis not in neurons)
    times = check_axes("time_axis", time_axis, ndim)
    shared = sorted(set(times) & set(neurons))
    if shared:
        raise ValueError(
            f"time_axis {time_axis!r} and neuron_axis {neuron_axis!r} share axis {shared[0]}: a rate averages "
            f"over time, never over neurons"
        )
    return times


def rate_sums(a: Activity, *, neuron_axis: Axes = -1, time_axis: Optional[Axes] = None) -> Tuple[Tensor, int]:
    """Each rate's sum over the pooled records and how many elements enter it: :func:`firing_rates` is their
    ratio. Sums of successive records add up (what a joint-mode regularization accumulates).

    Example:
        >>> rate_sums(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
        (tensor([2., 1.]), 2)
    """
    records = _records(a)
    dtype = compute_dtype(*records)
    sums, count, shape = [], 0, None
    for index, record in enumerate(records):
        axes = rate_axes(record.ndim, neuron_axis=neuron_axis, time_axis=time_axis)
        total = record.to(dtype).sum(dim=axes) if axes else record.to(dtype)
        if shape is not None and total.shape != shape:
            raise ValueError(
                f"a[{index}] gives rates of shape {tuple(total.shape)}, but a[0] gives {tuple(shape)}: records "
                f"pooled into one rate per neuron must have the same neurons"
            )
        shape = total.shape
        sums.append(total)
        count += math.prod([record.shape[axis] for axis in axes])   # a list: Dynamo cannot trace a generator here
    return (sums[0] if len(sums) == 1 else torch.stack(sums).sum(0)), count


def firing_rates(a: Activity, *, neuron_axis: Axes = -1, time_axis: Optional[Axes] = None) -> Tensor:
    r"""Each neuron's mean activity (its firing rate when ``a`` are spikes), pooled over the records.

    .. math::
        r_j = \frac{1}{n} \sum_{\text{records}} \sum_{\text{rate axes}} a_{\dots j \dots}

    Args:
        a: Activity: a floating tensor or a sequence of them (records of the same neurons).
        neuron_axis: As in :func:`rate_axes` (default ``-1``: ``(batch, time, neurons)`` or ``(batch,
            neurons)``).
        time_axis: As in :func:`rate_axes`.

    Returns:
        The rates, shaped as a record without its rate axes, in the compute dtype (float32 for half inputs).

    Example:
        >>> spikes = torch.tensor([[[1.0, 0.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]]])  # (batch, time, neurons)
        >>> firing_rates(spikes)
        tensor([0.7500, 0.2500])
        >>> firing_rates(spikes, time_axis=1)   # per trial
        tensor([[1.0000, 0.5000],
                [0.5000, 0.0000]])
    """
    total, count = rate_sums(a, neuron_axis=neuron_axis, time_axis=time_axis)
    return total / count


def spread_rate_grad(rate_grad: Tensor, record: Tensor, count: int, *, neuron_axis: Axes = -1,
                     time_axis: Optional[Axes] = None) -> Tensor:
    r""":math:`\partial P / \partial a` of one record from :math:`\partial P / \partial r`: each rate's
    gradient divided by the ``count`` of pooled elements, broadcast along the rate axes of ``record``.

    Args:
        rate_grad: :math:`\partial P / \partial r`, shaped as :func:`firing_rates`' result.
        record: The record (only its shape and dtype are used).
        count: How many elements enter each rate (over all records).
        neuron_axis: As in :func:`rate_axes`.
        time_axis: As in :func:`rate_axes`.

    Returns:
        An expanded (not materialised) tensor of ``record``'s shape and dtype.

    Example:
        >>> spread_rate_grad(torch.tensor([1.0, -2.0]), torch.zeros(2, 2), 4)
        tensor([[ 0.2500, -0.5000],
                [ 0.2500, -0.5000]])
    """
    grad = (rate_grad / count).to(record.dtype)
    for axis in rate_axes(record.ndim, neuron_axis=neuron_axis, time_axis=time_axis):
        grad = grad.unsqueeze(axis)
    return grad.expand(record.shape)


def _reduce(values: Tensor, reduction: str) -> Tensor:
    return values.sum() if reduction == "sum" else values.mean()


def _grad_scale(rates: Tensor, reduction: str) -> float:
    return 1.0 if reduction == "sum" else 1.0 / max(rates.numel(), 1)


def _range_options(low: float, high: Optional[float]) -> Tuple[float, Optional[float]]:
    """Check :func:`rate_range`'s band (also at a regularization's construction)."""
    low = check_real("low", low)
    if high is not None:
        high = check_real("high", high)
        if low > high:
            raise ValueError(f"low must be <= high, got low={low!r}, high={high!r}")
    return low, high


def rate_range(rates: Tensor, low: float = 0.0, high: Optional[float] = None, *,
               reduction: Reduction = "sum") -> Tensor:
    r"""Two-sided band penalty on firing rates: zero when every rate lies in :math:`[\text{low},
    \text{high}]`.

    .. math::
        P(r) = \sum_j \operatorname{relu}(\text{low} - r_j)^2 + \operatorname{relu}(r_j - \text{high})^2

    (``"mean"``: divided by the number of rates). ``high=None`` drops the upper side, ``low=0`` on
    non-negative rates the lower one.

    Example:
        >>> rate_range(torch.tensor([0.0, 0.05, 0.3]), low=0.01, high=0.1)
        tensor(0.0401)
    """
    low, high = _range_options(low, high)
    check_choice("reduction", reduction, REDUCTIONS)
    values = torch.relu(low - rates).square()
    if high is not None:
        values = values + torch.relu(rates - high).square()
    return _reduce(values, reduction)


def rate_range_grad(rates: Tensor, low: float = 0.0, high: Optional[float] = None, *,
                    reduction: Reduction = "sum") -> Tensor:
    r""":math:`\partial P / \partial r_j = -2 \operatorname{relu}(\text{low} - r_j) + 2
    \operatorname{relu}(r_j - \text{high})` of :func:`rate_range` (divided by the number of rates for the mean).

    Example:
        >>> rate_range_grad(torch.tensor([0.0, 0.05, 0.3]), low=0.01, high=0.1)
        tensor([-0.0200,  0.0000,  0.4000])
    """
    low, high = _range_options(low, high)
    check_choice("reduction", reduction, REDUCTIONS)
    grad = torch.relu(low - rates) * -2.0
    if high is not None:
        grad = grad + torch.relu(rates - high) * 2.0
    return grad * _grad_scale(rates, reduction)


def _clamped(rates: Tensor, eps: float) -> Tensor:
    return rates.clamp(eps, 1.0 - eps)


def _kl_options(target: float, eps: float) -> Tuple[float, float]:
    """Check :func:`rate_kl`'s target and clamp (also at a regularization's construction)."""
    target = check_open_unit("target", target)
    return target, check_real("eps", eps, low=0, high=0.5, low_inclusive=False, high_inclusive=False)


def _check_kl(rates: Tensor, target: float, eps: float) -> Tuple[float, float]:
    target, eps = _kl_options(target, eps)
    # NaN passes (NaN in, NaN out); a finite or infinite rate outside [0, 1] is refused.
    rates = unwrapped(rates)   # under torch.func transforms: the values of every copy
    outside = ((rates < 0) | (rates > 1)).any()
    if torch.compiler.is_compiling():
        # A traced graph has no host-side branch on values: the same check as an in-graph assertion.
        torch._assert_async(~outside, "firing rates must be in [0, 1] for a KL penalty (spikes or probabilities)")
    elif bool(outside):
        raise ValueError(
            f"firing rates must be in [0, 1] for a KL penalty (spikes or probabilities), got rates from "
            f"{float(rates.detach().min()):g} to {float(rates.detach().max()):g}"
        )
    return target, eps


def rate_kl(rates: Tensor, target: float = 0.1, *, eps: float = 1e-6, reduction: Reduction = "sum") -> Tensor:
    r"""KL divergence of each neuron's firing rate from a target rate (snnTorch's ``kl_rate_sparsity``).

    .. math::
        P(r) = \sum_j t \log\frac{t}{\hat r_j} + (1 - t) \log\frac{1 - t}{1 - \hat r_j}, \qquad
        \hat r_j = \operatorname{clamp}(r_j, \epsilon, 1 - \epsilon)

    The value and the gradient are those at the clamped rate :math:`\hat r` (the clamp passes the gradient
    straight through): finite at rates of exactly 0 and 1, and a silent neuron is still pushed up.

    Args:
        rates: Firing rates in :math:`[0, 1]` (a ``ValueError`` otherwise).
        target: The target rate :math:`t`, in :math:`(0, 1)`.
        eps: The clamp, in :math:`(0, 0.5)`.
        reduction: ``"sum"`` over the rates or ``"mean"``.

    Example:
        >>> rate_kl(torch.tensor([0.1, 0.0]), target=0.1)   # a silent neuron costs 0.1 log(0.1 / 1e-6) + ...
        tensor(1.0565)
    """
    target, eps = _check_kl(rates, target, eps)
    check_choice("reduction", reduction, REDUCTIONS)
    clamped = rates + (_clamped(rates, eps) - rates).detach()
    values = target * math.log(target) - target * clamped.log()
    values = values + (1 - target) * math.log(1 - target) - (1 - target) * torch.log1p(-clamped)
    return _reduce(values, reduction)


def rate_kl_grad(rates: Tensor, target: float = 0.1, *, eps: float = 1e-6, reduction: Reduction = "sum") -> Tensor:
    r""":math:`\partial P / \partial r_j = -t / \hat r_j + (1 - t) / (1 - \hat r_j)` of :func:`rate_kl`
    (divided by the number of rates for the mean).

    Example:
        >>> rate_kl_grad(torch.tensor([0.1, 0.5]), target=0.1)
        tensor([0.0000, 1.6000])
    """
    target, eps = _check_kl(rates, target, eps)
    check_choice("reduction", reduction, REDUCTIONS)
    clamped = _clamped(rates, eps)
    return ((1 - target) / (1 - clamped) - target / clamped) * _grad_scale(rates, reduction)


# --- the rate penalties on the activity ------------------------------------------------------------------
def _on_activity(a: Activity, neuron_axis: Axes, time_axis: Optional[Axes]) -> Tuple[List[Tensor], Tensor, int]:
    records = _records(a)
    total, count = rate_sums(records, neuron_axis=neuron_axis, time_axis=time_axis)
    return records, total / count, count


def firing_rate_range(a: Activity, low: float = 0.0, high: Optional[float] = None, *, neuron_axis: Axes = -1,
                      time_axis: Optional[Axes] = None, reduction: Reduction = "sum") -> Tensor:
    r""":func:`rate_range` of the :func:`firing_rates` of ``a``: keeps every neuron's rate in a band.

    .. math::
        P(a) = \sum_j \operatorname{relu}(\text{low} - r_j)^2 + \operatorname{relu}(r_j - \text{high})^2,
        \qquad r = \text{firing\_rates}(a)

    Args:
        a: Activity: a floating tensor or a sequence of records of the same neurons.
        low: Lower end of the band (``0``: no lower side for non-negative activity).
        high: Upper end of the band, ``>= low``, or ``None`` for no upper side.
        neuron_axis: As in :func:`rate_axes`.
        time_axis: As in :func:`rate_axes`.
        reduction: ``"sum"`` over the rates or ``"mean"``.

    Returns:
        A 0-d tensor in ``a``'s dtype.

    Example:
        >>> spikes = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 1.0]]])  # rates 1 and 0.25
        >>> firing_rate_range(spikes, low=0.5, high=0.9)
        tensor(0.0725)
    """
    records, rates, _ = _on_activity(a, neuron_axis, time_axis)
    return rate_range(rates, low, high, reduction=reduction).to(records[0].dtype)


def firing_rate_range_grad(a: Activity, low: float = 0.0, high: Optional[float] = None, *,
                           neuron_axis: Axes = -1, time_axis: Optional[Axes] = None,
                           reduction: Reduction = "sum") -> Union[Tensor, List[Tensor]]:
    r""":math:`\partial P / \partial a` of :func:`firing_rate_range`: :func:`rate_range_grad` spread over
    the elements of each rate (:func:`spread_rate_grad`).

    Returns:
        A tensor of ``a``'s shape, or one per record.

    Example:
        >>> firing_rate_range_grad(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), low=0.1, high=0.5)
        tensor([[ 0.5000, -0.1000],
                [ 0.5000, -0.1000]])
    """
    records, rates, count = _on_activity(a, neuron_axis, time_axis)
    rate_grad = rate_range_grad(rates, low, high, reduction=reduction)
    grads = [spread_rate_grad(rate_grad, r, count, neuron_axis=neuron_axis, time_axis=time_axis) for r in records]
    return _unpack(grads, a)


def firing_rate_kl(a: Activity, target: float = 0.1, *, eps: float = 1e-6, neuron_axis: Axes = -1,
                   time_axis: Optional[Axes] = None, reduction: Reduction = "sum") -> Tensor:
    r""":func:`rate_kl` of the :func:`firing_rates` of ``a`` (snnTorch's ``kl_rate_sparsity``).

    .. math::
        P(a) = \sum_j t \log\frac{t}{\hat r_j} + (1 - t) \log\frac{1 - t}{1 - \hat r_j}, \qquad
        \hat r = \operatorname{clamp}(\text{firing\_rates}(a), \epsilon, 1 - \epsilon)

    Args:
        a: Activity whose rates lie in :math:`[0, 1]` (spikes, or probabilities).
        target: Target rate, in :math:`(0, 1)`.
        eps: As in :func:`rate_kl`.
        neuron_axis: As in :func:`rate_axes`.
        time_axis: As in :func:`rate_axes`.
        reduction: ``"sum"`` over the rates or ``"mean"``.

    Example:
        >>> firing_rate_kl(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), target=0.25, reduction="mean")
        tensor(1.5112)
    """
    records, rates, _ = _on_activity(a, neuron_axis, time_axis)
    return rate_kl(rates, target, eps=eps, reduction=reduction).to(records[0].dtype)


def firing_rate_kl_grad(a: Activity, target: float = 0.1, *, eps: float = 1e-6, neuron_axis: Axes = -1,
                        time_axis: Optional[Axes] = None, reduction: Reduction = "sum") -> Union[Tensor, List[Tensor]]:
    r""":math:`\partial P / \partial a` of :func:`firing_rate_kl`: :func:`rate_kl_grad` spread over the
    elements of each rate.

    Example:
        >>> firing_rate_kl_grad(torch.tensor([[1.0], [0.0]]), target=0.25)
        tensor([[0.5000],
                [0.5000]])
    """
    records, rates, count = _on_activity(a, neuron_axis, time_axis)
    rate_grad = rate_kl_grad(rates, target, eps=eps, reduction=reduction)
    grads = [spread_rate_grad(rate_grad, r, count, neuron_axis=neuron_axis, time_axis=time_axis) for r in records]
    return _unpack(grads, a)
