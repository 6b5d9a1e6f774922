"""Reading tables of measurements (CSV or NPZ files of named columns) for the command line.

Not `datasets`, which streams large arrays to `fit` through `tf.data`.
"""

from __future__ import annotations

import csv
import difflib
import math
import pathlib
import zipfile

import numpy as np

from keras_gradinn.errors import DataError

__all__ = ["DataError", "Table", "auto_bounds", "read_bounds", "read_table"]

#: `bounds auto` widens the data's range by this fraction on each side.
AUTO_BOUNDS_MARGIN = 0.05


class Table:
    """Named numeric columns read from a file."""

    def __init__(self, path: pathlib.Path, names: list[str], values: np.ndarray,
                 first_row: int):
        self.path, self.names, self.values = path, names, values
        # File line of the first data row, so messages can point at lines.
        self.first_row = first_row

    def __len__(self) -> int:
        return len(self.values)

    def columns(self, wanted: list[str], role: str, *, allow_empty: bool = False) -> np.ndarray:
        """The columns `wanted` as a float64 array (n, len(wanted)).

        With `allow_empty`, empty (and "nan") cells are kept as NaN: for
        columns where a value may be missing, such as observed derivatives.

        Raises:
            DataError: for a missing column (suggesting the closest name), or
                a NaN (unless `allow_empty`) or inf in a selected column
                (naming row and column).
        """
        indices = []
        for name in wanted:
            if name not in self.names:
                close = difflib.get_close_matches(name, self.names, n=1, cutoff=0.5)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise DataError(
                    f"{self.path}: no column {name!r} for the {role}{hint} "
                    f"(columns: {', '.join(self.names)})"
                )
            indices.append(self.names.index(name))
        selected = self.values[:, indices]
        bad = np.argwhere(np.isinf(selected) if allow_empty else ~np.isfinite(selected))
        if bad.size:
            row, column = bad[0]
            raise DataError(
                f"{self.path}: row {row + self.first_row}, column {wanted[column]!r} is "
                f"{'empty' if np.isnan(selected[row, column]) else selected[row, column]}"
                f"; every {role[:-1] if role.endswith('s') else role} needs a finite value"
                + (" or an empty cell" if allow_empty else "")
            )
        return selected


def _parse_cell(text: str, line: int, column: str, path: pathlib.Path) -> float:
    text = text.strip()
    if text == "" or text.lower() in ("nan", "na", "n/a", "null"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(
            f"{path}: row {line}, column {column!r} holds {text!r}, which is not a number"
        ) from None


def check_names(names: list[str], path: pathlib.Path) -> list[str]:
    """Header names stripped of blanks; refuses empty and duplicate names."""
    names = [name.strip() for name in names]
    if any(name == "" for name in names):
        raise DataError(f"{path}: the header has an empty column name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(f"{path}: duplicate column name(s) {', '.join(map(repr, duplicates))}")
    return names


def read_table(path: str | pathlib.Path) -> Table:
    """Reads a CSV file with a header row, or an NPZ file of equal-length 1-D arrays.

    Empty and "nan" cells read as NaN; `Table.columns` rejects them in the
    columns actually used.

    Raises:
        DataError: missing or unreadable file, empty table, bad header,
            ragged rows, or a cell that is not a number.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                names = check_names(list(archive.files), path)
                arrays = [np.asarray(archive[name]) for name in names]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise DataError(f"{path}: not a readable NPZ file ({error})") from None
        if not arrays or any(a.ndim != 1 or len(a) != len(arrays[0]) for a in arrays):
            raise DataError(
                f"{path}: an NPZ table needs 1-D arrays of equal length, one per column")
        if any(not np.issubdtype(a.dtype, np.number) for a in arrays):
            raise DataError(f"{path}: every NPZ column must be numeric")
        values = np.stack(arrays, axis=1).astype(np.float64) if len(arrays[0]) else None
        if values is None:
            raise DataError(f"{path}: the table has no rows")
        return Table(path, names, values, first_row=0)

    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"{path}: the file is empty")
    names = check_names(rows[0], path)
    if len(rows) < 2:
        raise DataError(f"{path}: the table has a header but no rows")
    values = np.empty((len(rows) - 1, len(names)))
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != len(names):
            raise DataError(f"{path}: row {line} has {len(row)} cells; the header has {len(names)}")
        values[i] = [_parse_cell(cell, line, names[j], path) for j, cell in enumerate(row)]
    return Table(path, names, values, first_row=2)


def auto_bounds(x: np.ndarray, names: list[str]) -> np.ndarray:
    """The data's range per input, widened by `AUTO_BOUNDS_MARGIN` on each side."""
    low, high = x.min(axis=0), x.max(axis=0)
    flat = np.flatnonzero(high <= low)
    if flat.size:
        raise DataError(
            f"input {names[flat[0]]!r} is constant ({low[flat[0]]:g}), so its bounds cannot be "
            f"inferred and it carries no information; drop it or give bounds in a file"
        )
    margin = AUTO_BOUNDS_MARGIN * (high - low)
    return np.stack([low - margin, high + margin], axis=1)


def read_bounds(path: str | pathlib.Path, names: list[str]) -> np.ndarray:
    """Reads bounds from a CSV file with header `input,low,high`, one row per input.

    Returns:
        A float64 array of shape (d, 2) in the order of `names`.

    Raises:
        DataError: if the file does not give exactly one finite `low < high`
            pair for each input.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from None
    header = [cell.strip() for cell in rows[0]] if rows else []
    if header != ["input", "low", "high"]:
        raise DataError(
            f"{path}: a bounds file needs the header 'input,low,high'; got {','.join(header)!r}"
        )
    found: dict[str, tuple[float, float]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 3:
            raise DataError(f"{path}: row {line} has {len(row)} cells; expected input,low,high")
        name = row[0].strip()
        if name in found:
            raise DataError(f"{path}: input {name!r} appears twice")
        found[name] = (_parse_cell(row[1], line, "low", path),
                       _parse_cell(row[2], line, "high", path))
    if sorted(found) != sorted(names):
        raise DataError(
            f"{path}: bounds must have one row per input ({', '.join(names)}); "
            f"got rows for {', '.join(found) or 'nothing'}"
        )
    bounds = np.array([found[name] for name in names])
    bad = [name for name, (low, high) in zip(names, bounds)
           if not (np.isfinite(low) and np.isfinite(high) and low < high)]
    if bad:
        raise DataError(f"{path}: input {bad[0]!r} needs finite bounds with low < high")
    return bounds
