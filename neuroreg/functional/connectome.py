r"""Connectome penalties: Dale's law (with L2), a bounded sign penalty, E/I ratio targets, distance to
reference weights; values and closed-form gradients.

Convention for 2-D weights: entry :math:`(i, j)` is the connection from neuron :math:`i` (row) to neuron
:math:`j` (column). The penalties here are entrywise, so they are computed in :math:`O(nm)` time on an
:math:`n \times m` weight (never through an :math:`n \times n` matrix product).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor

from neuroreg._validation import check_callable, check_grads, check_open_unit, check_real, check_reference_tensors
from neuroreg.functional._common import compute_dtype, promoted_dtype, wide_dtype
from neuroreg.functional._multi_tensor import (
    add_combination_,
    add_grad_widened_,
    as_tensor_list,
    foreach_sub,
    group_by_device_and_dtype,
    is_small,
    nonempty,
    sparse_grads_as_dense,
    sum_scalars,
)
from neuroreg.functional.lp import _check_order, _lp_norm, _lp_norm_add_grad_, _lp_norm_grad

__all__ = [
    "dale_law_l2",
    "dale_law_l2_add_grad_",
    "dale_sign_penalty",
    "dale_sign_penalty_add_grad_",
    "exc_ratio",
    "exc_ratio_penalty",
    "exc_ratio_penalty_add_grad_",
    "weights_distance",
    "weights_distance_add_grad_",
]

Tensors = Union[Tensor, Iterable[Tensor]]


def _with_references(name: str, tensors: Tensors, references: Tensors) -> Tuple[List[Tensor], List[Tensor]]:
    """The tensors, and one reference per tensor (same shape)."""
    tensors = as_tensor_list("tensors", tensors)
    return tensors, check_reference_tensors(name, references, tensors)


def _matching(references: List[Tensor], tensors: List[Tensor]) -> List[Tensor]:
    """Each reference on its tensor's device and in its dtype. Cast only where needed: this runs every step,
    and a no-op ``.to()`` still costs a dispatch per tensor."""
    return [
        r if r.dtype == t.dtype and r.device == t.device else r.to(device=t.device, dtype=t.dtype)
        for r, t in zip(references, tensors)
    ]


def _check_alpha(alpha: float) -> float:
    return check_real("alpha", alpha, low=0, high=1)


# --- Dale's law with L2 ----------------------------------------------------------------------------------------
def dale_law_l2(tensors: Tensors, signs: Tensors, alpha: float = 0.8) -> Tensor:
    r"""NeuroTorch's Dale's-law/L2 penalty, summed over weights, in :math:`O(nm)`.

    .. math::
        \mathcal{L} = \sum_k \operatorname{tr}\!\big(W_k^\top (\alpha W_k - (1-\alpha) S_k)\big)
                    = \sum_k \sum_{ij} W_{k,ij} \big(\alpha W_{k,ij} - (1-\alpha) S_{k,ij}\big)
                    = \alpha \sum_k \lVert W_k \rVert_F^2 - (1-\alpha) \sum_k \langle W_k, S_k \rangle

    The trace of :math:`A^\top B` is the entrywise sum of :math:`A \circ B`: computing it so costs one pass
    over the weights instead of NeuroTorch's :math:`n \times n` product (:math:`O(n^3)`).

    With :math:`\alpha = 0` the penalty is linear in :math:`W` and unbounded below (it rewards ever larger
    weights of the reference sign); with :math:`0 < \alpha < 1` its minimum is
    :math:`W = \frac{1-\alpha}{2\alpha} S`, not "any :math:`W` with the right signs". See
    :func:`dale_sign_penalty` for a penalty that is zero exactly on the weights that obey the signs.

    Args:
        tensors: The weights :math:`W_k`, floating-point tensors of any shapes (2-D for a connectome).
        signs: One reference per weight, same shape: usually the sign matrix :math:`S_k = \operatorname{sign}
            (W_{\text{ref}})`, with entries in {-1, 0, 1}.
        alpha: In [0, 1]: 0 is pure Dale's law, 1 pure L2 energy (sum of squares).

    Returns:
        A 0-d tensor.

    Example:
        >>> w = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
        >>> s = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
        >>> dale_law_l2([w], [s], alpha=0.5)          # 0.5 * 14.25 - 0.5 * (-4.5)
        tensor(9.3750)
        >>> bool(torch.isclose(dale_law_l2(w, s, 0.5), torch.trace(w.T @ (0.5 * w - 0.5 * s))))
        True
    """
    alpha = _check_alpha(alpha)
    return _dale_law_l2(*_with_references("signs", tensors, signs), alpha)


def _dale_law_l2(tensors: List[Tensor], signs: List[Tensor], alpha: float) -> Tensor:
    """:func:`dale_law_l2` of checked arguments: what :class:`~neuroreg.DaleLawL2` calls at every step."""
    if not tensors:
        return torch.zeros(())
    signs = _matching(signs, tensors)
    dtype = promoted_dtype(*tensors)
    wide = wide_dtype(dtype)
    if wide == dtype and is_small(tensors):
        # Small weights: alpha * <W, W - (1-alpha)/alpha S> (or -<W, S>) in few kernels per weight, fewer under
        # autograd than the two separate terms below.
        if alpha == 0:
            return -sum_scalars([(t * s).sum() for t, s in zip(tensors, signs)])
        ratio = -(1 - alpha) / alpha
        return alpha * sum_scalars([(t * torch.add(t, s, alpha=ratio)).sum() for t, s in zip(tensors, signs)])
    # A zero coefficient skips its term entirely: no pass over the weights for the part that cannot count.
    # Both terms are summed in float32 for float16/bfloat16 weights, and the value returned in their dtype.
    terms = []
    if alpha != 0:
        terms.append(alpha * _lp_norm(tensors, 2, True, dtype=wide))
    if alpha != 1:
        terms.append(-(1 - alpha) * sum_scalars([_inner(t, s, wide) for t, s in zip(tensors, signs)]))
    value = terms[0] if len(terms) == 1 else terms[0] + terms[1]
    return value if value.dtype == dtype else value.to(dtype)


def _dale_law_l2_grad(tensors: List[Tensor], signs: List[Tensor], alpha: float,
                      scale: Union[float, Tensor]) -> List[Tensor]:
    """``scale`` times the gradient of :func:`dale_law_l2`, :math:`2\alpha W - (1-\alpha) S`, as new tensors
    written directly (``scale`` a float or a 0-d tensor): two passes, one for ``alpha = 0``."""
    signs = _matching(signs, tensors)
    with torch.no_grad():
        if alpha == 0:
            return list(torch._foreach_mul(signs, -scale))
        grads = list(torch._foreach_add(tensors, signs, alpha=-(1 - alpha) / (2 * alpha)))
        torch._foreach_mul_(grads, scale * (2 * alpha))
    return grads


def _inner(tensor: Tensor, other: Tensor, dtype: torch.dtype) -> Tensor:
    """``(tensor * other).sum()`` in ``dtype``: one reading pass and no temporary where ``dtype`` is the
    tensors' own (a dot product), else a product widened as it is summed."""
    if tensor.dtype == dtype and other.dtype == dtype:
        return torch.dot(tensor.reshape(-1), other.reshape(-1))
    return (tensor * other).sum(dtype=dtype)


