"""The package's checks of user arguments and data: one function per kind of value.

Each returns the value in the form the caller computes with, or raises a
`ValueError` that names the argument, what was expected and what it got.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = [
    "BOUNDS_SLACK",
    "check_rows",
    "finite_array",
    "first_nonfinite_row",
    "integer_in",
    "non_negative",
    "outside",
    "positive_int",
]

#: Relative slack when checking that points lie inside the bounds, so values
#: written to a CSV and read back at the boundary are not rejected.
BOUNDS_SLACK = 1e-6


def non_negative(value: Any, label: str) -> float:
    """`value` as a float, or a ValueError naming `label` unless it is a finite real >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{label} must be finite and >= 0; got {value!r}")
    return float(value)


def integer_in(value: Any, label: str, low: int, high: int | None = None) -> int:
    """`value` as an int with `low <= value` (and `value <= high`), or a ValueError naming `label`.

    Only integers count, Python's or NumPy's: `True` and `2.0` are refused,
    since a flag or a float given as a seed or a version is a mistake.

    Example:
        >>> integer_in(7, "seed", 0, 2**31 - 1)
        7
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
        low <= value and (high is None or value <= high)
    ):
        raise ValueError(f"{label} must be {_integers(low, high)}; got {value!r}")
    return int(value)


def _integers(low: int, high: int | None) -> str:
    """How `integer_in` names the integers from `low` to `high` in its errors."""
    if high is None:
        return {0: "a non-negative integer", 1: "a positive integer"}.get(
            low, f"an integer >= {low}"
        )
    if high >= 2**16 and (high + 1) & high == 0:
        # Seeds end below a power of two, which reads better as such.
        return f"an integer in [{low}, 2**{(high + 1).bit_length() - 1})"
    return f"an integer from {low} to {high}"


def positive_int(value: Any, label: str) -> int:
    """`value` as an `int`, or a ValueError unless it is a whole number >= 1.

    Sizes (units, widths, batch sizes) accept any whole number, `64.0` too,
    as read from a JSON or TOML file.
    """
    try:
        whole = int(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{label} must be a positive integer; got {value!r}") from error
    if whole != value or whole < 1:
        raise ValueError(f"{label} must be a positive integer; got {value!r}")
    return whole


def check_rows(value: Any, label: str, width: int, *, rows: int | str = "n",
               purpose: str = "") -> Any:
    """`value`, a NumPy array or a tensor, as rows of `width` values, or a named ValueError.

    A vector is read as one column when `width` is 1. A tensor whose width
    is not known until it runs passes. With an integer `rows`, the number
    of rows must be that too.

    Args:
        value: a NumPy array or a `tf.Tensor`.
        label: the argument's name in the error.
        width: the number of columns expected.
        rows: the number of rows expected, or how the error names it.
        purpose: why that shape, appended to the expected shape in the error.

    Returns:
        `value`, with a vector turned into a column.
    """
    shape = _dims(value)
    if shape is not None and len(shape) == 1 and width == 1:
        value = value[:, None]
        shape = (*shape, 1)
    if shape is None or len(shape) != 2 or shape[1] not in (None, width) or (
        isinstance(rows, int) and shape[0] != rows
    ):
        why = f" {purpose}" if purpose else ""
        got = "<unknown>" if shape is None else str(shape)
        raise ValueError(f"{label} must have shape ({rows}, {width}){why}; got shape {got}")
    return value


def _dims(value: Any) -> tuple | None:
    """The shape of an array or tensor as a tuple (None for an unknown width), or None."""
    if getattr(value.shape, "rank", 0) is None:  # a tensor of unknown rank
        return None
    return tuple(value.shape)


def first_nonfinite_row(rows: np.ndarray) -> int | None:
    """Index of the first row of a 2-D array holding NaN or inf, or None if all are finite."""
    bad = np.flatnonzero(~np.all(np.isfinite(rows), axis=1))
    return int(bad[0]) if len(bad) else None


def finite_array(value: Any, label: str) -> np.ndarray:
    """`value` as a finite float64 array of at least one dimension, or a named ValueError."""
    ragged = (f"{label} must be a numeric array with rows of equal length; "
              f"got {type(value).__name__}")
    try:
        raw = np.asarray(value) if not isinstance(value, np.ndarray) else value
    except (TypeError, ValueError) as error:
        raise ValueError(ragged) from error
    if raw.dtype.kind in "USO" and (
        raw.dtype.kind != "O" or any(not isinstance(v, numbers.Real) for v in raw.flat)
    ):
        raise ValueError(f"{label} must be numeric; got values of type {raw.dtype}")
    if raw.dtype.kind == "c":
        raise ValueError(f"{label} must be real numbers; got complex values")
    try:
        array = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(ragged) from error
    if array.ndim == 0:
        raise ValueError(f"{label} must be an array of rows; got a scalar")
    if array.size == 0:
        raise ValueError(f"{label} is empty; got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        rows = np.flatnonzero(~np.all(np.isfinite(array.reshape(len(array), -1)), axis=1))
        raise ValueError(
            f"{label} contains NaN or inf in {rows.size} row(s), first row {int(rows[0])}"
        )
    return array


def outside(bounds: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A boolean mask of the rows of `x` (n, d) outside `bounds` (d, 2), with `BOUNDS_SLACK`."""
    slack = BOUNDS_SLACK * (bounds[:, 1] - bounds[:, 0])
    return np.any((x < bounds[:, 0] - slack) | (x > bounds[:, 1] + slack), axis=1)
