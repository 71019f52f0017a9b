"""hypercoil's information losses not in :mod:`neuroreg.losses.divergence`: entropy and the Kullback-Leibler
divergence, on probabilities and on logits."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Optional

from torch import Tensor

from neuroreg._validation import check_axes_spec, check_bool
from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional._common import Axes
from neuroreg.functional.divergence import kl_divergence, kl_divergence_logit
from neuroreg.functional.entropy import entropy, entropy_logit
from neuroreg.losses._base import _ScalarisedLoss
from neuroreg.losses.divergence import _DivergenceLoss
from neuroreg.scalarise import Scalarisation, mean_scalarise

__all__ = ["EntropyLogitLoss", "EntropyLoss", "KLDivergenceLogitLoss", "KLDivergenceLoss"]


class _EntropyLoss(_ScalarisedLoss):
    """The options and construction shared by the two entropy losses (hypercoil's ``_InformationLoss``)."""

    _score: ClassVar[Callable[..., Tensor]]

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        axis: Axes = -1,
        keepdims: bool = False,
        reduce: bool = True,
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
            nu=nu, name=name, **kwargs,
        )


class EntropyLoss(_EntropyLoss):
    r"""Entropy of categorical distributions (hypercoil's ``EntropyLoss``): penalising it concentrates each
    distribution (e.g. each voxel's parcel assignment) on one category.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, H(X), \qquad H(X) = -\sum_x X_x \log X_x

    Entropy is concave and unbounded below off the probability simplex: regularize probabilities (a
    softmax of parameters), or use :class:`EntropyLogitLoss` on logits.

    Args:
        params: ``None`` to call it as ``loss(X)`` on probabilities; or probability tensors to hold, calling
            it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        axis: As in :func:`neuroreg.functional.entropy` (the categories).
        keepdims: As in :func:`neuroreg.functional.entropy` (default ``False``, as hypercoil's loss).
        reduce: As in :func:`neuroreg.functional.entropy`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.EntropyLoss()(torch.tensor([[0.5, 0.5], [1.0, 0.0]]))   # mean of log 2 and 0
        tensor(0.3466)
    """

    _score = staticmethod(entropy)


class EntropyLogitLoss(_EntropyLoss):
    r"""Entropy of the softmax of logits (hypercoil's ``EntropyLogitLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, H\big(\operatorname{softmax}_{\text{axis}} X\big)

    The summed entropy has a closed-form backward (see :func:`neuroreg.functional.entropy_logit`).

    Args:
        params: ``None`` to call it as ``loss(X)`` on logits; or logits to hold (e.g. a soft parcellation,
            ``axis`` its parcels), calling it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        axis: As in :func:`neuroreg.functional.entropy_logit` (also the softmax's axes).
        keepdims: As in :func:`neuroreg.functional.entropy_logit` (default ``False``).
        reduce: As in :func:`neuroreg.functional.entropy_logit`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> logits = torch.nn.Parameter(torch.zeros(6, 100))   # 6 parcels, 100 voxels, all equiprobable
        >>> nr.EntropyLogitLoss(logits, axis=0)()               # log 6
        tensor(1.7918, grad_fn=<MulBackward0>)
    """

    _score = staticmethod(entropy_logit)


class KLDivergenceLoss(_DivergenceLoss):
    r"""Kullback-Leibler divergence between probability tensors (hypercoil's ``KLDivergenceLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, KL(P \,\|\, Q), \qquad
        KL(P \,\|\, Q) = \sum_x P_x \log \frac{P_x}{Q_x}

    Args:
        params: ``None`` to call it as ``loss(P, Q)``; or probability tensors to hold, each compared with
            ``target`` when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        axis: As in :func:`neuroreg.functional.kl_divergence`.
        keepdims: As in :func:`neuroreg.functional.kl_divergence` (default ``False``, as hypercoil's loss).
        reduce: As in :func:`neuroreg.functional.kl_divergence`.
        target: With ``params``: the fixed distribution ``Q`` (a buffer, broadcast against each held tensor).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.KLDivergenceLoss()(torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.25, 0.25, 0.5]))   # log 2
        tensor(0.6931)
    """

    _score = staticmethod(kl_divergence)


class KLDivergenceLogitLoss(_DivergenceLoss):
    r"""Kullback-Leibler divergence between the softmaxes of logits (hypercoil's ``KLDivergenceLogitLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, KL\big(\operatorname{softmax}(P) \,\|\,
        \operatorname{softmax}(Q)\big)

    Args:
        params: ``None`` to call it as ``loss(P, Q)`` on logits; or logits to hold, each compared with the
            logits ``target`` when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        axis: As in :func:`neuroreg.functional.kl_divergence_logit` (also the softmax's axes).
        keepdims: As in :func:`neuroreg.functional.kl_divergence_logit` (default ``False``).
        reduce: As in :func:`neuroreg.functional.kl_divergence_logit`.
        target: With ``params``: the fixed logits ``Q`` (a buffer, broadcast against each held tensor).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> logits = torch.nn.Parameter(torch.zeros(3, 4))
        >>> nr.KLDivergenceLogitLoss(logits, target=torch.zeros(4))()   # already equal to the target
        tensor(0., grad_fn=<MulBackward0>)
    """

    _score = staticmethod(kl_divergence_logit)
