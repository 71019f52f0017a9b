"""BaseRegularization, a penalty that is both a ``torch.nn.Module`` and a trainer callback, and
RegularizationList, their sum."""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Callable, ClassVar, Dict, FrozenSet, Iterator, List, Literal, Optional, Sequence, Union

import torch
from torch import Tensor, nn
from torch.nn.modules.module import _has_any_global_hook

from neuroreg._validation import (
    check_bool,
    check_choice,
    check_dense_grads,
    check_names,
    check_real,
    check_select,
    collect_parameters,
    parametrized_tensors,
)
from neuroreg.callbacks import BaseCallback
from neuroreg.config import Configurable
from neuroreg.functional._multi_tensor import (
    full,
    grads_laid_out_like,
    is_dtensor,
    is_small,
    scaled_grads,
    sparse_grads_as_dense,
    sum_scalars,
)
from neuroreg.updates import OptimizerHooks, optimizer_param_ids

__all__ = ["BaseRegularization", "RegularizationList"]

LambdaLike = Union[float, Callable[[int], float]]
ParamsLike = Union[nn.Module, Dict[str, nn.Parameter], Iterable[nn.Parameter], nn.Parameter, None]


_NARROW = (torch.float16, torch.bfloat16)


class _HeldParameters(nn.ParameterList):
    """The regularized parameters: the model's own ``Parameter`` objects, which the model owns.

    They are left out of the regularization's ``state_dict`` (so loading one can never overwrite model
    weights, and a checkpoint holds no copy of them) and out of ``.to()``/``.cuda()``/``.double()`` (moving
    a regularization moves its own buffers; the model is moved by whoever owns it).
    """

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        return

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        return

    def _apply(self, fn: Any, recurse: bool = True) -> _HeldParameters:
        return self

    def __iter__(self) -> Iterator[nn.Parameter]:
        # ParameterList's own __iter__ looks every element up by its string index through Module.__getattr__,
        # ~3 µs each: at 200 parameters that is 0.6 ms per member per training step. Only ever appended to,
        # so the insertion order of _parameters is the index order.
        return iter(self._parameters.values())


class _ClosedFormPenalty(torch.autograd.Function):
    """The unweighted penalty of a regularization whose gradient has a closed form; its backward is that
    closed form (first order: not twice differentiable). Not used under torch.func transforms, where the
    penalty is differentiated through ``forward`` (see ``BaseRegularization._closed_form_call``), so it
    needs no ``setup_context``: the ``ctx``-first form skips the signature binding that ``apply`` does for
    the other (about 10 µs a call)."""

    @staticmethod
    def forward(ctx: Any, reg: BaseRegularization, *params: Tensor) -> Tensor:
        ctx.reg = reg
        ctx.save_for_backward(*params)
        return reg._unweighted(list(params))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple:
        return (None, *ctx.reg._closed_form_grads(list(ctx.saved_tensors), grad))


