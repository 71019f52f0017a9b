"""Mutation testing for neuroreg: does a test fail when a number is wrong?

Each mutant is one small change a real bug could make — a comparison or arithmetic operator swapped, a
constant tweaked, a statement dropped, two arguments swapped — applied to one file of a *copy* of the
repository (the working tree is never touched). The mirrored tests of that file (``tests/test_<module>.py``
and the module's doctests) run against each mutant, one process at a time, with a deadline: a mutant is
*killed* when they fail (or time out), *survived* when they pass. Every survivor is printed as a diff: each
either gets a test that kills it, or is equivalent (no input can tell it from the original) and is listed as
such in the issue's note.

Usage (from the repository root, with the ``dev`` extra installed)::

    python tools/mutate.py --base origin/main          # the lines a change touched, in the files it touched
    python tools/mutate.py neuroreg/schedules.py       # every mutant of a whole file
    python tools/mutate.py neuroreg/functional/lp.py --tests tests/test_norms.py

With ``--base`` only mutants on lines changed since that ref (committed or not) are run; ``--all-lines``
mutates the whole of each changed file. A line holding ``# pragma: no mutate`` is never mutated.
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import difflib
import importlib.util
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, TextIO, Tuple

__all__ = ["Mutant", "Result", "changed_lines", "main", "mirrored_tests", "mutants", "report", "run_mutants"]

# One replacement per operator: a boundary moved, a sign flipped, a product turned into a quotient.
COMPARE_SWAPS = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}
BINOP_SWAPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
    ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.MatMult: ast.Mult, ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
}
BOOLOP_SWAPS = {ast.And: ast.Or, ast.Or: ast.And}
# Functions whose first two arguments commute: swapping them is an equivalent mutant, not worth a run.
SYMMETRIC = {"min", "max", "maximum", "minimum", "logaddexp", "promote_types", "broadcast_shapes", "equal"}
PRAGMA = "pragma: no mutate"


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One mutated version of a file: ``source`` replaces the file's text."""

    path: str  # relative to the repository root, with '/'
    line: int
    kind: str  # 'compare', 'arith', 'bool', 'unary', 'constant', 'drop', 'swap-args'
    description: str
    source: str
    original: str = dataclasses.field(repr=False, compare=False)

    def diff(self) -> str:
        lines = difflib.unified_diff(
            self.original.splitlines(keepends=True), self.source.splitlines(keepends=True),
            f"a/{self.path}", f"b/{self.path}", n=1,
        )
        return "".join(lines)


@dataclasses.dataclass
class Result:
    mutant: Mutant
    status: str  # 'killed', 'survived', 'timeout'
    seconds: float


# --- generating mutants -------------------------------------------------------------------------------------
def _docstring_nodes(tree: ast.AST) -> Set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                first.value.value, str
            ):
                found.add(id(first))
    return found


