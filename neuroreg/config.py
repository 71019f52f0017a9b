"""Configs: every regularization described as plain data, and rebuilt from it on a model.

``reg.get_config()`` returns JSON-serializable data: a ``"type"`` key (the registered name of the class) and
the arguments the regularization was built with, as given (``include``/``exclude``/``select`` presets by
name), with three substitutions:

- what is regularized is named, not held: ``params`` becomes the names it resolved to
  (:attr:`~neuroreg.BaseRegularization.param_names`), ``modules`` those of the recorded modules, and
  :func:`from_config` looks them up in the model it is given;
- a tensor argument (a reference, a target, coordinates) becomes ``{"__tensor__": shape, "dtype": ...}``:
  its values are state, rebuilt as a placeholder and restored by ``load_state_dict``;
- a schedule becomes its own config (``{"type": "LinearWarmup", ...}``), a member regularization its
  config, a function of ``torch``/``neuroreg``/``math`` (or one registered with :func:`register`)
  ``{"__callable__": "torch.tanh"}``.

``Lambda`` and ``name`` are always given as they are now (the schedule's position and a fixed Lambda's
value are restored by ``load_state_dict`` too). Anything else (a lambda, a closure, an optimizer, another
module) cannot be plain data: ``get_config`` raises a ``ValueError`` naming the argument.

Every subclass of :class:`Configurable` (so every regularization) defined in neuroreg is registered under its
class name when it is defined; a third-party subclass registers with ``@neuroreg.register("my_penalty")``.

Example:
    >>> import json, torch, neuroreg as nr
    >>> model = torch.nn.Linear(3, 2)
    >>> reg = nr.L1(model, Lambda=nr.schedules.LinearWarmup(0.1, warmup_steps=10), exclude="bias")
    >>> config = reg.get_config()
    >>> config["type"], config["params"], config["exclude"]
    ('L1', ['weight'], 'bias')
    >>> rebuilt = nr.from_config(json.loads(json.dumps(config)), model)
    >>> reg.step()
    >>> rebuilt.load_state_dict(reg.state_dict())
    <All keys matched successfully>
    >>> rebuilt.Lambda == reg.Lambda, bool(rebuilt() == reg())
    (True, True)
"""

from __future__ import annotations

import functools
import importlib
import inspect
import numbers
import warnings
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import torch
from torch import Tensor, nn

__all__ = ["Configurable", "from_config", "register", "registered"]

T = TypeVar("T")

#: Registered name -> class (regularizations and schedules) or function.
_REGISTRY: Dict[str, Any] = {}
#: Packages whose module-level functions a config may name (anything else must be registered).
_CALLABLE_PACKAGES = ("torch", "neuroreg", "math", "operator")
_TENSOR, _CALLABLE = "__tensor__", "__callable__"
#: Arguments that say what of the model is regularized: the attribute with the names they resolved to.
_MODEL_ARGUMENTS = {"params": "param_names", "modules": "module_names"}


class _Model:
    """What a recorded argument that was the model (or a part of it) is kept as: nothing of it (the names it
    resolved to are read from the regularization, or, rebuilt by :func:`from_config`, are the config's)."""

    def __init__(self, kind: str, names: Optional[List[str]] = None) -> None:
        self.kind, self.names = kind, names


class _TensorSpec:
    """A recorded tensor argument: its shape and dtype only (its values are state)."""

    def __init__(self, tensor: Tensor) -> None:
        self.shape, self.dtype = list(tensor.shape), str(tensor.dtype).replace("torch.", "")


