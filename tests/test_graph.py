"""Connectopic losses (hypercoil's connectopy, modularity, eigenmaps) and their graph pieces (girvan_newman_null,
modularity_matrix, coaffiliation, graph_laplacian): hypercoil's own tests translated, NumPy references for every
option, gradients, held parameters, bad input, and parity with hypercoil where it imports."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import neuroreg as nr
from neuroreg.functional import (
    coaffiliation,
    connectopy,
    eigenmaps,
    girvan_newman_null,
    graph_laplacian,
    linear_distance,
    modularity,
    modularity_matrix,
)
from neuroreg.scalarise import mean_scalarise


def normal(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- NumPy references, written from the formulas in hypercoil's documentation ------------------------------
def np_null(A: np.ndarray) -> np.ndarray:
    k_in, k_out = A.sum(-1), A.sum(-2)
    return k_in[..., :, None] * k_out[..., None, :] / A.sum((-2, -1))[..., None, None]


def np_relaxed_modularity(A, C, gamma=1.0, L=None, exclude_diag=True) -> np.ndarray:
    """hypercoil's relaxed_modularity of an undirected graph: sum(B o H) / 2."""
    A = np.maximum(A, 0)
    B = (A - gamma * np_null(A)) / A.sum((-2, -1))[..., None, None]
    C = C / max(1.0, C.max())
    H = C @ (np.eye(C.shape[-1]) if L is None else L) @ C.T
    if exclude_diag:
        H = H * (1 - np.eye(H.shape[-1]))
    return (B * H).sum((-2, -1)) / 2


def np_laplacian(W: np.ndarray, normalise: bool) -> np.ndarray:
    W = W * (1 - np.eye(W.shape[-1]))
    degree = W.sum(-1)
    L = np.zeros_like(W)
    for index in np.ndindex(W.shape[:-2]):
        L[index] = np.diag(degree[index]) - W[index]
        if normalise:
            scale = np.array([1.0 if d == 0 else 1 / np.sqrt(d) if d > 0 else np.nan for d in degree[index]])
            L[index] = scale[:, None] * L[index] * scale[None, :]
            np.fill_diagonal(L[index], 1.0)
    return L


def np_sqdist(Q: np.ndarray, theta=None) -> np.ndarray:
    diffs = Q[:, None, :] - Q[None, :, :]
    return (diffs**2 * (1.0 if theta is None else theta)).sum(-1)


# --- hypercoil's tests, translated ----------------------------------------------------------------------
def test_hypercoil_connectopies() -> None:
    Q, A = normal(20, 4, seed=0), normal(3, 20, 20, seed=1)
    out = mean_scalarise()(modularity)(Q, A, gamma=5) / 2
    ref = np.mean([np_relaxed_modularity(a, Q.numpy(), gamma=5) for a in A.numpy()])
    torch.testing.assert_close(out, torch.tensor(ref, dtype=torch.float64))
    # hypercoil runs eigenmaps on this signed A as a smoke test; its negative degrees have no square root.
    expected = [(np_laplacian(a, True) * np_sqdist(Q.numpy())).sum() for a in A.numpy()]
    torch.testing.assert_close(eigenmaps(Q, A), torch.tensor(expected, dtype=torch.float64), equal_nan=True)


def test_hypercoil_connectopic_modules_wrap_their_functionals() -> None:
    Q, A = normal(20, 4, seed=0), normal(3, 20, 20, seed=1)
    D = torch.diag_embed(A.sum(-1))
    theta, omega = normal(4, 4, seed=2), normal(20, 20, seed=3)
    theta, omega = theta @ theta.T, omega @ omega.T

    def affinity(X, omega):
        return linear_distance(X, theta=omega)

    torch.testing.assert_close(nr.ConnectopyLoss(theta=theta, omega=omega, affinity=affinity)(Q, A, D),
                               mean_scalarise()(connectopy)(Q, A, D, theta=theta, omega=omega, affinity=affinity))
    torch.testing.assert_close(nr.ModularityLoss(theta=theta, gamma=0.13, exclude_diag=True)(Q, A, D),
                               mean_scalarise()(modularity)(Q, A, D, theta=theta, gamma=0.13, exclude_diag=True))
    torch.testing.assert_close(nr.EigenmapsLoss(theta=theta.diagonal(), normalise=False)(Q, A.abs()),
                               mean_scalarise()(eigenmaps)(Q, A.abs(), theta.diagonal(), normalise=False))


# --- graph pieces against NumPy -----------------------------------------------------------------------------
def test_girvan_newman_null_of_a_directed_graph() -> None:
    A = normal(2, 5, 6, seed=0).abs()
    torch.testing.assert_close(girvan_newman_null(A), torch.from_numpy(np_null(A.numpy())))


