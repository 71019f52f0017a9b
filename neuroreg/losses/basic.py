"""hypercoil's elementary losses: mean squared error, norms, constraint violations, hinge and bimodal
symmetry."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Tuple

from torch import Tensor

from neuroreg._validation import check_bool, check_callable, check_callables, check_real_pair
from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional._common import Axes
from neuroreg.functional.basic import (
    bimodal_symmetric,
    constraint_violation,
    difference,
    hinge_loss,
    identity,
    unilateral_loss,
)
from neuroreg.losses._base import _ScalarisedLoss
from neuroreg.scalarise import Scalarisation, mean_scalarise, meansq_scalarise, sum_scalarise, vnorm_scalarise

__all__ = [
    "BimodalSymmetricLoss",
    "ConstraintViolationLoss",
    "HingeLoss",
    "MSELoss",
    "NormedLoss",
    "UnilateralLoss",
]


class MSELoss(_ScalarisedLoss):
    r"""Mean squared error (hypercoil's ``MSELoss``): the mean square of :func:`~neuroreg.functional.difference`.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\,(Y - \hat Y)^2

    Args:
        params: ``None`` to call it as ``loss(Y, Y_hat)``; or tensors to hold, each compared with ``target``
            when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        target: With ``params``: the fixed ``Y_hat`` (a buffer, broadcast against each held tensor).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.MSELoss()(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
        tensor(2.5000)
    """

    inputs = ("Y", "Y_hat")

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        target: Optional[Tensor] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, Lambda, score=difference, options={}, scalarisation=meansq_scalarise(), nu=nu, target=target,
            name=name, **kwargs,
        )


class NormedLoss(_ScalarisedLoss):
    r"""The :math:`L_p` norm of a score over ``axis``, reduced over the other axes by ``outer_scalarise``
    (hypercoil's ``NormedLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{outer}\big(\lVert f(X) \rVert_{p,\,\text{axis}}\big)
        \quad \text{(default: } \lVert X \rVert_2 \text{ of all elements)}

    Args:
        params: ``None`` to call it as ``loss(X)``; or parameters to hold, calling it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        score: A function of one tensor (default :func:`~neuroreg.functional.identity`).
        p: Order of the vector norm (``p=0`` counts nonzero elements, ``math.inf`` the largest magnitude).
        axis: Axis or axes the norm is taken over (flattened into one vector), ``None`` for all.
        outer_scalarise: The scalarisation map applied to the norms, as ``outer_scalarise(inner=...)``
            (default :func:`~neuroreg.scalarise.mean_scalarise`; with ``axis=None`` there is one norm).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> X = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
        >>> nr.NormedLoss()(X), nr.NormedLoss(p=2, axis=-1)(X)   # ‖X‖₂ = √26, mean of row norms (5 + 1) / 2
        (tensor(5.0990), tensor(3.))
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        score: Callable[[Tensor], Tensor] = identity,
        *,
        p: float = 2.0,
        axis: Optional[Axes] = None,
        outer_scalarise: Callable[..., Scalarisation] = mean_scalarise,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        score = check_callable("score", score)
        outer_scalarise = check_callable("outer_scalarise", outer_scalarise)
        scalarisation = outer_scalarise(inner=vnorm_scalarise(p=p, axis=axis))
        super().__init__(
            params, Lambda, score=score, options={}, scalarisation=scalarisation, nu=nu, name=name, **kwargs
        )
        # hypercoil's attributes (already checked by vnorm_scalarise).
        self.p, self.axis, self.outer_scalarise = p, axis, outer_scalarise


class ConstraintViolationLoss(_ScalarisedLoss):
    r"""Violation of constraints :math:`c_k(X) \le 0` (hypercoil's ``ConstraintViolationLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean} \max\big(0, c_1(X), \dots, c_K(X)\big)

    Args:
        params: ``None`` to call it as ``loss(X)``; or parameters to hold, calling it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        constraints: As in :func:`neuroreg.functional.constraint_violation` (required).
        broadcast_against_input: As in :func:`neuroreg.functional.constraint_violation`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> loss = nr.ConstraintViolationLoss(constraints=(lambda x: x - 1,))   # penalise X > 1
        >>> loss(torch.tensor([0.0, 3.0]))
        tensor(1.)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        constraints: Sequence[Callable[[Tensor], Tensor]],
        broadcast_against_input: bool = False,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "constraints": check_callables("constraints", constraints),
            "broadcast_against_input": check_bool("broadcast_against_input", broadcast_against_input),
        }
        super().__init__(
            params, Lambda, score=constraint_violation, options=options,
            scalarisation=scalarisation or mean_scalarise(), nu=nu, name=name, **kwargs,
        )


class UnilateralLoss(_ScalarisedLoss):
    r"""A soft nonpositivity constraint (hypercoil's ``UnilateralLoss``): penalises positive elements.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean} \max(X, 0)

    Args:
        params: ``None`` to call it as ``loss(X)``; or parameters to hold, calling it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.UnilateralLoss()(torch.tensor([-1.0, 2.0, 4.0, 0.0]))
        tensor(1.5000)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, Lambda, score=unilateral_loss, options={}, scalarisation=scalarisation or mean_scalarise(),
            nu=nu, name=name, **kwargs,
        )


class HingeLoss(_ScalarisedLoss):
    r"""The hinge loss of support vector machines (hypercoil's ``HingeLoss``).

    .. math::
        \mathcal{L} = \Lambda \sum \max(1 - Y \hat Y, 0)

    Args:
        params: ``None`` to call it as ``loss(Y_hat, Y)``; or predicted scores to hold, each compared with
            the labels ``target`` when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        target: With ``params``: the fixed labels ``Y`` in :math:`\{-1, 1\}` (a buffer).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``sum_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.HingeLoss()(torch.ones(5), torch.tensor([-1.0, 1.0, 1.0, -1.0, 1.0]))
        tensor(4.)
    """

    inputs = ("Y_hat", "Y")

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        target: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, Lambda, score=hinge_loss, options={}, scalarisation=scalarisation or sum_scalarise(), nu=nu,
            target=target, name=name, **kwargs,
        )


class BimodalSymmetricLoss(_ScalarisedLoss):
    r"""Distance from the nearer of two modes (hypercoil's ``BimodalSymmetricLoss``): concentrates weights
    at the modes.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean} \big|\, |X - \mu| - s \,\big|, \qquad
        \mu = \tfrac{m_1 + m_2}{2}, \; s = \max(m_1, m_2) - \mu

    Args:
        params: ``None`` to call it as ``loss(X)``; or parameters to hold, calling it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        modes: As in :func:`neuroreg.functional.bimodal_symmetric` (default ``(0, 1)``).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.BimodalSymmetricLoss(modes=(-1, 1))(torch.tensor([-1.0, 0.0, 0.5, 1.5]))
        tensor(0.5000)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        modes: Tuple[float, float] = (0, 1),
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, Lambda, score=bimodal_symmetric, options={"modes": check_real_pair("modes", modes)},
            scalarisation=scalarisation or mean_scalarise(), nu=nu, name=name, **kwargs,
        )
