"""The one place where neuroreg checks its arguments.

Every check raises a ``TypeError`` (wrong kind of value) or a ``ValueError`` (right kind, wrong value)
whose message names the argument and repeats the value given. Checks never modify their input, so a
constructor that validates everything before assigning anything leaves no half-built object behind.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

__all__ = [
    "check_axes",
    "check_axes_spec",
    "check_bool",
    "check_broadcastable",
    "check_callable",
    "check_callables",
    "check_choice",
    "check_dale_arguments",
    "check_dense_grads",
    "check_floating_tensor",
    "check_grad_layouts",
    "check_grads",
    "check_int",
    "check_keywords",
    "check_matrix",
    "check_names",
    "check_open_unit",
    "check_output_selector",
    "check_real",
    "check_real_pair",
    "check_reduction",
    "check_reference_tensors",
    "check_select",
    "check_update",
    "collect_modules",
    "collect_parameters",
    "parametrized_tensors",
    "select_output",
    "unwrapped_name",
]


def _is_real(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, Tensor):
        return value.numel() == 1 and not value.is_complex()
    return isinstance(value, numbers.Real)


def check_real(
    name: str,
    value: Any,
    *,
    low: Optional[float] = None,
    high: Optional[float] = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    allow_inf: bool = False,
) -> float:
    """Return ``value`` as a Python float after checking it is a real number within bounds.

    Example:
        >>> check_real("alpha", 0.5, low=0, high=1)
        0.5
        >>> check_real("alpha", 2, low=0, high=1)
        Traceback (most recent call last):
        ...
        ValueError: alpha must be in [0, 1], got 2
    """
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    number = float(value)
    if math.isnan(number) or (math.isinf(number) and not allow_inf):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    too_low = low is not None and (number < low or (number == low and not low_inclusive))
    too_high = high is not None and (number > high or (number == high and not high_inclusive))
    if too_low or too_high:
        left = ("[" if low_inclusive else "(") + ("-inf" if low is None else f"{low:g}")
        right = ("inf" if high is None else f"{high:g}") + ("]" if high_inclusive else ")")
        raise ValueError(f"{name} must be in {left}, {right}, got {value!r}")
    return number


def check_int(name: str, value: Any, *, low: Optional[int] = None) -> int:
    """Return ``value`` as an int after checking it is an integer (not a bool) and ``>= low``.

    Example:
        >>> check_int("n", 2, low=0)
        2
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` after checking it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r} of type {type(value).__name__}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return ``value`` after checking it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)!r}, got {value!r}")
    return value


def check_callable(name: str, value: Any) -> Callable:
    """Return ``value`` after checking it is callable."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {value!r} of type {type(value).__name__}")
    return value


def check_names(name: str, value: Any) -> Tuple[str, ...]:
    """Normalise ``None``, a glob pattern or a sequence of patterns to a tuple of patterns."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        patterns = tuple(value)
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise TypeError(f"{name} must be a glob pattern or a sequence of them, got {value!r}")
        return patterns
    raise TypeError(f"{name} must be a glob pattern or a sequence of them, got {value!r}")


def check_axes(name: str, axes: Union[int, Sequence[int]], ndim: int) -> Tuple[int, ...]:
    """Return ``axes`` as a sorted tuple of distinct non-negative axes of a tensor with ``ndim`` dims.

    Example:
        >>> check_axes("axis", (-1, 0), 3)
        (0, 2)
        >>> check_axes("axis", 3, 3)
        Traceback (most recent call last):
        ...
        ValueError: axis 3 is out of range for a tensor with 3 dimensions
    """
    items = (axes,) if isinstance(axes, numbers.Integral) and not isinstance(axes, bool) else axes
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {axes!r}")
    normalised = []
    for axis in items:
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"{name} must be an int or a sequence of ints, got {axes!r}")
        if not -ndim <= axis < max(ndim, 1):
            raise ValueError(f"{name} {axes!r} is out of range for a tensor with {ndim} dimensions")
        normalised.append(int(axis) % max(ndim, 1))
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"{name} {axes!r} names the same axis twice")
    return tuple(sorted(normalised))


# More dimensions than any tensor has: checking axes against it catches wrong types and repeated axes when
# the tensor (and so the range) is not known yet, at a loss's construction.
_ANY_NDIM = 64


def check_axes_spec(name: str, axes: Union[int, Sequence[int]]) -> Union[int, Sequence[int]]:
    """Return ``axes`` after checking it is an int or a sequence of distinct ints (the range is checked at
    call time, against the tensor, by :func:`check_axes`).

    Example:
        >>> check_axes_spec("axis", (0, -1))
        (0, -1)
        >>> check_axes_spec("axis", (1, 1))
        Traceback (most recent call last):
        ...
        ValueError: axis (1, 1) names the same axis twice
    """
    check_axes(name, axes, _ANY_NDIM)
    return axes


#: Name prefixes that wrappers put in front of a model's own parameter names (DistributedDataParallel,
#: torch.compile, FSDP1): names are matched and reported as on the unwrapped model.
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "_fsdp_wrapped_module.")


def unwrapped_name(name: str) -> str:
    """``name`` without the wrapper prefixes of :data:`WRAPPER_PREFIXES`, at any depth.

    Example:
        >>> unwrapped_name("module._orig_mod.rnn.weight_hh_l0")
        'rnn.weight_hh_l0'
    """
    parts = [part for part in name.split(".") if f"{part}." not in WRAPPER_PREFIXES]
    return ".".join(parts)


def parametrized_tensors(module: nn.Module) -> Dict[int, Tuple[str, nn.Module, str]]:
    """The tensors of ``module`` that carry a ``torch.nn.utils.parametrize`` parametrization, keyed by the
    ``id`` of the Parameter the parametrization optimizes: ``(effective name, owning module, attribute)``,
    where ``getattr(owning module, attribute)`` is the effective (parametrized) tensor.

    Raises:
        ValueError: A parametrization with several ``original`` tensors (a tuple ``right_inverse``).
    """
    found: Dict[int, Tuple[str, nn.Module, str]] = {}
    for prefix, submodule in module.named_modules():
        parametrizations = getattr(submodule, "parametrizations", None)
        if not isinstance(parametrizations, nn.ModuleDict):
            continue
        for attribute, parametrization in parametrizations.items():
            original = getattr(parametrization, "original", None)
            if not isinstance(original, nn.Parameter):
                raise ValueError(
                    f"the parametrization of {prefix + '.' if prefix else ''}{attribute} optimizes several tensors "
                    f"(original0, original1, ...): regularize them directly with effective=False"
                )
            found[id(original)] = (f"{prefix}.{attribute}" if prefix else attribute, submodule, attribute)
    return found


def collect_parameters(
    params: Any,
    include: Tuple[str, ...] = (),
    exclude: Tuple[str, ...] = (),
    effective: bool = True,
    select: Optional[Callable[[str, nn.Parameter, Optional[nn.Module]], bool]] = None,
    owner: str = "regularization",
) -> Tuple[List[str], List[nn.Parameter]]:
    """Turn the ``params`` argument of a regularization into parallel lists of names and Parameters.

    ``params`` may be an ``nn.Module`` (its named parameters), a mapping name -> Parameter, a single
    Parameter, or an iterable of Parameters (named by position). ``include``/``exclude`` are glob patterns
    on the names (``fnmatch`` rules); they need names, so they are refused for a plain iterable. The same
    Parameter given twice is kept once. A module's names are those of the unwrapped model (without
    ``module.``, ``_orig_mod.``, ``_fsdp_wrapped_module.``); with ``effective``, the Parameter behind a
    parametrized tensor is named as that tensor (``0.weight``, not ``0.parametrizations.weight.original``).
    ``select`` (see :func:`check_select` and :mod:`neuroreg.select`) keeps the parameters for which
    ``select(name, param, module)`` is true, ``module`` being the one that owns the parameter (the
    parametrized module for a parametrized tensor; ``None`` for a dict or an iterable). When patterns or
    ``select`` leave nothing, a ``UserWarning`` names ``owner`` and them.
    """
    import warnings
    from fnmatch import fnmatchcase

    if isinstance(params, nn.Module):
        views = parametrized_tensors(params) if effective else {}
        named = [
            (unwrapped_name(views[id(param)][0] if id(param) in views else name), param,
             views[id(param)][1] if id(param) in views else params.get_submodule(name.rpartition(".")[0]))
            for name, param in params.named_parameters()
        ]
    elif isinstance(params, Mapping):
        named = [(key, param, None) for key, param in params.items()]
        for key, _, _ in named:
            if not isinstance(key, str):
                raise TypeError(f"params keys must be parameter names (str), got {key!r}")
    elif isinstance(params, Tensor):
        named = [("0", params, None)]
    elif isinstance(params, Iterable) and not isinstance(params, (str, bytes)):
        if include or exclude:
            raise ValueError(
                "include/exclude select parameters by name, so params must be an nn.Module or a dict "
                f"name -> Parameter, got {type(params).__name__}"
            )
        named = [(str(index), param, None) for index, param in enumerate(params)]
    else:
        raise TypeError(
            "params must be an nn.Module, a dict name -> Parameter or an iterable of Parameters, "
            f"got {params!r} of type {type(params).__name__}"
        )
    for key, param, _ in named:
        if not isinstance(param, nn.Parameter):
            kind = "a Tensor that is not an nn.Parameter" if isinstance(param, Tensor) else repr(param)
            raise TypeError(
                f"params[{key!r}] must be a torch.nn.Parameter (gradients must reach the model), got {kind}"
            )
    if include:
        named = [(key, p, m) for key, p, m in named if any(fnmatchcase(key, pat) for pat in include)]
    if exclude:
        named = [(key, p, m) for key, p, m in named if not any(fnmatchcase(key, pat) for pat in exclude)]
    if select is not None:
        named = [(key, p, m) for key, p, m in named if select(key, p, m)]
    if not named and (include or exclude or select is not None):
        warnings.warn(
            f"{owner} selects no parameter: include={include!r}, exclude={exclude!r}, select={select!r}",
            UserWarning,
            stacklevel=_caller_stacklevel(),
        )
    seen = set()
    names, kept = [], []
    for key, param, _ in named:
        if id(param) not in seen:
            seen.add(id(param))
            names.append(key)
            kept.append(param)
    return names, kept


def _caller_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` called here that names the first frame outside neuroreg (the
    user's line, however deep the constructors' chain of ``super().__init__`` calls)."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def check_grads(grads: Sequence[Tensor], tensors: Sequence[Tensor]) -> None:
    """Check that ``grads`` holds one gradient per tensor (the ``*_add_grad_`` functions' contract).

    Example:
        >>> check_grads([], [torch.zeros(2)])
        Traceback (most recent call last):
        ...
        ValueError: grads must hold one tensor per tensor: 1 tensors, 0 grads
    """
    if len(grads) != len(tensors):
        raise ValueError(f"grads must hold one tensor per tensor: {len(tensors)} tensors, {len(grads)} grads")


