r"""Connectome regularizations: Dale's law (:class:`DaleLawL2`, :class:`DaleLaw`, :class:`DaleSignPenalty`),
E/I ratio targets and the distance to reference weights.

Convention for 2-D weights: by default (``convention="i->j"``) entry :math:`(i, j)` is the connection from
neuron :math:`i` (row) to neuron :math:`j` (column), so Dale's law (each neuron excitatory or inhibitory in
all its outgoing connections) is a sign per row, as made by :func:`neuroreg.init.dale_`; with
``convention="j->i"`` (``nn.Linear``, ``nn.RNN``: row = postsynaptic neuron) the drawn references have one
sign per column. The penalties themselves are entrywise, so the convention only orients the draw.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from neuroreg._validation import (
    CONVENTIONS,
    DALE_DRAWS,
    check_bool,
    check_callable,
    check_dale_arguments,
    check_dale_options,
    check_keywords,
    check_matrix,
    check_norm_and_order,
    check_norm_ord,
    check_open_unit,
    check_real,
    check_reduction,
    check_reference_tensors,
    check_update,
    order_text,
)
from neuroreg.base import BaseRegularization, ParamsLike

# The modules call the functions' unchecked forms: their arguments were checked at construction, and a
# check per call costs more than a small penalty itself.
from neuroreg.functional.connectome import (
    _dale_law_l2,
    _dale_law_l2_add_grad_,
    _dale_law_l2_grad,
    _dale_sign_penalty,
    _dale_sign_penalty_add_grad_,
    _exc_ratio_add_grad_,
    _exc_ratio_penalty,
    _weights_distance,
    _weights_distance_add_grad_,
    _weights_distance_grad,
    exc_ratio,
)
from neuroreg.functional.matrix_norms import Ord, weights_matrix_distance, weights_matrix_distance_add_grad_
from neuroreg.functional.prox import (
    dale_sign_prox_,
    weights_distance_l1_prox_,
    weights_distance_squared_l2_decay_,
    weights_distance_squared_l2_prox_,
)
from neuroreg.init import check_dale_draw, dale_
from neuroreg.updates import PenaltyUpdates, Reduction, Update, norm_updates

__all__ = [
    "DaleLaw",
    "DaleLawL2",
    "DaleSignPenalty",
    "ExcRatioTargetRegularization",
    "InhRatioTargetRegularization",
    "WeightsDistance",
]

#: The keyword arguments of :func:`neuroreg.init.dale_` that the Dale penalties (and
#: :func:`neuroreg.constraints.dale_`) pass on, with its defaults.
DALE_DEFAULTS: Dict[str, Any] = {
    "inh_ratio": 0.5,
    "rho": 0.99,
    "inh_first": True,
    "seed": None,
    "convention": "i->j",
    "draw": "neuroreg",
}
_BASE_KEYWORDS = tuple(
    name
    for name, parameter in inspect.signature(BaseRegularization.__init__).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY
)


def check_dale_kwargs(owner: str, reference_weights: Any, dale_kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """``dale_kwargs`` checked and completed with :data:`DALE_DEFAULTS` (empty when ``reference_weights``
    are given, which then exclude them)."""
    if reference_weights is not None:
        if dale_kwargs:
            raise ValueError(
                f"{owner}: dale_kwargs {sorted(dale_kwargs)} only apply when reference_weights is None "
                "(the references are then drawn by neuroreg.init.dale_; given references are in the weight's "
                "own layout); got both"
            )
        return {}
    drawn = {**DALE_DEFAULTS, **dale_kwargs}
    inh_ratio, rho, inh_first, seed = check_dale_arguments(drawn["inh_ratio"], drawn["rho"], drawn["inh_first"],
                                                           drawn["seed"])
    convention, draw, _, _ = check_dale_options(drawn["convention"], drawn["draw"], False, None)
    return {"inh_ratio": inh_ratio, "rho": rho, "inh_first": inh_first, "seed": seed, "convention": convention,
            "draw": draw}


def reference_signs(tensors: Sequence[Tensor], reference_weights: Any, drawn: Dict[str, Any]) -> List[Tensor]:
    """One float64 sign tensor per tensor: of ``reference_weights`` (checked), or drawn by
    :func:`neuroreg.init.dale_` with ``drawn`` (from :func:`check_dale_kwargs`) when they are ``None``.

    The k-th tensor's draw takes ``seed + k`` (weights of one shape get different references, and a single
    weight gets exactly ``dale_(..., seed=seed)``), except with ``draw="neurotorch"``: NeuroTorch draws every
    weight's reference with the same arguments, seed included.
    """
    if reference_weights is not None:
        references = check_reference_tensors("reference_weights", reference_weights, tensors)
        # Signs are taken before any cast, so a tiny reference weight cannot round to a zero sign.
        return [torch.sign(r.to(torch.float64)) for r in references]
    for tensor in tensors:
        check_dale_draw(tensor.shape, drawn["inh_ratio"], drawn["rho"], drawn["convention"], drawn["draw"])
    seed, same_seed = drawn["seed"], drawn["draw"] == "neurotorch"
    seeds = [seed if seed is None or same_seed else seed + k for k in range(len(tensors))]
    return [
        dale_(torch.empty(t.shape, dtype=torch.float64), **{**drawn, "seed": k_seed}).sign_()
        for k_seed, t in zip(seeds, tensors)
    ]


# The configuration of a draw, held in one int64 buffer so that it is in state_dict() and a loaded checkpoint
# reports what its references were drawn with; integers because `.to(dtype)` casts floating buffers (a
# bfloat16 copy of rho would report another rho). Floats are stored as their float64 bit patterns, the seed
# (< 2**64) as the int64 with its bits. Entry 0 is 1 for a draw, 0 for given references.
_CONFIG_SIZE = 8


def _encode_dale_kwargs(drawn: Dict[str, Any]) -> Tensor:
    if not drawn:
        return torch.zeros(_CONFIG_SIZE, dtype=torch.int64)
    floats = torch.tensor([drawn["inh_ratio"], drawn["rho"]], dtype=torch.float64).view(torch.int64).tolist()
    seed = drawn["seed"]
    return torch.tensor(
        [1, *floats, int(drawn["inh_first"]), int(seed is not None),
         0 if seed is None else (seed - 2**64 if seed >= 2**63 else seed),
         CONVENTIONS.index(drawn["convention"]), DALE_DRAWS.index(drawn["draw"])],
        dtype=torch.int64,
    )


def _decode_dale_kwargs(config: Tensor) -> Dict[str, Any]:
    is_drawn, ratio_bits, rho_bits, inh_first, has_seed, seed, convention, draw = config.tolist()
    if not is_drawn:
        return {}
    inh_ratio, rho = torch.tensor([ratio_bits, rho_bits], dtype=torch.int64).view(torch.float64).tolist()
    return {"inh_ratio": inh_ratio, "rho": rho, "inh_first": bool(inh_first),
            "seed": (seed + 2**64 if seed < 0 else seed) if has_seed else None,
            "convention": CONVENTIONS[convention], "draw": DALE_DRAWS[draw]}


class _SignReference(BaseRegularization):
    """Holds 2-D weights and one reference sign matrix per weight (buffers ``reference_signs_{k}``), and the
    arguments they were drawn with (buffer ``dale_config``)."""

    def __init__(
        self,
        params: ParamsLike,
        reference_weights: Optional[Sequence[Tensor]],
        Lambda: float,
        optimizer: Optional[torch.optim.Optimizer],
        kwargs: Dict[str, Any],
    ) -> None:
        owner = type(self).__name__
        check_keywords(f"{owner} keyword arguments", kwargs, (*DALE_DEFAULTS, *_BASE_KEYWORDS))
        drawn = check_dale_kwargs(owner, reference_weights,
                                  {key: value for key, value in kwargs.items() if key in DALE_DEFAULTS})
        base_kwargs = {key: value for key, value in kwargs.items() if key not in DALE_DEFAULTS}
        super().__init__(params, Lambda, optimizer, **base_kwargs)
        for name, param in zip(self.param_names, self.params):
            check_matrix(f"params[{name!r}]", param)
        signs = reference_signs(list(self.params), reference_weights, drawn)
        self._register_buffer_list("reference_signs", [s.to(p) for s, p in zip(signs, self.params)])
        self.register_buffer("dale_config", _encode_dale_kwargs(drawn))

    @property
    def reference_signs(self) -> List[Tensor]:
        """The reference sign matrices :math:`S_k`, one per held parameter (buffers ``reference_signs_{k}``)."""
        return self._buffer_list("reference_signs")

    @property
    def dale_kwargs(self) -> Dict[str, Any]:
        """The arguments of :func:`neuroreg.init.dale_` the references were drawn with (empty when
        reference_weights were given): read from the state, so after ``load_state_dict`` they are the
        checkpoint's, as the signs are."""
        return _decode_dale_kwargs(self.dale_config)


