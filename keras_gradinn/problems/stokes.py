"""Creeping (Stokes) flow past a sphere, in a meridional half-plane.

A sphere of radius a at the origin in a uniform stream U along +x, viscosity
mu; x is the axial and y >= 0 the radial (distance from the axis)
coordinate, r = sqrt(x^2 + y^2). With

    B(r) = 1 - 3a / (4r) - a^3 / (4r^3),
    C(r) = -3a / (4r^3) + 3a^3 / (4r^5),

the exact (Stokes 1851) velocity and pressure are

    u = U (B + x^2 C),   v = U x y C,   p = -(3/2) mu U a x / r^3,

which is the protocol's u_r, u_theta written in Cartesian coordinates. For a
radial function g(r), dg/dx = g'(r) x / r and dg/dy = g'(r) y / r, so

    u_x = U (B' x / r + 2x C + x^3 C' / r),   u_y = U (B' + x^2 C') y / r,
    v_x = U (y C + x^2 y C' / r),             v_y = U (x C + x y^2 C' / r),
    p_x = -(3/2) mu U a (1 / r^3 - 3x^2 / r^5),   p_y = (9/2) mu U a x y / r^5,

with B' = 3a / (4r^2) + 3a^3 / (4r^4) and C' = 9a / (4r^4) - 15a^3 / (4r^6).

The domain is [-3, 3] x [0, 3] outside the sphere (r >= a); physics-informed
collocation points keep y >= 0.05 because the axisymmetric equations divide
by y.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from keras_gradinn.problems import Problem, as_points

__all__ = ["STOKES_SPHERE", "contains", "equation_contains", "equations", "gradient", "solution"]

RADIUS = 1.0
SPEED = 1.0
VISCOSITY = 1.0
#: Collocation points for `equations` keep this distance from the axis.
AXIS_GAP = 0.05


def _radial(x: np.ndarray) -> tuple[np.ndarray, ...]:
    x = as_points(x, 2)
    a = RADIUS
    px, py = x[:, 0], x[:, 1]
    r = np.hypot(px, py)
    b = 1 - 3 * a / (4 * r) - a**3 / (4 * r**3)
    c = -3 * a / (4 * r**3) + 3 * a**3 / (4 * r**5)
    return px, py, r, b, c


def solution(x: np.ndarray) -> np.ndarray:
    """Velocity and pressure (u, v, p), shape (n, 3), at points (x, y) of shape (n, 2), r > 0."""
    px, py, r, b, c = _radial(x)
    u = SPEED * (b + px**2 * c)
    v = SPEED * px * py * c
    p = -1.5 * VISCOSITY * SPEED * RADIUS * px / r**3
    return np.stack([u, v, p], axis=1)


def gradient(x: np.ndarray) -> np.ndarray:
    """The Jacobian d(u, v, p)/d(x, y), shape (n, 3, 2), at points of shape (n, 2), r > 0."""
    px, py, r, _, c = _radial(x)
    a = RADIUS
    db = 3 * a / (4 * r**2) + 3 * a**3 / (4 * r**4)
    dc = 9 * a / (4 * r**4) - 15 * a**3 / (4 * r**6)
    scale = 1.5 * VISCOSITY * SPEED * a
    jacobian = np.empty((len(px), 3, 2))
    jacobian[:, 0, 0] = SPEED * (db * px / r + 2 * px * c + px**3 * dc / r)
    jacobian[:, 0, 1] = SPEED * (db + px**2 * dc) * py / r
    jacobian[:, 1, 0] = SPEED * (py * c + px**2 * py * dc / r)
    jacobian[:, 1, 1] = SPEED * (px * c + px * py**2 * dc / r)
    jacobian[:, 2, 0] = -scale * (1 / r**3 - 3 * px**2 / r**5)
    jacobian[:, 2, 1] = 3 * scale * px * py / r**5
    return jacobian


def contains(x: np.ndarray) -> np.ndarray:
    """True for points outside the sphere, r >= a."""
    x = as_points(x, 2)
    return np.hypot(x[:, 0], x[:, 1]) >= RADIUS


def equation_contains(x: np.ndarray) -> np.ndarray:
    """True where collocation points may lie: r >= a and y >= `AXIS_GAP`."""
    return contains(x) & (as_points(x, 2)[:, 1] >= AXIS_GAP)


def equations(f: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """Residuals (k, 3) of the axisymmetric Stokes equations for a field `f` at points `x` (k, 2).

        mu (u_xx + u_yy + u_y / y) - p_x,
        mu (v_xx + v_yy + v_y / y - v / y^2) - p_y,
        u_x + v_y + v / y,

    with (u, v, p) = f(x) and derivatives by nested gradient tapes; in the
    dtype of f's output. Zero for the exact solution; needs y > 0.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            fields = f(x)
        jacobian = inner.batch_jacobian(fields, x)
        velocity_jacobian = jacobian[:, :2]
    hessian = tf.cast(outer.batch_jacobian(velocity_jacobian, x), fields.dtype)
    jacobian = tf.cast(jacobian, fields.dtype)
    y = tf.cast(x[:, 1], fields.dtype)
    v = fields[:, 1]
    u_x, u_y, v_y = jacobian[:, 0, 0], jacobian[:, 0, 1], jacobian[:, 1, 1]
    p_x, p_y = jacobian[:, 2, 0], jacobian[:, 2, 1]
    u_laplacian = hessian[:, 0, 0, 0] + hessian[:, 0, 1, 1]
    v_laplacian = hessian[:, 1, 0, 0] + hessian[:, 1, 1, 1]
    return tf.stack(
        [
            VISCOSITY * (u_laplacian + u_y / y) - p_x,
            VISCOSITY * (v_laplacian + v_y / y - v / y**2) - p_y,
            u_x + v_y + v / y,
        ],
        axis=1,
    )


STOKES_SPHERE = Problem(
    name="stokes_sphere",
    bounds=np.array([[-3.0, 3.0], [0.0, 3.0]]),
    input_labels=("x", "y"),
    output_labels=("u", "v", "p"),
    solution=solution,
    gradient=gradient,
    sizes=(25, 50, 100, 200),
    n_test=10_000,
    contains=contains,
    equations=equations,
    equation_contains=equation_contains,
)
