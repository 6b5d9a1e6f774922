"""Runs every default path of the package with only its base install.

Run by `.ci/newcomer` with the Python of a fresh venv that holds
`pip install .` and nothing else, from a folder outside the source tree,
so that a default path needing a package the base install lacks (as
ONNX verification once needed onnxruntime) fails here and not on a
user's machine. Each path prints `ok` or `FAILED` with its name; the exit
status is the number of failures.

    python .ci/default_paths.py SOURCE_DIR
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

SOURCE = pathlib.Path(sys.argv[1]).resolve()
BIN = pathlib.Path(sys.executable).parent
WORK = pathlib.Path(tempfile.mkdtemp(prefix="keras-gradinn-paths-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the API check imports TensorFlow
FAILURES: list[str] = []


def check(name: str):
    """Runs the decorated function at once as the path `name`, recording the outcome."""

    def run(function):
        start = time.perf_counter()
        try:
            function()
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            FAILURES.append(name)
            print(f"FAILED {name}\n{traceback.format_exc()}", flush=True)
        else:
            print(f"ok     {name}  ({time.perf_counter() - start:.0f} s)", flush=True)
        return function

    return run


def cli(*args: str) -> str:
    result = subprocess.run([str(BIN / "keras-gradinn"), *args], cwd=WORK, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"exit {result.returncode}: {result.stderr[-3000:]}")
    return result.stdout


def script(path: pathlib.Path, *args: str) -> None:
    result = subprocess.run([sys.executable, str(path), *args], cwd=WORK, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"exit {result.returncode}: {result.stderr[-3000:]}")


# The venv must hold the base install only, imported from site-packages
# (pandas is not a marker: SALib brings it into the base install).
for extra in ("pytest", "xdist", "hypothesis", "ruff"):
    if importlib.util.find_spec(extra) is not None:
        sys.exit(f"{extra} is installed: this check needs a venv with the base install only")
origin = pathlib.Path(importlib.util.find_spec("keras_gradinn").origin).resolve()
if SOURCE in origin.parents:
    sys.exit(f"keras_gradinn is imported from the source tree ({origin}), not the install")
beam = SOURCE / "examples" / "data" / "beam.csv"
beam_columns = ("--inputs", "load,span,thickness", "--targets", "deflection,stress")


@check("keras-gradinn --version and --help")
def _():
    cli("--version")
    for command in ("", "fit", "predict", "info", "sensitivity", "export", "demo", "perf",
                    "bench"):
        cli(*command.split(), "--help")


@check("keras-gradinn demo --steps 50 (plot and verified ONNX file)")
def _():
    cli("demo", "--steps", "50", "--n", "50", "--out", "demo")
    assert (WORK / "demo" / "friedman.onnx").stat().st_size > 0
    assert (WORK / "demo" / "test_predictions.png").stat().st_size > 0


@check("keras-gradinn fit (CSV, defaults but the step budgets: prior chosen by cross-validation)")
def _():
    cli("fit", str(beam), *beam_columns, "--steps", "40", "--cv-steps", "10", "--out", "runs/beam",
        "--quiet")
    for name in ("model.keras", "metrics.json", "config.toml", "parity.png", "loss.png",
                 "slices.png"):
        assert (WORK / "runs" / "beam" / name).stat().st_size > 0, name


@check("keras-gradinn predict --gradient")
def _():
    cli("predict", "runs/beam/model.keras", str(beam), "--gradient", "--out", "predictions.csv")
    header = (WORK / "predictions.csv").read_text().splitlines()[0]
    assert "ddeflection/dload" in header, header


@check("keras-gradinn info")
def _():
    assert "load" in cli("info", "runs/beam/model.keras")


@check("keras-gradinn sensitivity (Sobol' and DGSM, table and chart)")
def _():
    cli("sensitivity", "runs/beam/model.keras", "--samples", "256", "--out", "sensitivity")
    for name in ("sensitivity.csv", "sensitivity.png"):
        assert (WORK / "sensitivity" / name).stat().st_size > 0, name


@check("keras-gradinn export --onnx --with-gradient --saved-model (verified)")
def _():
    cli("export", "runs/beam/model.keras", "--onnx", "beam.onnx", "--with-gradient",
        "--saved-model", "serving/beam")
    assert (WORK / "beam.onnx").stat().st_size > 0
    assert (WORK / "serving" / "beam" / "1" / "saved_model.pb").exists()


@check("keras-gradinn perf --quick")
def _():
    cli("perf", "--quick", "--xla", "off")


@check("keras-gradinn bench --quick (every method, incl. the GP)")
def _():
    cli("bench", "friedman1", "--quick", "--n", "20", "--noise", "0", "--jobs", "1",
        "--out", "bench")
    assert (WORK / "bench" / "tables.md").stat().st_size > 0


@check("keras-gradinn bench scale --quick")
def _():
    result = subprocess.run([sys.executable, "-m", "keras_gradinn", "bench", "scale", "--quick",
                             "--workdir", str(WORK / "scale")], cwd=WORK, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])


@check("examples/friedman.py, examples/surrogate.py and examples/deploy_onnx.py")
def _():
    script(SOURCE / "examples" / "friedman.py", "--steps", "20")
    script(SOURCE / "examples" / "surrogate.py", "--steps", "40")
    script(SOURCE / "examples" / "deploy_onnx.py", str(WORK / "beam.onnx"), "--steps", "5")


@check("public Python API: GradINNRegressor (choice, gradients, save and load, export)")
def _():
    import numpy as np

    import keras_gradinn as kg

    x = np.random.default_rng(0).random((30, 3))
    model = kg.GradINNRegressor(steps=40, cv_steps=10, random_state=0).fit(x, x.sum(axis=1))
    assert model.predict_gradient(x).shape == (30, 3)
    observed = np.where(x > 0.5, 1.0, np.nan)  # partial derivatives of the sum
    derived = kg.GradINNRegressor("smooth", steps=40, cv_steps=10, random_state=0)
    assert "derivative_loss" in derived.fit(x, x.sum(axis=1), dy_dx=observed).history_
    model.save(WORK / "regressor.keras")
    again = kg.GradINNRegressor.load(WORK / "regressor.keras")
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    kg.export.to_onnx(model.model_, WORK / "regressor.onnx", with_gradient=True)


@check("public Python API: model, priors, samplers, datasets, problems, exports")
def _():
    import keras
    import numpy as np

    import keras_gradinn as kg

    rng = np.random.default_rng(0)
    x = rng.random((64, 3))
    y = np.sin(3 * x[:, :1]) + x[:, 1:2] ** 2
    for prior in ("smooth", "oscillatory", "constant", kg.priors.smooth(3, 1, sparsity=1e-4),
                  kg.priors.kernel(x, y, [(0, 1)] * 3)):
        model = kg.GradINN(kg.mlp(3, 1, width=8, depth=2), prior, bounds=[(0, 1)] * 3,
                           n_collocation=32)
        model.compile(optimizer="adam", metrics=["mae"])
        model.fit(x, y, epochs=2, batch_size=32, validation_split=0.25, verbose=0)
    assert model.predict(x, verbose=0).shape == (64, 1)
    assert model.predict_gradient(x).shape == (64, 1, 3)
    assert model.input_relevance(x).shape == (3,)
    model.evaluate(x, y, verbose=0)
    kg.value_and_jacobian(lambda v: model(v), x.astype("float32"))
    model.save(WORK / "api.keras")
    loaded = keras.models.load_model(WORK / "api.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    kg.export.to_onnx(model, WORK / "api.onnx", with_gradient=True)
    kg.export.to_saved_model(model, WORK / "api-serving")
    kg.export.verify(model, WORK / "api.onnx")
    kg.export.verify(model, WORK / "api-serving" / "1")
    for method in kg.sampling.METHODS:
        kg.sampling.sample(16, [(0, 1)] * 3, method=method, seed=0)
    np.save(WORK / "x.npy", x.astype("float32"))
    np.save(WORK / "y.npy", y.astype("float32"))
    model.fit(kg.datasets.from_npy(WORK / "x.npy", WORK / "y.npy", batch_size=32), epochs=1,
              verbose=0)
    kg.datasets.bounds_from_dataset(kg.datasets.from_npy(WORK / "x.npy", WORK / "y.npy",
                                                         batch_size=32))
    kg.datasets.from_csv(beam, inputs=["load", "span", "thickness"], outputs=["deflection"],
                         batch_size=8)
    for name in kg.problems.names():
        problem = kg.problems.get(name)
        points = problem.sample(4, np.random.default_rng(0))
        assert problem.gradient(points).shape == (4, problem.m, problem.d)


shutil.rmtree(WORK, ignore_errors=True)
print(f"{len(FAILURES)} failed" + (f": {', '.join(FAILURES)}" if FAILURES else ""))
sys.exit(len(FAILURES))
