"""Smoothness (hypercoil's ``smoothness``): backward differences along an axis, like ``jnp.diff``."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from neuroreg._validation import check_axes, check_floating_tensor, check_int, check_real

__all__ = ["smoothness"]


def smoothness(X: Tensor, *, n: int = 1, pad_value: Optional[float] = None, axis: int = -1) -> Tensor:
    r"""The ``n``-th backward difference of ``X`` along ``axis``.

    .. math::
        (\Delta X)_i = X_i - X_{i-1}, \qquad \text{smoothness}(X) = \Delta^n X

    The score is signed: scalarise it with a norm (``vnorm_scalarise(p=1)``, ``meansq_scalarise``), not a
    plain mean or sum, to penalise large or sudden changes.

    Args:
        X: Floating-point tensor of at least one dimension.
        n: Number of differences taken, an int >= 0 (``n=0`` returns ``X`` unpadded, as ``jnp.diff`` does).
        pad_value: A number prepended once along ``axis`` before differencing (as ``jnp.diff``'s
            ``prepend``; ``torch.diff`` would want a tensor), or ``None`` for no padding.
        axis: The axis along which differences are taken.

    Returns:
        Shape of ``X`` with ``axis`` of length ``max(size + (pad_value is not None) - n, 0)`` for ``n >= 1``,
        in ``X``'s dtype.

    Example:
        >>> X = torch.tensor([[0.0, 0.1, 0.3], [0.2, 0.3, 0.6]])
        >>> smoothness(X)
        tensor([[0.1000, 0.2000],
                [0.1000, 0.3000]])
        >>> smoothness(X, axis=0, pad_value=0.0)
        tensor([[0.0000, 0.1000, 0.3000],
                [0.2000, 0.2000, 0.3000]])
    """
    X = check_floating_tensor("X", X, min_ndim=1)
    n, pad_value, axis = _options(n=n, pad_value=pad_value, axis=axis)
    (dim,) = check_axes("axis", axis, X.ndim)
    prepend = None
    if pad_value is not None:
        shape = list(X.shape)
        shape[dim] = 1
        prepend = X.new_full(shape, pad_value)
    return torch.diff(X, n=n, dim=dim, prepend=prepend)


def _options(*, n: int, pad_value: Optional[float], axis: int) -> Tuple[int, Optional[float], int]:
    """Check :func:`smoothness`'s options (also at a loss's construction)."""
    n = check_int("n", n, low=0)
    pad_value = None if pad_value is None else check_real("pad_value", pad_value)
    return n, pad_value, check_int("axis", axis)
