r"""Hard constraints: Dale's law and fixed connectivity that hold exactly at every step, beside the penalties.

Two ways to the same guarantee:

- **Reparametrization** (:func:`dale_`, :func:`mask_`): the module's tensor becomes a function of a raw
  parameter, through ``torch.nn.utils.parametrize``, so the weight the model uses obeys the constraint
  whatever the optimizer does to the raw one. It composes with ``torch.nn.utils.parametrizations``, moves
  with ``.to()``, is in the module's ``state_dict`` (``parametrizations.<name>.original`` and the
  constraint's buffer), and ``torch.nn.utils.parametrize.remove_parametrizations`` undoes it (leaving the
  constrained weight as a plain parameter).
- **Projection** (:class:`SignProjection`, :class:`MaskProjection`): the parameters stay plain; after each
  optimizer step they are projected back onto the constraint. Attach them to the optimizer (``attach``), as
  the joint-mode penalties are, give them to a trainer as callbacks, or call ``project_()`` in a plain loop.

Both take Dale's reference signs as the penalties do (drawn by :func:`neuroreg.init.dale_` with
``dale_kwargs``, ``convention`` included, or the signs of ``reference_weights`` in the tensor's own layout).
A reference sign of 0 (a connection the draw left out, ``rho < 1``) is a connection fixed at 0.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Literal, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from neuroreg._validation import (
    check_choice,
    check_keywords,
    check_mask,
    check_matrix,
    check_module_tensor,
    check_names,
    check_per_parameter,
    collect_parameters,
)
from neuroreg.base import BaseRegularization, ParamsLike, _HeldParameters
from neuroreg.callbacks import BaseCallback
from neuroreg.connectome import DALE_DEFAULTS, check_dale_kwargs, reference_signs
from neuroreg.updates import OptimizerHooks, optimizer_param_ids

__all__ = ["DaleSigns", "Mask", "MaskProjection", "SignProjection", "dale_", "mask_"]

Mode = Literal["abs", "softplus", "relu"]
MODES = ("abs", "softplus", "relu")


# --- the constraints, as parametrizations ----------------------------------------------------------------------
class DaleSigns(nn.Module):
    r"""The parametrization of :func:`dale_`: :math:`W = f(W_\text{raw}) \circ S`, every entry of the
    reference sign (or 0).

    .. math::
        f = |\cdot| \;(\texttt{"abs"}), \quad \operatorname{softplus} \;(\texttt{"softplus"}), \quad
        \operatorname{relu} \;(\texttt{"relu"})

    ``"abs"`` keeps a gradient on both sides of 0 (a raw weight crossing 0 bounces back); ``"relu"`` is the
    projection's geometry, but a raw weight below 0 gets no gradient again; ``"softplus"`` is smooth and
    never exactly 0.

    Args:
        signs: The reference signs :math:`S` (entries in {-1, 0, 1}), a buffer ``signs`` of the tensor's
            shape, device and dtype.
        mode: :math:`f`.

    Example:
        >>> signs = torch.tensor([[1.0, -1.0, 0.0]])
        >>> DaleSigns(signs)(torch.tensor([[-2.0, -3.0, 4.0]]))
        tensor([[ 2., -3.,  0.]])
    """

    def __init__(self, signs: Tensor, mode: Mode = "abs") -> None:
        super().__init__()
        self.mode = check_choice("mode", mode, MODES)
        self.register_buffer("signs", signs)

    def forward(self, raw: Tensor) -> Tensor:
        if self.mode == "abs":
            magnitude = raw.abs()
        elif self.mode == "relu":
            magnitude = torch.relu(raw)
        else:
            magnitude = nn.functional.softplus(raw)
        return magnitude * self.signs

    def right_inverse(self, weight: Tensor) -> Tensor:
        """A raw tensor whose image is ``weight`` wherever its sign is the reference's: the magnitudes
        ``|weight|`` (a wrong-signed entry keeps its magnitude and takes the reference sign)."""
        magnitude = weight.abs()
        if self.mode != "softplus":
            return magnitude
        # softplus^{-1}(m) = m + log(1 - e^{-m}), finite only for m > 0: a zero weight starts at the dtype's
        # smallest normal number instead.
        magnitude = magnitude.clamp_min(torch.finfo(magnitude.dtype).tiny)
        return magnitude + torch.log(-torch.expm1(-magnitude))

    @torch.no_grad()
    def project_(self, weight: Tensor) -> Tensor:
        r"""Project ``weight`` in place onto the weights that obey the signs, :math:`S \circ
        \operatorname{relu}(W \circ S)` (the nearest such weight: wrong-signed entries, and those whose
        reference is 0, become 0; the others are left exactly as they are, NaN included)."""
        signs = _like(self.signs, weight)
        return weight.masked_fill_((weight * signs < 0) | (signs == 0), 0.0)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, shape={tuple(self.signs.shape)}"


class Mask(nn.Module):
    r"""The parametrization of :func:`mask_`: :math:`W = W_\text{raw} \circ M`, fixed connectivity.

    Args:
        mask: Zeros and ones (a buffer ``mask``, broadcastable to the tensor's shape, in its dtype).

    Example:
        >>> Mask(torch.tensor([1.0, 0.0]))(torch.tensor([[3.0, 4.0], [5.0, 6.0]]))
        tensor([[3., 0.],
                [5., 0.]])
    """

    def __init__(self, mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, raw: Tensor) -> Tensor:
        return raw * self.mask

    def right_inverse(self, weight: Tensor) -> Tensor:
        """The weight itself (the masked entries of the raw tensor are never used)."""
        return weight

    @torch.no_grad()
    def project_(self, weight: Tensor) -> Tensor:
        """Set the masked entries of ``weight`` to 0, in place."""
        return weight.mul_(_like(self.mask, weight))

    def extra_repr(self) -> str:
        return f"shape={tuple(self.mask.shape)}"


def _like(constraint: Tensor, tensor: Tensor) -> Tensor:
    # Cast only where needed: a projection runs every step, and the model may have moved without it.
    if constraint.device == tensor.device and constraint.dtype == tensor.dtype:
        return constraint
    return constraint.to(device=tensor.device, dtype=tensor.dtype)


# --- reparametrizations -----------------------------------------------------------------------------------------
def dale_(
    module: nn.Module,
    name: str = "weight",
    *,
    reference_weights: Optional[Tensor] = None,
    mode: Mode = "abs",
    **dale_kwargs: Any,
) -> nn.Module:
    r"""Make ``module``'s tensor ``name`` obey Dale's law exactly, at every step: a reparametrization.

    .. math:: W = f(W_\text{raw}) \circ S, \qquad S = \operatorname{sign}(W_\text{ref})

    with :math:`f` as in :class:`DaleSigns` (``mode``). ``module.<name>`` becomes the constrained tensor
    (what the model uses, differentiable in the raw one); the raw parameter is
    ``module.parametrizations.<name>.original``, which the optimizer trains. It is initialised to the
    magnitudes of the current weight, so the effective weight equals it wherever its sign is already the
    reference's (and has the current magnitude with the reference sign elsewhere). On a tensor that already
    has parametrizations it is appended to them (their output is the input of :math:`f`, and, as
    ``torch.nn.utils.parametrize`` does for appended ones, nothing is re-initialised): the signs hold all
    the same.

    Args:
        module: The module, changed in place (nothing is changed when an argument is refused).
        name: The name of a 2-D parameter or buffer of ``module``.
        reference_weights: A tensor of the tensor's shape (its own layout) whose signs are :math:`S`. Without
            it, :math:`S` is drawn by :func:`neuroreg.init.dale_` with ``dale_kwargs``.
        mode: ``"abs"``, ``"softplus"`` or ``"relu"``.
        **dale_kwargs: ``inh_ratio``, ``rho``, ``inh_first``, ``seed``, ``convention`` (``"j->i"`` for
            ``nn.Linear`` and ``nn.RNN`` weights, whose row is the postsynaptic neuron) and ``draw``, only
            without ``reference_weights``.

    Returns:
        ``module``.

    Example:
        >>> import torch, neuroreg as nr
        >>> rnn = torch.nn.RNN(3, 8)
        >>> _ = nr.constraints.dale_(rnn, "weight_hh_l0", inh_ratio=0.25, rho=1.0, seed=0, convention="j->i")
        >>> w = rnn.weight_hh_l0                 # column j: the outputs of hidden neuron j
        >>> bool((w[:, :2] <= 0).all()), bool((w[:, 2:] >= 0).all())
        (True, True)
        >>> torch.nn.utils.parametrize.remove_parametrizations(rnn, "weight_hh_l0")   # a plain weight again
        RNN(3, 8)
    """
    tensor = check_module_tensor(module, name)
    check_matrix(name, tensor)
    mode = check_choice("mode", mode, MODES)
    check_keywords("constraints.dale_ keyword arguments", dale_kwargs, tuple(DALE_DEFAULTS))
    drawn = check_dale_kwargs("constraints.dale_", reference_weights, dale_kwargs)
    (signs,) = reference_signs([tensor], reference_weights, drawn)
    parametrize.register_parametrization(module, name, DaleSigns(signs.to(tensor.detach()), mode))
    return module


def mask_(module: nn.Module, name: str = "weight", *, mask: Tensor) -> nn.Module:
    r"""Fix the connectivity of ``module``'s tensor ``name``: :math:`W = W_\text{raw} \circ M`, a
    reparametrization (:class:`Mask`).

    The masked entries of ``module.<name>`` are exactly 0 at every step and their raw entries get a zero
    gradient, whatever the optimizer.

    Args:
        module: The module, changed in place (nothing is changed when an argument is refused).
        name: The name of a parameter or buffer of ``module`` (any rank).
        mask: Zeros and ones (bool or numbers), broadcastable to the tensor's shape.

    Returns:
        ``module``.

    Example:
        >>> import torch, neuroreg as nr
        >>> layer = nr.constraints.mask_(torch.nn.Linear(3, 2), mask=torch.tensor([[1, 0, 1], [0, 1, 1]]))
        >>> (layer.weight == 0).tolist()
        [[False, True, False], [True, False, False]]
    """
    tensor = check_module_tensor(module, name)
    mask = check_mask("mask", mask, tensor)
    parametrize.register_parametrization(module, name, Mask(mask.detach().to(tensor.detach(), copy=True)))
    return module


# --- projections ------------------------------------------------------------------------------------------------
class _Projection(nn.Module, OptimizerHooks, BaseCallback):
    """Plain parameters and one constraint module per parameter (``constraints``), projected after each
    optimizer step it is attached to."""

    def __init__(
        self,
        params: ParamsLike,
        *,
        name: Optional[str],
        include: Union[str, Sequence[str], None],
        exclude: Union[str, Sequence[str], None],
        priority: Optional[int],
    ) -> None:
        names, parameters = collect_parameters(params, check_names("include", include), check_names("exclude", exclude))
        nn.Module.__init__(self)
        BaseCallback.__init__(self, priority=priority, name=name)
        self._init_optimizer_hooks()
        self.params = _HeldParameters(parameters)
        self.param_names: List[str] = names

    @torch.no_grad()
    def project_(self) -> None:
        """Project every held parameter onto its constraint, in place (call it after ``optimizer.step()`` in
        a plain loop, or once before training so that the constraint holds from the start)."""
        for param, constraint in zip(self.params, self.constraints):
            constraint.project_(param)

    def _pairs(self, optimizer: torch.optim.Optimizer) -> list:
        held = optimizer_param_ids(optimizer)
        return [(p, c) for p, c in zip(self.params, self.constraints) if id(p) in held]

    def _held_parameter_ids(self) -> FrozenSet[int]:
        return frozenset(id(param) for param in self.params)

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            for param, constraint in self._pairs(optimizer):
                constraint.project_(param)

    # Checkpoints are the regularizations' own: the state is the module's buffers (never the model's weights).
    get_checkpoint_state = BaseRegularization.get_checkpoint_state
    load_checkpoint_state = BaseRegularization.load_checkpoint_state
    _plain_state_dict = BaseRegularization._plain_state_dict

    def __getstate__(self) -> Dict[str, Any]:
        return self._unattached_state(super().__getstate__())


class SignProjection(_Projection):
    r"""Dale's law by projection: after each optimizer step, every weight that left its reference sign is
    set to 0.

    .. math:: W \leftarrow S \circ \operatorname{relu}(W \circ S)

    the nearest weight (in every norm) whose entries have the reference sign or are 0, computed exactly. The
    parameters stay plain ``Parameter``\ s (no reparametrization): use it where the model's code must see
    its own tensors, or to constrain a trained model. Attached to an optimizer (:meth:`attach`, or as a
    trainer callback, which attaches in ``start``) it projects the parameters that optimizer holds inside
    each ``optimizer.step()``; :meth:`project_` projects them all, now.

    Args:
        params: The 2-D weights (as in :class:`~neuroreg.BaseRegularization`).
        reference_weights: One tensor per weight, of its shape, whose signs are the references; without
            them they are drawn as the Dale penalties draw theirs (``dale_kwargs``, the k-th weight with
            ``seed + k``).
        name, include, exclude, priority: As in :class:`~neuroreg.BaseRegularization`.
        **dale_kwargs: As in :class:`~neuroreg.DaleLawL2` (``inh_ratio``, ``rho``, ``inh_first``, ``seed``,
            ``convention``, ``draw``).

    Example:
        >>> import torch, neuroreg as nr
        >>> w = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, -3.0]]))
        >>> projection = nr.constraints.SignProjection([w], reference_weights=[torch.tensor([[1, 1], [-1, -1]])])
        >>> opt = torch.optim.SGD([w], lr=0.1)
        >>> handle = projection.attach(opt)
        >>> w.grad = torch.zeros(2, 2); opt.step()
        >>> w.detach()
        tensor([[ 1.,  0.],
                [ 0., -3.]])
    """

    def __init__(
        self,
        params: ParamsLike,
        reference_weights: Optional[Sequence[Tensor]] = None,
        *,
        name: Optional[str] = None,
        include: Union[str, Sequence[str], None] = None,
        exclude: Union[str, Sequence[str], None] = None,
        priority: Optional[int] = None,
        **dale_kwargs: Any,
    ) -> None:
        check_keywords("SignProjection keyword arguments", dale_kwargs, tuple(DALE_DEFAULTS))
        drawn = check_dale_kwargs("SignProjection", reference_weights, dale_kwargs)
        super().__init__(params, name=name, include=include, exclude=exclude, priority=priority)
        for param_name, param in zip(self.param_names, self.params):
            check_matrix(f"params[{param_name!r}]", param)
        signs = reference_signs(list(self.params), reference_weights, drawn)
        self.constraints = nn.ModuleList(DaleSigns(s.to(p.detach())) for s, p in zip(signs, self.params))

    @property
    def reference_signs(self) -> List[Tensor]:
        """The reference sign matrices, one per held parameter (buffers ``constraints.{k}.signs``)."""
        return [constraint.signs for constraint in self.constraints]


class MaskProjection(_Projection):
    r"""Fixed connectivity by projection: inside each optimizer step, the masked entries' gradients are set to
    0 before the update and the masked entries to 0 after it.

    .. math:: \nabla W \leftarrow \nabla W \circ M \;\text{(before)}, \qquad W \leftarrow W \circ M \;\text{(after)}

    Zeroing the gradient first keeps the optimizer's state (momentum, Adam's moments) free of the masked
    entries; the projection after the step makes them exactly 0 whatever the update (weight decay
    included). :meth:`project_` applies the mask now (call it once before training if the weights do not
    start masked).

    Args:
        params: What to mask (any ranks).
        masks: One mask per parameter: zeros and ones, broadcastable to its shape.
        name, include, exclude, priority: As in :class:`~neuroreg.BaseRegularization`.

    Example:
        >>> import torch, neuroreg as nr
        >>> w = torch.nn.Parameter(torch.ones(2, 2))
        >>> projection = nr.constraints.MaskProjection([w], [torch.tensor([[1, 0], [1, 1]])])
        >>> projection.project_(); w.detach()
        tensor([[1., 0.],
                [1., 1.]])
    """

    def __init__(
        self,
        params: ParamsLike,
        masks: Sequence[Tensor],
        *,
        name: Optional[str] = None,
        include: Union[str, Sequence[str], None] = None,
        exclude: Union[str, Sequence[str], None] = None,
        priority: Optional[int] = None,
    ) -> None:
        super().__init__(params, name=name, include=include, exclude=exclude, priority=priority)
        masks = check_per_parameter("masks", masks, len(self.params))
        checked = [check_mask(f"masks[{k}]", mask, param) for k, (mask, param) in enumerate(zip(masks, self.params))]
        # Copied, in the parameter's dtype: a later change to the caller's mask cannot reach the constraint.
        self.constraints = nn.ModuleList(
            Mask(m.detach().to(p.detach(), copy=True)) for m, p in zip(checked, self.params)
        )

    @property
    def masks(self) -> List[Tensor]:
        """The masks, one per held parameter (buffers ``constraints.{k}.mask``)."""
        return [constraint.mask for constraint in self.constraints]

    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            for param, constraint in self._pairs(optimizer):
                if param.grad is not None:
                    constraint.project_(param.grad)
