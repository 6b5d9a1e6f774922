"""The console script, `python -m keras_gradinn`, the demo and the examples, run for real."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import keras_gradinn as kg
from keras_gradinn import demo

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = pathlib.Path(sys.executable).parent / "keras-gradinn"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def run(*args, timeout=300):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=ENV,
                          cwd=ROOT)


def test_friedman_function_values():
    x = np.array([[0.5] * 5, [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0.5, 1.0, 1.0, 1.0]])
    expected = [10 * np.sin(np.pi / 4) + 7.5, 5.0, 10.0 + 5.0 + 10.0 + 5.0]
    np.testing.assert_allclose(demo.friedman(x)[:, 0], expected, rtol=1e-12)


def test_demo_run_trains_both_models_on_a_tiny_budget():
    results = demo.run(n=40, steps=30, seed=1, verbose=False)
    assert set(results) == {"GradINN", "plain network"}
    for result in results.values():
        # Friedman's test targets have a standard deviation near 5: an
        # untrained or broken model is far off, 30 steps already help.
        assert 0.0 < result["rmse"] < 5.0


def test_console_script_version_and_help():
    version = run(str(SCRIPT), "--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"keras-gradinn {kg.__version__}"
    helped = run(sys.executable, "-m", "keras_gradinn", "demo", "--help")
    assert helped.returncode == 0 and "example:" in helped.stdout and "--steps" in helped.stdout


def test_console_script_demo_prints_both_rmses():
    result = run(str(SCRIPT), "demo", "--n", "30", "--steps", "20")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if "test RMSE" in line]
    assert [line.split(":")[0].strip() for line in lines] == ["GradINN", "plain network"]


@pytest.mark.parametrize(
    "args", [["demo", "--steps", "0"], ["demo", "--n", "1"], ["demo", "--noise", "-1"], ["frobnicate"]]
)
def test_console_script_rejects_bad_arguments_with_one_line(args):
    result = run(str(SCRIPT), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "error" in result.stderr


def test_friedman_example_runs_end_to_end():
    result = run(sys.executable, "examples/friedman.py", "--steps", "20")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test RMSE: value" in result.stdout
    assert "reloaded predictions identical: True" in result.stdout
