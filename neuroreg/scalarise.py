r"""Scalarisation maps (hypercoil's contract): turn a tensor-valued score function into a reduced one.

A scalarisation map is called with its options and returns a *scalarisation*: a function that takes a score
function ``f`` and returns ``reduced_f(*args, **kwargs) = reduce(inner(f)(*args, **kwargs))``. Maps compose
through ``inner``, innermost first::

    mean_scalarise(inner=vnorm_scalarise(axis=0))(smoothness)(X, axis=0)   # mean over columns of ‖ΔX‖₂

Each map reduces over ``axis`` (``None``: every axis; an axis refers to the output of ``inner``, unless the
inner maps set ``keepdims=True``) and keeps the reduced axes with ``keepdims``. Reductions of float16/bfloat16
tensors are computed in float32 and returned in the input dtype.

The weighted means (``wmean_scalarise``, ``selfwmean_scalarise``) reduce with :func:`wmean` and
:func:`selfwmean`, which are also usable alone.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional, Tuple, Union

import torch
from torch import Tensor

from neuroreg._validation import (
    check_axes,
    check_axes_spec,
    check_bool,
    check_callable,
    check_choice,
    check_floating_tensor,
    check_real,
)
from neuroreg.functional._common import Axes, compute_dtype, softmax
from neuroreg.functional.basic import identity

__all__ = [
    "max_scalarise",
    "mean_scalarise",
    "meansq_scalarise",
    "norm_scalarise",
    "selfwmean",
    "selfwmean_scalarise",
    "sum_scalarise",
    "vnorm_scalarise",
    "wmean",
    "wmean_scalarise",
]

ScoreFunction = Callable[..., Tensor]
Scalarisation = Callable[[ScoreFunction], ScoreFunction]
NormOrder = Union[float, Literal["fro", "nuc"]]


def _map(
    inner: Optional[Scalarisation],
    axis: Optional[Axes],
    keepdims: bool,
    reduction: Callable[..., Tensor],
    keywords: Tuple[str, ...] = (),
) -> Scalarisation:
    """The scalarisation applying ``reduction(X, dims, **extra)`` to what ``inner(f)`` returns.

    ``dims`` is ``None`` (every axis) or the checked, non-empty axes; an empty ``axis`` reduces nothing, as in
    NumPy (PyTorch would reduce everything). ``extra`` holds the call's keyword arguments named in
    ``keywords``, which the reduction takes instead of the score (``wmean_scalarise``'s
    ``scalarisation_weight``).
    """
    inner = None if inner is None else check_callable("inner", inner)
    axis = None if axis is None else check_axes_spec("axis", axis)
    check_bool("keepdims", keepdims)

    def scalarisation(f: ScoreFunction = identity) -> ScoreFunction:
        score = f if inner is None else inner(f)

        def reduced_f(*args: Any, **kwargs: Any) -> Tensor:
            missing = [name for name in keywords if name not in kwargs]
            if missing:
                raise TypeError(f"this scalarisation must be called with the keyword argument {missing[0]!r}")
            extra = {name: kwargs.pop(name) for name in keywords}
            X = score(*args, **kwargs)
            dims = None if axis is None else check_axes("axis", axis, X.ndim)
            if dims == ():
                return X
            work = X.float() if X.dtype in (torch.float16, torch.bfloat16) else X
            return reduction(work, dims, **extra).to(X.dtype)

        return reduced_f

    return scalarisation


def sum_scalarise(
    *, inner: Optional[Scalarisation] = None, axis: Optional[Axes] = None, keepdims: bool = False
) -> Scalarisation:
    r"""Sum of the score over ``axis``: :math:`\sum_i X_i`.

    Args:
        inner: A scalarisation applied first (``None``: the score itself).
        axis: Axis or axes to reduce, ``None`` for all.
        keepdims: Keep reduced axes with size 1.

    Returns:
        A scalarisation (score function -> reduced score function).

    Example:
        >>> sum_scalarise()(torch.abs)(torch.tensor([[1.0, -2.0], [3.0, -4.0]]))
        tensor(10.)
        >>> sum_scalarise(axis=0, keepdims=True)()(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        tensor([[4., 6.]])
    """
    return _map(inner, axis, keepdims, lambda X, dims: torch.sum(X, dim=dims, keepdim=keepdims))


def mean_scalarise(
    *, inner: Optional[Scalarisation] = None, axis: Optional[Axes] = None, keepdims: bool = False
) -> Scalarisation:
    r"""Mean of the score over ``axis``: :math:`\frac{1}{n} \sum_i X_i`.

    Args:
        inner: A scalarisation applied first (``None``: the score itself).
        axis: Axis or axes to reduce, ``None`` for all.
        keepdims: Keep reduced axes with size 1.

    Returns:
        A scalarisation (score function -> reduced score function).

    Example:
        >>> mean_scalarise(inner=max_scalarise(axis=-1))()(torch.tensor([[1.0, 2.0], [3.0, 5.0]]))
        tensor(3.5000)
    """
    return _map(inner, axis, keepdims, lambda X, dims: torch.mean(X, dim=dims, keepdim=keepdims))


def meansq_scalarise(
    *, inner: Optional[Scalarisation] = None, axis: Optional[Axes] = None, keepdims: bool = False
) -> Scalarisation:
    r"""Mean of the squared score over ``axis``: :math:`\frac{1}{n} \sum_i X_i^2`.

    Args:
        inner: A scalarisation applied first (``None``: the score itself).
        axis: Axis or axes to reduce, ``None`` for all.
        keepdims: Keep reduced axes with size 1.

    Returns:
        A scalarisation (score function -> reduced score function).

    Example:
        >>> meansq_scalarise()()(torch.tensor([1.0, -3.0]))
        tensor(5.)
    """
    return _map(inner, axis, keepdims, lambda X, dims: torch.mean(X.square(), dim=dims, keepdim=keepdims))


def max_scalarise(
    *, inner: Optional[Scalarisation] = None, axis: Optional[Axes] = None, keepdims: bool = False
) -> Scalarisation:
    r"""Maximum of the score over ``axis``: :math:`\max_i X_i` (unlike an infinity norm, it keeps the sign).

    Args:
        inner: A scalarisation applied first (``None``: the score itself).
        axis: Axis or axes to reduce, ``None`` for all.
        keepdims: Keep reduced axes with size 1.

    Returns:
        A scalarisation (score function -> reduced score function).

    Example:
        >>> max_scalarise(axis=-1)()(torch.tensor([[1.0, -2.0], [-3.0, -4.0]]))
        tensor([ 1., -3.])
    """
    return _map(inner, axis, keepdims, lambda X, dims: torch.amax(X, dim=dims or (), keepdim=keepdims))


def norm_scalarise(
    *,
    p: NormOrder = 2,
    force_vector_norm: bool = False,
    axis: Optional[Axes] = -1,
    inner: Optional[Scalarisation] = None,
    keepdims: bool = False,
) -> Scalarisation:
    r"""Norm of the score over ``axis``, as ``torch.linalg.norm`` (``numpy.linalg.norm``) takes it.

    .. math::
        \lVert x \rVert_p = \Big(\sum_i |x_i|^p\Big)^{1/p} \text{ over one axis; a matrix norm over two}

    One axis gives a vector norm; two axes (or ``axis=None`` on a matrix) a matrix norm (``p`` in 1, 2, inf,
    -1, -2, -inf, ``'fro'``, ``'nuc'``), the axes' order mattering as in ``torch.linalg.norm``. With
    ``force_vector_norm`` the norm is always the vector norm of all elements over ``axis``
    (:func:`vnorm_scalarise`).

    Args:
        p: Order of the norm: a real (``math.inf`` included), or ``'fro'``/``'nuc'`` for matrix norms.
        force_vector_norm: Take the vector norm over several axes instead of a matrix norm.
        axis: Axis or axes to reduce (default -1), ``None`` for all.
        inner: A scalarisation applied first (``None``: the score itself).
        keepdims: Keep reduced axes with size 1.

    Returns:
        A scalarisation (score function -> reduced score function).

    Example:
        >>> X = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
        >>> norm_scalarise(p=2, axis=(0, 1))()(X), norm_scalarise(p=2, axis=(0, 1), force_vector_norm=True)()(X)
        (tensor(4.), tensor(5.))
    """
    force_vector_norm = check_bool("force_vector_norm", force_vector_norm)
    if isinstance(p, str) and not force_vector_norm:
        check_choice("p", p, ("fro", "nuc"))
    else:
        check_real("p", p, allow_inf=True)
    if force_vector_norm:
        return _map(
            inner, axis, keepdims, lambda X, dims: torch.linalg.vector_norm(X, ord=p, dim=dims, keepdim=keepdims)
        )
    # The matrix norm depends on the order of its two axes, so torch gets `axis` as given, not sorted.
    return _map(inner, axis, keepdims, lambda X, dims: torch.linalg.norm(X, ord=p, dim=axis, keepdim=keepdims))


def vnorm_scalarise(
    *, p: float = 2, axis: Optional[Axes] = -1, inner: Optional[Scalarisation] = None, keepdims: bool = False
) -> Scalarisation:
    r"""Vector p-norm of the score over ``axis``, all reduced axes unfolded into one:
    :func:`norm_scalarise` with ``force_vector_norm=True``.

    .. math::
        \lVert x \rVert_p = \Big(\sum_i |x_i|^p\Big)^{1/p}

    ``keepdims=True`` keeps every reduced axis in place with size 1 (as its documentation says; hypercoil's
    code instead moves them to a single leading axis).

    Args:
        p: Order of the norm, a real (``math.inf`` included).
        axis: Axis or axes to reduce (default -1), ``None`` for all.
        inner: A scalarisation applied first (``None``: the score itself).
        keepdims: Keep reduced axes with size 1.

    Returns:
        A scalarisation (score function -> reduced score function).

    Example:
        >>> from neuroreg.functional import smoothness
        >>> X = torch.tensor([[0, .1, .2, .3], [.2, .3, .4, .5], [.4, .5, .6, .7]])
        >>> mean_scalarise(inner=vnorm_scalarise(axis=0))(smoothness)(X, axis=0)
        tensor(0.2828)
        >>> vnorm_scalarise(p=1, axis=None)(smoothness)(X)    # SmoothnessLoss's default: L1 over all
        tensor(0.9000)
    """
    return norm_scalarise(p=p, force_vector_norm=True, axis=axis, inner=inner, keepdims=keepdims)


def _weighted_mean(X: Tensor, weight: Tensor, dims: Tuple[int, ...], keepdims: bool) -> Tensor:
    # The weight is broadcast to X's shape first, so that a weight of size 1 along a reduced axis counts once
    # per element in the denominator as in the numerator.
    weight = weight.broadcast_to(X.shape)
    return (weight * X).sum(dims, keepdim=keepdims) / weight.sum(dims, keepdim=keepdims)


def wmean(input: Tensor, weight: Tensor, axis: Optional[Axes] = None, keepdims: bool = False) -> Tensor:
    r"""Weighted mean of ``input`` over ``axis``, hypercoil's rank-reducing ``wmean``.

    .. math::
        \operatorname{wmean}(X, w) = \frac{\sum_i w_i X_i}{\sum_i w_i}

    ``weight`` has one axis per reduced axis, in increasing axis order (its axes broadcast against
    ``input``'s at those positions), and is shared by every retained index. hypercoil's code places the weight
    wrongly for negative axes; here ``axis=-1`` is the last axis.

    Args:
        input: Floating-point tensor.
        weight: Weights, ``len(axis)`` axes (``input.ndim`` for ``axis=None``), each of the reduced axis's
            size or 1.
        axis: Axis or axes to reduce, ``None`` for all.
        keepdims: Keep reduced axes with size 1.

    Returns:
        ``input``'s shape with ``axis`` reduced, in ``input``'s dtype.

    Example:
        >>> z = torch.tensor([[1.0, 4.0, 2.0], [0.0, 9.0, 1.0], [4.0, 6.0, 7.0]])
        >>> wmean(z, torch.tensor([1.0, 0.0, 1.0]), axis=0)   # the mean of rows 0 and 2
        tensor([2.5000, 5.0000, 4.5000])
    """
    input = check_floating_tensor("input", input)
    weight = check_floating_tensor("weight", weight)
    dims = tuple(range(input.ndim)) if axis is None else check_axes("axis", axis, input.ndim)
    check_bool("keepdims", keepdims)
    if weight.ndim != len(dims) or any(w not in (1, input.shape[d]) for w, d in zip(weight.shape, dims)):
        raise ValueError(
            f"weight must have one axis per reduced axis {dims} of input, each of that axis's size or 1 (input "
            f"shape {tuple(input.shape)}), got shape {tuple(weight.shape)}"
        )
    if not dims:
        return input
    # The weight's axes go to the reduced positions, size-1 axes to the retained ones.
    placed = iter(weight.shape)
    weight = weight.reshape([next(placed) if d in dims else 1 for d in range(input.ndim)])
    dtype = compute_dtype(input, weight)
    return _weighted_mean(input.to(dtype), weight.to(dtype), dims, keepdims).to(input.dtype)


GradPath = Optional[Literal["input", "weight"]]
SoftmaxAxis = Union[bool, Axes]


def selfwmean(
    input: Tensor,
    axis: Optional[Axes] = None,
    keepdims: bool = False,
    gradpath: GradPath = "input",
    softmax_axis: SoftmaxAxis = False,
    softmax_invert: bool = False,
) -> Tensor:
    r"""Mean of ``input`` weighted by itself (or by its softmax): with the softmax, a soft maximum.

    .. math::
        \operatorname{selfwmean}(X) = \frac{\sum_i w_i X_i}{\sum_i w_i}, \qquad
        w = X \text{ or } w = \operatorname{softmax}(\pm X)

    Args:
        input: Floating-point tensor.
        axis: Axis or axes to reduce, ``None`` for all.
        keepdims: Keep reduced axes with size 1.
        gradpath: ``'input'``: the gradient flows through the input only (the weight is a constant);
            ``'weight'``: through the weight only; ``None``: through both.
        softmax_axis: ``False``: the weight is the input itself; ``True``: its softmax over all axes; an
            axis or axes: its softmax over those.
        softmax_invert: Take the softmax of ``-input``, weighting the minimum instead of the maximum. As
            hypercoil documents it, only the softmax's input is negated (hypercoil's code also negates the
            input being averaged, returning minus the soft minimum).

    Returns:
        ``input``'s shape with ``axis`` reduced, in ``input``'s dtype.

    Example:
        >>> X = torch.tensor([[-100.0, 0.0, -100.0], [0.0, -100.0, -100.0]])
        >>> float(selfwmean(X, softmax_axis=-1)) > -1e-30   # each row's softmax sits on its maximum, 0
        True
        >>> selfwmean(X, softmax_axis=-1, softmax_invert=True)   # and with -X on the minima, -100
        tensor(-100.)
    """
    input = check_floating_tensor("input", input)
    dims = tuple(range(input.ndim)) if axis is None else check_axes("axis", axis, input.ndim)
    check_bool("keepdims", keepdims)
    check_choice("gradpath", gradpath, ("input", "weight", None))
    check_bool("softmax_invert", softmax_invert)
    dtype = compute_dtype(input)
    work = input.to(dtype)
    if softmax_axis is False:
        weight = work
    else:
        every = tuple(range(input.ndim))
        axes = every if softmax_axis is True else check_axes("softmax_axis", softmax_axis, input.ndim)
        weight = softmax(-work if softmax_invert else work, axes, dtype)
    if gradpath == "input":
        weight = weight.detach()
    elif gradpath == "weight":
        work = work.detach()
    return _weighted_mean(work, weight, dims, keepdims).to(input.dtype)


def wmean_scalarise(
    *, inner: Optional[Scalarisation] = None, axis: Optional[Axes] = None, keepdims: bool = False
) -> Scalarisation:
    r"""Weighted mean of the score over ``axis`` (:func:`wmean`), the weight given at call time as the
    keyword argument ``scalarisation_weight``: :math:`\sum_i w_i X_i / \sum_i w_i`.

    To weight several axes, give one weight over all of them (its axes in increasing order) rather than
    nesting two ``wmean_scalarise`` maps (hypercoil supports nesting only when the weights are equal).

    Args:
        inner: A scalarisation applied first (``None``: the score itself).
        axis: Axis or axes to reduce, ``None`` for all.
        keepdims: Keep reduced axes with size 1.

    Returns:
        A scalarisation (score function -> reduced score function), which takes ``scalarisation_weight=``.

    Example:
        >>> z = torch.tensor([[1.0, 4.0, 2.0], [0.0, 9.0, 1.0]])
        >>> mean_scalarise(inner=wmean_scalarise(axis=1))()(z, scalarisation_weight=torch.tensor([1.0, 0.0, 1.0]))
        tensor(1.)
    """
    return _map(
        inner,
        axis,
        keepdims,
        lambda X, dims, scalarisation_weight: wmean(X, scalarisation_weight, axis=dims, keepdims=keepdims),
        keywords=("scalarisation_weight",),
    )


def selfwmean_scalarise(
    *,
    inner: Optional[Scalarisation] = None,
    axis: Optional[Axes] = None,
    gradpath: GradPath = "input",
    softmax_axis: SoftmaxAxis = False,
    softmax_invert: bool = False,
    keepdims: bool = False,
) -> Scalarisation:
    r"""Self-weighted mean of the score over ``axis`` (:func:`selfwmean`): with ``softmax_axis``, a soft
    maximum (or minimum, with ``softmax_invert``).

    .. math::
        \frac{\sum_i w_i X_i}{\sum_i w_i}, \qquad w = X \text{ or } \operatorname{softmax}(\pm X)

    Args:
        inner: A scalarisation applied first (``None``: the score itself).
        axis: Axis or axes to reduce, ``None`` for all.
        gradpath: As in :func:`selfwmean`.
        softmax_axis: As in :func:`selfwmean`.
        softmax_invert: As in :func:`selfwmean`.
        keepdims: Keep reduced axes with size 1.

    Returns:
        A scalarisation (score function -> reduced score function).

    Example:
        >>> X = torch.tensor([[-100.0, 0.0, -100.0], [0.0, -100.0, -100.0]])
        >>> selfwmean_scalarise(softmax_axis=-1)()(X).abs() < 1e-6
        tensor(True)
    """
    check_choice("gradpath", gradpath, ("input", "weight", None))
    check_bool("softmax_invert", softmax_invert)
    if not isinstance(softmax_axis, bool):
        check_axes_spec("softmax_axis", softmax_axis)
    return _map(
        inner,
        axis,
        keepdims,
        lambda X, dims: selfwmean(
            X, axis=dims, keepdims=keepdims, gradpath=gradpath, softmax_axis=softmax_axis,
            softmax_invert=softmax_invert,
        ),
    )
