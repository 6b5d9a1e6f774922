"""`keras-gradinn sensitivity`: Sobol' and DGSM indices of a saved surrogate.

The indices come from `keras_gradinn.sensitivity`; this command prints them
as a table and, with `--out DIR`, writes `DIR/sensitivity.csv` (one row per
output and input, a column per index) and `DIR/sensitivity.png` (a bar
chart). Both files are staged and renamed into place together, so a failure
leaves neither, and `DIR` is removed again if this command created it.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
from collections.abc import Sequence

import numpy as np

from keras_gradinn import files, plots
from keras_gradinn.cli.common import CommandError, load_model

__all__ = ["COLUMNS", "add_arguments", "run", "sensitivity", "table"]

HELP = "global sensitivity indices (Sobol', DGSM) of a saved surrogate"
DESCRIPTION = ("Compute first-order and total Sobol' indices (S1, ST) and derivative-based "
               "measures\n(vi, dgsm: an upper bound on ST) of a saved surrogate, with inputs "
               "uniform over its bounds\n(or the box in --bounds), and print them per output "
               "and input. With --out, also write\nDIR/sensitivity.csv and a bar chart "
               "DIR/sensitivity.png. Sobol' evaluates the surrogate at\nSAMPLES x (d + 2) points "
               "(SAMPLES a power of two), DGSM its exact Jacobian at SAMPLES points.")
EPILOG = ("examples:\n  keras-gradinn sensitivity runs/beam/model.keras\n"
          "  keras-gradinn sensitivity runs/beam/model.keras --method dgsm --samples 10000 "
          "--seed 1 --out runs/beam/sensitivity\n"
          "  keras-gradinn sensitivity runs/beam/model.keras --bounds nominal.csv  "
          "# input,low,high per row")

METHODS = ("both", "sobol", "dgsm")

#: Every index either method returns, in the order the table and CSV show them.
COLUMNS = ("S1", "S1_conf", "S1_members_std", "ST", "ST_conf", "ST_members_std", "vi", "vi_std",
           "vi_members_std", "dgsm", "dgsm_conf", "dgsm_members_std")

#: The columns the printed table keeps (vi is in squared units, left to the CSV).
PRINTED = ("S1", "S1_conf", "ST", "ST_conf", "ST_members_std", "dgsm", "dgsm_conf",
           "dgsm_members_std")


def _check_arguments(method: str, samples: int, seed: int,
                     out: str | None) -> pathlib.Path | None:
    """Refuses what would fail later, before the model is loaded or anything written."""
    if seed < 0:
        raise CommandError(f"--seed must be a non-negative integer; got {seed}")
    if method not in METHODS:
        raise CommandError(f"--method must be one of {', '.join(METHODS)}; got {method!r}")
    if samples < 2:
        raise CommandError(f"--samples must be at least 2; got {samples}")
    if method != "dgsm" and samples & (samples - 1):
        below = 1 << (samples.bit_length() - 1)
        raise CommandError(f"--samples must be a power of two for Sobol' indices; got "
                           f"{samples} (try {below} or {2 * below}, or --method dgsm)")
    if out is None:
        return None
    folder = pathlib.Path(out)
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{folder}: exists and is not a directory; give a folder for --out")
    return folder


def sensitivity(model_path: str, *, method: str = "both", samples: int = 8192, seed: int = 0,
                bounds: str | None = None, out: str | None = None
                ) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """The indices of a saved model, as (input labels, output labels, indices (m, d) by name).

    `bounds` names a CSV file `input,low,high` of the box to analyse (as
    `fit --bounds` reads it), inside the model's bounds; by default the
    model's bounds. With `out`, also writes `out/sensitivity.csv` and
    `out/sensitivity.png`.
    """
    from keras_gradinn import sensitivity as methods
    from keras_gradinn import tables

    folder = _check_arguments(method, samples, seed, out)
    model = load_model(model_path)
    box = None if bounds is None else tables.read_bounds(bounds, list(model.input_labels))
    results: dict[str, np.ndarray] = {}
    if method in ("both", "sobol"):
        results.update(methods.sobol(model, n_samples=samples, seed=seed, bounds=box))
    if method in ("both", "dgsm"):
        results.update(methods.dgsm(model, n_samples=samples, seed=seed, bounds=box))
    results = {key: np.asarray(value).reshape(model.output_dim, model.input_dim)
               for key, value in results.items()}
    inputs, outputs = list(model.input_labels), list(model.output_labels)
    if folder is not None:
        _write(folder, inputs, outputs, results)
    return inputs, outputs, results


def _rows(inputs: Sequence[str], outputs: Sequence[str], results: dict[str, np.ndarray],
          columns: Sequence[str]) -> tuple[list[str], list[list]]:
    """Header and rows (output, input, value per present column) of the indices."""
    present = [key for key in columns if key in results]
    rows = [[output, name, *(results[key][i, j] for key in present)]
            for i, output in enumerate(outputs) for j, name in enumerate(inputs)]
    return ["output", "input", *present], rows


def table(inputs: Sequence[str], outputs: Sequence[str], results: dict[str, np.ndarray]) -> str:
    """The indices as a fixed-width text table, one line per output and input."""
    header, rows = _rows(inputs, outputs, results, PRINTED)
    cells = [header] + [[output, name, *(f"{v:.4f}" for v in values)]
                        for output, name, *values in rows]
    widths = [max(len(row[c]) for row in cells) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if c < 2 else cell.rjust(w)
                       for c, (cell, w) in enumerate(zip(row, widths))) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _write(folder: pathlib.Path, inputs: Sequence[str], outputs: Sequence[str],
           results: dict[str, np.ndarray]) -> None:
    """Writes sensitivity.csv and sensitivity.png into `folder`, both or neither."""
    undo_folders = files.make_folders(folder)
    try:
        with files.staged(folder / "sensitivity.csv") as table_path, \
                files.staged(folder / "sensitivity.png") as chart_path:
            header, rows = _rows(inputs, outputs, results, COLUMNS)
            with open(table_path, "w", newline="") as stream:
                writer = csv.writer(stream)
                writer.writerow(header)
                writer.writerows([[output, name, *(repr(float(v)) for v in values)]
                                  for output, name, *values in rows])
            plots.sensitivity(chart_path, inputs, outputs, results)
    except BaseException:
        undo_folders()
        raise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn sensitivity` to `parser`."""
    parser.add_argument("model", help="a model.keras written by fit")
    parser.add_argument("--method", default="both", choices=METHODS,
                        help="sobol (S1, ST), dgsm (vi, dgsm) or both (default both)")
    parser.add_argument("--samples", type=int, default=8192,
                        help="Sobol' base sample N (a power of two; N (d + 2) evaluations) "
                        "and DGSM points (default 8192)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the points and bootstrap (default 0)")
    parser.add_argument("--bounds", metavar="FILE",
                        help="CSV file input,low,high of the box to analyse, inside the model's "
                        "bounds (default: the model's bounds)")
    parser.add_argument("--out", metavar="DIR",
                        help="folder for sensitivity.csv and sensitivity.png (created if "
                        "missing; files of those names are replaced)")


def run(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn sensitivity`: the table, then the files written."""
    inputs, outputs, results = sensitivity(args.model, method=args.method,
                                           samples=args.samples, seed=args.seed,
                                           bounds=args.bounds, out=args.out)
    print(table(inputs, outputs, results))
    if args.out is not None:
        folder = pathlib.Path(args.out)
        print(f"wrote {folder / 'sensitivity.csv'} and {folder / 'sensitivity.png'}")
    return 0
