"""hypercoil's Bregman-divergence losses."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Optional

from torch import Tensor

from neuroreg._validation import check_callable, check_int
from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional.bregman import bregman_divergence, bregman_divergence_logit
from neuroreg.losses._base import _ScalarisedLoss
from neuroreg.scalarise import Scalarisation, mean_scalarise

__all__ = ["BregmanDivergenceLogitLoss", "BregmanDivergenceLoss"]


class _BregmanLoss(_ScalarisedLoss):
    """The options and construction shared by the two Bregman losses."""

    inputs = ("X", "Y")
    _score: ClassVar[Callable[..., Tensor]]

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        f: Callable[[Tensor], Tensor],
        f_dim: int,
        target: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {"f": check_callable("f", f), "f_dim": check_int("f_dim", f_dim, low=1)}
        super().__init__(
            params, Lambda, score=type(self)._score, options=options, scalarisation=scalarisation or mean_scalarise(),
            nu=nu, target=target, name=name, **kwargs,
        )


class BregmanDivergenceLoss(_BregmanLoss):
    r"""Bregman divergence induced by a convex function (hypercoil's ``BregmanDivergenceLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, \Big[f(Y) - f(X) - \langle \nabla f(X), Y - X \rangle\Big]

    Args:
        params: ``None`` to call it as ``loss(X, Y)``; or tensors to hold, each compared with ``target`` when
            called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        f: As in :func:`neuroreg.functional.bregman_divergence` (required).
        f_dim: As in :func:`neuroreg.functional.bregman_divergence` (required).
        target: With ``params``: the fixed ``Y`` (a buffer, broadcast against each held tensor).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> loss = nr.BregmanDivergenceLoss(f=lambda x: x.square().sum(), f_dim=1)   # squared distance
        >>> loss(torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[1.0, 0.0], [3.0, 4.0]]))   # (4 + 25) / 2
        tensor(14.5000)
    """

    _score = staticmethod(bregman_divergence)


class BregmanDivergenceLogitLoss(_BregmanLoss):
    r"""Bregman divergence between the softmaxes of logits over their last ``f_dim`` axes (hypercoil's
    ``BregmanDivergenceLogitLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, D_f\big(\operatorname{softmax}(X),
        \operatorname{softmax}(Y)\big)

    Args:
        params: ``None`` to call it as ``loss(X, Y)`` on logits; or logits to hold, each compared with the
            logits ``target`` when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        f: As in :func:`neuroreg.functional.bregman_divergence_logit` (required).
        f_dim: As in :func:`neuroreg.functional.bregman_divergence_logit` (required).
        target: With ``params``: the fixed logits ``Y`` (a buffer, broadcast against each held tensor).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> negentropy = lambda p: (p * p.log()).sum()          # induces the KL divergence
        >>> logits = torch.nn.Parameter(torch.zeros(2, 3))
        >>> nr.BregmanDivergenceLogitLoss(logits, f=negentropy, f_dim=1, target=torch.zeros(3))()
        tensor(0., grad_fn=<MulBackward0>)
    """

    _score = staticmethod(bregman_divergence_logit)
