"""The multi-tensor helpers' fast paths: cache-sized chunks on CPU, one-tensor shortcuts, gradients written
without a zero-filled buffer. Each against NumPy, whatever path the sizes select."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuroreg as nr
from neuroreg.functional import _multi_tensor
from neuroreg.functional._multi_tensor import (
    add_combination_,
    add_sign_,
    as_tensor_list,
    foreach_mul,
    foreach_sub,
    sum_scalars,
)
from neuroreg.functional.connectome import _dale_law_l2_grad
from neuroreg.functional.lp import _lp_norm_grad


@pytest.fixture(params=["chunked", "whole"])
def chunking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    # 5 entries per chunk: tensors of 23 entries take four full chunks and a ragged last one.
    monkeypatch.setattr(_multi_tensor, "_CPU_CHUNK", 5 if request.param == "chunked" else 1 << 62)
    monkeypatch.setattr(_multi_tensor, "_CPU_CACHE_NUMEL", 5 if request.param == "chunked" else 1 << 62)
    return request.param


def _data(seed: int, *shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    values = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    values.view(-1)[::4] = 0   # sign(0) = 0 must show
    return values


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_add_sign_is_alpha_times_the_sign_added(chunking: str, dtype: torch.dtype) -> None:
    tensors = [_data(0, 23, dtype=dtype), _data(1, 4, 6, dtype=dtype), _data(2, 3, dtype=dtype)]
    grads = [_data(10 + k, *t.shape, dtype=dtype) for k, t in enumerate(tensors)]
    expected = [g.numpy() + 0.37 * np.sign(t.numpy()) for g, t in zip(grads, tensors)]
    add_sign_(grads, tensors, 0.37)
    for grad, want in zip(grads, expected):
        np.testing.assert_allclose(grad.numpy(), want, rtol=1e-6)


def test_add_sign_of_a_non_contiguous_tensor_takes_the_whole_tensor_path(chunking: str) -> None:
    tensor = _data(0, 8, 6).t()   # strided: chunks of a flat view would not be its entries
    grad = torch.zeros(6, 8, dtype=torch.float64)
    add_sign_([grad], [tensor], -2.0)
    np.testing.assert_array_equal(grad.numpy(), -2.0 * np.sign(tensor.numpy()))


def test_add_combination_adds_each_term_once(chunking: str) -> None:
    grads = [_data(0, 23), _data(1, 2, 2)]
    first, second = [_data(2, 23), _data(3, 2, 2)], [_data(4, 23), _data(5, 2, 2)]
    expected = [g.numpy() + 1.5 * a.numpy() - 0.25 * b.numpy() for g, a, b in zip(grads, first, second)]
    add_combination_(grads, [(first, 1.5), (second, -0.25)])
    for grad, want in zip(grads, expected):
        np.testing.assert_allclose(grad.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize(("p", "squared"), [(1, False), (2, True), (3, False)])
def test_lp_norm_grad_scaled_by_a_float_or_a_tensor(p: float, squared: bool, overwrite: bool) -> None:
    tensors = [_data(0, 5, 4), _data(1, 7)]
    arrays = [t.numpy().copy() for t in tensors]
    for alpha in (0.3, torch.tensor(0.3, dtype=torch.float64)):
        inputs = [t.clone() for t in tensors]
        grads = _lp_norm_grad(inputs, p, squared, alpha, overwrite=overwrite)
        for grad, w in zip(grads, arrays):
            if p == 1:
                want = np.sign(w)
            elif squared:
                want = 2 * w
            else:
                want = np.sign(w) * np.abs(w) ** (p - 1) / np.sum(np.abs(w) ** p) ** ((p - 1) / p)
            np.testing.assert_allclose(grad.numpy(), 0.3 * want, rtol=1e-12, atol=1e-15)
        written = overwrite and p != 3   # the inputs are the gradients, or left as they were
        for given, grad, w in zip(inputs, grads, arrays):
            assert (given is grad) if written else np.array_equal(given.numpy(), w)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_dale_law_l2_grad_written_directly(alpha: float) -> None:
    w, s = _data(0, 6, 5), torch.sign(_data(1, 6, 5))
    for scale in (2.0, torch.tensor(2.0, dtype=torch.float64)):
        (grad,) = _dale_law_l2_grad([w], [s], alpha, scale)
        np.testing.assert_allclose(grad.numpy(), 2.0 * (2 * alpha * w.numpy() - (1 - alpha) * s.numpy()),
                                   rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["L1", "DaleLawL2"])
def test_joint_mode_on_chunked_tensors_equals_numpy(chunking: str, name: str) -> None:
    w = torch.nn.Parameter(_data(0, 23, 3))
    signs = torch.sign(_data(1, 23, 3))
    task = _data(2, 23, 3)
    reg = nr.L1([w], Lambda=0.5) if name == "L1" else nr.DaleLawL2([w], alpha=0.3, Lambda=0.5,
                                                                    reference_weights=[signs])
    w.grad = task.clone()
    reg.accumulate_grad()
    penalty = np.sign(w.detach().numpy()) if name == "L1" else 0.6 * w.detach().numpy() - 0.7 * signs.numpy()
    np.testing.assert_allclose(w.grad.numpy(), task.numpy() + 0.5 * penalty, rtol=1e-12)


def test_sum_scalars_of_one_value_is_that_value() -> None:
    value = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    assert sum_scalars([value]) is value
    assert float(sum_scalars([value, torch.tensor(1.0, dtype=torch.float64)]).detach()) == 3.5


def test_one_tensor_is_one_element_not_its_rows() -> None:
    matrix = torch.ones(3, 2)
    (only,) = as_tensor_list("tensors", matrix)
    assert only is matrix
    with pytest.raises(TypeError, match=r"tensors must be a tensor or a sequence of tensors, got 'abc'"):
        as_tensor_list("tensors", "abc")
    with pytest.raises(TypeError, match="tensors must be a tensor or a sequence of tensors, got 3"):
        as_tensor_list("tensors", 3)


@pytest.mark.parametrize("count", [1, 3])
def test_foreach_sub_and_mul_in_order(count: int) -> None:
    # one tensor takes the per-tensor op, several the multi-tensor kernel: the same numbers, operands in order
    first = [_data(k, 2, 3) for k in range(count)]
    second = [_data(10 + k, 2, 3) for k in range(count)]
    for got, a, b in zip(foreach_sub(first, second), first, second):
        np.testing.assert_array_equal(got.numpy(), a.numpy() - b.numpy())
    for got, a, b in zip(foreach_mul(first, second), first, second):
        np.testing.assert_array_equal(got.numpy(), a.numpy() * b.numpy())
