"""`keras-gradinn fit`: train a surrogate from a data file and write a run directory.

Everything that can be checked is checked before training. The run
directory is assembled in a staging sibling and renamed into place
(`files.staged`), so it appears complete or not at all, with the mode a
plain `mkdir` gives. While training, checkpoints go to the hidden sibling
`.<RUN_DIR>.checkpoint/`: a run that fails leaves nothing behind, one that
is interrupted leaves its checkpoints for `--resume`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import shutil
import sys
import time
import tomllib
from collections.abc import Callable
from typing import Any

import numpy as np

from keras_gradinn import files, tables, training
from keras_gradinn.cli.common import CommandError, derivative_column
from keras_gradinn.validation import outside as outside_bounds

__all__ = ["DEFAULTS", "PRIORS", "add_arguments", "fit", "resolve_config",
           "run"]

HELP = "train a surrogate from a CSV or NPZ file"
DESCRIPTION = (
    "Train a GradINN surrogate on columns of DATA and write RUN_DIR with "
    "model.keras, metrics.json, config.toml and plots (parity.png, loss.png, slices.png,\n"
    "and calibration.png when the model has a standard deviation).\n"
    "Options come from --config (TOML, same names with underscores), then flags.\n"
    "By default the prior is chosen by 5-fold cross-validation among a fixed set of "
    "candidates\n(no gradient term, a Gaussian process's gradient, a smooth and a stiff "
    "prior, and\ninput screening) and the chosen one is refitted on all rows for a fixed "
    "number of steps.\n"
    "Observed derivatives (from an adjoint solver or automatic differentiation) train the "
    "network's\nJacobian too: --gradients names their columns, d<target>/d<input> as predict "
    "--gradient writes them;\nempty cells are entries that were not observed.")
EPILOG = (
    "example:\n  keras-gradinn fit examples/data/beam.csv --inputs load,span,thickness "
    "--targets deflection --out runs/beam\n  keras-gradinn fit --config runs/beam/config.toml "
    "--out runs/beam-again\n  keras-gradinn fit sim.csv --inputs a,b --targets u "
    "--gradients du/da,du/db --out runs/sim")


def _estimator_defaults() -> dict[str, Any]:
    """`GradINNRegressor`'s defaults for the options `fit` passes on: one recipe, one place."""
    from keras_gradinn.estimator import GradINNRegressor

    params = GradINNRegressor().get_params()
    keys = ("prior", "gradient_weight", "steps", "batch_size", "learning_rate", "cv", "cv_steps",
            "n_members", "calibrate", "width", "depth", "activation", "n_collocation")
    return {key: params[key] for key in keys}


#: Every option of `fit`, with its default (the estimator's, for the options it
#: takes). A TOML config may set any of them.
DEFAULTS: dict[str, Any] = {
    "data": None,
    "inputs": None,
    "targets": None,
    # Columns of observed derivatives, and their weight: None until --gradients
    # is given, then the estimator's default.
    "gradients": None,
    "derivative_weight": None,
    **_estimator_defaults(),
    "bounds": "auto",
    "validation_split": 0.0,
    "validation": None,
    "seed": 0,
    "checkpoint_seconds": 30.0,
}
_TYPES = {
    "data": str, "inputs": list, "targets": list, "gradients": list, "derivative_weight": float,
    "prior": str, "gradient_weight": float,
    "bounds": str, "steps": int, "batch_size": int, "learning_rate": float, "cv": int,
    "cv_steps": int, "n_members": int, "calibrate": bool, "validation_split": float,
    "validation": str, "seed": int, "width": int, "depth": int, "activation": str,
    "n_collocation": int, "checkpoint_seconds": float,
}
def _priors() -> tuple[str, ...]:
    from keras_gradinn.estimator import CANDIDATES, FIXED

    return ("auto", *CANDIDATES, *FIXED)


#: The choices of `--prior`: "auto", or a prior to fix.
PRIORS = _priors()


