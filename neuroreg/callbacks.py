"""The trainer-callback protocol, with NeuroTorch's hook names, attributes and calling order.

A trainer that follows NeuroTorch's protocol (``neurotorch.trainers.Trainer.train``) calls::

    start
    load_checkpoint_state
    for each iteration:
        on_iteration_begin
        on_train_begin                            # model.train()
            for each of the n_epochs epochs:
                on_epoch_begin
                for each training batch:
                    on_batch_begin
                    on_optimization_begin     # the learning algorithm does zero_grad, backward, step here
                    on_optimization_end
                    on_batch_end
                on_epoch_end
        on_train_end
        on_validation_begin                       # model.eval(), under torch.no_grad()
            on_epoch_begin
            for each validation batch:
                on_batch_begin
                on_validation_batch_begin
                on_validation_batch_end
                on_batch_end
            on_epoch_end
        on_validation_end
        on_pbar_update                            # returns values to show in the progress bar
        on_iteration_end                          # a checkpoint manager calls get_checkpoint_state here
    close

Note that ``on_epoch_*`` and ``on_batch_*`` also run for validation batches: only the optimization hooks
tell a training step from a validation one.

Within a hook, callbacks run in ascending ``priority``: regularizations default to 10, NeuroTorch's
learning algorithms to 50. :class:`BaseCallback` implements every hook as a no-op, so a subclass overrides
only what it needs.

A checkpoint manager stores each callback's :meth:`~BaseCallback.get_checkpoint_state` at the checkpoint's
top level under the callback's ``name`` and hands every callback the whole checkpoint in
:meth:`~BaseCallback.load_checkpoint_state`, as NeuroTorch's ``CheckpointManager`` does.

Where NeuroTorch is installed, :class:`BaseCallback` is a subclass of NeuroTorch's own
``neurotorch.callbacks.base_callback.BaseCallback``, so ``neurotorch.trainers.Trainer(model,
callbacks=[reg])`` accepts any neuroreg callback as it is. neuroreg does not import NeuroTorch for that
(importing it takes seconds and needs torchvision): the base class is filled in at the moment NeuroTorch's
callback module is first imported, before or after neuroreg (a ``sys.meta_path`` finder watches for it),
and where NeuroTorch is absent or fails to import nothing changes.
"""

from __future__ import annotations

import importlib.abc
import itertools
import sys
from collections import defaultdict
from types import ModuleType
from typing import Any, ClassVar, DefaultDict, Dict, Iterator, Optional

from neuroreg._validation import check_bool, check_int

__all__ = ["HOOK_ORDER", "BaseCallback", "neurotorch_compatible"]

#: Every hook of the protocol, in the order a trainer first calls each (see the module docstring).
HOOK_ORDER = (
    "start",
    "load_checkpoint_state",
    "on_iteration_begin",
    "on_train_begin",
    "on_epoch_begin",
    "on_batch_begin",
    "on_optimization_begin",
    "on_optimization_end",
    "on_batch_end",
    "on_epoch_end",
    "on_train_end",
    "on_validation_begin",
    "on_validation_batch_begin",
    "on_validation_batch_end",
    "on_validation_end",
    "on_pbar_update",
    "on_iteration_end",
    "get_checkpoint_state",
    "close",
)

#: The module that defines NeuroTorch's callback base class.
NEUROTORCH_CALLBACK_MODULE = "neurotorch.callbacks.base_callback"


class _ProtocolRoot:
    """The root of :class:`BaseCallback`'s bases while NeuroTorch is not imported (a plain class: Python can
    re-point the bases of a class below it, which it cannot do for a class whose only base is ``object``)."""


class _NeuroTorchBase(_ProtocolRoot):
    """The base of :class:`BaseCallback`: re-pointed at NeuroTorch's callback class once NeuroTorch imports."""


def _derive_from_neurotorch(module: ModuleType) -> None:
    """Make :class:`BaseCallback` a subclass of ``module.BaseCallback`` (NeuroTorch's)."""
    neurotorch_base = getattr(module, "BaseCallback", None)
    if not isinstance(neurotorch_base, type) or neurotorch_compatible():
        return

    class _NeuroTorchCallback(neurotorch_base):
        # NeuroTorch's __init__ is not run (BaseCallback has its own); its finalizer calls close(trainer) on
        # callbacks that were started and not closed, and neuroreg's hold no trainer, so it has nothing to do.
        trainer = None
        _close_flag = True

        def __del__(self) -> None:
            return

    _NeuroTorchBase.__bases__ = (_NeuroTorchCallback,)


def neurotorch_compatible() -> bool:
    """Whether neuroreg's callbacks are NeuroTorch callbacks now (NeuroTorch has been imported)."""
    return _NeuroTorchBase.__bases__ != (_ProtocolRoot,)


