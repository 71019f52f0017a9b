"""Kullback-Leibler and Jensen-Shannon divergences between categorical distributions (hypercoil's
``kl_divergence``, ``js_divergence`` and their ``_logit`` versions), natural logarithm."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from neuroreg._validation import check_axes, check_bool, check_broadcastable, check_floating_tensor
from neuroreg.functional._common import Axes, compute_dtype, log_softmax

__all__ = ["js_divergence", "js_divergence_logit", "kl_divergence", "kl_divergence_logit"]


def kl_divergence(P: Tensor, Q: Tensor, *, axis: Axes = -1, keepdims: bool = True, reduce: bool = True) -> Tensor:
    r"""Kullback-Leibler divergence of ``Q`` from ``P`` over ``axis``.

    .. math::
        KL(P \,\|\, Q) = \sum_{x} P_x \log \frac{P_x}{Q_x}

    Terms with :math:`P_x = 0` are 0, with a zero gradient. A term with :math:`P_x > 0 = Q_x` (where the
    divergence is infinite) is large but finite: a zero ``Q`` is replaced by the dtype's smallest normal
    number. A NaN or infinite entry in either input makes its divergence NaN or infinite (never a number),
    as torch's own reductions do; so does a negative "probability", where the logarithm is NaN.
    hypercoil instead adds machine epsilon inside both logarithms, which shifts every value slightly; this
    function is exact elsewhere (it equals ``scipy.stats.entropy(P, Q)`` on normalised inputs).

    Args:
        P: Probabilities, floating point.
        Q: Probabilities, of a shape that broadcasts with ``P``'s.
        axis: Axis or axes (of the broadcast shape) of one distribution, summed over.
        keepdims: Keep the summed axes, with size 1.
        reduce: Sum over ``axis``; ``False`` returns the elementwise terms of the broadcast shape.

    Returns:
        The divergences, in the promoted dtype of ``P`` and ``Q``.

    Example:
        >>> kl_divergence(torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.25, 0.25, 0.5]))
        tensor([0.6931])
    """
    axes, dtype, out_dtype = _check(P, Q, axis, keepdims, reduce)
    P, Q = P.to(dtype), Q.to(dtype)
    return _reduce(_plogp_ratio(P, _safe_log(Q)), axes, keepdims, reduce, out_dtype)


def kl_divergence_logit(
    P: Tensor, Q: Tensor, *, axis: Axes = -1, keepdims: bool = True, reduce: bool = True
) -> Tensor:
    r"""Kullback-Leibler divergence between the softmaxes of the logits ``P`` and ``Q`` over ``axis``.

    .. math::
        KL(P \,\|\, Q) = \sum_x p_x (\log p_x - \log q_x), \qquad \log p = \operatorname{log\_softmax}(P)

    Computed from log-softmaxes, so it is finite, with finite gradients, for any finite logits. A logit of
    ``-inf`` (a masked class) is a probability of exactly 0, as in :func:`kl_divergence`: its term is 0 in
    ``P`` and the smallest normal number's logarithm in ``Q``, with finite values and gradients. NaN or
    ``+inf`` logits give a NaN divergence.

    Args:
        P: Logits, floating point.
        Q: Logits, of a shape that broadcasts with ``P``'s.
        axis: As in :func:`kl_divergence`; also the axes of the softmax.
        keepdims: As in :func:`kl_divergence`.
        reduce: As in :func:`kl_divergence`.

    Returns:
        As :func:`kl_divergence`.

    Example:
        >>> kl_divergence_logit(torch.tensor([1e4, -1e4]), torch.tensor([-1e4, 1e4]))   # 2e4, finite
        tensor([20000.])
    """
    axes, dtype, out_dtype = _check(P, Q, axis, keepdims, reduce)
    log_p, log_q = _log_softmaxes(P, Q, axes, dtype)
    # A -inf log q (a masked class of Q) is log of the smallest normal number, as kl_divergence's zero Q.
    log_q = torch.where(log_q == -math.inf, math.log(torch.finfo(dtype).tiny), log_q)
    p = log_p.exp()
    return _reduce(p * _masked_ratio(p, log_p, log_q), axes, keepdims, reduce, out_dtype)


def js_divergence(P: Tensor, Q: Tensor, *, axis: Axes = -1, keepdims: bool = True, reduce: bool = True) -> Tensor:
    r"""Jensen-Shannon divergence between ``P`` and ``Q`` over ``axis``, natural logarithm.

    .. math::
        JS(P \,\|\, Q) = \tfrac{1}{2} KL(P \,\|\, M) + \tfrac{1}{2} KL(Q \,\|\, M), \qquad M = \tfrac{1}{2}(P + Q)

    Symmetric, in :math:`[0, \log 2]`, and finite with finite gradients for probabilities with exact zeros
    (where :math:`P_x > 0`, :math:`M_x > 0`). ``js_divergence(P, Q).mean()`` over rows equals the mean of
    ``scipy.spatial.distance.jensenshannon(P, Q, axis=1) ** 2``.

    Args:
        P: Probabilities, floating point.
        Q: Probabilities, of a shape that broadcasts with ``P``'s.
        axis: Axis or axes (of the broadcast shape) of one distribution, summed over.
        keepdims: Keep the summed axes, with size 1.
        reduce: Sum over ``axis``; ``False`` returns the elementwise terms of the broadcast shape.

    Returns:
        The divergences, in the promoted dtype of ``P`` and ``Q``.

    Example:
        >>> P = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
        >>> js_divergence(P, torch.tensor([0.0, 1.0]))   # log 2 for disjoint supports
        tensor([[0.6931],
                [0.2158]])
    """
    axes, dtype, out_dtype = _check(P, Q, axis, keepdims, reduce)
    P, Q = P.to(dtype), Q.to(dtype)
    log_m = _safe_log(0.5 * (P + Q))
    terms = 0.5 * (_plogp_ratio(P, log_m) + _plogp_ratio(Q, log_m))
    return _reduce(_nonnegative(terms), axes, keepdims, reduce, out_dtype)


def js_divergence_logit(
    P: Tensor, Q: Tensor, *, axis: Axes = -1, keepdims: bool = True, reduce: bool = True
) -> Tensor:
    r"""Jensen-Shannon divergence between the softmaxes of the logits ``P`` and ``Q`` over ``axis``.

    .. math::
        JS = \tfrac{1}{2} \sum_x \left[ p_x (\log p_x - \log m_x) + q_x (\log q_x - \log m_x) \right], \quad
        \log m = \operatorname{logaddexp}(\log p, \log q) - \log 2

    Works on log-softmaxes (no probability of 0 is ever logged), so values and gradients are finite for any
    finite logits, ±1e4 in float32 included, and for ``-inf`` logits (masked classes, probability 0: their
    terms are 0, as in :func:`js_divergence`). NaN or ``+inf`` logits give a NaN divergence. The summed
    divergence (``reduce=True``) has a closed-form gradient,
    :math:`\partial JS / \partial P = \tfrac{1}{2}\, p \odot (\log p - \log m - KL(p \,\|\, m))`, computed in
    one pass from the tensors the forward pass keeps (about twice as fast as differentiating the dozen
    elementwise operations, with less memory); it is not twice differentiable.

    Args:
        P: Logits, floating point.
        Q: Logits, of a shape that broadcasts with ``P``'s.
        axis: As in :func:`js_divergence`; also the axes of the softmax.
        keepdims: As in :func:`js_divergence`.
        reduce: As in :func:`js_divergence`.

    Returns:
        As :func:`js_divergence`.

    Example:
        >>> js_divergence_logit(torch.tensor([1e4, -1e4]), torch.tensor([-1e4, 1e4]))
        tensor([0.6931])
    """
    axes, dtype, out_dtype = _check(P, Q, axis, keepdims, reduce)
    # Under torch.func transforms (vmap, grad, jacrev) autograd differentiates the terms instead: the closed
    # form is a plain autograd.Function, which functorch cannot batch.
    if reduce and not torch._C._are_functorch_transforms_active():
        return _nonnegative(_JSDivergenceLogit.apply(P, Q, axes, keepdims, dtype)).to(out_dtype)
    p, q, ratio_p, ratio_q = _js_ratios(P, Q, axes, dtype)
    return _reduce(_nonnegative(0.5 * (p * ratio_p + q * ratio_q)), axes, keepdims, reduce, out_dtype)


class _JSDivergenceLogit(torch.autograd.Function):
    r"""Summed JS divergence of the softmaxes of two logit tensors, with its closed-form gradient.

    With :math:`r_p = \log p - \log m`, :math:`JS = \tfrac12 (\sum p\, r_p + \sum q\, r_q)` and
    :math:`\partial JS / \partial P = \tfrac12\, p \odot (r_p - \sum p\, r_p)` (the softmax's Jacobian
    applied to :math:`\tfrac12 r_p`; the :math:`\log m` terms cancel because :math:`\sum (p + q) = 2`).
    """

    @staticmethod
    def forward(ctx: Any, P: Tensor, Q: Tensor, axes: Tuple[int, ...], keepdims: bool, dtype: torch.dtype) -> Tensor:
        p, q, ratio_p, ratio_q = _js_ratios(P, Q, axes, dtype)
        kl_p = (p * ratio_p).sum(axes, keepdim=True)
        kl_q = (q * ratio_q).sum(axes, keepdim=True)
        ctx.save_for_backward(p, q, ratio_p, ratio_q, kl_p, kl_q)
        ctx.keepdims, ctx.inputs = keepdims, ((P.shape, P.dtype), (Q.shape, Q.dtype))
        value = 0.5 * (kl_p + kl_q)
        return value if keepdims else value.squeeze(axes)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        p, q, ratio_p, ratio_q, kl_p, kl_q = ctx.saved_tensors
        half_grad = 0.5 * (grad if ctx.keepdims else grad.reshape(kl_p.shape)).to(p.dtype)
        grads = tuple(
            # A broadcast input gets its gradient summed over the axes it was broadcast along.
            (probs * (ratio - kl) * half_grad).sum_to_size(shape).to(dtype) if needed else None
            for probs, ratio, kl, (shape, dtype), needed in zip(
                (p, q), (ratio_p, ratio_q), (kl_p, kl_q), ctx.inputs, ctx.needs_input_grad
            )
        )
        return (*grads, None, None, None)


def _check(
    P: Tensor, Q: Tensor, axis: Axes, keepdims: bool, reduce: bool
) -> Tuple[Tuple[int, ...], torch.dtype, torch.dtype]:
    """Validate the arguments; return the normalised axes, the dtype to compute in and the output dtype."""
    check_floating_tensor("P", P)
    check_floating_tensor("Q", Q)
    shape = check_broadcastable("P", P, "Q", Q)
    axes = check_axes("axis", axis, len(shape))
    check_bool("keepdims", keepdims)
    check_bool("reduce", reduce)
    return axes, compute_dtype(P, Q), torch.promote_types(P.dtype, Q.dtype)


def _log_softmaxes(P: Tensor, Q: Tensor, axes: Tuple[int, ...], dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    # Broadcasting first (views, no copies) makes `axes` name the same axes of both inputs.
    P, Q = torch.broadcast_tensors(P, Q)
    return log_softmax(P, axes, dtype), log_softmax(Q, axes, dtype)


def _js_ratios(
    P: Tensor, Q: Tensor, axes: Tuple[int, ...], dtype: torch.dtype
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The softmaxes p, q of the logits and the log-ratios log p − log m, log q − log m (0 where the
    probability is 0, so that a -inf logit leaves no ``0 * -inf``), with m = (p + q) / 2."""
    log_p, log_q = _log_softmaxes(P, Q, axes, dtype)
    p, q = log_p.exp(), log_q.exp()
    # m >= max(p, q) / 2 underflows only where both terms are below the smallest normal number: clamping
    # keeps log m finite there (and its backward free of 0 / 0), and p (log p - log m) is then ~0 either way.
    log_m = (0.5 * (p + q)).clamp_min(torch.finfo(dtype).tiny).log()
    return p, q, _masked_ratio(p, log_p, log_m), _masked_ratio(q, log_q, log_m)