def dale_law_l2_add_grad_(
    grads: List[Tensor], tensors: Tensors, signs: Tensors, alpha: float = 0.8, *, scale: float = 1.0
) -> None:
    r"""Add ``scale`` times the gradient of :func:`dale_law_l2` to ``grads``, in place, without autograd.

    .. math::
        \frac{\partial \mathcal{L}}{\partial W_k} = 2\alpha W_k - (1-\alpha) S_k

    Two multi-tensor kernels per (device, dtype) group and no temporary. The added gradient's multiplier is
    ``scale`` here (``alpha`` elsewhere in :mod:`neuroreg.functional`), since ``alpha`` is the penalty's own
    mixing coefficient, as in NeuroTorch.

    Args:
        grads: One tensor per weight, same shapes, updated in place (usually the ``.grad`` fields).
        tensors: The weights, as in :func:`dale_law_l2`.
        signs: The reference signs, as in :func:`dale_law_l2`.
        alpha: The mixing coefficient, as in :func:`dale_law_l2`.
        scale: Multiplier of the added gradient (the penalty weight).

    Example:
        >>> w = torch.tensor([[1.0, -2.0]]); s = torch.tensor([[1.0, 1.0]]); g = torch.zeros(1, 2)
        >>> dale_law_l2_add_grad_([g], [w], [s], alpha=0.5, scale=2.0); g    # 2 * (w - 0.5 * s)
        tensor([[ 1., -5.]])
    """
    alpha = _check_alpha(alpha)
    scale = check_real("scale", scale)
    tensors, signs = _with_references("signs", tensors, signs)
    check_grads(grads, tensors)
    with sparse_grads_as_dense(grads) as grads:
        _dale_law_l2_add_grad_(grads, tensors, signs, alpha, scale)