class _DerivingLoader(importlib.abc.Loader):
    """Runs NeuroTorch's callback module with its own loader, then derives :class:`BaseCallback` from it."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Optional[ModuleType]:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _derive_from_neurotorch(module)


class _NeuroTorchFinder(importlib.abc.MetaPathFinder):
    """Watches for the import of NeuroTorch's callback module; everything else passes through untouched."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != NEUROTORCH_CALLBACK_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _DerivingLoader(spec.loader)
                return spec
        return None


if NEUROTORCH_CALLBACK_MODULE in sys.modules:
    _derive_from_neurotorch(sys.modules[NEUROTORCH_CALLBACK_MODULE])
elif not any(isinstance(finder, _NeuroTorchFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _NeuroTorchFinder())


class BaseCallback(_NeuroTorchBase):
    """Base class of trainer callbacks (NeuroTorch's protocol).

    Args:
        priority: Order within a hook: lower runs first. Defaults to :attr:`DEFAULT_PRIORITY` (10).
        name: A name unique to this instance, used as its key in checkpoints and logs. Defaults to the class
            name followed by a per-class counter (``"L2"``, ``"L2_1"``, ...).
        save_state: Whether :meth:`get_checkpoint_state` returns this callback's state.
        load_state: Whether :meth:`load_checkpoint_state` restores it. Defaults to ``save_state``.

    Where NeuroTorch is installed, it is a subclass of NeuroTorch's ``BaseCallback`` (see the module
    docstring), so NeuroTorch's trainers accept it.

    Example:
        >>> class Counter(BaseCallback):
        ...     def on_batch_end(self, trainer, **kwargs):
        ...         self.batches = getattr(self, "batches", 0) + 1
        >>> counter = Counter(name="counter")
        >>> counter.on_batch_end(trainer=None); counter.batches
        1
    """

    DEFAULT_PRIORITY: ClassVar[int] = 10
    _name_counters: ClassVar[DefaultDict[str, Iterator[int]]] = defaultdict(itertools.count)

    def __init__(
        self,
        priority: Optional[int] = None,
        name: Optional[str] = None,
        save_state: bool = True,
        load_state: Optional[bool] = None,
    ) -> None:
        priority = self.DEFAULT_PRIORITY if priority is None else check_int("priority", priority)
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        save_state = check_bool("save_state", save_state)
        load_state = save_state if load_state is None else check_bool("load_state", load_state)
        self.priority = priority
        self.name = name if name is not None else self._default_name()
        self.save_state = save_state
        self.load_state = load_state

    def _default_name(self) -> str:
        cls = type(self).__name__
        index = next(BaseCallback._name_counters[cls])
        return cls if index == 0 else f"{cls}_{index}"

    # --- checkpoints -------------------------------------------------------------------------------------
    def get_checkpoint_state(self, trainer: Any = None, **kwargs: Any) -> Optional[Dict[str, Any]]:
        """Return this callback's state as plain data (or ``None`` when ``save_state`` is False)."""
        return None

    def load_checkpoint_state(self, trainer: Any = None, checkpoint: Optional[dict] = None, **kwargs: Any) -> None:
        """Restore the state saved by :meth:`get_checkpoint_state` from a trainer's checkpoint.

        ``checkpoint`` is the whole checkpoint, where the callback's state is ``checkpoint[self.name]`` (as
        NeuroTorch's ``CheckpointManager`` stores it); a checkpoint without that key holds nothing for it.
        """

    def _own_state(self, checkpoint: Optional[dict]) -> Optional[dict]:
        if not self.load_state or not checkpoint:
            return None
        return checkpoint.get(self.name)

    # --- hooks, in calling order -----------------------------------------------------------------------
    def start(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called once when training starts, before any checkpoint is loaded."""

    def on_iteration_begin(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called at the start of each iteration (one or more epochs)."""

    def on_epoch_begin(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called at the start of each epoch."""

    def on_train_begin(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called before the training batches of an epoch."""

    def on_batch_begin(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called before each training batch."""

    def on_optimization_begin(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called when the optimization phase of a training batch begins (the weights are updated here)."""

    def on_optimization_end(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called when the optimization phase of a training batch ends."""

    def on_batch_end(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called after each training batch."""

    def on_train_end(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called after the training batches of an epoch."""

    def on_validation_begin(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called before the validation batches of an epoch."""

    def on_validation_batch_begin(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called before each validation batch."""

    def on_validation_batch_end(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called after each validation batch."""

    def on_validation_end(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called after the validation batches of an epoch."""

    def on_epoch_end(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called at the end of each epoch."""

    def on_iteration_end(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called at the end of each iteration."""

    def on_pbar_update(self, trainer: Any = None, **kwargs: Any) -> Dict[str, Any]:
        """Return the values this callback wants shown in the trainer's progress bar."""
        return {}

    def close(self, trainer: Any = None, **kwargs: Any) -> None:
        """Called once when training ends."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, priority={self.priority})"
