"""Dale's law in a small recurrent network, learned with neuroreg's connectome penalties.

A leaky rate network integrates a 2-D input stream (it must output the running sum). Its recurrent weight
starts with mixed signs; two regularizations act on it in joint mode (``accumulate_grad``: their gradient
joins the task's before each optimizer step):

- ``DaleSignPenalty`` (default) or ``DaleLaw`` (``--dale linear``): every neuron should be excitatory or
  inhibitory in all its outgoing connections, with the reference signs drawn by ``neuroreg.init.dale_``
  (20% inhibitory neurons). Entry (i, j) is the connection from neuron i to neuron j, so a neuron's
  outgoing weights are a row and the network computes ``h @ W``.
- ``ExcRatioTargetRegularization``: the share of excitatory (positive) connections should be 80%.

Each epoch prints the task loss, each penalty, the (soft) excitatory ratio and the fraction of weights that
obey their reference sign (a zero weight obeys); at the end a PNG with those curves and the final weight
matrix is saved. ``--dale linear`` shows why the bounded penalty exists: DaleLaw is linear in the weights,
so it keeps growing the weights after every sign is right.

``--constraint`` trains a second network beside the penalized one, from the same start, with Dale's law as
a hard constraint (``neuroreg.constraints.dale_``: the recurrent weight is ``|W_raw| * S`` with the same
reference signs ``S``): its fraction of right signs is exactly 1.0 after every optimizer step, from the
first, and the PNG shows both networks.

Needs the ``examples`` extra (``pip install -e ".[examples]"``: matplotlib, tqdm). Runs in seconds on a CPU:
``python examples/dale_rnn.py [--epochs 40] [--dale sign|linear] [--constraint] [--out path.png]``.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

import neuroreg as nr

INH_RATIO = 0.2


class LeakyRNN(nn.Module):
    """``h <- (1 - leak) h + leak tanh(W_in x + h W_rec)``, read out linearly at every step."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, leak: float = 0.3) -> None:
        super().__init__()
        self.input = nn.Linear(n_in, n_hidden)
        # Mixed signs at the start: Dale's law is what the penalty has to teach.
        self.recurrent = nn.Parameter(torch.randn(n_hidden, n_hidden) / math.sqrt(n_hidden))
        self.readout = nn.Linear(n_hidden, n_out)
        self.leak = leak

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Read once: under a hard constraint the weight is computed from the raw one at every read.
        recurrent = self.recurrent
        h = x.new_zeros(x.shape[0], recurrent.shape[0])
        outputs = []
        for t in range(x.shape[1]):
            h = (1 - self.leak) * h + self.leak * torch.tanh(self.input(x[:, t]) + h @ recurrent)
            outputs.append(self.readout(h))
        return torch.stack(outputs, dim=1)


def make_batches(n_batches: int, seed: int, batch_size: int = 32, steps: int = 20) -> list:
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_batches):
        x = 0.3 * torch.randn(batch_size, steps, 2, generator=generator)
        batches.append((x, x.cumsum(dim=1)))
    return batches


