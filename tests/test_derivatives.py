"""Observed derivatives as training data: checks, the loss term, the fit paths, the estimator."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gradinn as kg
from keras_gradinn.cli.info import _choice_lines
from keras_gradinn.derivatives import check_derivatives, derivative_mismatch, split_target

BOUNDS = [(0.0, 2.0), (-1.0, 1.0)]


def function(x):
    """y = (sin(2 x0) + x1^2, x0 x1): two outputs with a known Jacobian."""
    return np.stack([np.sin(2 * x[:, 0]) + x[:, 1] ** 2, x[:, 0] * x[:, 1]], axis=1)


def jacobian(x):
    rows = [[2 * np.cos(2 * x[:, 0]), 2 * x[:, 1]], [x[:, 1], x[:, 0]]]
    return np.stack([np.stack(r, axis=1) for r in rows], axis=1)  # (n, 2, 2)


def points(n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(0, 2, n), rng.uniform(-1, 1, n)], axis=1)


def model(**kwargs):
    kwargs = {"n_collocation": 16, "seed": 0, **kwargs}
    return kg.GradINN(kg.mlp(2, 2, width=16, depth=2, seed=1), "constant", bounds=BOUNDS,
                      **kwargs)


def test_each_observed_entry_counts_like_one_target_value():
    rng = np.random.default_rng(0)
    jac = rng.normal(size=(3, 5, 2, 4))
    observed = rng.normal(size=(5, 2, 4))
    observed[rng.random((5, 2, 4)) < 0.4] = np.nan
    observed[2] = np.nan  # a row with nothing observed still counts its values
    weights = rng.uniform(0.5, 2, size=(5, 3))
    squares = np.nan_to_num(jac - observed) ** 2  # (k, n, m, d); unobserved entries 0
    expected = [np.sum(weights[:, k, None, None] * squares[k]) / (2 * weights[:, k].sum())
                for k in range(3)]
    got = derivative_mismatch(tf.constant(jac), tf.constant(observed), tf.constant(weights))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    unweighted = [np.sum(squares[k]) / (5 * 2) for k in range(3)]
    got = derivative_mismatch(tf.constant(jac), tf.constant(observed))
    np.testing.assert_allclose(got.numpy(), unweighted, rtol=1e-12)
    nothing = derivative_mismatch(tf.constant(jac), tf.constant(np.full((5, 2, 4), np.nan)))
    np.testing.assert_array_equal(nothing.numpy(), 0.0)


@pytest.mark.parametrize(("value", "message"), [
    (np.zeros((4, 2, 3)), r"must have shape \(4, 2, 2\)"),
    (np.zeros((4, 2)), r"must have shape \(4, 2, 2\)"),
    (np.full((4, 2, 2), np.nan), "no observed entry"),
    (np.where(np.arange(16).reshape(4, 2, 2) == 9, np.inf, 0.0), "inf in 1 row.*first row 2"),
    ("abc", "numeric array"),
])
def test_bad_derivatives_are_named(value, message):
    with pytest.raises(ValueError, match=message):
        check_derivatives(value, 4, 2, 2)


def test_one_output_takes_rows_of_d_and_a_pair_needs_three_axes():
    assert check_derivatives(np.ones((4, 3)), 4, 1, 3).shape == (4, 1, 3)
    y, g = np.ones((4, 1)), np.ones((4, 1, 3))
    assert split_target((y, g))[1] is g
    rows = [np.ones(2), np.ones(2)]  # two rows of values, not a pair
    assert split_target(rows) == (rows, None)


def test_reported_derivative_loss_equals_an_independent_computation():
    x = points(24, seed=1)
    y, g = function(x), jacobian(x)
    g[::3, 0, 1] = np.nan
    net = model(derivative_weight=0.5)
    net.compile(optimizer=keras.optimizers.SGD(0.0))
    net.adapt(y)
    # The network's Jacobian in normalised units: dt/dz = dy/dx * half_width / std.
    half_width, std = np.array([1.0, 1.0]), y.std(axis=0)
    normalise = half_width[None, None, :] / std[None, :, None]
    mismatch = (net.predict_gradient(x) - g) * normalise
    expected = np.nansum(mismatch**2) / y.size  # per target value
    result = net.evaluate(x, (y, g), batch_size=24, verbose=0, return_dict=True)
    assert result["derivative_loss"] == pytest.approx(expected, rel=1e-5)
    assert result["loss"] == pytest.approx(
        result["data_loss"] + net.gradient_weight * result["gradient_loss"] + 0.5 * expected,
        rel=1e-5)
    history = net.fit(x, y, dy_dx=g, batch_size=24, epochs=1, verbose=0, shuffle=False)
    assert history.history["derivative_loss"][0] == pytest.approx(expected, rel=1e-5)
    # Without derivatives nothing changes, and the metric is not reported.
    plain = model()
    plain.compile(optimizer=keras.optimizers.SGD(0.0))
    assert "derivative_loss" not in plain.fit(x, y, epochs=1, verbose=0).history


def test_training_on_observed_derivatives_learns_the_jacobian():
    x, test = points(12, seed=2), points(500, seed=3)
    errors = {}
    for name, g in (("values", None), ("derivatives", jacobian(x))):
        keras.utils.set_random_seed(0)
        net = model(gradient_weight=0.0)
        net.compile(optimizer=keras.optimizers.Adam(1e-2))
        net.fit(x, function(x), dy_dx=g, batch_size=12, epochs=300, verbose=0)
        errors[name] = np.sqrt(np.mean((net.predict_gradient(test) - jacobian(test)) ** 2))
    assert errors["derivatives"] < 0.5 * errors["values"], errors


def test_a_dataset_of_pairs_trains_like_the_keyword_and_a_split_holds_derivatives_out():
    x = points(20, seed=4)
    y, g = function(x), jacobian(x)
    losses = []
    for data in ({"x": x, "y": y, "dy_dx": g},
                 {"x": tf.data.Dataset.from_tensors((x.astype("float32"),
                                                     (y.astype("float32"),
                                                      g.astype("float32"))))}):
        keras.utils.set_random_seed(0)
        net = model()
        net.compile(optimizer=keras.optimizers.Adam(1e-2))
        net.adapt(y)
        history = net.fit(**data, batch_size=None if "y" not in data else 20, epochs=3,
                          shuffle=False, verbose=0)
        losses.append(history.history["derivative_loss"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    history = net.fit(x, y, dy_dx=g, validation_split=0.25, epochs=1, verbose=0)
    assert history.history["val_derivative_loss"][0] > 0


def test_derivative_weight_is_saved_and_checked(tmp_path):
    net = model(derivative_weight=3.0)
    net.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").derivative_weight == 3.0
    with pytest.raises(ValueError, match="derivative_weight"):
        model(derivative_weight=-1.0)
    dataset = tf.data.Dataset.from_tensors((np.ones((2, 2), "float32"), np.ones((2, 2))))
    with pytest.raises(ValueError, match="dy_dx goes with array inputs"):
        net.fit(dataset, dy_dx=np.ones((2, 2, 2)), epochs=1, verbose=0)


def test_the_estimator_trains_every_fit_on_observed_derivatives(tmp_path):
    x, test = points(16, seed=5), points(500, seed=6)
    y, g = function(x)[:, 0], jacobian(x)[:, 0]
    common = dict(steps=300, width=16, depth=2, bounds=BOUNDS, random_state=0)
    values = kg.GradINNRegressor("none", n_members=1, calibrate=False, **common).fit(x, y)
    # The choice, the calibration's fold fits and the final fit all see the derivatives.
    estimator = kg.GradINNRegressor(candidates=["none", "smooth"], cv=2, cv_steps=100,
                                    n_members=2, **common).fit(x, y, dy_dx=g)
    errors = [np.sqrt(np.mean((e.predict_gradient(test) - jacobian(test)[:, 0]) ** 2))
              for e in (values, estimator)]
    assert errors[1] < 0.5 * errors[0], errors
    assert "derivative_loss" in estimator.history_
    scores = estimator.steps_scores_
    assert set(scores) == {100, 300} and estimator.final_steps_ == max(scores, key=scores.get)
    assert int(estimator.model_.optimizer.iterations) == estimator.final_steps_
    assert values.steps_scores_ == {} and values.final_steps_ == 300
    estimator.save(tmp_path / "m.keras")
    loaded = kg.GradINNRegressor.load(tmp_path / "m.keras")
    assert loaded.steps_scores_ == scores and loaded.final_steps_ == estimator.final_steps_
    line = _choice_lines(loaded.model_.metadata)[-1]
    assert line.startswith(f"final fit: {estimator.final_steps_} steps") and "at 100, " in line
    with pytest.raises(ValueError, match=r"dy_dx must have shape \(16, 1, 2\)"):
        estimator.fit(x, y, dy_dx=np.ones((16, 3)))


@pytest.mark.parametrize("long_loss, expected", [(1e-9, 40), (1e9, 20)])
def test_with_derivatives_the_final_fit_runs_the_budget_its_folds_score_better(
        monkeypatch, long_loss, expected):
    from keras_gradinn.estimator import _Context

    held_out = _Context.held_out

    def scored(self, candidate, splits, *, steps, masks, name):
        model, done = held_out(self, candidate, splits, steps=steps, masks=masks, name=name)
        return model, (done if steps == 20 else {**done, "losses": [long_loss] * len(splits)})

    monkeypatch.setattr(_Context, "held_out", scored)
    x = points(12, seed=7)
    estimator = kg.GradINNRegressor(candidates=["none"], cv=2, steps=40, cv_steps=20,
                                    n_members=1, calibrate=False, width=8, depth=1,
                                    bounds=BOUNDS, random_state=0)
    estimator.fit(x, function(x)[:, 0], dy_dx=jacobian(x)[:, 0])
    assert estimator.final_steps_ == expected
    assert int(estimator.model_.optimizer.iterations) == expected
