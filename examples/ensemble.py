"""Sixteen seeds of a small E/I rate RNN trained at once, with Dale's law as a penalty, under torch.func.

``torch.func.stack_module_state`` stacks the parameters of 16 independently initialised networks; one
``vmap(grad(loss))`` call gives every network its gradient, with the penalty taken by name from the stacked
parameters (``reg.penalty_of(params)``: the regularization is built once, on one of the networks, and never
holds the stacked tensors). Prints each seed's final task loss and the fraction of recurrent weights with
their reference sign, and saves a PNG of the 16 loss curves.

Run: ``python examples/ensemble.py [--out ensemble.png]`` (seconds on a 2-core CPU).
"""

from __future__ import annotations

import argparse
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

import neuroreg as nr


class RateRNN(nn.Module):
    """``h <- h + dt/tau (-h + relu(h W_rec + x W_in + b))`` (row i of ``W_rec`` is neuron i's outgoing
    weights, NeuroTorch's convention), read out linearly."""

    def __init__(self, hidden: int = 32, dt_over_tau: float = 0.2) -> None:
        super().__init__()
        self.w_in = nn.Linear(2, hidden)
        self.w_rec = nn.Parameter(torch.randn(hidden, hidden) / hidden**0.5)
        self.readout = nn.Linear(hidden, 1)
        self.alpha = dt_over_tau

    def forward(self, x: Tensor) -> Tensor:
        h = x.new_zeros(x.shape[0], self.w_rec.shape[0])
        outputs = []
        for t in range(x.shape[1]):
            h = h + self.alpha * (-h + torch.relu(h @ self.w_rec + self.w_in(x[:, t])))
            outputs.append(self.readout(h))
        return torch.stack(outputs, 1)


def task(batch: int, time: int, generator: torch.Generator) -> tuple:
    """Report the running difference of two input streams (a toy evidence-accumulation task)."""
    x = 0.5 * torch.randn(batch, time, 2, generator=generator)
    return x, (x[..., :1] - x[..., 1:]).cumsum(1) / time**0.5


def main(argv: Optional[List[str]] = None) -> Dict[str, Tensor]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", default="ensemble.png")
    args = parser.parse_args(argv)

    models = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        models.append(RateRNN())
    template = models[0]
    # One reference sign matrix (80 % excitatory rows) for every network; a buffer of the regularization.
    dale = nr.DaleLawL2(template, alpha=0.9, Lambda=1.0, include="w_rec", inh_ratio=0.2, rho=1.0, seed=0)
    params, _ = stack_module_state(models)   # the networks have no buffers
    base = {name: p.detach() for name, p in template.named_parameters()}

    def loss(p: Dict[str, Tensor], x: Tensor, y: Tensor) -> tuple:
        task_loss = nn.functional.mse_loss(functional_call(template, {**base, **p}, (x,)), y)
        return task_loss + dale.penalty_of(p), task_loss   # the penalty may be negative: plot the task loss

    step = vmap(grad_and_value(loss, has_aux=True), in_dims=(0, None, None))
    generator = torch.Generator().manual_seed(123)
    curves = []
    for _ in range(args.steps):
        x, y = task(32, 20, generator)
        grads, (_, task_losses) = step(params, x, y)
        params = {name: (p - 0.05 * grads[name]).detach() for name, p in params.items()}
        curves.append(task_losses.detach())
    curves = torch.stack(curves)   # (steps, seeds): the task loss of each training batch

    x, y = task(256, 20, generator)
    with torch.no_grad():
        task_loss = vmap(lambda p: nn.functional.mse_loss(functional_call(template, {**base, **p}, (x,)), y))(params)
    signs = dale.reference_signs[0]
    agreement = (torch.sign(params["w_rec"]) == signs).float().mean(dim=(1, 2))
    for seed in range(args.seeds):
        print(f"seed {seed:2d}: task loss {float(task_loss[seed]):.4f}, right signs {float(agreement[seed]):.3f}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure")
    else:
        figure, axis = plt.subplots(figsize=(6, 4))
        axis.plot(curves.numpy(), color="tab:blue", alpha=0.5)
        axis.set(xlabel="step", ylabel="task loss (training batch)", yscale="log",
                 title=f"{args.seeds} seeds trained at once (vmap)")
        figure.tight_layout()
        figure.savefig(args.out, dpi=100)
        print(f"saved {args.out}")
    return {"curves": curves, "task_loss": task_loss, "agreement": agreement,
            "initial_agreement": (torch.sign(torch.stack([m.w_rec.detach() for m in models])) == signs)
            .float().mean(dim=(1, 2))}


if __name__ == "__main__":
    main()
