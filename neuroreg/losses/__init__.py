"""hypercoil's losses as neuroreg regularizations: equilibrium, Jensen-Shannon divergence, smoothness and
batch correlation.

Each class is ``scalarisation(score)`` over a function of :mod:`neuroreg.functional`, weighted by ``Lambda``
(hypercoil's ``nu``). It is used on tensors given at call time, with hypercoil's call signature, or on held
parameters, called with no argument (so that it can sit in a :class:`~neuroreg.RegularizationList` or act
as a trainer callback).
"""

from neuroreg.losses.batchcorr import BatchCorrelationLoss
from neuroreg.losses.divergence import JSDivergenceLogitLoss, JSDivergenceLoss
from neuroreg.losses.equilibrium import EquilibriumLogitLoss, EquilibriumLoss
from neuroreg.losses.graph import ConnectopyLoss, EigenmapsLoss, ModularityLoss
from neuroreg.losses.moments import MultivariateKurtosis, QCFCLoss, SecondMomentCentredLoss, SecondMomentLoss
from neuroreg.losses.smoothness import SmoothnessLoss
from neuroreg.losses.spatial import CompactnessLoss, DispersionLoss, InterhemisphericTetherLoss, ReferenceTetherLoss

__all__ = [
    "BatchCorrelationLoss",
    "CompactnessLoss",
    "ConnectopyLoss",
    "DispersionLoss",
    "EigenmapsLoss",
    "EquilibriumLogitLoss",
    "EquilibriumLoss",
    "InterhemisphericTetherLoss",
    "JSDivergenceLogitLoss",
    "JSDivergenceLoss",
    "ModularityLoss",
    "MultivariateKurtosis",
    "QCFCLoss",
    "ReferenceTetherLoss",
    "SecondMomentCentredLoss",
    "SecondMomentLoss",
    "SmoothnessLoss",
]