def _skipped_subtrees(tree: ast.AST) -> Iterator[ast.AST]:
    """Roots of what is never mutated: annotations, messages of raised errors, f-strings, ``__all__``."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from (arg.annotation for arg in _all_arguments(node.args) if arg.annotation is not None)
            if node.returns is not None:
                yield node.returns
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation
        elif isinstance(node, ast.Raise) and node.exc is not None:
            yield node.exc  # the message; dropping the whole raise is still a mutant
        elif isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets
        )):
            yield node


def _all_arguments(args: ast.arguments) -> List[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


class _Collector(ast.NodeVisitor):
    """Walks a module and lists (node, replacement node or None for ``pass``, kind, description)."""

    def __init__(self, tree: ast.AST) -> None:
        self.skip: Set[int] = {id(n) for root in _skipped_subtrees(tree) for n in ast.walk(root)}
        self.skip |= _docstring_nodes(tree)
        self.found: List[Tuple[ast.AST, Optional[ast.AST], str, str]] = []

    def visit(self, node: ast.AST) -> None:
        if id(node) in self.skip:
            return
        super().visit(node)

    def _add(self, node: ast.AST, replacement: Optional[ast.AST], kind: str, description: str) -> None:
        self.found.append((node, replacement, kind, description))

    def visit_Compare(self, node: ast.Compare) -> None:
        for index, op in enumerate(node.ops):
            if type(op) in COMPARE_SWAPS:
                mutated = copy.deepcopy(node)
                mutated.ops[index] = COMPARE_SWAPS[type(op)]()
                self._add(node, mutated, "compare", f"{_op(op)} -> {_op(mutated.ops[index])}")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        # `+` and `%` on strings build messages, not numbers.
        if type(node.op) in BINOP_SWAPS and not any(map(_is_text, (node.left, node.right))):
            mutated = copy.deepcopy(node)
            mutated.op = BINOP_SWAPS[type(node.op)]()
            self._add(node, mutated, "arith", f"{_op(node.op)} -> {_op(mutated.op)}")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if type(node.op) in BINOP_SWAPS:
            mutated = copy.deepcopy(node)
            mutated.op = BINOP_SWAPS[type(node.op)]()
            self._add(node, mutated, "arith", f"{_op(node.op)}= -> {_op(mutated.op)}=")
        self._add(node, None, "drop", "statement dropped")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        mutated = copy.deepcopy(node)
        mutated.op = BOOLOP_SWAPS[type(node.op)]()
        self._add(node, mutated, "bool", f"{_op(node.op)} -> {_op(mutated.op)}")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, (ast.Not, ast.USub)):
            self._add(node, copy.deepcopy(node.operand), "unary", f"{_op(node.op)} removed")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            new: object = not value
        elif isinstance(value, int):
            new = value + 1
        elif isinstance(value, float) and value == value and abs(value) != float("inf"):
            new = value * 2 if value else 1.0
        else:
            return
        self._add(node, ast.Constant(new), "constant", f"{value!r} -> {new!r}")

    def visit_Call(self, node: ast.Call) -> None:
        # Swapping an argument's name (a string) with its value fails at once everywhere: not worth a run.
        first_two = node.args[:2]
        if (
            len(first_two) == 2
            and not any(isinstance(a, ast.Starred) or _is_text(a) for a in first_two)
            and ast.dump(first_two[0]) != ast.dump(first_two[1])
            and _called_name(node) not in SYMMETRIC
        ):
            mutated = copy.deepcopy(node)
            mutated.args[0], mutated.args[1] = mutated.args[1], mutated.args[0]
            self._add(node, mutated, "swap-args", "first two arguments swapped")
        self.generic_visit(node)

    def _statement(self, node: ast.stmt) -> None:
        self._add(node, None, "drop", "statement dropped")
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        self._statement(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        self._statement(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        # Dropping `x = ...` only raises a NameError; dropping a store into an object or a buffer is a bug.
        if all(isinstance(target, (ast.Attribute, ast.Subscript)) for target in node.targets):
            self._add(node, None, "drop", "statement dropped")
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        if not node.orelse:
            self._add(node, None, "drop", "if block dropped")
        self.generic_visit(node)


def _called_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _op(op: ast.AST) -> str:
    symbols = {
        ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is",
        ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
        ast.Div: "/", ast.Pow: "**", ast.FloorDiv: "//", ast.Mod: "%", ast.MatMult: "@", ast.BitAnd: "&",
        ast.BitOr: "|", ast.And: "and", ast.Or: "or", ast.Not: "not", ast.USub: "unary -",
    }
    return symbols[type(op)]


def mutants(path: str, source: str, lines: Optional[Set[int]] = None) -> List[Mutant]:
    """Every mutant of ``source`` (the text of ``path``) touching one of ``lines`` (``None``: all lines),
    in source order, each compiling and different from the others."""
    tree = ast.parse(source)
    collector = _Collector(tree)
    collector.visit(tree)
    encoded = [line.encode() for line in source.splitlines(keepends=True)]
    starts = [0]
    for line in encoded:
        starts.append(starts[-1] + len(line))
    data = b"".join(encoded)
    pragma_lines = {number for number, line in enumerate(source.splitlines(), 1) if PRAGMA in line}
    seen = {source}
    found = []
    for node, replacement, kind, description in collector.found:
        span = set(range(node.lineno, node.end_lineno + 1))
        if (lines is not None and not span & lines) or span & pragma_lines:
            continue
        # ast offsets are UTF-8 byte offsets: slice the encoded text.
        begin = starts[node.lineno - 1] + node.col_offset
        end = starts[node.end_lineno - 1] + node.end_col_offset
        text = "pass" if replacement is None else f"({ast.unparse(replacement)})"
        if isinstance(node, ast.stmt) and replacement is not None:
            text = ast.unparse(replacement)  # a statement (augmented assignment) is not parenthesised
        mutated = (data[:begin] + text.encode() + data[end:]).decode()
        if mutated in seen:
            continue
        try:
            compile(mutated, path, "exec")
        except SyntaxError:
            continue
        seen.add(mutated)
        found.append(Mutant(path, node.lineno, kind, description, mutated, source))
    return found


# --- what to mutate and which tests to run ----------------------------------------------------------------
def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def changed_lines(root: Path, base: str, package: str, ref: Optional[str] = None) -> Dict[str, Optional[Set[int]]]:
    """Python files of ``package`` changed from ``base`` to ``ref`` (``None``: the working tree, untracked files
    included) -> their added or changed line numbers (``None``: an untracked file, every line)."""
    refs = [base] if ref is None else [base, ref]
    changed: Dict[str, Optional[Set[int]]] = {}
    for path in _git(root, "diff", "--name-only", "--diff-filter=AM", *refs, "--", package).split():
        if not path.endswith(".py"):
            continue
        lines: Set[int] = set()
        hunks = _git(root, "diff", "-U0", *refs, "--", path)
        for match in re.finditer(r"^@@ -\S+ \+(\d+)(?:,(\d+))? @@", hunks, re.MULTILINE):
            start, count = int(match[1]), int(match[2] or 1)
            lines.update(range(start, start + count))
        changed[path] = lines
    if ref is None:
        for path in _git(root, "ls-files", "--others", "--exclude-standard", "--", package).split():
            if path.endswith(".py"):
                changed[path] = None
    return changed


def mirrored_tests(root: Path, path: str) -> List[str]:
    """``tests/test_<module>.py`` for ``<package>/.../<module>.py`` (a leading underscore dropped); without
    one, the test files that name the most of the module's public functions and classes."""
    stem = Path(path).stem.lstrip("_")
    mirror = root / "tests" / f"test_{stem}.py"
    if mirror.exists():
        return [mirror.relative_to(root).as_posix()]
    tree = ast.parse((root / path).read_text())
    names = {
        node.name for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
    }
    named: Dict[str, int] = {}
    for test in sorted((root / "tests").glob("test_*.py")):
        text = test.read_text()
        named[test.relative_to(root).as_posix()] = sum(bool(re.search(rf"\b{re.escape(n)}\b", text)) for n in names)
    most = max(named.values(), default=0)
    return [test for test, count in named.items() if count == most > 0]


