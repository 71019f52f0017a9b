"""NeuroTorch's norms: ``torch.linalg.norm(W, ord)`` per tensor (a matrix norm of 2-D tensors, a vector norm of
1-D ones), of the tensors or of their distance to references, with closed-form gradients."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import List, Literal, Optional, Tuple, Union

import torch
from torch import Tensor

from neuroreg._validation import check_bool, check_grads, check_norm_ord
from neuroreg.functional._common import promoted_dtype, wide_dtype
from neuroreg.functional._multi_tensor import as_tensor_list
from neuroreg.functional.connectome import _with_references
from neuroreg.functional.lp import lp_norm_add_grad_

__all__ = [
    "matrix_norm",
    "matrix_norm_add_grad_",
    "matrix_norm_grad",
    "weights_matrix_distance",
    "weights_matrix_distance_add_grad_",
]

Tensors = Union[Tensor, Iterable[Tensor]]
Ord = Union[float, Literal["fro", "nuc"]]


def _check(tensors: Tensors, ord: Ord, squared: bool) -> Tuple[List[Tensor], Ord, bool]:
    tensors = as_tensor_list("tensors", tensors)
    ord = check_norm_ord("ord", ord, [t.shape for t in tensors])
    return tensors, ord, check_bool("squared", squared)


def _norm(tensor: Tensor, ord: Ord) -> Tensor:
    """``torch.linalg.norm(tensor, ord)`` in the tensor's wide dtype (float32 for float16/bfloat16)."""
    return torch.linalg.norm(tensor.to(wide_dtype(tensor.dtype)), ord)


def _sum_of_norms(tensors: List[Tensor], ord: Ord, squared: bool, dtype: Optional[torch.dtype]) -> Tensor:
    if dtype is None:
        dtype = promoted_dtype(*tensors) if tensors else torch.get_default_dtype()
    norms = [_norm(t, ord) for t in tensors if t.numel() > 0]
    if not norms:
        return torch.zeros((), dtype=dtype, device=tensors[0].device if tensors else None)
    total = sum(n * n for n in norms) if squared else sum(norms)
    return total.to(dtype)


def matrix_norm(
    tensors: Tensors, ord: Ord = 2, *, squared: bool = False, dtype: Optional[torch.dtype] = None
) -> Tensor:
    r"""Sum over tensors of ``torch.linalg.norm(W, ord)``: NeuroTorch's ``Lp`` penalty.

    .. math::
        \mathcal{L} = \sum_k \lVert W_k \rVert_{\text{ord}}^{s}, \qquad s = 2 \text{ if squared else } 1

    For a 2-D tensor the norm is a *matrix* norm: ``ord=1`` the largest absolute column sum, ``inf`` the
    largest absolute row sum (``-1``, ``-inf`` the smallest), ``2`` the largest singular value (``-2`` the
    smallest), ``"fro"`` the Frobenius norm, ``"nuc"`` the sum of singular values. For a 1-D tensor it is the
    vector norm of that order (any real). Other ranks have no such norm and are refused, as by
    ``torch.linalg.norm``; zero-element tensors contribute 0.

    Args:
        tensors: A tensor or a sequence of 1-D and 2-D floating-point tensors.
        ord: The order: one of ``1, 2, inf, -1, -2, -inf, "fro", "nuc"`` for 2-D tensors, a real for 1-D ones.
        squared: Square each norm.
        dtype: The dtype of the value (default: the tensors' promoted dtype). float16/bfloat16 tensors are
            reduced in float32.

    Returns:
        A 0-d tensor.

    Example:
        >>> w = torch.tensor([[3.0, 0.0], [0.0, -4.0]])
        >>> matrix_norm([w], 2), matrix_norm([w], 1), matrix_norm([w], "nuc"), matrix_norm([w[0]], 1)
        (tensor(4.), tensor(4.), tensor(7.), tensor(3.))
    """
    tensors, ord, squared = _check(tensors, ord, squared)
    return _sum_of_norms(tensors, ord, squared, dtype)


