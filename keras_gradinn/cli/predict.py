"""`keras-gradinn predict`: a saved surrogate's predictions (and Jacobian) on a data file."""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from keras_gradinn import files, tables
from keras_gradinn.cli.common import CommandError, derivative_column, load_model

__all__ = ["add_arguments", "predict", "run"]

HELP = "predict (and differentiate) a saved surrogate on a data file"
DESCRIPTION = ("Write the inputs of DATA with the model's predictions to a CSV file; with "
               "--gradient also the Jacobian, in columns named d<target>/d<input>; with --std "
               "the standard deviation of each, in columns named <target>_std (and "
               "d<target>/d<input>_std). Rows outside the model's bounds are predicted, and "
               "named in a warning.")
EPILOG = ("example:\n  keras-gradinn predict runs/beam/model.keras new_points.csv "
          "--gradient --std --out predictions.csv")


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


def _header(model, *, gradient: bool, std: bool) -> list[str]:
    """Inputs, targets, [targets' std], [Jacobian, [Jacobian's std]]: each name once."""
    targets, inputs = list(model.output_labels), list(model.input_labels)
    jacobian = [derivative_column(t, i) for t in targets for i in inputs] if gradient else []
    header = inputs + targets + [f"{t}_std" for t in targets if std] + jacobian
    header += [f"{name}_std" for name in jacobian if std]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise CommandError(f"output column name(s) {repeated} would appear twice: rename the "
                           f"model's inputs or targets")
    return header


def predict(model_path: str, data_path: str, *, out: str, gradient: bool = False,
            std: bool = False) -> list[str]:
    """Writes predictions (and Jacobian columns) for the rows of a data file.

    With `std`, each prediction's standard deviation follows in a column
    named `<target>_std` (and `d<target>/d<input>_std`), from
    `GradINN.predict(x, return_std=True)` and
    `predict_gradient(x, return_std=True)`.

    Returns warnings for the caller to show (rows outside the model's bounds,
    standard deviations that are zeros).
    """
    model = load_model(model_path)
    table = tables.read_table(data_path)
    x = table.columns(model.input_labels, "inputs")
    header = _header(model, gradient=gradient, std=std)
    warnings = []
    if std and not model.has_std:
        warnings.append("the model is one network without a calibration: its standard "
                        "deviations are 0 (fit with --members 2 or more for a spread)")
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
        if std:
            columns.append(model.predict(x, return_std=True)[1])
        if gradient:
            jacobian = model.predict_gradient(x)
            columns.append(jacobian.reshape(len(x), -1))
            if std:
                columns.append(model.predict_gradient(x, return_std=True)[1].reshape(len(x), -1))
    _write_csv_atomically(pathlib.Path(out), header, np.concatenate(columns, axis=1))
    return warnings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn predict` to `parser`."""
    parser.add_argument("model", help="a model.keras written by fit")
    parser.add_argument("data", help="CSV or NPZ with the model's input columns")
    parser.add_argument("--gradient", action="store_true", help="add Jacobian columns")
    parser.add_argument("--std", action="store_true",
                        help="add each column's standard deviation (<name>_std), the "
                        "ensemble's calibrated spread")
    parser.add_argument("--out", required=True, help="CSV file to write")


def run(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn predict`: warnings on stderr, then the file written."""
    for warning in predict(args.model, args.data, out=args.out, gradient=args.gradient,
                           std=args.std):
        print(f"keras-gradinn: warning: {warning}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0
