"""Keep every neuron's firing rate in a band while the task is learned: a rate RNN with and without
``FiringRateRange``.

The network's sigmoid units start with widely spread biases, so that trained on the task alone many stay
silent or saturated. ``nr.FiringRateRange(model, include="act", low=..., high=...)`` records the sigmoid's
output at every time step from the model's own forward, and, attached to the optimizer (joint mode), adds
its gradient during the task's backward: the training loop is the same in both runs. It prints both rate
distributions and saves a PNG of the two histograms with the band marked::

    python examples/firing_rates.py [--out firing_rates.png] [--steps 150]
"""

from __future__ import annotations

import argparse
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

import neuroreg as nr

LOW, HIGH = 0.05, 0.5


def make_batch(generator: torch.Generator, n: int = 32, time_steps: int = 30) -> Tuple[Tensor, Tensor]:
    """Two noisy input streams; the target is a leaky integral of their difference."""
    x = torch.randn(n, time_steps, 2, generator=generator)
    y, trace = torch.zeros(n, time_steps, 1), torch.zeros(n, 1)
    for t in range(time_steps):
        trace = 0.9 * trace + 0.3 * (x[:, t, :1] - x[:, t, 1:])
        y[:, t] = trace
    return x, y


class RateRNN(nn.Module):
    """``h_t = sigmoid(W_in x_t + W_rec h_{t-1} + b)``; the sigmoid module ``act`` is called once per step."""

    def __init__(self, hidden: int = 48) -> None:
        super().__init__()
        self.inp = nn.Linear(2, hidden)
        self.rec = nn.Linear(hidden, hidden, bias=False)
        self.act = nn.Sigmoid()
        self.out = nn.Linear(hidden, 1)
        with torch.no_grad():
            self.inp.bias.normal_(0.0, 4.0)   # widely spread: many units start silent or saturated
            self.rec.weight.normal_(0.0, hidden**-0.5)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        h = x.new_zeros(x.shape[0], self.rec.in_features)
        rates = []
        for t in range(x.shape[1]):
            h = self.act(self.inp(x[:, t]) + self.rec(h))
            rates.append(h)
        rates = torch.stack(rates, 1)
        return self.out(rates), rates


def train(with_band: bool, steps: int) -> Dict[str, object]:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = RateRNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    if with_band:
        nr.FiringRateRange(model, Lambda=3.0, include="act", low=LOW, high=HIGH).attach(optimizer)
    for _ in range(steps):
        x, y = make_batch(generator)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x)[0], y).backward()   # the same loop with and without the band
        optimizer.step()
    with torch.no_grad():
        x, y = make_batch(generator, n=256)
        pred, rates = model(x)
    return {"mse": float(nn.functional.mse_loss(pred, y)), "variance": float(y.var()), "rates": rates.mean((0, 1))}


def summary(label: str, result: Dict[str, object]) -> str:
    rates: Tensor = result["rates"]
    below, above = int((rates < LOW).sum()), int((rates > HIGH).sum())
    silent, saturated = int((rates < 0.02).sum()), int((rates > 0.98).sum())
    quantiles = " ".join(f"{float(q):.3f}" for q in torch.quantile(rates, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])))
    return (
        f"{label:24s} task MSE {result['mse']:.4f} (target variance {result['variance']:.3f}) | "
        f"in band: {rates.numel() - below - above}/{rates.numel()}, below {below}, above {above} "
        f"(silent < 0.02: {silent}, saturated > 0.98: {saturated}) | rate quantiles 0/25/50/75/100 %: {quantiles}"
    )


def plot(results: List[Tuple[str, Dict[str, object]]], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    bins = torch.linspace(0, 1, 41).tolist()
    for axis, (label, result) in zip(axes, results):
        axis.hist(result["rates"].tolist(), bins=bins, color="tab:blue")
        axis.axvspan(LOW, HIGH, color="tab:green", alpha=0.2, label=f"band [{LOW}, {HIGH}]")
        axis.set_title(f"{label} (task MSE {result['mse']:.3f})")
        axis.set_xlabel("firing rate (mean over batch and time)")
    axes[0].set_ylabel("neurons")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main(argv: Optional[List[str]] = None) -> List[Tuple[str, Dict[str, object]]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="firing_rates.png", help="where to save the histograms (needs matplotlib)")
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args(argv)
    results = [("task only", train(False, args.steps)), ("task + FiringRateRange", train(True, args.steps))]
    for label, result in results:
        print(summary(label, result))
    try:
        plot(results, args.out)
        print(f"saved {args.out}")
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[examples]'): no figure")
    return results


if __name__ == "__main__":
    main()
