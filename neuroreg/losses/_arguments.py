"""The base of the ported hypercoil losses whose score takes several tensors (masses and coordinates, maps
and adjacency matrices, data and weights), any of which can be bound when the loss is built."""

from __future__ import annotations

from typing import Any, ClassVar, Dict, FrozenSet, Optional, Tuple

from torch import Tensor

from neuroreg._validation import check_floating_tensor
from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional._multi_tensor import sum_scalars
from neuroreg.losses._base import _ScalarisedLoss

__all__ = ["_ArgumentsLoss"]


class _ArgumentsLoss(_ScalarisedLoss):
    """A hypercoil loss over the tensors named in :attr:`arguments`, as hypercoil's modules take them: each
    argument can be bound when the loss is built (``CompactnessLoss(coor=C)``, a buffer: in ``state_dict()``
    and moved by ``.to()``) and given, or overridden, at call time (``loss(X)``, ``loss(X, C)``,
    ``loss(X, coor=C)``).

    With ``params`` the held tensors fill :attr:`held` (one held tensor per call, or consecutive groups of
    ``len(held)`` tensors, e.g. ``[lh, rh]``), every other argument comes from its binding, and the loss is
    called with no argument: the sum over held tensors (or groups).
    """

    # _ScalarisedLoss's one-target mechanism for two-input scores is replaced by bound arguments.
    inputs = ()
    #: The score's tensor arguments, in hypercoil's call order (the score is called with them positionally).
    arguments: ClassVar[Tuple[str, ...]]
    #: The arguments that held parameters fill.
    held: ClassVar[Tuple[str, ...]]
    #: Arguments that may be left unset (``None``).
    optional: ClassVar[FrozenSet[str]] = frozenset()
    #: Arguments that may be bound to a value other than a tensor (e.g. a float parameter of a callable).
    untyped: ClassVar[FrozenSet[str]] = frozenset()

    def __init__(
        self,
        params: ParamsLike,
        Lambda: LambdaLike,
        *,
        bound: Dict[str, Any],
        nu: Optional[LambdaLike],
        **kwargs: Any,
    ) -> None:
        checked = {name: self._check_argument(name, value) for name, value in bound.items()}
        # _ScalarisedLoss evaluates the loss once on the held tensors while it is built, before buffers can be
        # registered (nn.Module.__init__ runs inside it): until then the bound values live here.
        object.__setattr__(self, "_bound_constants", checked)
        super().__init__(params, Lambda, nu=nu, **kwargs)
        for name in [name for name, value in checked.items() if value is None or isinstance(value, Tensor)]:
            self.register_buffer(name, self._bound_constants.pop(name))

    def _check_argument(self, name: str, value: Any) -> Any:
        if value is None or (name in self.untyped and not isinstance(value, Tensor)):
            return value
        return check_floating_tensor(name, value).detach()

    def _bound_argument(self, name: str) -> Any:
        return self._buffers[name] if name in self._buffers else self._bound_constants.get(name)

    def forward(self, *inputs: Any, key: Optional[Any] = None, **named: Any) -> Tensor:
        """The scalarised score of the call's arguments (unset ones taken from their bindings), or, called
        with none, the sum over held tensors.

        ``key`` is accepted so that hypercoil calls port unchanged; these scores are deterministic.
        """
        if self.params:
            if inputs or named:
                raise TypeError(f"{self.name} regularizes its held parameters and takes no inputs")
            held, group = self._held_tensors(), len(self.held)
            if len(held) % group != 0:
                raise ValueError(
                    f"{type(self).__name__} holds its parameters in groups of {group} ({', '.join(self.held)}), "
                    f"got {len(held)} parameters"
                )
            values = []
            for start in range(0, len(held), group):
                members = held[start:start + group]
                # a group with a zero-element tensor contributes nothing (its score would be a mean of nothing)
                if any(acts for _, acts in members) and all(tensor.numel() for tensor, _ in members):
                    values.append(self._evaluate(dict(zip(self.held, (tensor for tensor, _ in members)))))
            return sum_scalars(values) if values else self._zero()
        if len(inputs) > len(self.arguments):
            raise TypeError(
                f"{type(self).__name__} takes at most {len(self.arguments)} arguments ({', '.join(self.arguments)}), "
                f"got {len(inputs)}"
            )
        given = dict(zip(self.arguments, inputs))
        for name, value in named.items():
            if name not in self.arguments:
                raise TypeError(f"{type(self).__name__} got an unknown argument {name!r} (its arguments: "
                                f"{', '.join(self.arguments)})")
            if name in given:
                raise TypeError(f"{type(self).__name__} got {name!r} twice, by position and by name")
            given[name] = value
        return self._evaluate(given)

    def _evaluate(self, given: Dict[str, Any]) -> Tensor:
        values = []
        for name in self.arguments:
            value = given.get(name)
            if value is None:
                value = self._bound_argument(name)
            if value is None and name not in self.optional:
                raise ValueError(
                    f"{type(self).__name__} needs {name}: give it when building the loss ({name}=...) or in the call"
                )
            values.append(value)
        return self._scalar(*values)
