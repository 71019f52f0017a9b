"""Bregman divergences induced by a convex function (hypercoil's ``bregman_divergence`` and
``bregman_divergence_logit``)."""

from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import Tensor

from neuroreg._validation import check_broadcastable, check_callable, check_floating_tensor, check_int
from neuroreg.functional._common import compute_dtype, softmax

__all__ = ["bregman_divergence", "bregman_divergence_logit"]


def bregman_divergence(X: Tensor, Y: Tensor, *, f: Callable[[Tensor], Tensor], f_dim: int) -> Tensor:
    r"""Bregman divergence of ``Y`` from ``X`` induced by the convex function ``f`` of the last ``f_dim``
    axes, for every slice along the other (outer) axes.

    .. math::
        D_f(X, Y) = f(Y) - f(X) - \langle \nabla f(X),\, Y - X \rangle

    :math:`\nabla f` is taken by ``torch.func.grad`` and mapped over the outer axes by ``torch.func.vmap``
    (hypercoil's ``jax.grad`` and ``vmap_over_outer``), so ``f`` sees one slice at a time and must return a
    0-d tensor. ``f(x) = ‖x‖²`` gives the squared Euclidean distance; the negative entropy
    :math:`\sum x \log x`, the KL divergence of normalised inputs.

    Args:
        X: Floating-point tensor ``(*, D_1, ..., D_f_dim)``.
        Y: Of a shape that broadcasts with ``X``'s.
        f: Convex function of one ``(D_1, ..., D_f_dim)`` slice, returning a 0-d tensor.
        f_dim: Number of trailing axes that ``f`` takes, >= 1.

    Returns:
        The broadcast outer shape ``(*,)``, in the promoted dtype of ``X`` and ``Y``.

    Example:
        >>> X, Y = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[1.0, 0.0], [3.0, 4.0]])
        >>> bregman_divergence(X, Y, f=lambda x: x.square().sum(), f_dim=1)   # ‖X - Y‖² per row
        tensor([ 4., 25.])
    """
    check_floating_tensor("X", X)
    check_floating_tensor("Y", Y)
    shape = check_broadcastable("X", X, "Y", Y)
    f = check_callable("f", f)
    f_dim = check_int("f_dim", f_dim, low=1)
    if f_dim > len(shape):
        raise ValueError(f"f_dim must be at most the number of axes of X and Y ({len(shape)}), got {f_dim}")
    dtype, out_dtype = compute_dtype(X, Y), torch.promote_types(X.dtype, Y.dtype)
    outer, core = shape[: len(shape) - f_dim], shape[len(shape) - f_dim :]
    X, Y = (tensor.to(dtype).broadcast_to(shape).reshape(-1, *core) for tensor in (X, Y))
    values = torch.func.vmap(functools.partial(_bregman_one, f))(X, Y)
    return values.reshape(outer).to(out_dtype)


def _bregman_one(f: Callable[[Tensor], Tensor], x: Tensor, y: Tensor) -> Tensor:
    grad_x, f_x = torch.func.grad_and_value(f)(x)
    return f(y) - f_x - (grad_x * (y - x)).sum()


def bregman_divergence_logit(X: Tensor, Y: Tensor, *, f: Callable[[Tensor], Tensor], f_dim: int) -> Tensor:
    r""":func:`bregman_divergence` between the softmaxes of the logits ``X`` and ``Y`` over their last
    ``f_dim`` axes (one softmax over all of them jointly, as hypercoil's).

    .. math::
        D_f\big(\operatorname{softmax}(X), \operatorname{softmax}(Y)\big)

    Args:
        X: Logits, floating point.
        Y: Logits, of a shape that broadcasts with ``X``'s.
        f: As in :func:`bregman_divergence`.
        f_dim: As in :func:`bregman_divergence`; also the axes of the softmax.

    Returns:
        As :func:`bregman_divergence`.

    Example:
        >>> sq = lambda p: p.square().sum()
        >>> bregman_divergence_logit(torch.zeros(2), torch.tensor([0.0, 1e4]), f=sq, f_dim=1)   # ‖(½,½)-(0,1)‖²
        tensor(0.5000)
    """
    check_floating_tensor("X", X)
    check_floating_tensor("Y", Y)
    f_dim = check_int("f_dim", f_dim, low=1)
    for name, tensor in (("X", X), ("Y", Y)):
        if f_dim > tensor.ndim:
            raise ValueError(f"f_dim must be at most the number of axes of {name} ({tensor.ndim}), got {f_dim}")
    dtype = compute_dtype(X, Y)
    P, Q = (softmax(tensor, tuple(range(tensor.ndim - f_dim, tensor.ndim)), dtype) for tensor in (X, Y))
    return bregman_divergence(P, Q, f=f, f_dim=f_dim).to(torch.promote_types(X.dtype, Y.dtype))
