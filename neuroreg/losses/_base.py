"""The base of the ported hypercoil losses: ``scalarisation(score)`` over a :mod:`neuroreg.functional`
function, on call-time inputs or on held parameters."""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple

import torch
from torch import Tensor

from neuroreg._validation import check_callable, check_floating_tensor
from neuroreg.base import BaseRegularization, LambdaLike, ParamsLike
from neuroreg.functional._multi_tensor import sum_scalars
from neuroreg.scalarise import Scalarisation

__all__ = ["_ScalarisedLoss"]


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
            # a zero-element tensor contributes nothing (the mean of its empty score would be NaN)
            values = [self._scalar(param, *second) for param in self.regularized_parameters() if param.numel()]
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
