"""Pure tensor functions behind every neuroreg penalty: no state, no Lambda."""

from neuroreg.functional.lp import lp_norm, lp_norm_add_grad_, lp_norm_grad

__all__ = ["lp_norm", "lp_norm_add_grad_", "lp_norm_grad"]