def _masked_ratio(p: Tensor, log_p: Tensor, log_m: Tensor) -> Tensor:
    """log p − log m, with 0 where p = 0 (a -inf, or underflowed, log p), where its product with p is 0;
    NaN stays NaN (``NaN == 0`` is false). The subtraction's backward is a copy, so the masked -inf
    entries send nothing but zeros back."""
    return torch.where(p == 0, 0.0, log_p - log_m)


def _safe_log(Q: Tensor) -> Tensor:
    """log Q with exact zeros replaced by the smallest normal number: finite, so that no inf (and, in the
    backward of the masked-out terms, no NaN) reaches :func:`_plogp_ratio`. Positive values, subnormal ones
    included, keep their exact logarithm; NaN, infinite and negative values keep theirs (NaN or inf), so
    that a bad input shows in the divergence."""
    return torch.log(torch.where(Q == 0, torch.finfo(Q.dtype).tiny, Q))


def _plogp_ratio(P: Tensor, log_q: Tensor) -> Tensor:
    """P (log P − log q), with 0 (and a zero gradient) where P = 0.

    The logarithm is taken of P with its zeros replaced by 1: masking only the output would leave
    ``0 * log 0`` in the backward pass, which is NaN. The masked terms are ``0 * log q`` rather than 0, so
    that a NaN or infinite ``q`` (and any NaN, negative or infinite ``P``) still makes the result NaN or
    infinite.
    """
    zero = P == 0
    return torch.where(zero, 0.0 * log_q, P * (torch.log(torch.where(zero, 1.0, P)) - log_q))


def _nonnegative(terms: Tensor) -> Tensor:
    """Each elementwise JS term is >= 0 (log-sum inequality); rounding can leave -1e-17 where P ≈ Q."""
    return terms.clamp_min(0)


def _reduce(terms: Tensor, axes: Tuple[int, ...], keepdims: bool, reduce: bool, dtype: torch.dtype) -> Tensor:
    return (terms.sum(axes, keepdim=keepdims) if reduce else terms).to(dtype)