def check_reference_tensors(name: str, references: Any, params: Sequence[Tensor]) -> List[Tensor]:
    """Check ``references`` gives one tensor per parameter, each of that parameter's shape.

    Returns detached tensors (the references are constants of the penalty, never trained).
    """
    if isinstance(references, Tensor):
        references = [references]
    if isinstance(references, (str, bytes)) or not isinstance(references, Iterable):
        raise TypeError(f"{name} must be a sequence of tensors, got {references!r}")
    references = list(references)
    if len(references) != len(params):
        # NeuroTorch zips the two and silently regularizes only the first parameters; say how to share one.
        hint = (f"; to compare every parameter with the same tensor, pass it once per parameter: "
                f"{name}=[ref] * len(params)" if len(references) == 1 else "")
        raise ValueError(
            f"{name} must hold one tensor per parameter: {len(params)} parameters, "
            f"{len(references)} references given{hint}"
        )
    checked = []
    for index, (reference, param) in enumerate(zip(references, params)):
        if not isinstance(reference, Tensor):
            reference = torch.as_tensor(reference)
        if reference.shape != param.shape:
            raise ValueError(
                f"{name}[{index}] has shape {tuple(reference.shape)}, but the parameter it refers to has "
                f"shape {tuple(param.shape)}"
            )
        checked.append(reference.detach())
    return checked