def _dale_law_l2_add_grad_(grads: List[Tensor], tensors: List[Tensor], signs: List[Tensor], alpha: float,
                           scale: float) -> None:
    """:func:`dale_law_l2_add_grad_` of checked arguments and dense gradients."""
    signs = _matching(signs, tensors)
    with torch.no_grad():
        for group in group_by_device_and_dtype(tensors):
            terms = []
            if alpha != 0:
                terms.append(([tensors[i] for i in group], 2 * alpha * scale))
            if alpha != 1:
                terms.append(([signs[i] for i in group], -(1 - alpha) * scale))
            add_combination_([grads[i] for i in group], terms)


# --- a bounded sign penalty -------------------------------------------------------------------------------------
def _check_p_sign(p: float) -> float:
    return check_real("p", p, low=1)


def dale_sign_penalty(tensors: Tensors, signs: Tensors, p: float = 2) -> Tensor:
    r"""How far the weights are from obeying their reference signs: zero exactly when they all do.

    .. math::
        \mathcal{L} = \sum_k \sum_{ij} \operatorname{relu}\!\big(-W_{k,ij} S_{k,ij}\big)^p

    An entry counts only when its sign is the opposite of the reference's; a zero weight, or a zero
    reference sign (no connection prescribed), costs nothing. The penalty is bounded below by 0, unlike
    :func:`dale_law_l2` with ``alpha = 0``, and does not pull correctly signed weights anywhere.

    Args:
        tensors: The weights, floating-point tensors of any shapes.
        signs: One reference sign tensor per weight, same shape, entries in {-1, 0, 1}.
        p: Exponent, a real >= 1 (``p = 2``: differentiable everywhere; ``p = 1``: the sum of the wrong-signed
            magnitudes).

    Returns:
        A 0-d tensor >= 0.

    Example:
        >>> w = torch.tensor([[1.0, -2.0], [0.5, -3.0]])
        >>> s = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
        >>> dale_sign_penalty([w], [s], p=2), dale_sign_penalty([w], [s], p=1)   # entries -2 and 0.5 violate
        (tensor(4.2500), tensor(2.5000))
    """
    p = _check_p_sign(p)
    return _dale_sign_penalty(*_with_references("signs", tensors, signs), p)


def _dale_sign_penalty(tensors: List[Tensor], signs: List[Tensor], p: float) -> Tensor:
    """:func:`dale_sign_penalty` of checked arguments: what :class:`~neuroreg.DaleSignPenalty` calls."""
    if not tensors:
        return torch.zeros(())
    violations = [torch.relu(-(t * s)) for t, s in zip(tensors, _matching(signs, tensors))]
    wide, dtype = compute_dtype(*tensors), promoted_dtype(*tensors)
    if p == 1:
        return sum_scalars([v.sum(dtype=wide) for v in violations]).to(dtype)
    if p == 2:
        return _lp_norm(violations, 2, True)
    return sum_scalars([v.to(wide).pow(p).sum() for v in violations]).to(dtype)


