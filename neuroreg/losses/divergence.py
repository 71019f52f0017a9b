"""hypercoil's Jensen-Shannon divergence losses."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Optional

from torch import Tensor

from neuroreg._validation import check_axes_spec, check_bool
from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional._common import Axes
from neuroreg.functional.divergence import js_divergence, js_divergence_logit
from neuroreg.losses._base import _ScalarisedLoss
from neuroreg.scalarise import Scalarisation, mean_scalarise

__all__ = ["JSDivergenceLogitLoss", "JSDivergenceLoss"]


class _DivergenceLoss(_ScalarisedLoss):
    """The options and construction shared by the two Jensen-Shannon losses."""

    inputs = ("P", "Q")
    _score: ClassVar[Callable[..., Tensor]]

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        axis: Axes = -1,
        keepdims: bool = False,
        reduce: bool = True,
        target: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "axis": check_axes_spec("axis", axis),
            "keepdims": check_bool("keepdims", keepdims),
            "reduce": check_bool("reduce", reduce),
        }
        super().__init__(
            params, Lambda, score=type(self)._score, options=options, scalarisation=scalarisation or mean_scalarise(),
            nu=nu, target=target, name=name, **kwargs,
        )


class JSDivergenceLoss(_DivergenceLoss):
    r"""Jensen-Shannon divergence between probability tensors (hypercoil's ``JSDivergenceLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, JS(P \,\|\, Q), \qquad
        JS = \tfrac{1}{2} KL(P \,\|\, M) + \tfrac{1}{2} KL(Q \,\|\, M), \; M = \tfrac{1}{2}(P + Q)

    Args:
        params: ``None`` to call it as ``loss(P, Q)``; or probability tensors to hold, each compared with
            ``target`` when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        axis: As in :func:`neuroreg.functional.js_divergence`.
        keepdims: As in :func:`neuroreg.functional.js_divergence` (default ``False``, as hypercoil's loss).
        reduce: As in :func:`neuroreg.functional.js_divergence`.
        target: With ``params``: the fixed distribution ``Q`` (a buffer, broadcast against each held tensor).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> P = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
        >>> nr.JSDivergenceLoss()(P, torch.tensor([0.0, 1.0]))   # mean of log 2 and 0.2158
        tensor(0.4545)
    """

    _score = staticmethod(js_divergence)


class JSDivergenceLogitLoss(_DivergenceLoss):
    r"""Jensen-Shannon divergence between the softmaxes of logits (hypercoil's ``JSDivergenceLogitLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, JS\big(\operatorname{softmax}(P) \,\|\,
        \operatorname{softmax}(Q)\big)

    Args:
        params: ``None`` to call it as ``loss(P, Q)`` on logits; or logits to hold, each compared with the
            logits ``target`` when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        axis: As in :func:`neuroreg.functional.js_divergence_logit` (also the softmax's axes).
        keepdims: As in :func:`neuroreg.functional.js_divergence_logit` (default ``False``).
        reduce: As in :func:`neuroreg.functional.js_divergence_logit`.
        target: With ``params``: the fixed logits ``Q`` (a buffer, broadcast against each held tensor).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> logits = torch.nn.Parameter(torch.zeros(3, 4))
        >>> reg = nr.JSDivergenceLogitLoss(logits, target=torch.zeros(4))
        >>> reg()                                      # already equal to the target
        tensor(0., grad_fn=<MulBackward0>)
    """

    _score = staticmethod(js_divergence_logit)
