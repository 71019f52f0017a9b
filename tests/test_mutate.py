"""tools/mutate.py, the mutation-testing runner, on a tiny synthetic package (a few seconds)."""

from __future__ import annotations

import io
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from tools.mutate import _copy_repository, changed_lines, mirrored_tests, mutants, report, run_mutants

CLIP = '''\
"""A module docstring: never mutated."""

__all__ = ["clip"]


def clip(x: int, low: int = 0, high: int = 10) -> int:
    """Clip ``x`` to [low, high]."""
    if x < low:
        raise ValueError(f"x must be >= {low + 1}")
    if x > high:
        return high
    return x
'''

# Tests the lower bound (through its error) and not the upper one: the upper-bound mutants survive.
TEST_CLIP = '''\
import pytest

from pkg.clip import clip


def test_clip():
    assert clip(0) == 0 and clip(5) == 5
    with pytest.raises(ValueError):
        clip(-1)
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "clip.py").write_text(CLIP)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_clip.py").write_text(TEST_CLIP)
    return tmp_path


def descriptions(found) -> list:
    return [(m.line, m.kind, m.description) for m in found]


def test_mutants_of_a_tiny_module() -> None:
    found = mutants("pkg/clip.py", CLIP)
    assert descriptions(found) == [
        (6, "constant", "0 -> 1"),
        (6, "constant", "10 -> 11"),
        (8, "drop", "if block dropped"),
        (8, "compare", "< -> <="),
        (9, "drop", "statement dropped"),
        (10, "drop", "if block dropped"),
        (10, "compare", "> -> >="),
    ]  # no docstring, annotation, error message or __all__ entry is mutated
    compare = found[3]
    assert compare.source == CLIP.replace("if x < low:", "if (x <= low):")
    assert compare.diff().splitlines()[4:6] == ["-    if x < low:", "+    if (x <= low):"]
    assert descriptions(mutants("pkg/clip.py", CLIP, lines={10})) == [(10, "drop", "if block dropped"),
                                                                      (10, "compare", "> -> >=")]
    pragma = CLIP.replace("if x > high:", "if x > high:  # pragma: no mutate")
    assert all(m.line != 10 for m in mutants("pkg/clip.py", pragma))


def test_swapped_arguments_except_where_they_commute() -> None:
    source = "a = f(x, y)\nb = min(x, y)\nc = g('name', y)\n"
    (swap,) = [m for m in mutants("m.py", source) if m.kind == "swap-args"]
    assert swap.source == "a = (f(y, x))\nb = min(x, y)\nc = g('name', y)\n"


def test_offsets_are_utf8_bytes() -> None:
    # ast's column offsets count UTF-8 bytes: a non-ASCII character before the mutated node must not shift it.
    source = 'label = ("µs ≥", 1 + 2)\n'
    (arith,) = [m for m in mutants("m.py", source) if m.kind == "arith"]
    assert arith.source == 'label = ("µs ≥", (1 - 2))\n'


def test_run_kills_and_reports_survivors_with_their_diffs(project: Path) -> None:
    assert mirrored_tests(project, "pkg/clip.py") == ["tests/test_clip.py"]
    out = io.StringIO()
    results = run_mutants(project, {"pkg/clip.py": None}, nice=0, out=out)
    status = {(r.mutant.line, r.mutant.description): r.status for r in results}
    assert status == {
        (6, "0 -> 1"): "killed",
        (6, "10 -> 11"): "survived",
        (8, "if block dropped"): "killed",
        (8, "< -> <="): "killed",
        (9, "statement dropped"): "killed",
        (10, "if block dropped"): "survived",
        (10, "> -> >="): "survived",
    }
    score = report(results, out)
    assert score == pytest.approx(4 / 7)
    text = out.getvalue()
    assert "+    if (x >= high):" in text and "pkg/clip.py: 4/7 (57 %)" in text
    assert (project / "pkg" / "clip.py").read_text() == CLIP  # mutants ran in a copy
    sampled = run_mutants(project, {"pkg/clip.py": None}, nice=0, max_mutants=2, out=io.StringIO())
    assert [(r.mutant.line, r.mutant.description) for r in sampled] == [(6, "0 -> 1"), (8, "< -> <=")]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_changed_lines_since_a_ref(project: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=project, check=True,
                       capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "clip")
    (project / "pkg" / "clip.py").write_text(CLIP.replace("return high", "return high - 0"))
    (project / "pkg" / "new.py").write_text(textwrap.dedent("x = 1\n"))
    assert changed_lines(project, "HEAD", "pkg") == {"pkg/clip.py": {11}, "pkg/new.py": None}
    git("commit", "-q", "-am", "high - 0")
    assert changed_lines(project, "HEAD~1", "pkg", ref="HEAD") == {"pkg/clip.py": {11}}
    # With ref=, the committed files are copied (and mutated, and tested), whatever the working tree holds.
    (project / "pkg" / "clip.py").write_text("syntax error (")
    _copy_repository(project, project / "copy", "HEAD")
    assert (project / "copy" / "pkg" / "clip.py").read_text() == CLIP.replace("return high", "return high - 0")
    assert (project / "copy" / "tests" / "test_clip.py").read_text() == TEST_CLIP
