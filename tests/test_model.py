"""Tests of the GradINN model: exact losses, Jacobians, training and saving."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import SUBPROCESS_TIMEOUT, assert_equal_to_rounding

import keras_gradinn as kg

BOUNDS_2D = [(-2.0, 4.0), (10.0, 11.0)]


@keras.saving.register_keras_serializable(package="keras_gradinn_tests")
class Analytic(keras.layers.Layer):
    """f(z) = a * [sin(z0) z1, z0^2 + 3 z1, exp(z0 / 2)][:m] with one weight a."""

    def __init__(self, outputs=1, **kwargs):
        super().__init__(**kwargs)
        self.outputs = outputs
        self.a = self.add_weight(name="a", shape=(), initializer=keras.initializers.Constant(1.5))

    def call(self, z):
        z0, z1 = z[:, 0], z[:, 1]
        columns = [tf.sin(z0) * z1, z0**2 + 3.0 * z1, tf.exp(z0 / 2.0)]
        return self.a * tf.stack(columns[: self.outputs], axis=1)

    def get_config(self):
        return {**super().get_config(), "outputs": self.outputs}


def analytic_jacobian_user_units(x, m, mean, std):
    """dy/dx for y = mean + std * f((x - c) / h) with f from `Analytic`."""
    bounds = np.array(BOUNDS_2D)
    c, h = bounds.mean(axis=1), (bounds[:, 1] - bounds[:, 0]) / 2
    z = (x - c) / h
    z0, z1 = z[:, 0], z[:, 1]
    dz = np.stack(
        [
            np.stack([np.cos(z0) * z1, np.sin(z0)], axis=1),
            np.stack([2 * z0, np.full_like(z0, 3.0)], axis=1),
            np.stack([0.5 * np.exp(z0 / 2), np.zeros_like(z0)], axis=1),
        ],
        axis=1,
    )[:, :m]
    return 1.5 * std[None, :, None] * dz / h[None, None, :]


def analytic_model(m, **kwargs):
    inputs = keras.Input(shape=(2,))
    network = keras.Model(inputs, Analytic(m)(inputs))
    return kg.GradINN(network, "constant", bounds=BOUNDS_2D, **kwargs)


def points_2d(n, seed=0):
    return kg.sampling.sample(n, BOUNDS_2D, method="uniform", seed=seed)


def test_input_relevance_is_the_rms_of_the_jacobian_in_scaled_units():
    # A linear network in scaled units: y = mean + std * (z @ kernel).
    kernel = np.array([[3.0, -1.0], [0.0, 0.5]])  # input 1 moves output 1 only
    inputs = keras.Input(shape=(2,))
    dense = keras.layers.Dense(2, use_bias=False)
    network = keras.Model(inputs, dense(inputs))
    dense.set_weights([kernel])
    model = kg.GradINN(network, "constant", bounds=BOUNDS_2D)
    model.adapt(np.random.default_rng(0).normal([0.0, 5.0], [2.0, 30.0], size=(40, 2)))

    relevance = model.input_relevance(points_2d(9))

    np.testing.assert_allclose(relevance, np.sqrt(np.mean(kernel ** 2, axis=1)), rtol=1e-6)
    with pytest.raises(ValueError, match="x is empty"):
        model.input_relevance(np.zeros((0, 2)))


@pytest.mark.parametrize("m", [1, 3])
def test_jacobian_matches_analytic_and_finite_differences_in_user_units(m):
    model = analytic_model(m)
    rng = np.random.default_rng(0)
    model.adapt(rng.normal(5.0, 3.0, size=(50, m)) * np.arange(1, m + 1))
    mean = keras.ops.convert_to_numpy(model.output_mean).astype(np.float64)
    std = keras.ops.convert_to_numpy(model.output_std).astype(np.float64)
    # Kept away from the boundary so the finite-difference stencil stays inside.
    x = kg.sampling.sample(7, [(-1.8, 3.8), (10.05, 10.95)], seed=0)

    jacobian = model.predict_gradient(x)

    assert jacobian.shape == (7, m, 2)
    expected = analytic_jacobian_user_units(x, m, mean, std)
    np.testing.assert_allclose(jacobian, expected, rtol=1e-5, atol=1e-5)
    step = 1e-2 * np.array([6.0, 1.0])
    for j in range(2):
        e = np.zeros(2)
        e[j] = step[j]
        difference = (model.predict(x + e, verbose=0) - model.predict(x - e, verbose=0)) / (
            2 * step[j]
        )
        np.testing.assert_allclose(jacobian[:, :, j], difference, rtol=2e-3, atol=2e-3)


def test_predictions_are_in_user_units():
    model = analytic_model(1)
    model.adapt(np.array([[1.0], [3.0]]))
    x = points_2d(5)
    bounds = np.array(BOUNDS_2D)
    z = (x - bounds.mean(axis=1)) / ((bounds[:, 1] - bounds[:, 0]) / 2)
    expected = 2.0 + 1.0 * 1.5 * np.sin(z[:, 0]) * z[:, 1]
    np.testing.assert_allclose(model.predict(x, verbose=0)[:, 0], expected, rtol=1e-5)


def mlp_model(m=1, gradient_weight=0.1, **kwargs):
    network = kg.mlp(2, m, width=16, depth=2, seed=3)
    prior = kg.priors.smooth(2, m, width=8, initial_scale=0.5, seed=4)
    kwargs.setdefault("sampler", points_2d(40, seed=9))
    kwargs.setdefault("n_collocation", 40)
    return kg.GradINN(network, prior, bounds=BOUNDS_2D, gradient_weight=gradient_weight, **kwargs)


def independent_losses(model, x, y, points, sample_weight=None):
    """Data and gradient terms recomputed from the weights with a separate tape."""
    bounds = np.array(BOUNDS_2D)
    c, h = bounds.mean(axis=1), (bounds[:, 1] - bounds[:, 0]) / 2
    mean = keras.ops.convert_to_numpy(model.output_mean).astype(np.float64)
    std = keras.ops.convert_to_numpy(model.output_std).astype(np.float64)
    z = tf.constant((x - c) / h, tf.float32)
    t = (y - mean) / std
    residual = model.network(z).numpy().astype(np.float64) - t
    weights = np.ones(len(x)) if sample_weight is None else sample_weight
    data = np.mean(weights * np.mean(residual**2, axis=1))
    zc = tf.constant((points - c) / h, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(zc)
        out = model.network(zc)
    jac = tape.batch_jacobian(out, zc).numpy().astype(np.float64)
    field = model.prior(zc).numpy().astype(np.float64).reshape(jac.shape)
    gradient = np.mean(np.sum((jac - field) ** 2, axis=(1, 2)))
    return data, gradient, data + model.gradient_weight * gradient


@pytest.mark.parametrize("m", [1, 3])
def test_reported_losses_equal_an_independent_computation(m):
    points = points_2d(40, seed=9)
    model = mlp_model(m, sampler=points, n_collocation=40)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    x = points_2d(32, seed=1)
    y = np.random.default_rng(2).normal(size=(32, m)) * 4 + 7
    weights = np.random.default_rng(3).uniform(0.2, 2.0, size=32)
    model.adapt(y)

    data, gradient, total = independent_losses(model, x, y, points)
    result = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    assert result["data_loss"] == pytest.approx(data, rel=1e-5, abs=1e-6)
    assert result["gradient_loss"] == pytest.approx(gradient, rel=1e-5, abs=1e-6)
    assert result["loss"] == pytest.approx(total, rel=1e-5, abs=1e-6)
    assert gradient > 1e-3  # the term is really there

    # The training step reports the losses of the weights it starts from.
    history = model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    assert history.history["loss"][0] == pytest.approx(total, rel=1e-5, abs=1e-6)

    weighted, _, _ = independent_losses(model, x, y, points, sample_weight=weights)
    result = model.evaluate(
        x, y, sample_weight=weights, batch_size=32, verbose=0, return_dict=True
    )
    assert result["data_loss"] == pytest.approx(weighted, rel=1e-5, abs=1e-6)
    assert abs(weighted - data) > 1e-4


def test_zero_gradient_weight_trains_exactly_like_a_plain_keras_loop():
    x = points_2d(48, seed=1)
    y = np.sin(x[:, :1]) * 3 + x[:, 1:] ** 2
    calls = []

    def sampler(n, rng):
        calls.append(n)
        return kg.sampling.sample(n, BOUNDS_2D, seed=rng)

    model = mlp_model(gradient_weight=0.0, sampler=sampler, n_collocation=16)
    network = kg.mlp(2, 1, width=16, depth=2, seed=3)
    network.set_weights(model.network.get_weights())
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    calls.clear()
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False)

    bounds = np.array(BOUNDS_2D)
    z = ((x - bounds.mean(axis=1)) / ((bounds[:, 1] - bounds[:, 0]) / 2)).astype("float32")
    t = ((y - y.mean(axis=0)) / y.std(axis=0)).astype("float32")
    optimizer = keras.optimizers.Adam(1e-2)
    for _ in range(3):
        for i in range(0, 48, 16):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(network(z[i : i + 16]) - t[i : i + 16]))
            grads = tape.gradient(loss, network.trainable_variables)
            optimizer.apply_gradients(zip(grads, network.trainable_variables))

    for ours, plain in zip(model.network.get_weights(), network.get_weights()):
        np.testing.assert_allclose(ours, plain, atol=1e-5)
    assert calls == []  # no collocation points were drawn: the nested tape was skipped
    assert history.history["gradient_loss"] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("trainable", [False, True])
def test_prior_trainability(trainable):
    model = mlp_model(prior_trainable=trainable)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = [w.copy() for w in model.prior.get_weights()]
    x = points_2d(32)
    model.fit(x, x[:, 0] * x[:, 1], epochs=3, batch_size=8, verbose=0)
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.prior.get_weights())]
    assert all(changed) if trainable else not any(changed)


def in_domain(points, contains=None):
    bounds = np.array(BOUNDS_2D)
    c, h = bounds.mean(axis=1), (bounds[:, 1] - bounds[:, 0]) / 2
    x = points * h + c
    inside = np.all((x >= bounds[:, 0] - 1e-6) & (x <= bounds[:, 1] + 1e-6), axis=1)
    return inside & (contains(x) if contains else True)


def outside_circle(x):
    return (x[:, 0] - 1.0) ** 2 + (x[:, 1] - 10.5) ** 2 * 36 > 4.0


@pytest.mark.parametrize(
    "sampler, contains",
    [
        ("uniform", None),
        ("sobol", None),
        ("halton", None),
        ("lhs", None),
        ("sobol", outside_circle),
        (points_2d(500, seed=5), None),
        (lambda n, rng: kg.sampling.sample(n, BOUNDS_2D, method="uniform", seed=rng), None),
    ],
    ids=["uniform", "sobol", "halton", "lhs", "contains", "array", "callable"],
)
def test_collocation_points_lie_in_the_domain_and_are_reproducible(sampler, contains):
    model = mlp_model(sampler=sampler, contains=contains, n_collocation=128, seed=11)
    first = model.collocation_points(tf.constant(0)).numpy()
    again = model.collocation_points(tf.constant(0)).numpy()
    later = model.collocation_points(tf.constant(1)).numpy()
    assert first.shape == (128, 2)
    assert in_domain(first, contains).all() and in_domain(later, contains).all()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, later)
    twin = mlp_model(sampler=sampler, contains=contains, n_collocation=128, seed=11)
    np.testing.assert_array_equal(twin.collocation_points(tf.constant(0)).numpy(), first)


def test_quasi_random_collocation_is_better_spread_than_uniform():
    from scipy.stats import qmc

    def discrepancy(sampler):
        model = mlp_model(sampler=sampler, n_collocation=256, seed=2)
        return np.mean(
            [
                qmc.discrepancy((model.collocation_points(tf.constant(s)).numpy() + 1) / 2)
                for s in range(5)
            ]
        )

    uniform = discrepancy("uniform")
    for method in ("sobol", "halton", "lhs"):
        assert discrepancy(method) < uniform


def test_smooth_prior_beats_no_gradient_term_on_few_noisy_points():
    # Eight noisy points with a gap in the middle: the plain network's guess
    # in the gap varies wildly with the noise draw; the smooth prior carries
    # the gradient across it. Averaged over three noise draws, since a single
    # draw can go either way (measured over 8 draws: 0.167 -> 0.114 mean RMSE).
    def truth(x):
        return np.sin(3.0 * x) + 0.5 * x

    x = np.concatenate([np.linspace(-1, -0.4, 4), np.linspace(0.4, 1, 4)])[:, None]
    x_test = np.linspace(-1, 1, 401)[:, None]

    def test_rmse(weight, draw):
        y = truth(x) + np.random.default_rng(draw).normal(0.0, 0.1, size=x.shape)
        keras.utils.set_random_seed(7)
        model = kg.GradINN(
            kg.mlp(1, 1, width=32, depth=2, activation="tanh", seed=7),
            kg.priors.smooth(1, 1, width=3, seed=8),
            bounds=[(-1.0, 1.0)],
            n_collocation=128,
            gradient_weight=weight,
            seed=7,
        )
        schedule = keras.optimizers.schedules.CosineDecay(1e-2, 800)
        model.compile(optimizer=keras.optimizers.Adam(schedule))
        model.adapt(y)
        model.fit(tf.data.Dataset.from_tensors((x, y)).repeat(), steps_per_epoch=800, verbose=0)
        return float(np.sqrt(np.mean((model.predict(x_test, verbose=0) - truth(x_test)) ** 2)))

    plain = np.mean([test_rmse(0.0, draw) for draw in range(3)])
    gradinn = np.mean([test_rmse(0.3, draw) for draw in range(3)])
    assert gradinn < 0.85 * plain, (gradinn, plain)


def test_keras_file_round_trip_keeps_predictions_and_training(tmp_path):
    x = points_2d(64, seed=1)
    y = np.stack([np.sin(x[:, 0]), x[:, 1] ** 2], axis=1)
    model = mlp_model(m=2, sampler="sobol", n_collocation=32, seed=5)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["mae"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
    path = tmp_path / "surrogate.keras"
    model.save(path)

    loaded = keras.models.load_model(path, safe_mode=True)

    assert isinstance(loaded, kg.GradINN)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(loaded.predict_gradient(x), model.predict_gradient(x))
    for fitted in (model, loaded):
        fitted.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # Training really moved the weights, so the comparison above means something.
    assert not np.allclose(model.network.get_weights()[0], mlp_model(m=2).network.get_weights()[0])


def test_config_json_round_trip():
    model = mlp_model(m=1, sampler="halton", n_collocation=64, gradient_weight=0.3, seed=9,
                      prior_trainable=False)
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))

    clone = keras.saving.deserialize_keras_object(config)
    clone.set_weights(model.get_weights())

    assert (clone.gradient_weight, clone.n_collocation, clone.seed) == (0.3, 64, 9)
    assert clone.prior.trainable is False
    np.testing.assert_array_equal(clone.bounds, model.bounds)
    np.testing.assert_array_equal(
        clone.collocation_points(tf.constant(3)).numpy(),
        model.collocation_points(tf.constant(3)).numpy(),
    )
    x = points_2d(10)
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


def test_callable_sampler_is_not_saved_and_must_be_set_again(tmp_path):
    model = mlp_model(sampler=lambda n, rng: kg.sampling.sample(n, BOUNDS_2D, seed=rng))
    model.compile(optimizer="adam")
    x = points_2d(16)
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    with pytest.warns(UserWarning, match="not saved"):
        model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # Without a sampler the gradient term cannot be evaluated: NaN, left out of the loss.
    result = loaded.evaluate(x, x[:, :1], verbose=0, return_dict=True)
    assert np.isnan(result["gradient_loss"]) and result["loss"] == result["data_loss"]
    with pytest.raises(ValueError, match="set_sampler"):
        loaded.fit(x, x[:, :1], epochs=1, verbose=0)
    loaded.set_sampler("uniform")
    loaded.fit(x, x[:, :1], epochs=1, verbose=0)


@pytest.mark.parametrize("trainable", [True, False], ids=["evaluated", "tabulated"])
@pytest.mark.parametrize("shape", [(6,), (3, 2)], ids=["n_by_m_times_d", "n_by_m_by_d"])
def test_a_prior_field_of_either_shape_is_read_as_outputs_by_inputs(shape, trainable):
    # A linear network t = z @ kernel has the Jacobian kernel.T everywhere, and
    # a prior with a constant field F (row i: output i's derivatives) the
    # mismatch sum((kernel.T - F)^2) at every point. F's transpose (2, 3),
    # or its values read column-first, would give other numbers.
    kernel = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])  # (d, m)
    field = np.array([[0.5, 1.0], [-1.0, 2.0], [4.0, -3.0]])  # (m, d)
    expected = float(np.sum((kernel.T - field) ** 2))
    network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, use_bias=False)])
    network.layers[0].set_weights([kernel])
    inputs = keras.Input((2,))
    flat = keras.layers.Dense(6, kernel_initializer="zeros",
                              bias_initializer=keras.initializers.Constant(field.ravel()))(inputs)
    prior = keras.Model(inputs, keras.layers.Reshape(shape)(flat))
    model = kg.GradINN(network, prior, bounds=BOUNDS_2D, sampler=points_2d(16, seed=9),
                       n_collocation=16, gradient_weight=0.5, prior_trainable=trainable)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    x = points_2d(16)

    history = model.fit(x, x @ kernel, epochs=1, batch_size=16, verbose=0).history

    assert history["gradient_loss"][0] == pytest.approx(expected, rel=1e-6)
    z = np.random.default_rng(2).uniform(-1.0, 1.0, (5, 2))  # normalised points
    assert float(model.gradient_loss(tf.constant(z, tf.float32))) == pytest.approx(expected,
                                                                                  rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"bounds": [(0.0, 1.0, 2.0)]}, "shape \\(d, 2\\)"),
        ({"bounds": [(1.0, 1.0), (0.0, 1.0)]}, "low < high"),
        ({"bounds": [(0.0, 1.0)] * 3}, "network must accept inputs of shape \\(n, 3\\)"),
        ({"prior": kg.priors.smooth(2, 2)}, "m\\*d = 2 values"),
        ({"n_collocation": 0}, "n_collocation must be a positive integer"),
        ({"gradient_weight": -1.0}, "gradient_weight must be finite and >= 0"),
        ({"gradient_weight": float("nan")}, "gradient_weight must be finite and >= 0"),
        ({"n_collocation": 2.5}, "n_collocation must be a positive integer"),
        ({"sampler": "grid"}, "sampler must be one of"),
        ({"sampler": np.full((4, 2), 50.0)}, "must lie inside the domain"),
        ({"sampler": lambda n, rng: np.zeros((n, 3))}, "sampler output must have shape"),
        ({"sampler": "sobol", "contains": lambda x: np.zeros(len(x), bool)}, "accepted only"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_construction_errors_name_the_problem(kwargs, message):
    arguments = {"bounds": BOUNDS_2D, "prior": "smooth", "n_collocation": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        kg.GradINN(kg.mlp(2, 1, width=4, depth=1), **arguments)


@pytest.mark.parametrize(
    "x, y, message",
    [
        (np.zeros((5, 3)), np.zeros((5, 1)), "x must have shape \\(n, 2\\)"),
        (np.full((5, 2), [0.0, 10.5]), np.array([[1.0]] * 4 + [[np.nan]]), "y contains NaN"),
        (np.full((5, 2), [0.0, 10.5]), np.array([[1.0]] * 4 + [[np.inf]]), "y contains NaN"),
        (np.full((5, 2), [0.0, 10.5]), np.zeros((5, 2)), "y must have shape \\(5, 1\\)"),
        (np.full((5, 2), [9.0, 10.5]), np.zeros((5, 1)), "outside the bounds"),
        (np.zeros((0, 2)), np.zeros((0, 1)), "x is empty"),
    ],
)
def test_fit_rejects_bad_data_clearly(x, y, message):
    model = mlp_model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=1, verbose=0)
    assert not model.adapted


def test_predict_warns_about_points_outside_the_bounds():
    model = mlp_model()
    with pytest.warns(UserWarning, match="1 row\\(s\\) outside the bounds"):
        model.predict(np.array([[0.0, 10.5], [100.0, 10.5]]), verbose=0)


def test_fit_on_dataset_adapts_in_a_streaming_pass():
    x = points_2d(100)
    y = 50.0 + 5.0 * x[:, :1]
    model = mlp_model()
    model.compile(optimizer="adam")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)
    model.fit(dataset, epochs=1, verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.output_mean), y.mean(0), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.output_std), y.std(0), rtol=1e-4)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras_gradinn as kg

    def run(strategy):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 1, (64, 2)); y = np.sin(3 * x[:, :1]) + x[:, 1:]
        with strategy.scope():
            model = kg.GradINN(kg.mlp(2, 1, width=16, depth=2, seed=1),
                               kg.priors.smooth(2, 1, width=8, seed=2),
                               bounds=[(0, 1), (0, 1)], sampler=rng.uniform(0, 1, (64, 2)),
                               n_collocation=64, gradient_weight=0.5, seed=3)
            model.compile(optimizer=keras.optimizers.Adam(1e-2))
        history = model.fit(x, y, epochs=5, batch_size=32, shuffle=False, verbose=0)
        return model.predict(x, verbose=0), history.history

    print(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).num_replicas_in_sync)
    single, h1 = run(tf.distribute.get_strategy())
    mirrored, h2 = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print("maxdiff", float(np.abs(single - mirrored).max()))
    print("loss", h1["loss"][-1], h2["loss"][-1])
    print("gradient_loss", h1["gradient_loss"][-1], h2["gradient_loss"][-1])
    """
)