# --- running ------------------------------------------------------------------------------------------------
def _copy_repository(root: Path, destination: Path, ref: Optional[str] = None) -> None:
    """Copy the files of commit ``ref``, or (``None``) the working tree's files, tracked and untracked but not
    ignored, as they are now."""
    if ref is not None:
        archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=root, check=True, capture_output=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            # The "data" filter (Python >= 3.11.4) refuses links and absolute paths; a git archive has none.
            tar.extractall(destination, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        return
    try:
        files = _git(root, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    except (subprocess.CalledProcessError, FileNotFoundError):
        shutil.copytree(root, destination, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".hypothesis"))
        return
    for name in filter(None, files):
        source = root / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


class _Runner:
    """Runs a test command in a copy of the repository, niced, in its own process group, with a deadline."""

    def __init__(self, copy_root: Path, tests: Sequence[str], nice: int) -> None:
        self.copy_root = copy_root
        self.command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        if importlib.util.find_spec("hypothesis") is not None:
            self.command.append("--hypothesis-seed=0")  # the same examples for every mutant
        self.nice = nice
        # No bytecode: a mutant of the same size written within the same second as the previous one would
        # otherwise be run from the previous one's stale .pyc.
        self.env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(copy_root)}

    def run(self, timeout: Optional[float]) -> Tuple[Optional[int], float, str]:
        started = time.perf_counter()
        process = subprocess.Popen(
            self.command, cwd=self.copy_root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True, preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
            code: Optional[int] = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            code = None
        return code, time.perf_counter() - started, output


# A process that imports the heavy libraries once, then forks one child per run: each child imports the
# (mutated) project afresh and runs pytest in it, which saves the libraries' import time (about 1.5 s of the 5 s a
# mutant takes here). Nothing of the project is imported before the fork.
_SERVER = r"""
import os, signal, sys, time
import pytest
for name in os.environ["MUTATE_PRELOAD"].split():
    try:
        __import__(name)
    except ImportError:
        pass
sys.dont_write_bytecode = True
while True:
    line = sys.stdin.readline()
    if not line:
        break
    pid = os.fork()
    if pid == 0:
        os.setsid()
        try:  # a failing example kills the mutant: shrinking it (minutes on a loaded machine) is not needed
            import hypothesis
            phases = [hypothesis.Phase.explicit, hypothesis.Phase.reuse, hypothesis.Phase.generate]
            hypothesis.settings.register_profile("mutate", phases=phases, database=None)
            hypothesis.settings.load_profile("mutate")
        except ImportError:
            pass
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        try:
            code = int(pytest.main(sys.argv[1:]))
        except BaseException:
            code = 3
        os._exit(code)
    deadline = time.monotonic() + float(line)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print(os.waitstatus_to_exitcode(status), flush=True)
            break
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print("timeout", flush=True)
            break
        time.sleep(0.02)
"""


def _libraries(copy_root: Path, files: Sequence[str]) -> List[str]:
    """The installed top-level modules that ``files`` import (the project's own are not importable from
    outside ``copy_root``'s folders and are left out: they must be imported after the fork)."""
    names: Set[str] = set()
    for name in files:
        for node in ast.walk(ast.parse((copy_root / name).read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    local = {path.name.removesuffix(".py") for path in copy_root.iterdir()}
    return sorted(n for n in names - local if n != "__future__" and importlib.util.find_spec(n) is not None)


class _ForkRunner(_Runner):
    """:class:`_Runner`'s interface over :data:`_SERVER` (POSIX only); no output is kept."""

    def __init__(self, copy_root: Path, tests: Sequence[str], nice: int) -> None:
        super().__init__(copy_root, tests, nice)
        env = {**self.env, "MUTATE_PRELOAD": " ".join(_libraries(copy_root, tests))}
        self.server = subprocess.Popen(
            [sys.executable, "-c", _SERVER, *self.command[3:]], cwd=copy_root, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None,
        )

    def run(self, timeout: Optional[float]) -> Tuple[Optional[int], float, str]:
        started = time.perf_counter()
        self.server.stdin.write(f"{1e9 if timeout is None else timeout}\n")
        self.server.stdin.flush()
        answer = self.server.stdout.readline().strip()
        if not answer:
            raise RuntimeError("the fork server stopped")
        return (None if answer == "timeout" else int(answer)), time.perf_counter() - started, ""

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait()


def run_mutants(
    root: Path, targets: Dict[str, Optional[Set[int]]], *, tests: Optional[Sequence[str]] = None,
    timeout: Optional[float] = None, nice: int = 10, ref: Optional[str] = None, fork: bool = True,
    max_mutants: Optional[int] = None, out: Optional[TextIO] = None,
) -> List[Result]:
    """Run the mutants of each target file (path -> lines, ``None`` for all) against its tests, one mutant at
    a time, in a temporary copy of ``root`` (of its commit ``ref``, or of the working tree); return the
    results. With ``fork``, each run is a fork of a process that has imported the libraries already; with
    ``max_mutants``, at most that many per file, evenly spaced through it."""
    out = out or sys.stdout
    results: List[Result] = []
    with tempfile.TemporaryDirectory(prefix="mutate-") as scratch:
        copy_root = Path(scratch)
        _copy_repository(root, copy_root, ref)
        for path, lines in targets.items():
            original = (copy_root / path).read_text()
            file_tests = list(tests) if tests else mirrored_tests(copy_root, path)
            if not file_tests:
                print(f"{path}: no mirrored test file (give --tests); skipped", file=out)
                continue
            runner = _Runner(copy_root, [*file_tests, path], nice)
            code, seconds, output = runner.run(None)
            if code != 0:
                raise SystemExit(f"{path}: the tests fail before any mutation ({' '.join(file_tests)}):\n{output}")
            if fork and hasattr(os, "fork"):
                runner = _ForkRunner(copy_root, [*file_tests, path], nice)
                code, seconds, _ = runner.run(3 * seconds + 10)
                if code != 0:  # the forked run must agree with the plain one, or it is not used
                    runner.close()
                    runner = _Runner(copy_root, [*file_tests, path], nice)
            deadline = timeout if timeout is not None else 3 * seconds + 10
            todo = mutants(path, original, lines)
            if max_mutants is not None and len(todo) > max_mutants:
                print(f"{path}: {max_mutants} of its {len(todo)} mutants, evenly spaced", file=out)
                todo = [todo[i * len(todo) // max_mutants] for i in range(max_mutants)]
            print(f"{path}: {len(todo)} mutants, tests {' '.join(file_tests)} "
                  f"({seconds:.1f} s unmutated, deadline {deadline:.0f} s)", file=out, flush=True)
            target = copy_root / path
            try:
                for mutant in todo:
                    target.write_text(mutant.source)
                    code, seconds, _ = runner.run(deadline)
                    status = "timeout" if code is None else "survived" if code == 0 else "killed"
                    results.append(Result(mutant, status, seconds))
                    print(f"  {status.upper():8} {path}:{mutant.line} {mutant.kind}: {mutant.description}"
                          f" ({seconds:.1f} s)", file=out, flush=True)
            finally:
                target.write_text(original)
                if isinstance(runner, _ForkRunner):
                    runner.close()
    return results


def report(results: Iterable[Result], out: Optional[TextIO] = None) -> float:
    """Print the survivors' diffs and the score per file and in all; return the score (killed / run)."""
    out = out or sys.stdout
    results = list(results)
    by_file: Dict[str, List[Result]] = {}
    for result in results:
        by_file.setdefault(result.mutant.path, []).append(result)
    survivors = [r for r in results if r.status == "survived"]
    if survivors:
        print("\nSurvived (each needs a test, or is equivalent: say why in the note):", file=out)
        for result in survivors:
            mutant = result.mutant
            print(f"\n# {mutant.path}:{mutant.line} {mutant.kind}: {mutant.description}", file=out)
            print(mutant.diff(), end="", file=out)
    print("\nScore (killed, timeouts included / mutants):", file=out)
    for path, group in by_file.items():
        killed = sum(r.status != "survived" for r in group)
        print(f"  {path}: {killed}/{len(group)} ({100 * killed / len(group):.0f} %)", file=out)
    killed = sum(r.status != "survived" for r in results)
    score = killed / len(results) if results else 1.0
    print(f"  all: {killed}/{len(results)} ({100 * score:.0f} %)", file=out)
    return score


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="files to mutate (every line); or give --base")
    parser.add_argument("--base", help="mutate the lines changed since this git ref (working tree included)")
    parser.add_argument("--all-lines", action="store_true", help="with --base: every line of the changed files")
    parser.add_argument("--package", default="neuroreg", help="with --base: the folder whose files are mutated")
    parser.add_argument("--tests", nargs="+", help="test files to run instead of the mirrored ones")
    parser.add_argument("--timeout", type=float, help="seconds per mutant (default: 3 x the unmutated run + 10)")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the test processes (default 10)")
    parser.add_argument("--root", default=".", help="repository root (default: the current folder)")
    parser.add_argument("--ref", help="mutate this commit instead of the working tree (e.g. HEAD: a tree that "
                        "others are editing cannot break the run)")
    parser.add_argument("--no-fork", action="store_true", help="start each test run as a fresh interpreter")
    parser.add_argument("--max-mutants", type=int, help="at most this many per file, evenly spaced (a time budget)")
    parser.add_argument("--list", action="store_true", help="print the mutants' diffs without running them")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    if args.base:
        targets = changed_lines(root, args.base, args.package, args.ref)
        if args.all_lines:
            targets = dict.fromkeys(targets)
    elif args.paths:
        targets = {Path(p).resolve().relative_to(root).as_posix(): None for p in args.paths}
    else:
        parser.error("give files to mutate or --base REF")
    if args.list:
        for path, lines in targets.items():
            original = _git(root, "show", f"{args.ref}:{path}") if args.ref else (root / path).read_text()
            for mutant in mutants(path, original, lines):
                print(f"# {path}:{mutant.line} {mutant.kind}: {mutant.description}\n{mutant.diff()}")
        return 0
    started = time.perf_counter()
    results = run_mutants(root, targets, tests=args.tests, timeout=args.timeout, nice=args.nice, ref=args.ref,
                          fork=not args.no_fork, max_mutants=args.max_mutants)
    score = report(results)
    print(f"  ({time.perf_counter() - started:.0f} s)")
    return 0 if score == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
