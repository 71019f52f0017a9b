"""hypercoil's losses as neuroreg regularizations: equilibrium, Jensen-Shannon divergence, smoothness and
batch correlation.

Each class is ``scalarisation(score)`` over a function of :mod:`neuroreg.functional`, weighted by ``Lambda``
(hypercoil's ``nu``). It is used on tensors given at call time, with hypercoil's call signature, or on held
parameters, called with no argument (so that it can sit in a :class:`~neuroreg.RegularizationList` or act
as a trainer callback).
"""

from neuroreg.losses.basic import (
    BimodalSymmetricLoss,
    ConstraintViolationLoss,
    HingeLoss,
    MSELoss,
    NormedLoss,
    UnilateralLoss,
)
from neuroreg.losses.batchcorr import BatchCorrelationLoss
from neuroreg.losses.bregman import BregmanDivergenceLogitLoss, BregmanDivergenceLoss
from neuroreg.losses.divergence import JSDivergenceLogitLoss, JSDivergenceLoss
from neuroreg.losses.entropy import EntropyLogitLoss, EntropyLoss, KLDivergenceLogitLoss, KLDivergenceLoss
from neuroreg.losses.equilibrium import EquilibriumLogitLoss, EquilibriumLoss
from neuroreg.losses.gram import GramDeterminantLoss, GramLogDeterminantLoss
from neuroreg.losses.graph import ConnectopyLoss, EigenmapsLoss, ModularityLoss
from neuroreg.losses.moments import MultivariateKurtosis, QCFCLoss, SecondMomentCentredLoss, SecondMomentLoss
from neuroreg.losses.scheme import LossApply, LossArgument, LossScheme, UnpackingLossArgument
from neuroreg.losses.smoothness import SmoothnessLoss
from neuroreg.losses.spatial import CompactnessLoss, DispersionLoss, InterhemisphericTetherLoss, ReferenceTetherLoss

__all__ = [
    "BatchCorrelationLoss",
    "BimodalSymmetricLoss",
    "BregmanDivergenceLogitLoss",
    "BregmanDivergenceLoss",
    "CompactnessLoss",
    "ConnectopyLoss",
    "ConstraintViolationLoss",
    "DispersionLoss",
    "EigenmapsLoss",
    "EntropyLogitLoss",
    "EntropyLoss",
    "EquilibriumLogitLoss",
    "EquilibriumLoss",
    "GramDeterminantLoss",
    "GramLogDeterminantLoss",
    "HingeLoss",
    "InterhemisphericTetherLoss",
    "JSDivergenceLogitLoss",
    "JSDivergenceLoss",
    "KLDivergenceLogitLoss",
    "KLDivergenceLoss",
    "LossApply",
    "LossArgument",
    "LossScheme",
    "MSELoss",
    "ModularityLoss",
    "MultivariateKurtosis",
    "NormedLoss",
    "QCFCLoss",
    "ReferenceTetherLoss",
    "SecondMomentCentredLoss",
    "SecondMomentLoss",
    "SmoothnessLoss",
    "UnilateralLoss",
    "UnpackingLossArgument",
]
