"""PyTorch Lightning integration: a regularization as a ``lightning.pytorch.Callback``.

Install with ``pip install "neuroreg[lightning]"``.
"""

from __future__ import annotations

from typing import Any, Dict

from neuroreg._validation import check_bool
from neuroreg.base import BaseRegularization

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError:  # the older standalone distribution
    try:
        from pytorch_lightning import Callback, LightningModule, Trainer
    except ImportError as error:
        raise ImportError(
            "neuroreg.integrations.lightning needs PyTorch Lightning: pip install 'neuroreg[lightning]'"
        ) from error

__all__ = ["RegularizationCallback"]


class RegularizationCallback(Callback):
    """Apply a regularization (or a :class:`~neuroreg.RegularizationList`) inside ``Trainer.fit``.

    Joint mode: in ``on_before_optimizer_step`` — once per optimizer step, after gradient accumulation, after
    AMP has unscaled the gradients, and inside the closure of closure optimizers such as LBFGS — it adds
    ``Lambda * ∂penalty/∂p`` to the gradients (the update of minimizing ``task_loss + penalty``) and advances
    the Lambda schedule. Separate mode (the regularization was given an optimizer): after each step of the
    trainer's optimizers, the regularization takes its own optimizer step (attached to them with
    :meth:`~neuroreg.BaseRegularization.attach` for the fit, removed at its end), and the schedule advances.
    Validation never touches it.
    Each penalty is logged with ``pl_module.log`` under ``f"{prefix}{name}"``, and the regularization's
    state (Lambda, schedule position, references) is saved in Lightning checkpoints.

    Args:
        regularization: The regularization to apply. Do not also add ``regularization()`` to the loss.
        log: Log each penalty's weighted value every step.
        prog_bar: Also show them in the progress bar.
        prefix: Prefix of the logged names.

    Example:
        >>> import torch, neuroreg as nr
        >>> model = torch.nn.Linear(4, 1)
        >>> callback = RegularizationCallback(nr.L1(model, Lambda=1e-3, name="l1"))
        >>> callback.state_key
        'RegularizationCallback[l1]'
    """

    def __init__(
        self, regularization: BaseRegularization, *, log: bool = True, prog_bar: bool = False, prefix: str = "reg/"
    ) -> None:
        if not isinstance(regularization, BaseRegularization):
            raise TypeError(f"regularization must be a neuroreg regularization, got {regularization!r}")
        log, prog_bar = check_bool("log", log), check_bool("prog_bar", prog_bar)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {prefix!r}")
        self.regularization = regularization
        self.log = log
        self.prog_bar = prog_bar
        self.prefix = prefix

    @property
    def state_key(self) -> str:
        return f"{type(self).__name__}[{self.regularization.name}]"

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # The references must live where the model's parameters are put.
        self.regularization.to(pl_module.device)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.regularization.mode == "separate" or self._steps_itself:
            self._attachments = [self.regularization.attach(optimizer) for optimizer in trainer.optimizers]
        else:   # activity penalties join the task's backward: they must know before the first forward
            self.regularization._start_joint(id(self), lambda: 1.0)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for attachment in getattr(self, "_attachments", []):
            attachment.remove()
        self._attachments = []
        self.regularization._stop_joint(id(self))

    @property
    def _steps_itself(self) -> bool:
        """Whether a penalty acts by its own step updates (``update="proximal"`` or ``"decoupled"``): then the
        regularization is attached to the fit's optimizers, whose step runs them (and the gradients of the
        others, and the schedule) in place of ``on_before_optimizer_step``."""
        return any(getattr(module, "update", "gradient") != "gradient" for module in self.regularization.modules())

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        regularization = self.regularization
        if self._steps_itself:
            self._log(pl_module)
        elif regularization.mode == "joint":
            regularization.accumulate_grad(with_value=self.log)
            regularization.step()
            self._log(pl_module)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any) -> None:
        if self.regularization.mode == "separate":
            self._log(pl_module)

    def _log(self, pl_module: LightningModule) -> None:
        if self.log:
            for name, value in self.regularization.last_tensors().items():
                pl_module.log(f"{self.prefix}{name}", value, on_step=True, on_epoch=False, prog_bar=self.prog_bar)

    def state_dict(self) -> Dict[str, Any]:
        return self.regularization._plain_state_dict()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.regularization.load_state_dict(state_dict)
