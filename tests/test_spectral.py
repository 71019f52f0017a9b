"""SpectralNorm: the power-iteration estimate converges to torch.linalg.matrix_norm(W, 2) and its gradient to
autograd's, one iteration per change of the weights (called or attached), the hinge, the exact form, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg import functional as F


def gapped(m: int, n: int, seed: int = 0) -> torch.Tensor:
    """A float64 matrix with singular values 3, 1.5 and below: the power iteration converges at (1/2)^2."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=generator, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    k = min(m, n)
    s = torch.cat([torch.tensor([3.0, 1.5], dtype=torch.float64), torch.linspace(1.0, 0.1, k - 2, dtype=torch.float64)])
    return u[:, :k] @ torch.diag(s) @ v[:, :k].T


def autograd_spectral(w: torch.Tensor):
    leaf = w.detach().clone().requires_grad_(True)
    sigma = torch.linalg.matrix_norm(leaf, 2)
    (grad,) = torch.autograd.grad(sigma, leaf)
    return sigma.detach(), grad


@pytest.mark.parametrize("shape", [(8, 8), (5, 9)])
def test_power_iteration_value_and_gradient_converge_to_the_svds(shape) -> None:
    w = nn.Parameter(gapped(*shape))
    reg = nr.SpectralNorm([w], Lambda=1.0)
    sigma, grad = autograd_spectral(w)
    # 15 iterations at construction: the error shrinks by 4 a step, far below float64 tolerance by then.
    torch.testing.assert_close(reg(), sigma, rtol=1e-7, atol=0)
    reg().backward()
    torch.testing.assert_close(w.grad, grad, rtol=1e-4, atol=1e-6)


def test_one_iteration_per_change_of_the_weights_called_or_attached() -> None:
    w = nn.Parameter(gapped(6, 6, seed=1))
    reg = nr.SpectralNorm([w], n_power_iterations=1)
    u0, v0 = reg.u_0.clone(), reg.v_0.clone()
    reg()
    reg()
    torch.testing.assert_close(reg.u_0, u0)   # the same weights: no iteration
    with torch.no_grad():
        w.mul_(1.01).add_(0.05)
    reg()
    expected_u, expected_v = F.power_iteration(w.detach(), u0, v0, 1)
    torch.testing.assert_close(reg.u_0, expected_u)
    torch.testing.assert_close(reg.v_0, expected_v)
    # Attached: each optimizer step's change is iterated once, in the pre-step hook, and the gradient added
    # is u v^T of the iterated vectors.
    optimizer = torch.optim.SGD([w], lr=0.1)
    handle = reg.attach(optimizer)
    with torch.no_grad():
        w.add_(0.01)
    before_u, before_v = reg.u_0.clone(), reg.v_0.clone()
    w_before = w.detach().clone()
    optimizer.zero_grad()
    (0 * w.sum()).backward()
    optimizer.step()
    handle.remove()
    u1, v1 = F.power_iteration(w_before, before_u, before_v, 1)
    torch.testing.assert_close(w.detach(), w_before - 0.1 * torch.outer(u1, v1))


def test_training_tracks_the_spectral_norm_and_the_hinge_pulls_it_to_the_target() -> None:
    w = nn.Parameter(gapped(16, 16, seed=2))
    reg = nr.SpectralNorm([w], Lambda=1.0, target=1.0)
    optimizer = torch.optim.SGD([w], lr=0.05)
    handle = reg.attach(optimizer)
    for _ in range(200):
        optimizer.zero_grad()
        (0 * w.sum()).backward()
        optimizer.step()
    handle.remove()
    sigma, grad = autograd_spectral(w)
    assert 1.0 < float(sigma) < 1.05
    torch.testing.assert_close(reg(), (sigma - 1.0) ** 2, rtol=1e-3, atol=1e-8)
    w.grad = None
    reg().backward()
    torch.testing.assert_close(w.grad, 2 * (sigma - 1.0) * grad, rtol=1e-2, atol=1e-6)


def test_hinge_is_zero_below_the_target_with_zero_gradient() -> None:
    w = nn.Parameter(gapped(5, 5) / 10)   # sigma_max = 0.3
    reg = nr.SpectralNorm([w], target=1.0)
    assert float(reg().detach()) == 0.0
    reg().backward()
    assert torch.count_nonzero(w.grad) == 0


