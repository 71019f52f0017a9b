"""Initializers for connectomes: :func:`dale_`, a random weight matrix that obeys Dale's law."""

from __future__ import annotations

import math
from typing import Literal, Optional, Sequence, Tuple

import torch
from torch import Tensor

from neuroreg._validation import check_dale_arguments, check_dale_options, check_dale_shape, check_matrix

__all__ = ["dale_"]

Convention = Literal["i->j", "j->i"]
Draw = Literal["neuroreg", "neurotorch"]


def dale_(
    tensor: Tensor,
    inh_ratio: float = 0.5,
    rho: float = 0.99,
    inh_first: bool = True,
    seed: Optional[int] = None,
    *,
    convention: Convention = "i->j",
    draw: Draw = "neuroreg",
    balance: bool = False,
    spectral_radius: Optional[float] = None,
) -> Tensor:
    r"""Fill a 2-D tensor in place with a random connectome that obeys Dale's law, and return it.

    With ``convention="i->j"`` (the default) entry :math:`(i, j)` is the connection from neuron :math:`i`
    (row) to neuron :math:`j` (column), the layout of ``h @ W``, so Dale's law (a neuron is either excitatory
    or inhibitory in all its outgoing connections) is a sign per row:

    .. math::
        W_{ij} = s_i \, c_i \, m_{ij} \, b_{ij}, \qquad
        s_i = \begin{cases} -1 & i \text{ inhibitory} \\ +1 & \text{otherwise} \end{cases}, \quad
        m_{ij} = |z_{ij}|, \; z_{ij} \sim \mathcal{N}\!\Big(0, \frac{1}{N \rho}\Big)

    where :math:`b` is a mask with exactly ``round(rho * N * M)`` ones, placed uniformly at random, and
    :math:`c_i = 1` unless ``balance``. The scale :math:`1/\sqrt{N\rho}` (``N`` = number of presynaptic
    neurons, each postsynaptic neuron's fan-in) keeps every neuron's summed squared input weight near 1
    whatever the density, and is finite at ``rho = 1``. There are ``int(N * inh_ratio)`` inhibitory neurons
    (the product rounded to 9 decimals first, so that ``100 * 0.29`` counts 29): the first ones if
    ``inh_first``, else a random choice.

    ``convention="j->i"`` is the layout of ``W @ h`` (``nn.Linear``'s ``weight``, ``nn.RNN``'s
    ``weight_hh_l0``: row = postsynaptic neuron): the tensor is filled with the transpose of the ``"i->j"``
    draw of the transposed shape, so each *column* has one sign and the same seed gives the same network.

    ``balance=True`` scales the inhibitory weights by :math:`c_i = N_E / N_I` (Rajan & Abbott, 2006): each
    postsynaptic neuron's excitatory and inhibitory inputs then sum to zero in expectation. ``spectral_radius``
    rescales the result (once, here) so that its largest eigenvalue modulus is that value (square tensors).

    ``draw="neurotorch"`` reproduces NeuroTorch 0.0.2's ``neurotorch.init.dale_`` exactly, signs and
    magnitudes, for the same arguments and seed: its scale :math:`1/\sqrt{N\rho(1-\rho)}`, its zeros
    (``int((1 - rho) * len(triu))`` in each triangle), ``int(N * inh_ratio)`` inhibitory neurons, values
    drawn in the default dtype, and its ``seed=None``, a fresh unseeded generator, so every call gives the
    same tensor. Where NeuroTorch's draw is undefined (``rho = 1``: an infinite scale; a rectangular tensor)
    it is a ``ValueError``. NeuroTorch returns a new tensor and leaves its argument holding the draw before
    the absolute value; here the tensor is filled with what NeuroTorch returns.

    With a ``seed`` the values come from a private generator: the same seed gives the same tensor on every
    device and dtype, and torch's global generator is left untouched. With ``seed=None`` (neuroreg's draw)
    they are drawn from the global CPU generator (``torch.manual_seed`` makes them reproducible; successive
    calls differ). Runs under ``torch.no_grad()``, so a ``Parameter`` can be filled.

    Args:
        tensor: A 2-D floating-point tensor, overwritten: ``(N, M)`` for ``"i->j"``, ``(M, N)`` for ``"j->i"``,
            with ``N`` presynaptic and ``M`` postsynaptic neurons.
        inh_ratio: Fraction of inhibitory (presynaptic) neurons, in [0, 1].
        rho: Fraction of non-zero connections, in (0, 1]; ``rho = 1`` is fully connected.
        inh_first: Make the first neurons inhibitory (else a random choice).
        seed: Seed of the private generator (an int >= 0), or ``None``.
        convention: ``"i->j"`` (row = presynaptic neuron) or ``"j->i"`` (row = postsynaptic neuron).
        draw: ``"neuroreg"`` or ``"neurotorch"`` (NeuroTorch 0.0.2's numbers).
        balance: Scale the inhibitory weights by :math:`N_E / N_I` (needs both kinds of neuron).
        spectral_radius: If given (a real > 0), the spectral radius of the result.

    Returns:
        ``tensor`` itself.

    Example:
        >>> from neuroreg.init import dale_
        >>> w = dale_(torch.empty(4, 6), inh_ratio=0.25, rho=1.0, seed=0)
        >>> (w[0] < 0).all().item(), (w[1:] > 0).all().item()
        (True, True)
        >>> torch.equal(w, dale_(torch.empty(4, 6), inh_ratio=0.25, rho=1.0, seed=0))
        True
        >>> torch.equal(dale_(torch.empty(6, 4), 0.25, 1.0, seed=0, convention="j->i"), w.T)
        True
        >>> b = dale_(torch.empty(4, 4), inh_ratio=0.25, rho=1.0, seed=0, balance=True, spectral_radius=0.9)
        >>> round(torch.linalg.eigvals(b).abs().max().item(), 4)
        0.9
    """
    check_matrix("tensor", tensor)
    inh_ratio, rho, inh_first, seed = check_dale_arguments(inh_ratio, rho, inh_first, seed)
    convention, draw, balance, spectral_radius = check_dale_options(convention, draw, balance, spectral_radius)
    shape, n_inh = check_dale_draw(tensor.shape, inh_ratio, rho, convention, draw, balance, spectral_radius)
    n_pre = shape[0]
    if draw == "neurotorch":
        values, inhibitory = _neurotorch_draw(shape[0], n_inh, rho, inh_first, seed)
    else:
        values, inhibitory = _neuroreg_draw(shape, n_inh, rho, inh_first, seed)
    values[inhibitory] *= -(n_pre - n_inh) / n_inh if balance else -1.0
    if spectral_radius is not None:
        radius = float(torch.linalg.eigvals(values).abs().max())
        if radius == 0:
            raise ValueError(f"spectral_radius: the drawn matrix has spectral radius 0 (shape {shape}, rho={rho})")
        values *= spectral_radius / radius
    with torch.no_grad():
        tensor.copy_(values if convention == "i->j" else values.T)
    return tensor