@pytest.mark.parametrize("sign", ["+", "-", None])
@pytest.mark.parametrize("normalise_modularity", [False, True])
def test_modularity_matrix_signs_and_normalisation(sign, normalise_modularity) -> None:
    A = normal(6, 6, seed=0).numpy()
    kept = {"+": np.maximum(A, 0), "-": np.minimum(A, 0), None: A}[sign]
    expected = kept - 0.7 * np_null(kept)
    if normalise_modularity:
        expected = expected / kept.sum()
    value = modularity_matrix(torch.from_numpy(A), gamma=0.7, normalise_modularity=normalise_modularity, sign=sign)
    torch.testing.assert_close(value, torch.from_numpy(expected))


def test_modularity_matrix_passes_params_to_its_null() -> None:
    A = normal(4, 4, seed=0).abs()
    value = modularity_matrix(A, null=lambda A, scale: scale * torch.ones_like(A), scale=0.5)
    torch.testing.assert_close(value, A - 0.5)


@pytest.mark.parametrize("exclude_diag", [True, False])
@pytest.mark.parametrize("normalise_coaffiliation", [True, False])
def test_coaffiliation_options(exclude_diag, normalise_coaffiliation) -> None:
    C, C_o, L = 2.0 * normal(5, 3, seed=0).abs(), normal(5, 3, seed=1).abs(), normal(3, 3, seed=2)
    value = coaffiliation(C, C_o, L, exclude_diag=exclude_diag, normalise_coaffiliation=normalise_coaffiliation)
    c, c_o = C.numpy(), C_o.numpy()
    if normalise_coaffiliation:
        c, c_o = c / max(1, c.max()), c_o / max(1, c_o.max())
    expected = c @ L.numpy() @ c_o.T
    if exclude_diag:
        expected = expected * (1 - np.eye(5))
    torch.testing.assert_close(value, torch.from_numpy(expected))


def test_coaffiliation_of_batches_normalises_each_block() -> None:
    # (batch, vertices, communities) with I = 4 != O = 5 != K = 3, and batch 2: each block over its own largest
    # entry (where it exceeds 1), C_o checked by its last axis.
    C, C_o = 3.0 * normal(2, 4, 3, seed=0).abs(), 3.0 * normal(2, 5, 3, seed=1).abs()
    C_o[1] = C_o[1] / C_o[1].max()   # one block already at most 1: not rescaled
    value = coaffiliation(C, C_o, exclude_diag=False, normalise_coaffiliation=True)
    expected = [(c / max(1, c.max())) @ (o / max(1, o.max())).T for c, o in zip(C.numpy(), C_o.numpy())]
    torch.testing.assert_close(value, torch.from_numpy(np.stack(expected)))


@pytest.mark.parametrize("normalise", [True, False])
def test_graph_laplacian_with_an_isolated_vertex(normalise) -> None:
    W = normal(2, 5, 5, seed=0).abs()
    W[:, 2, :] = 0
    W[:, :, 2] = 0                                   # vertex 2 has degree 0: left unscaled
    W = W + W.mT
    expected = torch.from_numpy(np_laplacian(W.numpy(), normalise))
    torch.testing.assert_close(graph_laplacian(W, normalise=normalise), expected)
    if normalise:
        W.requires_grad_(True)
        graph_laplacian(W).sum().backward()
        assert torch.isfinite(W.grad).all()


# --- functionals against NumPy ------------------------------------------------------------------------------
def test_connectopy_default_theta_progressive_theta_and_d() -> None:
    Q, A, D = normal(8, 3, seed=0), normal(8, 8, seed=1).abs(), normal(8, 8, seed=2)
    torch.testing.assert_close(connectopy(Q, A), torch.tensor((A.numpy() * np_sqdist(Q.numpy())).sum(),
                                                              dtype=torch.float64))
    progressive = np_sqdist(Q.numpy(), np.array([3.0, 2.0, 1.0]))
    torch.testing.assert_close(connectopy(Q, A, progressive_theta=True),
                               torch.tensor((A.numpy() * progressive).sum(), dtype=torch.float64))
    transformed = D.numpy() @ A.numpy() @ D.numpy().T
    torch.testing.assert_close(connectopy(Q, A, D), torch.tensor((transformed * np_sqdist(Q.numpy())).sum(),
                                                                 dtype=torch.float64))
    value = connectopy(Q, A, omega=2.0, affinity=lambda A, omega: omega * A,
                       dissimilarity=lambda Q, theta: Q @ Q.mT)
    torch.testing.assert_close(value, torch.tensor((2.0 * A.numpy() * (Q.numpy() @ Q.numpy().T)).sum(),
                                                   dtype=torch.float64))


