"""Test utilities: a trainer that drives callbacks exactly as ``neurotorch.trainers.Trainer.train`` does.

:class:`ProtocolTrainer` calls the same hooks, in the same order (see :mod:`neuroreg.callbacks`), by
ascending priority; :class:`BPTT` acts on the gradients as NeuroTorch's learning algorithm does (priority
50: ``zero_grad``, ``backward`` and ``step`` all inside ``on_optimization_begin``, ``zero_grad`` again in
``on_optimization_end``). Together they let a test check a callback's behaviour in NeuroTorch's protocol
where NeuroTorch is not installed (neuroreg's own suite also runs against the real NeuroTorch, in
tests/test_neurotorch.py).

Example:
    >>> import torch, neuroreg as nr
    >>> from neuroreg.testing import BPTT, ProtocolTrainer
    >>> model = torch.nn.Linear(3, 1)
    >>> reg = nr.L1(model, Lambda=0.1, name="l1")
    >>> trainer = ProtocolTrainer(model, [reg, BPTT(torch.optim.SGD(model.parameters(), lr=0.1))])
    >>> trainer.train([(torch.randn(8, 3), torch.randn(8, 1))] * 4, n_iterations=2)
    >>> reg.global_step, sorted(trainer.pbar_postfixes[-1])
    (8, ['l1'])
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from neuroreg.callbacks import BaseCallback

__all__ = ["BPTT", "ProtocolTrainer"]

Batch = Tuple[Tensor, Tensor]


class BPTT(BaseCallback):
    """NeuroTorch's learning algorithm as its hooks act on the gradients.

    Args:
        optimizer: The task optimizer.
        criterion: The task loss, ``criterion(pred, y)`` (default: mean squared error).
    """

    DEFAULT_PRIORITY = 50

    def __init__(self, optimizer: torch.optim.Optimizer, criterion: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.optimizer = optimizer
        self.criterion = nn.MSELoss() if criterion is None else criterion

    def on_optimization_begin(self, trainer: Any = None, **kwargs: Any) -> None:
        loss = self.criterion(kwargs["pred"], kwargs["y"])
        trainer.batch_loss = loss.detach()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def on_optimization_end(self, trainer: Any = None, **kwargs: Any) -> None:
        self.optimizer.zero_grad()


class ProtocolTrainer:
    """Trains ``model`` calling ``callbacks`` in NeuroTorch's order and by ascending priority.

    After each iteration, the callbacks' ``on_pbar_update`` values are merged into
    :attr:`pbar_postfixes` (and shown when ``verbose``: on a tqdm bar where tqdm is installed, else printed), and their
    ``get_checkpoint_state`` into :attr:`checkpoints` (``{name: state}`` at the checkpoint's top level, as
    NeuroTorch's ``CheckpointManager`` stores them).

    Args:
        model: The model; its ``forward`` gives the prediction of a batch's inputs.
        callbacks: The callbacks, including a learning algorithm such as :class:`BPTT`.
        n_epochs: Passes over the training batches per iteration.
        verbose: Show a progress bar over iterations.
    """

    def __init__(
        self, model: nn.Module, callbacks: Iterable[BaseCallback], n_epochs: int = 1, verbose: bool = False
    ) -> None:
        self.model = model
        self.callbacks = sorted(callbacks, key=lambda callback: callback.priority)
        self.n_epochs = n_epochs
        self.verbose = verbose
        self.batch_loss: Optional[Tensor] = None
        self.checkpoints: List[Dict[str, Any]] = []
        self.pbar_postfixes: List[Dict[str, Any]] = []

    def _call(self, hook: str, **kwargs: Any) -> List[Any]:
        return [getattr(callback, hook)(self, **kwargs) for callback in self.callbacks]

    def train(
        self,
        train_batches: Sequence[Batch],
        val_batches: Sequence[Batch] = (),
        n_iterations: int = 1,
        checkpoint: Optional[Dict[str, Any]] = None,
    ) -> None:
        """Run ``n_iterations`` iterations, each of ``n_epochs`` passes over ``train_batches`` then one over
        ``val_batches``, starting from ``checkpoint`` (a dict from :attr:`checkpoints`) if given."""
        self._call("start")
        self._call("load_checkpoint_state", checkpoint=checkpoint)
        bar = self._progress_bar(n_iterations) if self.verbose else None
        for iteration in range(n_iterations):
            self._call("on_iteration_begin")
            self.model.train()
            self._call("on_train_begin")
            for _ in range(self.n_epochs):
                self._epoch(train_batches)
            self._call("on_train_end")
            if val_batches:
                with torch.no_grad():
                    self.model.eval()
                    self._call("on_validation_begin")
                    self._epoch(val_batches)
                    self._call("on_validation_end")
            postfix: Dict[str, Any] = {}
            for values in self._call("on_pbar_update"):
                postfix.update(values or {})
            self.pbar_postfixes.append(postfix)
            if self.verbose:
                shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in postfix.items()}
                if bar is None:
                    print(f"iteration {iteration + 1}/{n_iterations}", *(f"{k}={v}" for k, v in shown.items()))
                else:
                    bar.set_postfix(shown)
                    bar.update()
            self._call("on_iteration_end")
            self.checkpoints.append({cb.name: cb.get_checkpoint_state(self) for cb in self.callbacks})
        if bar is not None:
            bar.close()
        self._call("close")

    @staticmethod
    def _progress_bar(n_iterations: int) -> Any:
        """A tqdm bar over iterations, or None where tqdm (an optional dependency) is not installed."""
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(total=n_iterations, unit="itr")

    def _epoch(self, batches: Sequence[Batch]) -> None:
        self._call("on_epoch_begin")
        for x, y in batches:
            self._call("on_batch_begin")
            pred = self.model(x)
            if self.model.training:
                self._call("on_optimization_begin", x=x, y=y, pred=pred)
                self._call("on_optimization_end")
            else:
                self._call("on_validation_batch_begin", x=x, y=y, pred=pred)
                self._call("on_validation_batch_end")
            self._call("on_batch_end")
        self._call("on_epoch_end")
