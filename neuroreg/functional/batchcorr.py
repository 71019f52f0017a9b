"""Correlation over the batch axis (hypercoil's ``batch_corr`` and ``auto_tol``), e.g. QC-FC: how much every
feature of a batch of outputs follows a nuisance measure such as head motion."""

from __future__ import annotations

import functools
import math
import operator
from typing import Literal, Tuple, Union

import torch
from torch import Tensor

from neuroreg._validation import check_bool, check_choice, check_floating_tensor, check_int, check_open_unit, check_real
from neuroreg.functional._common import compute_dtype

__all__ = ["auto_tol", "batch_corr"]

Tolerance = Union[float, Literal["auto"]]


def auto_tol(batch_size: int, significance: float = 0.1, tails: int = 2) -> float:
    r"""The correlation that a Student t-test over ``batch_size`` observations finds significant.

    .. math::
        r_{tol} = \sqrt{\frac{t^2}{N - 2 + t^2}}, \qquad
        t = F^{-1}_{t,\,N-2}\!\left(1 - \frac{\alpha}{\text{tails}}\right)

    (hypercoil's docstring prints :math:`N - 2 - t^2`, its code computes :math:`N - 2 + t^2`, the
    inversion of :math:`t = r\sqrt{(N-2)/(1-r^2)}`: this follows the code.) The value is uncorrected for
    multiple comparisons. Results are cached per ``(batch_size, significance, tails)``, and under
    ``torch.compile`` the value is computed eagerly, in Python, while the graph is traced, and enters the graph
    as a constant (one per batch size: no graph break, and nothing of scipy in the graph).

    Args:
        batch_size: Number of observations :math:`N`, an int >= 3 (the test has :math:`N - 2` degrees of
            freedom).
        significance: Significance level :math:`\alpha`, in (0, 1).
        tails: 1 or 2.

    Returns:
        The tolerance, a float in (0, 1).

    Example:
        >>> round(auto_tol(20), 4)
        0.3783
    """
    batch_size = check_int("batch_size", batch_size, low=3)
    significance = check_open_unit("significance", significance)
    tails = check_choice("tails", check_int("tails", tails), (1, 2))
    return _auto_tol_constant(batch_size, significance, tails)


def _auto_tol_constant(batch_size: int, significance: float, tails: int) -> float:
    """:func:`_auto_tol`, which the compiler calls while tracing and treats as a constant of the graph."""
    return _auto_tol(batch_size, significance, tails)


# What torch.compiler.assume_constant_result(fn) does, without its import of torch._dynamo (which costs over a
# second at `import neuroreg`): dynamo then calls the function eagerly at trace time, on its (constant)
# arguments, instead of tracing through the cache into scipy. Its guards on the input shapes make a new batch
# size a new graph, with its own constant. test_batchcorr checks that compiling stays one graph.
_auto_tol_constant._dynamo_marked_constant = True  # type: ignore[attr-defined]


@functools.cache
def _auto_tol(batch_size: int, significance: float, tails: int) -> float:
    from scipy.stats import t  # imported here: scipy is slow to import and only 'auto' needs it

    t_squared = float(t.ppf(1 - significance / tails, batch_size - 2)) ** 2
    return math.sqrt(t_squared / (batch_size - 2 + t_squared))


