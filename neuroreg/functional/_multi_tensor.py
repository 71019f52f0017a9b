"""Helpers shared by the multi-tensor (``torch._foreach_*``) penalties."""

from __future__ import annotations

import contextlib
import sys
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from neuroreg._validation import check_floating_tensor, check_grad_layouts
from neuroreg.functional._common import wide_dtype

__all__ = [
    "SMALL_NUMEL",
    "add_combination_",
    "add_grad_widened_",
    "add_sign_",
    "as_tensor_list",
    "foreach_mul",
    "foreach_norm",
    "foreach_ok",
    "foreach_sub",
    "full",
    "grads_laid_out_like",
    "group_by_device_and_dtype",
    "is_dtensor",
    "is_small",
    "nonempty",
    "scaled_grads",
    "sparse_grads_as_dense",
    "sum_scalars",
    "unwrapped",
]


def as_tensor_list(name: str, tensors: Tensor | Iterable[Tensor]) -> List[Tensor]:
    """Accept one tensor or an iterable of tensors; refuse anything else with a ``TypeError``."""
    if isinstance(tensors, Tensor):
        return [tensors]
    if isinstance(tensors, (str, bytes)) or not isinstance(tensors, Iterable):
        raise TypeError(f"{name} must be a tensor or a sequence of tensors, got {tensors!r}")
    return [check_floating_tensor(f"{name}[{index}]", tensor) for index, tensor in enumerate(tensors)]


def group_by_device_and_dtype(tensors: Sequence[Tensor]) -> List[List[int]]:
    """Indices of ``tensors`` grouped by (device, dtype), so that each group can take foreach fast paths."""
    if len(tensors) == 1:
        return [[0]]
    groups: Dict[Tuple[torch.device, torch.dtype], List[int]] = defaultdict(list)
    for index, tensor in enumerate(tensors):
        groups[(tensor.device, tensor.dtype)].append(index)
    return list(groups.values())


def sum_scalars(values: Sequence[Tensor]) -> Tensor:
    """Sum 0-d tensors with one stack and one reduction (no host sync, no Python-level accumulation)."""
    values = [full(value) for value in values]   # a DTensor's global value: sums of shards are not plain sums
    if len(values) == 1:
        return values[0]
    device = values[0].device
    return torch.stack([value.to(device) for value in values]).sum()


