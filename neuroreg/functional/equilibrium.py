"""Parcel equilibrium (hypercoil's ``equilibrium`` and ``equilibrium_logit``): how far the mass of each
parcel is from the mean mass of all parcels."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from neuroreg._validation import check_axes, check_floating_tensor
from neuroreg.functional._common import Axes, compute_dtype, softmax

__all__ = ["equilibrium", "equilibrium_logit"]


def equilibrium(X: Tensor, *, level_axis: Axes = -1, instance_axes: Axes = (-1, -2)) -> Tensor:
    r"""Deviation of each parcel's mean mass from the mean mass of its instance.

    .. math::
        E = \left| \operatorname{mean}_{\text{level\_axis}} X - \operatorname{mean}_{\text{instance\_axes}} X
        \right|

    For a parcellation tensor ``X`` of shape ``(*, parcels, voxels)`` with the defaults, the first mean is
    each parcel's size and the second the mean size of all parcels in the instance: ``E`` is 0 when every
    parcel has the same total weight. Both means keep their reduced dimensions, as in hypercoil.

    Args:
        X: Probabilities (or other masses), floating point, any shape with the axes below.
        level_axis: Axis or axes whose elements all belong to one level (parcel).
        instance_axes: Axis or axes of one data instance or weight channel (a superset of ``level_axis``).

    Returns:
        The broadcast shape of the two means (``(*, parcels, 1)`` with the defaults), in ``X``'s dtype.

    Example:
        >>> X = torch.tensor([[0.2, 0.2], [0.3, 0.3], [0.5, 0.5]])   # 3 parcels, 2 voxels
        >>> equilibrium(X)
        tensor([[0.1333],
                [0.0333],
                [0.1667]])
    """
    X = check_floating_tensor("X", X)
    level = check_axes("level_axis", level_axis, X.ndim)
    instance = check_axes("instance_axes", instance_axes, X.ndim)
    return _equilibrium(X, level, instance, compute_dtype(X)).to(X.dtype)


def equilibrium_logit(
    X: Tensor, *, level_axis: Axes = -1, prob_axis: Axes = -2, instance_axes: Axes = (-1, -2)
) -> Tensor:
    r"""Softmax over ``prob_axis``, then :func:`equilibrium`.

    .. math::
        E = \left| \operatorname{mean}_{\text{level\_axis}} P - \operatorname{mean}_{\text{instance\_axes}} P
        \right|, \qquad P = \operatorname{softmax}_{\text{prob\_axis}}(X)

    Args:
        X: Logits, floating point (finite values and gradients up to ±1e4 in float32, and for ``-inf``
            logits, which are probabilities of exactly 0; a NaN logit makes its values NaN).
        level_axis: As in :func:`equilibrium`.
        prob_axis: Axis or axes over which each feature's assignment probabilities sum to 1 (the parcels).
        instance_axes: As in :func:`equilibrium`.

    Returns:
        As :func:`equilibrium`, in ``X``'s dtype.

    Example:
        >>> equilibrium_logit(torch.zeros(3, 5))   # every voxel equally in every parcel: balanced
        tensor([[0.],
                [0.],
                [0.]])
    """
    X = check_floating_tensor("X", X)
    probs = check_axes("prob_axis", prob_axis, X.ndim)
    level = check_axes("level_axis", level_axis, X.ndim)
    instance = check_axes("instance_axes", instance_axes, X.ndim)
    dtype = compute_dtype(X)
    return _equilibrium(softmax(X, probs, dtype), level, instance, dtype).to(X.dtype)


def _equilibrium(X: Tensor, level: Tuple[int, ...], instance: Tuple[int, ...], dtype: torch.dtype) -> Tensor:
    # mean(dtype=...) accumulates reduced-precision inputs in float32 without copying them first.
    return (X.mean(level, keepdim=True, dtype=dtype) - X.mean(instance, keepdim=True, dtype=dtype)).abs()
