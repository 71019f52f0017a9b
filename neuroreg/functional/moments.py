"""Moments of data under a soft parcellation and of a multivariate time series (hypercoil's
``second_moment``, ``second_moment_centred``, ``multivariate_kurtosis`` and ``qcfc``)."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from neuroreg._validation import check_bool, check_floating_tensor, check_real, check_size
from neuroreg.functional._common import compute_dtype
from neuroreg.functional.batchcorr import Tolerance, batch_corr

__all__ = ["multivariate_kurtosis", "qcfc", "second_moment", "second_moment_centred"]


def second_moment(
    X: Tensor, weight: Tensor, *, standardise: bool = False, skip_normalise: bool = False
) -> Tensor:
    r"""Weighted second moment of the observations about each parcel's weighted mean (hypercoil's
    ``second_moment``): low when every parcel is internally homogeneous.

    .. math::
        \Sigma_{wt} = \frac{\sum_n |A_{wn}| \, (X_{nt} - \mu_{wt})^2}{\sum_n |A_{wn}|}, \qquad
        \mu = \frac{A X}{A \mathbf{1}}

    Computed without hypercoil's ``(*, W, N, T)`` intermediate: :math:`\sum_n |A_{wn}|(X_{nt} - \mu_{wt})^2`
    is expanded into three matrix products of :math:`|A|` with :math:`X` and :math:`X^2`, after subtracting
    each time point's mean over ``N`` (which leaves the differences, and so the value, unchanged and keeps
    the expansion free of cancellation), so memory is :math:`O(WT + NT)`.

    Args:
        X: Observations, shape ``(*, N, T)``: ``N`` locations (voxels) with ``T`` observations each.
        weight: Weights, shape ``(*, W, N)``: ``W`` parcels over the ``N`` locations.
        standardise: z-score each location's observations over ``T`` first (population standard deviation,
            as ``jnp.std``).
        skip_normalise: Leave out the division by :math:`\sum_n |A_{wn}|`: the weighted sum of squared errors
            about each mean, which hypercoil finds works better for learning parcellations.

    Returns:
        Shape ``(*, W, T)``, in the promoted dtype of ``X`` and ``weight``.

    Example:
        >>> X = torch.tensor([[1.0], [3.0], [5.0]])               # 3 locations, 1 observation
        >>> second_moment(X, torch.tensor([[1.0, 1.0, 0.0]]))     # mean 2, squared deviations 1 and 1
        tensor([[1.]])
    """
    X, weight = _check_data(X, weight)
    standardise = check_bool("standardise", standardise)
    skip_normalise = check_bool("skip_normalise", skip_normalise)
    out_dtype, dtype = torch.promote_types(X.dtype, weight.dtype), compute_dtype(X, weight)
    X, weight = X.to(dtype), weight.to(dtype)
    if standardise:
        X = _zscore(X)
    mu = (weight @ X) / weight.sum(-1, keepdim=True)
    return _second_moment(X, weight, mu, skip_normalise).to(out_dtype)


def second_moment_centred(
    X: Tensor,
    weight: Tensor,
    mu: Tensor,
    *,
    standardise_data: bool = False,
    standardise_mu: bool = False,
    skip_normalise: bool = False,
) -> Tensor:
    r"""Weighted second moment of the observations about given means (hypercoil's
    ``second_moment_centred``): :func:`second_moment` with :math:`\mu` precomputed.

    .. math::
        \Sigma_{wt} = \frac{\sum_n |A_{wn}| \, (X_{nt} - \mu_{wt})^2}{\sum_n |A_{wn}|}

    Args:
        X: Observations, shape ``(*, N, T)``.
        weight: Weights, shape ``(*, W, N)``.
        mu: Means, shape ``(*, W, T)`` (one series per parcel; broadcast).
        standardise_data: z-score each location's observations over ``T`` first.
        standardise_mu: z-score each mean series over ``T`` first. (hypercoil's code subtracts the means
            without keeping the reduced axis, which broadcasts each row's mean along ``T`` and runs only when
            ``W == T``; this z-scores each row, as documented.)
        skip_normalise: As in :func:`second_moment`.

    Returns:
        Shape ``(*, W, T)``, in the promoted dtype of the inputs.

    Example:
        >>> X = torch.tensor([[1.0], [3.0], [5.0]])
        >>> second_moment_centred(X, torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[3.0]]))  # (4 + 0) / 2
        tensor([[2.]])
    """
    X, weight = _check_data(X, weight)
    mu = check_floating_tensor("mu", mu, min_ndim=2)
    standardise_data = check_bool("standardise_data", standardise_data)
    standardise_mu = check_bool("standardise_mu", standardise_mu)
    skip_normalise = check_bool("skip_normalise", skip_normalise)
    out_dtype = torch.promote_types(torch.promote_types(X.dtype, weight.dtype), mu.dtype)
    dtype = compute_dtype(X, weight, mu)
    X, weight, mu = X.to(dtype), weight.to(dtype), mu.to(dtype)
    if standardise_data:
        X = _zscore(X)
    if standardise_mu:
        mu = _zscore(mu)
    return _second_moment(X, weight, mu, skip_normalise).to(out_dtype)


def qcfc(fc: Tensor, qc: Tensor, *, tol: Tolerance = 0, tol_sig: float = 0.1, abs: bool = True) -> Tensor:
    r"""Quality control-functional connectivity correlation (hypercoil's ``qcfc``): :func:`batch_corr` of
    connectivity measures with a quality measure such as head motion, over the batch axis.

    .. math::
        s_f = \max(|r_f(\text{fc}, \text{qc})| - \text{tol}, 0)

    Args:
        fc: Connectivity measures, shape ``(batch, *)``.
        qc: One quality measure per batch element.
        tol: As in :func:`batch_corr`.
        tol_sig: As in :func:`batch_corr`.
        abs: As in :func:`batch_corr`.

    Returns:
        Shape ``(features, 1)``, in ``fc``'s dtype.

    Example:
        >>> qc = torch.tensor([1.0, 2.0, 3.0, 4.0])
        >>> [round(r, 4) for r in qcfc(torch.stack([qc, torch.ones(4)], dim=1), qc).flatten().tolist()]
        [1.0, 0.0]
    """
    return batch_corr(fc, qc, tol=tol, tol_sig=tol_sig, abs=abs)


def multivariate_kurtosis(ts: Tensor, *, l2: float = 0.0, dimensional_scaling: bool = False) -> Tensor:
    r"""Negative multivariate kurtosis of a time series (hypercoil's ``multivariate_kurtosis``), after Mardia:
    the mean over time points of the squared Mahalanobis norm under the series' own precision.

    .. math::
        \kappa = -\frac{1}{T \, s} \sum_t \left(x_t^\top (\Sigma + \ell_2 I)^{-1} x_t\right)^2, \qquad
        s = d(d + 2) \text{ with dimensional\_scaling, else } 1

    :math:`\Sigma` is the unbiased covariance of the ``d`` channels; for a stationary Gaussian process
    :math:`-\kappa \to d(d + 2)` (so :math:`-1` with ``dimensional_scaling``). As in hypercoil, the time points
    :math:`x_t` are not centred (centre ``ts`` first for Mardia's statistic of data with a mean), and the
    sign is negative, so minimising the loss raises the kurtosis. A linear solve replaces hypercoil's matrix
    inverse (the same values, better conditioned).

    Args:
        ts: Time series, shape ``(*, d, T)``: one row per channel.
        l2: Ridge :math:`\ell_2 \geq 0` added to the covariance's diagonal, to make it invertible.
        dimensional_scaling: Divide by :math:`d(d + 2)`.

    Returns:
        Shape ``(*)``, in ``ts``'s dtype.

    Example:
        >>> ts = torch.tensor([[1.0, -1.0, 1.0, -1.0]])            # variance 4/3: each norm is 3/4
        >>> multivariate_kurtosis(ts)
        tensor(-0.5625)
    """
    ts = check_floating_tensor("ts", ts, min_ndim=2)
    l2 = check_real("l2", l2, low=0)
    dimensional_scaling = check_bool("dimensional_scaling", dimensional_scaling)
    work = ts.to(compute_dtype(ts))
    centred = work - work.mean(-1, keepdim=True)
    sigma = centred @ centred.mT / (work.shape[-1] - 1)
    if l2 > 0:
        sigma = sigma + l2 * torch.eye(sigma.shape[-1], dtype=sigma.dtype, device=sigma.device)
    norms = (work * torch.linalg.solve(sigma, work)).sum(-2)
    d = ts.shape[-2]
    scale = d * (d + 2) if dimensional_scaling else 1
    return (-norms.square().mean(-1) / scale).to(ts.dtype)


def _check_data(X: Tensor, weight: Tensor) -> Tuple[Tensor, Tensor]:
    X = check_floating_tensor("X", X, min_ndim=2)
    weight = check_floating_tensor("weight", weight, min_ndim=2)
    check_size("weight", weight, -1, X.shape[-2], "one column per location (row) of X")
    return X, weight


def _zscore(X: Tensor) -> Tensor:
    """z-score over the last axis with the population standard deviation (``jnp.std``'s default)."""
    return (X - X.mean(-1, keepdim=True)) / X.std(-1, correction=0, keepdim=True)


def _second_moment(X: Tensor, weight: Tensor, mu: Tensor, skip_normalise: bool) -> Tensor:
    r""":math:`\sum_n |A_{wn}| (X_{nt} - \mu_{wt})^2`, over :math:`\sum_n |A_{wn}|` unless ``skip_normalise``."""
    mass = weight.abs()
    # A shift common to X and mu leaves every difference unchanged; subtracting each time point's mean over
    # the locations keeps the expanded squares small, so they do not cancel.
    shift = X.mean(-2, keepdim=True)
    X, mu = X - shift, mu - shift
    total = mass.sum(-1, keepdim=True)
    sigma = mass @ X.square() - 2 * mu * (mass @ X) + mu.square() * total
    # Rounding can leave a tiny negative where the moment is 0.
    sigma = sigma.clamp_min(0)
    return sigma if skip_normalise else sigma / total
