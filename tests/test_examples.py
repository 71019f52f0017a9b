"""Every example runs to the end as a script, and those that draw save their figure."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("script", ["quickstart.py", "neurotorch_style.py"])
def test_script_runs(script: str) -> None:
    assert run(script)


def test_neurotorch_example_trains_in_neurotorchs_own_trainer() -> None:
    from tests.neurotorch_support import import_neurotorch

    import_neurotorch()
    spec = importlib.util.spec_from_file_location("neurotorch_style_example", EXAMPLES / "neurotorch_style.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main()
    assert result["trainer"] == "neurotorch.trainers.Trainer"
    with_reg, without = result["abs_sums"]["weight_hh_l0"]
    assert with_reg < 0.9 * without   # the sparsity penalty acted through NeuroTorch's BPTT


def test_lightning_example_runs() -> None:
    pytest.importorskip("lightning")
    assert run("lightning_callback.py")


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib (the examples extra) is not installed")
def test_parcellation_balances_parcels_and_saves_its_figure(tmp_path: Path) -> None:
    out = tmp_path / "parcellation.png"
    stdout = run("parcellation.py", "--out", str(out))
    assert out.stat().st_size > 0
    # The summary lines read "<run>: <sizes, largest first>".
    summary = [line.split(":") for line in stdout.splitlines() if line.strip().startswith("task") and ":" in line]
    sizes = {label.strip(): [float(value) for value in values.split()] for label, values in summary}
    spread = {label: max(values) - min(values) for label, values in sizes.items()}
    assert spread["task + equilibrium"] < 0.05 < spread["task only"]


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib (the examples extra) is not installed")
def test_dale_rnn_learns_the_signs_and_saves_its_figure(tmp_path: Path) -> None:
    pytest.importorskip("tqdm")
    spec = importlib.util.spec_from_file_location("dale_rnn_example", EXAMPLES / "dale_rnn.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "curves.png"
    history = example.main(["--epochs", "3", "--batches", "2", "--hidden", "16", "--out", str(out), "--quiet"])
    assert out.stat().st_size > 0
    assert len(history["task_loss"]) == 3
    assert history["sign_match"][-1] > history["sign_match"][0]


def test_firing_rates_puts_every_rate_in_the_band_while_the_task_is_solved(tmp_path: Path) -> None:
    out = tmp_path / "firing_rates.png"
    stdout = run("firing_rates.py", "--out", str(out))
    if HAS_MATPLOTLIB:
        assert out.stat().st_size > 0
    # Each summary line reads "<run> task MSE <mse> (target variance <var>) | in band: <inside>/<neurons>, ...".
    parsed = {}
    for line in stdout.splitlines():
        if "task MSE" in line:
            label, rest = line.split("task MSE")
            variance = float(rest.split("target variance ")[1].split(")")[0])
            inside, total = (int(n) for n in rest.split("in band: ")[1].split(",")[0].split("/"))
            parsed[label.strip()] = (float(rest.split()[0]), variance, inside, total)
    mse, variance, inside, total = parsed["task + FiringRateRange"]
    assert inside == total and mse < 0.1 * variance
    assert parsed["task only"][2] < 0.6 * parsed["task only"][3]


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib (the examples extra) is not installed")
def test_ensemble_trains_sixteen_seeds_at_once_toward_the_dale_signs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("ensemble_example", EXAMPLES / "ensemble.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "ensemble.png"
    result = example.main(["--steps", "40", "--out", str(out)])
    assert out.stat().st_size > 0
    assert result["curves"].shape == (40, 16) and bool(result["task_loss"].isfinite().all())
    assert float(result["initial_agreement"].max()) < 0.6 < 0.99 < float(result["agreement"].min())

