"""A corpus of bad inputs: each is refused with an exact exception type and a clear message.

`CASES` is one table. Each case names the bad operation, the exception type it
must raise (exactly, not a subclass) and a fragment of the message. A case
`prepare`s its files and models first and returns the bad operation, so the
test can check that the operation left `tmp_path` exactly as it found it: no
run directory, output file, export or stray temporary file.

Command-line cases run `keras_gradinn.cli.main` in this process. A clean
failure (exit status 1, a single `keras-gradinn: error: ...` line last on
stderr, no traceback) is raised as `CliError` with the text after the prefix;
an argparse usage error (exit status 2) as `CliUsageError`; anything else
(success, a traceback, another status) fails the case.

Cases with a `bug` are package bugs found while writing this corpus; they are
strict xfails, so fixing a bug makes its case fail until the mark is removed.
The behaviours that are not errors (integer and pandas inputs, a single row,
constant targets, points outside the bounds at prediction) are asserted by
the plain tests at the end.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import pathlib
import re
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_gradinn as kg
from keras_gradinn import export
from keras_gradinn.cli import main

PREFIX = "keras-gradinn: error: "
BOUNDS = [(0.0, 1.0), (10.0, 20.0)]
X = kg.sampling.sample(8, BOUNDS, method="uniform", seed=0)
Y = 2.0 * X[:, :1] + X[:, 1:] / 10.0
FIT = {"epochs": 1, "batch_size": 8, "verbose": 0}
# No calibration fit: these runs test what is refused or written, not the uncertainty.
TINY = ["--steps", "1", "--prior", "smooth", "--width", "4", "--depth", "1", "--n-collocation",
        "8", "--no-calibrate", "--quiet"]


class CliError(Exception):
    """`keras-gradinn` failed cleanly with exit status 1; the message is its error line."""


class CliUsageError(Exception):
    """`keras-gradinn` rejected its arguments with argparse's exit status 2."""


def net(d: int = 2, m: int = 1, seed: int = 0) -> keras.Model:
    return kg.mlp(d, m, width=4, depth=1, seed=seed)


def gradinn(network: keras.Model | None = None, prior: Any = "smooth", **kwargs) -> kg.GradINN:
    options = {"bounds": BOUNDS, "n_collocation": 8, "seed": 0, "input_labels": ["a", "b"],
               "output_labels": ["u"], **kwargs}
    return kg.GradINN(network if network is not None else net(), prior, **options)


def compiled(**kwargs) -> kg.GradINN:
    model = gradinn(**kwargs)
    model.compile(optimizer="adam")
    return model


def tile(point: list[float]) -> Callable[[int, np.random.Generator], np.ndarray]:
    """A collocation sampler returning `n` copies of one point."""
    return lambda n, rng: np.tile([point], (n, 1))


def drifting_sampler() -> Callable[[int, np.random.Generator], np.ndarray]:
    """A sampler in the domain on its first call (the construction probe), outside it later."""
    calls = []

    def sampler(n, rng):
        calls.append(n)
        return np.tile([[0.5, 15.0]] if len(calls) == 1 else [[5.0, 15.0]], (n, 1))

    return sampler


def non_dense_network() -> keras.Model:
    inputs = keras.Input(shape=(2,))
    hidden = keras.layers.LayerNormalization()(keras.layers.Dense(3)(inputs))
    return keras.Model(inputs, keras.layers.Dense(1)(hidden))


def reshaping_network(shape: tuple[int, ...]) -> keras.Model:
    inputs = keras.Input(shape=(2,))
    size = int(np.prod(shape))
    return keras.Model(inputs, keras.layers.Reshape(shape)(keras.layers.Dense(size)(inputs)))


class Artifacts:
    """A trained model and its saved `.keras` and ONNX bytes, made once per module."""

    def __init__(self, directory: pathlib.Path):
        self.directory = directory

    @functools.cached_property
    def model(self) -> kg.GradINN:
        model = compiled()
        model.fit(X, Y, **FIT)
        return model

    @functools.cached_property
    def keras_bytes(self) -> bytes:
        path = self.directory / "model.keras"
        self.model.save(path)
        return path.read_bytes()

    @functools.cached_property
    def onnx_bytes(self) -> bytes:
        return export.to_onnx(self.model, self.directory / "model.onnx", verify=False).read_bytes()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Artifacts:
    return Artifacts(tmp_path_factory.mktemp("artifacts"))