def is_dtensor(tensor: Tensor) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor`` (an FSDP2 parameter), without importing
    torch.distributed.tensor: where it was never imported, no tensor can be one."""
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(tensor, module.DTensor)


def full(tensor: Tensor) -> Tensor:
    """A DTensor's global value as a plain tensor (differentiable: its backward shards the gradient), or
    ``tensor`` itself."""
    return tensor.full_tensor() if is_dtensor(tensor) else tensor


class _GradLaidOutLikeInput(torch.autograd.Function):
    """Identity whose backward gives the gradient its input's DTensor placements: a penalty's gradient may
    come back replicated (e.g. through an uneven shard), which FSDP2 cannot add to the sharded gradient."""

    @staticmethod
    def forward(tensor: Tensor) -> Tensor:
        return tensor.view_as(tensor)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        ctx.mesh, ctx.placements = inputs[0].device_mesh, inputs[0].placements

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad.redistribute(ctx.mesh, ctx.placements) if is_dtensor(grad) else grad


def grads_laid_out_like(tensors: Sequence[Tensor]) -> List[Tensor]:
    """``tensors``, each DTensor that requires grad passed through an identity whose backward lays its
    gradient out like the DTensor itself (see ``_GradLaidOutLikeInput``)."""
    return [_GradLaidOutLikeInput.apply(t) if is_dtensor(t) and t.requires_grad else t for t in tensors]


def unwrapped(tensor: Tensor) -> Tensor:
    """The plain tensor under torch.func's wrappers (all the copies of a vmapped tensor at once): a check on
    values (``bool(...)``) cannot branch on a wrapped tensor, but can on what it wraps."""
    if torch.compiler.is_compiling():
        return tensor   # Dynamo cannot trace is_functorch_wrapped_tensor, and traces transforms on plain tensors
    while torch._C._functorch.is_functorch_wrapped_tensor(tensor):
        tensor = torch._C._functorch.get_unwrapped(tensor)
    return tensor


def foreach_ok(tensors: Sequence[Tensor]) -> bool:
    """Whether the ``torch._foreach_*`` kernels take ``tensors`` for a value: they have no batching rule under
    ``torch.func.vmap``, and a DTensor norm is a pending per-shard reduction that must be completed before
    norms are combined, so tensors wrapped by a torch.func transform and DTensors take per-tensor ops."""
    if torch.compiler.is_compiling():
        # Dynamo cannot trace is_functorch_wrapped_tensor (a graph break); it can trace whether a transform is on.
        transformed = torch._C._are_functorch_transforms_active()
        return not transformed and not any(is_dtensor(tensor) for tensor in tensors)
    is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return not any(is_wrapped(tensor) or is_dtensor(tensor) for tensor in tensors)


def foreach_norm(tensors: Sequence[Tensor], ord: float, dtype: Optional[torch.dtype] = None) -> List[Tensor]:
    """``torch._foreach_norm``, or per-tensor ``vector_norm`` where the multi-tensor kernel does not apply
    (each DTensor's norm completed across its shards: a plain 0-d tensor). One tensor takes the per-tensor
    op, which is cheaper by a list."""
    if len(tensors) > 1 and foreach_ok(tensors):
        return list(torch._foreach_norm(tensors, ord=ord, dtype=dtype))
    return [full(torch.linalg.vector_norm(tensor, ord=ord, dtype=dtype)) for tensor in tensors]


def foreach_mul(tensors: Sequence[Tensor], others: Sequence[Tensor]) -> List[Tensor]:
    """``torch._foreach_mul`` of two lists, per tensor where the multi-tensor kernel does not apply (or for one
    tensor, where it is cheaper)."""
    if len(tensors) > 1 and foreach_ok([*tensors, *others]):
        return list(torch._foreach_mul(tensors, others))
    return [tensor * other for tensor, other in zip(tensors, others)]


def foreach_sub(tensors: Sequence[Tensor], others: Sequence[Tensor]) -> List[Tensor]:
    """``torch._foreach_sub`` of two lists, per tensor where the multi-tensor kernel does not apply (or for one
    tensor, where it is cheaper)."""
    if len(tensors) > 1 and foreach_ok([*tensors, *others]):
        return list(torch._foreach_sub(tensors, others))
    return [tensor - other for tensor, other in zip(tensors, others)]


def nonempty(tensors: Sequence[Tensor]) -> List[Tensor]:
    """The tensors with at least one element: a zero-element tensor contributes nothing to a penalty, and some
    multi-tensor kernels refuse it (``_foreach_norm`` with ``ord=inf`` has no identity to return)."""
    return [tensor for tensor in tensors if tensor.numel() > 0]


#: Below this many entries in all, a computation's cost is its kernel launches (a few µs each), not its
#: passes over memory: fewer kernels win over fewer passes.
SMALL_NUMEL = 1 << 17

#: Entries per chunk of a multi-kernel in-place update on CPU: each chunk's kernels run one after another on
#: data that stays in cache (4 MiB of float32 per operand, in a 32 MiB L3), so the update moves about the
#: memory of one pass. Measured on the project's 2-core CPU (benchmarks/run.py, case 11): L1's sign-and-add
#: at 2048² 1.7x the one-kernel floor chunked against 3.0x whole, at 4096² 1.3x against 6.6x.
_CPU_CHUNK = 1 << 20

#: Entries above which the operands of a temporary-free update no longer share the cache, so that chunking
#: pays for its extra launches (Dale's two adds: 1.2x the floor whole at 2048², chunked 1.3x; at 4096² whole
#: 1.4x, chunked 1.2x).
_CPU_CACHE_NUMEL = 1 << 22


def is_small(tensors: Sequence[Tensor], below: Optional[int] = None) -> bool:
    """Whether ``tensors`` hold fewer than ``below`` (default :data:`SMALL_NUMEL`) entries in all."""
    return sum(tensor.numel() for tensor in tensors) < (SMALL_NUMEL if below is None else below)


def _cache_chunks(*tensors: Tensor, above: int) -> Optional[Iterator[Tuple[Tensor, ...]]]:
    """Aligned flat chunks of :data:`_CPU_CHUNK` entries of same-shape contiguous CPU tensors of more than
    ``above`` entries, or ``None`` where chunking gains nothing or cannot apply (a smaller tensor, another device,
    a non-contiguous view, a DTensor)."""
    first = tensors[0]
    if first.device.type != "cpu" or first.numel() <= max(above, _CPU_CHUNK) or not foreach_ok(tensors):
        return None
    if not all(t.layout == torch.strided and t.is_contiguous() and t.shape == first.shape for t in tensors):
        return None
    return zip(*(t.view(-1).split(_CPU_CHUNK) for t in tensors))


def add_sign_(grads: Sequence[Tensor], tensors: Sequence[Tensor], alpha: float) -> None:
    """``grads[k] += alpha * sign(tensors[k])`` in place (0 at zero entries: autograd's subgradient of
    ``|w|``). Eager PyTorch has no one kernel for it; on CPU large tensors go through a buffer of one
    cache-sized chunk (see :data:`_CPU_CHUNK`).

    Example:
        >>> g = torch.zeros(3); add_sign_([g], [torch.tensor([-2.0, 0.0, 0.5])], 0.1); g
        tensor([-0.1000,  0.0000,  0.1000])
    """
    rest_grads, rest = [], []
    for grad, tensor in zip(grads, tensors):
        chunks = _cache_chunks(grad, tensor, above=_CPU_CHUNK)
        if chunks is None:
            rest_grads.append(grad)
            rest.append(tensor)
            continue
        buffer = torch.empty(_CPU_CHUNK, dtype=tensor.dtype)
        for grad_chunk, chunk in chunks:
            signs = torch.sign(chunk, out=buffer[: chunk.numel()])
            grad_chunk.add_(signs, alpha=alpha)
    if rest:
        _add_(rest_grads, torch._foreach_sign(rest) if foreach_ok(rest) else [t.sign() for t in rest], alpha)


def add_combination_(grads: Sequence[Tensor], terms: Sequence[Tuple[Sequence[Tensor], float]]) -> None:
    """``grads[k] += sum_i c_i * T_i[k]`` in place, for ``terms`` ``[(T_i, c_i), ...]`` (lists of tensors
    shaped like ``grads``). On CPU tensors too large to share the cache (:data:`_CPU_CACHE_NUMEL`) are updated
    chunk by chunk, each chunk of ``grads[k]`` staying in cache across the terms: about the memory of one pass
    instead of one per term.

    Example:
        >>> g = torch.zeros(2); add_combination_([g], [([torch.ones(2)], 2.0), ([torch.tensor([1.0, -1.0])], 0.5)]); g
        tensor([2.5000, 1.5000])
    """
    terms = [(list(tensors), coefficient) for tensors, coefficient in terms]
    rest = []
    for index, grad in enumerate(grads):
        chunks = _cache_chunks(grad, *[tensors[index] for tensors, _ in terms], above=_CPU_CACHE_NUMEL)
        if chunks is None:
            rest.append(index)
            continue
        for grad_chunk, *term_chunks in chunks:
            for chunk, (_, coefficient) in zip(term_chunks, terms):
                grad_chunk.add_(chunk, alpha=coefficient)
    if rest:
        for tensors, coefficient in terms:
            _add_([grads[i] for i in rest], [tensors[i] for i in rest], coefficient)


def _add_(grads: Sequence[Tensor], others: Sequence[Tensor], alpha: float) -> None:
    """``torch._foreach_add_(grads, others, alpha=alpha)``, per tensor where the multi-tensor kernel does not
    apply."""
    if foreach_ok([*grads, *others]):
        torch._foreach_add_(list(grads), list(others), alpha=alpha)
    else:
        for grad, other in zip(grads, others):
            grad.add_(other, alpha=alpha)


def scaled_grads(
    add_grad_: Callable[[List[Tensor], float], None], tensors: Sequence[Tensor], alpha: Union[float, Tensor]
) -> List[Tensor]:
    """``alpha`` times the gradient that ``add_grad_(grads, scale)`` adds (``scale`` times it), as new tensors
    shaped like ``tensors``, added into zero buffers. ``alpha`` is a float, or the 0-d tensor of a backward
    pass: on CPU it is taken as a float (nothing to wait for, and one pass over the gradients saved), elsewhere
    applied by one multi-tensor multiply (no host sync).

    Example:
        >>> scaled_grads(lambda grads, scale: torch._foreach_add_(grads, [torch.ones(2)], alpha=scale),
        ...              [torch.ones(2)], torch.tensor(3.0))
        [tensor([3., 3.])]
    """
    grads = [torch.zeros_like(t) for t in tensors]
    if isinstance(alpha, Tensor) and alpha.device.type == "cpu":
        alpha = float(alpha)
    with torch.no_grad():
        if isinstance(alpha, Tensor):
            add_grad_(grads, 1.0)
            torch._foreach_mul_(grads, alpha)
        else:
            add_grad_(grads, alpha)
    return grads


def add_grad_widened_(
    add_grad_: Callable[[List[Tensor], List[Tensor]], None], grads: Sequence[Tensor], tensors: Sequence[Tensor]
) -> None:
    """``add_grad_(grads, tensors)`` for tensors of one dtype, computed on float32 copies of float16/bfloat16
    tensors (whose reductions and powers would overflow or cancel) and added into ``grads`` in their dtype.

    Example:
        >>> w = torch.full((4,), 200.0, dtype=torch.float16); g = torch.zeros_like(w)
        >>> add_grad_widened_(lambda gs, ts: torch._foreach_add_(gs, [t * t / 1e4 for t in ts]), [g], [w]); g
        tensor([4., 4., 4., 4.], dtype=torch.float16)
    """
    if not tensors or wide_dtype(tensors[0].dtype) == tensors[0].dtype:
        add_grad_(list(grads), list(tensors))
        return
    wide = [torch.zeros_like(t, dtype=torch.float32) for t in tensors]
    add_grad_(wide, [t.float() for t in tensors])
    torch._foreach_add_(list(grads), [w.to(t.dtype) for w, t in zip(wide, tensors)])


@contextlib.contextmanager
def sparse_grads_as_dense(grads: Sequence[Tensor]) -> Iterator[List[Tensor]]:
    """Let a ``*_add_grad_`` function write into sparse COO gradients (``nn.Embedding(sparse=True)``).

    Yields ``grads`` with each sparse gradient replaced by a dense zero buffer of its shape; on exit, each
    buffer's values at the indices its sparse gradient holds are added into that gradient, which stays sparse
    (the same object, with the same indices). The penalty's gradient thus reaches the rows that the task's
    gradient touched, which are the rows a sparse optimizer (``torch.optim.SparseAdam``, sparse SGD) updates:
    lazy regularization, with the optimizer's own semantics. Other layouts than strided and sparse COO are a
    ``TypeError``. Dense gradients are used as they are (no copy).

    Example:
        >>> grad = torch.sparse_coo_tensor([[1]], torch.ones(1, 2), (3, 2))   # row 1 touched
        >>> with sparse_grads_as_dense([grad]) as (dense,):
        ...     _ = dense.add_(10.0)
        >>> grad.to_dense()
        tensor([[ 0.,  0.],
                [11., 11.],
                [ 0.,  0.]])
    """
    check_grad_layouts("grads", grads)
    sparse = [index for index, grad in enumerate(grads) if grad.is_sparse]
    if not sparse:
        yield list(grads)
        return
    dense = list(grads)
    for index in sparse:
        dense[index] = torch.zeros(grads[index].shape, dtype=grads[index].dtype, device=grads[index].device)
    yield dense
    for index in sparse:
        grad = grads[index]
        grad.add_(dense[index].sparse_mask(grad.coalesce()))
