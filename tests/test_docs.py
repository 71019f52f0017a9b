"""The documentation builds offline with warnings as errors, and its API reference lists every public name."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest

import neuroreg

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The docs extra: sphinx, and matplotlib for the figures the examples draw at build time.
HAS_DOCS_EXTRA = all(importlib.util.find_spec(name) is not None for name in ("sphinx", "matplotlib"))
needs_sphinx = pytest.mark.skipif(not HAS_DOCS_EXTRA, reason="the docs extra (sphinx, matplotlib) is not installed")
# The first build also runs the drawing examples for their figures (then cached in docs/_figures/).
build_timeout = pytest.mark.timeout(1200)


def public_names() -> dict:
    """Module -> the names of its ``__all__`` that are not modules: what the API reference must list."""
    sys.path.insert(0, str(DOCS))
    try:
        import conf  # docs/conf.py: the list of public modules the reference is built from
    finally:
        sys.path.remove(str(DOCS))
    modules = {}
    for name in conf.public_modules():
        module = importlib.import_module(name)
        modules[name] = [
            attribute for attribute in module.__all__ if not isinstance(getattr(module, attribute), types.ModuleType)
        ]
    return modules


@needs_sphinx
def test_every_module_that_neuroreg_exports_is_in_the_reference():
    # A module added to neuroreg's __all__ (or an exported module's new name) is listed by itself: check the
    # list covers the modules the issue names.
    modules = public_names()
    for name in ("neuroreg", "neuroreg.functional", "neuroreg.scalarise", "neuroreg.schedules", "neuroreg.init",
                 "neuroreg.constraints", "neuroreg.updates", "neuroreg.callbacks", "neuroreg.integrations.lightning"):
        assert name in modules
    exported = {
        f"neuroreg.{name}" for name in neuroreg.__all__ if isinstance(getattr(neuroreg, name), types.ModuleType)
    }
    assert exported <= set(modules)


@pytest.fixture(scope="module")
def built_html(tmp_path_factory) -> Path:
    """One build of the docs, as CI runs it (``-W --keep-going``, nitpicky), into a temporary folder."""
    out = tmp_path_factory.mktemp("html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(out / ".doctrees"),
         str(DOCS), str(out)],
        capture_output=True, text=True, timeout=1100, cwd=ROOT, check=False,
    )
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout}\n{result.stderr}"
    return out


@needs_sphinx
@build_timeout
def test_docs_build_without_warnings(built_html: Path):
    for page in ("index", "getting_started", "usage", "trainers", "connectomes", "activity", "hypercoil",
                 "performance", "configs", "api", "examples/dale_rnn", "examples/parcellation"):
        assert (built_html / f"{page}.html").exists(), page
    # The example pages show the figures their scripts drew.
    for figure in ("dale_rnn.png", "parcellation.png", "firing_rates.png"):
        assert (built_html / "_images" / figure).stat().st_size > 10_000
    dale = (built_html / "examples" / "dale_rnn.html").read_text(encoding="utf-8")
    assert "_images/dale_rnn.png" in dale and "DaleSignPenalty" in dale


@needs_sphinx
@build_timeout
def test_api_reference_lists_every_public_name(built_html: Path):
    from sphinx.util.inventory import InventoryFile

    with open(built_html / "objects.inv", "rb") as stream:
        inventory = InventoryFile.load(stream, "", lambda base, uri: uri)
    documented = {name for entries in (inventory.data if hasattr(inventory, "data") else inventory).values()
                  for name in entries}
    missing = [f"{module}.{name}" for module, names in public_names().items() for name in names
               if f"{module}.{name}" not in documented]
    assert not missing, f"missing from the API reference: {missing}"