class BaseRegularization(nn.Module, OptimizerHooks, BaseCallback, Configurable):
    r"""Base class of every regularization: a module whose call returns ``Lambda * forward(...)``.

    A subclass implements :meth:`forward`, the unweighted penalty, by calling its function in
    :mod:`neuroreg.functional`; the weight ``Lambda`` is applied here and nowhere else.

    A regularization is used three ways: called directly for a penalty tensor to add to a loss, attached to
    a trainer as a callback (it follows :class:`neuroreg.callbacks.BaseCallback`'s protocol), or summed
    with others in a :class:`RegularizationList`.

    Args:
        params: What to regularize: an ``nn.Module`` (its named parameters), a dict name -> Parameter, an
            iterable of Parameters, a single Parameter, or ``None`` (a loss computed on call-time inputs).
            The model's own Parameter objects are held (gradients reach the model) in :attr:`params`, and
            their names in :attr:`param_names`.
        Lambda: Weight of the penalty: a finite real >= 0, or a schedule ``step -> float`` (see
            :mod:`neuroreg.schedules`) advanced by :meth:`step`. Readable and settable at any time; it is a
            buffer, so it is in ``state_dict()`` with the schedule's position.
        optimizer: If given, the regularization takes its own optimizer step after each task optimizer step
            (separate-step mode, :meth:`separate_step`); else its gradient joins the task loss's inside each
            task optimizer step (joint mode). See :attr:`mode` and :meth:`attach`.
        name: Unique name used in logs and checkpoints (default: class name and a counter).
        include: Glob pattern(s) on parameter names: keep only matching parameters (module or dict only).
        exclude: Glob pattern(s) on parameter names: drop matching parameters (module or dict only).
            Names are those of the unwrapped model: the ``module.`` (DistributedDataParallel),
            ``_orig_mod.`` (``torch.compile``) and ``_fsdp_wrapped_module.`` prefixes are left out.
        select: A predicate ``(name, param, module) -> bool`` applied with ``include``/``exclude``: keep the
            parameters it is true for (``module`` owns the parameter; ``None`` for a dict or an iterable).
            Presets in :mod:`neuroreg.select`: ``weights``, ``no_decay``, ``module_types(...)``,
            ``recurrent``. Selecting nothing warns once.
        effective: For a module with ``torch.nn.utils.parametrize`` parametrizations (such as
            :func:`neuroreg.constraints.dale_`, ``spectral_norm`` or ``weight_norm``), regularize the tensor
            the model uses (``layer.weight``, named ``weight``), recomputed at each call, rather than the raw
            ``parametrizations.weight.original`` (``effective=False``). The closed-form gradient is then
            carried back through the parametrization by autograd.
        priority: Callback priority (lower runs first), default 10.
        save_state: Whether :meth:`get_checkpoint_state` returns the state.
        load_state: Whether :meth:`load_checkpoint_state` restores it (default: ``save_state``).

    Example:
        >>> import neuroreg as nr
        >>> model = torch.nn.Linear(3, 2)
        >>> reg = nr.L1(model, Lambda=0.1, exclude="bias")
        >>> reg.param_names
        ['weight']
        >>> penalty = reg()   # 0.1 * sum |W|
        >>> bool(torch.isclose(penalty, 0.1 * model.weight.abs().sum()))
        True
    """

    #: Whether :meth:`_add_penalty_grad_` is implemented (joint mode then builds no autograd graph).
    closed_form_grad: ClassVar[bool] = False

    @property
    def _closed_form_backward(self) -> bool:
        """Whether a direct call on large tensors differentiates through the closed form: where its backward
        makes no more passes over memory than autograd's (a subclass says where not)."""
        return self.closed_form_grad

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: float = 1.0,
        optimizer: Optional[torch.optim.Optimizer] = None,
        *,
        name: Optional[str] = None,
        include: Union[str, Sequence[str], None] = None,
        exclude: Union[str, Sequence[str], None] = None,
        select: Optional[Callable[[str, nn.Parameter, Optional[nn.Module]], bool]] = None,
        effective: bool = True,
        priority: Optional[int] = None,
        save_state: bool = True,
        load_state: Optional[bool] = None,
    ) -> None:
        schedule = Lambda if callable(Lambda) else None
        weight = self._check_lambda(Lambda, schedule, 0)
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer or None, got {optimizer!r}")
        effective = check_bool("effective", effective)
        names, parameters = collect_parameters(
            [] if params is None else params, check_names("include", include), check_names("exclude", exclude),
            effective, check_select(select), name or type(self).__name__,
        )
        nn.Module.__init__(self)
        BaseCallback.__init__(self, priority=priority, name=name, save_state=save_state, load_state=load_state)
        self.params = _HeldParameters(parameters)
        self.param_names: List[str] = names
        self._bind_owners(params if isinstance(params, nn.Module) else None, effective)
        self.optimizer = optimizer
        self.schedule: Optional[Callable[[int], float]] = schedule
        # Lambda lives in a float64 buffer (exact for any Python float, in state_dict, and a tensor input to
        # a compiled forward, so changing it does not recompile); the float mirror serves the host side, so
        # reading Lambda never syncs with a GPU. Likewise the schedule's position.
        self.register_buffer("_lambda", torch.tensor(weight, dtype=torch.float64))
        self.register_buffer("_step", torch.tensor(0, dtype=torch.int64))
        self._lambda_value = weight
        self._step_value = 0
        self._lambda_cache: Dict[tuple, Tensor] = {}
        self._sharded_buffers: Dict[int, tuple] = {}
        self._align_dtensor_grads = False
        self._sync_pending = True
        self._last_raw: Optional[Tensor] = None
        self._last_weighted: Optional[Tensor] = None
        self._value_stale = False
        self._init_optimizer_hooks()

    # --- Lambda and its schedule -------------------------------------------------------------------------
    @staticmethod
    def _check_lambda(Lambda: Any, schedule: Optional[Callable[[int], float]], step: int) -> float:
        if schedule is None:
            return check_real("Lambda", Lambda, low=0)
        return check_real(f"Lambda (the value of schedule {schedule!r} at step {step})", schedule(step), low=0)

    @property
    def Lambda(self) -> float:
        """The weight of the penalty now. Assign a number to fix it (dropping any schedule), or a
        schedule to follow it from the current step."""
        return self._lambda_value

    @Lambda.setter
    def Lambda(self, value: LambdaLike) -> None:
        schedule = value if callable(value) else None
        weight = self._check_lambda(value, schedule, self._step_value)
        self.schedule = schedule
        self._set_lambda(weight)

    @property
    def global_step(self) -> int:
        """How many times :meth:`step` was called: the schedule's position."""
        return self._step_value

    def step(self) -> None:
        """Advance the Lambda schedule by one optimizer step.

        The trainer callbacks call it once per optimizer step on training batches; call it yourself after
        ``optimizer.step()`` in a plain loop. Without a schedule it only counts.
        """
        step = self._step_value + 1
        if self.schedule is not None:
            self._set_lambda(self._check_lambda(None, self.schedule, step))
        with torch.no_grad():
            self._step.fill_(step)
        self._step_value = step

    def _set_lambda(self, value: float) -> None:
        with torch.no_grad():
            self._lambda.fill_(value)
        self._lambda_value = value
        self._lambda_cache.clear()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._lambda_value = float(self._lambda)
        self._step_value = int(self._step)
        self._lambda_cache.clear()

    def _apply(self, fn: Any, recurse: bool = True) -> BaseRegularization:
        # Lambda follows the regularization's device but keeps float64: `.to(torch.bfloat16)` must not
        # round the weight of the penalty.
        lambda_before = self._lambda
        super()._apply(fn, recurse)
        self._buffers["_lambda"] = lambda_before.to(device=self._lambda.device)
        self._lambda_cache.clear()
        return self

    # --- the penalty -------------------------------------------------------------------------------------
    def forward(self) -> Tensor:
        """The unweighted penalty. Subclasses call their :mod:`neuroreg.functional` function here; one whose
        penalty is a function of its held tensors alone implements :meth:`_penalty_value` instead, and this
        calls it with :meth:`regularized_parameters`."""
        return self._penalty_value(self.regularized_parameters())

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        """Return ``Lambda * forward(*args, **kwargs)``, a differentiable 0-d tensor, and remember both
        values (detached, no host sync) for logging.

        A class with a closed-form gradient differentiates through it: the backward pass writes
        ``∂penalty/∂p`` with multi-tensor kernels instead of differentiating ``forward``'s reductions (about 2x
        faster for a squared L2 over 20 tensors of 1024² on a 2-core CPU, and nothing saved but the parameters
        themselves). That backward is first order only. Below
        :data:`~neuroreg.functional._multi_tensor.SMALL_NUMEL` regularized entries in all (362², most E/I
        networks), where a call costs its kernel launches and Python rather than its passes over memory,
        autograd differentiates the value's few kernels instead (the same gradient, to rounding). For
        higher-order gradients at any size use ``reg.Lambda * reg.forward()``.
        """
        state = self.__dict__   # plain attributes read and set past nn.Module's __getattr__/__setattr__
        if state["_sync_pending"]:
            self._sync_references()
        if self._closed_form_call(args, kwargs):
            params = self.regularized_parameters()
            if params and is_dtensor(params[0]):
                # FSDP2: autograd differentiates through the shards, each gradient laid out like its parameter.
                state["_align_dtensor_grads"] = True
                try:
                    raw = full(super().__call__())
                finally:
                    state["_align_dtensor_grads"] = False
            elif is_small(params) or not self._closed_form_backward:
                # Small: a call is dominated by fixed costs, and autograd's backward of the value's few kernels
                # costs less than an autograd Function's Python (both give the same gradient, to rounding).
                raw = self._unweighted(params)
            else:
                raw = _ClosedFormPenalty.apply(self, *params)
        else:
            raw = full(super().__call__(*args, **kwargs))
        if raw.dtype in _NARROW:   # weighted in float32: Lambda=1e6 is inf in float16
            weighted = (raw.float() * self._lambda_as(raw.float())).to(raw.dtype)
        else:
            weighted = raw * self._lambda_as(raw)
        if not torch._C._are_functorch_transforms_active():   # values under vmap/grad are not for logging
            state["_last_raw"], state["_last_weighted"] = raw.detach(), weighted.detach()
            state["_value_stale"] = False
        return weighted

    def _lambda_as(self, like: Tensor) -> Tensor:
        """The Lambda buffer on ``like``'s device and dtype, converted once per device and dtype (and again
        whenever Lambda changes): a per-call conversion costs more than a small penalty itself."""
        if torch.compiler.is_compiling():   # traced as a graph input, so that a new Lambda never recompiles
            return self._lambda.to(device=like.device, dtype=like.dtype)
        key = (like.device, like.dtype)
        cached = self._lambda_cache.get(key)
        if cached is None:
            cached = self._lambda_cache[key] = self._lambda.to(device=like.device, dtype=like.dtype)
        return cached

    def _unweighted(self, params: List[Tensor]) -> Tensor:
        """The unweighted penalty of ``params`` (:meth:`regularized_parameters`, just computed): straight from
        :meth:`_penalty_value` without finding the parameters again, or through ``nn.Module.__call__`` where
        forward hooks are registered (they see the call as for any module) or ``forward`` is overridden."""
        if (
            self._forward_hooks or self._forward_pre_hooks or _has_any_global_hook()
            or type(self).forward is not BaseRegularization.forward
        ):
            return full(nn.Module.__call__(self))
        return full(self._penalty_value(params))

    def _penalty_value(self, params: List[Tensor]) -> Tensor:
        """The unweighted penalty of ``params``, the tensors :meth:`regularized_parameters` returns (see
        :meth:`forward`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward() or _penalty_value()")

    def _register_buffer_list(self, prefix: str, tensors: Sequence[Tensor], *, persistent: bool = True) -> None:
        """Register one buffer per held parameter, named ``{prefix}_{index}`` (moved by .to(); in state_dict
        where ``persistent``)."""
        for index, tensor in enumerate(tensors):
            self.register_buffer(f"{prefix}_{index}", tensor, persistent=persistent)

    def _buffer_list(self, prefix: str) -> List[Tensor]:
        """The buffers registered by :meth:`_register_buffer_list`, in parameter order."""
        buffers = self._buffers
        return [buffers[f"{prefix}_{index}"] for index in range(len(self._modules["params"]._parameters))]

    def _regularized_buffers(self, prefix: str) -> List[Tensor]:
        """The buffers of :meth:`regularized_parameters`, in its order (frozen parameters keep theirs)."""
        buffers = self._buffer_list(prefix)
        held = [(p, buffer) for p, buffer, frozen in zip(self._held(), buffers, self._frozen) if _acts_on(p, frozen)]
        return [self._laid_out_like(param, buffer) if is_dtensor(param) else buffer for param, buffer in held]

    def _laid_out_like(self, param: Tensor, buffer: Tensor) -> Tensor:
        """``buffer`` (a full reference tensor, as saved in ``state_dict``) as a DTensor with ``param``'s mesh
        and placements: each rank takes its own shard of its copy, with no communication (the references are
        the same on every rank, see :meth:`_sync_references`). Cached until the buffer changes."""
        if is_dtensor(buffer):
            return buffer
        from torch.distributed.tensor import distribute_tensor

        key = (id(buffer), buffer._version, param.device_mesh, tuple(param.placements))
        cached = self._sharded_buffers.get(id(buffer))
        if cached is None or cached[0] != key:
            sharded = distribute_tensor(buffer, param.device_mesh, param.placements, src_data_rank=None)
            cached = self._sharded_buffers[id(buffer)] = (key, sharded)
        return cached[1]

    def _sync_references(self) -> None:
        """Once torch.distributed is initialized with several processes: broadcast this regularization's
        buffers (reference signs and weights, masks) from rank 0, so that every rank regularizes toward the same
        references (drawn with ``seed=None``, or taken from a per-rank initialization before DDP's broadcast).
        Runs at the first call, accumulation or attachment after ``init_process_group``, on every rank."""
        if not torch.distributed.is_available() or not torch.distributed.is_initialized():
            return
        self._sync_pending = False
        if torch.distributed.get_world_size() < 2:
            return
        for name, buffer in self._buffers.items():
            # A DTensor buffer (built on DTensor parameters) is one global tensor already.
            if name not in ("_lambda", "_step") and buffer is not None and not is_dtensor(buffer):
                torch.distributed.broadcast(buffer, src=0)

    def regularized_parameters(self) -> List[Tensor]:
        """The tensors the penalty acts on now: the held parameters that are not frozen, each parametrized one
        as its effective tensor (computed now, differentiable into the raw parameter; see ``effective``)."""
        self._follow_replaced_parameters()
        held = [p for p, frozen in zip(self._held(), self._frozen) if _acts_on(p, frozen)]
        if self._align_dtensor_grads:
            return grads_laid_out_like(held)
        if not any(self._views):
            return held
        return [
            p if view is None else getattr(_alive(view[0], self.name), view[1])
            for p, view, frozen in zip(self._held(), self._views, self._frozen)
            if _acts_on(p, frozen)
        ]

    def _held(self) -> Iterable[nn.Parameter]:
        """The held Parameters, in order: ``self.params`` without ``nn.Module.__getattr__`` (about 0.7 µs, on
        every call of a penalty)."""
        return self._modules["params"]._parameters.values()

    def _held_tensors(self) -> List[tuple]:
        """Every held tensor, frozen ones included, as ``(tensor, acts)``: ``acts`` as in
        :meth:`regularized_parameters` (for losses that take their held tensors in fixed groups)."""
        self._follow_replaced_parameters()
        return [(p, _acts_on(p, frozen)) for p, frozen in zip(self.params, self._frozen)]

    def _trainable_parameters(self) -> List[nn.Parameter]:
        """The held Parameters that are not frozen (raw ones for parametrized tensors), in held order."""
        self._follow_replaced_parameters()
        return [p for p, frozen in zip(self.params, self._frozen) if _acts_on(p, frozen)]

    # --- which tensors of the model: owners, replaced parameters, copies -----------------------------------
    def _bind_owners(self, module: Optional[nn.Module], effective: bool) -> None:
        """Remember, for each held Parameter of ``module``, the module and attribute that hold it (``_owners``)
        and, for a parametrized tensor, the module whose attribute is its effective tensor (``_views``). Both
        are weak references: a regularization never keeps a model alive."""
        held = list(self.params)
        self._copy_memo: Optional[dict] = None
        # Frozen is decided here, from the model's Parameters: under torch.func.functional_call the held
        # tensors are swapped for plain (or batched) tensors whose requires_grad says nothing about that.
        self._frozen: List[bool] = [not p.requires_grad for p in held]
        self._bound = [id(p) for p in held]
        if module is None:
            self._owners: Optional[List[Optional[tuple]]] = None
            self._views: List[Optional[tuple]] = [None] * len(held)
            return
        owners = {
            id(param): (weakref.ref(submodule), attribute)
            for submodule in module.modules()
            for attribute, param in submodule._parameters.items()
            if param is not None
        }
        views = parametrized_tensors(module) if effective else {}
        self._owners = [owners.get(id(p)) for p in held]
        self._views = [(weakref.ref(views[id(p)][1]), views[id(p)][2]) if id(p) in views else None for p in held]

    def _follow_replaced_parameters(self) -> None:
        """Re-bind, by owner and attribute, to Parameters the model replaced since construction
        (``fully_shard``, ``to_empty``, ``load_state_dict(assign=True)``): the penalty always acts on the
        tensors the model uses now. One dictionary lookup per parameter."""
        if self._owners is None:
            return
        if self._copy_memo is not None:
            self._resolve_copy()
        owners = self._owners
        held = self.params._parameters
        for index, (key, param) in enumerate(held.items()):
            owner = owners[index]
            module = None if owner is None else owner[0]()
            # A held tensor other than the one bound is swapped in by torch.func.functional_call: left alone.
            if module is None or id(param) != self._bound[index]:
                continue
            current = module._parameters.get(owner[1])
            if current is not param:
                if not isinstance(current, nn.Parameter):
                    raise RuntimeError(
                        f"{self.name}: the model no longer has the parameter {self.param_names[index]!r} (its "
                        f"{owner[1]!r} is now {type(current).__name__}); rebuild the regularization or call bind(model)"
                    )
                held[key] = current
                self._bound[index] = id(current)

    def _resolve_copy(self) -> None:
        # copy.deepcopy put the copy of every object it copied in this memo. Where the owning modules were
        # copied too (a deepcopy of a container holding the model and the regularization, in any order), the
        # copy follows the copied model; where they were not (the regularization copied alone), it follows
        # the original model's parameters: a copy never regularizes tensors no model uses.
        memo, self._copy_memo = self._copy_memo, None

        def follow(entry: Optional[tuple]) -> Optional[tuple]:
            module = None if entry is None else entry[0]()
            copied = None if module is None else memo.get(id(module))
            return entry if copied is None else (weakref.ref(copied), entry[1])

        self._owners = [follow(entry) for entry in self._owners]
        self._views = [follow(entry) for entry in self._views]

    def bind(self, model: nn.Module) -> BaseRegularization:
        """Re-bind to ``model``'s parameters of the same names (after rebuilding or reloading a model, or for
        a regularization loaded with ``torch.load`` without its model). Returns ``self``.

        Raises:
            TypeError: ``model`` is not an ``nn.Module``.
            ValueError: ``model`` lacks one of :attr:`param_names`; nothing is changed then.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {model!r}")
        effective = any(self._views) or not any("parametrizations." in name for name in self.param_names)
        names, params = collect_parameters(model, effective=effective)
        by_name = dict(zip(names, params))
        missing = [name for name in self.param_names if name not in by_name]
        if missing:
            raise ValueError(f"{self.name} cannot bind to {type(model).__name__}: it has no parameter {missing}")
        for key, name in zip(list(self.params._parameters), self.param_names):
            self.params._parameters[key] = by_name[name]
        self._bind_owners(model, effective)
        return self

    def penalty_of(self, params: Mapping[str, Tensor]) -> Tensor:
        """``Lambda * penalty`` of the tensors in ``params``, keyed by the model's parameter names (as in
        ``dict(model.named_parameters())`` or the dicts of ``torch.func.stack_module_state``), in place of the
        held ones: the form to use under ``torch.func.grad``/``vmap`` (a stacked ensemble of models).

        Which tensors are regularized is decided at construction (frozen Parameters stay left out), never
        from the ``requires_grad`` of the tensors given.

        Raises:
            ValueError: ``params`` lacks one of :attr:`param_names` (of a member, for a list).

        Example:
            >>> import torch, neuroreg as nr
            >>> model = torch.nn.Linear(3, 2)
            >>> reg = nr.L2(model, Lambda=0.5, squared=True, include="weight")
            >>> params = {name: torch.ones_like(p) for name, p in model.named_parameters()}
            >>> round(float(reg.penalty_of(params)), 5)   # 0.5 * 6
            3.0
        """
        return torch.func.functional_call(self, self._functional_params(params, ""), (), tie_weights=False)

    def _functional_params(self, params: Mapping[str, Tensor], prefix: str) -> Dict[str, Tensor]:
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a dict parameter name -> tensor, got {type(params).__name__}")
        missing = [name for name in self.param_names if name not in params]
        if missing:
            raise ValueError(f"params lacks {missing}, regularized by {self.name} (it has {sorted(params)[:8]})")
        return {f"{prefix}params.{index}": params[name] for index, name in enumerate(self.param_names)}

    def __deepcopy__(self, memo: dict) -> BaseRegularization:
        duplicate = type(self).__new__(type(self))
        memo[id(self)] = duplicate
        # The weak references to the owning modules are copied as they are (copy treats them as atomic) and
        # resolved against the memo at first use, when the whole deepcopy has finished.
        state = copy.deepcopy(self.__getstate__(), memo)
        duplicate.__setstate__(state)
        duplicate.__dict__["_copy_memo"] = memo if self._owners is not None else None
        duplicate.__dict__["_bound"] = [id(param) for param in duplicate.params]   # ids of the copied objects
        return duplicate

    def _zero(self) -> Tensor:
        """A floating zero penalty on the parameters' device and dtype, which ``.backward()`` accepts."""
        reference = next(iter(self.params), None)
        if reference is None:
            return torch.zeros((), requires_grad=True)
        return reference.new_zeros((), requires_grad=True)

    # --- joint mode: the penalty's gradient added to the task's -------------------------------------------
    def _add_penalty_grad_(self, params: List[Tensor], grads: List[Tensor], alpha: float) -> None:
        """Add ``alpha * ∂forward()/∂p`` to ``grads`` in place, for a class with a closed-form gradient.

        ``params`` is :meth:`regularized_parameters` (in order), ``grads`` their ``.grad`` tensors. The
        functional it calls groups the tensors by device and dtype for the multi-tensor kernels.
        """
        raise NotImplementedError(f"{type(self).__name__} has no closed-form gradient")

    def accumulate_grad(self, *, with_value: bool = False) -> None:
        """Add ``Lambda * ∂penalty/∂p`` into each regularized parameter's ``.grad`` (joint mode).

        Call it between the task loss's ``backward()`` and the optimizer's ``step()``: the update is then
        exactly that of minimizing ``task_loss + reg()``. Classes with a closed-form gradient do this with
        multi-tensor kernels and no autograd graph; the others fall back to ``reg().backward()``. Under
        DistributedDataParallel call it after ``backward()`` (the task gradients are then all-reduced, and
        every replica adds the same penalty gradient to the same parameters).

        Args:
            with_value: Also compute the penalty's value now, for :meth:`last_values`. Otherwise the
                closed-form path leaves it to be computed when it is logged.
        """
        self._accumulate_grad(1.0, with_value)

    def _accumulate_grad(self, scale: float, with_value: bool) -> None:
        if self._sync_pending:
            self._sync_references()
        if not self.closed_form_grad:
            # autograd would densify a sparse gradient (SparseAdam then refuses it): a clear error instead
            check_dense_grads(self.name, self.param_names, list(self.params))
            with torch.enable_grad():
                penalty = self()
            if penalty.requires_grad:
                (penalty * scale).backward()
            return
        alpha = scale * self._lambda_value
        if any(self._views):
            self._accumulate_grad_through_views(alpha, with_value)
            return
        with torch.no_grad():
            params = self.regularized_parameters()
            for param in params:
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
            if params and alpha != 0:
                # sparse gradients (nn.Embedding(sparse=True)) stay sparse, with the penalty on their rows
                with sparse_grads_as_dense([p.grad for p in params]) as grads:
                    self._add_penalty_grad_(params, grads, alpha)
            if with_value:
                self()
            else:
                self._value_stale = True

    def _accumulate_grad_through_views(self, alpha: float, with_value: bool) -> None:
        """Joint mode with parametrized tensors: the closed-form gradient of the effective tensors, carried
        back into the raw parameters' ``.grad`` by autograd (through the parametrizations only)."""
        with torch.enable_grad():
            tensors = self.regularized_parameters()
        if tensors and alpha != 0:
            torch.autograd.backward(tensors, self._closed_form_grads([t.detach() for t in tensors], alpha))
        if with_value:
            with torch.no_grad():
                self()
        else:
            self._value_stale = True

    def _closed_form_call(self, args: tuple, kwargs: dict) -> bool:
        # Whether a call takes the paths of a penalty of its held tensors (the value straight from
        # _penalty_value, or through the closed form). Under torch.compile the graph is traced through forward
        # (the compiler fuses it anyway), and without grad mode there is no backward pass to shorten. Under
        # torch.func transforms (grad, vmap, jacrev) autograd's own rules differentiate forward.
        return (
            self.closed_form_grad
            and not args
            and not kwargs
            and torch.is_grad_enabled()
            and not torch.compiler.is_compiling()
            and not torch._C._are_functorch_transforms_active()
        )

    def _closed_form_grads(self, params: List[Tensor], alpha: Union[float, Tensor]) -> List[Tensor]:
        """``alpha * ∂penalty/∂p`` for each of ``params``, as new tensors, from the closed form (``alpha`` a
        float, or a 0-d tensor in the backward pass: scaling by it there needs no host sync). A subclass may
        override it with fewer passes over memory."""
        return scaled_grads(lambda grads, scale: self._add_penalty_grad_(params, grads, scale), params, alpha)

    def _penalty_grads(self, scale: float) -> Dict[int, Tensor]:
        """``scale * Lambda * ∂penalty/∂p`` for each regularized parameter, keyed by ``id(p)``."""
        params = self._trainable_parameters()
        if not params:
            return {}
        if self.closed_form_grad:
            with torch.enable_grad():
                tensors = self.regularized_parameters()
            grads = self._closed_form_grads([t.detach() for t in tensors], scale * self._lambda_value)
            if any(self._views):
                grads = torch.autograd.grad(tensors, params, grads, allow_unused=True)
            self._value_stale = True
        else:
            with torch.enable_grad():
                penalty = self() * scale
            grads = torch.autograd.grad(penalty, params, allow_unused=True)
        return {id(p): g for p, g in zip(params, grads) if g is not None}

    # --- acting on training: attached to optimizers -------------------------------------------------------
    @property
    def mode(self) -> Literal["joint", "separate"]:
        """``"joint"`` without an optimizer: attached to the task optimizer (:meth:`attach`, or as a trainer
        callback), each step adds ``Lambda * ∂penalty/∂p`` to the task gradient first (the update of
        minimizing ``task_loss + penalty``). ``"separate"`` with one: after each task step, the regularization
        takes its own optimizer step on the penalty alone (NeuroTorch's semantics), leaving every other
        gradient as it was."""
        return "joint" if self.optimizer is None else "separate"

    def _held_parameter_ids(self) -> FrozenSet[int]:
        self._follow_replaced_parameters()
        return frozenset(id(param) for param in self.params)

    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.mode == "joint":
            self._add_joint_grad_(optimizer_param_ids(optimizer), 1.0)

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.mode == "separate":
            self.separate_step()
        self.step()

    def _start_joint(self, key: Any, scale: Callable[[], float]) -> None:
        """Switch on joint mode on behalf of ``key`` (a container acting in joint mode), weighted by ``scale()``:
        a no-op for penalties whose gradient joins at the optimizer step; activity penalties, whose gradient
        joins during the backward, must know before the forward."""

    def _stop_joint(self, key: Any) -> None:
        """Undo :meth:`_start_joint` for ``key``."""

    def _update_before_step_(self, optimizer: torch.optim.Optimizer, scale: float) -> None:
        """A step update inside ``optimizer.step()`` before its own (decoupled decay; see
        :class:`neuroreg.updates.PenaltyUpdates`): none for a plain penalty."""

    def _update_after_step_(self, optimizer: torch.optim.Optimizer, scale: float) -> None:
        """A step update inside ``optimizer.step()`` after its own (proximal): none for a plain penalty."""

    def _add_joint_grad_(self, held: FrozenSet[int], scale: float) -> None:
        """Add ``scale * Lambda * ∂penalty/∂p`` to the gradient of each regularized parameter in ``held`` (the
        parameters of the optimizer about to step)."""
        params = self._trainable_parameters()
        if all(id(param) in held for param in params):
            self._accumulate_grad(scale, with_value=False)
            return
        stepped = [param for param in params if id(param) in held]
        if not stepped:
            return
        grads = self._penalty_grads(scale)
        with torch.no_grad():
            for param in stepped:
                grad = grads.get(id(param))
                if grad is not None:
                    param.grad = grad.clone() if param.grad is None else param.grad.add_(grad)

    def separate_step(self) -> Tensor:
        """Take one step of the regularization's own optimizer on the penalty alone: zero the gradients,
        backpropagate ``Lambda * penalty``, step, then restore every gradient as it was (so the task
        optimizer's gradients are undisturbed). Returns the detached weighted penalty."""
        if self.optimizer is None:
            raise RuntimeError(f"{self.name} has no optimizer: separate_step() needs one (see `mode`)")
        params = {id(p): p for group in self.optimizer.param_groups for p in group["params"]}
        params.update((id(p), p) for p in self._trainable_parameters())
        saved = {key: p.grad for key, p in params.items()}
        try:
            for param in params.values():
                param.grad = None
            with torch.enable_grad():
                penalty = self()
            if penalty.requires_grad:
                penalty.backward()
            self.optimizer.step()
        finally:
            for key, param in params.items():
                param.grad = saved[key]
        return penalty.detach()

    # --- logging -----------------------------------------------------------------------------------------
    def last_tensors(self, kind: Literal["weighted", "raw"] = "weighted") -> Dict[str, Tensor]:
        """The penalty of the last call, by name, as detached 0-d tensors (no host sync: what a logger that
        accepts tensors, such as Lightning's ``log``, should be given). Empty before any call.

        In joint mode with a closed-form gradient the step itself needs no value; it is computed here, when
        asked for, rather than at every step.

        Args:
            kind: ``"weighted"`` for ``Lambda * penalty``, ``"raw"`` for the penalty alone.
        """
        check_choice("kind", kind, ("weighted", "raw"))
        if self._value_stale:
            with torch.no_grad():
                self()
        last = self._last_weighted if kind == "weighted" else self._last_raw
        return {} if last is None else {self.name: last}

    def last_values(self, kind: Literal["weighted", "raw"] = "weighted") -> Dict[str, float]:
        """:meth:`last_tensors` as Python floats (one host sync per value), for printing and progress bars."""
        return {name: float(value) for name, value in self.last_tensors(kind).items()}

    def _leaf_names(self) -> List[str]:
        """Names of the regularizations nested inside this one (none for a single penalty)."""
        return []

    def on_pbar_update(self, trainer: Any = None, **kwargs: Any) -> Dict[str, Any]:
        """The last weighted value of the penalty, by name."""
        return self.last_values()

    # --- checkpoints -------------------------------------------------------------------------------------
    def get_checkpoint_state(self, trainer: Any = None, **kwargs: Any) -> Optional[Dict[str, Any]]:
        """The regularization's own state as plain data: ``{"state_dict": {name: tensor}}`` (cloned, on
        CPU; never the model's parameters, never pickled objects)."""
        if not self.save_state:
            return None
        return {"state_dict": self._plain_state_dict()}

    def _plain_state_dict(self) -> Dict[str, Tensor]:
        """``state_dict()`` detached, cloned and on CPU: what a checkpoint stores."""
        return {key: value.detach().cpu().clone() for key, value in self.state_dict().items()}

    def load_checkpoint_state(self, trainer: Any = None, checkpoint: Optional[dict] = None, **kwargs: Any) -> None:
        """Restore what :meth:`get_checkpoint_state` returned: from a trainer's whole checkpoint (the state under
        ``checkpoint[self.name]``, where NeuroTorch's ``CheckpointManager`` puts it) or given directly."""
        state = self._own_state(checkpoint)
        if state is None and self.load_state and checkpoint and set(checkpoint) == {"state_dict"}:
            state = checkpoint
        if state is not None:
            self.load_state_dict(state["state_dict"])

    def __getstate__(self) -> Dict[str, Any]:
        # A copy (copy.deepcopy, pickling) is attached to no optimizer: hooks never cross a copy.
        state = self._unattached_state(super().__getstate__())
        state["_copy_memo"] = None
        state["_lambda_cache"], state["_sharded_buffers"] = {}, {}   # caches of this object's own tensors
        return state

    def __reduce_ex__(self, protocol: int) -> Any:
        # Pickling (torch.save) cannot keep weak references: the owning modules go by strong reference, so
        # a pickle of model and regularization together loads bound together.
        state = self.__getstate__()
        state["_owners"] = _strong(state.get("_owners"))
        state["_views"] = _strong(state.get("_views"))
        return (_rebuild, (type(self), state))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, Lambda={self.Lambda:g}, n_params={len(self.params)}"