def _extreme_weights(values: Tensor, largest: bool) -> Tuple[Tensor, Tensor]:
    """The max (or min) of ``values`` and weights summing to 1, shared equally among the entries that tie for
    it (the subgradient autograd takes through ``amax``/``amin``)."""
    extreme = values.max() if largest else values.min()
    at = (values == extreme).to(values.dtype)
    return extreme, at / at.sum()


def _norm_and_direction(tensor: Tensor, ord: Ord) -> Tuple[Tensor, Tensor]:
    """``‖W‖_ord`` and ``∂‖W‖_ord/∂W`` (autograd's subgradients), in the wide dtype."""
    t = tensor.to(wide_dtype(tensor.dtype))
    if t.ndim == 1 or ord == "fro":
        if ord == "fro" or ord > 0:
            direction = torch.zeros_like(t)
            lp_norm_add_grad_([direction], [t], 2.0 if ord == "fro" else ord)
            return torch.linalg.norm(t, ord), direction
        # Orders <= 0 of a vector (harmonic-like means, counts): autograd of torch.linalg.vector_norm.
        with torch.enable_grad():
            leaf = t.detach().requires_grad_(True)
            norm = torch.linalg.vector_norm(leaf, ord)
            # ord=0 (the count of nonzero entries) has no path back to the entries: gradient 0.
            (direction,) = torch.autograd.grad(norm, leaf, allow_unused=True, materialize_grads=True)
        return norm.detach(), direction
    if ord in (1, -1, math.inf, -math.inf):
        # Column sums for ±1 (reduced over rows), row sums for ±inf; the extreme one's signs.
        dim = 0 if abs(ord) == 1 else 1
        norm, weights = _extreme_weights(t.abs().sum(dim=dim), largest=ord > 0)
        return norm, t.sign() * weights.unsqueeze(dim)
    u, s, vh = torch.linalg.svd(t, full_matrices=False)
    if ord == "nuc":
        return s.sum(), u @ vh
    norm, weights = _extreme_weights(s, largest=ord == 2)
    return norm, (u * weights) @ vh


def _add_norm_grads_(grads: List[Tensor], tensors: List[Tensor], ord: Ord, squared: bool, alpha: float,
                     signs: Optional[List[Tensor]] = None) -> None:
    """Add ``alpha * ∂‖W_k‖^s/∂W_k`` (times ``signs[k]`` entrywise, the chain rule through an ``abs``)."""
    for index, (grad, tensor) in enumerate(zip(grads, tensors)):
        if tensor.numel() == 0:
            continue
        norm, direction = _norm_and_direction(tensor, ord)
        if squared:
            direction = direction * (2 * norm)
        if signs is not None:
            direction = direction * signs[index]
        grad.add_(direction.to(grad.dtype), alpha=alpha)


def matrix_norm_add_grad_(
    grads: List[Tensor], tensors: Tensors, ord: Ord = 2, *, squared: bool = False, alpha: float = 1.0
) -> None:
    r"""Add ``alpha`` times the gradient of :func:`matrix_norm` to ``grads``, in place, without a graph.

    .. math::
        \frac{\partial \lVert W \rVert_1}{\partial W_{ij}} = \operatorname{sign}(W_{ij})\,[j = j^*], \qquad
        \frac{\partial \lVert W \rVert_2}{\partial W} = u_1 v_1^\top, \qquad
        \frac{\partial \lVert W \rVert_*}{\partial W} = U V^\top

    (``inf`` and ``-1``, ``-inf`` as ``1`` on rows or the smallest sum, ``-2`` with the smallest singular
    pair, ``"fro"`` :math:`W/\lVert W \rVert_F`, 1-D tensors as :func:`~neuroreg.functional.lp_norm_add_grad_`.)
    Where several columns, rows or singular values tie for the extreme, the gradient is shared equally among
    them, and a zero entry has subgradient 0: autograd's choices through ``torch.linalg.norm``, so the result
    equals NeuroTorch's gradient. The SVD-based orders cost one SVD per tensor (that of the value); the vector
    orders <= 0 of 1-D tensors are differentiated by autograd.

    Args:
        grads: One tensor per input tensor, same shapes, updated in place.
        tensors: The tensors, as in :func:`matrix_norm`.
        ord: As in :func:`matrix_norm`.
        squared: As in :func:`matrix_norm`.
        alpha: Scale of the added gradient.

    Example:
        >>> w = torch.tensor([[3.0, 0.0], [0.0, -4.0]]); g = torch.zeros(2, 2)
        >>> matrix_norm_add_grad_([g], [w], 2); g
        tensor([[ 0.,  0.],
                [ 0., -1.]])
    """
    tensors, ord, squared = _check(tensors, ord, squared)
    check_grads(grads, tensors)
    with torch.no_grad():
        _add_norm_grads_(list(grads), tensors, ord, squared, alpha)


