"""The Friedman #1 function on [0, 1]^5, and padded with five unused inputs on [0, 1]^10.

    y = 10 sin(pi x1 x2) + 20 (x3 - 1/2)^2 + 10 x4 + 5 x5,

    dy/dx1 = 10 pi x2 cos(pi x1 x2),  dy/dx2 = 10 pi x1 cos(pi x1 x2),
    dy/dx3 = 40 (x3 - 1/2),  dy/dx4 = 10,  dy/dx5 = 5,  dy/dx6..x10 = 0.
"""

from __future__ import annotations

import numpy as np

from keras_gradinn.problems import Problem

__all__ = ["FRIEDMAN1", "FRIEDMAN1_10D", "gradient", "solution"]

SIZES = (50, 100, 200, 500, 1000)


def _points(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 5:
        raise ValueError(f"x must have shape (n, d) with d >= 5; got shape {x.shape}")
    return x


def solution(x: np.ndarray) -> np.ndarray:
    """Friedman #1 at points (n, d), d >= 5; inputs past the fifth are ignored. Returns (n, 1)."""
    x = _points(x)
    x1, x2, x3, x4, x5 = x[:, :5].T
    y = 10 * np.sin(np.pi * x1 * x2) + 20 * (x3 - 0.5) ** 2 + 10 * x4 + 5 * x5
    return y[:, None]


def gradient(x: np.ndarray) -> np.ndarray:
    """The Jacobian (n, 1, d) of `solution` at points (n, d); zero for inputs past the fifth."""
    x = _points(x)
    x1, x2, x3 = x[:, :3].T
    slope = 10 * np.pi * np.cos(np.pi * x1 * x2)
    jacobian = np.zeros((len(x), 1, x.shape[1]))
    jacobian[:, 0, 0] = slope * x2
    jacobian[:, 0, 1] = slope * x1
    jacobian[:, 0, 2] = 40 * (x3 - 0.5)
    jacobian[:, 0, 3] = 10.0
    jacobian[:, 0, 4] = 5.0
    return jacobian


def _problem(name: str, d: int) -> Problem:
    return Problem(
        name=name,
        bounds=np.array([[0.0, 1.0]] * d),
        input_labels=tuple(f"x{j}" for j in range(1, d + 1)),
        output_labels=("y",),
        solution=solution,
        gradient=gradient,
        sizes=SIZES,
        n_test=10_000,
    )


FRIEDMAN1 = _problem("friedman1", 5)
FRIEDMAN1_10D = _problem("friedman1_10d", 10)