@dataclasses.dataclass
class Ctx:
    """What a case's `prepare` works with: a fresh `tmp` and the module's artifacts."""

    tmp: pathlib.Path
    capsys: Any
    artifacts: Artifacts

    @property
    def run_dir(self) -> pathlib.Path:
        return self.tmp / "runs" / "r"

    def cli(self, *args) -> None:
        """Runs the command line; raises `CliError`/`CliUsageError` if it failed cleanly."""
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:  # argparse
            code = stop.code
        err = self.capsys.readouterr().err
        assert "Traceback" not in err, err
        lines = err.strip().splitlines()
        last = lines[-1] if lines else ""
        if code == 1 and last.startswith(PREFIX):
            assert sum(line.startswith(PREFIX) for line in lines) == 1, lines
            raise CliError(last[len(PREFIX):])
        if code == 2 and ": error: " in last:
            raise CliUsageError(last.split(": error: ", 1)[1])
        raise AssertionError(
            f"expected a clean failure; exit status {code}, stderr ends {lines[-3:]}")

    def write(self, name: str, content: bytes | str) -> pathlib.Path:
        path = self.tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def csv(self, name: str, header: list[str], rows: list[list[Any]]) -> pathlib.Path:
        with open(self.tmp / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        return self.tmp / name

    def data(self, name: str = "data.csv", n: int = 30) -> pathlib.Path:
        """Measurements with inputs a in [0, 1], b in [10, 20] and targets u, v."""
        rng = np.random.default_rng(0)
        x = rng.uniform([0.0, 10.0], [1.0, 20.0], size=(n, 2))
        y = np.stack([np.sin(3 * x[:, 0]) + x[:, 1] / 10, x[:, 0] * x[:, 1]], axis=1)
        return self.csv(name, ["a", "b", "u", "v"], np.concatenate([x, y], axis=1).tolist())

    def gradient_data(self, du_da: list[Any] | None = None) -> pathlib.Path:
        """Eight measurements of u with a column du/da of observed derivatives (`du_da`,
        "" for a cell not observed; by default all observed)."""
        du_da = [1.0] * 8 if du_da is None else du_da
        return self.csv("data.csv", ["a", "b", "u", "du/da"],
                        [[0.1 * i, 11 + i, i * i, g] for i, g in enumerate(du_da)])

    def bounds(self, header: list[str], *rows: list[Any]) -> pathlib.Path:
        return self.csv("bounds.csv", header, list(rows))

    def fit_args(self, data: pathlib.Path, *extra) -> list[Any]:
        return ["fit", data, "--inputs", "a,b", "--targets", "u", "--out", self.run_dir,
                *TINY, *extra]

    def keras_file(self, fraction: float = 1.0) -> pathlib.Path:
        raw = self.artifacts.keras_bytes
        return self.write("model.keras", raw[: int(len(raw) * fraction)])

    def onnx_file(self, fraction: float = 1.0) -> pathlib.Path:
        raw = self.artifacts.onnx_bytes
        return self.write("model.onnx", raw[: int(len(raw) * fraction)])

    def truncated_csv(self) -> pathlib.Path:
        """The measurements cut off in the middle of row 11 (two of four cells left)."""
        lines = self.data("full.csv").read_text().splitlines()
        return self.write("cut.csv", "\n".join(lines[:10] + [",".join(lines[10].split(",")[:2])]))

    def truncated_npz(self) -> pathlib.Path:
        rng = np.random.default_rng(0)
        np.savez(self.tmp / "full.npz", a=rng.random(30), b=10 + rng.random(30), u=rng.random(30))
        raw = (self.tmp / "full.npz").read_bytes()
        return self.write("cut.npz", raw[: len(raw) // 2])

    def saved_model_base_with_version_1(self) -> pathlib.Path:
        (self.tmp / "serving" / "1").mkdir(parents=True)
        (self.tmp / "serving" / "1" / "keep.txt").write_text("an earlier version")
        return self.tmp / "serving"


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    prepare: Callable[[Ctx], Callable[[], Any]]
    raises: type[BaseException]
    fragment: str
    bug: str | None = None


def api(call: Callable[[], Any]) -> Callable[[Ctx], Callable[[], Any]]:
    """A case needing no files: the operation is `call` itself."""
    return lambda c: call


# ----------------------------------------------------------------------------- the table

CASES = [
    # --- shapes and ranks of x and y (Python API) ---
    Case("fit-x-3d", api(lambda: compiled().fit(X[:, :, None], Y, **FIT)), ValueError,
         "x must have shape (n, 2) to match the bounds; got shape (8, 2, 1)"),
    Case("fit-x-too-wide", api(lambda: compiled().fit(np.c_[X, X], Y, **FIT)), ValueError,
         "x must have shape (n, 2) to match the bounds; got shape (8, 4)"),
    Case("fit-x-1d-for-two-inputs", api(lambda: compiled().fit(X[:, 0], Y, **FIT)), ValueError,
         "got shape (8,)"),
    Case("fit-y-fewer-rows-than-x", api(lambda: compiled().fit(X, Y[:5], **FIT)), ValueError,
         "y must have shape (8, 1) for 8 input rows and 1 output(s); got shape (5, 1)"),
    Case("fit-y-3d", api(lambda: compiled().fit(X, Y[:, :, None], **FIT)), ValueError,
         "got shape (8, 1, 1)"),
    Case("fit-y-too-wide", api(lambda: compiled().fit(X, np.c_[Y, Y], **FIT)), ValueError,
         "y must have shape (8, 1) for 8 input rows and 1 output(s); got shape (8, 2)"),
    Case("fit-without-y", api(lambda: compiled().fit(X, **FIT)), ValueError,
         "fit needs targets y for array inputs"),
    Case("predict-x-3d", api(lambda: compiled().predict(X[:, :, None], verbose=0)), ValueError,
         "x must have shape (n, 2) to match the bounds; got shape (8, 2, 1)"),
    Case("predict-x-three-columns", api(lambda: compiled().predict(np.c_[X, X[:, :1]], verbose=0)),
         ValueError, "got shape (8, 3)"),
    Case("predict-gradient-single-1d-row", api(lambda: compiled().predict_gradient(X[0])),
         ValueError, "x must have shape (n, 2) to match the bounds; got shape (2,)"),
    Case("evaluate-y-fewer-rows", api(lambda: compiled().evaluate(X, Y[:3], verbose=0)),
         ValueError, "y must have shape (8, 1) for 8 input rows"),
    Case("evaluate-without-y", api(lambda: compiled().evaluate(X, verbose=0)), ValueError,
         "evaluate needs targets y for array inputs"),
    Case("validation-data-of-four", api(lambda: compiled().fit(
        X, Y, validation_data=(X, Y, None, None), **FIT)), ValueError,
         "validation_data must be (x, y) or (x, y, sample_weight); got a tuple of 4"),
    Case("validation-y-fewer-rows", api(lambda: compiled().fit(
        X, Y, validation_data=(X, Y[:3]), **FIT)), ValueError,
         "validation_data y must have shape (8, 1)"),
    Case("adapt-y-wrong-columns", api(lambda: gradinn().adapt(np.zeros((3, 2)))), ValueError,
         "y must have 1 column(s); got shape (3, 2)"),
    # --- dtype surprises ---
    Case("fit-x-text", api(lambda: compiled().fit([["a", "b"]] * 3, [1.0, 2.0, 3.0], **FIT)),
         ValueError, "x must be numeric; got values of type <U1"),
    Case("fit-x-numeric-text", api(lambda: compiled().fit(
        np.array([["0.5", "15"]] * 3), [1.0, 2.0, 3.0], **FIT)), ValueError,
         "x must be numeric; got values of type <U3"),
    Case("fit-x-object-array-with-none", api(lambda: compiled().fit(
        np.array([[0.5, 15.0], [0.5, None], [0.2, 12.0]], dtype=object), [1.0, 2.0, 3.0], **FIT)),
         ValueError, "x must be numeric; got values of type object"),
    Case("fit-x-ragged-list", api(lambda: compiled().fit([[0.5, 15.0], [0.5]], [1.0, 2.0], **FIT)),
         ValueError, "x must be a numeric array with rows of equal length; got list"),
    Case("fit-x-mixed-list", api(lambda: compiled().fit(
        [[0.5, "fifteen"], [0.5, 12.0]], [1.0, 2.0], **FIT)), ValueError,
         "x must be numeric; got values of type <U32"),
    Case("predict-dataframe-with-text", api(lambda: compiled().predict(
        pd.DataFrame({"a": ["low", "high"], "b": [11.0, 12.0]}), verbose=0)), ValueError,
         "x must be numeric; got values of type object"),
    Case("fit-x-complex", api(lambda: compiled().fit(X + 1j, Y, **FIT)), ValueError,
         "x must be real numbers; got complex values"),
    Case("fit-x-and-y-scalars", api(lambda: compiled().fit(1.0, 2.0, **FIT)), ValueError,
         "x must be an array of rows; got a scalar"),
    Case("fit-y-scalar", api(lambda: compiled().fit(X, 2.0, **FIT)), ValueError,
         "y must be an array of rows; got a scalar"),
    Case("predict-text-scalar", api(lambda: compiled().predict("abc", verbose=0)), ValueError,
         "Unrecognized data type: x=abc"),
    Case("fit-x-none", api(lambda: compiled().fit(None, Y, **FIT)), ValueError,
         "fit needs training inputs x; got None"),
    Case("predict-x-none", api(lambda: compiled().predict(None, verbose=0)), ValueError,
         "predict needs inputs x; got None"),
    # --- NaN and inf ---
    Case("fit-x-nan", api(lambda: compiled().fit(
        np.where(np.arange(16).reshape(8, 2) == 7, np.nan, X), Y, **FIT)), ValueError,
         "x contains NaN or inf in 1 row(s), first row 3"),
    Case("fit-y-inf", api(lambda: compiled().fit(
        X, np.where(np.arange(8)[:, None] == 2, np.inf, Y), **FIT)), ValueError,
         "y contains NaN or inf in 1 row(s), first row 2"),
    Case("predict-x-inf", api(lambda: compiled().predict(np.array([[0.5, np.inf]]), verbose=0)),
         ValueError, "x contains NaN or inf in 1 row(s), first row 0"),
    Case("predict-gradient-x-nan", api(lambda: compiled().predict_gradient(
        np.array([[0.5, 15.0], [np.nan, 15.0]]))), ValueError,
         "x contains NaN or inf in 1 row(s), first row 1"),
    Case("validation-y-nan", api(lambda: compiled().fit(
        X, Y, validation_data=(X, Y * np.nan), **FIT)), ValueError,
         "validation_data y contains NaN or inf in 8 row(s)"),
    Case("adapt-nan", api(lambda: gradinn().adapt([[1.0], [np.nan]])), ValueError,
         "y contains NaN or inf in 1 row(s), first row 1"),
    Case("bounds-nan", api(lambda: gradinn(bounds=[(0.0, np.nan), (10.0, 20.0)])), ValueError,
         "bounds must be finite; got [[0.0, nan], [10.0, 20.0]]"),
    Case("bounds-inf", api(lambda: gradinn(bounds=[(0.0, 1.0), (-np.inf, 20.0)])), ValueError,
         "bounds must be finite"),
    Case("adapt-beyond-float32", api(lambda: gradinn().adapt([[1e39], [3e39]])), ValueError,
         "y is too large for float32"),
    Case("bounds-beyond-float32", api(lambda: kg.GradINN(
        net(1), "smooth", bounds=[(-1e39, 1e39)], n_collocation=8, seed=0)), ValueError,
         "bounds must fit in float32"),
    # --- empty data ---
    Case("fit-empty-array", api(lambda: compiled().fit(np.zeros((0, 2)), np.zeros((0, 1)), **FIT)),
         ValueError, "x is empty; got shape (0, 2)"),
    Case("fit-empty-lists", api(lambda: compiled().fit([], [], **FIT)), ValueError,
         "x is empty; got shape (0,)"),
    Case("predict-empty", api(lambda: compiled().predict(np.zeros((0, 2)), verbose=0)),
         ValueError, "x is empty; got shape (0, 2)"),
    Case("predict-gradient-empty", api(lambda: compiled().predict_gradient(np.zeros((0, 2)))),
         ValueError, "x is empty; got shape (0, 2)"),
    Case("adapt-empty", api(lambda: gradinn().adapt(np.zeros((0, 1)))), ValueError,
         "y is empty; got shape (0, 1)"),
    Case("adapt-dataset-without-targets", api(lambda: gradinn().adapt(
        tf.data.Dataset.from_tensor_slices(X).batch(4))), ValueError,
         "the dataset must yield (x, y) pairs to adapt to"),
    Case("fit-infinite-dataset-unadapted", api(lambda: compiled().fit(
        tf.data.Dataset.from_tensors((X, Y)).repeat(), epochs=1, steps_per_epoch=1, verbose=0)),
         ValueError, "the dataset is infinite"),
    # --- points outside the bounds (training refuses; prediction warns, see below) ---
    Case("fit-outside-bounds", api(lambda: compiled().fit(X + [5.0, 0.0], Y, **FIT)), ValueError,
         "x has 8 row(s) outside the bounds [[0.0, 1.0], [10.0, 20.0]]"),
    Case("bounds-low-above-high", api(lambda: gradinn(bounds=[(1.0, 0.0), (10.0, 20.0)])),
         ValueError, "input 0 has (low, high) = (1.0, 0.0)"),
    Case("bounds-three-columns", api(lambda: gradinn(bounds=[(0, 1, 2), (10, 20, 30)])),
         ValueError, "bounds must have shape (d, 2) with one (low, high) pair per input; got "
         "shape (2, 3)"),
    Case("bounds-ragged", api(lambda: gradinn(bounds=[(0.0, 1.0), (10.0,)])), ValueError,
         "bounds must be numbers of shape (d, 2)"),
    Case("bounds-for-three-inputs", api(lambda: gradinn(bounds=[(0.0, 1.0)] * 3)), ValueError,
         "network must accept inputs of shape (n, 3) to match the bounds"),
    # --- networks, priors and labels ---
    Case("network-not-a-model", api(lambda: gradinn(network=lambda x: x)), TypeError,
         "network must be a keras.Model; got function"),
    Case("network-4d-output", api(lambda: gradinn(network=reshaping_network((1, 1, 2)))),
         ValueError, "network must return shape (n, m), or (n, members, m) for a stacked "
         "network; got (2, 1, 1, 2)"),
    Case("prior-too-many-outputs", api(lambda: gradinn(prior=kg.priors.smooth(2, 2, seed=0))),
         ValueError, "prior must output m*d = 2 values per point (shape (n, 2) or (n, 1, 2)) "
         "for 1 output(s) and 2 input(s); got shape (n, 4)"),
    Case("prior-wrong-input-size", api(lambda: gradinn(prior=kg.priors.constant(3, 1))),
         ValueError, "prior must accept inputs of shape (n, 2)"),
    Case("prior-unknown-name", api(lambda: gradinn(prior="linear")), ValueError,
         "prior must be one of ('smooth', 'oscillatory', 'constant') or a keras.Model; got "
         "'linear'"),
    Case("prior-not-a-model", api(lambda: gradinn(prior=42)), TypeError,
         "prior must be a keras.Model or one of"),
    Case("labels-duplicated", api(lambda: gradinn(input_labels=["a", "a"])), ValueError,
         "input_labels must be 2 distinct names; got ['a', 'a']"),
    # --- collocation samplers and domains ---
    Case("sampler-unknown-name", api(lambda: gradinn(sampler="grid")), ValueError,
         "sampler must be one of ('uniform', 'sobol', 'halton', 'lhs')"),
    Case("sampler-wrong-width", api(lambda: gradinn(sampler=lambda n, rng: rng.random((n, 3)))),
         ValueError, "sampler output must have shape (8, 2); got shape (8, 3)"),
    Case("sampler-wrong-count", api(lambda: gradinn(
        sampler=lambda n, rng: np.tile([[0.5, 15.0]], (n + 1, 1)))), ValueError,
         "sampler output must have shape (8, 2); got shape (9, 2)"),
    Case("sampler-outside-domain", api(lambda: gradinn(sampler=tile([5.0, 15.0]))), ValueError,
         "sampler output must lie inside the domain; 8 point(s) do not, first [5.0, 15.0]"),
    Case("sampler-nan", api(lambda: gradinn(sampler=tile([np.nan, 15.0]))), ValueError,
         "sampler output contains NaN or inf in 8 row(s)"),
    Case("sampler-returns-none", api(lambda: gradinn(sampler=lambda n, rng: None)), ValueError,
         "sampler output must be numeric; got values of type object"),
    Case("sampler-error-propagates", api(lambda: gradinn(sampler=lambda n, rng: 1 / 0)),
         ZeroDivisionError, "division by zero"),
    Case("sampler-points-outside-domain", api(lambda: gradinn(sampler=np.array([[5.0, 15.0]] * 4))),
         ValueError, "sampler points must lie inside the domain; 4 point(s) do not"),
    Case("set-sampler-points-outside", api(lambda: gradinn().set_sampler(np.zeros((3, 2)))),
         ValueError, "sampler points must lie inside the domain; 3 point(s) do not"),
    Case("sampler-leaves-domain-during-fit", api(lambda: compiled(
        sampler=drifting_sampler()).fit(X, Y, **FIT)), ValueError,
         "sampler output must lie inside the domain; 8 point(s) do not, first [5.0, 15.0]"),
    Case("contains-rejects-everything", api(lambda: gradinn(
        contains=lambda x: np.zeros(len(x), dtype=bool))), ValueError,
         "contains(x) accepted only 0 of 100032 candidate points"),
    Case("contains-wrong-mask-shape", api(lambda: gradinn(
        contains=lambda x: np.ones((len(x), 1), dtype=bool))), ValueError,
         "contains(x) must return a boolean mask of shape (64,); got shape (64, 1)"),
    Case("contains-not-callable", api(lambda: gradinn(contains=True)), TypeError,
         "contains must be callable; got bool"),
    Case("jit-with-host-sampler", api(lambda: gradinn(sampler=tile([0.5, 15.0])).compile(
        jit_compile=True)), ValueError, "jit_compile=True cannot be used with a host-side"),
    Case("train-without-sampler", api(lambda: compiled(sampler=None).fit(X, Y, **FIT)),
         ValueError, "this model has no collocation sampler"),
    # --- absurd hyper-parameters ---
    Case("gradient-weight-negative", api(lambda: gradinn(gradient_weight=-1.0)), ValueError,
         "gradient_weight must be finite and >= 0; got -1.0"),
    Case("gradient-weight-nan", api(lambda: gradinn(gradient_weight=float("nan"))), ValueError,
         "gradient_weight must be finite and >= 0; got nan"),
    Case("gradient-weight-set-negative", api(lambda: setattr(gradinn(), "gradient_weight", -0.5)),
         ValueError, "gradient_weight must be finite and >= 0; got -0.5"),
    Case("n-collocation-zero", api(lambda: gradinn(n_collocation=0)), ValueError,
         "n_collocation must be a positive integer; got 0"),
    Case("n-collocation-negative", api(lambda: gradinn(n_collocation=-5)), ValueError,
         "n_collocation must be a positive integer; got -5"),
    Case("n-collocation-fractional", api(lambda: gradinn(n_collocation=2.5)), ValueError,
         "n_collocation must be a positive integer; got 2.5"),
    Case("seed-negative", api(lambda: gradinn(seed=-1)), ValueError,
         "seed must be an integer in [0, 2**31); got -1"),
    Case("seed-too-large", api(lambda: gradinn(seed=2**31)), ValueError,
         "seed must be an integer in [0, 2**31); got 2147483648"),
    Case("width-zero", api(lambda: kg.mlp(2, 1, width=0)), ValueError,
         "width must be a positive integer; got 0"),
    Case("depth-zero", api(lambda: kg.mlp(2, 1, depth=0)), ValueError,
         "depth must be a positive integer; got 0"),
    Case("prior-width-zero", api(lambda: kg.priors.smooth(2, 1, width=0)), ValueError,
         "width must be a positive integer; got 0"),
    Case("gradient-batch-size-zero", api(lambda: gradinn().predict_gradient(X, batch_size=0)),
         ValueError, "batch_size must be a positive integer; got 0"),
    # --- corrupted files and exports (Python API) ---
    Case("load-truncated-keras-file", lambda c: functools.partial(
        keras.models.load_model, c.keras_file(0.5)), ValueError,
         "Please ensure the file is an accessible `.keras` zip file"),
    Case("verify-truncated-onnx", lambda c: functools.partial(
        export.verify, c.artifacts.model, c.onnx_file(0.5)), export.ExportVerificationError,
         "in a fresh process failed"),
    Case("verify-onnx-of-another-model", lambda c: functools.partial(
        export.verify, gradinn(network=net(seed=5)), c.onnx_file()),
         export.ExportVerificationError, "differs from Keras by up to"),
    Case("verify-nan-tolerance", lambda c: functools.partial(
        export.verify, gradinn(network=net(seed=5)), c.onnx_file(), atol=float("nan")),
         ValueError, "atol must be finite and >= 0; got nan"),
    Case("verify-negative-seed", lambda c: functools.partial(
        export.verify, c.artifacts.model, c.onnx_file(), seed=-1), ValueError,
         "seed must be a non-negative integer; got -1"),
    Case("verify-empty-saved-model-dir", lambda c: (
        (c.tmp / "serving" / "1").mkdir(parents=True),
        functools.partial(export.verify, c.artifacts.model, c.tmp / "serving" / "1"))[1],
         export.ExportVerificationError, "SavedModel file does not exist"),
    Case("verify-missing-file", lambda c: functools.partial(
        export.verify, c.artifacts.model, c.tmp / "missing.onnx"), FileNotFoundError,
         "missing.onnx' does not exist"),
    Case("verify-zero-points", lambda c: functools.partial(
        export.verify, c.artifacts.model, c.onnx_file(), n=0), ValueError,
         "n must be a positive integer; got 0"),
    Case("verify-not-a-gradinn", lambda c: functools.partial(
        export.verify, keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]),
        c.onnx_file()), TypeError, "model must be a keras_gradinn.GradINN; got Sequential"),
    Case("onnx-opset-out-of-range", lambda c: functools.partial(
        export.to_onnx, c.artifacts.model, c.tmp / "m.onnx", opset=99), ValueError,
         "opset must be an integer from 13 to 18"),
    Case("onnx-path-is-directory", lambda c: functools.partial(
        export.to_onnx, c.artifacts.model, c.tmp), ValueError, "is a directory"),
    Case("onnx-parent-missing", lambda c: functools.partial(
        export.to_onnx, c.artifacts.model, c.tmp / "missing" / "m.onnx"), ValueError,
         "m.onnx' does not exist"),
    Case("onnx-gradient-of-non-dense-network", lambda c: functools.partial(
        export.to_onnx, gradinn(network=non_dense_network()), c.tmp / "m.onnx",
        with_gradient=True), ValueError,
         "the explicit Jacobian needs a chain of keras.layers.Dense layers"),
    Case("onnx-negative-tolerance", lambda c: functools.partial(
        export.to_onnx, c.artifacts.model, c.tmp / "m.onnx", atol=-1.0), ValueError,
         "atol must be finite and >= 0; got -1.0"),
    Case("saved-model-base-is-file", lambda c: functools.partial(
        export.to_saved_model, c.artifacts.model, c.write("serving", "a file")), ValueError,
         "serving' is a file"),
    Case("saved-model-version-zero", lambda c: functools.partial(
        export.to_saved_model, c.artifacts.model, c.tmp / "serving" / "nested", version=0),
         ValueError, "version must be a positive integer; got 0"),
    Case("saved-model-version-exists", lambda c: functools.partial(
        export.to_saved_model, c.artifacts.model, c.saved_model_base_with_version_1(), version=1),
         FileExistsError, "SavedModel versions are never overwritten"),
    # --- the command line: data files ---
    Case("cli-fit-garbage-csv", lambda c: functools.partial(
        c.cli, *c.fit_args(c.write("data.csv", bytes(range(256)) * 2))), CliError,
         "data.csv: not a readable CSV file"),
    Case("cli-fit-truncated-csv", lambda c: functools.partial(
        c.cli, *c.fit_args(c.truncated_csv())), CliError,
         "cut.csv: row 11 has 2 cells; the header has 4"),
    Case("cli-fit-empty-csv", lambda c: functools.partial(
        c.cli, *c.fit_args(c.write("data.csv", ""))), CliError, "data.csv: the file is empty"),
    Case("cli-fit-header-only", lambda c: functools.partial(
        c.cli, *c.fit_args(c.write("data.csv", "a,b,u\n"))), CliError,
         "data.csv: the table has a header but no rows"),
    Case("cli-fit-semicolon-csv", lambda c: functools.partial(
        c.cli, *c.fit_args(c.write("data.csv", "a;b;u\n0.1;11;1\n0.2;12;2\n"))), CliError,
         "row 2, column 'a;b;u' holds '0.1;11;1', which is not a number"),
    Case("cli-fit-inf-cell", lambda c: functools.partial(c.cli, *c.fit_args(c.csv(
        "data.csv", ["a", "b", "u"], [[0.1, 11, 1], [0.2, "inf", 2], [0.3, 13, 3], [0.4, 14, 5]]))),
         CliError, "row 3, column 'b' is inf; every input needs a finite value"),
    Case("cli-fit-single-row", lambda c: functools.partial(c.cli, *c.fit_args(c.csv(
        "data.csv", ["a", "b", "u"], [[0.1, 11, 1]]))), CliError,
         "1 training rows for 2 inputs; need at least 3"),
    Case("cli-fit-constant-target", lambda c: functools.partial(c.cli, *c.fit_args(c.csv(
        "data.csv", ["a", "b", "u"], [[0.1 * i, 11 + i, 7.0] for i in range(8)]))), CliError,
         "target 'u' is constant; there is nothing to fit"),
    Case("cli-fit-constant-input", lambda c: functools.partial(c.cli, *c.fit_args(c.csv(
        "data.csv", ["a", "b", "u"], [[0.1, 11 + i, i] for i in range(8)]))), CliError,
         "input 'a' is constant (0.1), so its bounds cannot be inferred"),
    Case("cli-fit-truncated-npz", lambda c: functools.partial(
        c.cli, *c.fit_args(c.truncated_npz())), CliError, "cut.npz: not a readable NPZ file"),
    Case("cli-fit-npz-text-column", lambda c: (
        np.savez(c.tmp / "data.npz", a=np.array(["x", "y", "z"]), b=np.arange(3.0),
                 u=np.arange(3.0)),
        functools.partial(c.cli, *c.fit_args(c.tmp / "data.npz")))[1], CliError,
         "data.npz: every NPZ column must be numeric"),
    # --- the command line: observed derivatives (--gradients) ---
    Case("cli-fit-gradients-missing-column", lambda c: functools.partial(c.cli, *c.fit_args(
        c.gradient_data(), "--gradients", "du/db")), CliError,
         "data.csv: no column 'du/db' for the gradients; did you mean 'du/da'?"),
    Case("cli-fit-gradients-not-a-derivative-name", lambda c: functools.partial(c.cli, *c.fit_args(
        c.gradient_data(), "--gradients", "slope")), CliError,
         "--gradients: 'slope' is not a derivative column of the targets and inputs (expected "
         "d<target>/d<input>, one of: du/da, du/db)"),
    Case("cli-fit-gradients-unknown-target", lambda c: functools.partial(c.cli, *c.fit_args(
        c.gradient_data(), "--gradients", "dw/da")), CliError,
         "'dw/da' is not a derivative column of the targets and inputs; did you mean 'du/da'?"),
    Case("cli-fit-gradients-listed-twice", lambda c: functools.partial(c.cli, *c.fit_args(
        c.gradient_data(), "--gradients", "du/da,du/da")), CliError,
         "--gradients lists 'du/da' twice"),
    Case("cli-fit-gradients-empty-column", lambda c: functools.partial(c.cli, *c.fit_args(
        c.gradient_data([""] * 8), "--gradients", "du/da")), CliError,
         "data.csv: column 'du/da' listed in --gradients is empty in every row"),
    Case("cli-fit-gradients-inf-cell", lambda c: functools.partial(c.cli, *c.fit_args(
        c.gradient_data([1.0, "", "inf", 1.0, 1.0, 1.0, 1.0, 1.0]), "--gradients", "du/da")),
         CliError, "row 4, column 'du/da' is inf; every gradient needs a finite value or an "
         "empty cell"),
    Case("cli-fit-gradients-text-cell", lambda c: functools.partial(c.cli, *c.fit_args(
        c.gradient_data([1.0, "steep", 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]), "--gradients", "du/da")),
         CliError, "row 3, column 'du/da' holds 'steep', which is not a number"),
    Case("cli-fit-gradients-also-a-target", lambda c: functools.partial(c.cli, *c.fit_args(
        c.gradient_data(), "--targets", "u,du/da", "--gradients", "du/da")), CliError,
         "column(s) ['du/da'] are listed in --gradients and as inputs or targets"),
    Case("cli-fit-gradients-empty-list-in-config", lambda c: functools.partial(
        c.cli, "fit", "--config", c.write("run.toml", f'data = "{c.gradient_data()}"\n'
                                          'inputs = ["a", "b"]\ntargets = ["u"]\n'
                                          'gradients = []\n'), "--out", c.run_dir), CliError,
         "option 'gradients' must be a non-empty list of column names"),
    Case("cli-fit-derivative-weight-without-gradients", lambda c: functools.partial(
        c.cli, *c.fit_args(c.gradient_data(), "--derivative-weight", "2")), CliError,
         "derivative-weight needs --gradients"),
    Case("cli-fit-negative-derivative-weight", lambda c: functools.partial(c.cli, *c.fit_args(
        c.gradient_data(), "--gradients", "du/da", "--derivative-weight", "-1")), CliError,
         "derivative-weight must be finite and >= 0; got -1.0"),
    # --- the command line: bounds files ---
    Case("cli-fit-bounds-wrong-header", lambda c: functools.partial(c.cli, *c.fit_args(
        c.data(), "--bounds", c.bounds(["name", "low", "high"], ["a", 0, 1], ["b", 10, 20]))),
         CliError,
         "bounds.csv: a bounds file needs the header 'input,low,high'; got 'name,low,high'"),
    Case("cli-fit-bounds-empty-file", lambda c: functools.partial(c.cli, *c.fit_args(
        c.data(), "--bounds", c.write("bounds.csv", ""))), CliError,
         "a bounds file needs the header 'input,low,high'; got ''"),
    Case("cli-fit-bounds-nan", lambda c: functools.partial(c.cli, *c.fit_args(
        c.data(), "--bounds", c.bounds(["input", "low", "high"], ["a", 0, "nan"],
                                       ["b", 10, 20]))), CliError,
         "bounds.csv: input 'a' needs finite bounds with low < high"),
    Case("cli-fit-data-outside-bounds-file", lambda c: functools.partial(c.cli, *c.fit_args(
        c.data(), "--validation-split", "0", "--bounds",
        c.bounds(["input", "low", "high"], ["a", 0, 0.5], ["b", 10, 20]))), CliError,
         "training row(s) lie outside the bounds in"),
    Case("cli-fit-diverging", lambda c: functools.partial(
        c.cli, *c.fit_args(c.data(), "--learning-rate", "1e30", "--steps", "3")), CliError,
         "NonFiniteLossError: training stopped at step"),
    # --- the command line: options ---
    Case("cli-fit-negative-gradient-weight", lambda c: functools.partial(
        c.cli, *c.fit_args(c.data(), "--gradient-weight", "-1")), CliError,
         "gradient-weight must be finite and >= 0"),
    Case("cli-fit-zero-n-collocation", lambda c: functools.partial(
        c.cli, *c.fit_args(c.data(), "--n-collocation", "0")), CliError,
         "n-collocation must be >= 1"),
    Case("cli-fit-fractional-n-collocation", lambda c: functools.partial(
        c.cli, *c.fit_args(c.data(), "--n-collocation", "2.5")), CliUsageError,
         "argument --n-collocation: invalid int value: '2.5'"),
    Case("cli-fit-zero-width", lambda c: functools.partial(
        c.cli, *c.fit_args(c.data(), "--width", "0")), CliError, "width and depth must be >= 1"),
    Case("cli-fit-negative-seed", lambda c: functools.partial(
        c.cli, *c.fit_args(c.data(), "--seed", "-1")), CliError, "seed must be in [0, 2**31)"),
    Case("cli-fit-unknown-activation", lambda c: functools.partial(
        c.cli, *c.fit_args(c.data(), "--activation", "nosuch")), CliError,
         "The 'activation' parameter of GradINNRegressor must be a str among"),
    Case("cli-fit-weight-with-auto-prior", lambda c: functools.partial(
        c.cli, *c.fit_args(c.data(), "--prior", "auto", "--gradient-weight", "0.5")), CliError,
         "gradient-weight needs a fixed --prior"),
    Case("cli-fit-one-fold", lambda c: functools.partial(
        c.cli, *c.fit_args(c.data(), "--cv", "1")), CliError, "cv must be >= 2"),
    Case("cli-fit-zero-steps", lambda c: functools.partial(
        c.cli, *c.fit_args(c.data(), "--steps", "0")), CliError, "steps must be >= 1"),
    Case("cli-fit-config-wrong-type", lambda c: functools.partial(c.cli, "fit", "--config", c.write(
        "run.toml", f'data = "{c.data()}"\ninputs = ["a", "b"]\ntargets = ["u"]\nsteps = "ten"\n'),
        "--out", c.run_dir), CliError, "option 'steps' must be int; got 'ten'"),
    Case("cli-fit-out-is-a-file", lambda c: functools.partial(
        c.cli, "fit", c.data(), "--inputs", "a,b", "--targets", "u", "--out",
        c.write("taken", "a file"), *TINY), CliError, "taken: exists and is not a directory"),
    # --- the command line: model files ---
    Case("cli-info-truncated-keras", lambda c: functools.partial(
        c.cli, "info", c.keras_file(0.5)), CliError,
         "model.keras: not a readable .keras model file"),
    Case("cli-predict-truncated-keras", lambda c: functools.partial(
        c.cli, "predict", c.keras_file(0.5), c.csv("p.csv", ["a", "b"], [[0.5, 12.0]]),
        "--out", c.tmp / "out.csv"), CliError, "model.keras: not a readable .keras model file"),
    Case("cli-export-truncated-keras", lambda c: functools.partial(
        c.cli, "export", c.keras_file(0.5), "--onnx", c.tmp / "m.onnx"), CliError,
         "model.keras: not a readable .keras model file"),
    Case("cli-predict-missing-column", lambda c: functools.partial(
        c.cli, "predict", c.keras_file(), c.csv("p.csv", ["a", "c"], [[0.5, 12.0]]),
        "--out", c.tmp / "out.csv"), CliError, "p.csv: no column 'b' for the inputs"),
    Case("cli-predict-empty-input-cell", lambda c: functools.partial(
        c.cli, "predict", c.keras_file(), c.csv("p.csv", ["a", "b"], [[0.5, 12.0], [0.5, ""]]),
        "--out", c.tmp / "out.csv"), CliError,
         "p.csv: row 3, column 'b' is empty; every input needs a finite value"),
    Case("cli-predict-garbage-csv", lambda c: functools.partial(
        c.cli, "predict", c.keras_file(), c.write("p.csv", bytes(range(256))),
        "--out", c.tmp / "out.csv"), CliError, "p.csv: not a readable CSV file"),
    Case("cli-predict-out-directory-missing", lambda c: functools.partial(
        c.cli, "predict", c.keras_file(), c.csv("p.csv", ["a", "b"], [[0.5, 12.0]]),
        "--out", c.tmp / "missing" / "out.csv"), CliError, "missing: no such directory"),
    Case("cli-predict-out-is-a-directory", lambda c: (
        (c.tmp / "out").mkdir(), functools.partial(
            c.cli, "predict", c.keras_file(), c.csv("p.csv", ["a", "b"], [[0.5, 12.0]]),
            "--out", c.tmp / "out"))[1], CliError, "is a directory; give a file name for --out"),
    Case("cli-export-nothing-to-do", lambda c: functools.partial(
        c.cli, "export", c.keras_file()), CliError,
         "nothing to do: give --saved-model DIR and/or --onnx FILE"),
    Case("cli-export-onnx-directory-missing", lambda c: functools.partial(
        c.cli, "export", c.keras_file(), "--onnx", c.tmp / "missing" / "m.onnx"), CliError,
         "m.onnx' does not exist"),
    Case("cli-export-saved-model-is-a-file", lambda c: functools.partial(
        c.cli, "export", c.keras_file(), "--saved-model", c.write("serving", "a file")),
         CliError, "serving' is a file"),
]

PARAMS = [
    pytest.param(case, id=case.id,
                 marks=[pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else [])
    for case in CASES
]


def snapshot(root: pathlib.Path) -> dict[str, bytes | None]:
    """Every path under `root` with its content (None for directories).

    TensorFlow's autograph writes the source of every function it converts to
    the temporary directory and keeps it for tracebacks; those are not the
    package's files and are left out.
    """
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))
            if not p.name.startswith("__autograph_generated_file")}


