"""Sphinx configuration of neuroreg's documentation.

Build (offline, warnings as errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The topic pages take their text from README.rst, section by section (``.. readme-section::``), so the two
never disagree; the API reference lists every public module and, through ``__all__``, every public name
(``.. neuroreg-api::``); the example pages show the scripts and the figures they draw, which are made at
build time into docs/_figures/ and remade only when a script changes.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar, List

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import neuroreg  # noqa: E402

project = "neuroreg"
author = "neuroreg developers"
copyright = "neuroreg developers"
release = version = neuroreg.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "sphinx.ext.autosectionlabel"]
# Section titles are link targets (README's `Title`_ links across pages); a title used on two pages (the
# "Example:" of many docstrings) links to the first.
suppress_warnings = ["autosectionlabel.*"]
exclude_patterns = ["_build", "_figures"]
html_theme = "alabaster"
# Wide enough for the examples' 120-column code without a scroll bar.
html_theme_options = {
    "description": "PyTorch regularizations for models of the brain",
    "page_width": "1240px",
    "body_max_width": "none",
}
html_static_path: List[str] = []

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Doctest examples are tested by pytest; in the docs they are shown as they are.
trim_doctest_flags = True

# Every cross-reference must resolve, except to the libraries neuroreg builds on: without intersphinx (the
# build is offline, and no inventories are shipped) their objects have no target here.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|nn|numpy|np|lightning|pytorch_lightning|neurotorch|collections|typing|weakref)(\..*)?"),
    (r"py:.*", r"(Tensor|Parameter|Module|Optimizer|Callable|Iterable|Iterator|Sequence|Mapping|Any|Optional|"
               r"Union|Literal|Tuple|List|Dict|FrozenSet|ClassVar|Generator|ModuleList|ParameterList|dtype|device)"),
    (r"py:class", r"(int|float|bool|str|bytes|object|type|dict|list|tuple|set|frozenset|callable)"),
]


def _lookup(path: str) -> Any:
    """The object a dotted path names (a module, then attributes), or ``None``."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj
    return None


def resolve_inherited_or_undocumented(app, env, node, contnode):
    """``missing-reference``: a Python reference Sphinx did not find.

    - A member inherited from a documented base class (``:meth:`attach``` in ``RegularizationList``'s
      docstring) links to the base's entry; a name of a neuroreg module given relative to another
      (``Configurable.get_config``) links to its entry.
    - A name of neuroreg's that exists but has no entry of its own (a private helper or base, a type alias
      such as ``LambdaLike``, an instance attribute set in ``__init__``, a function its module does not
      export) is shown as code, not a link: there is nothing to link to.
    - Anything else (a name that does not exist) stays a warning, so that stale references fail the build.
    """
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    target, module, cls_name = node["reftarget"].lstrip("~."), node.get("py:module"), node.get("py:class")

    def link(candidate: str):
        node["reftarget"] = candidate
        return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode)

    prefix, _, attribute = target.rpartition(".")
    owners = []
    for path in ([f"{module}.{cls_name}"] if module and cls_name else []) + ([prefix] if prefix else []):
        owner = _lookup(path) if path else None
        if isinstance(owner, type):
            owners.extend(owner.__mro__)
    for base in owners:
        qualname = base.__qualname__
        for candidate in (f"neuroreg.{qualname}.{attribute}", f"{base.__module__}.{qualname}.{attribute}"):
            if candidate in domain.objects:
                return link(candidate)
    ours = sorted(name for name in sys.modules if name == "neuroreg" or name.startswith("neuroreg."))
    for name in ours:
        if f"{name}.{target}" in domain.objects:
            return link(f"{name}.{target}")
    candidates = [target, *(f"{name}.{target}" for name in ours)]
    if module and cls_name:
        candidates.append(f"{module}.{cls_name}.{target}")
    if any(_lookup(candidate) is not None for candidate in candidates):
        return contnode
    if any(f"self.{attribute}" in _source(base) for base in owners if base.__module__.startswith("neuroreg")):
        return contnode
    # A mixin naming a method of the classes it is mixed into (PenaltyUpdates' :meth:`attach`).
    if any(name.endswith(f".{target}") for name in domain.objects):
        return contnode
    return None


@functools.cache
def _source(cls: type) -> str:
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return ""


# --- the examples: one page each, and the figures they draw ----------------------------------------------------
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
FIGURES = DOCS / "_figures"


def draws(script: Path) -> bool:
    """Whether the script saves a figure (it takes ``--out``)."""
    return '"--out"' in script.read_text(encoding="utf-8")


def write_example_pages() -> None:
    """docs/examples/<script>.rst for every script of examples/ (new scripts get a page by themselves);
    a page is rewritten only when its text changes, so that unchanged pages are not rebuilt."""
    for script in EXAMPLES:
        title = f"``{script.name}``"
        text = f"{title}\n{'=' * len(title)}\n\n.. neuroreg-example:: {script.name}\n"
        page = DOCS / "examples" / f"{script.stem}.rst"
        if not page.exists() or page.read_text(encoding="utf-8") != text:
            page.write_text(text, encoding="utf-8")


