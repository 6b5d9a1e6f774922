"""Checks of user data shared by the model and the collocation samplers."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = ["BOUNDS_SLACK", "finite_array", "first_nonfinite_row", "non_negative", "outside"]

#: Relative slack when checking that points lie inside the bounds, so values
#: written to a CSV and read back at the boundary are not rejected.
BOUNDS_SLACK = 1e-6


def non_negative(value: Any, label: str) -> float:
    """`value` as a float, or a ValueError naming `label` unless it is a finite real >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ValueError(f"{label} must be finite and >= 0; got {value!r}")
    return float(value)


def first_nonfinite_row(rows: np.ndarray) -> int | None:
    """Index of the first row of a 2-D array holding NaN or inf, or None if all are finite."""
    bad = np.flatnonzero(~np.all(np.isfinite(rows), axis=1))
    return int(bad[0]) if len(bad) else None


def finite_array(value: Any, label: str) -> np.ndarray:
    """`value` as a finite float64 array of at least one dimension, or a named ValueError."""
    ragged = f"{label} must be a numeric array with rows of equal length; got {type(value).__name__}"
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