class DaleLawL2(PenaltyUpdates, _SignReference):
    r"""Dale's law and L2 energy on connectomes, NeuroTorch's formula computed in :math:`O(nm)`.

    .. math::
        \mathcal{L} = \Lambda \sum_k \operatorname{tr}\!\big(W_k^\top (\alpha W_k - (1-\alpha) S_k)\big)
                    = \Lambda \sum_k \sum_{ij} W_{k,ij} \big(\alpha W_{k,ij} - (1-\alpha) S_{k,ij}\big),
        \qquad S_k = \operatorname{sign}(W_{k,\text{ref}})

    :math:`\alpha = 0` is pure Dale's law (:class:`DaleLaw`), :math:`\alpha = 1` pure L2 energy (the sum of
    squares). The entrywise form is the same number as the trace without its :math:`n \times n` product
    (NeuroTorch's :math:`O(n^3)`). The gradient is :math:`\Lambda (2\alpha W_k - (1-\alpha) S_k)`, added in
    joint mode by two multi-tensor kernels.

    Mind what the formula rewards. With :math:`\alpha = 0` it is linear in :math:`W` and unbounded below:
    it pushes every weight further in its reference sign's direction, forever (pair it with a decay, or
    use :class:`DaleSignPenalty`). With :math:`0 < \alpha < 1` its minimum is
    :math:`W = \frac{1-\alpha}{2\alpha} S`, a fixed magnitude on every prescribed connection, not "any
    :math:`W` with the right signs".

    Args:
        params: The 2-D weights (see :class:`~neuroreg.BaseRegularization`); any other rank is a
            ``ValueError``.
        alpha: In [0, 1], the weight of the L2 term against Dale's law.
        reference_weights: One tensor per parameter, same shape, whose signs are the references. Without
            them, references are drawn by :func:`neuroreg.init.dale_` with ``dale_kwargs``.
        Lambda: Weight of the penalty.
        optimizer: As in :class:`~neuroreg.BaseRegularization`.
        reduction: ``"sum"`` (default) or ``"mean"``: each weight's penalty divided by its number of entries.
        **kwargs: ``dale_kwargs`` — ``inh_ratio``, ``rho``, ``inh_first``, ``seed`` (the k-th parameter's
            reference uses ``seed + k``), ``convention`` (``"i->j"``, or ``"j->i"`` for ``W @ h`` weights)
            and ``draw`` (``"neurotorch"``: NeuroTorch's references, every parameter's drawn with ``seed``),
            only without ``reference_weights`` — and ``name``, ``include``, ``exclude``, ``priority``,
            ``save_state``, ``load_state``. Any other keyword is a ``ValueError``.

    The sign matrices are buffers (:attr:`reference_signs`): in ``state_dict()``, moved by ``.to()``, so a
    regularization rebuilt and loaded from a checkpoint has the same references.

    Example:
        >>> import torch, neuroreg as nr
        >>> w = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
        >>> ref = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])    # neuron 0 excitatory, neuron 1 inhibitory
        >>> nr.DaleLawL2([w], alpha=0.5, reference_weights=[ref])()
        tensor(9.3750, grad_fn=<MulBackward0>)
        >>> reg = nr.DaleLawL2([w], alpha=0.8, inh_ratio=0.5, seed=0)   # references drawn by dale_
        >>> reg.reference_signs[0]
        tensor([[-1., -1.],
                [ 1.,  1.]])
    """

    closed_form_grad = True

    def __init__(
        self,
        params: ParamsLike,
        alpha: float = 0.8,
        reference_weights: Optional[Sequence[Tensor]] = None,
        Lambda: float = 1.0,
        optimizer: Optional[torch.optim.Optimizer] = None,
        *,
        reduction: Reduction = "sum",
        **kwargs: Any,
    ) -> None:
        alpha = check_real("alpha", alpha, low=0, high=1)
        reduction = check_reduction(reduction)
        super().__init__(params, reference_weights, Lambda, optimizer, kwargs)
        self.alpha = alpha
        self._init_penalty_updates("gradient", reduction)

    def _penalty_value(self, params: List[Tensor]) -> Tensor:
        if not params:
            return self._zero()
        return self._reduced(self._dale_value, params, self._regularized_buffers("reference_signs"))

    def _dale_value(self, params: List[Tensor], signs: List[Tensor]) -> Tensor:
        return _dale_law_l2(params, signs, self.alpha)

    def _add_penalty_grad_(self, params: List[Tensor], grads: List[Tensor], alpha: float) -> None:
        self._reduced_add_grad_(self._add_dale_grad_, grads, params, self._regularized_buffers("reference_signs"),
                                alpha=alpha)

    def _add_dale_grad_(self, grads: List[Tensor], params: List[Tensor], signs: List[Tensor], alpha: float) -> None:
        _dale_law_l2_add_grad_(grads, params, signs, self.alpha, alpha)

    def _closed_form_grads(self, params: List[Tensor], alpha: Union[float, Tensor]) -> List[Tensor]:
        if self.reduction == "sum":
            return _dale_law_l2_grad(params, self._regularized_buffers("reference_signs"), self.alpha, alpha)
        return super()._closed_form_grads(params, alpha)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha:g}{self._modes_repr()}"


