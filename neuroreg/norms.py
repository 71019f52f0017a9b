"""Lp, L1 and L2 penalties on parameters (entrywise norms)."""

from __future__ import annotations

from typing import Any, List, Union

import torch
from torch import Tensor, nn

from neuroreg._validation import check_bool, check_real
from neuroreg.base import BaseRegularization, ParamsLike
from neuroreg.functional.lp import lp_norm, lp_norm_add_grad_

__all__ = ["L1", "L2", "Lp"]


class Lp(BaseRegularization):
    r"""Sum over parameters of their entrywise p-norm.

    .. math::
        \mathcal{L} = \Lambda \sum_k \lVert W_k \rVert_p^{s}, \qquad s = 2 \text{ if squared else } 1

    Unlike NeuroTorch's ``Lp`` (``torch.linalg.norm(W, p)``, a *matrix* norm on 2-D weights — largest
    column sum for ``p=1``, largest singular value for ``p=2`` — and an error on 3-D conv weights), the norm
    is taken over all elements of each tensor, whatever its rank. 0-d parameters and parameters with
    ``requires_grad=False`` are not regularized, as in NeuroTorch.

    Args:
        params: What to regularize (see :class:`~neuroreg.BaseRegularization`).
        Lambda: Weight of the penalty.
        p: Order of the norm: a real > 0 or ``math.inf``.
        squared: Square each norm (``L2(..., squared=True)`` is the sum of squares: weight decay of
            ``2 * Lambda`` under SGD).
        **kwargs: ``optimizer``, ``name``, ``include``, ``exclude``, ``priority``, ``save_state``,
            ``load_state`` (see :class:`~neuroreg.BaseRegularization`).

    Example:
        >>> import torch, neuroreg as nr
        >>> w = torch.nn.Parameter(torch.tensor([[3.0, 0.0], [0.0, -4.0]]))
        >>> nr.Lp([w], p=2)()      # entrywise (Frobenius) norm, not the spectral norm 4
        tensor(5., grad_fn=<MulBackward0>)
    """

    closed_form_grad = True

    def __init__(
        self, params: ParamsLike, Lambda: float = 1.0, p: float = 1, *, squared: bool = False, **kwargs: Any
    ) -> None:
        p = check_real("p", p, low=0, low_inclusive=False, allow_inf=True)
        squared = check_bool("squared", squared)
        super().__init__(params, Lambda, **kwargs)
        self.p = p
        self.squared = squared

    def regularized_parameters(self) -> List[nn.Parameter]:
        return [param for param in super().regularized_parameters() if param.ndim > 0]

    def forward(self) -> Tensor:
        params = self.regularized_parameters()
        if not params:
            return self._zero()
        return lp_norm(params, self.p, squared=self.squared)

    def _add_penalty_grad_(self, params: List[Tensor], grads: List[Tensor], alpha: float) -> None:
        lp_norm_add_grad_(grads, params, self.p, squared=self.squared, alpha=alpha)

    def _closed_form_grads(self, params: List[Tensor], alpha: Union[float, Tensor]) -> List[Tensor]:
        if self.p == 2 and self.squared:
            # 2·alpha·W in one pass (the generic path would zero, add and scale: three).
            with torch.no_grad():
                return list(torch._foreach_mul(params, alpha * 2))
        return super()._closed_form_grads(params, alpha)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p:g}, squared={self.squared}"


class L1(Lp):
    r"""Sum of absolute values of the parameters' entries: :class:`Lp` with ``p=1``.

    .. math:: \mathcal{L} = \Lambda \sum_k \sum_i |w_{k,i}|

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.L1([torch.nn.Parameter(torch.tensor([1.0, -2.0]))], Lambda=0.5)()
        tensor(1.5000, grad_fn=<MulBackward0>)
    """

    def __init__(self, params: ParamsLike, Lambda: float = 1.0, **kwargs: Any) -> None:
        super().__init__(params, Lambda, p=1, **kwargs)


class L2(Lp):
    r"""Sum of the parameters' entrywise 2-norms (or of their squares): :class:`Lp` with ``p=2``.

    .. math:: \mathcal{L} = \Lambda \sum_k \lVert W_k \rVert_2^{s}, \qquad s = 2 \text{ if squared else } 1

    Example:
        >>> import torch, neuroreg as nr
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
        >>> nr.L2([w])(), nr.L2([w], squared=True)()
        (tensor(5., grad_fn=<MulBackward0>), tensor(25., grad_fn=<MulBackward0>))
    """

    def __init__(self, params: ParamsLike, Lambda: float = 1.0, *, squared: bool = False, **kwargs: Any) -> None:
        super().__init__(params, Lambda, p=2, squared=squared, **kwargs)
