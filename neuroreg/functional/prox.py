r"""Proximal operators of the entrywise parameter penalties, applied in place with multi-tensor kernels.

The proximal operator of a penalty :math:`g` with step size :math:`t` is

.. math:: \operatorname{prox}_{t g}(W) = \operatorname*{arg\,min}_X \; t\,g(X) + \tfrac12 \lVert X - W \rVert_F^2 ,

so that a step of proximal gradient descent on ``task + g`` is the optimizer's step on the task loss followed
by :math:`W \leftarrow \operatorname{prox}_{\eta\lambda g}(W)` (learning rate :math:`\eta`, weight
:math:`\lambda`). Unlike a subgradient step, the prox of an L1 penalty lands entries on exactly zero.

Each function takes the step size as one float or one float per tensor (a mean reduction, or parameters in
param groups of different learning rates, gives each tensor its own), groups the tensors by device and dtype,
and updates them with a few ``torch._foreach_*`` kernels: no per-tensor Python loop over entries and no
temporary larger than one copy of the tensors. They run under ``torch.no_grad()``, so they can be applied to
``nn.Parameter`` objects directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Callable, List, Sequence, Union

import torch
from torch import Tensor

from neuroreg._validation import check_real
from neuroreg.functional._multi_tensor import as_tensor_list, group_by_device_and_dtype
from neuroreg.functional.connectome import _with_references

__all__ = [
    "dale_sign_prox_",
    "l1_prox_",
    "squared_l2_decay_",
    "squared_l2_prox_",
    "weights_distance_l1_prox_",
    "weights_distance_squared_l2_decay_",
    "weights_distance_squared_l2_prox_",
]

Tensors = Union[Tensor, Iterable[Tensor]]
Steps = Union[float, Sequence[float]]


def _check_steps(steps: Steps, count: int) -> List[float]:
    """One finite step size >= 0 per tensor (a single real is shared by all)."""
    if not isinstance(steps, Sequence) or isinstance(steps, (str, bytes)):
        return [check_real("step", steps, low=0)] * count
    if len(steps) != count:
        raise ValueError(f"step has {len(steps)} entries for {count} tensors: give one step size per tensor")
    return [check_real(f"step[{index}]", step, low=0) for index, step in enumerate(steps)]


def _grouped(tensors: List[Tensor], steps: List[float]) -> Iterable[tuple]:
    for group in group_by_device_and_dtype(tensors):
        yield group, [tensors[i] for i in group], [steps[i] for i in group]


def l1_prox_(tensors: Tensors, step: Steps) -> None:
    r"""Soft-thresholding, the proximal operator of :math:`t \lVert W \rVert_1`, in place.

    .. math:: w \leftarrow \operatorname{sign}(w) \max(|w| - t, 0) = w - \operatorname{clamp}(w, -t, t)

    Entries with :math:`|w| \le t` become exactly 0 (the clamp form is three kernels per group and one
    temporary, where sign, abs, subtract, clamp and multiply would be five).

    Args:
        tensors: Floating-point tensors of any shapes, updated in place.
        step: The threshold :math:`t \ge 0`: one float, or one per tensor.

    Example:
        >>> w = torch.tensor([0.5, -0.05, -2.0, 0.1])
        >>> l1_prox_([w], 0.1); w
        tensor([ 0.4000,  0.0000, -1.9000,  0.0000])
    """
    tensors = as_tensor_list("tensors", tensors)
    steps = _check_steps(step, len(tensors))
    with torch.no_grad():
        for _, ts, ss in _grouped(tensors, steps):
            clipped = torch._foreach_clamp_min(ts, [-s for s in ss])
            torch._foreach_clamp_max_(clipped, ss)
            torch._foreach_sub_(ts, clipped)


def squared_l2_prox_(tensors: Tensors, step: Steps) -> None:
    r"""Shrinkage, the proximal operator of :math:`t \lVert W \rVert_2^2` (the sum of squares), in place.

    .. math:: W \leftarrow \frac{W}{1 + 2t}

    Args:
        tensors: Floating-point tensors of any shapes, updated in place.
        step: The step size :math:`t \ge 0`: one float, or one per tensor.

    Example:
        >>> w = torch.tensor([3.0, -6.0])
        >>> squared_l2_prox_([w], 1.0); w
        tensor([ 1., -2.])
    """
    _scale_(tensors, step, lambda s: 1 / (1 + 2 * s))


def squared_l2_decay_(tensors: Tensors, step: Steps) -> None:
    r"""Decoupled weight decay, a gradient step on :math:`t \lVert W \rVert_2^2` alone, in place (not a
    proximal operator: it is the update of ``torch.optim.AdamW`` with ``weight_decay = 2t / lr``).

    .. math:: W \leftarrow W - t \, \frac{\partial \lVert W \rVert_2^2}{\partial W} = (1 - 2t) \, W

    Args:
        tensors: Floating-point tensors of any shapes, updated in place.
        step: The step size :math:`t \ge 0`: one float, or one per tensor.

    Example:
        >>> w = torch.tensor([1.0, -2.0])
        >>> squared_l2_decay_([w], 0.05); w
        tensor([ 0.9000, -1.8000])
    """
    _scale_(tensors, step, lambda s: 1 - 2 * s)


def _scale_(tensors: Tensors, step: Steps, factor: Callable[[float], float]) -> None:
    """``W *= factor(t)`` in place, for each tensor's step size ``t``."""
    tensors = as_tensor_list("tensors", tensors)
    steps = _check_steps(step, len(tensors))
    with torch.no_grad():
        for _, ts, ss in _grouped(tensors, steps):
            torch._foreach_mul_(ts, [factor(s) for s in ss])


