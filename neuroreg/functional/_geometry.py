"""Geometry behind the spatial and graph losses (hypercoil's ``cmass_coor``, ``spherical_geodesic``,
``linear_distance`` and ``sym2vec``): centres of mass, great-circle and Mahalanobis distances, and the upper
triangle of a block of matrices."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from neuroreg._validation import check_floating_tensor, check_int, check_real, check_size, check_square

__all__ = ["cmass_coor", "linear_distance", "spherical_geodesic", "sym2vec"]


def sym2vec(sym: Tensor, offset: int = 1) -> Tensor:
    r"""The upper triangle of each matrix in a block, ravelled row by row (hypercoil's ``sym2vec``).

    .. math::
        v = \big(S_{ij}\big)_{j - i \geq \text{offset}}

    Args:
        sym: Floating-point tensor of shape ``(*, n, n)``.
        offset: First diagonal kept: 1 (default) leaves out the main diagonal, 0 keeps it.

    Returns:
        Shape ``(*, n (n - 1) / 2)`` for ``offset=1``, in ``sym``'s dtype.

    Example:
        >>> sym2vec(torch.arange(9.0).reshape(3, 3))
        tensor([1., 2., 5.])
    """
    sym = check_square("sym", check_floating_tensor("sym", sym, min_ndim=2))
    offset = check_int("offset", offset)
    rows, columns = torch.triu_indices(sym.shape[-2], sym.shape[-1], offset, device=sym.device)
    return sym[..., rows, columns]


def linear_distance(X0: Tensor, X1: Optional[Tensor] = None, theta: Optional[Tensor] = None) -> Tensor:
    r"""Squared Euclidean distance between every pair of rows, or squared Mahalanobis distance with ``theta``
    (hypercoil's ``linear_distance``).

    .. math::
        D_{ij} = (x_i - y_j)^\top \Theta \, (x_i - y_j)

    Args:
        X0: Observations in rows, shape ``(*, N, P)``.
        X1: Second set of observations, shape ``(*, M, P)`` (default ``X0``).
        theta: ``None`` for :math:`\Theta = I`; a vector of ``P`` weights (shape ``(P,)`` or ``(*, P)``) for a
            diagonal :math:`\Theta`; or a ``(P, P)`` (or ``(*, P, P)``) matrix.

    Returns:
        Shape ``(*, N, M)``, in the promoted dtype of the inputs.

    Example:
        >>> linear_distance(torch.tensor([[0.0, 0.0], [1.0, 2.0]]))
        tensor([[0., 5.],
                [5., 0.]])
        >>> linear_distance(torch.tensor([[0.0, 0.0], [1.0, 2.0]]), theta=torch.tensor([1.0, 0.0]))
        tensor([[0., 1.],
                [1., 0.]])
    """
    X0 = check_floating_tensor("X0", X0, min_ndim=2)
    X1 = X0 if X1 is None else check_size("X1", check_floating_tensor("X1", X1, min_ndim=2), -1, X0.shape[-1],
                                          "as many features as X0")
    # Differences rather than |x|² + |y|² - 2x·y: exact zeros on the diagonal and no cancellation.
    D = X0.unsqueeze(-2) - X1.unsqueeze(-3)
    if theta is None:
        return D.square().sum(-1)
    theta = check_floating_tensor("theta", theta, min_ndim=1)
    if theta.ndim == 1 or theta.shape[-1] != theta.shape[-2]:
        theta = check_size("theta", theta, -1, X0.shape[-1], "one weight per feature of X0")
        return (D.square() * theta.unsqueeze(-2).unsqueeze(-2)).sum(-1)
    theta = check_size("theta", theta, -1, X0.shape[-1], "one row and column per feature of X0")
    return ((D @ theta.unsqueeze(-3)) * D).sum(-1)


def spherical_geodesic(X: Tensor, Y: Optional[Tensor] = None, r: float = 1.0) -> Tensor:
    r"""Great-circle distance between every pair of points given as vectors in 3-D space (hypercoil's
    ``spherical_geodesic``).

    .. math::
        d_{ij} = r \operatorname{atan2}\!\big(\lVert x_i \times y_j \rVert, \; x_i \cdot y_j\big)

    The angle between the vectors, so their lengths do not matter. Where two points coincide the gradient is
    0 (hypercoil's is NaN there: the norm of the cross product is not differentiable at 0).

    Args:
        X: Points, shape ``(*, N, 3)``.
        Y: Second set of points, shape ``(*, M, 3)`` (default ``X``).
        r: Radius of the sphere.

    Returns:
        Shape ``(*, N, M)``, in ``[0, \pi r]``.

    Example:
        >>> points = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [-1.0, 0.0, 0.0]])
        >>> spherical_geodesic(points[:1], points, r=2.0) / torch.pi
        tensor([[0., 1., 2.]])
    """
    X = check_size("X", check_floating_tensor("X", X, min_ndim=2), -1, 3, "3-D coordinates in its last dimension")
    Y = X if Y is None else check_size("Y", check_floating_tensor("Y", Y, min_ndim=2), -1, 3,
                                       "3-D coordinates in its last dimension")
    r = check_real("r", r)
    # The dot products as one matrix product; the cross products broadcast (N, 1, 3) against (1, M, 3).
    # vector_norm's gradient at 0 (coinciding points) is 0, where a square root's would be NaN.
    sine = torch.linalg.vector_norm(torch.linalg.cross(X.unsqueeze(-2), Y.unsqueeze(-3), dim=-1), dim=-1)
    return torch.atan2(sine, X @ Y.mT) * r


def cmass_coor(X: Tensor, coor: Tensor, radius: Optional[float] = None) -> Tensor:
    r"""Centre of mass of each row of a weight, given the coordinates of its columns (hypercoil's
    ``cmass_coor``).

    .. math::
        c_w = \frac{\sum_l X_{wl} \, C_{:,l}}{\sum_l X_{wl}}, \qquad
        \text{with a radius: } c_w \leftarrow r \frac{c_w}{\lVert c_w \rVert_2}

    Args:
        X: Weights, shape ``(*, W, L)``: ``W`` objects (parcels) over ``L`` locations (voxels, vertices).
        coor: Coordinates of the locations, shape ``(*, D, L)``.
        radius: ``None`` for Euclidean space; else the centres are projected onto the sphere of this radius.

    Returns:
        Shape ``(*, D, W)``: one column per object, in the promoted dtype of ``X`` and ``coor``. A row of
        zero mass has an undefined (NaN) centre.

    Example:
        >>> coor = torch.tensor([[0.0, 2.0, 4.0]])                # 1-D locations 0, 2, 4
        >>> cmass_coor(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 3.0]]), coor)
        tensor([[1.0000, 3.5000]])
    """
    X = check_floating_tensor("X", X, min_ndim=2)
    coor = check_size("coor", check_floating_tensor("coor", coor, min_ndim=2), -1, X.shape[-1],
                      "one column per location (column) of X")
    centres = (coor @ X.mT) / X.sum(-1).unsqueeze(-2)
    if radius is None:
        return centres
    radius = check_real("radius", radius)
    return radius * centres / torch.linalg.vector_norm(centres, dim=-2, keepdim=True)