def test_mirrored_strategy_on_two_cpu_devices_matches_single_device():
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines()[1:])
    assert result.stdout.splitlines()[0] == "2"
    assert float(lines["maxdiff"]) < 1e-4
    for key in ("loss", "gradient_loss"):
        single, mirrored = map(float, lines[key].split())
        assert mirrored == pytest.approx(single, rel=1e-4)


def test_labels_default_round_trip_and_are_checked(tmp_path):
    assert mlp_model().input_labels == ["x0", "x1"] and mlp_model().output_labels == ["y0"]
    model = mlp_model(input_labels=["load", "span"], output_labels=["deflection"])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert (loaded.input_labels, loaded.output_labels) == (["load", "span"], ["deflection"])
    with pytest.raises(ValueError, match="input_labels must be 2 distinct names"):
        mlp_model(input_labels=["a", "a"])


def test_without_gradient_term_reloaded_optimizer_state_and_training_continue_exactly(tmp_path):
    x = points_2d(32, seed=1)
    y = x[:, :1] ** 2
    model = mlp_model(gradient_weight=0.0, sampler="sobol")
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Skipping variable loading for optimizer"
        loaded = keras.models.load_model(tmp_path / "m.keras")
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 12
    for fitted in (model, loaded):
        fitted.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_dataset_targets_of_the_wrong_width_are_refused():
    x = points_2d(16)
    model = mlp_model()
    model.compile(optimizer="adam")
    dataset = tf.data.Dataset.from_tensor_slices((x, np.ones((16, 2)))).batch(8)
    with pytest.raises(ValueError, match=r"targets must have shape \(batch, 1\)"):
        model.fit(dataset, epochs=1, verbose=0)
    model.adapt(np.ones((16, 1)) * np.arange(16)[:, None])
    with pytest.raises(ValueError, match=r"y must have shape \(n, 1\)"):
        model.fit(dataset, epochs=1, verbose=0)


