"""Connectopic functionals on graphs (hypercoil's ``connectopy``, ``modularity`` and ``eigenmaps``) and the
graph pieces they are built from (hypercoil's ``girvan_newman_null``, ``modularity_matrix``,
``coaffiliation`` and ``graph_laplacian``)."""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional

import torch
from torch import Tensor

from neuroreg._validation import (
    check_bool,
    check_callable,
    check_choice,
    check_floating_tensor,
    check_real,
    check_size,
    check_square,
)
from neuroreg.functional._common import compute_dtype
from neuroreg.functional._geometry import linear_distance

__all__ = [
    "coaffiliation",
    "connectopy",
    "eigenmaps",
    "girvan_newman_null",
    "graph_laplacian",
    "modularity",
    "modularity_matrix",
]

Sign = Optional[Literal["+", "-"]]


def girvan_newman_null(A: Tensor) -> Tensor:
    r"""The Girvan-Newman null model of an adjacency matrix: the expected weight of each edge if every edge
    were cut and the stubs rewired at random (hypercoil's ``girvan_newman_null``).

    .. math::
        P = \frac{A \mathbf{1} \mathbf{1}^\top A}{\mathbf{1}^\top A \mathbf{1}}

    Args:
        A: Adjacency matrices, shape ``(*, I, O)``.

    Returns:
        Shape ``(*, I, O)``.

    Example:
        >>> girvan_newman_null(torch.tensor([[0.0, 1.0], [1.0, 2.0]]))
        tensor([[0.2500, 0.7500],
                [0.7500, 2.2500]])
    """
    A = check_floating_tensor("A", A, min_ndim=2)
    in_degree, out_degree = A.sum(-1, keepdim=True), A.sum(-2, keepdim=True)
    return in_degree @ out_degree / in_degree.sum(-2, keepdim=True)


def modularity_matrix(
    A: Tensor,
    gamma: float = 1,
    null: Callable[..., Tensor] = girvan_newman_null,
    normalise_modularity: bool = False,
    sign: Sign = "+",
    **params: Any,
) -> Tensor:
    r"""The modularity matrix: the adjacency minus a null model at resolution :math:`\gamma` (hypercoil's
    ``modularity_matrix``).

    .. math::
        B = A - \gamma P(A), \qquad \text{normalised: } B / \mathbf{1}^\top A \mathbf{1}

    Args:
        A: Adjacency matrices, shape ``(*, I, O)``.
        gamma: Resolution: small values favour large communities, large values many small ones.
        null: The null model, ``null(A, **params)`` (default :func:`girvan_newman_null`).
        normalise_modularity: Divide by the total edge weight :math:`2m = \mathbf{1}^\top A \mathbf{1}`.
        sign: ``'+'`` keeps the positive edges (``relu(A)``), ``'-'`` the negative ones (``-relu(-A)``),
            ``None`` all of them.
        **params: Passed to ``null``.

    Returns:
        Shape ``(*, I, O)``.

    Example:
        >>> modularity_matrix(torch.tensor([[0.0, 1.0], [1.0, 2.0]]))
        tensor([[-0.2500,  0.2500],
                [ 0.2500, -0.2500]])
    """
    A = check_floating_tensor("A", A, min_ndim=2)
    gamma = check_real("gamma", gamma)
    null = check_callable("null", null)
    normalise_modularity = check_bool("normalise_modularity", normalise_modularity)
    check_choice("sign", sign, ("+", "-", None))
    if sign == "+":
        A = torch.relu(A)
    elif sign == "-":
        A = -torch.relu(-A)
    B = A - gamma * null(A, **params)
    return B / A.sum((-2, -1), keepdim=True) if normalise_modularity else B


