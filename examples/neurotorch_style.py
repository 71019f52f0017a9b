"""A regularization as a NeuroTorch callback, in joint mode, with a Lambda schedule and a progress bar.

NeuroTorch's learning algorithm does ``zero_grad``, ``backward`` and ``step`` inside a single hook, so with
NeuroTorch's own regularizations a penalty without an optimizer never reaches the weights. neuroreg's add
their gradient to the task gradient during that backward pass (joint mode): the update is exactly that of
minimizing ``task_loss + penalty``. This script trains a small recurrent network twice, with and without the
regularization attached, and prints how the weights differ.

It uses NeuroTorch's ``Trainer`` and ``BPTT`` when NeuroTorch is installed, else
``neuroreg.testing.ProtocolTrainer``, which calls the callbacks in the same order with the same priorities.
Run: ``python examples/neurotorch_style.py`` (seconds on a CPU).
"""

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


def batches(n: int, seed: int) -> list:
    generator = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(n):
        x = 0.3 * torch.randn(32, 20, 2, generator=generator)
        data.append((x, x.cumsum(dim=1)))
    return data


def train(attach_regularization: bool) -> nn.Module:
    torch.manual_seed(0)
    model = TinyRNN()
    callbacks = [BPTT(torch.optim.SGD(model.parameters(), lr=0.05))]
    if attach_regularization:
        callbacks.append(nr.RegularizationList([
            # Sparsity of the recurrent weights, warmed up over the first 40 optimizer steps.
            nr.L1(model, Lambda=nr.schedules.LinearWarmup(2e-3, warmup_steps=40), include="rnn.weight_hh*",
                  name="sparsity"),
            nr.L2(model, Lambda=1e-4, squared=True, exclude="*bias*", name="decay"),
        ]))
    try:
        import neurotorch as nt
    except ImportError:
        trainer = ProtocolTrainer(model, callbacks, verbose=attach_regularization)
        trainer.train(batches(10, seed=1), val_batches=batches(2, seed=2), n_iterations=12)
    else:
        data = batches(10, seed=1)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.cat([x for x, _ in data]), torch.cat([y for _, y in data])),
            batch_size=32,
        )
        callbacks[0] = nt.BPTT(optimizer=callbacks[0].optimizer, criterion=nn.MSELoss())
        nt.trainers.Trainer(model, callbacks=callbacks, verbose=attach_regularization).train(loader, n_iterations=12)
    return model


regularized, plain = train(True), train(False)
for name in ("weight_hh_l0", "weight_ih_l0"):
    with_reg = getattr(regularized.rnn, name).detach().abs().sum().item()
    without = getattr(plain.rnn, name).detach().abs().sum().item()
    print(f"sum |rnn.{name}|: {with_reg:8.3f} with the callback, {without:8.3f} without")