def obeying_fraction(weight: torch.Tensor, signs: torch.Tensor) -> float:
    """Fraction of weights with their reference sign (a zero weight obeys: it is no connection)."""
    return float((weight.detach() * signs >= 0).float().mean())


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One Adam step on the task loss alone; returns the loss."""
    optimizer.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def plot(history: Dict[str, List[float]], weight: torch.Tensor, names: Dict[str, str], out: Path) -> None:
    """Task loss, penalties, E/I structure (and the constrained network's, if trained) and the final weight."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = range(1, len(history["task_loss"]) + 1)
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    axes[0, 0].semilogy(epochs, history["task_loss"], label="penalties")
    if "constrained_task_loss" in history:
        axes[0, 0].semilogy(epochs, history["constrained_task_loss"], label="hard constraint")
        axes[0, 0].legend()
    axes[0, 0].set(title="task loss (MSE)", xlabel="epoch")
    for key, label in names.items():
        axes[0, 1].plot(epochs, history[key], label=label)
    axes[0, 1].set(title="penalties (unweighted)", xlabel="epoch")
    axes[0, 1].set_yscale("symlog", linthresh=1e-3)
    axes[0, 1].legend()
    axes[1, 0].plot(epochs, history["exc_ratio"], label="soft excitatory ratio")
    axes[1, 0].plot(epochs, history["sign_match"], label="fraction obeying the reference sign")
    if "constrained_sign_match" in history:
        axes[1, 0].plot(epochs, history["constrained_sign_match"], linestyle="--",
                        label="same, hard constraint (lowest of each epoch)")
    axes[1, 0].axhline(1 - INH_RATIO, color="grey", linestyle=":", label="excitatory target")
    axes[1, 0].set(title="E/I structure", xlabel="epoch", ylim=(0, 1.05))
    axes[1, 0].legend(loc="lower right", fontsize="small")
    w = weight.detach().cpu().numpy()
    limit = float(abs(w).max())
    image = axes[1, 1].imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[1, 1].axhline(int(w.shape[0] * INH_RATIO) - 0.5, color="black", linewidth=0.8)
    axes[1, 1].set(title="final W_rec (inhibitory rows above the line)", xlabel="to neuron j",
                   ylabel="from neuron i")
    fig.colorbar(image, ax=axes[1, 1])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> Dict[str, List[float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batches", type=int, default=8, help="training batches per epoch")
    parser.add_argument("--hidden", type=int, default=64, help="number of recurrent neurons")
    parser.add_argument("--dale", choices=["sign", "linear"], default="sign",
                        help="DaleSignPenalty (bounded) or DaleLaw (NeuroTorch's, linear in the weights)")
    parser.add_argument("--constraint", action="store_true",
                        help="also train the network with Dale's law as a hard constraint (constraints.dale_)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".png"), help="where to save the PNG")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    args = parser.parse_args(argv)
    from tqdm.auto import tqdm

    torch.manual_seed(args.seed)
    model = LeakyRNN(2, args.hidden, 2)
    dale_kwargs = {"inh_ratio": INH_RATIO, "rho": 1.0, "seed": args.seed}
    constrained = None
    if args.constraint:
        # The same start, then W = |W_raw| * S with the penalty's reference signs (same draw, same seed):
        # no penalty is needed for the signs, they cannot leave S.
        constrained = nr.constraints.dale_(copy.deepcopy(model), "recurrent", **dale_kwargs)
        constrained_optimizer = torch.optim.Adam(constrained.parameters(), lr=5e-3)
    if args.dale == "sign":
        dale = nr.DaleSignPenalty([model.recurrent], Lambda=2.0, p=1, name="dale_sign", **dale_kwargs)
    else:
        dale = nr.DaleLaw([model.recurrent], Lambda=0.02, name="dale_law", **dale_kwargs)
    # A sharpened soft sign: the soft excitatory ratio then tracks the share of positive weights.
    ratio = nr.ExcRatioTargetRegularization([model.recurrent], exc_target_ratio=1 - INH_RATIO, Lambda=0.5,
                                            sign_func=lambda w: nn.functional.softsign(w / 0.02), name="exc_target")
    regs = nr.RegularizationList([dale, ratio])
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    signs = dale.reference_signs[0]
    batches = make_batches(args.batches, seed=args.seed + 1)

    keys = ["task_loss", dale.name, ratio.name, "exc_ratio", "sign_match"]
    if constrained is not None:
        keys += ["constrained_task_loss", "constrained_sign_match"]
    history: Dict[str, List[float]] = {key: [] for key in keys}
    start = time.perf_counter()
    epochs = tqdm(range(1, args.epochs + 1), unit="epoch", disable=args.quiet)
    for epoch in epochs:
        losses: List[float] = []
        constrained_losses: List[float] = []
        constrained_match = 1.0
        for x, y in batches:
            optimizer.zero_grad()
            task_loss = nn.functional.mse_loss(model(x), y)
            task_loss.backward()
            regs.accumulate_grad()  # joint mode: exactly the update of task_loss + penalties
            optimizer.step()
            regs.step()
            losses.append(task_loss.item())
            if constrained is not None:
                constrained_losses.append(train_step(constrained, constrained_optimizer, x, y))
                constrained_match = min(constrained_match, obeying_fraction(constrained.recurrent, signs))
        penalties = regs.last_values("raw")
        row = {
            "task_loss": sum(losses) / len(losses),
            dale.name: penalties[dale.name],
            ratio.name: penalties[ratio.name],
            "exc_ratio": ratio.get_params_exc_ratio()[0],
            "sign_match": obeying_fraction(model.recurrent, signs),
        }
        if constrained is not None:
            row["constrained_task_loss"] = sum(constrained_losses) / len(constrained_losses)
            row["constrained_sign_match"] = constrained_match
        for key, value in row.items():
            history[key].append(value)
        epochs.set_postfix({key: f"{value:.3g}" for key, value in row.items()})
        if not args.quiet:
            epochs.write(f"epoch {epoch:3d}  " + "  ".join(f"{key} {value:.4g}" for key, value in row.items()))

    plot(history, model.recurrent, {dale.name: type(dale).__name__, ratio.name: "ExcRatioTarget"}, args.out)
    if not args.quiet:
        print(f"trained in {time.perf_counter() - start:.1f} s; figure saved to {args.out}")
    return history


if __name__ == "__main__":
    main()
