"""neuroreg: PyTorch regularizations for neural-network models of the brain."""

from neuroreg import callbacks, functional, scalarise, schedules
from neuroreg.base import BaseRegularization, RegularizationList
from neuroreg.losses import (
    BatchCorrelationLoss,
    EquilibriumLogitLoss,
    EquilibriumLoss,
    JSDivergenceLogitLoss,
    JSDivergenceLoss,
    SmoothnessLoss,
)
from neuroreg.norms import L1, L2, Lp

__version__ = "0.1.0"

__all__ = [
    "L1",
    "L2",
    "BaseRegularization",
    "BatchCorrelationLoss",
    "EquilibriumLogitLoss",
    "EquilibriumLoss",
    "JSDivergenceLogitLoss",
    "JSDivergenceLoss",
    "Lp",
    "RegularizationList",
    "SmoothnessLoss",
    "callbacks",
    "functional",
    "scalarise",
    "schedules",
]
