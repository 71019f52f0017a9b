"""neuroreg regularizations passed straight to NeuroTorch's ``Trainer``, in joint mode, with a Lambda schedule.

NeuroTorch's learning algorithm does ``zero_grad``, ``backward`` and ``step`` inside a single hook, so with
NeuroTorch's own regularizations a penalty without an optimizer never reaches the weights. neuroreg's attach
themselves to the learning algorithm's optimizer when training starts and add their gradient inside every
``optimizer.step()`` (joint mode): the update is exactly that of minimizing ``task_loss + penalty``, whichever
hook the learning algorithm steps in. This script trains a small recurrent network twice, with and without
the regularization, and prints how the weights differ.

It uses NeuroTorch's ``Trainer`` and ``BPTT`` when NeuroTorch imports, else
``neuroreg.testing.ProtocolTrainer``, which calls the callbacks in the same order with the same priorities.
Run: ``python examples/neurotorch_style.py`` (seconds on a CPU).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

import neuroreg as nr
from neuroreg.testing import BPTT, ProtocolTrainer


class TinyRNN(nn.Module):
    """Integrates a 2-D input stream and reads out its running sum (a toy working-memory task)."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.rnn = nn.RNN(2, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.rnn(x)[0])


def batches(n: int, seed: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(n):
        x = 0.3 * torch.randn(32, 20, 2, generator=generator)
        data.append((x, x.cumsum(dim=1)))
    return data


def regularization(model: nn.Module) -> nr.RegularizationList:
    return nr.RegularizationList([
        # Sparsity of the recurrent weights, warmed up over the first 40 optimizer steps.
        nr.L1(model, Lambda=nr.schedules.LinearWarmup(2e-3, warmup_steps=40), include="rnn.weight_hh*",
              name="sparsity"),
        nr.L2(model, Lambda=1e-4, squared=True, exclude="*bias*", name="decay"),
    ])


def train(attach_regularization: bool, verbose: bool = True) -> Tuple[nn.Module, str]:
    """Train the network, returning it and the name of the trainer used."""
    torch.manual_seed(0)
    model = TinyRNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    regs = [regularization(model)] if attach_regularization else []
    try:
        import neurotorch as nt
    except ImportError:
        trainer = ProtocolTrainer(model, [*regs, BPTT(optimizer)], verbose=verbose and attach_regularization)
        trainer.train(batches(10, seed=1), val_batches=batches(2, seed=2), n_iterations=12)
        return model, "neuroreg.testing.ProtocolTrainer"
    x, y = (torch.cat(tensors) for tensors in zip(*batches(10, seed=1)))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    callbacks = [*regs, nt.BPTT(optimizer=optimizer, criterion=nn.MSELoss())]
    nt.trainers.Trainer(model, callbacks=callbacks, device=torch.device("cpu"),
                        verbose=verbose and attach_regularization).train(loader, n_iterations=12)
    return model, "neurotorch.trainers.Trainer"


def main() -> dict:
    (regularized, trainer), (plain, _) = train(True), train(False)
    print(f"trained with {trainer}")
    sums = {}
    for name in ("weight_hh_l0", "weight_ih_l0"):
        with_reg = getattr(regularized.rnn, name).detach().abs().sum().item()
        without = getattr(plain.rnn, name).detach().abs().sum().item()
        sums[name] = (with_reg, without)
        print(f"sum |rnn.{name}|: {with_reg:8.3f} with the regularization, {without:8.3f} without")
    return {"trainer": trainer, "abs_sums": sums}


if __name__ == "__main__":
    main()