def coaffiliation(
    C: Tensor,
    C_o: Optional[Tensor] = None,
    L: Optional[Tensor] = None,
    exclude_diag: bool = True,
    normalise_coaffiliation: bool = False,
) -> Tensor:
    r"""How strongly each pair of vertices shares communities (hypercoil's ``coaffiliation``).

    .. math::
        H = C \, L \, C_o^\top

    Args:
        C: Community affiliations of the source vertices, shape ``(*, I, K)`` (e.g. probabilities over ``K``
            communities).
        C_o: Affiliations of the sink vertices, shape ``(*, O, K)`` (default ``C``).
        L: Coupling between communities, shape ``(*, K, K)`` (default the identity: assortative structure).
        exclude_diag: Zero the diagonal (no self-links; needs ``I == O``).
        normalise_coaffiliation: Divide each affiliation block by its largest entry where that exceeds 1.

    Returns:
        Shape ``(*, I, O)``.

    Example:
        >>> coaffiliation(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        tensor([[0., 1., 0.],
                [1., 0., 0.],
                [0., 0., 0.]])
    """
    C = check_floating_tensor("C", C, min_ndim=2)
    C_o = C if C_o is None else check_size("C_o", check_floating_tensor("C_o", C_o, min_ndim=2), -1, C.shape[-1],
                                           "one column per community of C")
    exclude_diag = check_bool("exclude_diag", exclude_diag)
    if check_bool("normalise_coaffiliation", normalise_coaffiliation):
        C = C / C.amax((-2, -1), keepdim=True).clamp_min(1)
        C_o = C_o / C_o.amax((-2, -1), keepdim=True).clamp_min(1)
    if L is not None:
        L = check_square("L", check_floating_tensor("L", L, min_ndim=2))
        C = C @ check_size("L", L, -2, C.shape[-1], "one row and column per community of C")
    H = C @ C_o.mT
    if exclude_diag:
        H = _delete_diagonal(check_square("the coaffiliation C C_o^T", H))
    return H


def graph_laplacian(W: Tensor, normalise: bool = True) -> Tensor:
    r"""The Laplacian of a graph (hypercoil's ``graph_laplacian``, for dense adjacency matrices), self-loops
    dropped.

    .. math::
        L = D - W, \qquad \text{normalised: } \tilde L = D^{-1/2} L D^{-1/2} \text{ with a unit diagonal}

    :math:`D` is the diagonal of row degrees (the row Laplacian of a directed graph). As in hypercoil, a
    vertex of degree 0 is left unscaled, and a negative degree (a signed graph) has no real square root: its
    rows and columns of the normalised Laplacian are NaN.

    Args:
        W: Adjacency matrices, shape ``(*, N, N)``.
        normalise: Normalise by the degrees.

    Returns:
        Shape ``(*, N, N)``.

    Example:
        >>> graph_laplacian(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), normalise=False)
        tensor([[ 1., -1.],
                [-1.,  1.]])
    """
    W = check_square("W", check_floating_tensor("W", W, min_ndim=2))
    normalise = check_bool("normalise", normalise)
    W = _delete_diagonal(W)
    degree = W.sum(-1)
    L = torch.diag_embed(degree) - W
    if not normalise:
        return L
    # The inner where keeps rsqrt away from 0, whose infinite derivative would give a NaN gradient.
    scale = torch.where(degree == 0, 1.0, torch.where(degree == 0, 1.0, degree).rsqrt())
    L = L * scale.unsqueeze(-2) * scale.unsqueeze(-1)
    return L.diagonal_scatter(torch.ones_like(degree), dim1=-2, dim2=-1)


