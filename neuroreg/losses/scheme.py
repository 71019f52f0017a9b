"""hypercoil's loss scheme: one call routes named arguments to many losses (``LossScheme``, ``LossApply``,
``LossArgument``), built on :class:`~neuroreg.RegularizationList`.

A scheme is a list whose call passes its arguments through a selector (``apply``) to every member; a
:class:`LossApply` member passes them through its own selector first, and members nest. Named arguments
(``scheme(model=W, data=X)``) arrive as one :class:`LossArgument`; a loss that is a direct member takes its
inputs from it by name (``EntropyLoss`` its ``X``, ``MSELoss`` its ``Y`` and ``Y_hat``), a ``LossApply``
member picks them with its selector. The value is the weighted sum, and :meth:`last_values` gives each
term by name (hypercoil returns both as ``(total, {name: LossReturn(value, nu)})``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable, Iterator, List, Optional, Set, Tuple

from torch import Tensor

from neuroreg._validation import check_callable
from neuroreg.base import BaseRegularization, LambdaLike, RegularizationList
from neuroreg.functional._multi_tensor import sum_scalars

__all__ = ["LossApply", "LossArgument", "LossScheme", "UnpackingLossArgument", "unpack_or_noop"]

Selector = Callable[..., Any]


class LossArgument(Mapping):
    """Named arguments of a scheme (hypercoil's ``LossArgument``, its ``ModelArgument``): a read-only
    mapping whose entries are also attributes (``arg.X``, ``arg["X"]``).

    It remembers which entries were read, so that a scheme called with named arguments can refuse a name
    that nothing used (a typo would otherwise silently drop a term).

    Example:
        >>> arg = LossArgument(X=1, Y=2)
        >>> arg.X, dict(LossArgument.all_except(arg, "X")), dict(arg + LossArgument(Y=3))
        (1, {'Y': 2}, {'X': 1, 'Y': 3})
    """

    def __init__(self, **params: Any) -> None:
        object.__setattr__(self, "_arg_dict", dict(params))
        object.__setattr__(self, "_read", set())

    def __getattr__(self, name: str) -> Any:
        # Only called when ordinary lookup fails: the entries.
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._arg_dict:
            raise AttributeError(f"{type(self).__name__} has no argument {name!r}; it has {list(self._arg_dict)}")
        return self[name]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: build a new one (add, replaced, swap)")

    def __getitem__(self, name: str) -> Any:
        value = self._arg_dict[name]
        self._read.add(name)
        return value

    def __contains__(self, name: object) -> bool:
        return name in self._arg_dict

    def __len__(self) -> int:
        return len(self._arg_dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self._arg_dict)

    def __add__(self, other: Mapping) -> LossArgument:
        """The union; on a clash ``other`` wins (a plain ``LossArgument``, as in hypercoil)."""
        return LossArgument(**{**self._arg_dict, **dict(other.items())})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._arg_dict) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def unread(self) -> Set[str]:
        """The names of the entries never read."""
        return set(self._arg_dict) - self._read

    @classmethod
    def add(cls, arg: Mapping, **params: Any) -> LossArgument:
        """``arg`` with ``params`` added (they win on a clash)."""
        return LossArgument(**dict(arg.items())) + cls(**params)

    @classmethod
    def all_except(cls, arg: Mapping, *remove: str) -> LossArgument:
        """``arg`` without the entries named in ``remove``."""
        return cls(**{k: v for k, v in arg.items() if k not in remove})

    @classmethod
    def replaced(cls, arg: Mapping, **replace: Any) -> LossArgument:
        """``arg`` with the existing entries named in ``replace`` replaced (``None`` keeps the old value)."""
        return cls(**{k: (replace[k] if replace.get(k) is not None else v) for k, v in arg.items()})

    @classmethod
    def swap(cls, arg: Mapping, *remove: str, **new: Any) -> LossArgument:
        """``arg`` without ``remove``, with ``new`` added."""
        return cls(**{**{k: v for k, v in arg.items() if k not in remove}, **new})

    def __repr__(self) -> str:
        entries = ", ".join(f"{k}={_short(v)}" for k, v in self._arg_dict.items())
        return f"{type(self).__name__}({entries})"


class UnpackingLossArgument(LossArgument):
    """A :class:`LossArgument` that a selector returns to have it unpacked: the member is then called as
    ``member(**argument)`` (hypercoil's ``UnpackingLossArgument``)."""


def _short(value: Any) -> str:
    return f"Tensor{tuple(value.shape)}" if isinstance(value, Tensor) else repr(value)


def unpack_or_noop(*pparams: Any, **params: Any) -> Any:
    """The default selector: one argument as itself, several as a tuple, named ones as a
    :class:`LossArgument` (hypercoil's ``unpack_or_noop``, which takes no named arguments).

    Example:
        >>> unpack_or_noop(1), unpack_or_noop(1, 2), unpack_or_noop(X=1)
        (1, (1, 2), LossArgument(X=1))
    """
    if params:
        if pparams:
            raise TypeError(
                f"give a scheme its arguments by name or by position, not both: got {len(pparams)} positional and "
                f"{sorted(params)}"
            )
        return LossArgument(**params)
    return pparams[0] if len(pparams) == 1 else pparams


def _evaluate(member: BaseRegularization, applied: Any) -> Tensor:
    """Call ``member`` on what a selector returned (hypercoil's ``apply_and_evaluate``)."""
    if isinstance(applied, UnpackingLossArgument):
        if isinstance(member, (LossScheme, LossApply)):
            return member(**applied)
    elif isinstance(member, (LossScheme, LossApply)):
        return member(*applied) if isinstance(applied, tuple) else member(applied)
    if len(member.params) > 0:
        # A loss on held parameters takes no inputs, whatever the scheme is given.
        return member()
    if isinstance(applied, Mapping):
        names = getattr(member, "inputs", None)
        if names is None:
            raise TypeError(
                f"{member.name} takes no named inputs: wrap it in LossApply(..., apply=selector) to pick its "
                f"inputs from {sorted(applied)}"
            )
        missing = [name for name in names if name not in applied]
        if missing:
            raise ValueError(
                f"{member.name} takes the argument {missing[0]!r} (its inputs: {', '.join(names)}), and the scheme "
                f"was given {sorted(applied)}: pass {missing[0]}= or wrap it in LossApply with a selector"
            )
        return member(*(applied[name] for name in names))
    return member(*applied) if isinstance(applied, tuple) else member(applied)


class LossApply(RegularizationList):
    r"""One loss behind a selector (hypercoil's ``LossApply``): ``LossApply(loss, apply)(*args)`` is
    ``loss(apply(*args))``.

    .. math::
        \mathcal{L} = \Lambda \, \Lambda_{\text{loss}} \, \mathcal{L}_{\text{loss}}\big(\text{apply}(\text{args})\big)

    What the selector returns is given to the loss as hypercoil does: an :class:`UnpackingLossArgument` by
    name, a :class:`LossArgument` by the loss's input names, a tuple as positional arguments, anything else
    as its one input. A loss that holds parameters is called with none.

    Args:
        loss: The regularization to apply (a loss, a list or a :class:`LossScheme`).
        apply: The selector (hypercoil's ``apply``; default :func:`unpack_or_noop`), kept as
            :attr:`selector` (``nn.Module.apply`` is a method of every module).
        Lambda: An extra weight (default 1).
        name: Name in logs (default: the loss's name, as hypercoil's).
        **kwargs: ``optimizer``, ``priority``, ``save_state``, ``load_state`` as in
            :class:`~neuroreg.RegularizationList`.

    Example:
        >>> import torch, neuroreg as nr
        >>> entropy = nr.LossApply(nr.EntropyLogitLoss(), apply=lambda arg: arg.logits)
        >>> entropy(nr.LossArgument(logits=torch.zeros(2, 4)))   # log 4
        tensor(1.3863)
    """

    def __init__(
        self,
        loss: BaseRegularization,
        apply: Selector = unpack_or_noop,
        Lambda: LambdaLike = 1.0,
        *,
        name: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        self._check_member("loss", loss)
        selector = check_callable("apply", apply)
        super().__init__([loss], Lambda, name=loss.name if name is None else name, **kwargs)
        self.selector = selector

    @property
    def loss(self) -> BaseRegularization:
        """The wrapped regularization."""
        return self.regularizations[0]

    def _leaf_names(self) -> List[str]:
        # By default a LossApply bears its loss's name: the two are one term, not two with the same name.
        own = [] if self.loss.name == self.name else [self.loss.name]
        return [*own, *self.loss._leaf_names()]

    def forward(self, *args: Any, key: Optional[Any] = None, **kwargs: Any) -> Tensor:
        """The loss's weighted value on what the selector picks from the arguments (``key`` is accepted for
        hypercoil's calls and unused)."""
        return _evaluate(self.loss, self.selector(*args, **kwargs))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, apply={self.selector!r}"


class LossScheme(RegularizationList):
    r"""Several losses evaluated on the same arguments, summed (hypercoil's ``LossScheme``).

    .. math::
        \mathcal{L} = \Lambda \sum_k \Lambda_k \, \mathcal{L}_k\big(\text{apply}_k(\text{apply}(\text{args}))\big)

    Members are regularizations: losses (taking their inputs from the arguments by name, see
    :func:`_evaluate`), :class:`LossApply` selectors, nested schemes, or regularizations of held
    parameters (called with no input). Called with named arguments (``scheme(X=W)``) it refuses a name no
    member read. The call returns the total; :meth:`last_values` the weighted value of each term by name,
    nested ones included (hypercoil's call returns both).

    Args:
        loss: The members (hypercoil's name; :attr:`regularizations` here).
        apply: A selector applied to the arguments before the members see them (default
            :func:`unpack_or_noop`), kept as :attr:`selector`.
        Lambda: An extra weight on the sum (default 1).
        **kwargs: ``optimizer``, ``name``, ``priority``, ``save_state``, ``load_state`` as in
            :class:`~neuroreg.RegularizationList`.

    Example:
        >>> import torch, neuroreg as nr
        >>> scheme = nr.LossScheme([
        ...     nr.EntropyLogitLoss(nu=0.5, axis=0, name="entropy"),
        ...     nr.LossApply(nr.MSELoss(name="mse"), apply=lambda arg: (arg.X.softmax(0), arg.target)),
        ... ])
        >>> total = scheme(X=torch.zeros(2, 3), target=torch.full((2, 3), 0.5))
        >>> total, scheme.last_values()   # 0.5 * log 2 + 0
        (tensor(0.3466), {'entropy': 0.3465735912322998, 'mse': 0.0})
    """

    def __init__(
        self,
        loss: Optional[Iterable[BaseRegularization]] = None,
        apply: Selector = unpack_or_noop,
        Lambda: LambdaLike = 1.0,
        **kwargs: Any,
    ) -> None:
        selector = check_callable("apply", apply)
        super().__init__(loss, Lambda, **kwargs)
        self.selector = selector

    @property
    def loss(self) -> Tuple[BaseRegularization, ...]:
        """The members, as hypercoil's ``LossScheme.loss``."""
        return tuple(self.regularizations)

    def __add__(self, other: LossScheme) -> LossScheme:
        """A scheme of both schemes' members, with the default selector (as hypercoil's)."""
        if not isinstance(other, LossScheme):
            return NotImplemented
        return LossScheme([*self, *other])

    def forward(self, *args: Any, key: Optional[Any] = None, **kwargs: Any) -> Tensor:
        """The sum of the members' weighted values on what the selector picks from the arguments (``key``
        is accepted for hypercoil's calls and unused)."""
        applied = self.selector(*args, **kwargs)
        values = [_evaluate(member, applied) for member in self.regularizations]
        if kwargs and isinstance(applied, LossArgument) and applied.unread():
            raise ValueError(
                f"{self.name} was given the argument(s) {sorted(applied.unread())}, which no member reads (its "
                f"members read {sorted(set(applied) - applied.unread())})"
            )
        return sum_scalars(values) if values else self._zero()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, apply={self.selector!r}"

