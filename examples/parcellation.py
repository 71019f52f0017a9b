"""Learn a soft parcellation of synthetic brain data, with and without an equilibrium term.

Voxel time series are drawn from six regions of very different sizes (40 % of the voxels down to 4 %). A soft
parcellation — a softmax over parcels of learned logits — is fitted by soft k-means: each voxel should be
close to the mean time series of the parcels it belongs to. That alone recovers the unequal regions. Adding
``nr.EquilibriumLogitLoss`` on the logits (hypercoil's equilibrium: each parcel's mass against the mean
mass) trades some fit for parcels of equal size, which is what an atlas with comparable parcels needs.

The script trains both, prints the parcel sizes, and saves a bar chart of the sizes at initialisation and
after each training run (``--out``, default ``examples/parcellation.png``; needs matplotlib, the
``examples`` extra). Run: ``python examples/parcellation.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, Optional

import torch
from torch import nn

import neuroreg as nr

REGION_FRACTIONS = (0.40, 0.25, 0.15, 0.10, 0.06, 0.04)
DEFAULT_OUT = Path(__file__).with_name("parcellation.png")


def synthetic_data(voxels: int = 500, timepoints: int = 120, noise: float = 1.0, seed: int = 0) -> torch.Tensor:
    """``(voxels, timepoints)`` z-scored series: each voxel is its region's source plus white noise."""
    generator = torch.Generator().manual_seed(seed)
    counts = [round(fraction * voxels) for fraction in REGION_FRACTIONS]
    counts[0] += voxels - sum(counts)
    sources = torch.randn(len(counts), timepoints, generator=generator)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    X = sources[labels] + noise * torch.randn(voxels, timepoints, generator=generator)
    return (X - X.mean(1, keepdim=True)) / X.std(1, keepdim=True)


def soft_kmeans_loss(logits: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Mean over voxels of the membership-weighted squared distance to each parcel's mean series."""
    P = logits.softmax(dim=0)  # (parcels, voxels): each voxel's memberships sum to 1
    centroids = (P @ X) / P.sum(1, keepdim=True)
    distances = torch.cdist(X, centroids).square().T / X.shape[1]  # (parcels, voxels)
    return (P * distances).sum(0).mean()


def parcel_sizes(logits: torch.Tensor) -> torch.Tensor:
    """The fraction of the voxels' mass in each parcel."""
    return logits.detach().softmax(dim=0).mean(1)


def fit(
    X: torch.Tensor, initial: torch.Tensor, equilibrium_weight: float, steps: int = 300, verbose: bool = True
) -> torch.Tensor:
    logits = nn.Parameter(initial.clone())
    # Called with no argument, the loss acts on the logits it holds (prob_axis=-2 is the parcel axis).
    equilibrium = nr.EquilibriumLogitLoss(logits, Lambda=equilibrium_weight, name="equilibrium")
    optimizer = torch.optim.Adam([logits], lr=0.1)
    for step in range(steps + 1):
        optimizer.zero_grad()
        task = soft_kmeans_loss(logits, X)
        (task + equilibrium()).backward()
        if verbose and step % 100 == 0:
            raw = equilibrium.last_values("raw")["equilibrium"]
            spread = parcel_sizes(logits)
            crispness = logits.detach().softmax(dim=0).amax(0).mean()
            print(
                f"  step {step:3d}  task {task.item():.4f}  equilibrium {raw:.4f}  "
                f"sizes {spread.min().item():.3f}..{spread.max().item():.3f}  "
                f"mean top membership {crispness.item():.2f}"
            )
        optimizer.step()
    return logits.detach()


def plot(sizes: Dict[str, torch.Tensor], out: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[examples]'): no figure saved")
        return None
    figure, axis = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(sizes)
    for index, (label, values) in enumerate(sizes.items()):
        ordered = values.sort(descending=True).values
        positions = torch.arange(len(ordered)) + (index - (len(sizes) - 1) / 2) * width
        axis.bar(positions.numpy(), ordered.numpy(), width=width, label=label)
    axis.axhline(1 / len(REGION_FRACTIONS), color="black", linestyle=":", linewidth=1, label="equal size")
    axis.set_xlabel("parcel (largest first)")
    axis.set_ylabel("fraction of voxels")
    axis.set_title("Soft parcellation: parcel sizes")
    axis.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def main(out: Path = DEFAULT_OUT, steps: int = 300, verbose: bool = True) -> Dict:
    torch.manual_seed(0)
    X = synthetic_data()
    initial = 0.01 * torch.randn(len(REGION_FRACTIONS), X.shape[0])
    sizes = {"initial": parcel_sizes(initial)}
    for label, weight in (("task only", 0.0), ("task + equilibrium", 2.0)):
        if verbose:
            print(f"{label} (Lambda = {weight:g})")
        sizes[label] = parcel_sizes(fit(X, initial, weight, steps=steps, verbose=verbose))
    if verbose:
        for label, values in sizes.items():
            print(f"{label:>20}: " + " ".join(f"{v:.3f}" for v in values.sort(descending=True).values.tolist()))
    saved = plot(sizes, out)
    if saved is not None and verbose:
        print(f"saved {saved}")
    return {"sizes": sizes, "figure": saved}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--steps", type=int, default=300)
    arguments = parser.parse_args()
    main(arguments.out, arguments.steps)