def weights_distance_l1_prox_(tensors: Tensors, references: Tensors, step: Steps) -> None:
    r"""Soft-thresholding toward references, the proximal operator of :math:`t \lVert W - R \rVert_1`, in
    place.

    .. math:: w \leftarrow r + \operatorname{sign}(w - r) \max(|w - r| - t, 0) = w - \operatorname{clamp}(w - r, -t, t)

    Entries within :math:`t` of their reference land exactly on it.

    Args:
        tensors: Floating-point tensors of any shapes, updated in place.
        references: One reference per tensor, same shape (cast to the tensor's device and dtype).
        step: The threshold :math:`t \ge 0`: one float, or one per tensor.

    Example:
        >>> w = torch.tensor([1.0, 2.05]); r = torch.tensor([0.0, 2.0])
        >>> weights_distance_l1_prox_([w], [r], 0.1); w
        tensor([0.9000, 2.0000])
    """
    tensors, references = _with_references("references", tensors, references)
    steps = _check_steps(step, len(tensors))
    with torch.no_grad():
        for group, ts, ss in _grouped(tensors, steps):
            differences = torch._foreach_sub(ts, [references[i] for i in group])
            torch._foreach_clamp_min_(differences, [-s for s in ss])
            torch._foreach_clamp_max_(differences, ss)
            torch._foreach_sub_(ts, differences)


def weights_distance_squared_l2_prox_(tensors: Tensors, references: Tensors, step: Steps) -> None:
    r"""Shrinkage toward references, the proximal operator of :math:`t \lVert W - R \rVert_2^2`, in place.

    .. math:: W \leftarrow R + \frac{W - R}{1 + 2t} = W - \frac{2t}{1 + 2t} (W - R)

    Args:
        tensors: Floating-point tensors of any shapes, updated in place.
        references: One reference per tensor, same shape (cast to the tensor's device and dtype).
        step: The step size :math:`t \ge 0`: one float, or one per tensor.

    Example:
        >>> w = torch.tensor([3.0, 0.0]); r = torch.tensor([0.0, 3.0])
        >>> weights_distance_squared_l2_prox_([w], [r], 1.0); w
        tensor([1., 2.])
    """
    _move_toward_(tensors, references, step, lambda s: 2 * s / (1 + 2 * s))


def weights_distance_squared_l2_decay_(tensors: Tensors, references: Tensors, step: Steps) -> None:
    r"""Decoupled decay toward references, a gradient step on :math:`t \lVert W - R \rVert_2^2` alone, in place.

    .. math:: W \leftarrow W - 2t \, (W - R)

    Args:
        tensors: Floating-point tensors of any shapes, updated in place.
        references: One reference per tensor, same shape (cast to the tensor's device and dtype).
        step: The step size :math:`t \ge 0`: one float, or one per tensor.

    Example:
        >>> w = torch.tensor([3.0, 0.0]); r = torch.tensor([0.0, 3.0])
        >>> weights_distance_squared_l2_decay_([w], [r], 0.25); w
        tensor([1.5000, 1.5000])
    """
    _move_toward_(tensors, references, step, lambda s: 2 * s)


def _move_toward_(tensors: Tensors, references: Tensors, step: Steps, fraction: Callable[[float], float]) -> None:
    """``W -= fraction(t) * (W - R)`` in place, for each tensor's step size ``t``."""
    tensors, references = _with_references("references", tensors, references)
    steps = _check_steps(step, len(tensors))
    with torch.no_grad():
        for group, ts, ss in _grouped(tensors, steps):
            differences = torch._foreach_sub(ts, [references[i] for i in group])
            torch._foreach_mul_(differences, [fraction(s) for s in ss])
            torch._foreach_sub_(ts, differences)


def dale_sign_prox_(tensors: Tensors, signs: Tensors, step: Steps) -> None:
    r"""One-sided soft-thresholding, the proximal operator of :math:`t \sum_{ij}
    \operatorname{relu}(-W_{ij} S_{ij})` (:func:`~neuroreg.functional.dale_sign_penalty` with ``p = 1``), in
    place.

    .. math:: w \leftarrow w + s \, \operatorname{clamp}(-w s, 0, t)

    A wrong-signed entry moves toward zero by :math:`t`, and lands exactly on 0 when it was within :math:`t`
    of it; entries of the right sign, and entries whose reference sign is 0, are left as they are.

    Args:
        tensors: Floating-point tensors of any shapes, updated in place.
        signs: One reference sign tensor per tensor, same shape, entries in {-1, 0, 1}.
        step: The threshold :math:`t \ge 0`: one float, or one per tensor.

    Example:
        >>> w = torch.tensor([-0.05, -1.0, 2.0, 0.5]); s = torch.tensor([1.0, 1.0, 1.0, -1.0])
        >>> dale_sign_prox_([w], [s], 0.1); w
        tensor([ 0.0000, -0.9000,  2.0000,  0.4000])
    """
    tensors, signs = _with_references("signs", tensors, signs)
    steps = _check_steps(step, len(tensors))
    with torch.no_grad():
        for group, ts, ss in _grouped(tensors, steps):
            group_signs = [signs[i] for i in group]
            violations = torch._foreach_mul(ts, group_signs)
            torch._foreach_neg_(violations)
            torch._foreach_clamp_min_(violations, 0.0)
            torch._foreach_clamp_max_(violations, ss)
            torch._foreach_addcmul_(ts, group_signs, violations)