@pytest.mark.parametrize("case", PARAMS)
def test_bad_input_is_refused_with_a_clear_error_and_writes_nothing(
    case, tmp_path, capsys, artifacts, monkeypatch
):
    monkeypatch.delenv("KERAS_GRADINN_DEBUG", raising=False)
    # Temporary files made without an explicit directory (export.verify's
    # scratch space, for one) land in tmp_path too, so the snapshot sees them.
    (tmp_path / "system-tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "system-tmp"))
    operation = case.prepare(Ctx(tmp_path, capsys, artifacts))
    capsys.readouterr()
    before = snapshot(tmp_path)

    with pytest.raises(case.raises, match=re.escape(case.fragment)) as caught:
        operation()

    assert type(caught.value) is case.raises, repr(caught.value)
    assert snapshot(tmp_path) == before


def test_the_corpus_is_large_and_its_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) >= 45
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9-]+", i) for i in ids)


def test_the_files_the_corpus_corrupts_are_valid_before_corruption(tmp_path, capsys, artifacts):
    ctx = Ctx(tmp_path, capsys, artifacts)
    loaded = keras.models.load_model(ctx.keras_file())
    np.testing.assert_allclose(loaded.predict(X, verbose=0), artifacts.model.predict(X, verbose=0))
    differences = export.verify(artifacts.model, ctx.onnx_file(), n=16)
    assert set(differences) == {"onnx/y/one", "onnx/y/all"}
    assert main(["info", str(ctx.keras_file())]) == 0
    assert "bounds [0, 1]" in capsys.readouterr().out
    # The command-line helper treats success as a failed case, not a pass.
    with pytest.raises(AssertionError, match="expected a clean failure; exit status 0"):
        ctx.cli("info", ctx.keras_file())


