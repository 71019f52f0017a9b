"""hypercoil's connectopic losses: the generalised connectopic functional, relaxed modularity and Laplacian
eigenmaps."""

from __future__ import annotations

from typing import Any, Callable, Optional

from torch import Tensor

from neuroreg._validation import check_bool, check_callable, check_real
from neuroreg.base import LambdaLike, ParamsLike
from neuroreg.functional.graph import connectopy, eigenmaps, modularity
from neuroreg.losses._arguments import _ArgumentsLoss
from neuroreg.scalarise import Scalarisation, mean_scalarise

__all__ = ["ConnectopyLoss", "EigenmapsLoss", "ModularityLoss"]


class ConnectopyLoss(_ArgumentsLoss):
    r"""The generalised connectopic functional (hypercoil's ``ConnectopyLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, \mathbf{1}^\top \big(D \operatorname{affinity}_\omega(A)
        D^\top \circ S_\theta(Q)\big) \mathbf{1}

    Args:
        params: ``None`` to call it as ``loss(Q, A, D=None, theta=None, omega=None)``; or maps ``(V, K)`` to
            hold, called as ``loss()`` on the bound ``A`` (and ``D``).
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        theta: Parameter of the dissimilarity (a buffer), overridden by a call's ``theta``.
        omega: Parameter of the affinity (a buffer if a tensor), overridden by a call's ``omega``.
        dissimilarity: As in :func:`neuroreg.functional.connectopy`.
        affinity: As in :func:`neuroreg.functional.connectopy`.
        progressive_theta: As in :func:`neuroreg.functional.connectopy`.
        A: Affinity matrix ``(V, V)`` to bind (a buffer; needed with ``params``), or ``None``.
        D: Transform ``(V, V)`` to bind (a buffer), or ``None``.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> A = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        >>> nr.ConnectopyLoss()(torch.tensor([[0.0], [1.0], [3.0]]), A)
        tensor(10.)
    """

    arguments = ("Q", "A", "D", "theta", "omega")
    held = ("Q",)
    optional = frozenset({"D", "theta", "omega"})
    untyped = frozenset({"omega"})

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        theta: Optional[Tensor] = None,
        omega: Optional[Any] = None,
        dissimilarity: Optional[Callable[..., Tensor]] = None,
        affinity: Optional[Callable[..., Tensor]] = None,
        progressive_theta: bool = False,
        A: Optional[Tensor] = None,
        D: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {
            "dissimilarity": None if dissimilarity is None else check_callable("dissimilarity", dissimilarity),
            "affinity": None if affinity is None else check_callable("affinity", affinity),
            "progressive_theta": check_bool("progressive_theta", progressive_theta),
        }
        super().__init__(
            params, Lambda, score=connectopy, options=options, scalarisation=scalarisation or mean_scalarise(),
            bound={"A": A, "D": D, "theta": theta, "omega": omega}, nu=nu, name=name, **kwargs,
        )


class ModularityLoss(_ArgumentsLoss):
    r"""The relaxed Girvan-Newman modularity of soft community affiliations (hypercoil's ``ModularityLoss``).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean}\, \mathbf{1}^\top \big(D B D^\top \circ H\big) \mathbf{1},
        \qquad B = \frac{A_+ - \gamma P_{GN}(A_+)}{\mathbf{1}^\top A_+ \mathbf{1}}, \quad H = \bar Q \theta \bar Q^\top

    As in hypercoil the value is larger for a better partition (see :func:`neuroreg.functional.modularity`).

    Args:
        params: ``None`` to call it as ``loss(Q, A, D=None, theta=None)``; or affiliations ``(V, K)`` to hold,
            called as ``loss()`` on the bound ``A``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        theta: Coupling between communities ``(K, K)`` (a buffer), overridden by a call's ``theta``.
        gamma: As in :func:`neuroreg.functional.modularity`.
        exclude_diag: As in :func:`neuroreg.functional.modularity`.
        A: Adjacency matrix ``(V, V)`` to bind (a buffer; needed with ``params``), or ``None``.
        D: Transform ``(V, V)`` to bind (a buffer), or ``None``.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> A = torch.block_diag(torch.ones(2, 2), torch.ones(2, 2)) - torch.eye(4)   # two linked pairs
        >>> nr.ModularityLoss(A=A)(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
        tensor(0.7500)
    """

    arguments = ("Q", "A", "D", "theta")
    held = ("Q",)
    optional = frozenset({"D", "theta"})

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        theta: Optional[Tensor] = None,
        gamma: float = 1.0,
        exclude_diag: bool = True,
        A: Optional[Tensor] = None,
        D: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        options = {"gamma": check_real("gamma", gamma), "exclude_diag": check_bool("exclude_diag", exclude_diag)}
        super().__init__(
            params, Lambda, score=modularity, options=options, scalarisation=scalarisation or mean_scalarise(),
            bound={"A": A, "D": D, "theta": theta}, nu=nu, name=name, **kwargs,
        )


class EigenmapsLoss(_ArgumentsLoss):
    r"""The Laplacian-eigenmaps functional (hypercoil's ``eigenmaps``, as a module on the pattern of its
    ``ConnectopyLoss``; hypercoil 0.1.0.dev1 has the function but no module).

    .. math::
        \mathcal{L} = \Lambda \, \operatorname{mean} \sum_{ij} L_{ij} \lVert q_i - q_j \rVert_\theta^2

    Args:
        params: ``None`` to call it as ``loss(Q, A, theta=None)``; or maps ``(V, K)`` to hold, called as
            ``loss()`` on the bound ``A``.
        Lambda: Weight of the penalty (or a schedule); ``nu`` is hypercoil's name for it.
        theta: Weights of the maps (a buffer), overridden by a call's ``theta``.
        normalise: As in :func:`neuroreg.functional.eigenmaps`.
        A: Adjacency matrix ``(V, V)`` to bind (a buffer; needed with ``params``), or ``None``.
        scalarisation: A map from :mod:`neuroreg.scalarise` (default ``mean_scalarise()``).
        name: Name in logs and checkpoints.
        nu: hypercoil's name for ``Lambda`` (give one, or equal values).
        **kwargs: As in :class:`~neuroreg.EquilibriumLoss`.

    Example:
        >>> import torch, neuroreg as nr
        >>> A = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        >>> nr.EigenmapsLoss(normalise=False)(torch.tensor([[0.0], [1.0], [3.0]]), A)
        tensor(-10.)
    """

    arguments = ("Q", "A", "theta")
    held = ("Q",)
    optional = frozenset({"theta"})

    def __init__(
        self,
        params: ParamsLike = None,
        Lambda: LambdaLike = 1.0,
        *,
        theta: Optional[Tensor] = None,
        normalise: bool = True,
        A: Optional[Tensor] = None,
        scalarisation: Optional[Scalarisation] = None,
        name: Optional[str] = None,
        nu: Optional[LambdaLike] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, Lambda, score=eigenmaps, options={"normalise": check_bool("normalise", normalise)},
            scalarisation=scalarisation or mean_scalarise(), bound={"A": A, "theta": theta}, nu=nu, name=name,
            **kwargs,
        )
