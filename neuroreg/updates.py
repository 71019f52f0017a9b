"""How a penalty acts on training: attached to optimizers, it acts once per optimizer step, whoever calls
``step()``.

:meth:`OptimizerHooks.attach` registers a step pre-hook and a step post-hook on a ``torch.optim.Optimizer``
(``Optimizer.register_step_pre_hook``/``register_step_post_hook``). They run inside ``optimizer.step()``
itself, so they follow every step whatever code takes it: a plain loop, a NeuroTorch learning algorithm
that steps from its own forward hooks (``TBPTT``, ``Eprop``, ``RLS``), ``torch.amp.GradScaler.step`` (which
unscales the gradients before it calls ``step``, so a pre-hook sees them unscaled), or gradient
accumulation over micro-batches (one step, one call). As a trainer callback a regularization attaches itself
to the trainer's optimizers in ``start`` (see :meth:`OptimizerHooks._sync_trainer_optimizers`) and detaches
in ``close``: this is the one attach mechanism for every trainer.

Optimizers whose ``step`` takes a closure that recomputes the gradients (``torch.optim.LBFGS``) are refused:
a pre-hook runs before the closure, whose ``zero_grad`` would discard what it added. Add ``reg()`` to the
closure's loss instead (or use the Lightning callback, which acts inside the closure).

:class:`PenaltyUpdates` gives the parameter penalties that have a proximal operator or a decoupled form their
``update`` modes (``"gradient"``, ``"proximal"``, ``"decoupled"``), acting through the same two hooks, and
their ``reduction`` (``"sum"`` or ``"mean"`` over each tensor's entries), which the step sizes follow.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Dict, FrozenSet, List, Literal, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from neuroreg._validation import check_real
from neuroreg.functional._multi_tensor import sum_scalars

__all__ = ["Attachment", "OptimizerHooks", "PenaltyUpdates", "norm_updates", "optimizer_param_ids", "param_group_lrs"]

#: How a penalty acts at each optimizer step (see :class:`PenaltyUpdates`).
Update = Literal["gradient", "proximal", "decoupled"]
#: How each tensor's entries are combined: summed, or averaged (then summed over tensors).
Reduction = Literal["sum", "mean"]

#: Optimizers whose step evaluates a gradient-computing closure: a pre-step hook cannot join that gradient.
CLOSURE_OPTIMIZERS = (torch.optim.LBFGS,)


def optimizer_param_ids(optimizer: torch.optim.Optimizer) -> FrozenSet[int]:
    """The ``id`` of every parameter in ``optimizer``'s param groups."""
    return frozenset(id(param) for group in optimizer.param_groups for param in group["params"])


def param_group_lrs(optimizer: torch.optim.Optimizer, params: Sequence[Tensor], names: Sequence[str]) -> List[float]:
    """The learning rate of each of ``params`` in ``optimizer`` now: its param group's ``lr`` (what an LR
    scheduler sets), as floats.

    Raises:
        ValueError: Some of ``params`` are in none of the optimizer's param groups (named by ``names``).

    Example:
        >>> w, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(1))
        >>> opt = torch.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1)
        >>> param_group_lrs(opt, [w, b], ["w", "b"])
        [0.1, 0.5]
    """
    lrs = {id(param): group["lr"] for group in optimizer.param_groups for param in group["params"]}
    missing = [name for name, param in zip(names, params) if id(param) not in lrs]
    if missing:
        raise ValueError(
            f"optimizer ({type(optimizer).__name__}) holds none of the parameters {missing} in its param groups, so "
            "it gives them no learning rate: pass the optimizer that steps them, or an lr"
        )
    return [float(lrs[id(param)]) for param in params]