# ----------------------------------------------------------------- what must work

def seeded(**kwargs) -> kg.GradINN:
    """Two calls give identical models: every initialiser and draw is seeded."""
    return compiled(prior=kg.priors.smooth(2, 1, seed=0), **kwargs)


def test_python_ints_and_integer_arrays_work_like_floats():
    x_int = [[0, 10], [1, 20], [1, 15], [0, 12]]
    y_int = [1, 2, 3, 4]
    as_lists, as_arrays, as_floats = seeded(), seeded(), seeded()
    as_lists.fit(x_int, y_int, epochs=2, batch_size=4, verbose=0)
    as_arrays.fit(np.array(x_int), np.array(y_int), epochs=2, batch_size=4, verbose=0)
    as_floats.fit(np.array(x_int, float), np.array(y_int, float)[:, None], epochs=2, batch_size=4,
                  verbose=0)

    expected = as_floats.predict(np.array(x_int, float), verbose=0)
    assert expected.shape == (4, 1) and np.isfinite(expected).all()
    for model in (as_lists, as_arrays):
        np.testing.assert_allclose(model.predict(x_int, verbose=0), expected, rtol=1e-6)
        np.testing.assert_allclose(model.predict(np.array(x_int), verbose=0), expected, rtol=1e-6)
        np.testing.assert_allclose(model.predict_gradient(np.array(x_int)),
                                   as_floats.predict_gradient(np.array(x_int, float)), rtol=1e-6)
    assert as_lists.predict_gradient([[1, 15]]).shape == (1, 1, 2)
    assert seeded(n_collocation=8.0).n_collocation == 8  # a whole float is a whole number


