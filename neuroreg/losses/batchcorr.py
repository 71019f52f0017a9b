"""hypercoil's batch correlation loss."""

from __future__ import annotations

from typing import Any, Optional

from torch import Tensor

from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional.batchcorr import Tolerance, batch_corr
from neuroreg.functional.batchcorr import _options as batch_corr_options
from neuroreg.losses._base import _ScalarisedLoss
from neuroreg.scalarise import Scalarisation, mean_scalarise

__all__ = ["BatchCorrelationLoss"]


class BatchCorrelationLoss(_ScalarisedLoss):
    r"""Correlation over the batch axis with a measure (hypercoil's ``BatchCorrelationLoss``), e.g. QC-FC.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}_f \max(|r_f(X, N)| - \text{tol}, 0)

    Args:
        params: ``None`` to call it as ``loss(X, N)``; or tensors whose first axis is the batch, each
            correlated with ``target`` when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        tol: As in :func:`neuroreg.functional.batch_corr` (a real >= 0 or ``'auto'``).
        tol_sig: As in :func:`neuroreg.functional.batch_corr`.
        abs: As in :func:`neuroreg.functional.batch_corr` (``False``: signed, so the penalty can be < 0).
        target: With ``params``: the fixed measure ``N``, one value per batch element (a buffer).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> N = torch.tensor([1.0, 2.0, 3.0, 4.0])
        >>> nr.BatchCorrelationLoss(tol=0.5)(torch.stack([N, torch.ones(4)], dim=1), N)   # mean of 0.5, 0
        tensor(0.2500)
    """

    inputs = ("X", "N")

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        tol: Tolerance = 0,
        tol_sig: float = 0.1,
        abs: bool = True,
        target: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        tol, tol_sig, abs = batch_corr_options(tol=tol, tol_sig=tol_sig, abs=abs)
        super().__init__(
            params, Lambda, score=batch_corr, options={"tol": tol, "tol_sig": tol_sig, "abs": abs},
            scalarisation=scalarisation or mean_scalarise(), nu=nu, target=target, name=name, **kwargs,
        )
