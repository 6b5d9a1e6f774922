"""Ensembles' standard deviations: the calibration, the model's outputs, the estimator's."""

import keras
import numpy as np
import pytest

import keras_gradinn as kg
from keras_gradinn import GradINNRegressor, uncertainty
from keras_gradinn.uncertainty import Calibration, fit_calibration

BOUNDS = [(0.0, 2.0), (-1.0, 1.0)]
RNG = np.random.default_rng(0)
X = RNG.uniform([0, -1], [2, 1], (48, 2))
Y = np.stack([np.sin(2 * X[:, 0]) + X[:, 1], X[:, 0] * X[:, 1]], axis=1)


# ------------------------------------------------------------------ calibration


@pytest.mark.parametrize("scale, floor, noise", [(3.0, 0.0, 0.0), (0.5, 0.2, 0.0),
                                                 (1.0, 0.3, 0.5), (2.0, 0.0, 0.4)])
def test_maximum_likelihood_recovers_the_scale_and_the_floor_above_the_noise(scale, floor, noise):
    rng = np.random.default_rng(1)
    spread = rng.uniform(0.05, 1.0, 20_000)
    sigma = np.sqrt((scale * spread) ** 2 + floor**2 + noise**2)
    fitted = fit_calibration(sigma * rng.standard_normal(20_000), spread, noise=noise)
    assert fitted.scale[0] == pytest.approx(scale, rel=0.05, abs=0.03)
    assert fitted.floor[0] == pytest.approx(floor, rel=0.1, abs=0.03)
    assert fitted.noise == (noise,)


def test_without_spread_the_error_is_a_floor_and_weights_count():
    residual = np.array([[1.0, 0.0], [-3.0, 0.0]])
    fitted = fit_calibration(residual, np.zeros_like(residual), sample_weight=[1.0, 0.0])
    assert fitted.scale == (1.0, 1.0) and fitted.noise == (0.0, 0.0)
    np.testing.assert_allclose(fitted.floor, [1.0, 0.0], atol=1e-4)


@pytest.mark.parametrize("residuals, spreads, weights, message", [
    (np.zeros(3), np.zeros(4), None, "same shape"),
    (np.array([np.nan]), np.ones(1), None, "finite"),
    (np.ones(2), -np.ones(2), None, ">= 0"),
    (np.ones(2), np.ones(2), [0.0, 0.0], "positive sum"),
    (np.ones(2), np.ones(2), -1.0, "noise"),
])
def test_bad_calibration_data_are_named(residuals, spreads, weights, message):
    noise, weights = (weights, None) if isinstance(weights, float) else (0.0, weights)
    with pytest.raises(ValueError, match=message):
        fit_calibration(residuals, spreads, weights, noise=noise)


def test_scores_of_a_standard_deviation():
    y, mean = np.array([0.0, 1.0, 2.0]), np.zeros(3)
    std = np.ones(3)
    assert uncertainty.coverage(y, mean, std) == pytest.approx(2 / 3)  # 2 > 1.645
    assert uncertainty.coverage(y, mean, std, level=0.99) == 1.0  # 2 < 2.576
    expected = np.mean(0.5 * np.log(2 * np.pi) + 0.5 * y**2)
    assert uncertainty.gaussian_nll(y, mean, std) == pytest.approx(expected)
    levels, observed = uncertainty.calibration_curve(RNG.standard_normal(20_000), np.zeros(20_000),
                                                     np.ones(20_000))
    np.testing.assert_allclose(observed, levels, atol=0.02)
    with pytest.raises(ValueError, match="level"):
        uncertainty.coverage(y, mean, std, level=1.0)


# ------------------------------------------------------------------ the model


def ensemble(members=4, calibration=None):
    network = kg.mlp(2, 2, width=8, depth=2, seed=1, members=members)
    model = kg.GradINN(network, "smooth", bounds=BOUNDS, n_collocation=32, seed=2,
                       calibration=calibration)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(X, Y, epochs=3, batch_size=16, verbose=0)
    return model


@pytest.fixture(scope="module")
def calibrated():
    return ensemble(calibration=Calibration((2.0, 0.5), (0.0, 0.0), (0.3, 0.0)))


def test_the_standard_deviations_are_the_members_spread_times_the_scale_and_the_floor():
    model = ensemble(calibration=Calibration((2.0, 0.5), (0.1, 0.0), (0.3, 0.0)))
    _, std = model.predict(X, return_std=True)
    spread = model.predict_members(X).std(axis=1, ddof=1) / model.output_std.numpy()
    expected = np.sqrt((spread * [2.0, 0.5]) ** 2 + [0.01, 0.0]) * model.output_std.numpy()
    np.testing.assert_allclose(std, expected, rtol=1e-4, atol=1e-6)


