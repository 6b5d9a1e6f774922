"""Observed derivatives as training data: their checks, their place in the targets, their loss.

Adjoint solvers and automatic differentiation give dy/dx at the sample
points almost for free. GradINN compares its network's Jacobian with them
at the data points, as it compares it with the prior's field at the
collocation points. Entries that were not observed are NaN: partial
gradients are common, and such entries are left out of the term.

A model's targets carry them as a pair `(y, dy_dx)`: `fit(x, y, dy_dx=g)`
builds it from arrays, and a `tf.data.Dataset` yields `(x, (y, dy_dx))` or
`(x, (y, dy_dx), sample_weight)` (the third element of a Keras batch is
its sample weights).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["check_derivatives", "derivative_mismatch", "split_target"]


def split_target(y: Any) -> tuple[Any, Any]:
    """`(values, derivatives)` of a target: `y` itself and None, or the two parts of a pair.

    A pair is a tuple or list of two whose second part is an array or
    tensor of three axes (rows, outputs, inputs), so a list of two rows of
    values is not one.
    """
    shape = getattr(y[1], "shape", None) if isinstance(y, (tuple, list)) and len(y) == 2 \
        else None
    if shape is not None:
        rank = shape.rank if isinstance(shape, tf.TensorShape) else len(shape)
        if rank == 3:
            return y[0], y[1]
    return y, None


def check_derivatives(value: Any, n: int, m: int, d: int, label: str = "dy_dx") -> np.ndarray:
    """Observed derivatives as a float64 array (n, m, d), NaN where not observed.

    `value[b, i, j]` is d y_i / d x_j at row b, in the units of y and x;
    with one output, (n, d) is read as (n, 1, d). Infinities are refused,
    and so is an array with no observed entry.

    Raises:
        ValueError: naming the shape expected, or the first row holding inf.
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{label} must be a numeric array of shape ({n}, {m}, {d}); got "
                         f"{type(value).__name__}") from error
    if m == 1 and array.ndim == 2:
        array = array[:, None, :]
    if array.shape != (n, m, d):
        one = f" (or ({n}, {d}) for one output)" if m == 1 else ""
        raise ValueError(f"{label} must have shape ({n}, {m}, {d}){one} for {n} rows, {m} "
                         f"output(s) and {d} input(s); got shape {np.shape(value)}")
    infinite = np.flatnonzero(np.isinf(array).reshape(n, -1).any(axis=1))
    if infinite.size:
        raise ValueError(f"{label} contains inf in {infinite.size} row(s), first row "
                         f"{int(infinite[0])} (mark entries that were not observed with NaN)")
    if np.isnan(array).all():
        raise ValueError(f"{label} has no observed entry: every value is NaN")
    return array


def derivative_mismatch(jacobian: tf.Tensor, observed: tf.Tensor,
                        sample_weight: tf.Tensor | None = None) -> tf.Tensor:
    """Each member's squared error of the observed entries, per target value, shape (k,).

    Every observed entry counts as much as one target value counts in a
    mean squared data term: the sum of the entries' squared errors is
    divided by the number of values, rows times outputs (weighted by the
    rows' weights). A row of d observed partial derivatives per output thus
    weighs d times its values, as d more observations of equal precision
    would; unobserved entries add nothing.

    Args:
        jacobian: the members' Jacobians (k, n, m, d).
        observed: the observed derivatives (n, m, d) in the same units, NaN
            where not observed.
        sample_weight: row weights (n,), or (n, k) for each member's own.

    Returns:
        `sum_b w_b sum_ij o_bij (J_bij - G_bij)^2 / (m sum_b w_b)` per
        member, with `o` 1 where observed and 0 elsewhere (0 for a member
        whose rows all have weight 0).
    """
    # Float32 at least, so mixed-precision Jacobians do not lose the error.
    dtype = tf.float64 if jacobian.dtype == tf.float64 else tf.float32
    jacobian, observed = tf.cast(jacobian, dtype), tf.cast(observed, dtype)
    seen = tf.math.is_finite(observed)
    error = tf.where(seen[None], jacobian - tf.where(seen, observed, 0)[None], 0)
    squares = tf.reduce_sum(tf.square(error), axis=[2, 3])  # (k, n)
    if sample_weight is None:
        weights = tf.ones_like(squares)
    else:
        weights = tf.cast(sample_weight, dtype)
        weights = weights[None] if weights.shape.rank == 1 else tf.transpose(weights)
        weights = tf.broadcast_to(weights, tf.shape(squares))
    outputs = tf.cast(tf.shape(jacobian)[2], dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(weights * squares, axis=1),
                                 outputs * tf.reduce_sum(weights, axis=1))