def dale_sign_penalty_add_grad_(
    grads: List[Tensor], tensors: Tensors, signs: Tensors, p: float = 2, alpha: float = 1.0
) -> None:
    r"""Add ``alpha`` times the gradient of :func:`dale_sign_penalty` to ``grads``, in place, without
    autograd.

    .. math::
        \frac{\partial \mathcal{L}}{\partial W_{k,ij}} = -p \, S_{k,ij}
        \operatorname{relu}\!\big(-W_{k,ij} S_{k,ij}\big)^{p-1}

    At the boundary (:math:`W_{k,ij} S_{k,ij} = 0`) the subgradient taken is 0, autograd's for ``relu``: for
    ``p = 1`` a zero weight is not pushed either way.

    Example:
        >>> w = torch.tensor([1.0, -2.0, 0.0]); s = torch.ones(3); g = torch.zeros(3)
        >>> dale_sign_penalty_add_grad_([g], [w], [s], p=2); g
        tensor([ 0., -4.,  0.])
    """
    p = _check_p_sign(p)
    tensors, signs = _with_references("signs", tensors, signs)
    check_grads(grads, tensors)
    with sparse_grads_as_dense(grads) as grads:
        _dale_sign_penalty_add_grad_(grads, tensors, signs, p, alpha)


def _dale_sign_penalty_add_grad_(grads: List[Tensor], tensors: List[Tensor], signs: List[Tensor], p: float,
                                 alpha: float) -> None:
    """:func:`dale_sign_penalty_add_grad_` of checked arguments and dense gradients."""
    signs = _matching(signs, tensors)
    with torch.no_grad():
        for group in group_by_device_and_dtype(tensors):
            ss = [signs[i] for i in group]
            directions = torch._foreach_mul([tensors[i] for i in group], ss)
            torch._foreach_neg_(directions)
            torch._foreach_clamp_min_(directions, 0.0)
            if p == 1:
                torch._foreach_sign_(directions)
            elif p != 2:
                torch._foreach_pow_(directions, p - 1)
            torch._foreach_mul_(directions, ss)
            torch._foreach_add_([grads[i] for i in group], directions, alpha=-p * alpha)


# --- E/I ratio targets ------------------------------------------------------------------------------------------
SignFunc = Optional[Callable[[Tensor], Tensor]]


def exc_ratio(tensors: Tensors, sign_func: SignFunc = None) -> Tensor:
    r"""The soft excitatory ratio of each tensor: the mean of its soft signs mapped to [0, 1].

    .. math::
        r_k = \frac{\operatorname{mean}\big(\sigma(W_k)\big) + 1}{2}, \qquad
        \sigma(w) = \operatorname{softsign}(w) = \frac{w}{1 + |w|} \text{ by default}

    With a hard sign function (``torch.sign``) it is the fraction of positive entries (zeros counting
    half); the default softsign makes it differentiable. The inhibitory ratio is :math:`1 - r_k`. The mean is
    taken in float32 for float16/bfloat16 tensors; a zero-element tensor has no ratio (NaN, the mean of
    nothing), and :func:`exc_ratio_penalty` leaves it out.

    Args:
        tensors: Floating-point tensors of any shapes (e.g. per-neuron sign parameters, or weights).
        sign_func: The soft sign :math:`\sigma`, a callable tensor -> tensor with values in [-1, 1]
            (default softsign).

    Returns:
        A 1-D tensor with one ratio per tensor.

    Example:
        >>> exc_ratio([torch.tensor([1.0, 1.0, 1.0, -1.0]), torch.tensor([2.0, -2.0])], sign_func=torch.sign)
        tensor([0.7500, 0.5000])
    """
    tensors = as_tensor_list("tensors", tensors)
    sign_func = torch.nn.functional.softsign if sign_func is None else check_callable("sign_func", sign_func)
    if not tensors:
        return torch.zeros(0)
    return _exc_ratios(tensors, sign_func).to(promoted_dtype(*tensors))


def _exc_ratios(tensors: List[Tensor], sign_func: Callable[[Tensor], Tensor]) -> Tensor:
    """The ratios of :func:`exc_ratio`, in float32 for float16/bfloat16 tensors, on the first one's device."""
    device = tensors[0].device
    return torch.stack([((sign_func(t.to(wide_dtype(t.dtype))).mean() + 1) / 2).to(device) for t in tensors])


