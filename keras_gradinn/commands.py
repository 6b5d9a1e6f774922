"""What the `keras-gradinn` subcommands do; `cli.py` only parses arguments.

Each command checks everything it can before training or writing, and
writes its outputs atomically: a run directory is assembled in a temporary
sibling and renamed into place, a predictions file is written next to its
target and renamed. Both get the permission bits a plain `mkdir` or `open`
would give them, not the private ones of a temporary file. A run that fails
leaves nothing behind; one that is interrupted leaves its checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import sys
import time
import tomllib
from typing import Any

import numpy as np

from keras_gradinn import data as data_lib
from keras_gradinn import files
from keras_gradinn import training
from keras_gradinn.validation import outside as outside_bounds

__all__ = ["DEFAULTS", "CommandError", "export", "fit", "info", "predict", "resolve_config"]


class CommandError(ValueError):
    """A command cannot run as asked; the message says why in one line."""


def _estimator_defaults() -> dict[str, Any]:
    """`GradINNRegressor`'s defaults for the options `fit` passes on: one recipe, one place."""
    from keras_gradinn.estimator import GradINNRegressor

    params = GradINNRegressor().get_params()
    keys = ("prior", "gradient_weight", "steps", "batch_size", "learning_rate", "cv", "cv_steps",
            "n_members", "width", "depth", "activation", "n_collocation")
    return {key: params[key] for key in keys}


