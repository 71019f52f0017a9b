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
from neuroreg.losses.smoothness import SmoothnessLoss

__all__ = [
    "BatchCorrelationLoss",
    "EquilibriumLogitLoss",
    "EquilibriumLoss",
    "JSDivergenceLogitLoss",
    "JSDivergenceLoss",
    "SmoothnessLoss",
]