def exc_ratio_penalty(tensors: Tensors, target: float = 0.8, sign_func: SignFunc = None) -> Tensor:
    r"""NeuroTorch's E/I ratio target penalty: distance of each tensor's soft excitatory ratio to a target.

    .. math::
        \mathcal{L} = \sum_k \big|\operatorname{mean}(\sigma(W_k)) + 1 - 2\,t\big| = 2 \sum_k |r_k - t|

    with :math:`r_k` the soft excitatory ratio of :func:`exc_ratio` and :math:`t` the target. Zero-element
    tensors contribute nothing (they have no ratio).

    Args:
        tensors: Floating-point tensors of any shapes.
        target: The target excitatory ratio :math:`t`, in (0, 1) (for an inhibitory target :math:`t_I`, pass
            :math:`1 - t_I`).
        sign_func: As in :func:`exc_ratio`.

    Returns:
        A 0-d tensor >= 0.

    Example:
        >>> w = torch.tensor([1.0, 1.0, 1.0, -1.0])
        >>> exc_ratio_penalty([w], target=0.5, sign_func=torch.sign)   # |0.5 + 1 - 1|
        tensor(0.5000)
    """
    target = check_open_unit("target", target)
    tensors = as_tensor_list("tensors", tensors)
    return _exc_ratio_penalty(tensors, target, None if sign_func is None else check_callable("sign_func", sign_func))


def _exc_ratio_penalty(tensors: List[Tensor], target: float, sign_func: SignFunc) -> Tensor:
    """:func:`exc_ratio_penalty` of checked arguments: what :class:`~neuroreg.ExcRatioTargetRegularization`
    calls."""
    sign_func = torch.nn.functional.softsign if sign_func is None else sign_func
    counted = nonempty(tensors)
    if not counted:
        return tensors[0].new_zeros(()) if tensors else torch.zeros(())
    # 2 |r_k - t| = |mean(sigma(W_k)) + 1 - 2t|: NeuroTorch's form, in four kernels per tensor.
    offset = 1 - 2 * target
    terms = [(sign_func(t if wide_dtype(t.dtype) == t.dtype else t.float()).mean() + offset).abs() for t in counted]
    value, dtype = sum_scalars(terms), promoted_dtype(*tensors)
    return value if value.dtype == dtype else value.to(dtype)


def exc_ratio_penalty_add_grad_(grads: List[Tensor], tensors: Tensors, target: float = 0.8, alpha: float = 1.0) -> None:
    r"""Add ``alpha`` times the gradient of :func:`exc_ratio_penalty` with the default softsign to ``grads``,
    in place, without autograd.

    .. math::
        \frac{\partial \mathcal{L}}{\partial W_k} = \frac{\operatorname{sign}\big(\operatorname{mean}
        (\sigma(W_k)) + 1 - 2t\big)}{|W_k|} \, \frac{1}{(1 + |W_k|)^2}

    where :math:`|W_k|` in the first denominator is the number of entries. Exactly at the target the
    subgradient taken is 0, autograd's for ``abs``.

    Example:
        >>> w = torch.tensor([0.0, 1.0]); g = torch.zeros(2)
        >>> exc_ratio_penalty_add_grad_([g], [w], target=0.9); g     # ratio 0.625 < 0.9: push entries up
        tensor([-0.5000, -0.1250])
    """
    target = check_open_unit("target", target)
    tensors = as_tensor_list("tensors", tensors)
    check_grads(grads, tensors)
    with sparse_grads_as_dense(grads) as grads:
        _exc_ratio_add_grad_(grads, tensors, target, alpha)


def _exc_ratio_add_grad_(grads: List[Tensor], tensors: List[Tensor], target: float, alpha: float) -> None:
    """:func:`exc_ratio_penalty_add_grad_` of checked arguments and dense gradients."""
    with torch.no_grad():
        for group in group_by_device_and_dtype(tensors):
            add_grad_widened_(
                lambda gs, ts: _exc_ratio_penalty_add_grad_(gs, ts, target, alpha), [grads[i] for i in group],
                [tensors[i] for i in group],
            )


def _exc_ratio_penalty_add_grad_(gs: List[Tensor], ts: List[Tensor], target: float, alpha: float) -> None:
    """:func:`exc_ratio_penalty_add_grad_` for tensors of one device and dtype."""
    # 1 / (1 + |W|) serves twice: W times it is the softsign, its square the softsign's derivative.
    reciprocal = torch._foreach_abs(ts)
    torch._foreach_add_(reciprocal, 1.0)
    torch._foreach_reciprocal_(reciprocal)
    softsigns = torch._foreach_mul(ts, reciprocal)
    coefficients = [torch.sign(soft.mean() + (1 - 2 * target)) / max(t.numel(), 1) for soft, t in zip(softsigns, ts)]
    torch._foreach_mul_(reciprocal, reciprocal)
    torch._foreach_addcmul_(gs, reciprocal, coefficients, value=alpha)


