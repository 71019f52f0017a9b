"""Pure tensor functions behind every neuroreg penalty: no state, no Lambda."""

from neuroreg.functional.batchcorr import auto_tol, batch_corr
from neuroreg.functional.connectome import (
    dale_law_l2,
    dale_law_l2_add_grad_,
    dale_sign_penalty,
    dale_sign_penalty_add_grad_,
    exc_ratio,
    exc_ratio_penalty,
    exc_ratio_penalty_add_grad_,
    weights_distance,
    weights_distance_add_grad_,
)
from neuroreg.functional.divergence import js_divergence, js_divergence_logit, kl_divergence, kl_divergence_logit
from neuroreg.functional.equilibrium import equilibrium, equilibrium_logit
from neuroreg.functional.lp import lp_norm, lp_norm_add_grad_, lp_norm_grad
from neuroreg.functional.smoothness import smoothness

__all__ = [
    "auto_tol",
    "batch_corr",
    "dale_law_l2",
    "dale_law_l2_add_grad_",
    "dale_sign_penalty",
    "dale_sign_penalty_add_grad_",
    "equilibrium",
    "equilibrium_logit",
    "exc_ratio",
    "exc_ratio_penalty",
    "exc_ratio_penalty_add_grad_",
    "js_divergence",
    "js_divergence_logit",
    "kl_divergence",
    "kl_divergence_logit",
    "lp_norm",
    "lp_norm_add_grad_",
    "lp_norm_grad",
    "smoothness",
    "weights_distance",
    "weights_distance_add_grad_",
]