@pytest.mark.parametrize("target", [None, 0.5])
def test_exact_form_is_autograd_of_matrix_norm(target) -> None:
    generator = torch.Generator().manual_seed(4)
    ws = [nn.Parameter(torch.randn(6, 4, generator=generator, dtype=torch.float64)),
          nn.Parameter(torch.eye(3, dtype=torch.float64))]   # tied singular values: the gradient is shared
    reg = nr.SpectralNorm(ws, Lambda=0.7, target=target, exact=True)
    leaves = [w.detach().clone().requires_grad_(True) for w in ws]
    sigmas = [torch.linalg.matrix_norm(leaf, 2) for leaf in leaves]
    expected = 0.7 * sum(s if target is None else (s - target).clamp_min(0) ** 2 for s in sigmas)
    grads = torch.autograd.grad(expected, leaves)
    torch.testing.assert_close(reg(), expected.detach())
    reg().backward()
    for w, g in zip(ws, grads):
        torch.testing.assert_close(w.grad, g)
    assert "u_0" not in dict(reg.named_buffers())
    before = [w.detach().clone() for w in ws]
    for w in ws:
        w.grad = torch.zeros_like(w)
    reg.accumulate_grad()   # joint mode: the closed form adds its gradient to the gradients, not the weights
    for w, g, b in zip(ws, grads, before):
        torch.testing.assert_close(w.grad, g)
        assert torch.equal(w.detach(), b)


def test_vectors_are_state_and_survive_a_round_trip() -> None:
    w = nn.Parameter(gapped(6, 6, seed=3))
    reg = nr.SpectralNorm([w])
    with torch.no_grad():
        w.add_(0.1)
    reg()
    state = reg.state_dict()
    assert {"u_0", "v_0"} <= set(state)
    assert not any(key.startswith("fingerprint") for key in state)   # recomputed from the matrix, never saved
    other = nr.SpectralNorm([nn.Parameter(w.detach().clone())])
    other.load_state_dict(state)
    torch.testing.assert_close(other.u_0, reg.u_0)


@pytest.mark.parametrize("build, error, match", [
    (lambda w: nr.SpectralNorm([w], target=-0.5), ValueError, r"target must be in \[0, inf\], got -0.5"),
    (lambda w: nr.SpectralNorm([w], target="1"), TypeError, r"target must be a real number, got '1'"),
    (lambda w: nr.SpectralNorm([w], n_power_iterations=0), ValueError, r"n_power_iterations must be >= 1, got 0"),
    (lambda w: nr.SpectralNorm([w], n_power_iterations=1.5), TypeError, r"n_power_iterations must be an integer"),
    (lambda w: nr.SpectralNorm([w], exact="yes"), TypeError, r"exact"),
    (lambda w: nr.SpectralNorm([w], eps=0.0), ValueError, r"eps must be in \(0, inf\]"),
    (lambda w: nr.SpectralNorm([nn.Parameter(torch.randn(3))]), ValueError, r"params\[0\] has shape \(3,\)"),
    (lambda w: nr.SpectralNorm([nn.Parameter(torch.randn(2, 3, 3))]), ValueError, r"has shape \(2, 3, 3\)"),
])
def test_bad_input_is_a_clear_error(build, error, match) -> None:
    w = nn.Parameter(torch.randn(4, 4))
    with pytest.raises(error, match=match):
        build(w)


def test_power_iteration_defaults_and_zero_steps() -> None:
    w = torch.randn(5, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    u, v = torch.ones(5, dtype=torch.float64) / 5 ** 0.5, torch.ones(4, dtype=torch.float64) / 2
    # One step by default: v = normalize(W^T u), then u = normalize(W v).
    expected_v = w.T @ u / (w.T @ u).norm()
    expected_u = w @ expected_v / (w @ expected_v).norm()
    new_u, new_v = F.power_iteration(w, u, v)
    torch.testing.assert_close(new_v, expected_v)
    torch.testing.assert_close(new_u, expected_u)
    same_u, same_v = F.power_iteration(w, u, v, 0)
    torch.testing.assert_close(same_u, u)
    torch.testing.assert_close(same_v, v)
    with pytest.raises(ValueError, match="n_iterations must be >= 0, got -1"):
        F.power_iteration(w, u, v, -1)


def test_hinge_gradient_scale_and_grad_count() -> None:
    u, v = torch.tensor([0.6, 0.8]), torch.tensor([1.0, 0.0, 0.0])
    grad = torch.zeros(2, 3)
    F.spectral_penalty_add_grad_([grad], [torch.tensor(2.5)], [u], [v], target=1.0, alpha=0.3)
    torch.testing.assert_close(grad, 0.3 * 2 * 1.5 * torch.outer(u, v))
    with pytest.raises(ValueError, match="grads must hold one tensor per tensor: 1 tensors, 0 grads"):
        F.spectral_penalty_add_grad_([], [torch.tensor(2.5)], [u], [v])
    w = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="grads must hold one tensor per tensor"):
        F.spectral_penalty_exact_add_grad_([], [w])