def matrix_norm_grad(tensors: Tensors, ord: Ord = 2, *, squared: bool = False) -> List[Tensor]:
    """The gradient of :func:`matrix_norm` with respect to each tensor (see :func:`matrix_norm_add_grad_`).

    Example:
        >>> matrix_norm_grad([torch.tensor([[1.0, -2.0], [3.0, 0.5]])], 1)
        [tensor([[1., 0.],
                [1., 0.]])]
    """
    tensors = as_tensor_list("tensors", tensors)
    grads = [torch.zeros_like(t) for t in tensors]
    matrix_norm_add_grad_(grads, tensors, ord, squared=squared)
    return grads


def weights_matrix_distance(
    tensors: Tensors, references: Tensors, ord: Ord = 1, *, squared: bool = False
) -> Tensor:
    r"""NeuroTorch's ``WeightsDistance``: the sum over tensors of ``torch.linalg.norm(|W - W_ref|, ord)``.

    .. math::
        \mathcal{L} = \sum_k \big\lVert\, |W_k - W_{k,\text{ref}}| \,\big\rVert_{\text{ord}}^{s}

    The absolute value is taken entrywise before the norm, as NeuroTorch does: it changes nothing for the
    orders ``±1``, ``±inf``, ``"fro"`` and vector norms, but ``2``, ``-2`` and ``"nuc"`` are the singular
    values of the matrix of absolute differences, not of the differences.

    Args:
        tensors: 1-D and 2-D floating-point tensors.
        references: One reference per tensor, same shape.
        ord: As in :func:`matrix_norm`.
        squared: Square each norm.

    Returns:
        A 0-d tensor >= 0.

    Example:
        >>> weights_matrix_distance([torch.tensor([[1.0, -1.0], [1.0, 1.0]])], [torch.zeros(2, 2)], 2)
        tensor(2.)
    """
    tensors, references = _with_references("references", tensors, references)
    ord = check_norm_ord("ord", ord, [t.shape for t in tensors])
    squared = check_bool("squared", squared)
    return _sum_of_norms([(t - r).abs() for t, r in zip(tensors, references)], ord, squared, None)


def weights_matrix_distance_add_grad_(
    grads: List[Tensor], tensors: Tensors, references: Tensors, ord: Ord = 1, alpha: float = 1.0, *,
    squared: bool = False,
) -> None:
    r"""Add ``alpha`` times the gradient of :func:`weights_matrix_distance` to ``grads``, in place:
    :math:`\operatorname{sign}(D) \circ \partial\lVert A \rVert/\partial A` at :math:`A = |D|`,
    :math:`D = W - W_\text{ref}` (0 where a weight equals its reference), with the subgradients of
    :func:`matrix_norm_add_grad_`.

    Example:
        >>> g = torch.zeros(1, 2)
        >>> weights_matrix_distance_add_grad_([g], [torch.tensor([[1.0, -2.0]])], [torch.zeros(1, 2)], 1); g
        tensor([[ 0., -1.]])
    """
    tensors, references = _with_references("references", tensors, references)
    ord = check_norm_ord("ord", ord, [t.shape for t in tensors])
    squared = check_bool("squared", squared)
    check_grads(grads, tensors)
    with torch.no_grad():
        differences = [t - r for t, r in zip(tensors, references)]
        _add_norm_grads_(list(grads), [d.abs() for d in differences], ord, squared, alpha,
                         signs=[d.sign() for d in differences])
