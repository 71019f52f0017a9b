"""The real NeuroTorch for the tests, importable beside the CPU build of torch.

NeuroTorch 0.0.2 imports ``torchvision.transforms.Compose`` and ``Lambda`` at import time and nothing else of
torchvision. The torchvision wheel on the registry is built for the CUDA torch and does not load beside the
CPU wheel, so where torchvision itself does not import, :func:`import_neurotorch` puts a stand-in module with
those two classes in ``sys.modules`` first. Only the tests use it; neuroreg never depends on it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any, Callable, Iterable

import pytest


class Compose:
    """torchvision's ``Compose``: applies the transforms in order."""

    def __init__(self, transforms: Iterable[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, value: Any) -> Any:
        for transform in self.transforms:
            value = transform(value)
        return value


class Lambda:
    """torchvision's ``Lambda``: a function as a transform."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.lambd = function

    def __call__(self, value: Any) -> Any:
        return self.lambd(value)


def _drop_torchvision() -> None:
    for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
        del sys.modules[name]


def import_neurotorch() -> types.ModuleType:
    """``neurotorch``, imported for real; the calling test is skipped where it is not installed.

    The stand-in is in ``sys.modules`` only while NeuroTorch imports (it binds the two classes then): left
    there, it would tell other packages' ``importlib.util.find_spec("torchvision")`` probes that torchvision
    is installed.
    """
    if importlib.util.find_spec("neurotorch") is None:
        pytest.skip("neurotorch is not installed (pip install --no-deps neurotorch==0.0.2, see .ci/run)")
    if "neurotorch" in sys.modules:
        return sys.modules["neurotorch"]
    try:
        import torchvision.transforms  # noqa: F401
    except Exception:  # ImportError, or the RuntimeError of a torchvision built for another torch
        _drop_torchvision()
        package, transforms = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
        transforms.Compose, transforms.Lambda = Compose, Lambda
        package.transforms = transforms
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = package, transforms
        try:
            import neurotorch
        finally:
            _drop_torchvision()
        return neurotorch
    import neurotorch

    return neurotorch