class DaleLaw(DaleLawL2):
    r"""Dale's law alone: :class:`DaleLawL2` with ``alpha = 0``.

    .. math:: \mathcal{L} = -\Lambda \sum_k \operatorname{tr}(W_k^\top S_k) = -\Lambda \sum_k \langle W_k, S_k \rangle

    Linear in the weights and unbounded below: each weight is pushed in its reference sign's direction at a
    constant rate (gradient :math:`-\Lambda S_k`), including weights that already have the right sign. For a
    penalty that is zero once the signs are right, see :class:`DaleSignPenalty`.

    Example:
        >>> import torch, neuroreg as nr
        >>> w = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
        >>> nr.DaleLaw([w], reference_weights=[torch.tensor([[1.0, 1.0], [-1.0, -1.0]])])()
        tensor(4.5000, grad_fn=<MulBackward0>)
    """

    def __init__(
        self,
        params: ParamsLike,
        reference_weights: Optional[Sequence[Tensor]] = None,
        Lambda: float = 1.0,
        optimizer: Optional[torch.optim.Optimizer] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, 0.0, reference_weights, Lambda, optimizer, **kwargs)


class DaleSignPenalty(PenaltyUpdates, _SignReference):
    r"""A bounded Dale's-law penalty: zero exactly when every weight has its reference sign (or is zero).

    .. math::
        \mathcal{L} = \Lambda \sum_k \sum_{ij} \operatorname{relu}\!\big(-W_{k,ij} S_{k,ij}\big)^p,
        \qquad S_k = \operatorname{sign}(W_{k,\text{ref}})

    Only wrong-signed weights cost anything, and they are pulled toward zero (gradient
    :math:`-p \Lambda S \operatorname{relu}(-W \circ S)^{p-1}`); weights of the right sign, and connections
    whose reference is zero, are left to the task. Unlike :class:`DaleLaw` the penalty is bounded below (by 0),
    so it can be weighted strongly without driving the weights to infinity. Not in NeuroTorch.

    Args:
        params: The 2-D weights.
        reference_weights: As in :class:`DaleLawL2`.
        Lambda: Weight of the penalty.
        p: Exponent, a real >= 1: 2 (default) is smooth; 1 penalizes the wrong-signed magnitudes linearly
            (subgradient 0 at a zero weight).
        update: ``"gradient"`` (default) or, with ``p = 1``, ``"proximal"``: after each optimizer step, each
            wrong-signed weight moves toward zero by :math:`\eta\Lambda c_k` and lands exactly on 0 when
            closer (:func:`~neuroreg.functional.prox.dale_sign_prox_`; see
            :class:`~neuroreg.updates.PenaltyUpdates`).
        reduction: ``"sum"`` (default) or ``"mean"``, as in :class:`DaleLawL2`.
        **kwargs: ``optimizer``, the ``dale_kwargs`` and the base keywords, as in :class:`DaleLawL2`.

    Example:
        >>> import torch, neuroreg as nr
        >>> w = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, -3.0]]))
        >>> reg = nr.DaleSignPenalty([w], reference_weights=[torch.tensor([[1.0, 1.0], [-1.0, -1.0]])])
        >>> reg()     # the violations are -2 (row 0 excitatory) and 0.5 (row 1 inhibitory)
        tensor(4.2500, grad_fn=<MulBackward0>)
    """

    closed_form_grad = True

    def __init__(
        self,
        params: ParamsLike,
        reference_weights: Optional[Sequence[Tensor]] = None,
        Lambda: float = 1.0,
        p: float = 2,
        optimizer: Optional[torch.optim.Optimizer] = None,
        *,
        update: Update = "gradient",
        reduction: Reduction = "sum",
        **kwargs: Any,
    ) -> None:
        p = check_real("p", p, low=1)
        modes = ("gradient", "proximal") if p == 1 else ("gradient",)
        update = check_update(f"DaleSignPenalty(p={p:g})", update, modes, optimizer)
        reduction = check_reduction(reduction)
        super().__init__(params, reference_weights, Lambda, optimizer, kwargs)
        self.p = p
        self._init_penalty_updates(update, reduction)

    def _penalty_value(self, params: List[Tensor]) -> Tensor:
        if not params:
            return self._zero()
        return self._reduced(self._sign_value, params, self._regularized_buffers("reference_signs"))

    def _sign_value(self, params: List[Tensor], signs: List[Tensor]) -> Tensor:
        return _dale_sign_penalty(params, signs, self.p)

    def _add_penalty_grad_(self, params: List[Tensor], grads: List[Tensor], alpha: float) -> None:
        self._reduced_add_grad_(self._add_sign_grad_, grads, params, self._regularized_buffers("reference_signs"),
                                alpha=alpha)

    def _add_sign_grad_(self, grads: List[Tensor], params: List[Tensor], signs: List[Tensor], alpha: float) -> None:
        _dale_sign_penalty_add_grad_(grads, params, signs, self.p, alpha)

    def _prox_(self, params: List[Tensor], steps: List[float]) -> None:
        dale_sign_prox_(params, self._buffers_of("reference_signs", params), steps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p:g}{self._modes_repr()}"