def test_generators_need_an_explicit_adapt_and_trained_models_are_not_restandardised():
    x = points_2d(16)
    y = 100.0 + x[:, :1]

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return x[8 * i : 8 * i + 8], y[8 * i : 8 * i + 8]

    model = mlp_model()
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match="call model.adapt\\(y\\)"):
        model.fit(Batches(), epochs=1, verbose=0)
    model.train_on_batch(x, (y - 100.0) * 0.0)  # trained while unadapted
    before = model.predict(x, verbose=0)
    with pytest.warns(UserWarning, match="trained before its output standardisation"):
        model.fit(x, y, epochs=0, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)


def test_a_refused_sampler_leaves_the_model_as_it_was():
    model = mlp_model(sampler="sobol", n_collocation=16)
    before = model.collocation_points(tf.constant(2)).numpy()
    with pytest.raises(ValueError, match="sampler must be one of"):
        model.set_sampler("bogus")
    np.testing.assert_array_equal(model.collocation_points(tf.constant(2)).numpy(), before)
    model.compile(optimizer="adam")
    model.fit(points_2d(8), np.arange(8.0)[:, None], epochs=1, verbose=0)


def test_host_samplers_cannot_be_combined_with_xla():
    model = mlp_model(sampler="sobol")
    model.compile(optimizer="adam", jit_compile=True)
    with pytest.raises(ValueError, match="jit_compile=True"):
        model.set_sampler(lambda n, rng: kg.sampling.sample(n, BOUNDS_2D, seed=rng))
    assert model.supports_jit
    host = mlp_model(sampler=lambda n, rng: kg.sampling.sample(n, BOUNDS_2D, seed=rng))
    assert host.supports_jit is False  # so jit_compile="auto" never picks XLA for it


