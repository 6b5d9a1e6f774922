"""The Lotka-Volterra predator-prey system on t in [0, 15].

    dx/dt = a x - b x y,   dy/dt = d x y - g y,
    a = 1, b = 0.1, d = 0.075, g = 1.5,   x(0) = 10, y(0) = 5,

with x the prey and y the predator. The reference solution is scipy's
`solve_ivp` (DOP853, rtol = atol = 1e-11) with dense output, solved once on
first use; its Jacobian is the right-hand side evaluated on it, exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from keras_gradinn.problems import Problem, as_points

__all__ = ["LOTKA_VOLTERRA", "equations", "gradient", "right_hand_side", "solution"]

A, B, D, G = 1.0, 0.1, 0.075, 1.5
INITIAL = (10.0, 5.0)
T_END = 15.0
TOLERANCE = 1e-11


def right_hand_side(state: np.ndarray) -> np.ndarray:
    """(dx/dt, dy/dt) for states (..., 2) of (prey, predator)."""
    prey, predator = state[..., 0], state[..., 1]
    return np.stack([A * prey - B * prey * predator, D * prey * predator - G * predator], axis=-1)


@functools.cache
def _reference() -> Any:
    # scipy.integrate loads only when the reference is first needed.
    from scipy.integrate import solve_ivp

    result = solve_ivp(
        lambda t, state: right_hand_side(state),
        (0.0, T_END),
        INITIAL,
        method="DOP853",
        rtol=TOLERANCE,
        atol=TOLERANCE,
        dense_output=True,
    )
    if not result.success:
        raise RuntimeError(f"the Lotka-Volterra reference solve failed: {result.message}")
    return result.sol


def solution(t: np.ndarray) -> np.ndarray:
    """(prey, predator), shape (n, 2), at times t of shape (n, 1) in [0, 15]."""
    t = as_points(t, 1)
    if np.any((t < 0) | (t > T_END)):
        raise ValueError(
            f"lotka_volterra is solved for t in [0, {T_END}]; got t from {t.min()} to {t.max()}"
        )
    return _reference()(t[:, 0]).T.copy()


def gradient(t: np.ndarray) -> np.ndarray:
    """The Jacobian d(prey, predator)/dt, shape (n, 2, 1): the right-hand side on the solution."""
    return right_hand_side(solution(t))[:, :, None]


def equations(f: Callable[[tf.Tensor], tf.Tensor], t: tf.Tensor) -> tf.Tensor:
    """Residuals (k, 2) of the ODEs for a trajectory `f` at times `t` (k, 1).

        dx/dt - (a x - b x y),   dy/dt - (d x y - g y),

    with (x, y) = f(t) and dx/dt, dy/dt from a gradient tape, in the dtype
    of f's output. Zero for the exact solution.
    """
    t = tf.convert_to_tensor(t)
    with tf.GradientTape() as tape:
        tape.watch(t)
        state = f(t)
    rate = tf.cast(tape.batch_jacobian(state, t)[:, :, 0], state.dtype)
    prey, predator = state[:, 0], state[:, 1]
    return tf.stack(
        [
            rate[:, 0] - (A * prey - B * prey * predator),
            rate[:, 1] - (D * prey * predator - G * predator),
        ],
        axis=1,
    )


LOTKA_VOLTERRA = Problem(
    name="lotka_volterra",
    bounds=np.array([[0.0, T_END]]),
    input_labels=("t",),
    output_labels=("prey", "predator"),
    solution=solution,
    gradient=gradient,
    sizes=(10, 20, 40, 80),
    n_test=2_000,
    equations=equations,
)
