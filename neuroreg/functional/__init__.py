"""Pure tensor functions behind every neuroreg penalty: no state, no Lambda."""

from neuroreg.functional.activity import (
    activity_l1,
    activity_l1_grad,
    activity_l2,
    activity_l2_grad,
    firing_rate_kl,
    firing_rate_kl_grad,
    firing_rate_range,
    firing_rate_range_grad,
    firing_rates,
    rate_kl,
    rate_kl_grad,
    rate_range,
    rate_range_grad,
)
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
    "activity_l1",
    "activity_l1_grad",
    "activity_l2",
    "activity_l2_grad",
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
    "firing_rate_kl",
    "firing_rate_kl_grad",
    "firing_rate_range",
    "firing_rate_range_grad",
    "firing_rates",
    "js_divergence",
    "js_divergence_logit",
    "kl_divergence",
    "kl_divergence_logit",
    "lp_norm",
    "lp_norm_add_grad_",
    "lp_norm_grad",
    "rate_kl",
    "rate_kl_grad",
    "rate_range",
    "rate_range_grad",
    "smoothness",
    "weights_distance",
    "weights_distance_add_grad_",
]
