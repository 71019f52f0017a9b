"""hypercoil's equilibrium losses: balanced parcel sizes."""

from __future__ import annotations

from typing import Any, Optional

from neuroreg._validation import check_axes_spec
from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional._common import Axes
from neuroreg.functional.equilibrium import equilibrium, equilibrium_logit
from neuroreg.losses._base import _ScalarisedLoss
from neuroreg.scalarise import Scalarisation, mean_scalarise, meansq_scalarise

__all__ = ["EquilibriumLogitLoss", "EquilibriumLoss"]


class EquilibriumLoss(_ScalarisedLoss):
    r"""Parcel equilibrium of masses (hypercoil's ``EquilibriumLoss``): favours parcels of equal total weight.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{meansq}\left| \operatorname{mean}_{\text{level\_axis}} X -
        \operatorname{mean}_{\text{instance\_axes}} X \right|

    Args:
        params: ``None`` to call it on tensors, ``loss(X)``; or the parameters (e.g. parcellation weights)
            to regularize, calling it as ``loss()`` for the sum over held tensors.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        level_axis: As in :func:`neuroreg.functional.equilibrium`.
        instance_axes: As in :func:`neuroreg.functional.equilibrium`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``meansq_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: ``optimizer``, ``include``, ``exclude``, ``priority``, ``save_state``, ``load_state``
            (see :class:`~neuroreg.BaseRegularization`).

    Example:
        >>> import torch, neuroreg as nr
        >>> X = torch.tensor([[0.2, 0.2], [0.3, 0.3], [0.5, 0.5]])
        >>> nr.EquilibriumLoss(nu=2.0)(X)
        tensor(0.0311)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        level_axis: Axes = -1,
        instance_axes: Axes = (-2, -1),
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "level_axis": check_axes_spec("level_axis", level_axis),
            "instance_axes": check_axes_spec("instance_axes", instance_axes),
        }
        super().__init__(
            params, Lambda, score=equilibrium, options=options, scalarisation=scalarisation or meansq_scalarise(),
            nu=nu, name=name, **kwargs,
        )


class EquilibriumLogitLoss(_ScalarisedLoss):
    r"""Parcel equilibrium of the softmax of logits (hypercoil's ``EquilibriumLogitLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\left| \operatorname{mean}_{\text{level\_axis}} P -
        \operatorname{mean}_{\text{instance\_axes}} P \right|, \qquad P = \operatorname{softmax}_{\text{prob\_axis}} X

    Args:
        params: ``None`` to call it on logits, ``loss(X)``; or parcellation logits to regularize, calling
            it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        level_axis: As in :func:`neuroreg.functional.equilibrium_logit`.
        prob_axis: As in :func:`neuroreg.functional.equilibrium_logit`.
        instance_axes: As in :func:`neuroreg.functional.equilibrium_logit`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> logits = torch.nn.Parameter(torch.zeros(4, 100))   # 4 parcels, 100 voxels, all equiprobable
        >>> nr.EquilibriumLogitLoss(logits, Lambda=10.0)()
        tensor(0., grad_fn=<MulBackward0>)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        level_axis: Axes = -1,
        prob_axis: Axes = -2,
        instance_axes: Axes = (-2, -1),
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "level_axis": check_axes_spec("level_axis", level_axis),
            "prob_axis": check_axes_spec("prob_axis", prob_axis),
            "instance_axes": check_axes_spec("instance_axes", instance_axes),
        }
        super().__init__(
            params, Lambda, score=equilibrium_logit, options=options,
            scalarisation=scalarisation or mean_scalarise(), nu=nu, name=name, **kwargs,
        )