def batch_corr(X: Tensor, N: Tensor, *, tol: Tolerance = 0, tol_sig: float = 0.1, abs: bool = True) -> Tensor:
    r"""Pearson correlation over the batch (first) axis of every feature of ``X`` with the vector ``N``,
    thresholded at ``tol``.

    .. math::
        r_f = \frac{\sum_b (X_{bf} - \bar X_f)(N_b - \bar N)}
        {\sqrt{\sum_b (X_{bf} - \bar X_f)^2 \sum_b (N_b - \bar N)^2}}, \qquad
        s_f = \max(|r_f| - \text{tol}, 0) \;\; (\times \operatorname{sign} r_f \text{ if not abs})

    A constant feature (or a constant ``N``) has correlation 0, with a zero gradient, rather than NaN. A NaN
    or infinite entry of a feature (or of ``N``) makes that feature's (every feature's) value NaN, never a
    number; finite inputs of any magnitude give finite correlations.

    Args:
        X: Floating-point tensor of shape ``(batch, *)``; features are the elements of ``X[b]``, ordered as
            hypercoil orders them (``X`` with its first and last axes swapped, flattened).
        N: One measure per batch element: ``batch`` elements, any shape (usually ``(batch,)``).
        tol: A real >= 0, or ``'auto'`` for :func:`auto_tol` ``(batch, significance=tol_sig)``: only
            correlations beyond it count, shrunk by it.
        tol_sig: Significance level for ``tol='auto'``, in (0, 1).
        abs: Return :math:`\max(|r| - \text{tol}, 0)`; ``False`` gives it the sign of :math:`r`.

    Returns:
        Shape ``(features, 1)``, in ``X``'s dtype.

    Example:
        >>> N = torch.tensor([1.0, 2.0, 3.0, 4.0])
        >>> X = torch.stack([N, -N, torch.ones(4)], dim=1)      # batch 4, 3 features
        >>> batch_corr(X, N, abs=False)
        tensor([[ 1.],
                [-1.],
                [ 0.]])
        >>> batch_corr(X, N, tol=0.25)
        tensor([[0.7500],
                [0.7500],
                [0.0000]])
    """
    X = check_floating_tensor("X", X, min_ndim=1)
    if not isinstance(N, Tensor):
        raise TypeError(f"N must be a tensor, got {N!r} of type {type(N).__name__}")
    tol, tol_sig, abs = _options(tol=tol, tol_sig=tol_sig, abs=abs)
    batch = X.shape[0]
    if N.numel() != batch:
        raise ValueError(
            f"N must hold one value per batch element: X has batch length {batch}, N has shape {tuple(N.shape)}"
        )
    if tol == "auto":
        # operator.index makes a symbolic batch size (torch.compile's dynamic shapes) a concrete int, guarded
        # on, so that the tolerance is a constant of each graph; on an int it is a no-op.
        tol = auto_tol(operator.index(batch), significance=tol_sig)
    dtype = compute_dtype(X, N) if N.is_floating_point() else compute_dtype(X)
    features = _centred(X.transpose(0, -1).reshape(-1, batch).to(dtype))
    measure = _centred(N.reshape(1, batch).to(dtype))
    # Scaled rows have norms <= sqrt(batch): their product cannot overflow either.
    features, measure = _scaled_rows(features), _scaled_rows(measure)
    r = (features @ measure.mT) / _nonzero(_norms(features) * _norms(measure))
    thresholded = (r.abs() - tol).clamp_min(0)
    return (thresholded if abs else r.sign() * thresholded).to(X.dtype)


def _scaled_rows(X: Tensor) -> Tensor:
    """Each row over its largest magnitude, so that its sum of squares cannot overflow (it would in float32 for
    entries beyond ~1e19, while r is finite for any finite input; BLAS's nrm2 scales likewise). r does not
    depend on the scale, which is a constant of the backward pass. NaN and inf are kept, and show in r."""
    return X / _nonzero(X.detach().abs().amax(-1, keepdim=True))


def _norms(X: Tensor) -> Tensor:
    return torch.linalg.vector_norm(X, dim=-1, keepdim=True)


def _nonzero(norm: Tensor) -> Tensor:
    """A constant row is exactly 0 after centring: dividing by 1 instead of a zero norm then gives r = 0."""
    return torch.where(norm == 0, 1.0, norm)


def _centred(X: Tensor) -> Tensor:
    """Rows minus their means, after subtracting each row's first value: a constant row is then exactly 0
    (its mean would otherwise round to a nonzero residual that correlates with anything)."""
    shifted = X - X[:, :1]
    return shifted - shifted.mean(-1, keepdim=True)


def _options(*, tol: Tolerance, tol_sig: float, abs: bool) -> Tuple[Tolerance, float, bool]:
    """Check :func:`batch_corr`'s options (also at a loss's construction)."""
    tol = check_choice("tol", tol, ("auto",)) if isinstance(tol, str) else check_real("tol", tol, low=0)
    tol_sig = check_open_unit("tol_sig", tol_sig)
    return tol, tol_sig, check_bool("abs", abs)
