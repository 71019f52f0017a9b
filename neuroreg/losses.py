"""hypercoil's losses as neuroreg regularizations: equilibrium, Jensen-Shannon divergence, smoothness and
batch correlation.

Each class is ``scalarisation(score)`` over a function of :mod:`neuroreg.functional`, weighted by ``Lambda``
(hypercoil's ``nu``). It is used on tensors given at call time, with hypercoil's call signature, or on held
parameters, called with no argument (so that it can sit in a :class:`~neuroreg.RegularizationList` or act
as a trainer callback).
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple

import torch
from torch import Tensor

from neuroreg._validation import check_axes_spec, check_bool, check_callable, check_floating_tensor
from neuroreg.base import BaseRegularization, LambdaLike, ParamsLike
from neuroreg.functional._common import Axes
from neuroreg.functional._multi_tensor import sum_scalars
from neuroreg.functional.batchcorr import Tolerance, batch_corr
from neuroreg.functional.batchcorr import _options as batch_corr_options
from neuroreg.functional.divergence import js_divergence, js_divergence_logit
from neuroreg.functional.equilibrium import equilibrium, equilibrium_logit
from neuroreg.functional.smoothness import _options as smoothness_options
from neuroreg.functional.smoothness import smoothness
from neuroreg.scalarise import Scalarisation, mean_scalarise, meansq_scalarise, vnorm_scalarise

__all__ = [
    "BatchCorrelationLoss",
    "EquilibriumLogitLoss",
    "EquilibriumLoss",
    "JSDivergenceLogitLoss",
    "JSDivergenceLoss",
    "SmoothnessLoss",
]


class _ScalarisedLoss(BaseRegularization):
    """A hypercoil loss: ``scalarisation(score)`` with the score's options bound.

    Subclasses name the score's tensor inputs in :attr:`inputs`. Without ``params`` the loss takes them at
    call time; with ``params`` it is called with no argument and sums the scalarised score of each held
    tensor (the first input), a two-input loss taking its second input from the ``target`` buffer.
    """

    #: The score's tensor inputs, in hypercoil's call order.
    inputs: ClassVar[Tuple[str, ...]] = ("X",)

    def __init__(
        self,
        params: ParamsLike,
        Lambda: LambdaLike,
        *,
        score: Callable[..., Tensor],
        options: Dict[str, Any],
        scalarisation: Scalarisation,
        nu: Optional[LambdaLike],
        target: Optional[Tensor] = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(params, numbers.Real):
            raise TypeError(
                f"params must be what to regularize (a module, parameters or None), got {params!r}: hypercoil's "
                f"first positional argument, nu, is Lambda here (pass Lambda= or nu=)"
            )
        if nu is not None:
            if Lambda != 1.0 and Lambda != nu:
                raise ValueError(
                    f"nu is another name for Lambda: give one, or equal values, got Lambda={Lambda!r}, nu={nu!r}"
                )
            Lambda = nu
        scalarisation = check_callable("scalarisation", scalarisation)
        if len(self.inputs) == 2:
            if (target is None) != (params is None):
                raise ValueError(
                    f"{type(self).__name__} on held parameters compares each with target= (its "
                    f"{self.inputs[1]}), and target is only used with params: got "
                    f"{'no params' if params is None else 'params'} and {'no target' if target is None else 'a target'}"
                )
            if target is not None:
                target = check_floating_tensor("target", target).detach()
        super().__init__(params, Lambda, **kwargs)
        self.options = options
        self.score = scalarisation(functools.partial(score, **options))
        if target is not None:
            self.register_buffer("target", target)
        if self.params:
            # One unrecorded evaluation checks the axes, shapes and target against every held tensor now,
            # rather than at the first training step.
            with torch.no_grad():
                self.forward()

    def forward(self, *inputs: Tensor, key: Optional[Any] = None) -> Tensor:
        """The scalarised score of the call's inputs, or, called with none, the sum over held tensors.

        ``key`` is accepted so that hypercoil calls (``loss(X, key=key)``) port unchanged; these scores are
        deterministic and do not use it.
        """
        if self.params:
            if inputs:
                raise TypeError(
                    f"{self.name} regularizes its held parameters and takes no inputs, got {len(inputs)}"
                )
            second = (self.target,) if len(self.inputs) == 2 else ()
            values = [self._scalar(param, *second) for param in self.regularized_parameters()]
            return sum_scalars(values) if values else self._zero()
        if not inputs:
            raise ValueError(
                f"{self.name} holds no parameters and was called without inputs: give it params= (and target=) "
                f"when building it, or call it as {type(self).__name__}(...)({', '.join(self.inputs)})"
            )
        if len(inputs) != len(self.inputs):
            raise TypeError(
                f"{type(self).__name__} takes {len(self.inputs)} input(s) ({', '.join(self.inputs)}), got {len(inputs)}"
            )
        return self._scalar(*inputs)

    def _scalar(self, *inputs: Tensor) -> Tensor:
        value = self.score(*inputs)
        if value.dim() != 0:
            raise ValueError(
                f"the scalarisation of {self.name} must reduce its score to a 0-d tensor, got shape "
                f"{tuple(value.shape)}: reduce over every axis (axis=None) or compose an outer map"
            )
        return value

    def extra_repr(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.options.items())
        return f"{super().extra_repr()}, {options}"


class EquilibriumLoss(_ScalarisedLoss):
    r"""Parcel equilibrium of masses (hypercoil's ``EquilibriumLoss``): favours parcels of equal total weight.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{meansq}\left| \operatorname{mean}_{\text{level\_axis}} X -
        \operatorname{mean}_{\text{instance\_axes}} X \right|

    Args:
        params: ``None`` to call it on tensors, ``loss(X)``; or the parameters (e.g. parcellation weights)
            to regularize, calling it as ``loss()`` for the sum over held tensors.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        level_axis: As in :func:`neuroreg.functional.equilibrium`.
        instance_axes: As in :func:`neuroreg.functional.equilibrium`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``meansq_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: ``optimizer``, ``include``, ``exclude``, ``priority``, ``save_state``, ``load_state``
            (see :class:`~neuroreg.BaseRegularization`).

    Example:
        >>> import torch, neuroreg as nr
        >>> X = torch.tensor([[0.2, 0.2], [0.3, 0.3], [0.5, 0.5]])
        >>> nr.EquilibriumLoss(nu=2.0)(X)
        tensor(0.0311)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        level_axis: Axes = -1,
        instance_axes: Axes = (-2, -1),
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "level_axis": check_axes_spec("level_axis", level_axis),
            "instance_axes": check_axes_spec("instance_axes", instance_axes),
        }
        super().__init__(
            params, Lambda, score=equilibrium, options=options, scalarisation=scalarisation or meansq_scalarise(),
            nu=nu, name=name, **kwargs,
        )