def test_connectopy_of_a_stack_of_affinities() -> None:
    # A of shape (2, 3, V, V) with V = 4, then maps Q of shape (2, 3, V, K): the vertices are counted on the
    # last axes, not the second.
    Q, A = normal(4, 2, seed=0), normal(2, 3, 4, 4, seed=1).abs()
    expected = (A.numpy() * np_sqdist(Q.numpy())).sum((-2, -1))
    torch.testing.assert_close(connectopy(Q, A), torch.from_numpy(expected))
    Qs = normal(2, 3, 4, 2, seed=2)
    expected = [[(a * np_sqdist(q)).sum() for q, a in zip(qs, A_s)] for qs, A_s in zip(Qs.numpy(), A.numpy())]
    torch.testing.assert_close(connectopy(Qs, A), torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize("exclude_diag", [True, False])
def test_modularity_with_coupling_and_d(exclude_diag) -> None:
    Q, A, L = normal(7, 3, seed=0).softmax(-1), normal(7, 7, seed=1), normal(3, 3, seed=2).abs()
    value = modularity(Q, A, theta=L, gamma=0.4, exclude_diag=exclude_diag)
    expected = 2 * np_relaxed_modularity(A.numpy(), Q.numpy(), gamma=0.4, L=L.numpy(), exclude_diag=exclude_diag)
    torch.testing.assert_close(value, torch.tensor(expected, dtype=torch.float64))
    D = torch.diag(normal(7, seed=3).abs())
    Ap = np.maximum(A.numpy(), 0)
    B = (Ap - 0.4 * np_null(Ap)) / Ap.sum()
    H = Q.numpy() @ L.numpy() @ Q.numpy().T * ((1 - np.eye(7)) if exclude_diag else 1)
    expected = (D.numpy() @ B @ D.numpy().T * H).sum()
    torch.testing.assert_close(modularity(Q, A, D, L, gamma=0.4, exclude_diag=exclude_diag),
                               torch.tensor(expected, dtype=torch.float64))


def test_modularity_is_highest_for_the_planted_partition() -> None:
    blocks = torch.block_diag(*[torch.ones(5, 5, dtype=torch.float64)] * 3)
    A = blocks + 0.05 * normal(15, 15, seed=0).abs()
    planted = torch.eye(3, dtype=torch.float64).repeat_interleave(5, dim=0)
    shuffled = planted[torch.randperm(15, generator=torch.Generator().manual_seed(1))]
    assert modularity(planted, A) > modularity(shuffled, A) + 0.2


@pytest.mark.parametrize("normalise", [True, False])
def test_eigenmaps_with_theta(normalise) -> None:
    Q, A, theta = normal(9, 2, seed=0), normal(9, 9, seed=1).abs(), normal(2, seed=2).abs()
    expected = (np_laplacian(A.numpy(), normalise) * np_sqdist(Q.numpy(), theta.numpy())).sum()
    torch.testing.assert_close(eigenmaps(Q, A, theta, normalise=normalise), torch.tensor(expected, dtype=torch.float64))


def test_gradients_in_float64() -> None:
    Q, A = normal(6, 2, seed=0).requires_grad_(True), normal(6, 6, seed=1).abs().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda Q, A: modularity(Q.softmax(-1), A, gamma=0.5), (Q, A))
    assert torch.autograd.gradcheck(lambda Q, A: eigenmaps(Q, A), (Q, A))
    assert torch.autograd.gradcheck(lambda Q, A: connectopy(Q, A, progressive_theta=True), (Q, A))


# --- modules: held parameters ---------------------------------------------------------------------------------
def test_modularity_loss_on_held_affiliations_of_a_bound_graph() -> None:
    A = normal(10, 10, seed=0).abs()
    A = A + A.T
    affiliations = nn.Parameter(normal(10, 3, seed=1).softmax(-1))
    loss = nr.ModularityLoss(affiliations, Lambda=3.0, A=A, gamma=0.8)
    torch.testing.assert_close(loss(), 3.0 * modularity(affiliations, A, gamma=0.8))
    loss().backward()
    assert affiliations.grad is not None and set(loss.state_dict()) >= {"A"}
    eig = nr.EigenmapsLoss(affiliations, A=A)
    torch.testing.assert_close(eig(), eigenmaps(affiliations, A))
    connect = nr.ConnectopyLoss(affiliations, A=A, omega=0.5, affinity=lambda A, omega: omega * A)
    torch.testing.assert_close(connect(), 0.5 * connectopy(affiliations, A))