def check_floating_tensor(name: str, value: Any, *, min_ndim: int = 0) -> Tensor:
    """Return ``value`` after checking it is a floating-point tensor with at least ``min_ndim`` dimensions.

    Example:
        >>> check_floating_tensor("X", torch.ones(2, 3), min_ndim=2).shape
        torch.Size([2, 3])
        >>> check_floating_tensor("X", torch.ones(3), min_ndim=2)
        Traceback (most recent call last):
        ...
        ValueError: X must have at least 2 dimensions, got shape (3,)
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a tensor, got {value!r} of type {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if value.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {tuple(value.shape)}")
    return value


def check_broadcastable(name_a: str, a: Tensor, name_b: str, b: Tensor) -> torch.Size:
    """Return the broadcast shape of tensors ``a`` and ``b``, or raise a ``ValueError`` naming both.

    Example:
        >>> check_broadcastable("P", torch.ones(2, 3), "Q", torch.ones(4))
        Traceback (most recent call last):
        ...
        ValueError: P and Q must have shapes that broadcast together, got (2, 3) and (4,)
    """
    try:
        return torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(
            f"{name_a} and {name_b} must have shapes that broadcast together, got {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        ) from None


def check_keywords(name: str, kwargs: Mapping[str, Any], allowed: Sequence[str]) -> None:
    """Raise a ``ValueError`` naming the first key of ``kwargs`` that is not in ``allowed``.

    Example:
        >>> check_keywords("dale_kwargs", {"rho": 0.5, "sparsity": 0.1}, ["inh_ratio", "rho"])
        Traceback (most recent call last):
        ...
        ValueError: dale_kwargs: unknown keyword argument 'sparsity' (expected one of ['inh_ratio', 'rho'])
    """
    for key in kwargs:
        if key not in allowed:
            raise ValueError(f"{name}: unknown keyword argument {key!r} (expected one of {list(allowed)!r})")


def check_matrix(name: str, value: Any) -> Tensor:
    """Return ``value`` after checking it is a 2-D floating-point tensor.

    Example:
        >>> check_matrix("tensor", torch.ones(3))
        Traceback (most recent call last):
        ...
        ValueError: tensor must be 2-D (row i -> column j), got shape (3,)
    """
    check_floating_tensor(name, value)
    if value.ndim != 2:
        raise ValueError(f"{name} must be 2-D (row i -> column j), got shape {tuple(value.shape)}")
    return value


def check_dale_arguments(
    inh_ratio: Any, rho: Any, inh_first: Any, seed: Any
) -> Tuple[float, float, bool, Optional[int]]:
    """Check the arguments of :func:`neuroreg.init.dale_` (also the ``dale_kwargs`` of the Dale penalties).

    Example:
        >>> check_dale_arguments(0.2, 1, True, None)
        (0.2, 1.0, True, None)
        >>> check_dale_arguments(0.2, 0, True, None)
        Traceback (most recent call last):
        ...
        ValueError: rho must be in (0, 1], got 0
    """
    inh_ratio = check_real("inh_ratio", inh_ratio, low=0, high=1)
    rho = check_real("rho", rho, low=0, high=1, low_inclusive=False)
    inh_first = check_bool("inh_first", inh_first)
    if seed is not None:
        seed = check_int("seed", seed, low=0)
    return inh_ratio, rho, inh_first, seed


def check_open_unit(name: str, value: Any) -> float:
    """Return ``value`` as a float after checking it is a real strictly between 0 and 1 (a target ratio).

    Example:
        >>> check_open_unit("exc_target_ratio", 1.0)
        Traceback (most recent call last):
        ...
        ValueError: exc_target_ratio must be in (0, 1), got 1.0
    """
    return check_real(name, value, low=0, high=1, low_inclusive=False, high_inclusive=False)


def check_callables(name: str, value: Any) -> Tuple[Callable, ...]:
    """Return ``value`` as a tuple after checking it is a sequence of callables (hypercoil's constraints).

    Example:
        >>> check_callables("constraints", (abs, 2))
        Traceback (most recent call last):
        ...
        TypeError: constraints[1] must be callable, got 2 of type int
    """
    if callable(value) or isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a sequence of callables, got {value!r}")
    items = tuple(value)
    for index, item in enumerate(items):
        check_callable(f"{name}[{index}]", item)
    return items


def check_real_pair(name: str, value: Any) -> Tuple[float, float]:
    """Return ``value`` as a pair of floats after checking it is a sequence of two finite reals.

    Example:
        >>> check_real_pair("modes", (0, 1))
        (0.0, 1.0)
        >>> check_real_pair("modes", (0, 1, 2))
        Traceback (most recent call last):
        ...
        ValueError: modes must be a pair of real numbers, got (0, 1, 2)
    """
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a pair of real numbers, got {value!r}")
    items = tuple(value)
    if len(items) != 2:
        raise ValueError(f"{name} must be a pair of real numbers, got {value!r}")
    first, second = (check_real(f"{name}[{index}]", item) for index, item in enumerate(items))
    return first, second


#: The layouts of a connectome weight: ``"i->j"`` (row i is the presynaptic neuron, ``h @ W``) or ``"j->i"``
#: (row i is the postsynaptic neuron, ``W @ h``: ``nn.Linear``, ``nn.RNN``).
CONVENTIONS = ("i->j", "j->i")
#: The random draws of :func:`neuroreg.init.dale_`: neuroreg's own, or NeuroTorch 0.0.2's, reproduced exactly.
DALE_DRAWS = ("neuroreg", "neurotorch")


def check_dale_options(
    convention: Any, draw: Any, balance: Any, spectral_radius: Any
) -> Tuple[str, str, bool, Optional[float]]:
    """Check the shape-free options of :func:`neuroreg.init.dale_`.

    Example:
        >>> check_dale_options("j->i", "neurotorch", False, 0.9)
        ('j->i', 'neurotorch', False, 0.9)
        >>> check_dale_options("rows", "neuroreg", False, None)
        Traceback (most recent call last):
        ...
        ValueError: convention must be one of ['i->j', 'j->i'], got 'rows'
    """
    convention = check_choice("convention", convention, CONVENTIONS)
    draw = check_choice("draw", draw, DALE_DRAWS)
    balance = check_bool("balance", balance)
    if spectral_radius is not None:
        spectral_radius = check_real("spectral_radius", spectral_radius, low=0, low_inclusive=False)
    return convention, draw, balance, spectral_radius


def check_dale_shape(
    shape: Tuple[int, int], n_inh: int, rho: float, draw: str, balance: bool, spectral_radius: Optional[float]
) -> None:
    """Check that a ``(presynaptic, postsynaptic)`` shape admits the draw :func:`neuroreg.init.dale_` is asked for.

    NeuroTorch's draw is refused where NeuroTorch itself fails: at ``rho = 1`` its scale
    :math:`1/\\sqrt{N\\rho(1-\\rho)}` is infinite, and on a rectangular tensor it indexes out of range or leaves
    entries unset.

    Example:
        >>> check_dale_shape((4, 6), 2, 0.5, "neurotorch", False, None)
        Traceback (most recent call last):
        ...
        ValueError: draw='neurotorch' needs a square tensor (NeuroTorch's dale_ fills only those), got shape (4, 6)
    """
    n_pre, n_post = shape
    if draw == "neurotorch" and n_pre != n_post:
        raise ValueError(
            f"draw='neurotorch' needs a square tensor (NeuroTorch's dale_ fills only those), got shape {shape}"
        )
    if draw == "neurotorch" and rho == 1:
        raise ValueError(
            "draw='neurotorch' is undefined at rho=1 (NeuroTorch's scale 1/sqrt(N rho (1 - rho)) is infinite); "
            "use rho < 1 or draw='neuroreg'"
        )
    if balance and not 0 < n_inh < n_pre:
        raise ValueError(
            f"balance=True needs excitatory and inhibitory neurons, got {n_inh} inhibitory of {n_pre}"
        )
    if spectral_radius is not None and n_pre != n_post:
        raise ValueError(f"spectral_radius needs a square tensor, got shape {shape}")


def check_module_tensor(module: Any, name: Any) -> Tensor:
    """Return ``module``'s tensor called ``name`` (a parameter, a buffer or an already parametrized tensor).

    Example:
        >>> check_module_tensor(nn.Linear(2, 3), "weight").shape
        torch.Size([3, 2])
        >>> check_module_tensor(nn.Linear(2, 3), "weights")
        Traceback (most recent call last):
        ...
        ValueError: name: Linear has no parameter or buffer 'weights' (it has ['weight', 'bias'])
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {module!r} of type {type(module).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r} of type {type(name).__name__}")
    parametrized = getattr(module, "parametrizations", None)
    known = name in module._parameters or name in module._buffers or (parametrized is not None and name in parametrized)
    if not known:
        own = [*module._parameters, *module._buffers]
        raise ValueError(f"name: {type(module).__name__} has no parameter or buffer {name!r} (it has {own!r})")
    return getattr(module, name)


def check_mask(name: str, mask: Any, tensor: Tensor) -> Tensor:
    """Return ``mask`` after checking it is a tensor of zeros and ones that broadcasts to ``tensor``'s shape.

    Example:
        >>> check_mask("mask", torch.tensor([1.0, 0.0, 1.0]), torch.ones(2, 3)).tolist()
        [1.0, 0.0, 1.0]
        >>> check_mask("mask", torch.tensor([0.5, 1.0, 1.0]), torch.ones(2, 3))
        Traceback (most recent call last):
        ...
        ValueError: mask must hold only 0 and 1 (or True and False), got values [0.5, 1.0]
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name} must be a tensor of 0 and 1, got {mask!r} of type {type(mask).__name__}")
    if mask.is_complex():
        raise TypeError(f"{name} must be a real tensor of 0 and 1, got dtype {mask.dtype}")
    if not _broadcasts_to(mask.shape, tensor.shape):
        raise ValueError(
            f"{name} of shape {tuple(mask.shape)} does not broadcast to the tensor's shape {tuple(tensor.shape)}"
        )
    values = torch.unique(mask.detach())
    if not ((values == 0) | (values == 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1 (or True and False), got values {values.tolist()}")
    return mask


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


def check_per_parameter(name: str, values: Any, count: int) -> List[Any]:
    """Return ``values`` (a tensor, or a sequence of them) as a list after checking it holds ``count`` items,
    one per parameter.

    Example:
        >>> check_per_parameter("masks", [torch.ones(2)], 2)
        Traceback (most recent call last):
        ...
        ValueError: masks must hold one item per parameter: 2 parameters, 1 given
    """
    if isinstance(values, Tensor):
        values = [values]
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of tensors, got {values!r}")
    values = list(values)
    if len(values) != count:
        raise ValueError(f"{name} must hold one item per parameter: {count} parameters, {len(values)} given")
    return values


def collect_modules(
    modules: Any, include: Tuple[str, ...] = (), exclude: Tuple[str, ...] = ()
) -> Tuple[List[str], List[nn.Module]]:
    """Turn the ``modules`` argument of an activity regularization into parallel lists of names and modules.

    ``modules`` may be ``None`` (nothing recorded), an ``nn.Module`` (itself, or with ``include`` the
    submodules whose names match a glob pattern, less those matching ``exclude``), or an iterable of modules
    (named by position; no patterns). The same module given twice is kept once.

    Example:
        >>> collect_modules(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), include="1")[0]
        ['1']
        >>> collect_modules(nn.Sequential(nn.Linear(2, 2)), include="rnn*")
        Traceback (most recent call last):
        ...
        ValueError: include ('rnn*',) selects no module of Sequential (exclude ()); its modules are ['0']
    """
    from fnmatch import fnmatchcase

    include, exclude = check_names("include", include), check_names("exclude", exclude)
    if isinstance(modules, nn.Module):
        if not include:
            if exclude:
                raise ValueError(f"exclude {exclude!r} filters the modules that include selects: give include too")
            return [type(modules).__name__], [modules]
        everything = [(key, module) for key, module in modules.named_modules() if key]
        named = [
            (key, module) for key, module in everything
            if any(fnmatchcase(key, pat) for pat in include) and not any(fnmatchcase(key, pat) for pat in exclude)
        ]
        if not named:
            raise ValueError(
                f"include {include!r} selects no module of {type(modules).__name__} (exclude {exclude!r}); its "
                f"modules are {[key for key, _ in everything][:20]!r}"
            )
    elif modules is None or (isinstance(modules, Iterable) and not isinstance(modules, (str, bytes, Mapping, Tensor))):
        if include or exclude:
            raise ValueError(
                f"include/exclude select modules by name, so modules must be an nn.Module, got {type(modules).__name__}"
            )
        named = [(str(index), module) for index, module in enumerate(modules or [])]
        for key, module in named:
            if not isinstance(module, nn.Module):
                kind = type(module).__name__
                raise TypeError(f"modules[{key}] must be a torch.nn.Module, got {module!r} of type {kind}")
    else:
        kind = type(modules).__name__
        raise TypeError(f"modules must be an nn.Module, an iterable of them or None, got {modules!r} of type {kind}")
    seen, names, kept = set(), [], []
    for key, module in named:
        if id(module) not in seen:
            seen.add(id(module))
            names.append(key)
            kept.append(module)
    return names, kept


def check_output_selector(name: str, value: Any) -> Union[int, Callable, None]:
    """Return ``value`` after checking it picks a tensor from a module's output: ``None``, an index, or a callable.

    Example:
        >>> check_output_selector("output", "h")
        Traceback (most recent call last):
        ...
        TypeError: output must be None, an index into the module's output tuple or a callable, got 'h'
    """
    if value is None or callable(value) or (isinstance(value, numbers.Integral) and not isinstance(value, bool)):
        return value
    raise TypeError(f"{name} must be None, an index into the module's output tuple or a callable, got {value!r}")


def select_output(label: str, output: Any, selector: Union[int, Callable, None]) -> Tensor:
    """The floating tensor that ``selector`` (see :func:`check_output_selector`) picks from ``output``, what the
    module named in ``label`` returned: by default the output itself if it is a tensor, else its first element.

    Example:
        >>> select_output("module 'rnn'", (torch.ones(2), torch.zeros(1)), 2)
        Traceback (most recent call last):
        ...
        ValueError: output=2 is out of range for what module 'rnn' returns: a tuple of 2
    """
    if callable(selector):
        tensor = selector(output)
    elif selector is None:
        tensor = output[0] if isinstance(output, (tuple, list)) and output else output
    elif not isinstance(output, (tuple, list)):
        raise ValueError(
            f"output={selector!r} indexes the tuple a module returns, but {label} returns a {type(output).__name__}"
        )
    elif not -len(output) <= selector < len(output):
        raise ValueError(
            f"output={selector!r} is out of range for what {label} returns: a {type(output).__name__} of {len(output)}"
        )
    else:
        tensor = output[selector]
    return check_floating_tensor(f"the output of {label} (picked by output={selector!r})", tensor)


def check_square(name: str, value: Tensor) -> Tensor:
    """Return ``value`` after checking that its last two dimensions are equal (a block of square matrices).

    Example:
        >>> check_square("A", torch.ones(3, 4))
        Traceback (most recent call last):
        ...
        ValueError: A must be square in its last two dimensions, got shape (3, 4)
    """
    if value.ndim < 2 or value.shape[-1] != value.shape[-2]:
        raise ValueError(f"{name} must be square in its last two dimensions, got shape {tuple(value.shape)}")
    return value


def check_size(name: str, value: Tensor, dim: int, size: int, what: str) -> Tensor:
    """Return ``value`` after checking that ``value.shape[dim] == size``; ``what`` says why it must be.

    Example:
        >>> check_size("coor", torch.ones(3, 90), -1, 100, "one column per location of X")
        Traceback (most recent call last):
        ...
        ValueError: coor must have one column per location of X (size 100 in dimension -1), got shape (3, 90)
    """
    if value.ndim < (dim + 1 if dim >= 0 else -dim) or value.shape[dim] != size:
        raise ValueError(f"{name} must have {what} (size {size} in dimension {dim}), got shape {tuple(value.shape)}")
    return value

UPDATES = ("gradient", "proximal", "decoupled")
REDUCTIONS = ("sum", "mean")


def check_select(value: Any) -> Optional[Callable[[str, nn.Parameter, Optional[nn.Module]], bool]]:
    """Return ``value`` after checking it is ``None`` or a predicate ``(name, param, module) -> bool``.

    Example:
        >>> check_select("weight")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: select must be None or a predicate (name, param, module) -> bool (...), got 'weight' of type str
    """
    if value is None or callable(value):
        return value
    raise TypeError(
        "select must be None or a predicate (name, param, module) -> bool (see neuroreg.select), got "
        f"{value!r} of type {type(value).__name__}"
    )


def check_reduction(value: Any) -> str:
    """Return ``value`` after checking it is ``"sum"`` or ``"mean"``.

    Example:
        >>> check_reduction("avg")
        Traceback (most recent call last):
        ...
        ValueError: reduction must be one of ['sum', 'mean'], got 'avg'
    """
    return check_choice("reduction", value, REDUCTIONS)


def check_update(owner: str, update: Any, available: Sequence[str], optimizer: Any = None) -> str:
    """Return ``update`` after checking it is one of :data:`UPDATES` that the penalty described by ``owner``
    supports (``available``), and that a non-gradient update comes without a separate-step ``optimizer``.

    Example:
        >>> check_update("Lp(p=1.5)", "proximal", ("gradient",))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Lp(p=1.5): update='proximal' needs a penalty with a proximal operator (...); this one supports ...
    """
    check_choice("update", update, UPDATES)
    if update not in available:
        needs = {
            "proximal": "a penalty with a proximal operator (L1, squared L2, WeightsDistance with p=1 or squared p=2, "
            "DaleSignPenalty with p=1)",
            "decoupled": "a squared L2 penalty (L2(squared=True), WeightsDistance(p=2, squared=True))",
        }[update]
        raise ValueError(f"{owner}: update={update!r} needs {needs}; this one supports update in {list(available)!r}")
    if update != "gradient" and optimizer is not None:
        raise ValueError(
            f"{owner}: update={update!r} acts inside the task optimizer's step, so it takes no optimizer of its own "
            f"(got {type(optimizer).__name__}); leave optimizer=None"
        )
    return update


def check_grad_layouts(name: str, grads: Sequence[Tensor]) -> None:
    """Check that every gradient in ``grads`` is strided (dense) or sparse COO, the layouts that the
    ``*_add_grad_`` functions write into (a sparse COO one at its own indices).

    Example:
        >>> check_grad_layouts("grads", [torch.zeros(2), torch.zeros(2, 2).to_sparse_csr()])
        Traceback (most recent call last):
        ...
        TypeError: grads[1] has layout torch.sparse_csr: only strided and sparse COO gradients are supported
    """
    for index, grad in enumerate(grads):
        if grad.layout not in (torch.strided, torch.sparse_coo):
            raise TypeError(
                f"{name}[{index}] has layout {grad.layout}: only strided and sparse COO gradients are supported"
            )


def check_dense_grads(owner: str, names: Sequence[str], params: Sequence[Tensor]) -> None:
    """Refuse a sparse ``.grad`` on a parameter whose penalty gradient autograd adds in joint mode (a
    regularization without a closed-form gradient): autograd would silently make it dense, and a sparse
    optimizer would then refuse it. The message names the regularization and the parameter.

    Example:
        >>> w = torch.nn.Parameter(torch.zeros(3, 2))
        >>> w.grad = torch.sparse_coo_tensor([[1]], torch.ones(1, 2), (3, 2))
        >>> check_dense_grads("EquilibriumLoss", ["embedding.weight"], [w])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: EquilibriumLoss: parameter 'embedding.weight' has a sparse gradient (torch.sparse_coo), but ...
    """
    for name, param in zip(names, params):
        grad = param.grad
        if grad is not None and grad.layout != torch.strided:
            raise TypeError(
                f"{owner}: parameter {name!r} has a sparse gradient ({grad.layout}), but {owner} adds its "
                "penalty's gradient through autograd, which would make it dense: regularize it with a class that "
                "has a closed-form gradient (added at the sparse gradient's indices), or make the gradient dense"
            )


UPDATES = ("gradient", "proximal", "decoupled")
REDUCTIONS = ("sum", "mean")


NORMS = ("entrywise", "matrix")
MATRIX_ORDS = (1, 2, math.inf, -1, -2, -math.inf, "fro", "nuc")


def check_norm_ord(name: str, value: Any, shapes: Sequence[Sequence[int]]) -> Union[float, str]:
    """Return ``value`` (a float, or ``"fro"``/``"nuc"``) after checking ``torch.linalg.norm(W, ord=value)``
    is defined for a tensor of each of ``shapes``: a vector norm (any real order) for 1-D, one of
    :data:`MATRIX_ORDS` for 2-D; 0-d and higher ranks have no such norm.

    Example:
        >>> check_norm_ord("p", "nuc", [(3, 4)])
        'nuc'
        >>> check_norm_ord("p", 3, [(5,), (3, 4)])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: p=3 is not a matrix norm order of torch.linalg.norm; 2-D tensors take [...] (tensor 1 ...)
    """
    if isinstance(value, str):
        check_choice(name, value, ("fro", "nuc"))
    else:
        value = check_real(name, value, allow_inf=True)
    for index, shape in enumerate(shapes):
        ndim = len(shape)
        if ndim == 2 and value in MATRIX_ORDS:
            continue
        if ndim == 1 and not isinstance(value, str):
            continue
        shown = order_text(value)
        if ndim == 2:
            reason = f"is not a matrix norm order of torch.linalg.norm; 2-D tensors take {list(MATRIX_ORDS)!r}"
        elif ndim == 1:
            reason = "is a matrix norm order; 1-D tensors take a real order (a vector norm)"
        else:
            reason = (f"has no {ndim}-D norm in torch.linalg.norm, which takes an order only for 1-D and 2-D "
                      "tensors; select those, or use norm='entrywise'")
        raise ValueError(f"{name}={shown} {reason} (tensor {index} has shape {tuple(shape)})")
    return value


def check_spectral_arguments(target: Any, n_power_iterations: Any, shapes: Sequence[Sequence[int]]) -> tuple:
    """Return ``(target, n_power_iterations)`` of a spectral-norm penalty after checking ``target`` is None or a
    finite real >= 0, ``n_power_iterations`` an int >= 1, and every tensor 2-D.

    Example:
        >>> check_spectral_arguments(1, 2, [(3, 3)])
        (1.0, 2)
        >>> check_spectral_arguments(-0.5, 1, [(3, 3)])
        Traceback (most recent call last):
        ...
        ValueError: target must be in [0, inf], got -0.5
    """
    if target is not None:
        target = check_real("target", target, low=0)
    n_power_iterations = check_int("n_power_iterations", n_power_iterations, low=1)
    for index, shape in enumerate(shapes):
        if len(shape) != 2:
            raise ValueError(
                f"params[{index}] has shape {tuple(shape)}: the spectral norm is that of a matrix (2-D weight)"
            )
    return target, n_power_iterations


def check_norm_and_order(norm: Any, p: Any) -> Tuple[str, Union[float, str]]:
    """Return ``(norm, p)`` of a norm penalty after checking ``norm`` is one of :data:`NORMS` and ``p`` an order
    of it: a real > 0 or ``inf`` entrywise; for ``"matrix"``, a real or ``"fro"``/``"nuc"`` (checked against the
    tensors' ranks by :func:`check_norm_ord` once they are known).

    Example:
        >>> check_norm_and_order("matrix", "fro")
        ('matrix', 'fro')
        >>> check_norm_and_order("entrywise", "fro")
        Traceback (most recent call last):
        ...
        TypeError: p must be a real number, got 'fro' of type str
    """
    norm = check_choice("norm", norm, NORMS)
    if norm == "entrywise":
        return norm, check_real("p", p, low=0, low_inclusive=False, allow_inf=True)
    return norm, check_norm_ord("p", p, ())


def order_text(p: Union[float, str]) -> str:
    """A norm order as messages and reprs write it: ``2``, ``inf``, ``'fro'``."""
    return repr(p) if isinstance(p, str) else f"{p:g}"