class ExcRatioTargetRegularization(BaseRegularization):
    r"""Pulls the soft excitatory ratio of each parameter toward a target (NeuroTorch's formula).

    .. math::
        \mathcal{L} = \Lambda \sum_k \big|\operatorname{mean}(\sigma(W_k)) + 1 - 2\,t\big|
                    = 2 \Lambda \sum_k |r_k - t|, \qquad r_k = \frac{\operatorname{mean}(\sigma(W_k)) + 1}{2}

    with :math:`\sigma` the soft sign (default ``torch.nn.Softsign()``) and :math:`t` the target
    excitatory ratio. With the default soft sign the gradient has a closed form (joint mode builds no
    autograd graph); with a custom ``sign_func`` it is left to autograd (``closed_form_grad`` is then
    ``False`` for that instance).

    Args:
        params: What to regularize (any rank: typically per-neuron sign parameters, or weights).
        exc_target_ratio: The target :math:`t`, strictly in (0, 1).
        Lambda: Weight of the penalty.
        sign_func: The soft sign :math:`\sigma`, a callable tensor -> tensor (default softsign).
        **kwargs: ``optimizer``, ``name``, ``include``, ``exclude``, ``priority``, ``save_state``,
            ``load_state`` (see :class:`~neuroreg.BaseRegularization`).

    Example:
        >>> import torch, neuroreg as nr
        >>> signs = torch.nn.Parameter(torch.tensor([3.0, 1.0, 1.0, -1.0]))
        >>> reg = nr.ExcRatioTargetRegularization([signs], exc_target_ratio=0.5, sign_func=torch.sign)
        >>> reg(), reg.get_params_exc_ratio(), reg.get_params_inh_ratio()
        (tensor(0.5000, grad_fn=<MulBackward0>), [0.75], [0.25])
    """

    closed_form_grad = True

    def __init__(
        self,
        params: ParamsLike,
        exc_target_ratio: float = 0.8,
        Lambda: float = 1.0,
        sign_func: Optional[Callable[[Tensor], Tensor]] = None,
        **kwargs: Any,
    ) -> None:
        target = check_open_unit("exc_target_ratio", exc_target_ratio)
        if sign_func is not None:
            check_callable("sign_func", sign_func)
        super().__init__(params, Lambda, **kwargs)
        self.exc_target_ratio = target
        self.sign_func = nn.Softsign() if sign_func is None else sign_func
        # The closed form is softsign's: any other sign function leaves the gradient to autograd.
        self.closed_form_grad = sign_func is None

    def _penalty_value(self, params: List[Tensor]) -> Tensor:
        if not params:
            return self._zero()
        return _exc_ratio_penalty(params, self.exc_target_ratio, self._sign_func_or_default())

    def _sign_func_or_default(self) -> Optional[Callable[[Tensor], Tensor]]:
        # None selects the functional's softsign, the form its closed-form gradient is written for.
        return None if self.closed_form_grad else self.sign_func

    def _add_penalty_grad_(self, params: List[Tensor], grads: List[Tensor], alpha: float) -> None:
        _exc_ratio_add_grad_(grads, params, self.exc_target_ratio, alpha)

    def get_params_exc_ratio(self) -> List[float]:
        """The soft excitatory ratio :math:`r_k` of each held parameter, as floats."""
        if len(self.params) == 0:
            return []
        with torch.no_grad():
            return exc_ratio(list(self.params), self._sign_func_or_default()).tolist()

    def get_params_inh_ratio(self) -> List[float]:
        """The soft inhibitory ratio :math:`1 - r_k` of each held parameter, as floats."""
        return [1 - ratio for ratio in self.get_params_exc_ratio()]

    def _ratio_report(self) -> Tuple[List[float], float]:
        values = self.last_values()
        if not values:
            with torch.no_grad():
                self()
            values = self.last_values()
        return self.get_params_exc_ratio(), values[self.name]

    def on_pbar_update(self, trainer: Any = None, **kwargs: Any) -> Dict[str, Any]:
        """``{"exc_ratio": [r_k, ...], "exc_ratio_loss": Lambda * penalty}`` for the progress bar."""
        ratios, loss = self._ratio_report()
        return {"exc_ratio": ratios, "exc_ratio_loss": loss}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, exc_target_ratio={self.exc_target_ratio:g}"