def make_figures() -> None:
    """Run the drawing examples whose figure is missing or older than the script, side by side."""
    FIGURES.mkdir(exist_ok=True)
    stale = [
        script for script in EXAMPLES
        if draws(script) and (not (FIGURES / f"{script.stem}.png").exists()
                              or (FIGURES / f"{script.stem}.png").stat().st_mtime < script.stat().st_mtime)
    ]
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    running = [
        subprocess.Popen(
            [sys.executable, str(script), "--out", str(FIGURES / f"{script.stem}.png")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=str(ROOT),
        )
        for script in stale
    ]
    for script, process in zip(stale, running):
        try:
            _, stderr = process.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            for other in running:
                other.kill()
            raise
        if process.returncode != 0:
            raise RuntimeError(f"examples/{script.name} failed, so its figure cannot be drawn:\n{stderr.decode()}")


# --- directives -----------------------------------------------------------------------------------------------
class ReadmeSection(SphinxDirective):
    """``.. readme-section:: Title``: the body of README.rst's section of that title (its subsections
    included, up to the next section of the same or a higher level), without the title itself."""

    required_arguments = 1
    final_argument_whitespace = True
    option_spec: ClassVar[dict] = {
        "exclude": lambda text: [title.strip() for title in text.split(";") if title.strip()],
    }

    def run(self) -> List[nodes.Node]:
        readme = ROOT / "README.rst"
        self.env.note_dependency(str(readme))
        lines = readme.read_text(encoding="utf-8").splitlines()
        title = self.arguments[0]
        levels: List[str] = []
        start = level = None
        end = len(lines)
        for index in range(1, len(lines)):
            if _is_underline(lines, index):
                char = lines[index][0]
                if char not in levels:
                    levels.append(char)
                if start is None and lines[index - 1].strip() == title:
                    start, level = index + 1, levels.index(char)
                elif start is not None and levels.index(char) <= level:
                    end = index - 1
                    break
        if start is None:
            raise self.error(f"README.rst has no section titled {title!r}")
        kept = lines[start:end]
        for excluded in self.options.get("exclude", []):
            kept = _without_subsection(kept, excluded, levels)
        # A link to a README section that this fragment does not hold (`With NeuroTorch`_) goes to the page
        # that shows it (autosectionlabel's label of that title).
        titles = {kept[i - 1].strip() for i in range(1, len(kept)) if _is_underline(kept, i)}
        kept = [
            re.sub(r"`([^`<>]+)`_", lambda m: m.group(0) if m.group(1) in titles else f":ref:`{m.group(1)}`", line)
            for line in kept
        ]
        body = StringList(kept, source=str(readme))
        # Each README level one deeper than the section's becomes this page's next level.
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(body, self.content_offset, node, match_titles=True)
        return node.children


def _is_underline(lines: List[str], index: int) -> bool:
    underline = lines[index]
    return (
        index > 0 and len(underline) >= 3 and len(set(underline)) == 1 and underline[0] in "=-~^\"'`#*+"
        and bool(lines[index - 1].strip()) and len(underline) >= len(lines[index - 1].rstrip())
    )


def _without_subsection(lines: List[str], title: str, levels: List[str]) -> List[str]:
    """``lines`` less the subsection titled ``title`` (up to the next heading of its level or higher)."""
    for index in range(1, len(lines)):
        if _is_underline(lines, index) and lines[index - 1].strip() == title:
            level = levels.index(lines[index][0])
            end = next(
                (j - 1 for j in range(index + 1, len(lines))
                 if _is_underline(lines, j) and levels.index(lines[j][0]) <= level),
                len(lines),
            )
            return lines[:index - 1] + lines[end:]
    raise ValueError(f"README.rst's section has no subsection titled {title!r} to leave out")


def public_modules() -> List[str]:
    """neuroreg, the modules its ``__all__`` exports, and the other public modules (a new one in ``__all__``
    appears by itself)."""
    import types

    exported = [
        f"neuroreg.{name}" for name in neuroreg.__all__ if isinstance(getattr(neuroreg, name), types.ModuleType)
    ]
    return ["neuroreg", *exported, "neuroreg.config", "neuroreg.updates", "neuroreg.integrations.lightning"]


class NeurorgApi(SphinxDirective):
    """``.. neuroreg-api::``: one section per public module, with every name of its ``__all__``."""

    def run(self) -> List[nodes.Node]:
        lines: List[str] = []
        for module in public_modules():
            title = f"``{module}``"
            lines += [title, "-" * len(title), "", f".. automodule:: {module}"]
            if module == "neuroreg":
                # The classes are documented here, under the names users write (nr.L1), not again under their
                # defining modules; the modules it exports have their own sections.
                submodules = [name.split(".", 1)[1] for name in public_modules() if name.count(".") == 1]
                lines += [f"   :exclude-members: {', '.join(submodules)}"]
            lines += [""]
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(StringList(lines, source="neuroreg-api"), self.content_offset, node,
                                match_titles=True)
        return node.children


class NeurorgExample(SphinxDirective):
    """``.. neuroreg-example:: script.py``: the script's docstring, the figure it draws (if any) and its code."""

    required_arguments = 1

    def run(self) -> List[nodes.Node]:
        import ast

        script = self.arguments[0]
        path = ROOT / "examples" / script
        self.env.note_dependency(str(path))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstring = ast.get_docstring(tree) or ""
        # The code below the docstring, which the page has just shown as text.
        first_code = tree.body[1].lineno if docstring and len(tree.body) > 1 else 1
        lines = [*docstring.splitlines(), ""]
        if draws(path):
            figure = f"/_figures/{path.stem}.png"
            lines += [f".. figure:: {figure}", "   :width: 100%", "",
                      f"   What ``python examples/{script}`` draws (made when these pages were built).", ""]
        lines += ["The script", "~~~~~~~~~~", "", f".. literalinclude:: /../examples/{script}",
                  "   :language: python", f"   :lines: {first_code}-", ""]
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(StringList(lines, source=str(path)), self.content_offset, node, match_titles=True)
        return node.children


def setup(app):
    write_example_pages()
    make_figures()
    app.add_directive("readme-section", ReadmeSection)
    app.add_directive("neuroreg-api", NeurorgApi)
    app.add_directive("neuroreg-example", NeurorgExample)
    app.connect("missing-reference", resolve_inherited_or_undocumented)
    return {"parallel_read_safe": True}