def check_dale_draw(
    tensor_shape: Sequence[int],
    inh_ratio: float,
    rho: float,
    convention: str,
    draw: str,
    balance: bool = False,
    spectral_radius: Optional[float] = None,
) -> Tuple[Tuple[int, int], int]:
    """The ``(presynaptic, postsynaptic)`` shape of a tensor's draw and its number of inhibitory neurons,
    after checking (through :func:`~neuroreg._validation.check_dale_shape`) that the draw is defined.

    Takes arguments already checked by :func:`dale_`'s other checks; the Dale penalties call it for every
    weight before drawing any, so a refused weight leaves every generator untouched.
    """
    shape = tuple(tensor_shape) if convention == "i->j" else tuple(tensor_shape)[::-1]
    # NeuroTorch truncates the product; neuroreg rounds it to 9 decimals first (100 * 0.29 is 28.99...).
    n_inh = int(shape[0] * inh_ratio) if draw == "neurotorch" else int(round(shape[0] * inh_ratio, 9))
    check_dale_shape(shape, n_inh, rho, draw, balance, spectral_radius)
    return shape, n_inh


def _neuroreg_draw(
    shape: Tuple[int, int], n_inh: int, rho: float, inh_first: bool, seed: Optional[int]
) -> Tuple[Tensor, Tensor]:
    """Non-negative magnitudes of shape ``(N, M)`` in float64, and the indices of the inhibitory rows."""
    n_rows, n_cols = shape
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    # Drawn on the CPU in float64 whatever the tensor: one seed then means one connectome on every device
    # and in every dtype.
    values = torch.randn(n_rows, n_cols, generator=generator, dtype=torch.float64).abs_()
    values.mul_(1.0 / math.sqrt(max(n_rows, 1) * rho))
    n_zero = n_rows * n_cols - round(rho * n_rows * n_cols)
    if n_zero > 0:
        values.view(-1)[torch.randperm(n_rows * n_cols, generator=generator)[:n_zero]] = 0.0
    inhibitory = torch.arange(n_inh) if inh_first else torch.randperm(n_rows, generator=generator)[:n_inh]
    return values, inhibitory


def _neurotorch_draw(n: int, n_inh: int, rho: float, inh_first: bool, seed: Optional[int]) -> Tuple[Tensor, Tensor]:
    """NeuroTorch 0.0.2's ``dale_`` magnitudes (``n x n``, as float64) and inhibitory rows, call for call.

    The generator calls, their order, sizes and dtype (the default one) are NeuroTorch's, so the same seed
    gives the same numbers; the upper triangle (with the diagonal) takes one draw, the lower triangle (with
    the diagonal again, overwriting it) the other.
    """
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    rows, cols = torch.triu_indices(n, n)
    n_zero = int((1 - rho) * len(rows))
    std = 1 / math.sqrt(n * rho * (1 - rho))
    upper, lower = (
        torch.cat((torch.zeros(n_zero), torch.normal(0, std, (len(rows) - n_zero,), generator=generator)))
        for _ in range(2)
    )
    upper_order = torch.randperm(len(upper), generator=generator)
    lower_order = torch.randperm(len(lower), generator=generator)
    values = torch.empty(n, n, dtype=upper.dtype)
    values[rows, cols] = upper[upper_order]
    values[cols, rows] = lower[lower_order]
    inhibitory = torch.arange(n_inh) if inh_first else torch.randperm(n, generator=generator)[:n_inh]
    return values.abs_().to(torch.float64), inhibitory
