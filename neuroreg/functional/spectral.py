"""Spectral-norm penalties: the largest singular value of weight matrices, by persistent power iteration
(as ``torch.nn.utils.parametrizations.spectral_norm``) or by SVD, with closed-form gradients."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from neuroreg._validation import check_grads, check_int, check_matrix
from neuroreg.functional._common import wide_dtype
from neuroreg.functional.matrix_norms import _norm_and_direction

__all__ = [
    "power_iteration",
    "spectral_hinge",
    "spectral_norm_estimate",
    "spectral_penalty_add_grad_",
    "spectral_penalty_exact_add_grad_",
]


def _normalize(x: Tensor, eps: float) -> Tensor:
    return x / x.norm().clamp_min(eps)


def power_iteration(
    weight: Tensor, u: Tensor, v: Tensor, n_iterations: int = 1, *, eps: float = 1e-12
) -> Tuple[Tensor, Tensor]:
    r"""``n_iterations`` steps of the power iteration for the top singular pair of ``weight``, from ``(u, v)``.

    .. math:: v \leftarrow \frac{W^\top u}{\lVert W^\top u \rVert}, \qquad u \leftarrow \frac{W v}{\lVert W v \rVert}

    The order and normalization of ``torch.nn.utils.parametrizations.spectral_norm``. Each step costs two
    matrix-vector products; the error in :math:`\sigma_{\max}` shrinks by :math:`(\sigma_2/\sigma_1)^2` a step,
    so one step per optimizer step keeps the estimate converged while the weights move slowly.

    Args:
        weight: A matrix, shape ``(m, n)``.
        u: Left vector, shape ``(m,)``.
        v: Right vector, shape ``(n,)``.
        n_iterations: Number of steps, >= 0.
        eps: Floor of the norms divided by (a zero matrix keeps zero vectors finite).

    Returns:
        New ``(u, v)`` (unit vectors, no graph), in ``u``'s dtype; float16/bfloat16 are iterated in float32.

    Example:
        >>> w = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
        >>> u, v = power_iteration(w, torch.tensor([0.6, 0.8]), torch.tensor([0.6, 0.8]), 20)
        >>> spectral_norm_estimate(w, u, v)
        tensor(3.)
    """
    weight = check_matrix("weight", weight)
    n_iterations = check_int("n_iterations", n_iterations, low=0)
    dtype = wide_dtype(weight.dtype)
    with torch.no_grad():
        w = weight.to(dtype)
        u_, v_ = u.to(dtype), v.to(dtype)
        for _ in range(n_iterations):
            v_ = _normalize(w.t() @ u_, eps)
            u_ = _normalize(w @ v_, eps)
    return u_.to(u.dtype), v_.to(v.dtype)


def spectral_norm_estimate(weight: Tensor, u: Tensor, v: Tensor) -> Tensor:
    r""":math:`\sigma = u^\top W v`, the spectral norm of ``weight`` estimated from singular vectors ``u``, ``v``
    (held constant: the gradient is :math:`u v^\top`, exact at the power iteration's fixed point).

    Example:
        >>> spectral_norm_estimate(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([1.0, 0.0]),
        ...                        torch.tensor([1.0, 0.0]))
        tensor(2.)
    """
    return torch.dot(u.detach().to(weight.dtype), weight @ v.detach().to(weight.dtype))


def spectral_hinge(sigmas: Sequence[Tensor], target: Optional[float] = None) -> Tensor:
    r"""The penalty of the spectral norms :math:`\sigma_k`: their sum, or with ``target`` the squared hinge.

    .. math::
        \mathcal{L} = \sum_k \sigma_k \quad\text{or}\quad \mathcal{L} = \sum_k \max(\sigma_k - t, 0)^2

    The hinge leaves weights with :math:`\sigma_{\max} \le t` untouched (e.g. :math:`t = 1` for stable
    recurrent dynamics) instead of shrinking every matrix.

    Example:
        >>> spectral_hinge([torch.tensor(3.0), torch.tensor(0.5)]), spectral_hinge([torch.tensor(3.0)], 1.0)
        (tensor(3.5000), tensor(4.))
    """
    sigmas = torch.stack(list(sigmas))
    return sigmas.sum() if target is None else (sigmas - target).clamp_min(0).square().sum()


def spectral_penalty_add_grad_(
    grads: List[Tensor],
    sigmas: Sequence[Tensor],
    us: Sequence[Tensor],
    vs: Sequence[Tensor],
    target: Optional[float] = None,
    alpha: float = 1.0,
) -> None:
    r"""Add ``alpha`` times the gradient of :func:`spectral_hinge` to ``grads``, in place, given each matrix's
    spectral norm and top singular pair (:math:`\partial\sigma/\partial W = u v^\top`):

    .. math::
        \frac{\partial \mathcal{L}}{\partial W_k} = c_k\, u_k v_k^\top, \qquad
        c_k = 1 \quad\text{or}\quad c_k = 2 \max(\sigma_k - t, 0)

    One outer product per matrix (:math:`O(mn)`, against :math:`O(mn \min(m, n))` for an SVD).

    Args:
        grads: One ``(m_k, n_k)`` tensor per matrix, updated in place.
        sigmas: The spectral norms, 0-d tensors.
        us: Left singular vectors, shapes ``(m_k,)``.
        vs: Right singular vectors, shapes ``(n_k,)``.
        target: As in :func:`spectral_hinge`.
        alpha: Scale of the added gradient.

    Example:
        >>> g = torch.zeros(2, 2)
        >>> spectral_penalty_add_grad_([g], [torch.tensor(3.0)], [torch.tensor([1.0, 0.0])],
        ...                            [torch.tensor([0.0, 1.0])], target=1.0); g
        tensor([[0., 4.],
                [0., 0.]])
    """
    check_grads(grads, sigmas)
    with torch.no_grad():
        for grad, sigma, u, v in zip(grads, sigmas, us, vs):
            if target is None:
                grad.addr_(u.to(grad.dtype), v.to(grad.dtype), alpha=alpha)
            else:
                # The hinge's slope as a 0-d tensor: no host sync on an accelerator.
                slope = (sigma.detach() - target).clamp_min(0).to(grad.dtype) * (2 * alpha)
                grad.add_(torch.outer(u.to(grad.dtype), v.to(grad.dtype)) * slope)


def spectral_penalty_exact_add_grad_(
    grads: List[Tensor], tensors: Sequence[Tensor], target: Optional[float] = None, alpha: float = 1.0
) -> None:
    r"""Add ``alpha`` times the gradient of :func:`spectral_hinge` of the exact spectral norms
    (``torch.linalg.matrix_norm(W, 2)``) to ``grads``: one SVD per matrix, :math:`\partial\sigma/\partial W =
    u_1 v_1^\top` (shared equally among tied top singular values, as autograd shares it).

    Example:
        >>> g = torch.zeros(2, 2)
        >>> spectral_penalty_exact_add_grad_([g], [torch.tensor([[3.0, 0.0], [0.0, 1.0]])], target=1.0); g
        tensor([[4., 0.],
                [0., 0.]])
    """
    check_grads(grads, tensors)
    with torch.no_grad():
        for grad, tensor in zip(grads, tensors):
            sigma, direction = _norm_and_direction(check_matrix("tensors", tensor), 2)
            scale = 1.0 if target is None else 2 * (sigma - target).clamp_min(0)
            grad.add_((direction * scale).to(grad.dtype), alpha=alpha)
