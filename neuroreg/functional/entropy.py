"""Entropy of categorical distributions (hypercoil's ``entropy`` and ``entropy_logit``), natural logarithm."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from neuroreg._validation import check_axes, check_bool, check_floating_tensor, check_real
from neuroreg.functional._common import Axes, compute_dtype, log_softmax

__all__ = ["entropy", "entropy_logit"]


def entropy(X: Tensor, *, axis: Axes = -1, keepdims: bool = True, reduce: bool = True) -> Tensor:
    r"""Entropy of the categorical distributions ``X`` over ``axis``.

    .. math::
        H(X) = -\sum_x X_x \log X_x

    Terms with :math:`X_x = 0` are 0, with a zero gradient; a negative entry (not a probability) makes its
    entropy NaN, as its logarithm is, rather than a number (checking values would cost a host sync per
    call). hypercoil adds machine epsilon inside the
    logarithm, which shifts every value slightly; this function is exact (it equals
    ``scipy.stats.entropy`` on normalised inputs). Penalising entropy concentrates each distribution on
    one category; it is unbounded below off the simplex, so constrain the input (e.g. a softmax, or
    :func:`entropy_logit`).

    Args:
        X: Probabilities, floating point.
        axis: Axis or axes of one distribution, summed over.
        keepdims: Keep the summed axes, with size 1.
        reduce: Sum over ``axis``; ``False`` returns the elementwise terms :math:`-X_x \log X_x`.

    Returns:
        The entropies (``X``'s shape with ``axis`` summed), in ``X``'s dtype.

    Example:
        >>> entropy(torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]))   # log 2 and 0
        tensor([[0.6931],
                [0.0000]])
    """
    X = check_floating_tensor("X", X)
    axes = check_axes("axis", axis, X.ndim)
    keepdims, reduce = check_bool("keepdims", keepdims), check_bool("reduce", reduce)
    work = X.to(compute_dtype(X))
    zero = work == 0
    # The logarithm of X with its zeros replaced by 1: masking only the product would leave 0 * log 0 in
    # the backward pass, which is NaN. Only exact zeros are masked: a negative entry stays NaN.
    terms = -torch.where(zero, 0.0, work * torch.log(torch.where(zero, 1.0, work)))
    return (terms.sum(axes, keepdim=keepdims) if reduce else terms).to(X.dtype)


def entropy_logit(
    X: Tensor, *, temperature: float = 1.0, axis: Axes = -1, keepdims: bool = True, reduce: bool = True
) -> Tensor:
    r"""Entropy of the softmax of the logits ``X / temperature`` over ``axis``.

    .. math::
        H = -\sum_x p_x \log p_x, \qquad \log p = \operatorname{log\_softmax}(X / T)

    Computed from the log-softmax, so values and gradients are finite for any finite logits (±1e4 in float32
    included) and for ``-inf`` logits (masked categories, whose terms are 0). The summed entropy
    (``reduce=True``) has a closed-form gradient, :math:`\partial H / \partial X = -p \odot (\log p + H) / T`,
    computed in one pass from what the forward pass keeps (forward + backward at 64x400x200 over axis -2:
    1.3-1.6x faster than autograd through ``log_softmax``, 2.1x faster than the ``reduce=False`` terms summed;
    medians, side by side, 2-core CPU); it is not twice differentiable (use ``reduce=False`` and sum for
    higher orders). Under ``torch.func`` transforms autograd differentiates the terms instead.

    Args:
        X: Logits, floating point.
        temperature: Softmax temperature :math:`T`, a real > 0.
        axis: As in :func:`entropy`; also the axes of the softmax.
        keepdims: As in :func:`entropy`.
        reduce: As in :func:`entropy`.

    Returns:
        As :func:`entropy`.

    Example:
        >>> entropy_logit(torch.zeros(2, 4), keepdims=False)   # uniform over 4: log 4
        tensor([1.3863, 1.3863])
    """
    X = check_floating_tensor("X", X)
    temperature = check_real("temperature", temperature, low=0, low_inclusive=False)
    axes = check_axes("axis", axis, X.ndim)
    keepdims, reduce = check_bool("keepdims", keepdims), check_bool("reduce", reduce)
    dtype = compute_dtype(X)
    # Under torch.func transforms (vmap, grad, jacrev) autograd differentiates the terms instead: the closed
    # form is a plain autograd.Function, which functorch cannot batch.
    if reduce and not torch._C._are_functorch_transforms_active():
        return _EntropyLogit.apply(X, temperature, axes, keepdims, dtype).to(X.dtype)
    p, log_p = _softmax_and_log(X, temperature, axes, dtype)
    terms = -(p * log_p)
    return (terms.sum(axes, keepdim=keepdims) if reduce else terms).to(X.dtype)


def _softmax_and_log(X: Tensor, temperature: float, axes: Tuple[int, ...], dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """The probabilities and their logarithm, the latter clamped to the dtype's lowest finite value where a
    probability is 0 (a ``-inf`` logit), so that ``p * log p`` and its gradient are 0 there rather than NaN
    (one pass, where a mask and a select would take two)."""
    log_p = log_softmax(X if temperature == 1 else X / temperature, axes, dtype)
    return log_p.exp(), log_p.clamp_min(torch.finfo(dtype).min)


class _EntropyLogit(torch.autograd.Function):
    r"""Summed entropy of the softmax of logits, with its closed-form gradient.

    :math:`\partial H / \partial z_j = -\sum_i p_i (\delta_{ij} - p_j)(\log p_i + 1) = -p_j (\log p_j + H)`
    for :math:`z = X / T`: one elementwise pass, with nothing saved but ``p``, ``log p`` and ``H``.
    """

    @staticmethod
    def forward(
        ctx: Any, X: Tensor, temperature: float, axes: Tuple[int, ...], keepdims: bool, dtype: torch.dtype
    ) -> Tensor:
        p, log_p = _softmax_and_log(X, temperature, axes, dtype)
        H = -(p * log_p).sum(axes, keepdim=True)
        ctx.save_for_backward(p, log_p, H)
        ctx.temperature, ctx.keepdims, ctx.input_dtype = temperature, keepdims, X.dtype
        return H if keepdims else H.squeeze(axes)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        p, log_p, H = ctx.saved_tensors
        grad = (grad if ctx.keepdims else grad.reshape(H.shape)).to(p.dtype)
        # In place on one new tensor: three passes over memory and one allocation.
        grad_X = (log_p + H).mul_(p).mul_(grad / -ctx.temperature)
        return grad_X.to(ctx.input_dtype), None, None, None, None