def test_pandas_dataframes_work_for_fit_predict_and_gradients():
    frame = pd.DataFrame(X, columns=["a", "b"])
    from_pandas, from_numpy = seeded(), seeded()
    from_pandas.fit(frame, pd.Series(Y[:, 0], name="u"), **FIT)
    from_numpy.fit(X, Y, **FIT)

    expected = from_numpy.predict(X, verbose=0)
    np.testing.assert_allclose(from_pandas.predict(frame, verbose=0), expected, rtol=1e-6)
    np.testing.assert_allclose(from_pandas.predict_gradient(frame), from_numpy.predict_gradient(X),
                               rtol=1e-6)
    evaluated = from_pandas.evaluate(frame, pd.DataFrame(Y, columns=["u"]), verbose=0,
                                     return_dict=True)
    assert np.isfinite(evaluated["loss"])


def test_a_single_row_trains_centred_but_not_scaled_with_a_constant_warning():
    model = seeded()
    with pytest.warns(UserWarning, match="are constant; they are centred but not scaled"):
        model.fit(X[:1], Y[:1], epochs=1, batch_size=1, verbose=0)
    assert model.adapted
    assert keras.ops.convert_to_numpy(model.output_mean) == pytest.approx(Y[0], rel=1e-6)
    assert keras.ops.convert_to_numpy(model.output_std) == pytest.approx([1.0])
    prediction = model.predict(X[:1], verbose=0)
    assert prediction.shape == (1, 1) and np.isfinite(prediction).all()


