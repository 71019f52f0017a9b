"""A spectral-norm penalty for recurrent weights: the largest singular value, by persistent power iteration."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from neuroreg._validation import check_bool, check_real, check_spectral_arguments
from neuroreg.base import BaseRegularization, ParamsLike
from neuroreg.functional.matrix_norms import matrix_norm
from neuroreg.functional.spectral import (
    power_iteration,
    spectral_hinge,
    spectral_norm_estimate,
    spectral_penalty_add_grad_,
    spectral_penalty_exact_add_grad_,
)

__all__ = ["SpectralNorm"]

# Steps taken at construction from the random start, as torch.nn.utils.parametrizations.spectral_norm does.
_INITIAL_ITERATIONS = 15


def _fingerprint(matrix: Tensor) -> Tensor:
    """The sum and the 2-norm of a matrix's entries, accumulated in float64: any update of a training step
    changes them, for two reading passes, next to the power iteration's two matrix-vector products."""
    with torch.no_grad():
        matrix = matrix.detach()
        return torch.stack([matrix.sum(dtype=torch.float64), torch.linalg.vector_norm(matrix, dtype=torch.float64)])


class SpectralNorm(BaseRegularization):
    r"""The largest singular value of each weight matrix, or its squared excess over a target.

    .. math::
        \mathcal{L} = \Lambda \sum_k \sigma_{\max}(W_k) \quad\text{or}\quad
        \mathcal{L} = \Lambda \sum_k \max\big(\sigma_{\max}(W_k) - t, 0\big)^2

    :math:`\sigma_{\max}` bounds the gain of a recurrent map, so the hinge with ``target=1`` keeps recurrent
    dynamics contractive without shrinking matrices that already are.

    By default :math:`\sigma_{\max} = u^\top W v` comes from a persistent power iteration, as in
    ``torch.nn.utils.parametrizations.spectral_norm``: unit vectors ``u``, ``v`` per matrix are buffers of the
    regularization (``u_k``, ``v_k``: in ``state_dict()``, moved by ``.to()``), iterated 15 times at
    construction and then ``n_power_iterations`` times whenever the matrix's values have changed since their
    last iteration (once per optimizer step in training, whether the penalty is called or attached; calling it
    twice on the same weights iterates once; a change is told by the sum and the norm of the entries, so that a
    ``torch.compile``\ d call, which computes the step in its graph at every call, keeps it only then). The
    gradient is :math:`u v^\top` (times the hinge's slope), one
    outer product per matrix, exact at the iteration's fixed point. Under ``torch.func`` transforms the vectors
    are read, not iterated (a transform cannot write module state). ``exact=True`` takes the SVD of every
    matrix at every call instead (``torch.linalg.matrix_norm(W, 2)`` and its gradient, ties shared as autograd
    shares them), with no vectors held.

    Args:
        params: What to regularize: 2-D weights (e.g. ``neuroreg.select.recurrent``); other ranks are a
            ``ValueError``.
        Lambda: Weight of the penalty.
        target: ``None`` (default: the sum of the spectral norms) or a real >= 0, the hinge's threshold.
        n_power_iterations: Power-iteration steps per change of the weights, >= 1.
        exact: Use the SVD instead of the power iteration.
        eps: Floor of the norms in the power iteration.
        **kwargs: The base keywords (see :class:`~neuroreg.BaseRegularization`).

    Example:
        >>> import torch, neuroreg as nr
        >>> w = torch.nn.Parameter(torch.tensor([[3.0, 1.0], [0.0, 2.0]]))
        >>> reg = nr.SpectralNorm([w], target=1.0)
        >>> sigma = torch.linalg.matrix_norm(w.detach(), 2)
        >>> torch.allclose(reg(), (sigma - 1) ** 2)
        True
    """

    closed_form_grad = True

    def __init__(
        self,
        params: ParamsLike,
        Lambda: float = 1.0,
        target: Optional[float] = None,
        n_power_iterations: int = 1,
        *,
        exact: bool = False,
        eps: float = 1e-12,
        **kwargs: Any,
    ) -> None:
        exact = check_bool("exact", exact)
        eps = check_real("eps", eps, low=0, low_inclusive=False)
        super().__init__(params, Lambda, **kwargs)
        target, n_power_iterations = check_spectral_arguments(target, n_power_iterations,
                                                              [p.shape for p in self.params])
        self.target = target
        self.n_power_iterations = n_power_iterations
        self.exact = exact
        self.eps = eps
        # (data_ptr, version) of each matrix when its vectors were last iterated, keyed by the u buffer's id.
        self._iterated_at: Dict[int, Tuple[int, int]] = {}
        if exact:
            return
        generator = torch.Generator().manual_seed(0)
        starts = []
        for param in self.params:
            m, n = param.shape
            u0 = torch.randn(m, generator=generator, dtype=torch.float64).to(device=param.device, dtype=param.dtype)
            v0 = torch.randn(n, generator=generator, dtype=torch.float64).to(device=param.device, dtype=param.dtype)
            starts.append(power_iteration(param.detach(), u0 / u0.norm(), v0 / v0.norm(), _INITIAL_ITERATIONS, eps=eps))
        self._register_buffer_list("u", [u for u, _ in starts])
        self._register_buffer_list("v", [v for _, v in starts])
        # What a compiled call compares to tell a changed matrix (a data pointer cannot be traced); not in
        # state_dict: recomputed from the matrix at each iteration.
        self._register_buffer_list("fingerprint", [_fingerprint(param) for param in self.params], persistent=False)
        for param, u in zip(self.params, self._buffer_list("u")):
            self._iterated_at[id(u)] = (param.data_ptr(), param._version)

    def _vectors(self, params: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """The singular vectors of ``params`` (the regularized tensors), iterated first where a matrix changed
        since their last iteration."""
        us, vs = self._regularized_buffers("u"), self._regularized_buffers("v")
        if torch._C._are_functorch_transforms_active():
            return us, vs
        marks = self._regularized_buffers("fingerprint")
        if torch.compiler.is_compiling():
            # In the graph, a matrix changed when its fingerprint did: the step is taken, and kept only there.
            with torch.no_grad():
                for param, u, v, mark in zip(params, us, vs, marks):
                    now = _fingerprint(param)
                    changed = (now.to(mark.dtype) != mark).any()
                    new_u, new_v = power_iteration(param.detach(), u, v, self.n_power_iterations, eps=self.eps)
                    u.copy_(torch.where(changed, new_u, u))
                    v.copy_(torch.where(changed, new_v, v))
                    mark.copy_(now)
            return us, vs
        for param, u, v, mark in zip(params, us, vs, marks):
            key = (param.data_ptr(), param._version)
            if self._iterated_at.get(id(u)) == key:
                continue
            # Written to since the last look: iterate unless the values are those last iterated on (written
            # back unchanged, or iterated by a compiled call, which cannot update the key).
            now = _fingerprint(param)
            if not torch.equal(now.to(mark.dtype), mark):   # (.to() may have cast the fingerprint)
                new_u, new_v = power_iteration(param.detach(), u, v, self.n_power_iterations, eps=self.eps)
                with torch.no_grad():
                    u.copy_(new_u)
                    v.copy_(new_v)
                    mark.copy_(now)
            self._iterated_at[id(u)] = key
        return us, vs

    def sigmas(self) -> List[Tensor]:
        """The current spectral-norm estimates, one 0-d tensor per regularized matrix (differentiable)."""
        params = self.regularized_parameters()
        if self.exact:
            return [matrix_norm([p], 2) for p in params]
        return [spectral_norm_estimate(p, u, v) for p, u, v in zip(params, *self._vectors(params))]

    def forward(self) -> Tensor:
        sigmas = self.sigmas()
        return spectral_hinge(sigmas, self.target) if sigmas else self._zero()

    def _add_penalty_grad_(self, params: List[Tensor], grads: List[Tensor], alpha: float) -> None:
        if self.exact:
            spectral_penalty_exact_add_grad_(grads, params, self.target, alpha)
            return
        us, vs = self._vectors(params)
        sigmas = [spectral_norm_estimate(p, u, v) for p, u, v in zip(params, us, vs)]
        spectral_penalty_add_grad_(grads, sigmas, us, vs, self.target, alpha)

    def extra_repr(self) -> str:
        how = "exact=True" if self.exact else f"n_power_iterations={self.n_power_iterations}"
        return f"{super().extra_repr()}, target={self.target}, {how}"