def _check_value(key: str, value: Any) -> Any:
    kind = _TYPES[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list and isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise CommandError(f"option {key!r} must be {kind.__name__}; got {value!r}")
    if kind is list and (not value or not all(isinstance(v, str) and v for v in value)):
        raise CommandError(f"option {key!r} must be a non-empty list of column names")
    return value


def resolve_config(config_path: str | None, flags: dict[str, Any]) -> dict[str, Any]:
    """Merges defaults, the TOML config (if any) and command-line flags, in that order."""
    import difflib

    config = dict(DEFAULTS)
    if config_path is not None:
        path = pathlib.Path(config_path)
        try:
            loaded = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CommandError(f"{path}: no such config file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise CommandError(f"{path}: not valid TOML ({error})") from None
        for key, value in loaded.items():
            if key not in DEFAULTS:
                close = difflib.get_close_matches(key, list(DEFAULTS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise CommandError(f"{path}: unknown option {key!r}{hint}")
            config[key] = value
    config.update({key: value for key, value in flags.items() if value is not None})
    for key in ("data", "inputs", "targets"):
        if config[key] is None:
            raise CommandError(f"missing {key}: give it on the command line or in --config")
    for key, value in config.items():
        if value is not None:
            config[key] = _check_value(key, value)
    weight = config["gradient_weight"]
    checks = [
        (config["prior"] in PRIORS, f"prior must be one of {', '.join(PRIORS)}; got "
                                    f"{config['prior']!r}"),
        (config["steps"] >= 1, "steps must be >= 1"),
        (config["batch_size"] >= 1, "batch-size must be >= 1"),
        (config["learning_rate"] > 0, "learning-rate must be > 0"),
        (weight is None or (weight >= 0 and math.isfinite(weight)),
         "gradient-weight must be finite and >= 0"),
        (weight is None or config["prior"] != "auto",
         "gradient-weight needs a fixed --prior (auto gives each candidate its own)"),
        (config["cv"] >= 2, "cv must be >= 2"),
        (config["cv_steps"] is None or config["cv_steps"] >= 1, "cv-steps must be >= 1"),
        (config["n_members"] >= 1, "members must be >= 1"),
        (0 <= config["validation_split"] < 1, "validation-split must be in [0, 1)"),
        (config["n_collocation"] >= 1, "n-collocation must be >= 1"),
        (config["width"] >= 1 and config["depth"] >= 1, "width and depth must be >= 1"),
        (config["checkpoint_seconds"] >= 0, "checkpoint-seconds must be >= 0"),
        (0 <= config["seed"] < 2**31, "seed must be in [0, 2**31)"),
    ]
    for ok, message in checks:
        if not ok:
            raise CommandError(message)
    overlap = set(config["inputs"]) & set(config["targets"])
    if overlap:
        raise CommandError(f"column(s) {sorted(overlap)} are both inputs and targets")
    _resolve_gradients(config)
    return config


def derivative_slots(names: list[str], inputs: list[str],
                     targets: list[str]) -> list[tuple[int, int]]:
    """The (target, input) index of each derivative column in `names`.

    Raises:
        CommandError: for a name that is not `d<target>/d<input>` of a known
            target and input (listing the valid names), or one listed twice.
    """
    import difflib

    pairs = [(derivative_column(t, i), (a, b)) for a, t in enumerate(targets)
             for b, i in enumerate(inputs)]
    slots = dict(pairs)
    result = []
    for position, name in enumerate(names):
        if name in names[:position]:
            raise CommandError(f"--gradients lists {name!r} twice")
        if name not in slots:
            valid = list(slots)
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            shown = ", ".join(valid[:8]) + (", ..." if len(valid) > 8 else "")
            raise CommandError(
                f"--gradients: {name!r} is not a derivative column of the targets and "
                f"inputs{hint} (expected d<target>/d<input>, one of: {shown})")
        if sum(other == name for other, _ in pairs) > 1:
            raise CommandError(f"--gradients: {name!r} is d<target>/d<input> for two pairs of "
                               f"these targets and inputs; rename them")
        result.append(slots[name])
    return result


def _resolve_gradients(config: dict[str, Any]) -> None:
    """Checks `gradients` against the inputs and targets, and gives them their weight."""
    weight = config["derivative_weight"]
    if config["gradients"] is None:
        if weight is not None:
            raise CommandError("derivative-weight needs --gradients (the observed derivatives "
                               "it weighs)")
        return
    if weight is None:
        from keras_gradinn.estimator import GradINNRegressor

        config["derivative_weight"] = float(GradINNRegressor().derivative_weight)
    elif not (weight >= 0 and math.isfinite(weight)):
        raise CommandError(f"derivative-weight must be finite and >= 0; got {weight}")
    both = set(config["gradients"]) & set(config["inputs"] + config["targets"])
    if both:
        raise CommandError(f"column(s) {sorted(both)} are listed in --gradients and as inputs "
                           f"or targets")
    derivative_slots(config["gradients"], config["inputs"], config["targets"])


def _toml(config: dict[str, Any]) -> str:
    lines = ["# keras-gradinn fit configuration; rerun with: "
             "keras-gradinn fit --config THIS_FILE --out DIR"]
    for key, value in config.items():
        if value is None:
            continue
        if isinstance(value, list):
            text = "[" + ", ".join(json.dumps(v) for v in value) + "]"
        elif isinstance(value, str):
            text = json.dumps(value)
        elif isinstance(value, float):
            text = repr(value)
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _prepare_run_dir(out: pathlib.Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CommandError(f"{out}: exists and is not empty; pass --overwrite to replace it")
    existing = next(parent for parent in out.absolute().parents if parent.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise CommandError(f"{out}: cannot create it under {existing}")


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_validation = int(round(n * fraction))
    return np.sort(order[n_validation:]), np.sort(order[:n_validation])


def _rmse(names: list[str], predicted: np.ndarray, y: np.ndarray) -> dict[str, float]:
    error = predicted - y
    return {name: float(v) for name, v in zip(names, np.sqrt(np.mean(error**2, 0)))}


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    from keras_gradinn import __version__

    return {"keras_gradinn": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}


def _checkpoint_dir(out: pathlib.Path) -> pathlib.Path:
    return out.parent / f".{out.name}.checkpoint"


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The rows `fit` trains on and reports on, and the domain of the model."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    bounds: np.ndarray
    #: Observed derivatives at the training rows (n, m, d) in the data's
    #: units, NaN where not observed; None without `--gradients`.
    dy_dx_train: np.ndarray | None = None


def _check_resumable(out: pathlib.Path, checkpoint_dir: pathlib.Path,
                     config: dict[str, Any]) -> None:
    saved = checkpoint_dir / "config.json"
    if not saved.is_file():
        raise CommandError(f"{out}: there is no interrupted run to resume "
                           f"(no checkpoint in {checkpoint_dir})")
    if json.loads(saved.read_text()) != config:
        raise CommandError(f"{out}: the interrupted run used a different configuration; "
                           f"rerun it with the same options, or without --resume")


def _bounds(config: dict[str, Any], x_train: np.ndarray, x_val: np.ndarray | None) -> np.ndarray:
    """The model's domain: the data's range widened ("auto"), or a bounds file holding the data."""
    if config["bounds"] == "auto":
        everything = x_train if x_val is None else np.concatenate([x_train, x_val])
        return tables.auto_bounds(everything, config["inputs"])
    bounds = tables.read_bounds(config["bounds"], config["inputs"])
    for label, values in (("training", x_train), ("validation", x_val)):
        if values is None:
            continue
        outside = np.flatnonzero(outside_bounds(bounds, values))
        if outside.size:
            raise CommandError(
                f"{outside.size} {label} row(s) lie outside the bounds in "
                f"{config['bounds']}, e.g. "
                + ", ".join(f"{n}={v:g}" for n, v in zip(config["inputs"], values[outside[0]]))
            )
    return bounds


def read_derivatives(table: tables.Table, config: dict[str, Any]) -> np.ndarray | None:
    """The observed derivatives of the `gradients` columns as (n, m, d), NaN where not observed.

    Each listed column fills its (target, input) slot; slots not listed and
    empty cells are not observed. None without `gradients`.
    """
    names = config["gradients"]
    if names is None:
        return None
    columns = table.columns(names, "gradients", allow_empty=True)
    empty = [name for name, column in zip(names, columns.T) if np.isnan(column).all()]
    if empty:
        raise CommandError(f"{table.path}: column {empty[0]!r} listed in --gradients is empty "
                           f"in every row; it holds no observed derivative")
    dy_dx = np.full((len(table), len(config["targets"]), len(config["inputs"])), np.nan)
    for column, (target, input_) in zip(columns.T,
                                        derivative_slots(names, config["inputs"],
                                                         config["targets"])):
        dy_dx[:, target, input_] = column
    return dy_dx


def read_training_data(config: dict[str, Any]) -> TrainingData:
    """Reads the data file(s), holds out the validation rows and checks there is a fit to make.

    Observed derivatives (`gradients`) are read from the training file only:
    a validation file needs no derivative columns, and held-out rows are
    scored on their values.
    """
    table = tables.read_table(config["data"])
    x = table.columns(config["inputs"], "inputs")
    y = table.columns(config["targets"], "targets")
    dy_dx = read_derivatives(table, config)
    d = x.shape[1]
    if config["validation"] is not None:
        held_out = tables.read_table(config["validation"])
        x_train, y_train = x, y
        x_val = held_out.columns(config["inputs"], "inputs")
        y_val = held_out.columns(config["targets"], "targets")
    elif config["validation_split"] > 0:
        train, val = _split(len(x), config["validation_split"], config["seed"])
        x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]
        dy_dx = None if dy_dx is None else dy_dx[train]
    else:
        x_train, y_train, x_val, y_val = x, y, None, None
    if dy_dx is not None and np.isnan(dy_dx).all():
        raise CommandError(f"{table.path}: the training rows hold no observed derivative "
                           f"(the validation split holds every one)")
    if len(x_train) < d + 1:
        raise CommandError(
            f"{table.path}: {len(x_train)} training rows for {d} inputs; need at least {d + 1}"
        )
    flat = [name for name, s in zip(config["targets"], y_train.std(axis=0)) if s == 0]
    if flat:
        raise CommandError(f"{table.path}: target {flat[0]!r} is constant; there is nothing to fit")
    return TrainingData(x_train, y_train, x_val, y_val, _bounds(config, x_train, x_val),
                        dy_dx)


def build_estimator(config: dict[str, Any], bounds: np.ndarray, *, quiet: bool):
    """The `GradINNRegressor` with the options of `config`."""
    from keras_gradinn.estimator import GradINNRegressor

    # Without --gradients the weight weighs nothing: the estimator keeps its default.
    weighs = {} if config["derivative_weight"] is None else {
        "derivative_weight": config["derivative_weight"]}
    return GradINNRegressor(
        config["prior"], gradient_weight=config["gradient_weight"], bounds=bounds, **weighs,
        width=config["width"], depth=config["depth"], activation=config["activation"],
        steps=config["steps"], learning_rate=config["learning_rate"],
        batch_size=config["batch_size"], n_collocation=config["n_collocation"], cv=config["cv"],
        cv_steps=config["cv_steps"], n_members=config["n_members"],
        calibrate=config["calibrate"], random_state=config["seed"], verbose=0 if quiet else 1)


def _checkpoint_folder(out: pathlib.Path, config: dict[str, Any], *,
                       resume: bool) -> Callable[[], None]:
    """Prepares `.<out>.checkpoint/` (fresh, or as a killed run left it); returns its discard."""
    checkpoint_dir = _checkpoint_dir(out)
    if not resume:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    undo_folders = files.make_folders(checkpoint_dir)

    def discard() -> None:
        # A run that failed (rather than being interrupted) cannot be resumed
        # into anything better: leave nothing behind.
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        undo_folders()

    if not resume:
        (checkpoint_dir / "config.json").write_text(json.dumps(config))
    else:
        # A killed run may have left its staged run directory behind.
        for stale in out.parent.glob(f".{out.name}{files.STAGING_MARK}*"):
            shutil.rmtree(stale, ignore_errors=True)
    return discard


def train(estimator, data: TrainingData, config: dict[str, Any], *,
          checkpoint_dir: pathlib.Path) -> float:
    """Fits `estimator`, checkpointing to `checkpoint_dir`; returns the seconds it took."""
    start = time.perf_counter()
    estimator.fit(data.x_train, data.y_train, dy_dx=data.dy_dx_train,
                  checkpoint_dir=checkpoint_dir, checkpoint_seconds=config["checkpoint_seconds"])
    return time.perf_counter() - start


@dataclasses.dataclass(frozen=True)
class Predictions:
    """The model's predictions at the training and validation rows, and their standard
    deviations (None when the model has none: one network without a calibration)."""

    train: np.ndarray
    train_std: np.ndarray | None
    validation: np.ndarray | None
    validation_std: np.ndarray | None


def predict_rows(model, data: TrainingData) -> Predictions:
    """The model's predictions (and standard deviations) at the rows of `data`."""

    def std(x: np.ndarray | None) -> np.ndarray | None:
        return None if x is None or not model.has_std else model.predict(x, return_std=True)[1]

    validation = None if data.x_val is None else model.predict(data.x_val, verbose=0)
    return Predictions(model.predict(data.x_train, verbose=0), std(data.x_train), validation,
                       std(data.x_val))


def _per_target(names: list[str], score: Callable[..., float], y: np.ndarray, mean: np.ndarray,
                std: np.ndarray) -> dict[str, float]:
    return {name: score(y[:, i], mean[:, i], std[:, i]) for i, name in enumerate(names)}


def derivative_rmse(model, data: TrainingData, config: dict[str, Any]) -> dict[str, float]:
    """The RMSE of the model's gradient over the observed entries of each `gradients` column,
    at the training rows, in the data's units (for the columns observed at any of them)."""
    gradient = model.predict_gradient(data.x_train)
    slots = derivative_slots(config["gradients"], config["inputs"], config["targets"])
    rmse = {}
    for name, (target, input_) in zip(config["gradients"], slots):
        observed = data.dy_dx_train[:, target, input_]
        seen = ~np.isnan(observed)
        if seen.any():
            error = gradient[seen, target, input_] - observed[seen]
            rmse[name] = float(np.sqrt(np.mean(error**2)))
    return rmse


def evaluate(estimator, data: TrainingData, config: dict[str, Any], seconds: float,
             predictions: Predictions) -> dict[str, Any]:
    """The run's metrics: errors, and with a standard deviation the validation rows'
    90 % interval coverage and Gaussian negative log-likelihood, per target; with
    observed derivatives, their count, loss and RMSE per column at the training rows."""
    from keras_gradinn.uncertainty import coverage, gaussian_nll

    model = estimator.model_
    observed = data.dy_dx_train is not None
    targets = (data.y_train, data.dy_dx_train) if observed else data.y_train
    final = model.evaluate(data.x_train, targets, verbose=0, return_dict=True)
    names = config["targets"]
    held = data.y_val is not None
    scored = held and predictions.validation_std is not None
    results = estimator.cv_results_
    return {
        "train_rmse": _rmse(names, predictions.train, data.y_train),
        "validation_rmse": _rmse(names, predictions.validation, data.y_val) if held else None,
        "validation_coverage_90": _per_target(
            names, coverage, data.y_val, predictions.validation, predictions.validation_std)
        if scored else None,
        "validation_nll": _per_target(
            names, gaussian_nll, data.y_val, predictions.validation, predictions.validation_std)
        if scored else None,
        "train_data_loss": final["data_loss"],
        "train_gradient_loss": final["gradient_loss"],
        "train_derivative_loss": final["derivative_loss"] if observed else None,
        "train_derivative_rmse": derivative_rmse(model, data, config) if observed else None,
        "n_observed_derivatives": int((~np.isnan(data.dy_dx_train)).sum()) if observed else 0,
        "n_train": len(data.x_train),
        "n_validation": len(data.x_val) if held else 0,
        "prior": estimator.best_prior_,
        "cross_validation": None if not results else {
            params["prior"]: {"mean_test_score": float(mean), "std_test_score": float(std),
                              "fit_time": float(fit_time)}
            for params, mean, std, fit_time in zip(
                results["params"], results["mean_test_score"], results["std_test_score"],
                results["fit_time"])},
        "steps": config["steps"],
        "final_steps": estimator.final_steps_,
        "train_seconds": seconds,
        "versions": _versions(),
    }


def calibration_curves(data: TrainingData, predictions: Predictions,
                       calibration_results: dict[str, Any]
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The curve calibration.png shows, by where it comes from ({} for no plot).

    The validation rows' when the run has them (all targets pooled), else
    the held-out folds' of the estimator's calibration
    (`GradINNRegressor.calibration_results_`), else none.
    """
    from keras_gradinn.uncertainty import calibration_curve

    if data.y_val is not None and predictions.validation_std is not None:
        curve = calibration_curve(data.y_val, predictions.validation, predictions.validation_std)
        return {f"validation rows ({len(data.y_val)})": curve}
    if calibration_results:
        return {"held-out folds of the cross-validation": (
            np.asarray(calibration_results["levels"]),
            np.asarray(calibration_results["observed"]))}
    return {}


def write_run(out: pathlib.Path, estimator, data: TrainingData, config: dict[str, Any],
              metrics: dict[str, Any], predictions: Predictions) -> None:
    """Writes the run directory `out` atomically: model, metrics, config and plots."""
    from keras_gradinn import plots

    model, names = estimator.model_, config["targets"]
    with files.staged(out, directory=True) as staging:
        resolved = dict(config, data=str(pathlib.Path(config["data"]).resolve()))
        for key in ("validation", "bounds"):
            if resolved[key] not in (None, "auto"):
                resolved[key] = str(pathlib.Path(resolved[key]).resolve())
        model.save(staging / "model.keras")
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (staging / "config.toml").write_text(_toml(resolved))
        held = None if data.y_val is None else (data.y_val, predictions.validation)
        # Interval bars on the points a reader judges the model by: the held-out ones if any.
        bars = ({"validation_std": predictions.validation_std} if held is not None
                else {"train_std": predictions.train_std})
        plots.parity(staging / "parity.png", names, (data.y_train, predictions.train), held,
                     **bars)
        curves = calibration_curves(data, predictions, estimator.calibration_results_)
        if curves:
            plots.calibration(staging / "calibration.png", curves)
        plots.loss_curves(staging / "loss.png", estimator.history_,
                          steps_per_epoch=training.epoch_steps(config["steps"]))
        plots.slices(staging / "slices.png", model, np.median(data.x_train, axis=0),
                     data.x_train)


def fit(config: dict[str, Any], *, out: str | os.PathLike, overwrite: bool = False,
        quiet: bool = False, resume: bool = False) -> dict[str, Any]:
    """Trains a surrogate from a data file and writes a complete run directory.

    The training is `GradINNRegressor.fit` with the options of `config`: by
    default the prior is chosen by cross-validation and the chosen one is
    refitted on all training rows. `out` receives `model.keras`,
    `metrics.json`, `config.toml` (the resolved configuration, to repeat the
    run) and `parity.png` (with the 90 % intervals of the validation rows,
    else of the training rows, when the model has a standard deviation),
    `loss.png`, `slices.png`, and `calibration.png` (`calibration_curves`)
    when there is a curve to show. While training,
    checkpoints go to the hidden sibling `.<out>.checkpoint/` (each
    candidate's scores once done, the final fit at most every
    `checkpoint_seconds`); with `resume`, an interrupted run of the same
    configuration continues from them and ends with the model the
    uninterrupted run would have had. Returns the metrics.
    """
    out = pathlib.Path(out)
    _prepare_run_dir(out, overwrite)
    checkpoint_dir = _checkpoint_dir(out)
    if resume:
        _check_resumable(out, checkpoint_dir, config)
    data = read_training_data(config)
    estimator = build_estimator(config, data.bounds, quiet=quiet)
    discard = _checkpoint_folder(out, config, resume=resume)
    try:
        seconds = train(estimator, data, config, checkpoint_dir=checkpoint_dir)
    except Exception:
        discard()
        raise
    model = estimator.model_
    model.input_labels, model.output_labels = list(config["inputs"]), list(config["targets"])
    predictions = predict_rows(model, data)
    metrics = evaluate(estimator, data, config, seconds, predictions)
    try:
        write_run(out, estimator, data, config, metrics, predictions)
    except Exception:
        discard()  # the staging is gone already, so the folders it was in can go too
        raise
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn fit` to `parser`."""
    parser.add_argument("data", nargs="?", help="CSV with a header row, or NPZ of 1-D columns")
    parser.add_argument("--inputs", help="input columns, comma-separated")
    parser.add_argument("--targets", help="target columns, comma-separated")
    parser.add_argument("--config", help="TOML file with any of the options below")
    parser.add_argument("--prior", choices=PRIORS,
                        help="belief about the gradient: auto (choose by cross-validation; "
                        "default) or one to fix")
    parser.add_argument("--gradient-weight", type=float,
                        help="with a fixed --prior, the weight of the gradient term "
                        "(default: the prior's)")
    parser.add_argument("--gradients", metavar="COLS",
                        help="columns of observed derivatives, comma-separated, each named "
                        "d<target>/d<input> (as predict --gradient writes them); empty cells "
                        "are entries that were not observed")
    parser.add_argument("--derivative-weight", type=float, metavar="W",
                        help="with --gradients, the weight of the observed derivatives' term "
                        "(default 1: an entry's squared error counts as much as a value's, "
                        "both standardised)")
    parser.add_argument("--bounds",
                        help="'auto' (data range widened by 5%% each side; default) or a "
                        "CSV file with header input,low,high")
    parser.add_argument("--steps", type=int,
                        help="training steps of the final fit (default 20000)")
    parser.add_argument("--batch-size", type=int,
                        help="all rows in each step up to this many, else batches of it "
                        "(default 1024)")
    parser.add_argument("--learning-rate", type=float,
                        help="initial Adam learning rate, cosine-decayed to 0 (default 0.003)")
    parser.add_argument("--cv", type=int,
                        help="cross-validation folds for --prior auto (default 5)")
    parser.add_argument("--cv-steps", type=int,
                        help="training steps of each fold fit (default: an eighth of --steps)")
    parser.add_argument("--members", type=int, dest="n_members",
                        help="networks in the final ensemble, trained from different initial "
                        "weights (default 5)")
    parser.add_argument("--no-calibrate", action="store_false", dest="calibrate", default=None,
                        help="skip calibrating the standard deviation on held-out folds (saves "
                        "one fit of --cv-steps; the raw spread of the members remains)")
    held_out = parser.add_mutually_exclusive_group()
    held_out.add_argument("--validation-split", type=float,
                          help="fraction of rows held out at random and only reported "
                          "(default 0)")
    held_out.add_argument("--validation", help="a separate validation file with the same columns")
    parser.add_argument("--seed", type=int,
                        help="seed of the folds, weights and sampling (default 0)")
    parser.add_argument("--width", type=int, help="network width (default 64)")
    parser.add_argument("--depth", type=int, help="network hidden layers (default 3)")
    parser.add_argument("--activation", help="network activation (default silu)")
    parser.add_argument("--n-collocation", type=int,
                        help="collocation points per step (default 128)")
    parser.add_argument("--checkpoint-seconds", type=float,
                        help="checkpoint at most this often, for --resume (default 30)")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run of the same command from its last "
                        "checkpoint")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty RUN_DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn fit`: prints the RMSEs and the run directory written."""
    # Every fit option with a flag; the rest (e.g. sampler) come from --config.
    flags = {name: getattr(args, name) for name in DEFAULTS if hasattr(args, name)}
    config = resolve_config(args.config, flags)
    if args.validation is not None:
        config["validation_split"] = 0.0
    metrics = fit(config, out=args.out, overwrite=args.overwrite, quiet=args.quiet,
                  resume=args.resume)
    validation = metrics["validation_rmse"] or {}
    for name, value in metrics["train_rmse"].items():
        held = f", validation {validation[name]:.6g}" if name in validation else ""
        print(f"{name}: RMSE training {value:.6g}{held}")
    for name, value in (metrics["train_derivative_rmse"] or {}).items():
        print(f"{name}: RMSE training {value:.6g} (observed derivative)")
    print(f"wrote {args.out}")
    return 0
