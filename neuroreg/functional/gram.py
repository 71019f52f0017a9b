"""Gram-matrix determinants (hypercoil's ``det_gram`` and ``log_det_gram``) and the kernels that build the
Gram matrix (hypercoil's ``linear_kernel`` and ``corr_kernel``)."""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from neuroreg._validation import check_callable, check_floating_tensor, check_real
from neuroreg.functional._common import compute_dtype

__all__ = ["corr_kernel", "det_gram", "linear_kernel", "log_det_gram"]

Kernel = Callable[..., Tensor]


def _is_vector_weight(theta: Tensor) -> bool:
    """hypercoil's rule: a 1-D ``theta``, or one whose last two axes are not square, weights each
    observation; a square one is a coupling matrix between observations."""
    return theta.ndim == 1 or theta.shape[-1] != theta.shape[-2]


def _vector_weight(theta: Tensor) -> Tensor:
    # A batch of weight vectors (*, obs) broadcasts against (*, variables, obs) with a variables axis of 1.
    return theta if theta.ndim == 1 or theta.shape[-2] == 1 else theta[..., None, :]


def linear_kernel(X0: Tensor, X1: Optional[Tensor] = None, theta: Optional[Tensor] = None) -> Tensor:
    r"""Parameterised linear kernel between the rows of ``X0`` and ``X1``: :math:`K = X_0 \theta X_1^\top`.

    Args:
        X0: Floating-point tensor ``(*, N0, P)``: N0 observations of P features.
        X1: ``(*, N1, P)``, or ``None`` for ``X0``.
        theta: ``None`` (the identity), a weight per feature (``(P,)`` or ``(*, P)``), or a ``(*, P, P)``
            matrix.

    Returns:
        ``(*, N0, N1)``.

    Example:
        >>> linear_kernel(torch.tensor([[1.0, 2.0], [0.0, 1.0]]), theta=torch.tensor([1.0, 0.5]))
        tensor([[3.0000, 1.0000],
                [1.0000, 0.5000]])
    """
    X0 = check_floating_tensor("X0", X0, min_ndim=2)
    X1 = X0 if X1 is None else check_floating_tensor("X1", X1, min_ndim=2)
    if theta is None:
        return X0 @ X1.mT
    theta = check_floating_tensor("theta", theta)
    if _is_vector_weight(theta):
        return (X0 * _vector_weight(theta)) @ X1.mT
    return X0 @ theta @ X1.mT


def corr_kernel(
    X0: Tensor, X1: Optional[Tensor] = None, theta: Optional[Tensor] = None, l2: float = 0
) -> Tensor:
    r"""Pearson correlation between the rows (variables) of ``X0`` and ``X1`` over their observations,
    hypercoil's ``corr_kernel`` (its ``pairedcorr``).

    .. math::
        K_{ij} = \frac{\operatorname{cov}_\theta(X_{0,i}, X_{1,j})}{\sqrt{\operatorname{var}(X_{0,i})
        \operatorname{var}(X_{1,j})}}

    With ``theta`` the covariance in the numerator is weighted (a weight per observation, or a coupling
    matrix between observations, with hypercoil's unbiased normalisation) while the variances in the
    denominator are not, exactly as hypercoil computes it: ``theta`` then gives a weighted covariance over
    unweighted standard deviations, not a weighted correlation.

    Args:
        X0: Floating-point tensor ``(*, N0, T)``: N0 variables of T observations.
        X1: ``(*, N1, T)``, or ``None`` for ``X0``.
        theta: ``None``, observation weights ``(T,)`` or ``(*, T)``, or a ``(*, T, T)`` matrix.
        l2: Accepted for hypercoil's signature; it has no effect there either.

    Returns:
        ``(*, N0, N1)``.

    Example:
        >>> X = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
        >>> corr_kernel(X)
        tensor([[ 1., -1.],
                [-1.,  1.]])
    """
    X0 = check_floating_tensor("X0", X0, min_ndim=2)
    X1 = X0 if X1 is None else check_floating_tensor("X1", X1, min_ndim=2)
    check_real("l2", l2, low=0)
    scale = torch.sqrt(X0.var(-1, keepdim=True) @ X1.var(-1, keepdim=True).mT)
    if theta is None:
        X0c, X1c = X0 - X0.mean(-1, keepdim=True), X1 - X1.mean(-1, keepdim=True)
        return X0c @ X1c.mT / (X0.shape[-1] - 1) / scale
    theta = check_floating_tensor("theta", theta)
    if _is_vector_weight(theta):
        weight = _vector_weight(theta)
        total = weight.sum(-1, keepdim=True)
        X0c, X1c = (X - (X * (weight / total)).sum(-1, keepdim=True) for X in (X0, X1))
        norm = total - weight.square().sum(-1, keepdim=True) / total
        return (X0c * weight) @ X1c.mT / norm / scale
    total = theta.sum((-1, -2), keepdim=True)
    X0c, X1c = (X - (X @ (theta / total)).sum(-1, keepdim=True) for X in (X0, X1))
    norm = total - (theta @ theta.mT).sum((-1, -2), keepdim=True) / total
    return X0c @ theta @ X1c.mT / norm / scale