def test_unconverged_vectors_are_iterated_only_when_the_weights_change() -> None:
    # A Gaussian matrix: close top singular values, so 15 steps leave u visibly short of convergence and any
    # extra iteration would show.
    w = nn.Parameter(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    reg = nr.SpectralNorm([w])
    u0, v0 = reg.u_0.clone(), reg.v_0.clone()
    assert not torch.allclose(F.power_iteration(w.detach(), u0, v0, 1)[0], u0, rtol=0, atol=1e-9)
    reg()
    reg().backward()
    reg.accumulate_grad()
    torch.testing.assert_close(reg.u_0, u0, rtol=0, atol=0)
    with torch.no_grad():
        w.mul_(1.0)   # written to, the same values: nothing to iterate for
    reg.accumulate_grad()
    torch.testing.assert_close(reg.u_0, u0, rtol=0, atol=0)
    with torch.no_grad():
        w.mul_(1.5)   # new values: iterated once at the next use
    reg.accumulate_grad()
    reg()
    torch.testing.assert_close(reg.u_0, F.power_iteration(w.detach(), u0, v0, 1)[0])


def test_a_tiny_matrix_shows_the_15_construction_steps_and_the_eps_floor() -> None:
    # W = c I with c below eps: each half-step divides by eps, not by a norm, and scales the vector by c / eps;
    # 15 steps from a unit start give u = (c/eps)^30 u0, v = (c/eps)^29 u0, so sigma = u^T W v = c (c/eps)^59.
    c = 1e-13
    w = nn.Parameter(c * torch.eye(3, dtype=torch.float64))
    assert float(nr.SpectralNorm([w])().detach()) == pytest.approx(c * (c / 1e-12) ** 59, rel=1e-9, abs=0)
    assert float(nr.SpectralNorm([w], eps=1e-11)().detach()) == pytest.approx(c * (c / 1e-11) ** 59, rel=1e-9, abs=0)


def test_the_compiled_branch_iterates_both_vectors_of_a_changed_matrix(monkeypatch) -> None:
    # In the graph the step is taken where the matrix's fingerprint changed: one step, v = W^T u / |W^T u| then
    # u = W v / |W v|, by hand (15 construction steps leave this Gaussian matrix's vectors short of convergence).
    # The branch a compiled call traces, run eagerly (compiling would take seconds).
    w = nn.Parameter(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    reg = nr.SpectralNorm([w])
    u0 = reg.u_0.clone()
    with torch.no_grad():
        w.mul_(1.5)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    reg()
    W = w.detach()
    v = W.T @ u0 / (W.T @ u0).norm()
    torch.testing.assert_close(reg.v_0, v)
    torch.testing.assert_close(reg.u_0, W @ v / (W @ v).norm())
    u1 = reg.u_0.clone()
    reg()   # the matrix is unchanged since: its fingerprint was kept, and no step is kept
    torch.testing.assert_close(reg.u_0, u1, rtol=0, atol=0)


def test_under_torch_func_the_vectors_are_read_not_iterated() -> None:
    w = nn.Parameter(torch.randn(5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    reg = nr.SpectralNorm([w], Lambda=2.0)
    u, v = reg.u_0.clone(), reg.v_0.clone()
    other = w.detach() + 0.1
    grad = torch.func.grad(lambda t: torch.func.functional_call(reg, {"params.0": t}, ()))(other)
    torch.testing.assert_close(grad, 2.0 * torch.outer(u, v))
    torch.testing.assert_close(reg.u_0, u, rtol=0, atol=0)