def _acts_on(tensor: Tensor, frozen_at_construction: bool) -> bool:
    """Whether a held tensor is regularized: a model Parameter unless it is frozen now (``requires_grad``
    False); a tensor swapped in by ``torch.func.functional_call`` unless the Parameter it stands for was
    frozen when the regularization was built."""
    if isinstance(tensor, nn.Parameter):
        return tensor.requires_grad
    return not frozen_at_construction


def _alive(reference: weakref.ref, name: str) -> nn.Module:
    module = reference()
    if module is None:
        raise RuntimeError(f"{name}: the model of a parametrized tensor it regularizes no longer exists")
    return module


def _strong(entries: Optional[List[Optional[tuple]]]) -> Optional[list]:
    return None if entries is None else [None if e is None else (e[0](), e[1]) for e in entries]


def _weak(entries: Optional[list]) -> Optional[List[Optional[tuple]]]:
    if entries is None:
        return None
    return [None if e is None or e[0] is None else (weakref.ref(e[0]), e[1]) for e in entries]


def _rebuild(cls: type, state: Dict[str, Any]) -> BaseRegularization:
    """Unpickle a regularization (see ``BaseRegularization.__reduce_ex__``)."""
    regularization = cls.__new__(cls)
    state["_owners"], state["_views"] = _weak(state["_owners"]), _weak(state["_views"])
    regularization.__setstate__(state)
    regularization.__dict__["_bound"] = [id(param) for param in regularization.params]
    return regularization