def register(name: str) -> Callable[[T], T]:
    """Class decorator: register a regularization (or schedule, or function) under ``name`` for
    :func:`from_config`.

    Example:
        >>> import neuroreg as nr
        >>> @nr.register("doc_l1")
        ... class MyL1(nr.L1):
        ...     pass
        >>> MyL1([torch.nn.Parameter(torch.ones(2))]).get_config()["type"]
        'doc_l1'

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: ``name`` is already registered to another object.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")

    def decorate(obj: T) -> T:
        known = _REGISTRY.get(name)
        if known is not None and known is not obj:
            raise ValueError(f"{name!r} is already registered to {known!r}")
        _REGISTRY[name] = obj
        if isinstance(obj, type):
            obj._config_type = name  # type: ignore[attr-defined]
        return obj

    return decorate


def registered() -> List[str]:
    """The names :func:`from_config` knows, sorted (private classes left out)."""
    _register_schedules()
    return sorted(name for name in _REGISTRY if not name.startswith("_"))


def _register_schedules() -> None:
    # Schedules already describe themselves (schedules.py); every LambdaSchedule subclass defined in neuroreg
    # is known by its class name, found when asked so that later ones are covered.
    from neuroreg.schedules import LambdaSchedule

    pending = [LambdaSchedule]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] == "neuroreg" and "_config_type" not in cls.__dict__:
            _REGISTRY.setdefault(cls.__name__, cls)


class Configurable:
    """Mixin that records the arguments of the outermost ``__init__`` call, for :meth:`get_config`.

    Every subclass's ``__init__`` is wrapped when the class is defined (``__init_subclass__``), so a new class
    needs nothing to be configurable; one defined in neuroreg is registered under its class name.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_records_config", False):
            cls.__init__ = _recording(init)  # type: ignore[method-assign]
        if cls.__module__.split(".")[0] == "neuroreg" and "_config_type" not in cls.__dict__:
            _REGISTRY.setdefault(cls.__name__, cls)

    def get_config(self) -> Dict[str, Any]:
        """This object's config: plain, JSON-serializable data that :func:`from_config` rebuilds it from.

        Raises:
            ValueError: The class is not registered, or an argument cannot be plain data (a lambda or other
                unregistered callable, an optimizer, a module other than the model); the message names it.
        """
        cls = type(self)
        name = cls.__dict__.get("_config_type") or cls.__name__
        if _REGISTRY.get(name) is not cls:
            raise ValueError(
                f"{cls.__qualname__} is not registered: decorate it with @neuroreg.register('<name>') so that "
                "from_config can find it"
            )
        arguments = dict(self.__dict__.get("_config_arguments", {}))
        accepted, open_ended = _accepted(cls)
        if hasattr(self, "schedule") and ("Lambda" in accepted or open_ended):
            arguments["Lambda"] = self.schedule if self.schedule is not None else self.Lambda
            arguments.pop("nu", None)
        if isinstance(getattr(self, "name", None), str) and ("name" in accepted or open_ended):
            arguments["name"] = self.name
        for key in inspect.signature(inspect.unwrap(cls.__init__)).parameters:
            # Members given after construction (a list built empty, then appended to) belong in it too.
            if key not in arguments and key not in _MODEL_ARGUMENTS and _is_configurable(getattr(self, key, None)):
                arguments[key] = getattr(self, key)
        config: Dict[str, Any] = {"type": name}
        for key, value in arguments.items():
            if isinstance(value, _Model) and key not in _MODEL_ARGUMENTS:
                raise ValueError(
                    f"{key}: a module cannot be in a config; pass it to from_config(config, model, {key}=...) instead"
                )
            if key in _MODEL_ARGUMENTS and isinstance(value, _Model):
                names = value.names if value.names is not None else getattr(self, _MODEL_ARGUMENTS[key])
                config[key] = None if value.kind == "none" else list(names)
                continue
            current = getattr(self, key, None) if key not in ("Lambda", "name") else None
            if _is_configurable(current):
                value = current
            config[key] = _encode(key, value)
        return config


def _is_configurable(value: Any) -> bool:
    # A member (LossApply.loss) or the members (RegularizationList.regularizations, LossScheme.loss) as they
    # are now: members appended after construction belong in the config too.
    if isinstance(value, Configurable):
        return True
    return isinstance(value, (list, tuple, nn.ModuleList)) and len(value) > 0 and all(
        isinstance(member, Configurable) for member in value
    )


def _recording(init: Callable[..., None]) -> Callable[..., None]:
    signature = inspect.signature(init)

    @functools.wraps(init)
    def recording_init(self: Configurable, *args: Any, **kwargs: Any) -> None:
        # Only the outermost call (the class the user built) is recorded: a subclass's own arguments, not the
        # ones it passes to its base.
        if "_config_arguments" not in self.__dict__:
            try:
                bound = signature.bind(self, *args, **kwargs)
            except TypeError:
                bound = None   # the call itself raises the TypeError
            if bound is not None:
                self.__dict__["_config_arguments"] = _record(signature, bound.arguments)
        init(self, *args, **kwargs)

    recording_init._records_config = True  # type: ignore[attr-defined]
    return recording_init


def _record(signature: inspect.Signature, arguments: Dict[str, Any]) -> Dict[str, Any]:
    """The bound arguments as kept on the object: the model and tensors by description only (a regularization
    never keeps a model alive, nor a second copy of a tensor)."""
    recorded: Dict[str, Any] = {}
    for key, value in list(arguments.items())[1:]:
        kind = signature.parameters[key].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            recorded.update((k, _light(k, v)) for k, v in value.items())
        else:
            recorded[key] = _light(key, value)
    return recorded