def _options(*, op: Kernel, psi: float, xi: float) -> Tuple[Kernel, float, float]:
    """Check the Gram determinants' options (also at a loss's construction)."""
    op = check_callable("op", op)
    psi = check_real("psi", psi, low=0)
    xi = check_real("xi", xi, low=0)
    if xi > psi:
        raise ValueError(f"xi must be <= psi (the diagonal gains psi - xi + Uniform(0, xi)), got psi={psi}, xi={xi}")
    return op, psi, xi


def _gram(
    X: Tensor,
    theta: Optional[Tensor],
    op: Kernel,
    psi: float,
    xi: float,
    generator: Optional[torch.Generator],
) -> Tensor:
    """The (reconditioned) Gram matrix ``op(X, theta=theta)``, in the dtype to compute in."""
    X = check_floating_tensor("X", X)
    if theta is not None:
        check_floating_tensor("theta", theta)
    op, psi, xi = _options(op=op, psi=psi, xi=xi)
    dtype = compute_dtype(X)
    Z = op(X.to(dtype), theta=None if theta is None else theta.to(dtype))
    if xi > 0:
        # hypercoil's recondition_eigenspaces: distinct, nonzero eigenvalues for a stable backward pass.
        noise = torch.rand(Z.shape[:-1], generator=generator, dtype=Z.dtype, device=Z.device)
        return Z + torch.diag_embed(psi - xi + xi * noise)
    if psi > 0:
        return Z + psi * torch.eye(Z.shape[-1], dtype=Z.dtype, device=Z.device)
    return Z


def det_gram(
    X: Tensor,
    theta: Optional[Tensor] = None,
    *,
    op: Kernel = corr_kernel,
    psi: float = 0.0,
    xi: float = 0.0,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""Negative determinant of the Gram matrix of ``X`` under the kernel ``op``.

    .. math::
        f(X) = -\det\big(K_\theta(X) + \psi I + \operatorname{diag}(u)\big), \qquad
        u_i \sim \mathcal{U}(-\xi, 0)

    Args:
        X: Floating-point tensor ``(*, N, T)``: N vectors whose Gram matrix is taken.
        theta: Kernel parameter passed to ``op`` (``None``: isotropic).
        op: Kernel ``op(X, theta=theta) -> (*, N, N)``, positive semidefinite (default
            :func:`corr_kernel`; also :func:`linear_kernel`).
        psi: Added to the diagonal (>= 0), to make the matrix strictly positive definite.
        xi: With ``xi > 0`` (and ``xi <= psi``), the diagonal gains :math:`\psi - \xi + \mathcal{U}(0, \xi)`
            instead, making eigenvalues distinct (hypercoil's ``recondition_eigenspaces``); the noise is drawn
            from ``generator`` (hypercoil's ``key``), or torch's global generator.
        generator: The ``torch.Generator`` for the ``xi`` noise.

    Returns:
        ``(*,)``, in ``X``'s dtype (computed in float32 for float16/bfloat16).

    Example:
        >>> det_gram(torch.eye(3), op=linear_kernel)
        tensor(-1.)
    """
    return -torch.linalg.det(_gram(X, theta, op, psi, xi, generator)).to(X.dtype)


def log_det_gram(
    X: Tensor,
    theta: Optional[Tensor] = None,
    *,
    op: Kernel = corr_kernel,
    psi: float = 0.0,
    xi: float = 0.0,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    r"""Negative log-determinant of the Gram matrix of ``X`` under the kernel ``op``.

    .. math::
        f(X) = -\log \big|\det\big(K_\theta(X) + \psi I + \operatorname{diag}(u)\big)\big|

    Penalising it favours independent vectors: with the default correlation kernel its minimum, 0, is
    reached by orthogonal (uncorrelated) rows.

    Args:
        X: As in :func:`det_gram`.
        theta: As in :func:`det_gram`.
        op: As in :func:`det_gram`.
        psi: As in :func:`det_gram`.
        xi: As in :func:`det_gram`.
        generator: As in :func:`det_gram`.

    Returns:
        As :func:`det_gram`.

    Example:
        >>> X = torch.tensor([[1.0, -1.0, 0.0, 0.0], [1.0, -1.0, 1.0, -1.0]])   # correlation 1/sqrt(2)
        >>> log_det_gram(X)                                                  # -log(1 - 1/2)
        tensor(0.6931)
    """
    return -torch.linalg.slogdet(_gram(X, theta, op, psi, xi, generator)).logabsdet.to(X.dtype)
