"""benchmarks/run.py runs every case end to end (a smoke run: nothing here is timed or compared)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def test_every_benchmark_case_runs_and_reports_each_implementation() -> None:
    # torch.compile made a no-op: the compiled columns run their eager function, so the smoke run takes
    # seconds instead of minutes of compilation (tests/test_compile.py checks compilation itself).
    env = {**os.environ, "TORCHDYNAMO_DISABLE": "1"}
    result = subprocess.run(
        [sys.executable, str(BENCHMARK), "--quick", "--repeats", "1"],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cases = {int(match) for match in re.findall(r"^(\d+)\. ", result.stdout, flags=re.MULTILINE)}
    assert cases == set(range(1, 13)), result.stdout[-3000:]
    rows = [line for line in result.stdout.splitlines() if re.match(r"^\d+\. ", line)]
    assert all(re.search(r"\d+\.\d{3}", row) for row in rows), "a row without a median time"
