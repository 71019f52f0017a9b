"""Entrywise Lp norms of a group of tensors, and their closed-form gradients."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from neuroreg._validation import check_bool, check_grads, check_real
from neuroreg.functional._common import promoted_dtype, wide_dtype
from neuroreg.functional._multi_tensor import (
    add_grad_widened_,
    add_sign_,
    as_tensor_list,
    foreach_mul,
    foreach_norm,
    full,
    group_by_device_and_dtype,
    is_small,
    nonempty,
    scaled_grads,
    sparse_grads_as_dense,
    sum_scalars,
)

__all__ = ["lp_norm", "lp_norm_add_grad_", "lp_norm_grad"]

Tensors = Union[Tensor, Iterable[Tensor]]


def _check_order(p: float, squared: bool) -> Tuple[float, bool]:
    """``p`` (a real > 0 or ``math.inf``) as a float and ``squared`` (a bool), checked."""
    return check_real("p", p, low=0, low_inclusive=False, allow_inf=True), check_bool("squared", squared)


#: Below this many entries the 1-norm is one reduction kernel (fewer launches under autograd); from it on,
#: |W| and a sum: the CPU's 1-norm reduction is not vectorized (862 µs against 139 µs for |W|.sum() at 1024²,
#: one thread), and at 256² L1's direct call measured 101 µs this way against 130 µs with the norm.
_ONE_KERNEL_1_NORM = 1 << 14


def _closed_form_is_cheaper(p: float, squared: bool) -> bool:
    """Whether :func:`lp_norm_add_grad_`'s closed form makes no more passes over memory than autograd's
    backward of :func:`lp_norm` (which reuses the forward's norms): for ``p=1`` and for squared ``p=2``."""
    return (p == 1 and not squared) or (p == 2 and squared)


def _check(tensors: Tensors, p: float, squared: bool) -> tuple:
    return (as_tensor_list("tensors", tensors), *_check_order(p, squared))


def lp_norm(tensors: Tensors, p: float = 1.0, *, squared: bool = False, dtype: Optional[torch.dtype] = None) -> Tensor:
    r"""Sum over tensors of their entrywise p-norm (optionally squared).

    .. math::
        \mathcal{L} = \sum_k \lVert W_k \rVert_p^{s}, \qquad
        \lVert W \rVert_p = \Big(\sum_{i} |w_i|^p\Big)^{1/p}, \quad s = 2 \text{ if squared else } 1

    The norm is taken over all elements of each tensor whatever its rank (``torch.linalg.vector_norm``),
    never a matrix norm: on a 2-D weight ``torch.linalg.norm(W, 2)`` would be the largest singular value.

    Args:
        tensors: A tensor or a sequence of floating-point tensors of any shapes.
        p: Order of the norm, a real > 0 or ``math.inf``.
        squared: Square each norm (``p=2, squared=True`` is the sum of squares, Keras' L2).
        dtype: The dtype of the returned value (default: the tensors' promoted dtype); e.g. float32 to keep a
            sum of float16 norms that exceeds 65504.

    Zero-element tensors contribute 0 (for every ``p``, ``inf`` included). float16 and bfloat16 tensors are
    reduced in float32 (a float16 norm above 65504 would otherwise be ``inf``), and the value is returned in
    ``dtype``. NaN or infinite entries make the value NaN or infinite.

    Returns:
        A 0-d tensor in ``dtype`` (a float zero for an empty sequence).

    Example:
        >>> lp_norm([torch.tensor([3.0, -4.0]), torch.tensor([[1.0, 0.0], [0.0, -1.0]])], p=1)
        tensor(9.)
        >>> lp_norm(torch.tensor([3.0, -4.0]), p=2, squared=True)
        tensor(25.)
    """
    return _lp_norm(*_check(tensors, p, squared), dtype)


def _lp_norm(tensors: List[Tensor], p: float, squared: bool, dtype: Optional[torch.dtype] = None) -> Tensor:
    """:func:`lp_norm` of checked arguments: what the modules call at every step."""
    if not tensors:
        return torch.zeros(())
    if dtype is None:
        dtype = promoted_dtype(*tensors)
    norms = []
    for group in group_by_device_and_dtype(nonempty(tensors)):
        ts = [tensors[i] for i in group]
        wide = wide_dtype(ts[0].dtype)
        if squared and p == 2 and wide == ts[0].dtype and is_small(ts):
            # Small tensors: a product and a sum per tensor cost fewer kernels under autograd than a norm and
            # its square (large ones keep the norm: one pass, no temporary).
            norms.extend((t * t).sum() for t in ts)
            continue
        if p == 1 and not is_small(ts, below=_ONE_KERNEL_1_NORM):
            # |W| then a sum: about 6x faster on CPU than the 1-norm reduction (not vectorized), for a temporary;
            # the smallest tensors keep the norm, one kernel fewer under autograd.
            group_norms = [full(t.abs().sum(dtype=wide)) for t in ts]
            norms.extend(foreach_mul(group_norms, group_norms) if squared else group_norms)
            continue
        # float16/bfloat16 tensors are copied to float32 first, rather than reduced with dtype=float32: the
        # backward of a widened _foreach_norm computes |w|^(p-1) in the narrow dtype, where it overflows.
        group_norms = foreach_norm([t.to(wide) for t in ts] if wide != ts[0].dtype else ts, p)
        norms.extend(foreach_mul(group_norms, group_norms) if squared else group_norms)
    if not norms:
        return tensors[0].new_zeros((), dtype=dtype)
    value = sum_scalars(norms)
    return value if value.dtype == dtype else value.to(dtype)


def lp_norm_add_grad_(
    grads: List[Tensor], tensors: Tensors, p: float = 1.0, *, squared: bool = False, alpha: float = 1.0
) -> None:
    r"""Add ``alpha`` times the gradient of :func:`lp_norm` to ``grads``, in place, without autograd.

    .. math::
        \frac{\partial \lVert W \rVert_p}{\partial W} =
        \operatorname{sign}(W) \circ \frac{|W|^{p-1}}{\lVert W \rVert_p^{p-1}}, \qquad
        \frac{\partial \lVert W \rVert_p^2}{\partial W} = 2 \lVert W \rVert_p
        \frac{\partial \lVert W \rVert_p}{\partial W}

    Where the norm is not differentiable the subgradient taken is autograd's: 0 at zero entries for every
    ``p`` (for ``p = 1`` that is ``sign(0) = 0``, the minimum-norm subgradient), 0 for an all-zero tensor,
    and for ``p = inf`` the unit subgradient shared equally among the entries that tie for the maximum.

    The common cases are one or two multi-tensor kernels per (device, dtype) group: ``p=2, squared`` adds
    ``2·alpha·W`` (exactly weight decay), ``p=1`` adds ``alpha·sign(W)``, ``p=2`` adds ``alpha·W/‖W‖`` (one
    norm pass and one fused multiply-add, with no temporary the size of the parameters). The gradients that
    need a norm are computed in float32 for float16/bfloat16 tensors and added in their dtype. Zero-element
    tensors are skipped.

    A sparse COO ``grads[k]`` (the ``.grad`` of an ``nn.Embedding(sparse=True)`` after the task's backward)
    stays sparse: it receives the gradient at its own indices only, the rows that a sparse optimizer such as
    ``torch.optim.SparseAdam`` updates (lazy regularization; see
    :func:`~neuroreg.functional._multi_tensor.sparse_grads_as_dense`).

    Args:
        grads: One tensor per input tensor, same shapes, updated in place (usually the ``.grad`` fields).
        tensors: The tensors the norm is taken of.
        p: Order of the norm, as in :func:`lp_norm`.
        squared: As in :func:`lp_norm`.
        alpha: Scale of the added gradient (the penalty weight).

    Example:
        >>> w = torch.tensor([3.0, -4.0]); g = torch.zeros(2)
        >>> lp_norm_add_grad_([g], [w], p=2, alpha=10.0); g
        tensor([ 6., -8.])
    """
    tensors, p, squared = _check(tensors, p, squared)
    check_grads(grads, tensors)
    with sparse_grads_as_dense(grads) as grads:
        _lp_norm_add_grad_(grads, tensors, p, squared, alpha)


def _lp_norm_add_grad_(grads: List[Tensor], tensors: List[Tensor], p: float, squared: bool, alpha: float) -> None:
    """:func:`lp_norm_add_grad_` of checked arguments and dense gradients."""
    with torch.no_grad():
        for group in group_by_device_and_dtype(nonempty(tensors)):
            ts = [tensors[i] for i in group]
            gs = [grads[i] for i in group]
            if p == 2 and squared:
                torch._foreach_add_(gs, ts, alpha=2 * alpha)
                continue
            if p == 1 and not squared:
                add_sign_(gs, ts, alpha)
                continue
            if wide_dtype(ts[0].dtype) != ts[0].dtype:
                # The same gradient on float32 copies, added back in the tensors' dtype.
                add_grad_widened_(lambda wgs, wts: _lp_norm_add_grad_(wgs, wts, p, squared, alpha), gs, ts)
                continue
            norms = torch._foreach_norm(ts, ord=p)
            if p == 2:
                # alpha·W/‖W‖ as one addcmul with a 0-d scale per tensor: no temporary the size of W. Clamping
                # the norm only matters for an all-zero tensor, whose gradient is then 0.
                scales = torch._foreach_reciprocal(torch._foreach_clamp_min(norms, torch.finfo(ts[0].dtype).tiny))
                torch._foreach_addcmul_(gs, ts, scales, value=alpha)
                continue
            directions = torch._foreach_sign(ts) if p == 1 else [_direction(t, n, p) for t, n in zip(ts, norms)]
            if squared:
                torch._foreach_addcmul_(gs, directions, torch._foreach_mul(norms, 2.0), value=alpha)
            else:
                torch._foreach_add_(gs, directions, alpha=alpha)


def _direction(tensor: Tensor, norm: Tensor, p: float) -> Tensor:
    """∂‖W‖_p/∂W for p ∉ {1, 2}, with autograd's choices where it is not differentiable."""
    if math.isinf(p):
        at_max = (tensor.abs() == norm) & (norm > 0)
        return tensor.sign() * at_max / at_max.sum().clamp_min(1)
    # (|w| / ‖W‖)^(p-1) <= 1, where |w|^(p-1) and ‖W‖^(p-1) apart could overflow (inf / inf = NaN).
    ratio = tensor.abs() / torch.where(norm > 0, norm, torch.ones_like(norm))
    return tensor.sign() * torch.where(tensor == 0, torch.zeros_like(tensor), ratio.pow(p - 1))


def lp_norm_grad(tensors: Tensors, p: float = 1.0, *, squared: bool = False) -> List[Tensor]:
    """The gradient of :func:`lp_norm` with respect to each tensor, in closed form (see
    :func:`lp_norm_add_grad_` for the formula and the subgradients chosen).

    Example:
        >>> lp_norm_grad([torch.tensor([0.5, 0.0, -2.0])], p=1)
        [tensor([ 1.,  0., -1.])]
    """
    tensors, p, squared = _check(tensors, p, squared)
    return _lp_norm_grad(tensors, p, squared, 1.0)


def _lp_norm_grad(
    tensors: List[Tensor], p: float, squared: bool, alpha: Union[float, Tensor], *, overwrite: bool = False
) -> List[Tensor]:
    """``alpha`` times :func:`lp_norm_grad` of checked arguments (``alpha`` a float, or a 0-d tensor: no host
    sync). ``p=1`` and squared ``p=2`` write the gradient directly, in one or two passes (no zero-filled buffer
    to add into), and with ``overwrite`` into ``tensors`` themselves (temporaries of the caller's)."""
    if not tensors:
        return []
    with torch.no_grad():
        if p == 1 and not squared:
            if overwrite:
                torch._foreach_sign_(tensors)
            grads = tensors if overwrite else list(torch._foreach_sign(tensors))
            torch._foreach_mul_(grads, alpha)
            return grads
        if p == 2 and squared:
            if overwrite:
                torch._foreach_mul_(tensors, alpha * 2)
                return tensors
            return list(torch._foreach_mul(tensors, alpha * 2))
    return scaled_grads(lambda grads, scale: _lp_norm_add_grad_(grads, tensors, p, squared, scale), tensors, alpha)