class RegularizationList(BaseRegularization):
    r"""The sum of several regularizations, each with its own ``Lambda``.

    .. math::
        \mathcal{L} = \Lambda_{\text{list}} \sum_k \Lambda_k \, \mathcal{L}_k

    Members are registered submodules (``.to()``, ``state_dict()`` and ``train()`` reach them) and may be
    RegularizationLists themselves. :attr:`params` is the union of the members' parameters, without
    duplicates. After a call, :meth:`last_values` gives each member's value by name.

    As a callback the list acts for all its members, in its own :attr:`mode`: members' own optimizers are
    not used inside a list (give the list an optimizer for a separate step on the summed penalty).

    Args:
        regularizations: The members.
        Lambda: An extra weight on the sum (default 1).
        optimizer: As in :class:`BaseRegularization`.
        **kwargs: ``name``, ``priority``, ``save_state``, ``load_state`` as in :class:`BaseRegularization`.

    Example:
        >>> import neuroreg as nr
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -4.0]))
        >>> regs = nr.RegularizationList([nr.L1([w], Lambda=1.0, name="l1"), nr.L2([w], Lambda=2.0, name="l2")])
        >>> regs()
        tensor(17., grad_fn=<MulBackward0>)
        >>> regs.last_values()
        {'l1': 7.0, 'l2': 10.0}
    """

    def __init__(
        self,
        regularizations: Optional[Iterable[BaseRegularization]] = None,
        Lambda: float = 1.0,
        optimizer: Optional[torch.optim.Optimizer] = None,
        **kwargs: Any,
    ) -> None:
        if regularizations is not None and (
            isinstance(regularizations, (str, bytes, BaseRegularization)) or not isinstance(regularizations, Iterable)
        ):
            raise TypeError(f"regularizations must be an iterable of regularizations, got {regularizations!r}")
        members = list(regularizations or [])
        for index, member in enumerate(members):
            self._check_member(f"regularizations[{index}]", member)
        self._check_unique_names(members)
        super().__init__(None, Lambda, optimizer, **kwargs)
        self.regularizations = nn.ModuleList(members)
        self._collect_params()

    @staticmethod
    def _check_member(label: str, member: Any) -> None:
        if not isinstance(member, BaseRegularization):
            kind = type(member).__name__
            raise TypeError(f"{label} must be a neuroreg regularization, got {member!r} of type {kind}")

    @staticmethod
    def _check_unique_names(members: Sequence[BaseRegularization]) -> None:
        seen = set()
        for member in members:
            for name in [member.name, *member._leaf_names()]:
                if name in seen:
                    raise ValueError(f"two members of the list are named {name!r}: names must be unique")
                seen.add(name)

    def _leaf_names(self) -> List[str]:
        return [name for member in self.regularizations for name in [member.name, *member._leaf_names()]]

    def _collect_params(self) -> None:
        names, params, seen = [], [], set()
        for member in self.regularizations:
            for name, param in zip(member.param_names, member.params):
                if id(param) not in seen:
                    seen.add(id(param))
                    names.append(f"{member.name}.{name}")
                    params.append(param)
        self.params = _HeldParameters(params)
        self.param_names = names
        self._bind_owners(None, True)   # the members follow their own parameters and effective tensors

    def append(self, regularization: BaseRegularization) -> RegularizationList:
        """Add a member (a ``TypeError`` if it is not a regularization, ``ValueError`` on a name clash)."""
        self._check_member("regularization", regularization)
        if regularization is self or any(module is self for module in regularization.modules()):
            raise ValueError(f"cannot append {regularization.name!r} to a list it contains")
        self._check_unique_names([*self.regularizations, regularization])
        self.regularizations.append(regularization)
        self._collect_params()
        return self

    def __len__(self) -> int:
        return len(self.regularizations)

    def __iter__(self) -> Iterator[BaseRegularization]:
        return iter(self.regularizations)

    def __getitem__(self, index: int) -> BaseRegularization:
        return self.regularizations[index]

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """The sum of the members' weighted penalties, each called with the same arguments."""
        values = [member(*args, **kwargs) for member in self.regularizations]
        return sum_scalars(values) if values else self._zero()

    def _accumulate_grad(self, scale: float, with_value: bool) -> None:
        for member in self.regularizations:
            member._accumulate_grad(scale * self._lambda_value, with_value)

    def _held_parameter_ids(self) -> FrozenSet[int]:
        return frozenset().union(*(member._held_parameter_ids() for member in self.regularizations))

    def _start_joint(self, key: Any, scale: Callable[[], float]) -> None:
        for member in self.regularizations:
            member._start_joint(key, lambda: scale() * self._lambda_value)

    def _stop_joint(self, key: Any) -> None:
        for member in self.regularizations:
            member._stop_joint(key)

    def _update_before_step_(self, optimizer: torch.optim.Optimizer, scale: float) -> None:
        for member in self.regularizations:
            member._update_before_step_(optimizer, scale * self._lambda_value)

    def _update_after_step_(self, optimizer: torch.optim.Optimizer, scale: float) -> None:
        for member in self.regularizations:
            member._update_after_step_(optimizer, scale * self._lambda_value)

    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # The members' own step updates (decoupled decay, proximal steps) act through the list's attachment.
        if self.mode == "joint":
            self._update_before_step_(optimizer, 1.0)
        super()._before_optimizer_step(optimizer)

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.mode == "joint":
            self._update_after_step_(optimizer, 1.0)
        super()._after_optimizer_step(optimizer)

    def _attachments_changed(self) -> None:
        # Attached in joint mode, the list acts for its members: those whose gradient joins during the backward
        # must know from the next forward on.
        if self._attachments and self.mode == "joint":
            self._start_joint(id(self), lambda: 1.0)
        else:
            self._stop_joint(id(self))

    def _functional_params(self, params: Mapping[str, Tensor], prefix: str) -> Dict[str, Tensor]:
        routed: Dict[str, Tensor] = {}
        for index, member in enumerate(self.regularizations):
            routed.update(member._functional_params(params, f"{prefix}regularizations.{index}."))
        return routed

    def _add_joint_grad_(self, held: FrozenSet[int], scale: float) -> None:
        # Each member decides how its gradient joins the task's (an activity penalty's joins during the backward).
        for member in self.regularizations:
            member._add_joint_grad_(held, scale * self._lambda_value)

    def _penalty_grads(self, scale: float) -> Dict[int, Tensor]:
        grads: Dict[int, Tensor] = {}
        for member in self.regularizations:
            for key, grad in member._penalty_grads(scale * self._lambda_value).items():
                grads[key] = grads[key] + grad if key in grads else grad
        return grads

    def step(self) -> None:
        """Advance this list's Lambda schedule and every member's."""
        super().step()
        for member in self.regularizations:
            member.step()

    def last_tensors(self, kind: Literal["weighted", "raw"] = "weighted") -> Dict[str, Tensor]:
        """Each member's last value by name (nested lists are flattened)."""
        values: Dict[str, Tensor] = {}
        for member in self.regularizations:
            values.update(member.last_tensors(kind))
        return values