def connectopy(
    Q: Tensor,
    A: Tensor,
    D: Optional[Tensor] = None,
    theta: Optional[Tensor] = None,
    omega: Optional[Any] = None,
    *,
    dissimilarity: Optional[Callable[..., Tensor]] = None,
    affinity: Optional[Callable[..., Tensor]] = None,
    progressive_theta: bool = False,
) -> Tensor:
    r"""The generalised connectopic functional (hypercoil's ``connectopy``): affinity-weighted dissimilarity
    of the maps ``Q`` over every pair of vertices.

    .. math::
        \mathcal{C} = \mathbf{1}^\top \big(\tilde A \circ S_\theta(Q)\big) \mathbf{1}, \qquad
        \tilde A = D \, \operatorname{affinity}_\omega(A) \, D^\top

    The maps (columns of ``Q``) that minimise it are the connectopic maps; combine it with constraints
    (centred, orthogonal maps), as hypercoil warns.

    Args:
        Q: Proposed maps, shape ``(*, V, K)``: ``K`` maps over ``V`` vertices.
        A: Affinity matrix, shape ``(*, V, V)`` (or its argument, with ``affinity``).
        D: Optional ``(*, V, V)`` transform: the affinity becomes :math:`D A D^\top`.
        theta: Parameter of the dissimilarity (for the default, a vector of ``K`` weights or a ``K x K``
            matrix).
        omega: Parameter of the affinity function.
        dissimilarity: ``dissimilarity(Q, theta=theta)`` -> ``(*, V, V)`` (default :func:`linear_distance`:
            the squared distance between vertices in map space).
        affinity: ``affinity(A, omega=omega)`` -> the affinity matrix (default: ``A`` itself).
        progressive_theta: Weight map ``k`` (of ``K``) by ``K - k`` (overrides ``theta``), so that the first
            map matters most and the last least.

    Returns:
        Shape ``(*)``: the broadcast batch shape of ``Q`` and ``A``.

    Example:
        >>> Q = torch.tensor([[0.0], [1.0], [3.0]])               # one map over 3 vertices
        >>> A = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])   # a path 0 - 1 - 2
        >>> connectopy(Q, A)                                     # 2 (1² + 2²)
        tensor(10.)
    """
    Q = check_floating_tensor("Q", Q, min_ndim=2)
    A = check_floating_tensor("A", A, min_ndim=2)
    if check_bool("progressive_theta", progressive_theta):
        theta = torch.arange(Q.shape[-1], 0, -1, dtype=Q.dtype, device=Q.device)
    dissimilarity = linear_distance if dissimilarity is None else check_callable("dissimilarity", dissimilarity)
    if affinity is not None:
        A = check_callable("affinity", affinity)(A, omega=omega)
    if D is not None:
        D = check_square("D", check_floating_tensor("D", D, min_ndim=2))
        check_size("D", D, -1, A.shape[-2], "one row and column per vertex of A")
        A = D @ A @ D.mT
    H = dissimilarity(Q, theta=theta)
    check_size("A (the affinity)", check_square("A (the affinity)", A), -1, H.shape[-1], "one row and column per "
               "vertex (row) of Q")
    dtype = compute_dtype(H, A)
    return (H.to(dtype) * A.to(dtype)).sum((-2, -1)).to(torch.promote_types(Q.dtype, A.dtype))


def modularity(
    Q: Tensor,
    A: Tensor,
    D: Optional[Tensor] = None,
    theta: Optional[Tensor] = None,
    *,
    gamma: float = 1.0,
    exclude_diag: bool = True,
) -> Tensor:
    r"""The relaxed Girvan-Newman modularity of a soft community assignment (hypercoil's ``modularity``):
    :func:`connectopy` with the coaffiliation as its dissimilarity and the modularity matrix as its affinity.

    .. math::
        \mathcal{Q} = \mathbf{1}^\top \big(D B D^\top \circ H\big) \mathbf{1}, \qquad
        B = \frac{A_+ - \gamma P_{GN}(A_+)}{\mathbf{1}^\top A_+ \mathbf{1}}, \quad
        H = \bar C \, \theta \, \bar C^\top

    with :math:`A_+ = \operatorname{relu}(A)`, :math:`\bar C = Q / \max(1, \max Q)` and the diagonal of
    :math:`H` zeroed if ``exclude_diag``. It is twice hypercoil's ``relaxed_modularity`` of an undirected
    graph, and, as in hypercoil, larger for a better partition: as ``Lambda`` is >= 0, maximise it through a
    negated scalarisation (``lambda f: lambda *a, **k: -mean_scalarise()(f)(*a, **k)``).

    Args:
        Q: Community affiliations, shape ``(*, V, K)`` (e.g. a softmax over the ``K`` communities).
        A: Adjacency matrix, shape ``(*, V, V)``.
        D: Optional ``(*, V, V)`` transform of the modularity matrix.
        theta: Coupling between communities, shape ``(*, K, K)`` (default the identity).
        gamma: Resolution of the modularity matrix.
        exclude_diag: Leave self-links out of the coaffiliation.

    Returns:
        Shape ``(*)``.

    Example:
        >>> A = torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
        >>> Q = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])   # the two components
        >>> modularity(Q, A)                                     # 4 linked pairs x (1 - 1/4) / 4
        tensor(0.7500)
    """
    gamma = check_real("gamma", gamma)
    exclude_diag = check_bool("exclude_diag", exclude_diag)
    if D is None:
        return _factorised_modularity(Q, A, theta, gamma, exclude_diag)

    def dissimilarity(Q: Tensor, theta: Optional[Tensor]) -> Tensor:
        return coaffiliation(Q, L=theta, normalise_coaffiliation=True, exclude_diag=exclude_diag)

    def affinity(A: Tensor, omega: float) -> Tensor:
        return modularity_matrix(check_square("A", A), gamma=omega, normalise_modularity=True)

    return connectopy(Q, A, D, theta, gamma, dissimilarity=dissimilarity, affinity=affinity)