def test_a_constant_target_warns_and_is_only_centred():
    model = seeded()
    with pytest.warns(UserWarning, match=re.escape("target column(s) [0] are constant")):
        model.fit(X, np.full((8, 1), 7.5), **FIT)
    assert keras.ops.convert_to_numpy(model.output_mean) == pytest.approx([7.5])
    assert keras.ops.convert_to_numpy(model.output_std) == pytest.approx([1.0])
    assert np.isfinite(model.predict(X, verbose=0)).all()


def test_constant_inputs_train_without_warnings_when_bounds_are_given():
    model = seeded()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        history = model.fit(np.tile([[0.5, 15.0]], (8, 1)), Y, **FIT)
    assert np.isfinite(history.history["loss"]).all()


def test_points_outside_the_bounds_are_predicted_with_a_warning():
    model = seeded()
    model.fit(X, Y, **FIT)
    outside = np.array([[0.5, 15.0], [2.0, 15.0], [0.5, 9.0]])
    with pytest.warns(UserWarning, match=r"x has 2 row\(s\) outside the bounds .* first row 1"):
        prediction = model.predict(outside, verbose=0)
    with pytest.warns(UserWarning, match="the model extrapolates there"):
        gradient = model.predict_gradient(outside)
    with pytest.warns(UserWarning, match="outside the bounds"):
        model.evaluate(outside, np.zeros((3, 1)), verbose=0)
    assert prediction.shape == (3, 1) and np.isfinite(prediction).all()
    assert gradient.shape == (3, 1, 2) and np.isfinite(gradient).all()
    np.testing.assert_array_equal(model.outside_bounds(outside), [False, True, True])