#: Every option of `fit`, with its default (the estimator's, for the options it
#: takes). A TOML config may set any of them.
DEFAULTS: dict[str, Any] = {
    "data": None,
    "inputs": None,
    "targets": None,
    **_estimator_defaults(),
    "bounds": "auto",
    "validation_split": 0.0,
    "validation": None,
    "seed": 0,
    "checkpoint_seconds": 30.0,
}
_TYPES = {
    "data": str, "inputs": list, "targets": list, "prior": str, "gradient_weight": float,
    "bounds": str, "steps": int, "batch_size": int, "learning_rate": float, "cv": int,
    "cv_steps": int, "n_members": int, "validation_split": float, "validation": str,
    "seed": int, "width": int, "depth": int, "activation": str, "n_collocation": int,
    "checkpoint_seconds": float,
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
    if not isinstance(value, kind) or isinstance(value, bool):
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
    return config


def _toml(config: dict[str, Any]) -> str:
    lines = ["# keras-gradinn fit configuration; rerun with: keras-gradinn fit --config THIS_FILE --out DIR"]
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


def fit(config: dict[str, Any], *, out: str | os.PathLike, overwrite: bool = False,
        quiet: bool = False, resume: bool = False) -> dict[str, Any]:
    """Trains a surrogate from a data file and writes a complete run directory.

    The training is `GradINNRegressor.fit` with the options of `config`: by
    default the prior is chosen by cross-validation and the chosen one is
    refitted on all training rows. `out` receives `model.keras`,
    `metrics.json`, `config.toml` (the resolved configuration, to repeat the
    run) and `parity.png`, `loss.png`, `slices.png`. While training,
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
        saved = checkpoint_dir / "config.json"
        if not saved.is_file():
            raise CommandError(f"{out}: there is no interrupted run to resume "
                               f"(no checkpoint in {checkpoint_dir})")
        if json.loads(saved.read_text()) != config:
            raise CommandError(f"{out}: the interrupted run used a different configuration; "
                               f"rerun it with the same options, or without --resume")
    table = data_lib.read_table(config["data"])
    x = table.columns(config["inputs"], "inputs")
    y = table.columns(config["targets"], "targets")
    d = x.shape[1]
    if config["validation"] is not None:
        held_out = data_lib.read_table(config["validation"])
        x_train, y_train = x, y
        x_val = held_out.columns(config["inputs"], "inputs")
        y_val = held_out.columns(config["targets"], "targets")
    elif config["validation_split"] > 0:
        train, val = _split(len(x), config["validation_split"], config["seed"])
        x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]
    else:
        x_train, y_train, x_val, y_val = x, y, None, None
    if len(x_train) < d + 1:
        raise CommandError(
            f"{table.path}: {len(x_train)} training rows for {d} inputs; need at least {d + 1}"
        )
    flat = [name for name, s in zip(config["targets"], y_train.std(axis=0)) if s == 0]
    if flat:
        raise CommandError(f"{table.path}: target {flat[0]!r} is constant; there is nothing to fit")
    if config["bounds"] == "auto":
        everything = x_train if x_val is None else np.concatenate([x_train, x_val])
        bounds = data_lib.auto_bounds(everything, config["inputs"])
    else:
        bounds = data_lib.read_bounds(config["bounds"], config["inputs"])
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

    from keras_gradinn.estimator import GradINNRegressor

    estimator = GradINNRegressor(
        config["prior"], gradient_weight=config["gradient_weight"], bounds=bounds,
        width=config["width"], depth=config["depth"], activation=config["activation"],
        steps=config["steps"], learning_rate=config["learning_rate"],
        batch_size=config["batch_size"], n_collocation=config["n_collocation"], cv=config["cv"],
        cv_steps=config["cv_steps"], n_members=config["n_members"], random_state=config["seed"],
        verbose=0 if quiet else 1)
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
    start = time.perf_counter()
    try:
        estimator.fit(x_train, y_train, checkpoint_dir=checkpoint_dir,
                      checkpoint_seconds=config["checkpoint_seconds"])
    except Exception:
        discard()
        raise
    seconds = time.perf_counter() - start
    model = estimator.model_
    model.input_labels, model.output_labels = list(config["inputs"]), list(config["targets"])
    final = model.evaluate(x_train, y_train, verbose=0, return_dict=True)
    predicted = model.predict(x_train, verbose=0)
    held = None if x_val is None else (y_val, model.predict(x_val, verbose=0))
    names = config["targets"]
    results = estimator.cv_results_
    metrics = {
        "train_rmse": _rmse(names, predicted, y_train),
        "validation_rmse": None if held is None else _rmse(names, held[1], y_val),
        "train_data_loss": final["data_loss"],
        "train_gradient_loss": final["gradient_loss"],
        "n_train": len(x_train),
        "n_validation": 0 if x_val is None else len(x_val),
        "prior": estimator.best_prior_,
        "cross_validation": None if not results else {
            params["prior"]: {"mean_test_score": float(mean), "std_test_score": float(std),
                              "fit_time": float(fit_time)}
            for params, mean, std, fit_time in zip(
                results["params"], results["mean_test_score"], results["std_test_score"],
                results["fit_time"])},
        "steps": config["steps"],
        "train_seconds": seconds,
        "versions": _versions(),
    }

    from keras_gradinn import plots

    try:
        with files.staged(out, directory=True) as staging:
            resolved = dict(config, data=str(pathlib.Path(config["data"]).resolve()))
            for key in ("validation", "bounds"):
                if resolved[key] not in (None, "auto"):
                    resolved[key] = str(pathlib.Path(resolved[key]).resolve())
            model.save(staging / "model.keras")
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
            (staging / "config.toml").write_text(_toml(resolved))
            plots.parity(staging / "parity.png", names, (y_train, predicted), held)
            plots.loss_curves(staging / "loss.png", estimator.history_,
                              steps_per_epoch=training.epoch_steps(config["steps"]))
            plots.slices(staging / "slices.png", model, np.median(x_train, axis=0), x_train)
    except Exception:
        discard()  # the staging is gone already, so the folders it was in can go too
        raise
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return metrics


def load_model(path: str | os.PathLike):
    """Loads a `.keras` file and checks that it holds a `GradINN`."""
    import keras

    from keras_gradinn.model import GradINN

    path = pathlib.Path(path)
    if not path.is_file():
        raise CommandError(f"{path}: no such model file")
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001 - any failure means "not a usable model file"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CommandError(f"{path}: not a readable .keras model file ({first})") from None
    if not isinstance(model, GradINN):
        raise CommandError(
            f"{path}: holds a Keras {type(model).__name__}, not a keras_gradinn GradINN model"
        )
    return model


def _write_csv_atomically(path: pathlib.Path, header: list[str], rows: np.ndarray) -> None:
    import csv

    if not path.parent.is_dir():
        raise CommandError(f"{path.parent}: no such directory")
    if path.is_dir():
        raise CommandError(f"{path}: is a directory; give a file name for --out")
    with files.atomic_file(path, newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows([[repr(float(v)) for v in row] for row in rows])


def predict(model_path: str, data_path: str, *, out: str, gradient: bool = False) -> list[str]:
    """Writes predictions (and Jacobian columns) for the rows of a data file.

    Returns warnings for the caller to show (rows outside the model's bounds).
    """
    model = load_model(model_path)
    table = data_lib.read_table(data_path)
    x = table.columns(model.input_labels, "inputs")
    warnings = []
    outside = np.flatnonzero(model.outside_bounds(x))
    if outside.size:
        rows = ", ".join(str(r + table.first_row) for r in outside[:10])
        more = f" and {outside.size - 10} more" if outside.size > 10 else ""
        warnings.append(
            f"{outside.size} row(s) lie outside the model's bounds and are extrapolated: "
            f"row(s) {rows}{more} of {table.path}"
        )
    import warnings as warnings_lib

    with warnings_lib.catch_warnings():
        warnings_lib.simplefilter("ignore", UserWarning)  # reported above, by row number
        columns = [x, model.predict(x, verbose=0)]
        header = list(model.input_labels) + list(model.output_labels)
        if gradient:
            jacobian = model.predict_gradient(x)
            columns.append(jacobian.reshape(len(x), -1))
            header += [f"d{t}/d{i}" for t in model.output_labels for i in model.input_labels]
    _write_csv_atomically(pathlib.Path(out), header, np.concatenate(columns, axis=1))
    return warnings


def info(model_path: str) -> str:
    """A readable description of a saved model and, if found, its training metrics."""
    import keras

    model = load_model(model_path)
    mean = keras.ops.convert_to_numpy(model.output_mean)
    std = keras.ops.convert_to_numpy(model.output_std)
    lines = [f"model: {model_path}", f"inputs ({model.input_dim}):"]
    for name, (low, high) in zip(model.input_labels, model.bounds):
        lines.append(f"  {name:<16} bounds [{low:.6g}, {high:.6g}]")
    lines.append(f"outputs ({model.output_dim}):")
    for name, mu, sigma in zip(model.output_labels, mean, std):
        lines.append(f"  {name:<16} standardised with mean {mu:.6g}, std {sigma:.6g}")
    stacks = [layer for layer in model.network.layers if hasattr(layer, "members")]
    if stacks:
        stack = stacks[0]
        layers = (f"{stack.members} member(s) of {stack.depth} x {stack.width} "
                  f"{stack.activation}, output {stack.units} linear")
    else:
        layers = "Dense layers: " + ", ".join(
            f"{layer.units} {keras.activations.serialize(layer.activation)}"
            for layer in model.network.layers if isinstance(layer, keras.layers.Dense))
    lines.append(f"network: {model.network.name}, {layers}, "
                 f"{model.network.count_params()} weights")
    trained = "trainable" if model.prior_trainable and model.prior.trainable_weights else "frozen"
    lines.append(f"prior: {model.prior.name} ({trained}, {model.prior.count_params()} weights)")
    sampler = model.get_config()["sampler"]
    if isinstance(sampler, dict):
        sampler = f"a fixed pool of {sampler['size']} {sampler['method']} points"
    elif isinstance(sampler, list):
        sampler = f"a fixed pool of {len(sampler)} points"
    else:
        sampler = repr(sampler)
    lines.append(f"gradient term: weight {model.gradient_weight:g}, {model.n_collocation} "
                 f"collocation points per step, sampler {sampler}")
    lines += _choice_lines(model.metadata or {})
    metrics_path = pathlib.Path(model_path).with_name("metrics.json")
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        lines.append(f"training ({metrics_path}): {metrics['steps']} steps, "
                     f"{metrics['train_seconds']:.1f} s, {metrics['n_train']} training rows")
        for key in ("train_rmse", "validation_rmse"):
            if metrics.get(key):
                values = ", ".join(f"{k} {v:.6g}" for k, v in metrics[key].items())
                lines.append(f"  {key.replace('_', ' ')}: {values}")
    return "\n".join(lines)


def _choice_lines(metadata: dict) -> list[str]:
    """The prior choice a `GradINNRegressor` saved with the model, as lines of text."""
    if metadata.get("estimator") != "GradINNRegressor":
        return []
    results = metadata["cv_results"]
    if not results:
        return [f"choice: {metadata['best_prior']}, fixed (no cross-validation)"]
    folds = len([key for key in results if key.startswith("split")])
    lines = [f"choice: {metadata['best_prior']}, by {folds}-fold cross-validation "
             f"(held-out mean squared error of the standardised targets):"]
    for i, params in enumerate(results["params"]):
        mark = "  <- chosen" if i == metadata["best_index"] else ""
        lines.append(f"  {params['prior']:<10} {-results['mean_test_score'][i]:.4g} "
                     f"+- {results['std_test_score'][i]:.2g}  "
                     f"(weight {results['gradient_weight'][i]:g}, "
                     f"{results['fit_time'][i]:.0f} s){mark}")
    return lines


def export(model_path: str, *, saved_model: str | None, onnx: str | None,
           with_gradient: bool) -> list[str]:
    """Exports a saved model; returns the written paths."""
    if saved_model is None and onnx is None:
        raise CommandError("nothing to do: give --saved-model DIR and/or --onnx FILE")
    from keras_gradinn import export as export_lib

    model = load_model(model_path)
    written = []
    if saved_model is not None:
        written.append(str(export_lib.to_saved_model(model, saved_model,
                                                     with_gradient=with_gradient)))
    if onnx is not None:
        written.append(str(export_lib.to_onnx(model, onnx, with_gradient=with_gradient)))
    return written
