"""A trainer that drives callbacks exactly as ``neurotorch.trainers.Trainer.train`` does: same hooks, same
order, same priorities, and a learning algorithm that acts like NeuroTorch's BPTT (priority 50: zero_grad,
backward and step all inside ``on_optimization_begin``, zero_grad again in ``on_optimization_end``).

CI cannot import NeuroTorch (it needs torchvision), so the tests drive this instead; ``test_trainers.py``
also runs NeuroTorch's own Trainer when it imports.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from neuroreg.callbacks import CHECKPOINT_CALLBACKS_STATE_KEY, BaseCallback

Batch = Tuple[Tensor, Tensor]


class BPTT(BaseCallback):
    """NeuroTorch's learning algorithm as its hooks act on the gradients."""

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
    """Calls ``callbacks`` in NeuroTorch's order and priorities while training ``model``."""

    def __init__(self, model: nn.Module, callbacks: Iterable[BaseCallback], n_epochs: int = 1) -> None:
        self.model = model
        self.callbacks = sorted(callbacks, key=lambda callback: callback.priority)
        self.n_epochs = n_epochs
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
        self._call("start")
        self._call("load_checkpoint_state", checkpoint=checkpoint)
        for _ in range(n_iterations):
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
            self._call("on_iteration_end")
            states = {cb.name: cb.get_checkpoint_state(self) for cb in self.callbacks}
            self.checkpoints.append({CHECKPOINT_CALLBACKS_STATE_KEY: states})
        self._call("close")

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


def seeded_model(seed: int = 0) -> nn.Module:
    """A small model whose weights have mixed signs and magnitudes."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def make_batches(n_batches: int, batch_size: int = 16, seed: int = 1) -> List[Batch]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch_size, 6, generator=generator), torch.randn(batch_size, 3, generator=generator))
        for _ in range(n_batches)
    ]


def parameters_of(model: nn.Module) -> List[Tensor]:
    return [p.detach().clone() for p in model.parameters()]
