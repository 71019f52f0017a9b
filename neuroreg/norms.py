"""Lp, L1 and L2 penalties on parameters (entrywise norms)."""

from __future__ import annotations

from typing import Any, List, Literal, Union

from torch import Tensor, nn

from neuroreg._validation import (
    check_bool,
    check_norm_and_order,
    check_norm_ord,
    check_reduction,
    check_update,
    order_text,
)
from neuroreg.base import BaseRegularization, ParamsLike
from neuroreg.functional.lp import _closed_form_is_cheaper, _lp_norm, _lp_norm_add_grad_, _lp_norm_grad
from neuroreg.functional.matrix_norms import Ord, matrix_norm, matrix_norm_add_grad_
from neuroreg.functional.prox import l1_prox_, squared_l2_decay_, squared_l2_prox_
from neuroreg.updates import PenaltyUpdates, Reduction, Update, norm_updates

__all__ = ["L1", "L2", "Lp"]


class Lp(PenaltyUpdates, BaseRegularization):
    r"""Sum over parameters of their entrywise p-norm.

    .. math::
        \mathcal{L} = \Lambda \sum_k c_k \lVert W_k \rVert_p^{s}, \qquad s = 2 \text{ if squared else } 1,
        \qquad c_k = 1 \text{ (sum) or } 1/|W_k| \text{ (mean)}

    By default (``norm="entrywise"``) the norm is taken over all elements of each tensor, whatever its rank.
    NeuroTorch's ``Lp`` is ``torch.linalg.norm(W, p)``, a *matrix* norm on 2-D weights (largest column sum
    for ``p=1``, largest singular value for ``p=2``): ``norm="matrix"`` gives that value and its gradient
    (:func:`~neuroreg.functional.matrix_norm`; a 1-D tensor takes the vector norm, a tensor of another rank is
    refused at construction, as ``torch.linalg.norm`` refuses it). 0-d parameters and parameters with
    ``requires_grad=False`` are not regularized, as in NeuroTorch.

    Args:
        params: What to regularize (see :class:`~neuroreg.BaseRegularization`).
        Lambda: Weight of the penalty.
        p: Order of the norm: a real > 0 or ``math.inf``; with ``norm="matrix"``, one of ``1, 2, inf, -1,
            -2, -inf, "fro", "nuc"`` for 2-D tensors (any real for 1-D ones).
        squared: Square each norm (``L2(..., squared=True)`` is the sum of squares: weight decay of
            ``2 * Lambda`` under SGD).
        norm: ``"entrywise"`` (default) or ``"matrix"`` (``torch.linalg.norm(W, p)`` per tensor, NeuroTorch's
            value; gradients in closed form, one SVD per tensor for ``2``, ``-2``, ``"nuc"``; only
            ``update="gradient"``).
        update: How the penalty acts when attached to an optimizer (see
            :class:`~neuroreg.updates.PenaltyUpdates`): ``"gradient"`` (default), ``"proximal"`` (``p=1``:
            soft-thresholding, exact zeros; ``p=2, squared``: shrinkage :math:`W/(1 + 2\eta\Lambda c_k)`)
            or ``"decoupled"`` (``p=2, squared``: AdamW-style decay). Others are a ``ValueError``.
        reduction: ``"sum"`` (default) or ``"mean"``: each tensor's norm (squared, if so) divided by its
            number of entries, so ``L1(..., reduction="mean")`` is the mean absolute weight per tensor and
            ``L2(..., squared=True, reduction="mean")`` the mean square.
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
        self,
        params: ParamsLike,
        Lambda: float = 1.0,
        p: float = 1,
        *,
        squared: bool = False,
        update: Update = "gradient",
        reduction: Reduction = "sum",
        norm: Literal["entrywise", "matrix"] = "entrywise",
        **kwargs: Any,
    ) -> None:
        norm, p = check_norm_and_order(norm, p)
        squared = check_bool("squared", squared)
        update = check_update(f"{type(self).__name__}(p={order_text(p)}, squared={squared}, norm={norm!r})", update,
                              norm_updates(p, squared) if norm == "entrywise" else ("gradient",),
                              kwargs.get("optimizer"))
        reduction = check_reduction(reduction)
        super().__init__(params, Lambda, **kwargs)
        if norm == "matrix":
            check_norm_ord("p", p, [param.shape for param in self.params if param.ndim > 0])
        self.norm = norm
        self.p: Ord = p
        self.squared = squared
        self._init_penalty_updates(update, reduction)

    @property
    def _closed_form_backward(self) -> bool:
        # For the other norms autograd's backward reuses the norm of the forward pass: fewer passes.
        return self.norm == "entrywise" and _closed_form_is_cheaper(self.p, self.squared)

    def regularized_parameters(self) -> List[nn.Parameter]:
        return [param for param in super().regularized_parameters() if param.ndim > 0]

    def _penalty_value(self, params: List[Tensor]) -> Tensor:
        return self._reduced(self._norm, params) if params else self._zero()

    def _norm(self, params: List[Tensor]) -> Tensor:
        if self.norm == "matrix":
            return matrix_norm(params, self.p, squared=self.squared)
        return _lp_norm(params, self.p, self.squared)

    def _add_penalty_grad_(self, params: List[Tensor], grads: List[Tensor], alpha: float) -> None:
        self._reduced_add_grad_(self._add_norm_grad_, grads, params, alpha=alpha)

    def _add_norm_grad_(self, grads: List[Tensor], params: List[Tensor], alpha: float) -> None:
        if self.norm == "matrix":
            matrix_norm_add_grad_(grads, params, self.p, squared=self.squared, alpha=alpha)
        else:
            _lp_norm_add_grad_(grads, params, self.p, self.squared, alpha)

    def _prox_(self, params: List[Tensor], steps: List[float]) -> None:
        (l1_prox_ if self.p == 1 else squared_l2_prox_)(params, steps)

    def _decay_(self, params: List[Tensor], steps: List[float]) -> None:
        squared_l2_decay_(params, steps)

    def _closed_form_grads(self, params: List[Tensor], alpha: Union[float, Tensor]) -> List[Tensor]:
        if self.norm == "entrywise" and self.reduction == "sum":
            return _lp_norm_grad(params, self.p, self.squared, alpha)
        return super()._closed_form_grads(params, alpha)

    def extra_repr(self) -> str:
        norm = ", norm='matrix'" if self.norm == "matrix" else ""
        return f"{super().extra_repr()}, p={order_text(self.p)}, squared={self.squared}{norm}{self._modes_repr()}"


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