def _factorised_modularity(Q: Tensor, A: Tensor, L: Optional[Tensor], gamma: float, exclude_diag: bool) -> Tensor:
    r""":func:`modularity` without ``D``, in :math:`O(V^2 K)` time and :math:`O(VK)` extra memory: neither
    :math:`B` nor :math:`H` (both :math:`V \times V`) is formed.

    With :math:`C = Q / \max(1, \max Q)`, :math:`k_i = A_+ \mathbf{1}`, :math:`k_o = A_+^\top \mathbf{1}`:
    :math:`\sum A_+ \circ C L C^\top = \sum (C L) \circ (A_+ C)` and
    :math:`\sum k_i k_o^\top \circ C L C^\top = (C^\top k_i)^\top L (C^\top k_o)`; the diagonal, if excluded,
    is subtracted term by term.
    """
    Q = check_floating_tensor("Q", Q, min_ndim=2)
    A = check_square("A", check_floating_tensor("A", A, min_ndim=2))
    check_size("Q", Q, -2, A.shape[-1], "one row per vertex of A")
    out_dtype, dtype = torch.promote_types(Q.dtype, A.dtype), compute_dtype(Q, A)
    A = torch.relu(A.to(dtype))
    C = Q.to(dtype)
    C = C / C.amax((-2, -1), keepdim=True).clamp_min(1)
    if L is not None:
        L = check_square("theta", check_floating_tensor("theta", L, min_ndim=2))
        check_size("theta", L, -2, C.shape[-1], "one row and column per community of Q")
    CL = C if L is None else C @ L.to(dtype)
    two_m = A.sum((-2, -1))
    k_in, k_out = A.sum(-1).unsqueeze(-1), A.sum(-2).unsqueeze(-1)
    observed = (CL * (A @ C)).sum((-2, -1))
    expected = ((CL * k_in).sum(-2) * (C * k_out).sum(-2)).sum(-1)
    value = observed - gamma * expected / two_m
    if exclude_diag:
        self_links = A.diagonal(dim1=-2, dim2=-1) - gamma * (k_in * k_out).squeeze(-1) / two_m.unsqueeze(-1)
        value = value - (self_links * (CL * C).sum(-1)).sum(-1)
    return (value / two_m).to(out_dtype)


def eigenmaps(Q: Tensor, A: Tensor, theta: Optional[Tensor] = None, *, normalise: bool = True) -> Tensor:
    r"""The Laplacian-eigenmaps functional (hypercoil's ``eigenmaps``): :func:`connectopy` with the squared
    distance in map space and the graph Laplacian as its affinity.

    .. math::
        \mathcal{E} = \sum_{ij} L_{ij} \lVert q_i - q_j \rVert_\theta^2 = -\sum_{i \neq j} \tilde W_{ij}
        \lVert q_i - q_j \rVert_\theta^2

    where :math:`L` is :func:`graph_laplacian` ``(A, normalise)`` and :math:`\tilde W` its (normalised)
    off-diagonal adjacency: the diagonal of :math:`L` meets the zero self-distances, so the value is minus the
    usual eigenmaps objective, as in hypercoil. hypercoil marks it illustrative; prefer an eigendecomposition
    of the Laplacian for exact maps.

    Args:
        Q: Proposed maps, shape ``(*, V, K)``.
        A: Adjacency matrix, shape ``(*, V, V)``.
        theta: Weights of the maps (a vector of ``K``) or a ``K x K`` matrix, as in :func:`linear_distance`.
        normalise: Use the degree-normalised Laplacian.

    Returns:
        Shape ``(*)``.

    Example:
        >>> Q = torch.tensor([[0.0], [1.0], [3.0]])
        >>> A = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        >>> eigenmaps(Q, A, normalise=False)                     # -2 (1² + 2²)
        tensor(-10.)
    """
    normalise = check_bool("normalise", normalise)

    def affinity(A: Tensor, omega: bool) -> Tensor:
        return graph_laplacian(A, normalise=omega)

    return connectopy(Q, A, theta=theta, omega=normalise, dissimilarity=linear_distance, affinity=affinity)


def _delete_diagonal(A: Tensor) -> Tensor:
    """``A`` with its main diagonal zeroed (differentiable, out of place)."""
    return A.diagonal_scatter(torch.zeros_like(A.diagonal(dim1=-2, dim2=-1)), dim1=-2, dim2=-1)
