"""Spatial losses on soft parcellations (hypercoil's ``reference_tether``, ``interhemispheric_tether``,
``compactness`` and ``dispersion``): where each parcel's centre of mass lies, and how its mass spreads about
it."""

from __future__ import annotations

import math
from typing import Callable, List, Literal, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from neuroreg._validation import (
    check_broadcastable,
    check_callable,
    check_choice,
    check_floating_tensor,
    check_grads,
    check_int,
    check_real,
    check_size,
)
from neuroreg.functional._common import compute_dtype
from neuroreg.functional._geometry import cmass_coor, linear_distance, spherical_geodesic, sym2vec

__all__ = ["compactness", "dispersion", "dispersion_add_grad_", "interhemispheric_tether", "reference_tether"]

Norm = Union[int, float, Literal["inf"]]


def reference_tether(X: Tensor, ref: Tensor, coor: Tensor, *, radius: Optional[float] = 100.0) -> Tensor:
    r"""Displacement of each parcel's centre of mass from its reference point (hypercoil's
    ``reference_tether``), e.g. to adapt an existing atlas to new data.

    .. math::
        T = \operatorname{cmass}(X, C) - R, \qquad
        \operatorname{cmass}(X, C)_{:,w} = \frac{\sum_l X_{wl} C_{:,l}}{\sum_l X_{wl}}

    The score is the signed displacement, as in hypercoil: reduce it with a norm over the coordinate axis
    (``mean_scalarise(inner=vnorm_scalarise(axis=-2))``) for the mean distance from the references.

    Args:
        X: Masses, shape ``(*, W, L)``: one row per parcel, one column per location.
        ref: Reference points, one column per parcel: shape ``(*, D, W)`` (broadcast against the centres).
        coor: Coordinates of the locations, shape ``(*, D, L)``.
        radius: Radius of the sphere on which the coordinates lie (the centres are projected onto it), or
            ``None`` for Euclidean space.

    Returns:
        Shape ``(*, D, W)``, in ``X``'s dtype.

    Example:
        >>> coor = torch.tensor([[0.0, 2.0, 4.0]])
        >>> reference_tether(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[3.0]]), coor, radius=None)
        tensor([[-2.]])
    """
    X, coor, radius = _check_masses(X, coor, radius)
    ref = check_floating_tensor("ref", ref, min_ndim=1)
    dtype = compute_dtype(X, coor, ref)
    centres = cmass_coor(X.to(dtype), coor.to(dtype), radius=radius)
    check_broadcastable("ref", ref, "the centres of mass (D, W)", centres)
    return (centres - ref.to(dtype)).to(X.dtype)


def interhemispheric_tether(
    lh: Tensor, rh: Tensor, lh_coor: Tensor, rh_coor: Tensor, *, radius: float = 100.0
) -> Tensor:
    r"""Displacement of each right-hemisphere parcel's centre of mass from the mirror image of its
    left-hemisphere counterpart (hypercoil's ``interhemispheric_tether``): a pull toward a symmetric atlas.

    .. math::
        T = \operatorname{cmass}(X_{RH}, C_{RH}) - M \operatorname{cmass}(X_{LH}, C_{LH}), \qquad
        M = \operatorname{diag}(-1, 1, 1)

    The first coordinate is the left-right axis: the left-hemisphere centres are reflected through the
    midline (its sign flipped) and tether the right-hemisphere parcels of the same row. Reduce with a norm
    over the coordinate axis for distances (hypercoil's examples use ``mean_scalarise(inner=
    vnorm_scalarise(axis=0))``).

    Args:
        lh: Left-hemisphere masses, shape ``(*, W, L_lh)``.
        rh: Right-hemisphere masses, shape ``(*, W, L_rh)``: row ``w`` is the counterpart of ``lh``'s row ``w``.
        lh_coor: Coordinates of the left-hemisphere locations, shape ``(*, D, L_lh)``.
        rh_coor: Coordinates of the right-hemisphere locations, shape ``(*, D, L_rh)``.
        radius: Radius of the sphere on which the coordinates lie, or ``None`` for Euclidean space.

    Returns:
        Shape ``(*, D, W)``, in ``rh``'s dtype.

    Example:
        >>> lh_coor, rh_coor = torch.tensor([[-1.0, -3.0]]), torch.tensor([[1.0, 3.0]])
        >>> interhemispheric_tether(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]]), lh_coor, rh_coor,
        ...                         radius=None)                     # mirror image at 1, right parcel at 2
        tensor([[1.]])
    """
    lh, lh_coor, radius = _check_masses(lh, lh_coor, radius, names=("lh", "lh_coor"))
    rh, rh_coor, _ = _check_masses(rh, rh_coor, radius, names=("rh", "rh_coor"))
    dtype = compute_dtype(lh, rh, lh_coor, rh_coor)
    mirrored = cmass_coor(lh.to(dtype), lh_coor.to(dtype), radius=radius)
    mirrored = torch.cat([-mirrored[..., :1, :], mirrored[..., 1:, :]], dim=-2)
    centres = cmass_coor(rh.to(dtype), rh_coor.to(dtype), radius=radius)
    check_broadcastable("the centres of mass of rh", centres, "those of lh", mirrored)
    return (centres - mirrored).to(rh.dtype)