@pytest.mark.parametrize("build", [
    lambda: (nr.ModularityLoss(A=normal(10, 10, seed=0).abs(), gamma=0.5), (normal(10, 3, seed=1).softmax(-1),)),
    lambda: (nr.EigenmapsLoss(A=normal(10, 10, seed=0).abs()), (normal(10, 3, seed=1),)),
    lambda: (nr.ConnectopyLoss(progressive_theta=True), (normal(10, 3, seed=1), normal(10, 10, seed=0).abs())),
], ids=["modularity", "eigenmaps", "connectopy"])
def test_compiles_to_one_graph(build) -> None:
    torch._dynamo.reset()
    loss, args = build()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(*args), loss(*args))


# --- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: modularity(torch.ones(4, 2), torch.ones(4, 5)), ValueError, "A must be square"),
        (lambda: modularity(torch.ones(3, 2), torch.ones(4, 4)), ValueError, "Q must have one row per vertex of A"),
        (lambda: modularity(torch.ones(3, 2), torch.ones(3, 3), torch.eye(4)), ValueError,
         "D must have one row and column per vertex of A"),
        (lambda: modularity(torch.ones(4, 2), torch.ones(4, 4), theta=torch.ones(3, 3)), ValueError,
         "theta must have one row and column per community"),
        (lambda: connectopy(torch.ones(3, 2), torch.ones(4, 4)), ValueError, "one row and column per vertex"),
        (lambda: connectopy(torch.ones(4, 2), torch.ones(4, 4), torch.ones(4, 3)), ValueError, "D must be square"),
        (lambda: modularity_matrix(torch.ones(4, 4), sign="+-"), ValueError, "sign must be one of"),
        (lambda: graph_laplacian(torch.ones(3, 4)), ValueError, "W must be square"),
        (lambda: coaffiliation(torch.ones(4, 2), L=torch.ones(3, 3)), ValueError, "L must have one row and column"),
        (lambda: eigenmaps(torch.ones(4, 2), torch.ones(4, 4, dtype=torch.int64)), TypeError, "A must be a float"),
        (lambda: nr.ModularityLoss()(torch.ones(4, 2)), ValueError, "ModularityLoss needs A"),
        (lambda: nr.ModularityLoss(gamma="high"), TypeError, "gamma must be a real number"),
        (lambda: nr.ConnectopyLoss(affinity=3), TypeError, "affinity must be callable"),
        (lambda: nr.ConnectopyLoss(theta=[1.0]), TypeError, "theta must be a tensor"),
        (lambda: nr.EigenmapsLoss([nn.Parameter(torch.ones(4, 2))], A=torch.ones(4, 3)), ValueError,
         "W must be square"),
        (lambda: nr.ModularityLoss(A=torch.ones(4, 4))(torch.ones(4, 2), torch.ones(4, 4), None, None, 1.0),
         TypeError, "at most 4 arguments"),
    ],
)
def test_bad_input_is_a_clear_error(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


# --- parity with hypercoil (JAX), where it imports -----------------------------------------------------------
def test_parity_with_hypercoil() -> None:
    hf = pytest.importorskip("hypercoil.loss.functional")
    hg = pytest.importorskip("hypercoil.functional")
    jnp = pytest.importorskip("jax.numpy")
    Q, A = normal(20, 4, seed=0).float(), normal(3, 20, 20, seed=1).float()
    D, theta = torch.diag_embed(A.sum(-1)), normal(4, 4, seed=2).float()

    def same(ours: torch.Tensor, theirs) -> None:
        torch.testing.assert_close(ours, torch.from_numpy(np.asarray(theirs)), rtol=1e-4, atol=1e-4, equal_nan=True)

    j = lambda t: jnp.asarray(t.numpy())  # noqa: E731
    same(modularity(Q, A, gamma=5.0), hf.modularity(j(Q), j(A), gamma=5.0))
    same(modularity(Q, A, D, theta, gamma=0.13, exclude_diag=False),
         hf.modularity(j(Q), j(A), j(D), j(theta), gamma=0.13, exclude_diag=False))
    for normalise in (True, False):
        same(eigenmaps(Q, A.abs(), normalise=normalise), hf.eigenmaps(j(Q), j(A.abs()), normalise=normalise))
        same(graph_laplacian(A, normalise=normalise), hg.graph_laplacian(j(A), normalise=normalise))
    same(connectopy(Q, A, progressive_theta=True), hf.connectopy(j(Q), j(A), progressive_theta=True))
    same(girvan_newman_null(A.abs()), hg.girvan_newman_null(j(A.abs())))
    same(coaffiliation(Q, L=theta, normalise_coaffiliation=True), hg.coaffiliation(j(Q), L=j(theta),
                                                                                   normalise_coaffiliation=True))