class Attachment:
    """The handle :meth:`OptimizerHooks.attach` returns: :meth:`remove` takes both step hooks off again.

    Attributes:
        optimizer: The optimizer the hooks are on (``None`` once removed).
    """

    def __init__(self, owner: OptimizerHooks, optimizer: torch.optim.Optimizer) -> None:
        self.owner = owner
        self.optimizer: Optional[torch.optim.Optimizer] = optimizer
        self._handles = [
            optimizer.register_step_pre_hook(self._pre_hook),
            optimizer.register_step_post_hook(self._post_hook),
        ]

    def _pre_hook(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        self.owner._before_optimizer_step(optimizer)

    def _post_hook(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        self.owner._after_optimizer_step(optimizer)

    @property
    def attached(self) -> bool:
        """Whether the hooks are still on the optimizer."""
        return self.optimizer is not None

    def remove(self) -> None:
        """Remove both hooks (a no-op when already removed)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self.optimizer is not None:
            self.owner._attachments.pop(id(self.optimizer), None)
            self.optimizer = None
            self.owner._attachments_changed()

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        target = "removed" if self.optimizer is None else type(self.optimizer).__name__
        return f"Attachment({getattr(self.owner, 'name', type(self.owner).__name__)} -> {target})"


class OptimizerHooks:
    """Mixin of the callbacks that act at each optimizer step: :meth:`attach` and the trainer discovery.

    A subclass overrides :meth:`_before_optimizer_step` and :meth:`_after_optimizer_step`, and
    :meth:`_held_parameter_ids` (which parameters an optimizer must hold for the callback to act through it).
    Attachments are never copied: ``copy.deepcopy`` or pickling gives an object attached to nothing.
    """

    _attachments: Dict[int, Attachment]
    _trainer_attachments: List[Attachment]

    def _init_optimizer_hooks(self) -> None:
        self._attachments = {}
        self._trainer_attachments = []

    # --- what a subclass defines -------------------------------------------------------------------------
    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Called inside ``optimizer.step()``, before the update (gradients final and unscaled)."""

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Called inside ``optimizer.step()``, after the update."""

    def _held_parameter_ids(self) -> FrozenSet[int]:
        """The parameters this callback acts on; an optimizer it attaches to must hold some of them."""
        return frozenset()

    def _attachments_changed(self) -> None:
        """Called after an attachment is made or removed (a list switches its members' joint mode here)."""

    # --- attaching ---------------------------------------------------------------------------------------
    @property
    def attached_optimizers(self) -> List[torch.optim.Optimizer]:
        """The optimizers this callback is attached to now."""
        return [attachment.optimizer for attachment in self._attachments.values() if attachment.optimizer is not None]

    def attach(self, optimizer: torch.optim.Optimizer) -> Attachment:
        """Act at every step of ``optimizer``, until the returned handle's ``remove()`` (or :meth:`detach`).

        In joint mode, each ``optimizer.step()`` first adds ``Lambda * ∂penalty/∂p`` to the gradient of the
        parameters that this optimizer holds (so the update is that of ``task_loss + penalty``); after the
        step, separate mode takes the regularization's own step, and the Lambda schedule advances.

        Args:
            optimizer: The task optimizer. Attaching twice to the same one returns the existing handle.

        Raises:
            TypeError: ``optimizer`` is not a ``torch.optim.Optimizer``.
            ValueError: ``optimizer`` is a closure optimizer (LBFGS), or holds none of the parameters.

        Example:
            >>> import torch, neuroreg as nr
            >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
            >>> opt = torch.optim.SGD([w], lr=0.1)
            >>> handle = nr.L1([w], Lambda=1.0).attach(opt)
            >>> w.grad = torch.zeros(2); opt.step()     # the step sees grad + sign(w)
            >>> w.detach()
            tensor([ 0.9000, -1.9000])
            >>> handle.remove()
        """
        self._check_attachable(optimizer)
        existing = self._attachments.get(id(optimizer))
        if existing is not None and existing.optimizer is optimizer:
            return existing
        attachment = Attachment(self, optimizer)
        self._attachments[id(optimizer)] = attachment
        self._attachments_changed()
        return attachment

    def detach(self) -> None:
        """Remove every attachment (those made by :meth:`attach` and by a trainer's ``start``)."""
        for attachment in list(self._attachments.values()):
            attachment.remove()
        self._trainer_attachments = []

    def _check_attachable(self, optimizer: Any) -> None:
        name = getattr(self, "name", type(self).__name__)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {optimizer!r}")
        if isinstance(optimizer, CLOSURE_OPTIMIZERS):
            raise ValueError(
                f"{name} cannot attach to {type(optimizer).__name__}: its step evaluates a closure that recomputes "
                f"the gradients after any pre-step hook; add {name}() to the closure's loss instead"
            )
        held = self._held_parameter_ids()
        if held and not held & optimizer_param_ids(optimizer):
            raise ValueError(
                f"{name} cannot attach to {type(optimizer).__name__}: the optimizer holds none of its parameters"
            )

    # --- trainers ----------------------------------------------------------------------------------------
    def _sync_trainer_optimizers(self, trainer: Any, *, final: bool) -> None:
        """Attach to the optimizers of ``trainer`` that hold this callback's parameters (and detach from ones
        the trainer no longer has).

        The optimizers are ``trainer.optimizer`` and the ``.optimizer`` of each of ``trainer.callbacks`` that
        is not a module (NeuroTorch's learning algorithms and :class:`neuroreg.testing.BPTT` carry one;
        regularizations, which are modules, carry their own separate-step optimizers and are skipped).
        A learning algorithm whose optimizer is still ``None`` makes it in its own ``start``, which may run
        after this one: until ``final`` (the first training hook), that is not an error.

        Raises:
            ValueError: No optimizer can be found (``final``, or none can come), two optimizers hold the same
                parameter, or none holds any of this callback's parameters. Nothing is attached then.
        """
        name = getattr(self, "name", type(self).__name__)
        found, pending = _trainer_optimizers(trainer)
        if not found:
            if pending and not final:
                return
            raise ValueError(
                f"{name} found no optimizer to attach to on {type(trainer).__name__}: looked at trainer.optimizer and "
                f"the .optimizer of its non-module callbacks ({_describe_callbacks(trainer)}); give the trainer a "
                f"learning algorithm with an optimizer, or call {name}.attach(optimizer) yourself"
            )
        held = self._held_parameter_ids()
        chosen: List[torch.optim.Optimizer] = []
        owner: Dict[int, torch.optim.Optimizer] = {}
        for optimizer in found:
            ids = optimizer_param_ids(optimizer) & held if held else optimizer_param_ids(optimizer)
            if held and not ids:
                continue
            for key in ids:
                if key in owner:
                    raise ValueError(
                        f"{name}: two optimizers of the trainer ({type(owner[key]).__name__} and "
                        f"{type(optimizer).__name__}) both hold one of its parameters, so its gradient would be "
                        f"added twice; give each parameter to one optimizer"
                    )
                owner[key] = optimizer
            chosen.append(optimizer)
        if not chosen:
            raise ValueError(
                f"{name} found {len(found)} optimizer(s) on {type(trainer).__name__} but none holds any of its "
                f"parameters"
            )
        for optimizer in chosen:
            self._check_attachable(optimizer)
        for attachment in list(self._trainer_attachments):
            if not any(attachment.optimizer is optimizer for optimizer in chosen):
                attachment.remove()
        self._trainer_attachments = [self.attach(optimizer) for optimizer in chosen]

    def _detach_trainer_optimizers(self) -> None:
        for attachment in self._trainer_attachments:
            attachment.remove()
        self._trainer_attachments = []

    def _unattached_state(self, state: Dict[str, Any]) -> Dict[str, Any]:
        """``state`` (a ``__getstate__`` dict) of a copy attached to nothing: hooks never cross a copy."""
        state["_attachments"], state["_trainer_attachments"] = {}, []
        return state

    # --- the trainer protocol: attach in start/on_train_begin, detach in close ------------------------------
    def start(self, trainer: Any = None, **kwargs: Any) -> None:
        """Attach to the trainer's optimizers (see :meth:`attach`): the callback then acts inside every
        optimizer step, whichever hook of the learning algorithm takes it.

        The optimizers are ``trainer.optimizer`` and the ``.optimizer`` of the trainer's callbacks that are
        not modules (NeuroTorch's learning algorithms). A NeuroTorch learning algorithm that makes its
        optimizer in its own ``start`` is attached to at :meth:`on_train_begin`.

        Raises:
            ValueError: The trainer has no optimizer this callback can find or will find, or two of its
                optimizers hold the same parameter. Nothing is attached then.
        """
        self._sync_trainer_optimizers(trainer, final=False)

    def on_train_begin(self, trainer: Any = None, **kwargs: Any) -> None:
        """Attach to optimizers the learning algorithms made in their own ``start`` (or after loading a
        checkpoint); a ``ValueError`` if there is still none."""
        self._sync_trainer_optimizers(trainer, final=True)

    def close(self, trainer: Any = None, **kwargs: Any) -> None:
        """Detach from the trainer's optimizers (attachments made with :meth:`attach` stay)."""
        self._detach_trainer_optimizers()


Operator = Callable[[List[Tensor], List[float]], None]


def norm_updates(p: float, squared: bool) -> Tuple[str, ...]:
    """The update modes of an entrywise p-norm penalty (of the weights, or of their distance to references): a
    proximal operator for ``p = 1`` and for the sum of squares, a decoupled form for the sum of squares.

    Example:
        >>> norm_updates(1, False), norm_updates(2, True), norm_updates(2, False)
        (('gradient', 'proximal'), ('gradient', 'proximal', 'decoupled'), ('gradient',))
    """
    if p == 1 and not squared:
        return ("gradient", "proximal")
    if p == 2 and squared:
        return ("gradient", "proximal", "decoupled")
    return ("gradient",)


class PenaltyUpdates:
    r"""Mixin of the parameter penalties with a ``reduction`` and ``update`` modes (:class:`~neuroreg.L1`,
    :class:`~neuroreg.L2`, :class:`~neuroreg.WeightsDistance`, :class:`~neuroreg.DaleSignPenalty`, ...),
    listed before :class:`~neuroreg.BaseRegularization` among the bases.

    **Reduction.** The penalty is :math:`\sum_k c_k\, g(W_k)`, with :math:`c_k = 1` (``"sum"``) or
    :math:`c_k = 1/|W_k|`, one over the number of entries (``"mean"``: the mean over each tensor's entries,
    then summed over tensors, the form of published hyperparameters such as PsychRNN's). A subclass computes
    its value with :meth:`_reduced` and its closed-form gradient with :meth:`_reduced_add_grad_`, which call
    its functional once per distinct tensor size.

    **Update.** With :math:`\eta_k` the learning rate of :math:`W_k`'s param group at that step (so LR
    schedulers are followed) and :math:`\Lambda` the weight now, attached to an optimizer (:meth:`attach`,
    or as a trainer callback):

    - ``"gradient"``: :math:`\Lambda\,\partial\mathcal{L}/\partial W` joins the task gradient before the
      step (the default; what the optimizer then does with it is its own, Adam's rescaling included);
    - ``"proximal"``: nothing joins the gradient; after the step,
      :math:`W_k \leftarrow \operatorname{prox}_{\eta_k \Lambda c_k g}(W_k)` (:mod:`neuroreg.functional.prox`:
      L1 entries land on exactly 0);
    - ``"decoupled"`` (squared penalties): nothing joins the gradient;
      :math:`W_k \leftarrow W_k - \eta_k \Lambda\, \partial\mathcal{L}/\partial W_k` inside the step, before
      the optimizer's own update (which is computed from the task gradient alone): the order of
      ``torch.optim.AdamW``, so ``L2(squared=True, update="decoupled", Lambda=λ)`` under Adam is AdamW with
      ``weight_decay=2λ``, step for step.

    Only the parameters the optimizer steps are updated: those in its param groups with a ``.grad`` (as
    AdamW decays only those). :meth:`prox_step_` and :meth:`decay_step_` do the same in a plain loop, on
    every regularized parameter. ``accumulate_grad()`` called explicitly still adds the gradient.
    """

    update: str = "gradient"
    reduction: str = "sum"

    def _init_penalty_updates(self, update: str, reduction: str) -> None:
        """Set the (already checked) ``update`` and ``reduction``, after ``BaseRegularization.__init__``."""
        if update != "gradient" and any(getattr(self, "_views", ())):
            raise ValueError(
                f"{self.name}: update={update!r} updates the stored parameters in place, but some are parametrized "
                "(effective=True regularizes the tensors their parametrizations compute): pass effective=False, "
                "or use update='gradient'"
            )
        self.update = update
        self.reduction = reduction

    # --- reduction ---------------------------------------------------------------------------------------
    def _reduction_weight(self, param: Tensor) -> float:
        """:math:`c_k` of a tensor (an empty one contributes 0 either way)."""
        return 1.0 / max(param.numel(), 1) if self.reduction == "mean" else 1.0

    def _size_groups(self, params: Sequence[Tensor]) -> List[Tuple[float, List[int]]]:
        """``(c, indices)``: the tensors grouped by their reduction weight :math:`c_k`."""
        groups: Dict[float, List[int]] = defaultdict(list)
        for index, param in enumerate(params):
            groups[self._reduction_weight(param)].append(index)
        return list(groups.items())

    def _reduced(self, value: Callable[..., Tensor], params: Sequence[Tensor], *per_tensor: Sequence[Tensor]) -> Tensor:
        """``sum_k c_k value([W_k], ...)``, by calls of ``value(tensors, *per_tensor)`` on tensors of one size."""
        if self.reduction == "sum":
            return value(list(params), *per_tensor)
        groups = self._size_groups(params)
        return sum_scalars([
            value([params[i] for i in indices], *[[extra[i] for i in indices] for extra in per_tensor]) * weight
            for weight, indices in groups
        ])

    def _reduced_add_grad_(
        self,
        add_grad: Callable[..., None],
        grads: Sequence[Tensor],
        params: Sequence[Tensor],
        *per_tensor: Sequence[Tensor],
        alpha: float,
    ) -> None:
        """``add_grad(grads, tensors, *per_tensor, alpha)`` per size group, with ``alpha`` times its weight."""
        if self.reduction == "sum":
            add_grad(list(grads), list(params), *per_tensor, alpha)
            return
        for weight, indices in self._size_groups(params):
            add_grad(
                [grads[i] for i in indices],
                [params[i] for i in indices],
                *[[extra[i] for i in indices] for extra in per_tensor],
                alpha * weight,
            )

    def _buffers_of(self, prefix: str, params: Sequence[Tensor]) -> List[Tensor]:
        """The per-parameter buffers ``{prefix}_{k}`` of ``params``, a subset of the held ones (those an optimizer
        steps), in their order."""
        by_id = {id(p): buffer for p, buffer in zip(self.params, self._buffer_list(prefix))}  # type: ignore
        return [by_id[id(p)] for p in params]

    # --- update modes ------------------------------------------------------------------------------------
    def _prox_(self, params: List[Tensor], steps: List[float]) -> None:
        """Apply the proximal operator of the unweighted per-tensor penalty :math:`g` with step ``steps[k]`` to
        ``params[k]``, in place (a subclass whose penalty has one; ``params`` may be a subset of the held ones)."""
        raise NotImplementedError(f"{type(self).__name__} has no proximal operator")

    def _decay_(self, params: List[Tensor], steps: List[float]) -> None:
        """Apply ``W_k -= steps[k] * dg/dW_k`` in place (a subclass whose penalty has a decoupled form)."""
        raise NotImplementedError(f"{type(self).__name__} has no decoupled form")

    def _add_joint_grad_(self, held: FrozenSet[int], scale: float) -> None:
        if self.update == "gradient":
            super()._add_joint_grad_(held, scale)  # type: ignore[misc]

    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self._update_before_step_(optimizer, 1.0)
        super()._before_optimizer_step(optimizer)  # type: ignore[misc]

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self._update_after_step_(optimizer, 1.0)
        super()._after_optimizer_step(optimizer)  # type: ignore[misc]

    def _update_before_step_(self, optimizer: torch.optim.Optimizer, scale: float) -> None:
        """The decoupled update, inside ``optimizer.step()`` before its own (``scale``: an enclosing weight)."""
        if self.update == "decoupled":
            self._apply_(self._weighted(self._decay_), *self._stepped(optimizer), scale)

    def _update_after_step_(self, optimizer: torch.optim.Optimizer, scale: float) -> None:
        """The proximal update, inside ``optimizer.step()`` after its own."""
        if self.update == "proximal":
            self._apply_(self._weighted(self._prox_), *self._stepped(optimizer), scale)

    def _stepped(self, optimizer: torch.optim.Optimizer) -> Tuple[List[Tensor], List[float]]:
        """The regularized parameters that ``optimizer`` steps (held, with a gradient), and their lrs."""
        held = optimizer_param_ids(optimizer)
        params = [p for p in self.regularized_parameters() if id(p) in held and p.grad is not None]
        return params, self._lrs(optimizer, params)

    def _lrs(self, lr: Union[float, torch.optim.Optimizer], params: List[Tensor]) -> List[float]:
        if isinstance(lr, torch.optim.Optimizer):
            names = {id(p): name for name, p in zip(self.param_names, self.params)}
            return param_group_lrs(lr, params, [names.get(id(p), str(index)) for index, p in enumerate(params)])
        return [check_real("lr", lr, low=0)] * len(params)

    def _apply_(self, operator: Operator, params: List[Tensor], lrs: List[float], scale: float) -> None:
        factor = scale * self._lambda_value
        if params and factor != 0:
            with torch.no_grad():
                operator(params, [lr * factor for lr in lrs])

    def _weighted(self, operator: Operator) -> Operator:
        """``operator`` with each tensor's step times its reduction weight :math:`c_k`."""
        def weighted(params: List[Tensor], steps: List[float]) -> None:
            operator(params, [step * self._reduction_weight(p) for step, p in zip(steps, params)])

        return weighted

    def _modes_repr(self) -> str:
        """``, update=..., reduction=...`` where they are not the defaults, for ``extra_repr``."""
        modes = [(key, value) for key, value, default in (("update", self.update, "gradient"),
                                                          ("reduction", self.reduction, "sum")) if value != default]
        return "".join(f", {key}={value!r}" for key, value in modes)

    def _check_mode(self, update: str, method: str) -> None:
        if self.update != update:
            raise RuntimeError(f"{self.name}.{method}() applies update={update!r}, but it was built with "
                               f"update={self.update!r}")

    def prox_step_(self, lr: Union[float, torch.optim.Optimizer]) -> None:
        r"""Apply the penalty's proximal operator with step size ``lr * Lambda`` (times :math:`c_k`) to every
        regularized parameter, in place: call it after ``optimizer.step()`` in a plain loop with
        ``update="proximal"`` (an attached regularization does it inside each step).

        Args:
            lr: The learning rate (a real >= 0), or the optimizer, whose param groups give each parameter's.

        Raises:
            RuntimeError: The regularization was not built with ``update="proximal"``.
            ValueError: ``lr`` is an optimizer whose param groups do not hold all the parameters.

        Example:
            >>> import torch, neuroreg as nr
            >>> w = torch.nn.Parameter(torch.tensor([0.5, -0.05, -2.0]))
            >>> reg = nr.L1([w], Lambda=1.0, update="proximal")
            >>> reg.prox_step_(0.1); w.detach()
            tensor([ 0.4000,  0.0000, -1.9000])
        """
        self._check_mode("proximal", "prox_step_")
        params = self.regularized_parameters()
        self._apply_(self._weighted(self._prox_), params, self._lrs(lr, params), 1.0)

    def decay_step_(self, lr: Union[float, torch.optim.Optimizer]) -> None:
        r"""Apply the decoupled update :math:`W \leftarrow W - \eta\,\Lambda\,\partial\mathcal{L}/\partial W` to
        every regularized parameter, in place: call it just before ``optimizer.step()`` in a plain loop with
        ``update="decoupled"`` (AdamW's order; an attached regularization does it inside each step).

        Args:
            lr: The learning rate :math:`\eta` (a real >= 0), or the optimizer whose param groups give it.

        Raises:
            RuntimeError: The regularization was not built with ``update="decoupled"``.
            ValueError: ``lr`` is an optimizer whose param groups do not hold all the parameters.

        Example:
            >>> import torch, neuroreg as nr
            >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
            >>> nr.L2([w], Lambda=0.5, squared=True, update="decoupled").decay_step_(0.1); w.detach()
            tensor([ 0.9000, -1.8000])
        """
        self._check_mode("decoupled", "decay_step_")
        params = self.regularized_parameters()
        self._apply_(self._weighted(self._decay_), params, self._lrs(lr, params), 1.0)


def _trainer_optimizers(trainer: Any) -> tuple:
    """``(optimizers, pending)``: the distinct optimizers a trainer's callbacks and ``trainer.optimizer``
    hold, and whether some learning algorithm has not made its optimizer yet."""
    candidates = [getattr(trainer, "optimizer", None)]
    pending = False
    for callback in getattr(trainer, "callbacks", None) or ():
        if isinstance(callback, nn.Module):
            continue
        optimizer = getattr(callback, "optimizer", False)
        pending = pending or optimizer is None
        candidates.append(optimizer)
    found: List[torch.optim.Optimizer] = []
    for optimizer in candidates:
        if isinstance(optimizer, torch.optim.Optimizer) and all(optimizer is not other for other in found):
            found.append(optimizer)
    return found, pending


def _describe_callbacks(trainer: Any) -> str:
    callbacks = list(getattr(trainer, "callbacks", None) or ())
    return ", ".join(type(callback).__name__ for callback in callbacks) or "none"