def _light(key: str, value: Any) -> Any:
    if key in _MODEL_ARGUMENTS:
        if value is None or (isinstance(value, (list, tuple, dict)) and not value):
            return _Model("none")
        return _Model("module" if isinstance(value, nn.Module) else "named")
    if isinstance(value, Tensor):
        return _TensorSpec(value)
    if isinstance(value, nn.Module) and not isinstance(value, Configurable):
        return _Model("other")
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Tensor) for v in value):
        return [_TensorSpec(v) for v in value]
    return value


def _encode(key: str, value: Any) -> Any:
    """``value`` as JSON data, or a ``ValueError`` naming ``key``."""
    from neuroreg.schedules import LambdaSchedule

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, _TensorSpec):
        return {_TENSOR: value.shape, "dtype": value.dtype}
    if isinstance(value, torch.dtype):
        return {_CALLABLE: str(value)}
    if isinstance(value, Configurable):
        return value.get_config()
    if isinstance(value, LambdaSchedule):
        _register_schedules()
        name = type(value).__dict__.get("_config_type") or type(value).__name__
        if _REGISTRY.get(name) is not type(value):
            raise ValueError(f"{key}: the schedule {value!r} is of an unregistered class: use @neuroreg.register")
        return {"type": name, **{k: _encode(f"{key}.{k}", v) for k, v in value.get_config().items()}}
    if isinstance(value, (list, tuple, nn.ModuleList)):
        return [_encode(f"{key}[{index}]", item) for index, item in enumerate(value)]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        if "type" in value or _TENSOR in value or _CALLABLE in value:
            raise ValueError(f"{key}: a dict argument with the key 'type', {_TENSOR!r} or {_CALLABLE!r} is ambiguous")
        return {k: _encode(f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, (nn.Module, Tensor, torch.optim.Optimizer)):
        raise ValueError(
            f"{key}: {type(value).__name__} {_short(value)} cannot be in a config; pass it to "
            f"from_config(config, model, {key}=...) instead"
        )
    if callable(value):
        path = _callable_path(value)
        if path is None:
            raise ValueError(
                f"{key}: the callable {value!r} cannot be in a config (only functions of "
                f"{', '.join(_CALLABLE_PACKAGES)}, schedules of neuroreg.schedules, and objects registered with "
                f"@neuroreg.register are); register it, or pass it to from_config(config, model, {key}=...)"
            )
        return {_CALLABLE: path}
    raise ValueError(f"{key}: {value!r} of type {type(value).__name__} cannot be in a config")


def _short(value: Any) -> str:
    text = repr(value).splitlines()[0]
    return text if len(text) < 80 else text[:77] + "..."


def _callable_path(value: Any) -> Optional[str]:
    for name, obj in _REGISTRY.items():
        if obj is value:
            return name
    module, name = getattr(value, "__module__", None), getattr(value, "__name__", None)
    if not isinstance(module, str) or not isinstance(name, str) or "<" in getattr(value, "__qualname__", "<"):
        return None
    # torch's C functions report internal modules (torch.tanh is torch._C._VariableFunctions.tanh): name them
    # by the public module that holds them.
    candidates = [module, module.split(".")[0]] if module.split(".")[0] in _CALLABLE_PACKAGES else []
    for candidate in candidates:
        try:
            if getattr(importlib.import_module(candidate), name, None) is value:
                return f"{candidate}.{name}"
        except ImportError:
            continue
    return None


# --- from_config --------------------------------------------------------------------------------------------
def from_config(config: Mapping, model: Any = None, **arguments: Any) -> Any:
    """Rebuild a regularization (a list recursively, or a schedule) from :meth:`Configurable.get_config` data,
    on ``model``.

    The names in ``params`` (``modules``) are looked up in ``model``: give the module the regularization was
    built on (a list whose members were built on different models takes a dict member name -> model). Tensor
    arguments are placeholders of the recorded shape and dtype until ``load_state_dict`` of the old
    regularization's state (which also restores ``Lambda`` and the schedule's position).

    Args:
        config: What ``get_config()`` returned (after any JSON/YAML round trip).
        model: The model (``nn.Module``), a dict member name -> model, or ``None`` for a regularization of
            call-time inputs only.
        **arguments: Constructor arguments that are not plain data (an ``optimizer``, a custom ``sign_func``),
            given to the outermost constructor over the config's.

    Raises:
        TypeError: ``config`` or one of its values has the wrong type, a required argument is missing, or the
            model is not a module; the message names the key.
        ValueError: The ``"type"`` is unknown (the message lists the known ones), a key is not an argument of
            that class, or the model lacks a parameter or module the config names. Nothing is built then.
    """
    return _decode_object("config", config, model, arguments)


def _decode_object(key: str, config: Any, model: Any, overrides: Dict[str, Any]) -> Any:
    if not isinstance(config, Mapping):
        raise TypeError(f"{key} must be a dict (what get_config() returned), got {config!r}")
    if "type" not in config:
        raise ValueError(f"{key} has no 'type' key: got the keys {sorted(config)}")
    kind = config["type"]
    if not isinstance(kind, str):
        raise TypeError(f"{key}['type'] must be a string, got {kind!r}")
    _register_schedules()
    cls = _REGISTRY.get(kind)
    if not isinstance(cls, type):
        raise ValueError(f"{key}['type'] is {kind!r}, which is not registered; the known types are {registered()}")
    values = {k: v for k, v in config.items() if k != "type"}
    from neuroreg.schedules import LambdaSchedule

    if issubclass(cls, LambdaSchedule):
        return cls.from_config(_check_keys(key, cls, values, {k: _decode(f"{key}.{k}", v, model) for k, v in
                                                              values.items()}))
    decoded = {}
    for name, value in values.items():
        label = f"{key}[{name!r}]"
        if name in overrides:
            continue
        if name in _MODEL_ARGUMENTS:
            decoded[name] = value   # resolved against the model below
        elif isinstance(value, Mapping) and "type" in value:
            decoded[name] = _decode_object(label, value, _member_model(label, value, model), {})
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) and "type" in v for v in value):
            decoded[name] = [
                _decode_object(f"{label}[{i}]", v, _member_model(f"{label}[{i}]", v, model), {})
                for i, v in enumerate(value)
            ]
        else:
            decoded[name] = _decode(label, value, model)
    decoded.update(overrides)
    decoded = _check_keys(key, cls, values, decoded)
    recorded = {name: _light(name, value) for name, value in decoded.items()}
    call = dict(decoded)
    for name in _MODEL_ARGUMENTS:
        if name in decoded and name not in overrides:
            call[name] = _resolve_model_argument(f"{key}[{name!r}]", name, call, model)
            recorded[name] = _Model("none" if decoded[name] is None else "named", decoded[name])
    built = _call(cls, call)
    # The rebuilt object describes itself as the config did (its presets and names), however its model
    # arguments had to be given to the constructor.
    built.__dict__["_config_arguments"] = recorded
    return built