class EquilibriumLogitLoss(_ScalarisedLoss):
    r"""Parcel equilibrium of the softmax of logits (hypercoil's ``EquilibriumLogitLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\left| \operatorname{mean}_{\text{level\_axis}} P -
        \operatorname{mean}_{\text{instance\_axes}} P \right|, \qquad P = \operatorname{softmax}_{\text{prob\_axis}} X

    Args:
        params: ``None`` to call it on logits, ``loss(X)``; or parcellation logits to regularize, calling
            it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        level_axis: As in :func:`neuroreg.functional.equilibrium_logit`.
        prob_axis: As in :func:`neuroreg.functional.equilibrium_logit`.
        instance_axes: As in :func:`neuroreg.functional.equilibrium_logit`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> logits = torch.nn.Parameter(torch.zeros(4, 100))   # 4 parcels, 100 voxels, all equiprobable
        >>> nr.EquilibriumLogitLoss(logits, Lambda=10.0)()
        tensor(0., grad_fn=<MulBackward0>)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        level_axis: Axes = -1,
        prob_axis: Axes = -2,
        instance_axes: Axes = (-2, -1),
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "level_axis": check_axes_spec("level_axis", level_axis),
            "prob_axis": check_axes_spec("prob_axis", prob_axis),
            "instance_axes": check_axes_spec("instance_axes", instance_axes),
        }
        super().__init__(
            params, Lambda, score=equilibrium_logit, options=options,
            scalarisation=scalarisation or mean_scalarise(), nu=nu, name=name, **kwargs,
        )


class _DivergenceLoss(_ScalarisedLoss):
    """The options and construction shared by the two Jensen-Shannon losses."""

    inputs = ("P", "Q")
    _score: ClassVar[Callable[..., Tensor]]

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        axis: Axes = -1,
        keepdims: bool = False,
        reduce: bool = True,
        target: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "axis": check_axes_spec("axis", axis),
            "keepdims": check_bool("keepdims", keepdims),
            "reduce": check_bool("reduce", reduce),
        }
        super().__init__(
            params, Lambda, score=type(self)._score, options=options, scalarisation=scalarisation or mean_scalarise(),
            nu=nu, target=target, name=name, **kwargs,
        )


class JSDivergenceLoss(_DivergenceLoss):
    r"""Jensen-Shannon divergence between probability tensors (hypercoil's ``JSDivergenceLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, JS(P \,\|\, Q), \qquad
        JS = \tfrac{1}{2} KL(P \,\|\, M) + \tfrac{1}{2} KL(Q \,\|\, M), \; M = \tfrac{1}{2}(P + Q)

    Args:
        params: ``None`` to call it as ``loss(P, Q)``; or probability tensors to hold, each compared with
            ``target`` when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        axis: As in :func:`neuroreg.functional.js_divergence`.
        keepdims: As in :func:`neuroreg.functional.js_divergence` (default ``False``, as hypercoil's loss).
        reduce: As in :func:`neuroreg.functional.js_divergence`.
        target: With ``params``: the fixed distribution ``Q`` (a buffer, broadcast against each held tensor).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> P = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
        >>> nr.JSDivergenceLoss()(P, torch.tensor([0.0, 1.0]))   # mean of log 2 and 0.2158
        tensor(0.4545)
    """

    _score = staticmethod(js_divergence)


class JSDivergenceLogitLoss(_DivergenceLoss):
    r"""Jensen-Shannon divergence between the softmaxes of logits (hypercoil's ``JSDivergenceLogitLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, JS\big(\operatorname{softmax}(P) \,\|\,
        \operatorname{softmax}(Q)\big)

    Args:
        params: ``None`` to call it as ``loss(P, Q)`` on logits; or logits to hold, each compared with the
            logits ``target`` when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        axis: As in :func:`neuroreg.functional.js_divergence_logit` (also the softmax's axes).
        keepdims: As in :func:`neuroreg.functional.js_divergence_logit` (default ``False``).
        reduce: As in :func:`neuroreg.functional.js_divergence_logit`.
        target: With ``params``: the fixed logits ``Q`` (a buffer, broadcast against each held tensor).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> logits = torch.nn.Parameter(torch.zeros(3, 4))
        >>> reg = nr.JSDivergenceLogitLoss(logits, target=torch.zeros(4))
        >>> reg()                                      # already equal to the target
        tensor(0., grad_fn=<MulBackward0>)
    """

    _score = staticmethod(js_divergence_logit)


class SmoothnessLoss(_ScalarisedLoss):
    r"""Backward differences along an axis (hypercoil's ``SmoothnessLoss``): penalises sudden changes.

    .. math::
        \mathcal{L} = \Lambda \, \lVert \Delta^n X \rVert_1 \quad \text{(default scalarisation)}

    Args:
        params: ``None`` to call it as ``loss(X)``; or parameters to hold (e.g. a temporal filter), calling
            it as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        n: As in :func:`neuroreg.functional.smoothness`.
        pad_value: As in :func:`neuroreg.functional.smoothness`.
        axis: As in :func:`neuroreg.functional.smoothness`.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``vnorm_scalarise(p=1, axis=None)``,
            the L1 norm of all differences).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> nr.SmoothnessLoss()(torch.tensor([0.0, 1.0, 0.0, 1.0]))
        tensor(3.)
    """

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        n: int = 1,
        pad_value: Optional[float] = None,
        axis: int = -1,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        n, pad_value, axis = smoothness_options(n=n, pad_value=pad_value, axis=axis)
        super().__init__(
            params, Lambda, score=smoothness, options={"n": n, "pad_value": pad_value, "axis": axis},
            scalarisation=scalarisation or vnorm_scalarise(p=1, axis=None), nu=nu, name=name, **kwargs,
        )


class BatchCorrelationLoss(_ScalarisedLoss):
    r"""Correlation over the batch axis with a measure (hypercoil's ``BatchCorrelationLoss``), e.g. QC-FC.

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}_f \max(|r_f(X, N)| - \text{tol}, 0)

    Args:
        params: ``None`` to call it as ``loss(X, N)``; or tensors whose first axis is the batch, each
            correlated with ``target`` when called as ``loss()``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        tol: As in :func:`neuroreg.functional.batch_corr` (a real >= 0 or ``'auto'``).
        tol_sig: As in :func:`neuroreg.functional.batch_corr`.
        abs: As in :func:`neuroreg.functional.batch_corr` (``False``: signed, so the penalty can be < 0).
        target: With ``params``: the fixed measure ``N``, one value per batch element (a buffer).
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> N = torch.tensor([1.0, 2.0, 3.0, 4.0])
        >>> nr.BatchCorrelationLoss(tol=0.5)(torch.stack([N, torch.ones(4)], dim=1), N)   # mean of 0.5, 0
        tensor(0.2500)
    """

    inputs = ("X", "N")

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        tol: Tolerance = 0,
        tol_sig: float = 0.1,
        abs: bool = True,
        target: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        tol, tol_sig, abs = batch_corr_options(tol=tol, tol_sig=tol_sig, abs=abs)
        super().__init__(
            params, Lambda, score=batch_corr, options={"tol": tol, "tol_sig": tol_sig, "abs": abs},
            scalarisation=scalarisation or mean_scalarise(), nu=nu, target=target, name=name, **kwargs,
        )