def test_without_a_floor_they_are_the_members_spread_times_the_scale(calibrated):
    mean, std = calibrated.predict(X, return_std=True)
    members = calibrated.predict_members(X)
    np.testing.assert_allclose(mean, members.mean(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std, members.std(axis=1, ddof=1) * [2.0, 0.5], rtol=1e-4,
                               atol=1e-6)
    jacobian, jacobian_std = calibrated.predict_gradient(X, return_std=True)
    slopes = calibrated.predict_gradient(X, members=True)
    np.testing.assert_allclose(jacobian, slopes.mean(axis=1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jacobian_std, slopes.std(axis=1, ddof=1) * [[2.0], [0.5]],
                               rtol=1e-4, atol=1e-6)
    forward = calibrated.predictive_outputs(X.astype("float32"), method="forward")
    for name, value in zip(("y_std", "dy_dx_std"), (std, jacobian_std)):
        np.testing.assert_allclose(forward[name], value, rtol=1e-4, atol=1e-6)


def test_one_network_has_no_spread():
    network = kg.mlp(2, 1, width=8, depth=1, seed=1)
    model = kg.GradINN(network, "smooth", bounds=BOUNDS, seed=2)
    _, std = model.predict(X, return_std=True)
    _, jacobian_std = model.predict_gradient(X, return_std=True)
    assert std.shape == (len(X), 1) and not std.any() and not jacobian_std.any()
    assert not model.has_std
    model.calibration = Calibration((1.0,), (0.1,), (0.0,))  # a floor: a std that says something
    assert model.has_std and model.predict(X, return_std=True)[1].all()


def test_the_calibration_is_saved_with_the_model(calibrated, tmp_path):
    two = kg.GradINN(kg.mlp(2, 2, width=4, depth=1, seed=1, members=2), "smooth", bounds=BOUNDS)
    assert calibrated.has_std and two.has_std
    calibrated.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert loaded.calibration == calibrated.calibration
    np.testing.assert_array_equal(loaded.predict(X, return_std=True)[1],
                                  calibrated.predict(X, return_std=True)[1])


def test_a_new_calibration_changes_the_standard_deviation_at_once():
    # Untrained members differ too: their spread is enough to follow the calibration.
    model = kg.GradINN(kg.mlp(2, 2, width=8, depth=2, seed=1, members=3), "smooth",
                       bounds=BOUNDS)
    raw = model.predict(X, return_std=True)[1]
    model.calibration = {"scale": [3.0, 3.0], "floor": [0.0, 0.0], "noise": [0.5, 0.5]}
    np.testing.assert_allclose(model.predict(X, return_std=True)[1], 3 * raw, rtol=1e-5)
    model.calibration = None
    np.testing.assert_allclose(model.predict(X, return_std=True)[1], raw, rtol=1e-6)


@pytest.mark.parametrize("value, error, message", [
    (Calibration((1.0,), (0.0,), (0.0,)), ValueError, "one scale per output"),
    ("wide", TypeError, "Calibration"),
    ({"scale": [1.0, -1.0], "floor": [0.0, 0.0], "noise": [0.0, 0.0]}, ValueError, ">= 0"),
    ({"scale": [1.0, 1.0], "floor": [0.0], "noise": [0.0, 0.0]}, ValueError, "per output"),
])
def test_bad_calibrations_are_named(calibrated, value, error, message):
    with pytest.raises(error, match=message):
        calibrated.calibration = value


def test_return_std_takes_arrays_only(calibrated):
    with pytest.raises(ValueError, match="return_std"):
        calibrated.predict(X, return_std=True, steps=2)
    with pytest.raises(ValueError, match="members=True"):
        calibrated.predict_gradient(X, members=True, return_std=True)


# -------------------------------------------------------------- the estimator

TINY = dict(steps=60, cv_steps=30, width=8, depth=1, n_collocation=16, cv=3, random_state=0)


@pytest.fixture(scope="module")
def fitted():
    return GradINNRegressor(prior="smooth", n_members=3, **TINY).fit(X, Y[:, 0])


def test_the_estimator_calibrates_on_held_out_rows(fitted):
    assert isinstance(fitted.calibration_, Calibration)
    assert fitted.model_.calibration == fitted.calibration_
    results = fitted.calibration_results_
    assert set(results) == {"coverage", "nll", "raw_coverage", "levels", "observed"}
    assert len(results["levels"]) == len(results["observed"]) == 19
    mean, std = fitted.predict(X, return_std=True)
    assert mean.shape == std.shape == (len(X),) and (std > 0).all()
    np.testing.assert_array_equal(mean, fitted.predict(X))
    unit = float(fitted.model_.output_std[0])
    raw = fitted.model_.predict_members(X)[:, :, 0].std(axis=1, ddof=1) / unit
    expected = fitted.calibration_.std(raw[:, None])[:, 0] * unit
    np.testing.assert_allclose(std, expected, rtol=1e-4, atol=1e-7)
    jacobian, jacobian_std = fitted.predict_gradient(X, return_std=True)
    assert jacobian.shape == jacobian_std.shape == (len(X), 2)


def test_calibrating_leaves_the_fitted_model_as_it_was(fitted):
    raw = GradINNRegressor(prior="smooth", n_members=3, calibrate=False, **TINY).fit(X, Y[:, 0])
    np.testing.assert_array_equal(raw.predict(X), fitted.predict(X))
    assert raw.calibration_ is None
    np.testing.assert_allclose(raw.predict(X, return_std=True)[1],
                               raw.model_.predict_members(X)[:, :, 0].std(axis=1, ddof=1),
                               rtol=1e-4, atol=1e-7)


def test_a_loaded_estimator_keeps_its_calibration(fitted, tmp_path):
    fitted.save(tmp_path / "estimator.keras")
    loaded = GradINNRegressor.load(tmp_path / "estimator.keras")
    assert loaded.calibration_ == fitted.calibration_
    assert loaded.calibration_results_ == fitted.calibration_results_
    np.testing.assert_array_equal(loaded.predict(X, return_std=True)[1],
                                  fitted.predict(X, return_std=True)[1])


def test_a_one_pass_iterable_of_splits_serves_the_choice_and_the_calibration():
    from sklearn.model_selection import KFold

    splits = (split for split in KFold(3, shuffle=True, random_state=0).split(X))
    model = GradINNRegressor(candidates=["none", "smooth"], n_members=2,
                             **{**TINY, "cv": splits}).fit(X, Y[:, 0])
    assert len([key for key in model.cv_results_ if key.startswith("split")]) == 3
    assert isinstance(model.calibration_, Calibration)
