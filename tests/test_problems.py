"""Tests of the benchmark problems: exact Jacobians, known features of each solution, equations.

Every problem's `gradient` is checked against central differences of its
`solution`; each solution against what is known about it independently of
how it is computed (Stokes: the equations and boundary values; Lotka-Volterra:
the ODE and its conserved quantity; Burgers: symmetry, the initial and
boundary values, the published peak slope and a finite-difference solve of
the PDE). The TensorFlow `equations` are checked on fields whose derivatives
are known in closed form.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_equal_to_rounding

from keras_gradinn import problems
from keras_gradinn.problems import burgers, friedman, lotka_volterra, stokes

NAMES = problems.names()


def interior_points(problem: problems.Problem, n: int, seed: int) -> np.ndarray:
    """`n` domain points shrunk 2% towards the box centre, so difference steps stay inside."""
    centre = problem.bounds.mean(axis=1)
    x = centre + 0.98 * (problem.sample(4 * n, np.random.default_rng(seed)) - centre)
    if problem.contains is not None:
        x = x[problem.contains(x)]
    return x[:n]


def central_differences(function, x: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The Jacobian (n, m, d) of `function` at `x` (n, d) by central differences, step per input."""
    columns = []
    for j, h in enumerate(steps):
        shift = np.zeros(x.shape[1])
        shift[j] = h
        columns.append((function(x + shift) - function(x - shift)) / (2 * h))
    return np.stack(columns, axis=2)


# ------------------------------------------------------------------ registry


def test_names_are_in_protocol_order():
    assert problems.names() == [
        "friedman1", "friedman1_10d", "stokes_sphere", "lotka_volterra", "burgers",
    ]


def test_get_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'friedman2'.*friedman1.*burgers"):
        problems.get("friedman2")


@pytest.mark.parametrize(
    "name, d, m, sizes, n_test, has_equations",
    [
        ("friedman1", 5, 1, (50, 100, 200, 500, 1000), 10_000, False),
        ("friedman1_10d", 10, 1, (50, 100, 200, 500, 1000), 10_000, False),
        ("stokes_sphere", 2, 3, (25, 50, 100, 200), 10_000, True),
        ("lotka_volterra", 1, 2, (10, 20, 40, 80), 2_000, True),
        ("burgers", 2, 1, (100, 200, 500, 1000), 10_000, True),
    ],
)
def test_get_returns_the_protocol_definition(name, d, m, sizes, n_test, has_equations):
    problem = problems.get(name)
    assert problem is problems.get(name)
    assert (problem.name, problem.d, problem.m) == (name, d, m)
    assert problem.bounds.shape == (d, 2) and problem.bounds.dtype == np.float64
    assert (problem.sizes, problem.n_test) == (sizes, n_test)
    assert (problem.equations is not None) == has_equations
    with pytest.raises(ValueError):
        problem.bounds[0, 0] = 5.0


def test_problem_checks_labels_against_bounds():
    with pytest.raises(ValueError, match="input_labels must name the 2 inputs"):
        problems.Problem("p", np.array([[0.0, 1.0], [0.0, 1.0]]), ("x",), ("y",),
                         friedman.solution, friedman.gradient, (10,), 10)


def test_sample_needs_a_generator():
    with pytest.raises(TypeError, match="numpy.random.Generator; got int"):
        problems.get("friedman1").sample(3, 0)


def test_points_of_the_wrong_width_are_refused():
    with pytest.raises(ValueError, match=r"shape \(n, 2\); got shape \(4, 3\)"):
        problems.get("burgers").solution(np.zeros((4, 3)))


