"""hypercoil's smoothness loss."""

from __future__ import annotations

from typing import Any, Optional

from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional.smoothness import _options as smoothness_options
from neuroreg.functional.smoothness import smoothness
from neuroreg.losses._base import _ScalarisedLoss
from neuroreg.scalarise import Scalarisation, vnorm_scalarise

__all__ = ["SmoothnessLoss"]


class SmoothnessLoss(_ScalarisedLoss):
    r"""Backward differences along an axis (hypercoil's ``SmoothnessLoss``): penalises sudden changes.

    .. math::
        \mathcal{L} = \Lambda \, \lVert \Delta^n X \rVert_1 \quad \text{(default scalarisation)}

    Args:
        params: ``None`` to call it as ``loss(X)``; or parameters to hold (e.g. a temporal filter), calling
            it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        n: As in :func:`neuroreg.functional.smoothness`.
        pad_value: As in :func:`neuroreg.functional.smoothness`.
        axis: As in :func:`neuroreg.functional.smoothness`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``vnorm_scalarise(p=1, axis=None)``,
            the L1 norm of all differences).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.SmoothnessLoss()(torch.tensor([0.0, 1.0, 0.0, 1.0]))
        tensor(3.)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        n: int = 1,
        pad_value: Optional[float] = None,
        axis: int = -1,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        n, pad_value, axis = smoothness_options(n=n, pad_value=pad_value, axis=axis)
        super().__init__(
            params, Lambda, score=smoothness, options={"n": n, "pad_value": pad_value, "axis": axis},
            scalarisation=scalarisation or vnorm_scalarise(p=1, axis=None), nu=nu, name=name, **kwargs,
        )