def _member_model(label: str, config: Mapping, model: Any) -> Any:
    if not isinstance(model, Mapping):
        return model
    name = config.get("name")
    if name in model:
        return model[name]
    if any(k in config and config[k] is not None for k in _MODEL_ARGUMENTS):
        raise ValueError(
            f"{label}: the dict of models has no entry for the member named {name!r} (it has {sorted(model)})"
        )
    return model   # a list member: its own members look themselves up


def _decode(key: str, value: Any, model: Any) -> Any:
    if isinstance(value, list):
        return [_decode(f"{key}[{i}]", v, model) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if _TENSOR in value:
            return _placeholder(key, value, model)
        if _CALLABLE in value:
            return _resolve_callable(key, value)
        if "type" in value:
            return _decode_object(key, value, model, {})
        return {k: _decode(f"{key}.{k}", v, model) for k, v in value.items()}
    if value is None or isinstance(value, (bool, str, numbers.Real)):
        return value
    raise TypeError(f"{key} must be plain data (number, string, list, dict or None), got {value!r}")


def _placeholder(key: str, spec: Mapping, model: Any) -> Tensor:
    shape, dtype = spec.get(_TENSOR), spec.get("dtype")
    if set(spec) != {_TENSOR, "dtype"}:
        raise ValueError(f"{key}: a tensor is described by the keys {_TENSOR!r} and 'dtype', got {sorted(spec)}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise TypeError(f"{key}[{_TENSOR!r}] must be a list of sizes, got {shape!r}")
    if not isinstance(dtype, str) or not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise TypeError(f"{key}['dtype'] must name a torch dtype, got {dtype!r}")
    device = next((p.device for p in model.parameters()), None) if isinstance(model, nn.Module) else None
    # Ones, not zeros: a reference of zeros has no sign and a weight of zeros no mass, which constructors
    # refuse; the values are overwritten by load_state_dict.
    return torch.ones(shape, dtype=getattr(torch, dtype), device=device)


def _resolve_callable(key: str, spec: Mapping) -> Any:
    path = spec.get(_CALLABLE)
    if set(spec) != {_CALLABLE} or not isinstance(path, str):
        raise TypeError(f"{key} must be {{{_CALLABLE!r}: '<module>.<name>'}}, got {dict(spec)!r}")
    if path in _REGISTRY:
        return _REGISTRY[path]
    module, _, name = path.rpartition(".")
    if module.split(".")[0] in _CALLABLE_PACKAGES:
        try:
            value = getattr(importlib.import_module(module), name, None)
        except ImportError:
            value = None
        if value is not None and (callable(value) or isinstance(value, torch.dtype)):
            return value
    raise ValueError(f"{key}: {path!r} is not a registered name nor a function of {', '.join(_CALLABLE_PACKAGES)}")


def _accepted(cls: type) -> Tuple[Dict[str, inspect.Parameter], bool]:
    """The keyword names a class's constructor accepts (following ``**kwargs`` up its bases), and whether
    anything else is accepted too."""
    accepted: Dict[str, inspect.Parameter] = {}
    for base in cls.__mro__:
        init = base.__dict__.get("__init__")
        if init is None or base is Configurable:
            continue
        parameters = list(inspect.signature(inspect.unwrap(init)).parameters.values())[1:]
        for parameter in parameters:
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                accepted.setdefault(parameter.name, parameter)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            # Closed where the chain of **kwargs ends at the class that mixes Configurable in (its keywords are
            # all there is); a base in between may take them as a dict (the Dale penalties' draw options).
            return accepted, Configurable not in base.__bases__
    return accepted, True


def _check_keys(key: str, cls: type, raw: Mapping, decoded: Dict[str, Any]) -> Dict[str, Any]:
    accepted, open_ended = _accepted(cls)
    extra = [name for name in decoded if name not in accepted]
    if extra and not open_ended:
        raise ValueError(
            f"{key} has the key(s) {extra}, which {cls.__name__} does not take; it takes {sorted(accepted)}"
        )
    own = list(inspect.signature(inspect.unwrap(cls.__init__)).parameters.values())[1:]
    missing = [
        p.name for p in own
        if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in decoded
    ]
    if missing:
        raise TypeError(f"{key} lacks the key(s) {missing}, which {cls.__name__} requires")
    return decoded


def _call(cls: type, decoded: Dict[str, Any]) -> Any:
    parameters = list(inspect.signature(inspect.unwrap(cls.__init__)).parameters.values())[1:]
    args: List[Any] = []
    kwargs = dict(decoded)
    for parameter in parameters:
        if parameter.kind is parameter.POSITIONAL_ONLY and parameter.name in kwargs:
            args.append(kwargs.pop(parameter.name))
        elif parameter.kind is parameter.VAR_POSITIONAL and parameter.name in kwargs:
            args.extend(kwargs.pop(parameter.name))
    return cls(*args, **kwargs)


def _resolve_model_argument(key: str, name: str, decoded: Dict[str, Any], model: Any) -> Any:
    """The ``params``/``modules`` argument for the constructor: the model itself where its include/exclude
    presets give the recorded names (so the regularization is bound to the model's modules), else the
    recorded names looked up in it."""
    from neuroreg._validation import check_names, collect_modules, collect_parameters

    names = decoded[name]
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{key} must be a list of names or None, got {names!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"{key} names parts of a model, so model must be an nn.Module, got {model!r}")
    include, exclude = check_names("include", decoded.get("include")), check_names("exclude", decoded.get("exclude"))
    if name == "modules":
        if not include and names == [type(model).__name__]:
            return model
        available = dict(model.named_modules())
        missing = [n for n in names if n not in available]
        if missing:
            raise ValueError(f"{key}: {type(model).__name__} has no module {missing}")
        if include and collect_modules(model, include, exclude)[0] == names:
            return model
        # A list of the named modules takes no patterns: they already chose these names.
        decoded.pop("include", None)
        decoded.pop("exclude", None)
        return [available[n] for n in names]
    effective = decoded.get("effective", True)
    everything = dict(zip(*collect_parameters(model, effective=bool(effective))))
    missing = [n for n in names if n not in everything]
    if missing:
        raise ValueError(
            f"{key}: {type(model).__name__} has no parameter {missing} (it has {sorted(everything)})"
        )
    if decoded.get("select") is not None:
        return model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = collect_parameters(model, include, exclude, bool(effective))[0]
    if found == names:
        return model
    return {n: everything[n] for n in names}

