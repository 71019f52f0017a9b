"""Initializers for connectomes: :func:`dale_`, a random weight matrix that obeys Dale's law."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from neuroreg._validation import check_dale_arguments, check_matrix

__all__ = ["dale_"]


def dale_(
    tensor: Tensor,
    inh_ratio: float = 0.5,
    rho: float = 0.99,
    inh_first: bool = True,
    seed: Optional[int] = None,
) -> Tensor:
    r"""Fill a 2-D tensor in place with a random connectome that obeys Dale's law, and return it.

    Entry :math:`(i, j)` is the connection from neuron :math:`i` (row) to neuron :math:`j` (column), so
    Dale's law (a neuron is either excitatory or inhibitory in all its outgoing connections) is a sign per
    row:

    .. math::
        W_{ij} = s_i \, m_{ij} \, b_{ij}, \qquad
        s_i = \begin{cases} -1 & i \text{ inhibitory} \\ +1 & \text{otherwise} \end{cases}, \quad
        m_{ij} = |z_{ij}|, \; z_{ij} \sim \mathcal{N}\!\Big(0, \frac{1}{N \rho}\Big)

    where :math:`b` is a mask with exactly ``round(rho * N * M)`` ones, placed uniformly at random. The
    scale :math:`1/\sqrt{N\rho}` (``N`` = number of rows, each column's fan-in) keeps every neuron's summed
    squared input weight near 1 whatever the density, and is finite at ``rho = 1`` (NeuroTorch's
    :math:`1/\sqrt{N\rho(1-\rho)}` is infinite there, and its ``dale_`` handles square tensors only).

    There are ``int(N * inh_ratio)`` inhibitory neurons (the product rounded to 9 decimals first, so that
    ``100 * 0.29`` counts 29): the first rows if ``inh_first``, else rows chosen at random.

    With a ``seed`` the values come from a private generator: the same seed gives the same tensor on every
    device and dtype, and torch's global generator is left untouched. With ``seed=None`` they are drawn from
    the global CPU generator (``torch.manual_seed`` makes them reproducible; successive calls differ).
    Runs under ``torch.no_grad()``, so a ``Parameter`` can be filled.

    Args:
        tensor: A 2-D floating-point tensor of shape ``(N, M)``, overwritten.
        inh_ratio: Fraction of inhibitory neurons (rows), in [0, 1].
        rho: Fraction of non-zero connections, in (0, 1]; ``rho = 1`` is fully connected.
        inh_first: Make the first rows inhibitory (else a random choice of rows).
        seed: Seed of the private generator (an int >= 0), or ``None`` for the global one.

    Returns:
        ``tensor`` itself.

    Example:
        >>> from neuroreg.init import dale_
        >>> w = dale_(torch.empty(4, 6), inh_ratio=0.25, rho=1.0, seed=0)
        >>> (w[0] < 0).all().item(), (w[1:] > 0).all().item()
        (True, True)
        >>> torch.equal(w, dale_(torch.empty(4, 6), inh_ratio=0.25, rho=1.0, seed=0))
        True
    """
    check_matrix("tensor", tensor)
    inh_ratio, rho, inh_first, seed = check_dale_arguments(inh_ratio, rho, inh_first, seed)
    n_rows, n_cols = tensor.shape
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    # Drawn on the CPU in float64 whatever the tensor: one seed then means one connectome on every device
    # and in every dtype.
    values = torch.randn(n_rows, n_cols, generator=generator, dtype=torch.float64).abs_()
    values.mul_(1.0 / math.sqrt(max(n_rows, 1) * rho))
    n_zero = n_rows * n_cols - round(rho * n_rows * n_cols)
    if n_zero > 0:
        values.view(-1)[torch.randperm(n_rows * n_cols, generator=generator)[:n_zero]] = 0.0
    n_inh = int(round(n_rows * inh_ratio, 9))
    inhibitory = torch.arange(n_inh) if inh_first else torch.randperm(n_rows, generator=generator)[:n_inh]
    values[inhibitory] = -values[inhibitory]
    with torch.no_grad():
        tensor.copy_(values)
    return tensor