# --- distance to reference weights ------------------------------------------------------------------------------
def weights_distance(tensors: Tensors, references: Tensors, p: float = 1, *, squared: bool = False) -> Tensor:
    r"""Sum over tensors of the entrywise p-norm (optionally squared) of their difference to reference weights.

    .. math::
        \mathcal{L} = \sum_k \lVert W_k - W_{k,\text{ref}} \rVert_p^{s}, \qquad s = 2 \text{ if squared else } 1

    The norm is entrywise (:func:`~neuroreg.functional.lp_norm` of the differences) whatever the rank;
    NeuroTorch's ``WeightsDistance`` takes a matrix norm of 2-D weights.

    Args:
        tensors: Floating-point tensors of any shapes.
        references: One reference per tensor, same shape.
        p: Order of the norm, a real > 0 or ``math.inf``.
        squared: Square each norm (``p=2, squared=True``: the sum of squared differences).

    Returns:
        A 0-d tensor >= 0.

    Example:
        >>> weights_distance([torch.tensor([[1.0, 2.0]])], [torch.tensor([[0.0, 4.0]])], p=1)
        tensor(3.)
        >>> weights_distance([torch.tensor([[1.0, 2.0]])], [torch.tensor([[0.0, 4.0]])], p=2, squared=True)
        tensor(5.)
    """
    tensors, references = _with_references("references", tensors, references)
    return _weights_distance(tensors, references, *_check_order(p, squared))


def _weights_distance(tensors: List[Tensor], references: List[Tensor], p: float, squared: bool) -> Tensor:
    """:func:`weights_distance` of checked arguments: what :class:`~neuroreg.WeightsDistance` calls."""
    if not tensors:
        return torch.zeros(())
    return _lp_norm(foreach_sub(tensors, _matching(references, tensors)), p, squared)


def weights_distance_add_grad_(
    grads: List[Tensor], tensors: Tensors, references: Tensors, p: float = 1, alpha: float = 1.0, *,
    squared: bool = False,
) -> None:
    r"""Add ``alpha`` times the gradient of :func:`weights_distance` to ``grads``, in place, without autograd:
    :func:`~neuroreg.functional.lp_norm_add_grad_` at :math:`W_k - W_{k,\text{ref}}` (with its subgradient
    choices: for ``p = 1``, 0 where a weight equals its reference).

    Example:
        >>> g = torch.zeros(1, 2)
        >>> weights_distance_add_grad_([g], [torch.tensor([[1.0, 2.0]])], [torch.tensor([[0.0, 2.0]])]); g
        tensor([[1., 0.]])
    """
    tensors, references = _with_references("references", tensors, references)
    p, squared = _check_order(p, squared)
    check_grads(grads, tensors)
    with sparse_grads_as_dense(grads) as grads:
        _weights_distance_add_grad_(grads, tensors, references, p, squared, alpha)


def _weights_distance_add_grad_(grads: List[Tensor], tensors: List[Tensor], references: List[Tensor], p: float,
                                squared: bool, alpha: float) -> None:
    """:func:`weights_distance_add_grad_` of checked arguments and dense gradients."""
    if tensors:
        _lp_norm_add_grad_(grads, _differences(tensors, references), p, squared, alpha)


def _weights_distance_grad(tensors: List[Tensor], references: List[Tensor], p: float, squared: bool,
                           alpha: Union[float, Tensor]) -> List[Tensor]:
    """``alpha`` times the gradient of :func:`weights_distance`, as new tensors (written into the differences)."""
    return _lp_norm_grad(_differences(tensors, references), p, squared, alpha, overwrite=True) if tensors else []


def _differences(tensors: List[Tensor], references: List[Tensor]) -> List[Tensor]:
    with torch.no_grad():
        return list(torch._foreach_sub(tensors, _matching(references, tensors)))
