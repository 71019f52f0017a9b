"""neuroreg: PyTorch regularizations for neural-network models of the brain."""

from neuroreg import callbacks, constraints, functional, init, scalarise, schedules
from neuroreg.activity import ActivityL1, ActivityL2, FiringRateKL, FiringRateRange
from neuroreg.base import BaseRegularization, RegularizationList
from neuroreg.connectome import (
    DaleLaw,
    DaleLawL2,
    DaleSignPenalty,
    ExcRatioTargetRegularization,
    InhRatioTargetRegularization,
    WeightsDistance,
)
from neuroreg.losses import (
    BatchCorrelationLoss,
    CompactnessLoss,
    ConnectopyLoss,
    DispersionLoss,
    EigenmapsLoss,
    EquilibriumLogitLoss,
    EquilibriumLoss,
    InterhemisphericTetherLoss,
    JSDivergenceLogitLoss,
    JSDivergenceLoss,
    ModularityLoss,
    MultivariateKurtosis,
    QCFCLoss,
    ReferenceTetherLoss,
    SecondMomentCentredLoss,
    SecondMomentLoss,
    SmoothnessLoss,
)
from neuroreg.norms import L1, L2, Lp

__version__ = "0.1.0"

__all__ = [
    "L1",
    "L2",
    "ActivityL1",
    "ActivityL2",
    "BaseRegularization",
    "BatchCorrelationLoss",
    "CompactnessLoss",
    "ConnectopyLoss",
    "DaleLaw",
    "DaleLawL2",
    "DaleSignPenalty",
    "DispersionLoss",
    "EigenmapsLoss",
    "EquilibriumLogitLoss",
    "EquilibriumLoss",
    "ExcRatioTargetRegularization",
    "FiringRateKL",
    "FiringRateRange",
    "InhRatioTargetRegularization",
    "InterhemisphericTetherLoss",
    "JSDivergenceLogitLoss",
    "JSDivergenceLoss",
    "Lp",
    "ModularityLoss",
    "MultivariateKurtosis",
    "QCFCLoss",
    "ReferenceTetherLoss",
    "RegularizationList",
    "SecondMomentCentredLoss",
    "SecondMomentLoss",
    "SmoothnessLoss",
    "WeightsDistance",
    "callbacks",
    "constraints",
    "functional",
    "init",
    "scalarise",
    "schedules",
]
