r"""Scalarisation maps (hypercoil's contract): turn a tensor-valued score function into a reduced one.

A scalarisation map is called with its options and returns a *scalarisation*: a function that takes a score
function ``f`` and returns ``reduced_f(*args, **kwargs) = reduce(inner(f)(*args, **kwargs))``. Maps compose
through ``inner``, innermost first::

    mean_scalarise(inner=vnorm_scalarise(axis=0))(smoothness)(X, axis=0)   # mean over columns of ‖ΔX‖₂

Each map reduces over ``axis`` (``None``: every axis; an axis refers to the output of ``inner``, unless the
inner maps set ``keepdims=True``) and keeps the reduced axes with ``keepdims``. Reductions of float16/bfloat16
tensors are computed in float32 and returned in the input dtype.
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional, Tuple, Union

import torch
from torch import Tensor

from neuroreg._validation import check_axes, check_axes_spec, check_bool, check_callable, check_choice, check_real
from neuroreg.functional._common import Axes

__all__ = [
    "max_scalarise",
    "mean_scalarise",
    "meansq_scalarise",
    "norm_scalarise",
    "sum_scalarise",
    "vnorm_scalarise",
]

ScoreFunction = Callable[..., Tensor]
Scalarisation = Callable[[ScoreFunction], ScoreFunction]
NormOrder = Union[float, Literal["fro", "nuc"]]


def _identity(X: Tensor) -> Tensor:
    return X


def _map(
    inner: Optional[Scalarisation],
    axis: Optional[Axes],
    keepdims: bool,
    reduction: Callable[[Tensor, Optional[Tuple[int, ...]]], Tensor],
) -> Scalarisation:
    """The scalarisation applying ``reduction(X, dims)`` to what ``inner(f)`` returns.

    ``dims`` is ``None`` (every axis) or the checked, non-empty axes; an empty ``axis`` reduces nothing, as in
    NumPy (PyTorch would reduce everything).
    """
    inner = None if inner is None else check_callable("inner", inner)
    axis = None if axis is None else check_axes_spec("axis", axis)
    check_bool("keepdims", keepdims)

    def scalarisation(f: ScoreFunction = _identity) -> ScoreFunction:
        score = f if inner is None else inner(f)

        def reduced_f(*args: Any, **kwargs: Any) -> Tensor:
            X = score(*args, **kwargs)
            dims = None if axis is None else check_axes("axis", axis, X.ndim)
            if dims == ():
                return X
            work = X.float() if X.dtype in (torch.float16, torch.bfloat16) else X
            return reduction(work, dims).to(X.dtype)

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
        A scalarisation: score function -> reduced score function.

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
        A scalarisation: score function -> reduced score function.

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
        A scalarisation: score function -> reduced score function.

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
        A scalarisation: score function -> reduced score function.

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
        A scalarisation: score function -> reduced score function.

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
        A scalarisation: score function -> reduced score function.

    Example:
        >>> from neuroreg.functional import smoothness
        >>> X = torch.tensor([[0, .1, .2, .3], [.2, .3, .4, .5], [.4, .5, .6, .7]])
        >>> mean_scalarise(inner=vnorm_scalarise(axis=0))(smoothness)(X, axis=0)
        tensor(0.2828)
        >>> vnorm_scalarise(p=1, axis=None)(smoothness)(X)    # SmoothnessLoss's default: L1 over all
        tensor(0.9000)
    """
    return norm_scalarise(p=p, force_vector_norm=True, axis=axis, inner=inner, keepdims=keepdims)