def compactness(
    X: Tensor, coor: Tensor, *, norm: Norm = 2, floor: float = 0.0, radius: Optional[float] = 100.0
) -> Tensor:
    r"""Mean distance of each parcel's mass from its centre of mass (hypercoil's ``compactness``): a diffuse
    parcel scores high, a compact one low.

    .. math::
        K_w = \frac{1}{L} \sum_l X_{wl} \max\big(d(C_{:,l}, c_w) - \text{floor}, \, 0\big), \qquad
        c = \operatorname{cmass}(X, C)

    where :math:`d` is the great-circle distance on the sphere of radius ``radius``, or, with ``radius=None``,
    the ``norm``-norm of the difference. (hypercoil documents ``norm`` but its code always takes the 2-norm:
    the values agree at the default ``norm=2`` and on the sphere.)

    Args:
        X: Masses, shape ``(*, W, L)``: one row per parcel, one column per location.
        coor: Coordinates of the locations, shape ``(*, D, L)`` (``D = 3`` on the sphere).
        norm: Order of the norm in Euclidean space (a real >= 1, ``math.inf`` or ``'inf'``); ignored on the
            sphere.
        floor: Distances up to ``floor`` cost nothing; longer ones are shortened by it.
        radius: Radius of the sphere on which the coordinates lie, or ``None`` for Euclidean space.

    Returns:
        Shape ``(*, W)``, in ``X``'s dtype.

    Example:
        >>> coor = torch.tensor([[0.0, 2.0, 4.0]])
        >>> compactness(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]), coor, radius=None)  # (1 + 1) / 3, 0
        tensor([0.6667, 0.0000])
    """
    X, coor, radius = _check_masses(X, coor, radius)
    order = _check_norm(norm)
    floor = check_real("floor", floor)
    out_dtype, dtype = X.dtype, compute_dtype(X, coor)
    X, coor = X.to(dtype), coor.to(dtype)
    centres = cmass_coor(X, coor, radius=radius)
    if radius is None:
        distance = torch.linalg.vector_norm(centres.unsqueeze(-1) - coor.unsqueeze(-2), ord=order, dim=-3)
    else:
        check_size("coor", coor, -2, 3, "3-D coordinates (D = 3) on the sphere")
        distance = spherical_geodesic(centres.mT, coor.mT, r=radius)
    return (X * (distance - floor).clamp_min(0)).mean(-1).to(out_dtype)


def dispersion(X: Tensor, *, metric: Callable[[Tensor], Tensor] = linear_distance) -> Tensor:
    r"""Negative separation of every pair of vectors (hypercoil's ``dispersion``), e.g. parcels' centres of
    mass: minimising it pushes them apart.

    .. math::
        S_{ij} = -\,d(x_i, x_j), \quad i < j

    Args:
        X: Vectors in rows, shape ``(*, N, D)``: for centres of mass, ``cmass_coor(X, coor).mT``.
        metric: Pairwise distance: ``metric(X)`` returns ``(*, N, N)`` (default :func:`linear_distance`, the
            squared Euclidean distance).

    Returns:
        Shape ``(*, N (N - 1) / 2)``: the upper triangle of :math:`-d`, row by row.

    Example:
        >>> dispersion(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
        tensor([-1., -4., -5.])
    """
    X = check_floating_tensor("X", X, min_ndim=2)
    metric = check_callable("metric", metric)
    return sym2vec(-metric(X.to(compute_dtype(X)))).to(X.dtype)


def dispersion_add_grad_(grads: List[Tensor], tensors: Sequence[Tensor], alpha: float = 1.0) -> None:
    r"""Add ``alpha`` times the gradient of the mean of :func:`dispersion` (the default metric) of each tensor
    to ``grads``, in place, without autograd.

    .. math::
        \frac{\partial}{\partial x_i} \Big(-\frac{1}{B P} \sum_{j < k} \lVert x_j - x_k \rVert^2\Big) =
        -\frac{2}{B P} \Big(N x_i - \sum_j x_j\Big), \qquad P = \frac{N (N - 1)}{2}

    for ``B`` batch elements of ``N`` vectors: :math:`O(ND)` where differentiating the pairwise distances
    takes :math:`O(N^2 D)` time and memory.

    Args:
        grads: One gradient per tensor, updated in place.
        tensors: Vectors in rows, each of shape ``(*, N, D)`` with ``N >= 2``.
        alpha: Scale of the gradient.

    Example:
        >>> g = torch.zeros(2, 1)
        >>> dispersion_add_grad_([g], [torch.tensor([[0.0], [1.0]])]); g      # of -(x_1 - x_0)^2
        tensor([[ 2.],
                [-2.]])
    """
    tensors = [check_floating_tensor("tensors", X, min_ndim=2) for X in tensors]
    check_grads(grads, tensors)
    with torch.no_grad():
        for grad, X in zip(grads, tensors):
            n = check_int("the number of vectors in each tensor", X.shape[-2], low=2)
            count = X.numel() // X.shape[-1] // n * (n * (n - 1) // 2)
            work = X.to(compute_dtype(X))
            grad.add_(n * work - work.sum(-2, keepdim=True), alpha=-2 * alpha / count)


def _check_masses(
    X: Tensor, coor: Tensor, radius: Optional[float], names: Tuple[str, str] = ("X", "coor")
) -> Tuple[Tensor, Tensor, Optional[float]]:
    """Check masses, their coordinates and the radius (shared by the spatial scores)."""
    X = check_floating_tensor(names[0], X, min_ndim=2)
    coor = check_floating_tensor(names[1], coor, min_ndim=2)
    check_size(names[1], coor, -1, X.shape[-1], f"one column per location (column) of {names[0]}")
    return X, coor, None if radius is None else check_real("radius", radius, low=0, low_inclusive=False)


def _check_norm(norm: Norm) -> float:
    """hypercoil's norm orders: a real >= 1, infinity, or the string ``'inf'``."""
    if isinstance(norm, str):
        check_choice("norm", norm, ("inf",))
        return math.inf
    return check_real("norm", norm, low=1, allow_inf=True)
