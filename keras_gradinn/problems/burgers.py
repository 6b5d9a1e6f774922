"""Viscous Burgers' equation on [-1, 1] x [0, 1], solved exactly by the Cole-Hopf transform.

    u_t + u u_x = nu u_xx,   nu = 0.01 / pi,   u(x, 0) = -sin(pi x),   u(+-1, t) = 0.

With phi0(s) = exp(g(s)), g(s) = -kappa cos(pi s), kappa = 1 / (2 pi nu), and
the heat-equation solution phi(x, t) = E[phi0(x - eta)], eta ~ N(0, 2 nu t),
Cole-Hopf gives u = -2 nu phi_x / phi. Writing eta = sqrt(4 nu t) s turns
the expectation into a Gauss-Hermite sum over nodes s_k with weights w_k:
the points x - eta_k carry the normalised weights

    p_k = w_k phi0(x - eta_k) / sum_j w_j phi0(x - eta_j)

(computed with the exponents shifted by their maximum, log-sum-exp, so
nothing overflows), and with E_p the mean under p_k and G1, G2, G3 the
derivatives g', g'', g''' at x - eta_k,

    u    = -2 nu E_p[G1]                      = -E_p[sin(pi (x - eta))],
    u_x  = -2 nu (Var_p[G1] + E_p[G2]),
    u_xx = -2 nu (E_p[(G1 - E_p G1)^3] + 3 Cov_p[G1, G2] + E_p[G3]),
    u_t  = nu u_xx - u u_x  (the equation itself).

Central moments avoid the cancellation of phi_xx / phi - (phi_x / phi)^2.
The 2-periodic, odd solution has u(+-1, t) = 0. At t = 0 all nodes coincide
and the formulas return the initial condition and its derivatives, which
are used exactly there. Over the whole domain, including the steep front at
x = 0 (|u_x| up to 152), 100 nodes already agree with 3200 to 1e-14 in u and
1e-13 relative in the Jacobian; `NODES` = 200 keeps a factor two in hand.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from scipy.special import roots_hermite

from keras_gradinn.problems import Problem, as_points

__all__ = ["BURGERS", "NODES", "equations", "gradient", "solution"]

NU = 0.01 / np.pi
KAPPA = 1 / (2 * np.pi * NU)
#: Gauss-Hermite nodes of the quadrature.
NODES = 200
#: Points evaluated together, bounding the (points x nodes) work arrays.
CHUNK = 2048


@functools.cache
def _rule(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    s, w = roots_hermite(nodes)
    with np.errstate(divide="ignore"):
        return s, np.log(w)


def _fields(x: np.ndarray, t: np.ndarray, nodes: int) -> tuple[np.ndarray, ...]:
    """u, u_x and u_xx at the points (x, t), each of shape (n,)."""
    s, log_w = _rule(nodes)
    phase = np.pi * (x[:, None] - np.sqrt(4 * NU * t)[:, None] * s)
    sin, cos = np.sin(phase), np.cos(phase)
    exponent = log_w - KAPPA * cos
    p = np.exp(exponent - exponent.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g1, g2, g3 = KAPPA * np.pi * sin, KAPPA * np.pi**2 * cos, -KAPPA * np.pi**3 * sin
    mean1 = np.sum(p * g1, axis=1)
    mean2 = np.sum(p * g2, axis=1)
    centred1 = g1 - mean1[:, None]
    u = -np.sum(p * sin, axis=1)
    u_x = -2 * NU * (np.sum(p * centred1**2, axis=1) + mean2)
    u_xx = -2 * NU * np.sum(p * (centred1**3 + 3 * centred1 * (g2 - mean2[:, None]) + g3), axis=1)
    initial = t == 0
    u = np.where(initial, -np.sin(np.pi * x), u)
    u_x = np.where(initial, -np.pi * np.cos(np.pi * x), u_x)
    u_xx = np.where(initial, np.pi**2 * np.sin(np.pi * x), u_xx)
    return u, u_x, u_xx


def _evaluate(x: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = as_points(x, 2)
    if np.any(x[:, 1] < 0):
        raise ValueError(f"burgers needs t >= 0; got t = {x[:, 1].min()}")
    chunks = np.array_split(x, max(1, -(-len(x) // CHUNK)))
    parts = zip(*(_fields(chunk[:, 0], chunk[:, 1], nodes) for chunk in chunks))
    u, u_x, u_xx = (np.concatenate(part) for part in parts)
    return u, u_x, u_xx


def solution(x: np.ndarray, *, nodes: int = NODES) -> np.ndarray:
    """u, shape (n, 1), at points (x, t) of shape (n, 2), t >= 0."""
    u, _, _ = _evaluate(x, nodes)
    return u[:, None]


def gradient(x: np.ndarray, *, nodes: int = NODES) -> np.ndarray:
    """The Jacobian (u_x, u_t), shape (n, 1, 2), at points (x, t) of shape (n, 2), t >= 0."""
    u, u_x, u_xx = _evaluate(x, nodes)
    return np.stack([u_x, NU * u_xx - u * u_x], axis=1)[:, None, :]


def equations(f: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """Residual (k, 1) of u_t + u u_x - nu u_xx for a field u = f(x) at points (x, t) (k, 2).

    Derivatives by nested gradient tapes, in the dtype of f's output; zero
    for the exact solution. Initial and boundary values are left to the data.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            u = f(x)
        slope = inner.batch_jacobian(u, x)[:, 0]
        u_x = slope[:, 0]
    u_xx = tf.cast(outer.gradient(u_x, x)[:, 0], u.dtype)
    slope = tf.cast(slope, u.dtype)
    return slope[:, 1:] + u * slope[:, :1] - NU * u_xx[:, None]


BURGERS = Problem(
    name="burgers",
    bounds=np.array([[-1.0, 1.0], [0.0, 1.0]]),
    input_labels=("x", "t"),
    output_labels=("u",),
    solution=solution,
    gradient=gradient,
    sizes=(100, 200, 500, 1000),
    n_test=10_000,
    equations=equations,
)
