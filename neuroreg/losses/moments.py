"""hypercoil's moment losses: second moments under a parcellation, QC-FC and multivariate kurtosis."""

from __future__ import annotations

from typing import Any, Optional

from torch import Tensor

from neuroreg._validation import check_bool, check_real
from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional.moments import multivariate_kurtosis, second_moment, second_moment_centred
from neuroreg.losses._arguments import _ArgumentsLoss
from neuroreg.losses._base import _ScalarisedLoss
from neuroreg.losses.batchcorr import BatchCorrelationLoss
from neuroreg.scalarise import Scalarisation, mean_scalarise

__all__ = ["MultivariateKurtosis", "QCFCLoss", "SecondMomentCentredLoss", "SecondMomentLoss"]


class SecondMomentLoss(_ArgumentsLoss):
    r"""Weighted second moment of data about each parcel's mean (hypercoil's ``SecondMomentLoss``): favours
    internally homogeneous parcels.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}_{wt}
        \frac{\sum_n |A_{wn}| (X_{nt} - \mu_{wt})^2}{\sum_n |A_{wn}|}, \qquad \mu = \frac{A X}{A \mathbf{1}}

    Args:
        params: ``None`` to call it as ``loss(X, weight)``; or parcellation weights ``(W, N)`` to hold,
            called as ``loss()`` on the data bound with ``X=``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        standardise: As in :func:`neuroreg.functional.second_moment`.
        skip_normalise: As in :func:`neuroreg.functional.second_moment`.
        X: Data ``(N, T)`` to bind (a buffer; needed with ``params``), or ``None`` to give it per call.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.SecondMomentLoss()(torch.tensor([[1.0], [3.0], [5.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
        tensor(1.)
    """

    arguments = ("X", "weight")
    held = ("weight",)

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        standardise: bool = False,
        skip_normalise: bool = False,
        X: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "standardise": check_bool("standardise", standardise),
            "skip_normalise": check_bool("skip_normalise", skip_normalise),
        }
        super().__init__(
            params, Lambda, score=second_moment, options=options, scalarisation=scalarisation or mean_scalarise(),
            bound={"X": X}, nu=nu, name=name, **kwargs,
        )


class SecondMomentCentredLoss(_ArgumentsLoss):
    r"""Weighted second moment of data about given means (hypercoil's ``SecondMomentCentredLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}_{wt}
        \frac{\sum_n |A_{wn}| (X_{nt} - \mu_{wt})^2}{\sum_n |A_{wn}|}

    Args:
        params: ``None`` to call it as ``loss(X, weight, mu)``; or parcellation weights to hold, called as
            ``loss()`` on the bound ``X`` and ``mu``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        standardise_data: As in :func:`neuroreg.functional.second_moment_centred`.
        standardise_mu: As in :func:`neuroreg.functional.second_moment_centred`.
        skip_normalise: As in :func:`neuroreg.functional.second_moment_centred`.
        X: Data ``(N, T)`` to bind (a buffer), or ``None`` to give it per call.
        mu: Means ``(W, T)`` to bind (a buffer), or ``None`` to give them per call.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> loss = nr.SecondMomentCentredLoss(mu=torch.tensor([[3.0]]))
        >>> loss(torch.tensor([[1.0], [3.0], [5.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
        tensor(2.)
    """

    arguments = ("X", "weight", "mu")
    held = ("weight",)

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        standardise_data: bool = False,
        standardise_mu: bool = False,
        skip_normalise: bool = False,
        X: Optional[Tensor] = None,
        mu: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "standardise_data": check_bool("standardise_data", standardise_data),
            "standardise_mu": check_bool("standardise_mu", standardise_mu),
            "skip_normalise": check_bool("skip_normalise", skip_normalise),
        }
        super().__init__(
            params, Lambda, score=second_moment_centred, options=options,
            scalarisation=scalarisation or mean_scalarise(), bound={"X": X, "mu": mu}, nu=nu, name=name, **kwargs,
        )


class QCFCLoss(BatchCorrelationLoss):
    r"""Correlation of functional-connectivity measures with a quality measure over the batch (hypercoil's
    ``QCFCLoss``): :class:`~neuroreg.BatchCorrelationLoss` called as ``loss(FC, QC)``.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}_f \max(|r_f(\text{FC}, \text{QC})| - \text{tol}, 0)

    Its score, :func:`neuroreg.functional.qcfc`, is :func:`~neuroreg.functional.batch_corr`; the arguments
    are those of :class:`~neuroreg.BatchCorrelationLoss` (``target=`` is the fixed ``QC`` with ``params``).

    Example:
        >>> import torch, neuroreg as nr
        >>> QC = torch.tensor([1.0, 2.0, 3.0, 4.0])
        >>> nr.QCFCLoss(tol=0.5)(torch.stack([QC, torch.ones(4)], dim=1), QC)   # mean of 0.5, 0
        tensor(0.2500)
    """

    inputs = ("FC", "QC")


class MultivariateKurtosis(_ScalarisedLoss):
    r"""Negative multivariate kurtosis of a time series (hypercoil's ``MultivariateKurtosis``).

    .. math::
        \mathcal{L} = -\Lambda \, \operatorname{mean} \frac{1}{T s} \sum_t
        \left(x_t^\top (\Sigma + \ell_2 I)^{-1} x_t\right)^2

    Args:
        params: ``None`` to call it as ``loss(X)`` on series ``(*, d, T)``; or series to hold, called as
            ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        l2: As in :func:`neuroreg.functional.multivariate_kurtosis`.
        dimensional_scaling: As in :func:`neuroreg.functional.multivariate_kurtosis`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.MultivariateKurtosis()(torch.tensor([[1.0, -1.0, 1.0, -1.0]]))
        tensor(-0.5625)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        l2: float = 0.0,
        dimensional_scaling: bool = False,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "l2": check_real("l2", l2, low=0),
            "dimensional_scaling": check_bool("dimensional_scaling", dimensional_scaling),
        }
        super().__init__(
            params, Lambda, score=multivariate_kurtosis, options=options,
            scalarisation=scalarisation or mean_scalarise(), nu=nu, name=name, **kwargs,
        )
