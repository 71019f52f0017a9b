"""Pure tensor functions behind every neuroreg penalty: no state, no Lambda."""

from neuroreg.functional.batchcorr import auto_tol, batch_corr
from neuroreg.functional.divergence import js_divergence, js_divergence_logit, kl_divergence, kl_divergence_logit
from neuroreg.functional.equilibrium import equilibrium, equilibrium_logit
from neuroreg.functional.lp import lp_norm, lp_norm_add_grad_, lp_norm_grad
from neuroreg.functional.smoothness import smoothness

__all__ = [
    "auto_tol",
    "batch_corr",
    "equilibrium",
    "equilibrium_logit",
    "js_divergence",
    "js_divergence_logit",
    "kl_divergence",
    "kl_divergence_logit",
    "lp_norm",
    "lp_norm_add_grad_",
    "lp_norm_grad",
    "smoothness",
]