class InhRatioTargetRegularization(ExcRatioTargetRegularization):
    r""":class:`ExcRatioTargetRegularization` with a target *inhibitory* ratio :math:`t_I` (the excitatory
    target is :math:`1 - t_I`).

    .. math:: \mathcal{L} = \Lambda \sum_k \big|\operatorname{mean}(\sigma(W_k)) - 1 + 2\,t_I\big|

    Takes the same keyword arguments as :class:`ExcRatioTargetRegularization` (``sign_func``,
    ``optimizer``, ``name``, ``priority``, ...), which NeuroTorch's does not, and reports the inhibitory
    ratio.

    Example:
        >>> import torch, neuroreg as nr
        >>> signs = torch.nn.Parameter(torch.tensor([3.0, 1.0, 1.0, -1.0]))
        >>> reg = nr.InhRatioTargetRegularization([signs], inh_target_ratio=0.25, sign_func=torch.sign)
        >>> reg(), reg.exc_target_ratio
        (tensor(0., grad_fn=<MulBackward0>), 0.75)
    """

    def __init__(
        self,
        params: ParamsLike,
        inh_target_ratio: float = 0.2,
        Lambda: float = 1.0,
        sign_func: Optional[Callable[[Tensor], Tensor]] = None,
        **kwargs: Any,
    ) -> None:
        target = check_open_unit("inh_target_ratio", inh_target_ratio)
        super().__init__(params, 1 - target, Lambda, sign_func, **kwargs)
        self.inh_target_ratio = target

    def on_pbar_update(self, trainer: Any = None, **kwargs: Any) -> Dict[str, Any]:
        """``{"inh_ratio": [1 - r_k, ...], "inh_ratio_loss": Lambda * penalty}`` for the progress bar."""
        ratios, loss = self._ratio_report()
        return {"inh_ratio": [1 - ratio for ratio in ratios], "inh_ratio_loss": loss}

    def extra_repr(self) -> str:
        return f"{BaseRegularization.extra_repr(self)}, inh_target_ratio={self.inh_target_ratio:g}"


