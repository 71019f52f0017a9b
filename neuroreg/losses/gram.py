"""hypercoil's Gram-determinant losses."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Optional

import torch
from torch import Tensor

from neuroreg._validation import check_floating_tensor
from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional.gram import Kernel, corr_kernel, det_gram, log_det_gram
from neuroreg.functional.gram import _options as gram_options
from neuroreg.losses._base import _ScalarisedLoss
from neuroreg.scalarise import Scalarisation, mean_scalarise

__all__ = ["GramDeterminantLoss", "GramLogDeterminantLoss"]


class _GramLoss(_ScalarisedLoss):
    """The options and construction shared by the two Gram-determinant losses; ``theta`` is a buffer."""

    _score: ClassVar[Callable[..., Tensor]]

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        op: Kernel = corr_kernel,
        theta: Optional[Tensor] = None,
        psi: float = 0.0,
        xi: float = 0.0,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        op, psi, xi = gram_options(op=op, psi=psi, xi=xi)
        theta = None if theta is None else check_floating_tensor("theta", theta).detach()
        super().__init__(
            params, Lambda, score=type(self)._score, options={"op": op, "psi": psi, "xi": xi},
            scalarisation=scalarisation or mean_scalarise(), nu=nu, name=name, **kwargs,
        )
        self.register_buffer("theta", theta)
        if self.params and theta is not None:
            # The construction-time check ran before theta was registered: check it with theta now.
            with torch.no_grad():
                self.forward()

    def _scalar(self, *inputs: Tensor) -> Tensor:
        # theta is the score's second positional argument, as in hypercoil (None until it is registered).
        return super()._scalar(*inputs, self._buffers.get("theta"))


class GramDeterminantLoss(_GramLoss):
    r"""Negative determinant of the Gram matrix (hypercoil's ``GramDeterminantLoss``).

    .. math::
        \mathcal{L} = -\Lambda \, \operatorname{mean} \det\big(K_\theta(X) + \psi I\big)

    Args:
        params: ``None`` to call it as ``loss(X)`` on ``(*, N, T)`` tensors; or parameters to hold, calling
            it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        op: As in :func:`neuroreg.functional.det_gram` (default :func:`~neuroreg.functional.corr_kernel`).
        theta: The kernel parameter (a buffer), or ``None``.
        psi: As in :func:`neuroreg.functional.det_gram`.
        xi: As in :func:`neuroreg.functional.det_gram` (the noise comes from torch's global generator).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> from neuroreg.functional import linear_kernel
        >>> nr.GramDeterminantLoss(op=linear_kernel, psi=1.0)(torch.eye(3))   # -det(2 I)
        tensor(-8.)
    """

    _score = staticmethod(det_gram)


class GramLogDeterminantLoss(_GramLoss):
    r"""Negative log-determinant of the Gram matrix (hypercoil's ``GramLogDeterminantLoss``): with the
    default correlation kernel it favours uncorrelated (independent) rows.

    .. math::
        \mathcal{L} = -\Lambda \, \operatorname{mean} \log \big|\det\big(K_\theta(X) + \psi I\big)\big|

    Args:
        params: ``None`` to call it as ``loss(X)`` on ``(*, N, T)`` tensors; or parameters to hold, calling
            it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        op: As in :func:`neuroreg.functional.log_det_gram`.
        theta: The kernel parameter (a buffer), or ``None``.
        psi: As in :func:`neuroreg.functional.log_det_gram`.
        xi: As in :func:`neuroreg.functional.log_det_gram`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> time_series = torch.nn.Parameter(torch.tensor([[1.0, -1.0, 0.0, 0.0], [1.0, -1.0, 1.0, -1.0]]))
        >>> nr.GramLogDeterminantLoss(time_series)()                     # correlation 1/sqrt(2): -log(1/2)
        tensor(0.6931, grad_fn=<MulBackward0>)
    """

    _score = staticmethod(log_det_gram)