# ------------------------------------------------------------------ every problem


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences(name):
    problem = problems.get(name)
    x = interior_points(problem, 20, seed=1)
    steps = 1e-6 * (problem.bounds[:, 1] - problem.bounds[:, 0])
    expected = central_differences(problem.solution, x, steps)
    np.testing.assert_allclose(problem.gradient(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_dtypes(name):
    problem = problems.get(name)
    x = problem.sample(7, np.random.default_rng(0))
    y, jacobian = problem.solution(x), problem.gradient(x)
    assert x.shape == (7, problem.d) and x.dtype == np.float64
    assert y.shape == (7, problem.m) and y.dtype == np.float64
    assert jacobian.shape == (7, problem.m, problem.d) and jacobian.dtype == np.float64
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(jacobian))


@pytest.mark.parametrize("name", NAMES)
def test_samples_lie_in_the_domain_and_repeat_with_the_seed(name):
    problem = problems.get(name)
    x = problem.sample(500, np.random.default_rng(3))
    assert x.shape == (500, problem.d)
    assert np.all((x >= problem.bounds[:, 0]) & (x <= problem.bounds[:, 1]))
    if problem.contains is not None:
        assert np.all(problem.contains(x))
    np.testing.assert_array_equal(x, problem.sample(500, np.random.default_rng(3)))
    # Uniform in the box: each input's mean is near the middle (4 standard errors).
    width = problem.bounds[:, 1] - problem.bounds[:, 0]
    if problem.contains is None:
        middle = (x.mean(axis=0) - problem.bounds.mean(axis=1)) / width
        assert np.all(np.abs(middle) < 4 * np.sqrt(1 / 12 / 500))


@pytest.mark.parametrize("name", NAMES)
def test_test_set_is_fixed_clean_and_cached(name):
    problem = problems.get(name)
    x, y = problem.test_set()
    assert x.shape == (problem.n_test, problem.d) and y.shape == (problem.n_test, problem.m)
    expected = problem.sample(problem.n_test, np.random.default_rng(problems.TEST_SEED))
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(y, problem.solution(expected))
    x[:] = np.nan
    np.testing.assert_array_equal(problem.test_set()[0], expected)


# ------------------------------------------------------------------ Friedman


def test_friedman_value_by_hand():
    x = np.array([[0.5, 0.5, 0.5, 0.5, 0.5], [1.0, 0.5, 0.0, 0.0, 1.0]])
    expected = [10 * np.sin(np.pi / 4) + 5 + 2.5, 10 + 5 + 5]
    np.testing.assert_allclose(problems.get("friedman1").solution(x)[:, 0], expected, rtol=1e-15)


def test_friedman_10d_ignores_the_last_five_inputs():
    rng = np.random.default_rng(4)
    x = problems.get("friedman1_10d").sample(50, rng)
    padded = np.concatenate([x[:, :5], rng.random((50, 5))], axis=1)
    wide, narrow = problems.get("friedman1_10d"), problems.get("friedman1")
    np.testing.assert_array_equal(wide.solution(x), wide.solution(padded))
    np.testing.assert_array_equal(wide.solution(x), narrow.solution(x[:, :5]))
    np.testing.assert_array_equal(wide.gradient(x)[:, :, 5:], 0.0)
    np.testing.assert_array_equal(wide.gradient(x)[:, :, :5], narrow.gradient(x[:, :5]))


# ------------------------------------------------------------------ Stokes


def stokes_points(n: int, seed: int) -> np.ndarray:
    x = problems.get("stokes_sphere").sample(4 * n, np.random.default_rng(seed))
    return x[(x[:, 1] >= 0.1) & (np.hypot(x[:, 0], x[:, 1]) >= 1.05)][:n]


def test_stokes_field_is_divergence_free():
    x = stokes_points(200, seed=5)
    v = stokes.solution(x)[:, 1]
    jacobian = stokes.gradient(x)
    divergence = jacobian[:, 0, 0] + jacobian[:, 1, 1] + v / x[:, 1]
    np.testing.assert_allclose(divergence, 0.0, atol=1e-12)


def test_stokes_field_satisfies_the_momentum_equations():
    x = stokes_points(200, seed=6)
    h = 1e-5
    # Second derivatives: central differences of the analytic first derivatives.
    second = central_differences(stokes.gradient, x, np.array([h, h]))  # (n, 3, 2, 2)
    jacobian = stokes.gradient(x)
    v, y = stokes.solution(x)[:, 1], x[:, 1]
    axial = second[:, 0, 0, 0] + second[:, 0, 1, 1] + jacobian[:, 0, 1] / y - jacobian[:, 2, 0]
    radial = (second[:, 1, 0, 0] + second[:, 1, 1, 1] + jacobian[:, 1, 1] / y - v / y**2
              - jacobian[:, 2, 1])
    # Pressure gradients reach 1.5 here; the differences are good to ~1e-9.
    np.testing.assert_allclose(axial, 0.0, atol=1e-7)
    np.testing.assert_allclose(radial, 0.0, atol=1e-7)
    assert np.abs(jacobian[:, 2]).max() > 1.0


def test_stokes_no_slip_on_the_sphere_and_pressure_there():
    theta = np.linspace(0.0, np.pi, 41)
    x = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    u, v, p = stokes.solution(x).T
    np.testing.assert_allclose(u, 0.0, atol=1e-15)
    np.testing.assert_allclose(v, 0.0, atol=1e-15)
    np.testing.assert_allclose(p, -1.5 * np.cos(theta), atol=1e-15)


def test_stokes_far_field_is_the_free_stream():
    theta = np.linspace(0.0, np.pi, 9)
    x = 1e4 * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    u, v, p = stokes.solution(x).T
    # The Stokeslet decays like 1 / r: |u - 1| <= 3 / (2 r).
    np.testing.assert_allclose(u, 1.0, atol=1.5e-4)
    np.testing.assert_allclose(v, 0.0, atol=1.5e-4)
    np.testing.assert_allclose(p, 0.0, atol=2e-8)
    assert np.all(u < 1.0)


def test_stokes_collocation_region_keeps_off_the_axis_and_the_sphere():
    x = np.array([[2.0, 0.04], [2.0, 0.06], [0.5, 0.5], [0.0, 1.0], [-3.0, 3.0]])
    np.testing.assert_array_equal(stokes.contains(x), [True, True, False, True, True])
    np.testing.assert_array_equal(stokes.equation_contains(x), [False, True, False, True, True])


# ------------------------------------------------------------------ Lotka-Volterra


def test_lotka_volterra_starts_at_the_initial_condition():
    np.testing.assert_allclose(lotka_volterra.solution(np.zeros((1, 1))), [[10.0, 5.0]], rtol=1e-14)


def test_lotka_volterra_reference_follows_the_ode():
    t = np.random.default_rng(7).uniform(0.01, 14.99, size=(100, 1))
    h = 1e-4
    rate = (lotka_volterra.solution(t + h) - lotka_volterra.solution(t - h)) / (2 * h)
    state = lotka_volterra.solution(t)
    prey, predator = state.T
    by_hand = np.stack([prey - 0.1 * prey * predator, 0.075 * prey * predator - 1.5 * predator], 1)
    np.testing.assert_allclose(rate, by_hand, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(lotka_volterra.gradient(t)[:, :, 0], by_hand)


def test_lotka_volterra_conserves_its_first_integral():
    # V = d x - g ln x + b y - a ln y is constant along every trajectory.
    state = lotka_volterra.solution(np.linspace(0.0, 15.0, 3001)[:, None])
    prey, predator = state.T
    first_integral = 0.075 * prey - 1.5 * np.log(prey) + 0.1 * predator - np.log(predator)
    assert np.ptp(first_integral) < 1e-9
    assert np.ptp(prey) > 30  # the trajectory actually oscillates


# ------------------------------------------------------------------ Burgers


def test_burgers_is_odd_in_x_and_zero_at_the_walls():
    rng = np.random.default_rng(8)
    x = np.stack([rng.uniform(-1, 1, 200), rng.uniform(0, 1, 200)], axis=1)
    mirrored = x * [-1.0, 1.0]
    np.testing.assert_allclose(burgers.solution(mirrored), -burgers.solution(x), atol=1e-14)
    t = np.linspace(0.0, 1.0, 21)
    walls = np.concatenate([np.stack([-np.ones(21), t], 1), np.stack([np.ones(21), t], 1)])
    np.testing.assert_allclose(burgers.solution(walls), 0.0, atol=1e-14)


def test_burgers_initial_condition_is_exact():
    x = np.linspace(-1.0, 1.0, 101)
    points = np.stack([x, np.zeros_like(x)], axis=1)
    np.testing.assert_array_equal(burgers.solution(points)[:, 0], -np.sin(np.pi * x))
    u_t = burgers.NU * np.pi**2 * np.sin(np.pi * x) - np.pi * np.sin(np.pi * x) * np.cos(np.pi * x)
    np.testing.assert_allclose(burgers.gradient(points)[:, 0, 0], -np.pi * np.cos(np.pi * x))
    np.testing.assert_allclose(burgers.gradient(points)[:, 0, 1], u_t, atol=1e-14)


@pytest.mark.parametrize("t", [1e-8, 1e-6, 1e-4])
def test_burgers_small_times_continue_the_initial_condition(t):
    # u(x, t) = u(x, 0) + t u_t(x, 0) + O(t^2), with |u_tt| < 100 at these times.
    x = np.linspace(-1.0, 1.0, 101)
    start = burgers.solution(np.stack([x, np.zeros_like(x)], 1))[:, 0]
    start_rate = burgers.gradient(np.stack([x, np.zeros_like(x)], 1))[:, 0, 1]
    u = burgers.solution(np.stack([x, np.full_like(x, t)], 1))[:, 0]
    np.testing.assert_allclose(u, start + t * start_rate, atol=100 * t**2 + 1e-14)


def test_burgers_quadrature_has_converged():
    rng = np.random.default_rng(9)
    x = np.stack([rng.uniform(-1, 1, 500), rng.uniform(0, 1, 500)], axis=1)
    x[:50, 0] *= 0.03  # through the steep front at x = 0
    doubled = 2 * burgers.NODES
    np.testing.assert_allclose(burgers.solution(x), burgers.solution(x, nodes=doubled),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(burgers.gradient(x), burgers.gradient(x, nodes=doubled),
                               rtol=1e-12, atol=1e-12)


def test_burgers_front_steepens_to_the_published_peak_slope():
    t = np.linspace(0.1, 1.0, 91)
    slope = burgers.gradient(np.stack([np.zeros_like(t), t], axis=1))[:, 0, 0]
    assert np.all(slope < 0)
    growing = t <= 1 / np.pi
    assert np.all(np.diff(np.abs(slope[growing])) > 0)
    assert np.abs(slope[(t >= 0.4) & (t <= 1.0)]).min() > 80
    assert np.abs(slope[(t >= 0.4) & (t <= 0.8)]).min() > 100
    # Basdevant et al. (1986), Computers & Fluids 14(1): max |u_x(0, t)| is
    # 152.00516, reached at t = 1.6037 / pi.
    fine = np.linspace(0.505, 0.515, 2001)
    fine_slope = -burgers.gradient(np.stack([np.zeros_like(fine), fine], axis=1))[:, 0, 0]
    peak = np.argmax(fine_slope)
    assert fine_slope[peak] == pytest.approx(152.00516, abs=1e-5)
    assert fine[peak] == pytest.approx(1.6037 / np.pi, abs=1e-5)


def solve_burgers_by_finite_differences(n: int, dt: float, times: list[float]) -> tuple:
    """u on a periodic grid of n points on [-1, 1) at `times`, by method of lines.

    The solution is odd and 2-periodic, so a periodic grid imposes u(+-1) = 0.
    Fourth-order central differences of the flux u^2 / 2 and of u, classical
    fourth-order Runge-Kutta in time (dt within its diffusive limit).
    """
    h = 2.0 / n
    x = -1.0 + h * np.arange(n)
    u = -np.sin(np.pi * x)

    def rate(u):
        flux = 0.5 * u * u
        d_flux = (np.roll(flux, 2) - 8 * np.roll(flux, 1) + 8 * np.roll(flux, -1)
                  - np.roll(flux, -2)) / (12 * h)
        d2_u = (-np.roll(u, 2) + 16 * np.roll(u, 1) - 30 * u + 16 * np.roll(u, -1)
                - np.roll(u, -2)) / (12 * h * h)
        return burgers.NU * d2_u - d_flux

    snapshots, now = [], 0.0
    for target in times:
        for _ in range(round((target - now) / dt)):
            k1 = rate(u)
            k2 = rate(u + 0.5 * dt * k1)
            k3 = rate(u + 0.5 * dt * k2)
            k4 = rate(u + dt * k3)
            u = u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        now = target
        snapshots.append(u)
    return x, snapshots


def test_burgers_matches_a_finite_difference_solve():
    # 2000 points resolve the front (width ~ nu / |u| ~ 0.005) with 4th-order
    # accuracy; halving the grid raises the error at the front 16-fold.
    times = [0.25, 0.5, 0.75, 1.0]
    x, snapshots = solve_burgers_by_finite_differences(2000, 1e-4, times)
    for t, u in zip(times, snapshots):
        exact = burgers.solution(np.stack([x, np.full_like(x, t)], axis=1))[:, 0]
        np.testing.assert_allclose(u, exact, rtol=0, atol=1e-4, err_msg=f"t = {t}")
        away = np.abs(x) >= 0.2
        np.testing.assert_allclose(u[away], exact[away], rtol=0, atol=1e-9, err_msg=f"t = {t}")


# ------------------------------------------------------------------ equations


def lotka_volterra_case(dtype):
    t = np.linspace(0.0, 2.0, 9)[:, None]

    def field(t):
        return tf.concat([1 + 2 * t + t**2, 3 - t], axis=1)

    prey, predator = 1 + 2 * t[:, 0] + t[:, 0] ** 2, 3 - t[:, 0]
    expected = np.stack([
        2 + 2 * t[:, 0] - (prey - 0.1 * prey * predator),
        -1 - (0.075 * prey * predator - 1.5 * predator),
    ], axis=1)
    return problems.get("lotka_volterra"), field, tf.constant(t, dtype), expected


def burgers_case(dtype):
    points = np.random.default_rng(10).uniform([-1.0, 0.0], [1.0, 1.0], size=(9, 2))
    x, t = points.T

    def field(points):
        x, t = points[:, :1], points[:, 1:]
        return x**2 * t + tf.sin(x)

    u = x**2 * t + np.sin(x)
    u_x, u_t, u_xx = 2 * x * t + np.cos(x), x**2, 2 * t - np.sin(x)
    expected = (u_t + u * u_x - burgers.NU * u_xx)[:, None]
    return problems.get("burgers"), field, tf.constant(points, dtype), expected


def stokes_case(dtype):
    points = np.random.default_rng(11).uniform([-3.0, 0.5], [3.0, 3.0], size=(9, 2))
    x, y = points.T

    def field(points):
        x, y = points[:, :1], points[:, 1:]
        return tf.concat([x**2 * y, tf.sin(x) * y**2, x * y**3], axis=1)

    v = np.sin(x) * y**2
    expected = np.stack([
        2 * y + 0 + x**2 / y - y**3,
        -np.sin(x) * y**2 + 2 * np.sin(x) + 2 * np.sin(x) * y / y - v / y**2 - 3 * x * y**2,
        2 * x * y + 2 * np.sin(x) * y + v / y,
    ], axis=1)
    return problems.get("stokes_sphere"), field, tf.constant(points, dtype), expected


CASES = [lotka_volterra_case, burgers_case, stokes_case]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [tf.float64, tf.float32])
def test_equations_match_hand_derivatives(case, dtype):
    problem, field, x, expected = case(dtype)
    tolerance = 1e-12 if dtype == tf.float64 else 1e-4
    eager = problem.equations(field, x)
    assert eager.dtype == dtype
    np.testing.assert_allclose(eager.numpy(), expected, rtol=tolerance, atol=tolerance)
    graph = tf.function(problem.equations, reduce_retracing=True)(field, x)
    # The graph may fuse and reorder the same arithmetic: equal to a few eps
    # of the largest residual (in float32, 1e-6 of an entry near 0 is not).
    assert_equal_to_rounding(graph.numpy(), eager.numpy(), dtype=dtype.as_numpy_dtype)


def test_equations_vanish_on_closed_form_solutions():
    # Stokes: the exact field written in TensorFlow.
    def sphere(points):
        x, y = points[:, :1], points[:, 1:]
        r = tf.sqrt(x**2 + y**2)
        b = 1 - 3 / (4 * r) - 1 / (4 * r**3)
        c = -3 / (4 * r**3) + 3 / (4 * r**5)
        return tf.concat([b + x**2 * c, x * y * c, -1.5 * x / r**3], axis=1)

    points = tf.constant(stokes_points(50, seed=12))
    np.testing.assert_allclose(sphere(points).numpy(), stokes.solution(points.numpy()), atol=1e-14)
    residual = stokes.equations(sphere, points).numpy()
    np.testing.assert_allclose(residual, 0.0, atol=1e-11)

    # Burgers: the steady viscous shock u = -tanh(x / (2 nu)) solves the PDE.
    def shock(points):
        return -tf.tanh(points[:, :1] / (2 * burgers.NU))

    points = tf.constant(np.stack([np.linspace(-0.03, 0.03, 21), np.full(21, 0.5)], axis=1))
    residual = burgers.equations(shock, points).numpy()
    assert np.abs(shock(points).numpy()).max() > 0.99  # the front is in range
    np.testing.assert_allclose(residual, 0.0, atol=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_equations_pass_gradients_to_the_field_weights(case):
    problem, field, x, _ = case(tf.float64)
    weight = tf.Variable(1.3, dtype=tf.float64)

    def scaled(x):
        return weight * field(x)

    @tf.function
    def loss_and_gradient():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(problem.equations(scaled, x) ** 2)
        return loss, tape.gradient(loss, weight)

    _, gradient = loss_and_gradient()
    h = 1e-6
    weight.assign(1.3 + h)
    above, _ = loss_and_gradient()
    weight.assign(1.3 - h)
    below, _ = loss_and_gradient()
    np.testing.assert_allclose(gradient.numpy(), (above - below).numpy() / (2 * h), rtol=1e-6)


@pytest.mark.parametrize("name", ["stokes_sphere", "lotka_volterra", "burgers"])
def test_equations_train_a_keras_network(name):
    problem = problems.get(name)
    network = keras.Sequential([
        keras.Input((problem.d,)),
        keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(problem.m),
    ])
    region = problem.equation_contains or problem.contains
    x = problem.sample(64, np.random.default_rng(13))
    if region is not None:
        x = x[region(x)]

    @tf.function
    def gradients(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(problem.equations(network, x) ** 2)
        return loss, tape.gradient(loss, network.trainable_variables)

    for dtype in (tf.float32, tf.float64):
        loss, grads = gradients(tf.constant(x, dtype))
        assert loss.dtype == tf.float32 and np.isfinite(loss.numpy())
        assert all(g is not None and np.any(g.numpy() != 0) for g in grads)
