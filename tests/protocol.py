"""Shared test data: small seeded models and batches."""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

Batch = Tuple[Tensor, Tensor]


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
