"""Helpers shared by the multi-tensor (``torch._foreach_*``) penalties."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from neuroreg._validation import check_floating_tensor

__all__ = ["as_tensor_list", "group_by_device_and_dtype", "sum_scalars"]


def as_tensor_list(name: str, tensors: Tensor | Iterable[Tensor]) -> List[Tensor]:
    """Accept one tensor or an iterable of tensors; refuse anything else with a ``TypeError``."""
    if isinstance(tensors, Tensor):
        return [tensors]
    if isinstance(tensors, (str, bytes)) or not isinstance(tensors, Iterable):
        raise TypeError(f"{name} must be a tensor or a sequence of tensors, got {tensors!r}")
    return [check_floating_tensor(f"{name}[{index}]", tensor) for index, tensor in enumerate(tensors)]


def group_by_device_and_dtype(tensors: Sequence[Tensor]) -> List[List[int]]:
    """Indices of ``tensors`` grouped by (device, dtype), so that each group can take foreach fast paths."""
    groups: Dict[Tuple[torch.device, torch.dtype], List[int]] = defaultdict(list)
    for index, tensor in enumerate(tensors):
        groups[(tensor.device, tensor.dtype)].append(index)
    return list(groups.values())


def sum_scalars(values: Sequence[Tensor]) -> Tensor:
    """Sum 0-d tensors with one stack and one reduction (no host sync, no Python-level accumulation)."""
    device = values[0].device
    return torch.stack([value.to(device) for value in values]).sum()