def numpy_silu_jacobian(network, z):
    """The input Jacobian (n, m, d) of a Dense chain of `kg.mlp` (SiLU, then linear), in NumPy."""
    weights = network.get_weights()
    h, jacobian = z, np.broadcast_to(np.eye(z.shape[1]), (len(z), z.shape[1], z.shape[1]))
    for i in range(0, len(weights), 2):
        pre = h @ weights[i] + weights[i + 1]
        jacobian = jacobian @ weights[i]
        if i + 2 < len(weights):
            s = 1.0 / (1.0 + np.exp(-pre))
            h, jacobian = pre * s, jacobian * (s * (1.0 + pre * (1.0 - s)))[:, None, :]
    return np.transpose(jacobian, (0, 2, 1))


def train_under(policy, x, y, points, initial=None, steps=3):
    """A few SGD steps of a seeded model under `policy`; its history and the model."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = kg.GradINN(kg.mlp(2, 1, width=8, depth=1, seed=3),
                           kg.priors.smooth(2, 1, width=4, seed=4), bounds=BOUNDS_2D,
                           sampler=points, n_collocation=len(points), gradient_weight=0.1)
        if initial is not None:  # the float32 model's weights, whatever the policy draws
            model.set_weights(initial)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
        history = model.fit(x, y, epochs=steps, batch_size=len(x), shuffle=False,
                            verbose=0).history
        return model, history
    finally:
        keras.config.set_dtype_policy(previous)


def test_xla_training_matches_the_graph_path():
    # jit_compile="auto" turns XLA on wherever Keras thinks it helps (GPUs),
    # so the compiled step must train the model the graph step trains, with
    # the default sampler's draws (see the next test).
    x = points_2d(32, seed=2)
    y = np.sin(x[:, :1]) * x[:, 1:]
    runs = {}
    for jit in (False, True):
        model = mlp_model(m=1, gradient_weight=0.5, seed=5, sampler="sobol", n_collocation=32)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit)
        history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history
        assert model.jit_compile is jit
        runs[jit] = (history, model.get_weights())
    (graph, graph_weights), (xla, xla_weights) = runs[False], runs[True]
    assert graph["gradient_loss"][-1] > 1e-3  # the gradient term is really trained
    # float32 steps whose operations XLA fuses and orders differently.
    for key in ("loss", "data_loss", "gradient_loss"):
        np.testing.assert_allclose(xla[key], graph[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(xla_weights, graph_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sampler", ["uniform", "sobol", "pool subset"])
def test_collocation_draws_are_the_same_under_xla(sampler):
    # tf.random.stateless_uniform would draw other numbers under XLA on the CPU.
    model = mlp_model(seed=5, n_collocation=16,
                      sampler=points_2d(40, seed=9) if sampler == "pool subset" else sampler)
    step = tf.constant(3, tf.int64)
    compiled = tf.function(model.collocation_points, jit_compile=True)
    np.testing.assert_array_equal(compiled(step).numpy(), model.collocation_points(step).numpy())


@pytest.mark.parametrize(
    "policy, tolerance",
    # float64 against float32: float32 rounding, amplified over three steps.
    # mixed_float16: the network computes in float16 (eps 1e-3) with float32
    # weights and losses.
    [("float64", 1e-5), ("mixed_float16", 1e-2)],
)
def test_training_under_other_dtype_policies_matches_float32(policy, tolerance):
    x, points = points_2d(16), points_2d(24, seed=9)
    y = np.sin(x[:, :1]) * x[:, 1:]
    start = kg.GradINN(kg.mlp(2, 1, width=8, depth=1, seed=3),
                       kg.priors.smooth(2, 1, width=4, seed=4), bounds=BOUNDS_2D).get_weights()
    reference, expected = train_under("float32", x, y, points, start)
    model, history = train_under(policy, x, y, points, start)

    for key in ("loss", "data_loss", "gradient_loss"):
        np.testing.assert_allclose(history[key], expected[key], rtol=tolerance)
    assert expected["gradient_loss"][-1] > 1e-2  # the gradient term is really there
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=tolerance,
                                   atol=tolerance * np.abs(b).max())
    np.testing.assert_allclose(model.predict_gradient(x), reference.predict_gradient(x),
                               rtol=tolerance, atol=tolerance)
    if policy == "float64":
        # float64 really is float64: the gradient term agrees with a NumPy
        # float64 computation far below float32's resolution (1e-7). (Not
        # against a nested tape: Keras' SiLU in float64 is off by ~5e-9.)
        z = (points - model.input_offset.numpy()) / model.input_scale.numpy()
        field = model.prior(z).numpy().reshape(len(z), 1, 2)
        mismatch = numpy_silu_jacobian(model.network, z) - field
        expected = np.mean(np.sum(mismatch ** 2, axis=(1, 2)))
        assert float(model.gradient_loss(z)) == pytest.approx(expected, rel=1e-12)


def test_keras_summary_and_export_see_a_built_model(tmp_path):
    model = mlp_model()
    lines = []
    model.summary(print_fn=lines.append)
    assert any("mlp" in line for line in lines)
    model.export(str(tmp_path / "plain"), format="tf_saved_model", verbose=False)
    assert (tmp_path / "plain" / "saved_model.pb").is_file()


def test_one_dimensional_inputs_have_a_jacobian_of_rank_three():
    model = kg.GradINN(kg.mlp(1, 2, width=4, depth=1), "smooth", bounds=[(0.0, 2.0)],
                       n_collocation=8)
    x = np.array([0.5, 1.0, 1.5])
    y, jacobian = model.value_and_jacobian(x)
    assert tuple(y.shape) == (3, 2) and tuple(jacobian.shape) == (3, 2, 1)
    # predict_gradient runs in a graph, value_and_jacobian eagerly: float32 rounding
    # of sums taken in another order, relative to the largest entry.
    assert_equal_to_rounding(model.predict_gradient(x), jacobian.numpy())
    model.set_sampler(np.linspace(0.0, 2.0, 20))  # 1-D points are fine when d = 1


def test_gradient_weight_changes_take_effect_and_are_checked():
    x = points_2d(16)
    model = mlp_model(gradient_weight=0.0)
    model.compile(optimizer="adam")
    assert model.fit(x, x[:, :1], epochs=1, verbose=0).history["gradient_loss"] == [0.0]
    model.gradient_weight = 1.0
    assert model.fit(x, x[:, :1], epochs=1, verbose=0).history["gradient_loss"][0] > 0
    with pytest.raises(ValueError, match="gradient_weight must be finite"):
        model.gradient_weight = float("inf")


@pytest.mark.parametrize("seed", [-1, 2**40, "a", 1.5])
def test_bad_seeds_are_refused(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        mlp_model(seed=seed)


class StepRecorder(keras.callbacks.Callback):
    """The guarded weights and the optimizer state before training and after each step.

    `fit` must run one step per call (`steps_per_execution=1`) so that
    `states[k]` is the state after step k (`states[0]`: before the first).
    """

    def on_train_begin(self, logs=None):
        self.states = [self._state()]

    def on_train_batch_end(self, batch, logs=None):
        self.states.append(self._state())

    def _state(self):
        model = self.model
        weights = [w.copy() for w in model.network.get_weights() + model.prior.get_weights()]
        optimizer = [keras.ops.convert_to_numpy(v).copy() for v in model.optimizer.variables]
        return weights, optimizer


def assert_state_equal(model, weights, optimizer, tolerance=0.0):
    """The guarded weights and every optimizer variable equal these.

    Exactly by default; else to `tolerance` times each array's largest value.
    """
    now = model.network.get_weights() + model.prior.get_weights()
    variables = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    assert len(now) == len(weights) and len(variables) == len(optimizer)
    for a, b in zip(now + variables, list(weights) + list(optimizer)):
        np.testing.assert_allclose(a, b, rtol=0, atol=tolerance * np.abs(b).max())


def test_a_diverging_run_stops_naming_the_step_and_term_and_keeps_finite_weights(tmp_path):
    # SGD with momentum at a rate of 1e4 blows up on the third step (measured:
    # losses 0.75 and 6e15, then inf); the batches are fixed (shuffle=False)
    # and the collocation pool is whole at every step, so the run is the same
    # every time and the losses below can be recomputed independently.
    x = points_2d(64, seed=1)
    y = 50.0 * np.sin(3 * x[:, :1]) * x[:, 1:]
    points = points_2d(40, seed=9)

    def diverge(steps_per_execution):
        model = mlp_model(gradient_weight=1.0, sampler=points, n_collocation=40)
        model.compile(optimizer=keras.optimizers.SGD(1e4, momentum=0.5),
                      steps_per_execution=steps_per_execution)
        recorder = StepRecorder()
        with pytest.raises(kg.NonFiniteLossError) as error:
            model.fit(x, y, epochs=20, batch_size=16, shuffle=False, verbose=0,
                      callbacks=[recorder])
        return model, recorder.states, str(error.value)

    model, states, message = diverge(1)

    assert message.startswith("training stopped at step 3: the data_loss and gradient_loss "
                              "became NaN or infinite; the weights are restored to the last "
                              "ones whose loss was finite (those before step 2)"), message
    # Step 3 is the first non-finite one: recomputed from the recorded weights,
    # step 2's losses (at the weights after step 1) are finite and step 3's
    # (at the weights after step 2) are not.
    network = len(model.network.get_weights())
    final = model.network.get_weights() + model.prior.get_weights()
    for step, finite in ((1, True), (2, True), (3, False)):
        weights = states[step - 1][0]
        model.network.set_weights(weights[:network])
        model.prior.set_weights(weights[network:])
        rows = slice(16 * (step - 1), 16 * step)
        with np.errstate(over="ignore", invalid="ignore"):
            losses = independent_losses(model, x[rows], y[rows], points)
        assert np.isfinite(losses).all() == finite, (step, losses)
    model.network.set_weights(final[:network])
    model.prior.set_weights(final[network:])
    # The weights are those step 2 started from (its loss was finite; its
    # update is what diverged); the optimizer state is the one after step 2,
    # as step 3 left it alone.
    assert_state_equal(model, states[1][0], states[2][1])
    assert int(model.optimizer.iterations) == 2
    assert any(np.any(v != 0) for v in states[2][1][2:])  # the momenta are really there

    # Several steps per call: the same step is reported and the later steps of
    # the call change nothing. The loop over steps is another graph, whose
    # float32 rounding differs, and step 2's gradients (~1e17) amplify it
    # (measured: up to 5e-5 of each array's largest value), while step 2
    # moved every weight array by over 1e-2 of it.
    batched, _, batched_message = diverge("auto")
    assert batched.steps_per_execution == 4 and batched_message == message
    assert int(batched.optimizer.iterations) == 2
    assert_state_equal(batched, states[1][0], states[2][1], tolerance=1e-3)
    assert all(np.abs(a - b).max() > 1e-2 * np.abs(a).max()
               for a, b in zip(states[1][0], states[2][0]))

    assert np.isfinite(model.predict(x, verbose=0)).all()
    assert np.isfinite(model.predict_gradient(x)).all()
    model.save(tmp_path / "m.keras")
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    assert np.isfinite(model.fit(x, y, epochs=1, verbose=0).history["loss"]).all()


class RootOfShiftedInput(keras.layers.Layer):
    """sqrt(a * (z0 + 1)): finite at z0 = -1, where its derivative in `a` is 0/0."""

    def build(self, input_shape):
        self.a = self.add_weight(name="a", shape=(), initializer="ones")

    def call(self, z):
        return tf.sqrt(self.a * (z[:, :1] + 1.0))


def test_a_finite_loss_with_a_non_finite_gradient_stops_naming_the_weight_update():
    # Row 40 lies on the lower bound of x0, so z0 = -1 exactly there: the
    # prediction and the loss stay finite, but the loss's derivative in `a`
    # is NaN. Rows 32-47 are the third batch.
    x = points_2d(48, seed=1)
    x[40, 0] = BOUNDS_2D[0][0]
    y = np.sin(x[:, :1]) + x[:, 1:]
    inputs = keras.Input(shape=(2,))
    features = keras.layers.Concatenate()([RootOfShiftedInput()(inputs), inputs[:, 1:]])
    network = keras.Model(inputs, keras.layers.Dense(1)(features))
    points = points_2d(40, seed=9)  # inside the box, where the Jacobian is finite
    model = kg.GradINN(network, "constant", bounds=BOUNDS_2D, sampler=points, n_collocation=40,
                       gradient_weight=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), steps_per_execution=1)
    recorder = StepRecorder()

    with pytest.raises(kg.NonFiniteLossError,
                       match=r"^training stopped at step 3: the weight update \(the losses were "
                             r"finite, their gradients were not\) became NaN or infinite; the "
                             r"weights are restored to the last ones whose loss was finite "
                             r"\(those before step 2\)"):
        model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
                  callbacks=[recorder])

    states = recorder.states
    assert_state_equal(model, states[1][0], states[2][1])
    assert int(model.optimizer.iterations) == 2
    assert all(np.all(np.isfinite(w)) for w in states[2][0])  # step 2's update was applied
    assert not all(np.array_equal(a, b) for a, b in zip(states[1][0], states[2][0]))
    assert any(np.any(v != 0) for v in states[2][1][2:])  # Adam's moments are really there


def test_a_save_that_fails_midway_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "surrogate.keras"
    model = mlp_model()
    model.save(path)
    before = path.read_bytes()

    def disk_full(self, store):
        raise OSError("No space left on device")

    # The network's weights are written after the configuration: a failure there
    # is a failure in the middle of writing the archive.
    monkeypatch.setattr(keras.layers.Dense, "save_own_variables", disk_full)
    with pytest.raises(OSError, match="No space left"):
        mlp_model(m=1, gradient_weight=0.5).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["surrogate.keras"]
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)


def _smuggle(path, edit):
    import zipfile

    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    edit(config)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def _first_dense(config):
    return next(layer for layer in config["config"]["network"]["config"]["layers"]
                if layer["class_name"] == "Dense")


@pytest.mark.parametrize(
    "edit, error, message",
    [
        (lambda c: _first_dense(c).update(
            class_name="Lambda", module="keras.layers",
            config={"name": "hidden_0", "function": {"class_name": "__lambda__", "config": {
                "code": "4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMEAAAAfABTACkBTqkAKQHaAXhyAQAAAHIBAAAA"
                        "+gg8c3RkaW4+2gg8bGFtYmRhPgEAAADzAAAAAA==",
                "defaults": None, "closure": None}}}),
         ValueError, "unsafe"),
        (lambda c: _first_dense(c).update(class_name="EvilLayer", module="evil.module"),
         TypeError, "EvilLayer"),
    ],
    ids=["lambda", "unknown-class"],
)
def test_safe_loading_refuses_smuggled_code(tmp_path, edit, error, message):
    path = tmp_path / "m.keras"
    mlp_model().save(path)
    _smuggle(path, edit)
    with pytest.raises(error, match=message):
        keras.models.load_model(path, safe_mode=True)


REPRODUCE = textwrap.dedent(
    """
    import hashlib, json, numpy as np, keras, keras_gradinn as kg
    keras.utils.set_random_seed(5)
    x = np.random.default_rng(0).uniform(0, 1, (40, 2)); y = np.sin(4 * x[:, :1]) + x[:, 1:]
    model = kg.GradINN(kg.mlp(2, 1, width=16, depth=2), "smooth", bounds=[(0, 1), (0, 1)],
                       n_collocation=64)
    model.compile(optimizer="adam")
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()
    print(json.dumps({"weights": digest, "history": history.history}))
    """
)


def test_the_same_seed_gives_bit_identical_results_in_two_processes():
    runs = [
        subprocess.run([sys.executable, "-c", REPRODUCE], capture_output=True, text=True,
                       timeout=SUBPROCESS_TIMEOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    first, second = (json.loads(r.stdout.strip().splitlines()[-1]) for r in runs)
    assert first == second


@pytest.mark.parametrize("m", [1, 3])
def test_every_jacobian_strategy_trains_the_same_model(m):
    x = points_2d(48, seed=2)
    y = np.sin(x[:, :1]) * np.arange(1, m + 1)
    weights = {}
    for jacobian in ("tape", "auto", "forward", "reverse"):
        keras.utils.set_random_seed(0)
        model = mlp_model(m=m, jacobian=jacobian, gradient_weight=0.5)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0).history
        weights[jacobian] = (history["gradient_loss"], model.get_weights())
    reference_loss, reference = weights["tape"]
    assert reference_loss[-1] > 0
    for jacobian in ("auto", "forward", "reverse"):
        loss, values = weights[jacobian]
        np.testing.assert_allclose(loss, reference_loss, rtol=1e-4)
        for a, b in zip(values, reference):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_explicit_jacobian_needs_a_dense_chain_and_round_trips(tmp_path):
    with pytest.raises(ValueError, match="jacobian='forward' needs a chain of Dense layers"):
        kg.GradINN(keras.Sequential([keras.Input((2,)), Analytic()]), "smooth",
                   bounds=BOUNDS_2D, jacobian="forward")
    with pytest.raises(ValueError, match="jacobian must be 'auto', 'tape', 'forward' or"):
        mlp_model(jacobian="symbolic")
    model = mlp_model(jacobian="reverse")
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").jacobian == "reverse"


def test_fit_does_not_retrace_across_epochs_or_fits():
    x = points_2d(200, seed=5)
    y = np.sin(x[:, :1])
    model = mlp_model()
    model.compile(optimizer="adam")
    traces = []
    step = model.train_step

    def counted(data):
        traces.append(1)  # runs only while TensorFlow traces the step
        return step(data)

    model.train_step = counted
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(len(traces))
    )
    model.fit(x, y, batch_size=32, epochs=4, verbose=0, callbacks=[record])
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[record])
    assert seen[0] >= 1
    assert seen == [seen[0]] * 6


def test_auto_steps_per_execution_runs_whole_small_epochs():
    x = points_2d(200, seed=5)
    model = mlp_model()
    model.compile(optimizer="adam")
    batches = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batches.append(batch)
    )
    history = model.fit(x, x[:, :1], batch_size=32, epochs=2, verbose=0, callbacks=[record])
    assert model.steps_per_execution == 7 and len(history.history["loss"]) == 2
    assert int(model.collocation_step.numpy()) == 14 and batches == [6, 6]
    model.compile(optimizer="adam", steps_per_execution=1)
    model.fit(x, x[:, :1], batch_size=32, epochs=1, verbose=0)
    assert model.steps_per_execution == 1


def test_a_non_finite_first_step_is_reported_as_step_one_and_changes_nothing():
    x = points_2d(32, seed=1)
    y = np.sin(x[:, :1])
    model = mlp_model()
    model.compile(optimizer="adam")
    model.adapt(y)
    before = model.network.get_weights() + model.prior.get_weights()
    y[3] = 1e30  # the squared error overflows float32 in the first batch
    with pytest.raises(kg.NonFiniteLossError, match=r"stopped at step 1: the data_loss"):
        model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(model.network.get_weights() + model.prior.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_compiled_metric_reset_and_results_match_keras():
    x = points_2d(40, seed=6)
    model = mlp_model()
    model.compile(optimizer="adam", metrics=["mae"])
    history = model.fit(x, x[:, :1], batch_size=8, epochs=2, verbose=0).history
    compiled = {k: float(v) for k, v in model.get_metrics_result().items()}
    eager = {k: float(v) for k, v in keras.Model.get_metrics_result(model).items()}
    assert compiled == eager and set(compiled) == set(history)
    assert compiled["loss"] == pytest.approx(history["loss"][-1], rel=1e-6)
    model.reset_metrics()
    assert all(float(v) == 0.0 for v in keras.Model.get_metrics_result(model).values())


def test_a_sparse_prior_pulls_an_inert_input_out_of_the_field():
    """The prior's group penalty enters the training loss and shrinks x3's share of its field."""

    def shares(sparsity):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (24, 3)).astype("float32")
        y = (np.sin(2 * x[:, :1]) + x[:, 1:2]).astype("float32")  # x3 is inert
        model = kg.GradINN(kg.mlp(3, 1, width=32, depth=2, seed=0),
                           kg.priors.smooth(3, 1, sparsity=sparsity, seed=0),
                           bounds=[(-1, 1)] * 3, gradient_weight=1.0, n_collocation=64, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(3e-3))
        model.fit(x, y, epochs=300, batch_size=24, verbose=0)
        z = rng.uniform(-1, 1, (500, 3)).astype("float32")
        field = np.sqrt(np.mean(np.square(model.prior(z)), axis=0))
        jacobian = np.sqrt(np.mean(np.square(model.predict_gradient(z)[:, 0]), axis=0))
        return field[2] / field[1], jacobian[2] / jacobian[1]

    plain, sparse = shares(0.0), shares(0.1)
    # Measured: the field's share falls from 0.19 to 0.11, the network's from 0.19 to 0.13.
    assert sparse[0] < 0.75 * plain[0]
    assert sparse[1] < 0.85 * plain[1]
