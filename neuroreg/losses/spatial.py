"""hypercoil's spatial losses: tethers of centres of mass, compactness and dispersion of parcels."""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from torch import Tensor

from neuroreg._validation import check_callable, check_real
from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional._geometry import linear_distance
from neuroreg.functional.spatial import (
    Norm,
    _check_norm,
    compactness,
    dispersion,
    dispersion_add_grad_,
    interhemispheric_tether,
    reference_tether,
)
from neuroreg.losses._arguments import _ArgumentsLoss
from neuroreg.losses._base import _ScalarisedLoss
from neuroreg.scalarise import Scalarisation, mean_scalarise

__all__ = ["CompactnessLoss", "DispersionLoss", "InterhemisphericTetherLoss", "ReferenceTetherLoss"]


def _radius(radius: Optional[float]) -> Optional[float]:
    return None if radius is None else check_real("radius", radius, low=0, low_inclusive=False)


class ReferenceTetherLoss(_ArgumentsLoss):
    r"""Displacement of parcels' centres of mass from reference points (hypercoil's ``ReferenceTetherLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\big(\operatorname{cmass}(X, C) - R\big)

    The default mean is of signed displacements, as in hypercoil; pass
    ``scalarisation=mean_scalarise(inner=vnorm_scalarise(axis=-2))`` for the mean distance.

    Args:
        params: ``None`` to call it as ``loss(X, ref, coor)`` (``ref`` and ``coor`` may be bound here instead);
            or parcellation weights to hold, each tethered when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        ref: Reference points ``(D, W)``, one column per parcel (a buffer), or ``None`` to give them per call.
        coor: Coordinates of the locations ``(D, L)`` (a buffer), or ``None`` to give them per call.
        radius: As in :func:`neuroreg.functional.reference_tether` (``None``: Euclidean).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> coor = torch.tensor([[0.0, 2.0, 4.0]])
        >>> nr.ReferenceTetherLoss(coor=coor, radius=None)(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[3.0]]))
        tensor(-2.)
    """

    arguments = ("X", "ref", "coor")
    held = ("X",)

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        ref: Optional[Tensor] = None,
        coor: Optional[Tensor] = None,
        radius: Optional[float] = 100.0,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, Lambda, score=reference_tether, options={"radius": _radius(radius)},
            scalarisation=scalarisation or mean_scalarise(), bound={"ref": ref, "coor": coor}, nu=nu, name=name,
            **kwargs,
        )


class InterhemisphericTetherLoss(_ArgumentsLoss):
    r"""Displacement of each right-hemisphere parcel from the mirror image of its left-hemisphere counterpart
    (hypercoil's ``InterhemisphericTetherLoss``): a pull toward a symmetric atlas.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\big(\operatorname{cmass}(X_{RH}, C_{RH}) -
        M \operatorname{cmass}(X_{LH}, C_{LH})\big), \qquad M = \operatorname{diag}(-1, 1, 1)

    hypercoil's examples reduce it with ``mean_scalarise(inner=vnorm_scalarise(axis=0))``: the mean distance.

    Args:
        params: ``None`` to call it as ``loss(lh, rh, lh_coor, rh_coor)``; or the two hemispheres' weights to
            hold, ``[lh, rh]`` (or several such pairs, in order), tethered when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        lh_coor: Coordinates of the left-hemisphere locations (a buffer), or ``None`` to give them per call.
        rh_coor: Coordinates of the right-hemisphere locations (a buffer), or ``None``.
        radius: As in :func:`neuroreg.functional.interhemispheric_tether`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> loss = nr.InterhemisphericTetherLoss(lh_coor=torch.tensor([[-1.0, -3.0]]),
        ...                                      rh_coor=torch.tensor([[1.0, 3.0]]), radius=None)
        >>> loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]]))
        tensor(1.)
    """

    arguments = ("lh", "rh", "lh_coor", "rh_coor")
    held = ("lh", "rh")

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        lh_coor: Optional[Tensor] = None,
        rh_coor: Optional[Tensor] = None,
        radius: Optional[float] = 100.0,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, Lambda, score=interhemispheric_tether, options={"radius": _radius(radius)},
            scalarisation=scalarisation or mean_scalarise(), bound={"lh_coor": lh_coor, "rh_coor": rh_coor},
            nu=nu, name=name, **kwargs,
        )


class CompactnessLoss(_ArgumentsLoss):
    r"""Distance of each parcel's mass from its centre of mass (hypercoil's ``CompactnessLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}_w \frac{1}{L} \sum_l X_{wl}
        \max\big(d(C_{:,l}, c_w) - \text{floor}, 0\big)

    Args:
        params: ``None`` to call it as ``loss(X, coor)``, or ``loss(X)`` with ``coor`` bound here; or
            parcellation weights ``(W, L)`` to hold (e.g. probabilities), called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        coor: Coordinates of the locations ``(D, L)`` (a buffer), or ``None`` to give them per call.
        radius: As in :func:`neuroreg.functional.compactness` (default 100, hypercoil's sphere).
        norm: As in :func:`neuroreg.functional.compactness` (used only with ``radius=None``).
        floor: As in :func:`neuroreg.functional.compactness`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> coor = torch.tensor([[0.0, 2.0, 4.0]])
        >>> nr.CompactnessLoss(coor=coor, radius=None)(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))
        tensor(0.3333)
    """

    arguments = ("X", "coor")
    held = ("X",)

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        coor: Optional[Tensor] = None,
        radius: Optional[float] = 100.0,
        norm: Norm = 2,
        floor: float = 0.0,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        _check_norm(norm)
        options = {"norm": norm, "floor": check_real("floor", floor), "radius": _radius(radius)}
        super().__init__(
            params, Lambda, score=compactness, options=options, scalarisation=scalarisation or mean_scalarise(),
            bound={"coor": coor}, nu=nu, name=name, **kwargs,
        )


class DispersionLoss(_ScalarisedLoss):
    r"""Proximity of vectors, e.g. parcels' centres of mass (hypercoil's ``DispersionLoss``): minimising it
    pushes them apart.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}_{i < j} \big(-d(x_i, x_j)\big)

    On held tensors with the default metric and scalarisation its gradient has a closed form
    (:func:`neuroreg.functional.dispersion_add_grad_`, :math:`O(ND)`): joint mode adds it without autograd.

    Args:
        params: ``None`` to call it as ``loss(X)`` on vectors in rows (``cmass_coor(P, coor).mT`` for the
            centres of a parcellation ``P``); or tensors of vectors to hold, called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        metric: As in :func:`neuroreg.functional.dispersion` (default the squared Euclidean distance).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.DispersionLoss()(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))   # mean of -1, -4, -5
        tensor(-3.3333)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        metric: Callable[[Tensor], Tensor] = linear_distance,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, Lambda, score=dispersion, options={"metric": check_callable("metric", metric)},
            scalarisation=scalarisation or mean_scalarise(), nu=nu, name=name, **kwargs,
        )
        # The closed form is that of the default (the mean over pairs of squared Euclidean distances), for the
        # gradient in held tensors.
        self.closed_form_grad = bool(self.params) and metric is linear_distance and scalarisation is None

    def _add_penalty_grad_(self, params: List[Tensor], grads: List[Tensor], alpha: float) -> None:
        # a zero-element tensor contributes nothing, as in forward
        kept = [index for index, param in enumerate(params) if param.numel()]
        dispersion_add_grad_([grads[i] for i in kept], [params[i] for i in kept], alpha)