class WeightsDistance(PenaltyUpdates, BaseRegularization):
    r"""Sum of the entrywise p-norms (optionally squared) of the differences between the parameters and
    reference weights.

    .. math::
        \mathcal{L} = \Lambda \sum_k c_k \lVert W_k - W_{k,\text{ref}} \rVert_p^{s}, \qquad
        s = 2 \text{ if squared else } 1, \qquad c_k = 1 \text{ (sum) or } 1/|W_k| \text{ (mean)}

    The norm is entrywise whatever the rank by default. NeuroTorch takes ``torch.linalg.norm(|W - W_ref|, p)``,
    a matrix norm of 2-D weights (for ``p = 1`` the largest column sum): ``norm="matrix"`` gives that value
    and its gradient (:func:`~neuroreg.functional.weights_matrix_distance`; 1-D tensors take the vector norm,
    other ranks, 0-d included, are refused at construction as ``torch.linalg.norm`` refuses them).

    The references are copied into buffers (:attr:`reference_weights`: in ``state_dict()``, moved by
    ``.to()``), so passing a parameter's current values keeps them as they are now.

    Args:
        params: What to regularize.
        reference_weights: One tensor per parameter, same shape.
        Lambda: Weight of the penalty.
        p: Order of the norm, a real > 0 or ``math.inf`` (for ``p = 1`` the subgradient is 0 where a weight
            equals its reference).
        squared: Square each norm (``p=2, squared=True``: the sum of squared differences, decay toward the
            references).
        update: ``"gradient"`` (default); ``"proximal"`` for ``p = 1`` (soft-thresholding toward the
            references: weights within :math:`\eta\Lambda c_k` land exactly on them) or ``p = 2, squared``
            (shrinkage toward them); ``"decoupled"`` for ``p = 2, squared`` (AdamW-style decay toward them). See
            :class:`~neuroreg.updates.PenaltyUpdates`.
        reduction: ``"sum"`` (default) or ``"mean"``: each tensor's norm divided by its number of entries.
        norm: ``"entrywise"`` (default) or ``"matrix"`` (NeuroTorch's norm, as in :class:`~neuroreg.Lp`: ``p``
            one of ``1, 2, inf, -1, -2, -inf, "fro", "nuc"`` for 2-D tensors; only ``update="gradient"``).
        **kwargs: ``optimizer`` and the base keywords (see :class:`~neuroreg.BaseRegularization`).

    Example:
        >>> import torch, neuroreg as nr
        >>> w = torch.nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        >>> reg = nr.WeightsDistance([w], reference_weights=[w.detach()], p=1)   # a copy of w now
        >>> with torch.no_grad():
        ...     _ = w.add_(torch.tensor([[0.5, 0.0], [0.0, -1.0]]))
        >>> reg()
        tensor(1.5000, grad_fn=<MulBackward0>)
    """

    closed_form_grad = True

    def __init__(
        self,
        params: ParamsLike,
        reference_weights: Sequence[Tensor],
        Lambda: float = 1.0,
        p: float = 1,
        *,
        squared: bool = False,
        update: Update = "gradient",
        reduction: Reduction = "sum",
        norm: Literal["entrywise", "matrix"] = "entrywise",
        **kwargs: Any,
    ) -> None:
        norm, p = check_norm_and_order(norm, p)
        squared = check_bool("squared", squared)
        update = check_update(f"WeightsDistance(p={order_text(p)}, squared={squared}, norm={norm!r})", update,
                              norm_updates(p, squared) if norm == "entrywise" else ("gradient",),
                              kwargs.get("optimizer"))
        reduction = check_reduction(reduction)
        super().__init__(params, Lambda, **kwargs)
        if norm == "matrix":
            check_norm_ord("p", p, [param.shape for param in self.params])
        references = check_reference_tensors("reference_weights", reference_weights, self.params)
        self._register_buffer_list(
            "reference_weights",
            [r.to(device=param.device, dtype=param.dtype, copy=True) for r, param in zip(references, self.params)],
        )
        self.norm = norm
        self.p: Ord = p
        self.squared = squared
        self._init_penalty_updates(update, reduction)

    #: The closed form would compute the differences again in the backward pass; autograd keeps them.
    _closed_form_backward = False

    @property
    def reference_weights(self) -> List[Tensor]:
        """The reference weights, one per held parameter (buffers ``reference_weights_{k}``)."""
        return self._buffer_list("reference_weights")

    def _penalty_value(self, params: List[Tensor]) -> Tensor:
        if not params:
            return self._zero()
        return self._reduced(self._distance_value, params, self._regularized_buffers("reference_weights"))

    def _distance_value(self, params: List[Tensor], references: List[Tensor]) -> Tensor:
        if self.norm == "matrix":
            return weights_matrix_distance(params, references, self.p, squared=self.squared)
        return _weights_distance(params, references, self.p, self.squared)

    def _add_penalty_grad_(self, params: List[Tensor], grads: List[Tensor], alpha: float) -> None:
        self._reduced_add_grad_(self._add_distance_grad_, grads, params, self._regularized_buffers("reference_weights"),
                                alpha=alpha)

    def _add_distance_grad_(self, grads: List[Tensor], params: List[Tensor], references: List[Tensor],
                            alpha: float) -> None:
        if self.norm == "matrix":
            weights_matrix_distance_add_grad_(grads, params, references, self.p, alpha=alpha, squared=self.squared)
        else:
            _weights_distance_add_grad_(grads, params, references, self.p, self.squared, alpha)

    def _closed_form_grads(self, params: List[Tensor], alpha: Union[float, Tensor]) -> List[Tensor]:
        if self.norm == "entrywise" and self.reduction == "sum":
            references = self._regularized_buffers("reference_weights")
            return _weights_distance_grad(params, references, self.p, self.squared, alpha)
        return super()._closed_form_grads(params, alpha)

    def _prox_(self, params: List[Tensor], steps: List[float]) -> None:
        prox = weights_distance_l1_prox_ if self.p == 1 else weights_distance_squared_l2_prox_
        prox(params, self._buffers_of("reference_weights", params), steps)

    def _decay_(self, params: List[Tensor], steps: List[float]) -> None:
        weights_distance_squared_l2_decay_(params, self._buffers_of("reference_weights", params), steps)

    def extra_repr(self) -> str:
        norm = ", norm='matrix'" if self.norm == "matrix" else ""
        return f"{super().extra_repr()}, p={order_text(self.p)}, squared={self.squared}{norm}{self._modes_repr()}"
