"""Which parameters a regularization acts on, by kind rather than by name: predicates for ``select=``.

Every parameter regularization takes ``select=``, a predicate ``(name, param, module) -> bool`` applied
together with the ``include``/``exclude`` name patterns; ``module`` is the module that owns the parameter (the
parametrized module for a parametrized tensor), or ``None`` when the parameters were given as a dict or an
iterable. What was selected is in ``reg.param_names``; selecting nothing warns.

Example:
    >>> import torch, neuroreg as nr
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2))
    >>> nr.L2(model, squared=True, select=nr.select.no_decay).param_names
    ['0.weight', '2.weight']
    >>> nr.L1(model, select=nr.select.module_types(torch.nn.LayerNorm)).param_names
    ['1.weight', '1.bias']
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple, Type

from torch import nn

__all__ = ["NORMALIZATION_TYPES", "Predicate", "module_types", "no_decay", "recurrent", "weights"]

#: ``select(name, param, module) -> bool``.
Predicate = Callable[[str, nn.Parameter, Optional[nn.Module]], bool]

#: The normalisation layers whose parameters (scales and shifts) :func:`no_decay` leaves out.
NORMALIZATION_TYPES: Tuple[Type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,   # BatchNorm*, InstanceNorm*, SyncBatchNorm, their lazy forms
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)

#: The embedding layers whose tables :func:`no_decay` leaves out.
EMBEDDING_TYPES: Tuple[Type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def _leaf(name: str) -> str:
    """The parameter's own attribute name (``rnn.weight_hh_l0`` -> ``weight_hh_l0``)."""
    return name.rpartition(".")[2]


def weights(name: str, param: nn.Parameter, module: Optional[nn.Module]) -> bool:
    """Parameters with at least two dimensions: weight matrices and convolution kernels, not biases, gains or
    scalars.

    Example:
        >>> import torch
        >>> w, b = torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(3))
        >>> weights("0.weight", w, None), weights("0.bias", b, None)
        (True, False)
    """
    return param.ndim >= 2


def _is_bias(name: str) -> bool:
    # `bias`, and the biases of recurrent and attention layers (`bias_ih_l0`, `in_proj_bias`, `bias_k`).
    leaf = _leaf(name)
    return leaf.startswith("bias") or leaf.endswith("bias")


def no_decay(name: str, param: nn.Parameter, module: Optional[nn.Module]) -> bool:
    """The usual weight-decay selection: every parameter except biases, the parameters of normalisation
    layers (:data:`NORMALIZATION_TYPES`) and embedding tables (``nn.Embedding``, ``nn.EmbeddingBag``), as in
    the ``no_decay`` lists of transformer training scripts.

    Biases are known by name (``bias``, ``bias_ih_l0``, ``in_proj_bias``, ...), so they are left out for a dict
    of parameters too; the layer types need the owning module, so they are recognised only when a module was
    given.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
        >>> [name for name, p in model.named_parameters() if no_decay(name, p, model.get_submodule(name[0]))]
        ['1.weight']
    """
    if _is_bias(name):
        return False
    return not isinstance(module, NORMALIZATION_TYPES + EMBEDDING_TYPES)


def module_types(*types: Type[nn.Module]) -> Predicate:
    """A predicate keeping the parameters owned by modules of the given types (``isinstance``, so subclasses
    count).

    Raises:
        TypeError: No type is given, or one of them is not a subclass of ``nn.Module``.

    Example:
        >>> import torch
        >>> convs = module_types(torch.nn.Conv1d, torch.nn.Conv2d)
        >>> convs("0.weight", torch.nn.Parameter(torch.zeros(1)), torch.nn.Conv2d(1, 1, 1))
        True
    """
    if not types or not all(isinstance(kind, type) and issubclass(kind, nn.Module) for kind in types):
        raise TypeError(f"module_types takes one or more nn.Module subclasses, got {types!r}")

    def owned_by(name: str, param: nn.Parameter, module: Optional[nn.Module]) -> bool:
        return isinstance(module, types)

    owned_by.__name__ = owned_by.__qualname__ = f"module_types({', '.join(kind.__name__ for kind in types)})"
    return owned_by


def recurrent(name: str, param: nn.Parameter, module: Optional[nn.Module]) -> bool:
    """The hidden-to-hidden (recurrent) weights: ``weight_hh_l{k}`` (and ``_reverse``) of ``nn.RNN``, ``nn.LSTM``
    and ``nn.GRU``, ``weight_hh`` of their cells, and NeuroTorch's recurrent weights (the Parameter a layer's
    ``get_recurrent_weights_parameter()`` returns, ``_recurrent_weights`` of its ``LIFLayer``, ``WilsonCowanLayer``,
    ...; not the sign parameters or the mask).

    The torch layers' weights are known by name, so they are found in a dict of parameters too.

    Example:
        >>> import torch
        >>> lstm = torch.nn.LSTM(3, 4, num_layers=2)
        >>> [name for name, p in lstm.named_parameters() if recurrent(name, p, lstm)]
        ['weight_hh_l0', 'weight_hh_l1']
    """
    if _leaf(name).startswith("weight_hh"):
        return module is None or isinstance(module, (nn.RNNBase, nn.RNNCellBase))
    getter = getattr(module, "get_recurrent_weights_parameter", None)
    if getter is None:
        return False
    try:
        return getter() is param
    except (AttributeError, RuntimeError):   # a NeuroTorch layer not built yet holds no recurrent weights
        return False
