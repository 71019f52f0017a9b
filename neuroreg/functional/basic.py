"""hypercoil's elementary score functions: ``identity``, ``zero``, ``difference``, the constraint
violations (``constraint_violation``, ``unilateral_loss``, ``hinge_loss``) and ``bimodal_symmetric``."""

from __future__ import annotations

import functools
from typing import Callable, Sequence, Tuple

import torch
from torch import Tensor

from neuroreg._validation import (
    check_bool,
    check_broadcastable,
    check_callables,
    check_floating_tensor,
    check_real_pair,
)

__all__ = [
    "bimodal_symmetric",
    "constraint_violation",
    "difference",
    "hinge_loss",
    "identity",
    "unilateral_loss",
    "zero",
]


def identity(X: Tensor) -> Tensor:
    r"""The identity score, :math:`f(X) = X` (the default score of a scalarisation and of ``NormedLoss``).

    Example:
        >>> identity(torch.tensor([1.0, -2.0]))
        tensor([ 1., -2.])
    """
    return X


def zero(X: Tensor, *, broadcast: bool = False) -> Tensor:
    r"""The zero score, :math:`f(X) = 0`: the constraint that every input satisfies.

    Args:
        X: A floating-point tensor.
        broadcast: Return zeros of ``X``'s shape; else a 0-d zero (hypercoil returns the float ``0.0``),
            both in ``X``'s dtype and on its device.

    Example:
        >>> zero(torch.ones(2)), zero(torch.ones(2), broadcast=True)
        (tensor(0.), tensor([0., 0.]))
    """
    X = check_floating_tensor("X", X)
    return torch.zeros_like(X) if check_bool("broadcast", broadcast) else X.new_zeros(())


def difference(X: Tensor, Y: Tensor) -> Tensor:
    r"""The difference score, :math:`f(X, Y) = X - Y` (``MSELoss`` is its mean square).

    Args:
        X: Floating-point tensor.
        Y: Floating-point tensor of a shape that broadcasts with ``X``'s.

    Returns:
        The broadcast difference.

    Example:
        >>> difference(torch.tensor([3.0, 1.0]), torch.tensor(1.0))
        tensor([2., 0.])
    """
    check_floating_tensor("X", X)
    check_floating_tensor("Y", Y)
    check_broadcastable("X", X, "Y", Y)
    return X - Y


def constraint_violation(
    X: Tensor, *, constraints: Sequence[Callable[[Tensor], Tensor]], broadcast_against_input: bool = False
) -> Tensor:
    r"""The largest violation of any constraint :math:`c_k(X) \le 0`, and 0 where all are satisfied.

    .. math::
        f(X) = \max\big(0, c_1(X), \dots, c_K(X)\big) \quad \text{(elementwise, broadcast)}

    ``constraints=(identity,)`` penalises positive elements (:func:`unilateral_loss`), ``lambda x: -x``
    negative ones, ``lambda x: x @ A - b`` an affine inequality. The result has the broadcast shape of the
    constraints' outputs (and of ``X`` with ``broadcast_against_input``): a constraint whose output is
    smaller than ``X`` therefore weighs less in a mean than one of ``X``'s size.

    Args:
        X: Floating-point tensor.
        constraints: Sequence of functions ``X -> tensor``, each satisfied where it is <= 0.
        broadcast_against_input: Broadcast the result against ``X``'s shape.

    Returns:
        The elementwise maximum violation.

    Example:
        >>> X = torch.tensor([[1.0, -1.0], [-2.0, 1.0], [-1.0, 2.0], [0.0, 0.0]])
        >>> constraint_violation(X, constraints=(lambda x: x @ torch.ones(2, 1),)).flatten()
        tensor([0., 0., 1., 0.])
    """
    X = check_floating_tensor("X", X)
    constraints = check_callables("constraints", constraints)
    broadcast = check_bool("broadcast_against_input", broadcast_against_input)
    values = (zero(X, broadcast=broadcast), *(constraint(X) for constraint in constraints))
    return functools.reduce(torch.maximum, values)


def unilateral_loss(X: Tensor) -> Tensor:
    r"""The violation of :math:`X \le 0`: :math:`f(X) = \max(X, 0)` elementwise.

    The special case of :func:`constraint_violation` with the identity constraint.

    Example:
        >>> unilateral_loss(torch.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 2.])
    """
    return constraint_violation(X, constraints=(identity,))


def hinge_loss(Y_hat: Tensor, Y: Tensor) -> Tensor:
    r"""The hinge loss of support vector machines, elementwise: :math:`f(\hat Y, Y) = \max(1 - Y \hat Y, 0)`.

    Args:
        Y_hat: Predicted scores, floating point.
        Y: Labels in :math:`\{-1, 1\}`, of a shape that broadcasts with ``Y_hat``'s.

    Example:
        >>> hinge_loss(torch.zeros(3), torch.tensor([-1.0, 1.0, 1.0])).sum()
        tensor(3.)
    """
    check_floating_tensor("Y_hat", Y_hat)
    check_floating_tensor("Y", Y)
    check_broadcastable("Y_hat", Y_hat, "Y", Y)
    return unilateral_loss(1 - Y * Y_hat)


def bimodal_symmetric(X: Tensor, *, modes: Tuple[float, float] = (0, 1)) -> Tensor:
    r"""Distance of each element from the nearer of two modes.

    .. math::
        f(X) = \big|\, |X - \mu| - s \,\big|, \qquad \mu = \tfrac{m_1 + m_2}{2}, \; s = \max(m_1, m_2) - \mu

    Penalising it concentrates weights at the two modes (0 and 1, or -1 and 1).

    Args:
        X: Floating-point tensor.
        modes: The two modes, reals in any order.

    Returns:
        A tensor of ``X``'s shape.

    Example:
        >>> bimodal_symmetric(torch.tensor([0.2, 1.2, 0.5]))
        tensor([0.2000, 0.2000, 0.5000])
    """
    X = check_floating_tensor("X", X)
    first, second = check_real_pair("modes", modes)
    mean = (first + second) / 2
    return ((X - mean).abs() - (max(first, second) - mean)).abs()
