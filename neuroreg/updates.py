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
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Optional

import torch
from torch import nn

__all__ = ["Attachment", "OptimizerHooks", "optimizer_param_ids"]

#: Optimizers whose step evaluates a gradient-computing closure: a pre-step hook cannot join that gradient.
CLOSURE_OPTIMIZERS = (torch.optim.LBFGS,)


def optimizer_param_ids(optimizer: torch.optim.Optimizer) -> FrozenSet[int]:
    """The ``id`` of every parameter in ``optimizer``'s param groups."""
    return frozenset(id(param) for group in optimizer.param_groups for param in group["params"])


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
