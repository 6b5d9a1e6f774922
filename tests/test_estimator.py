"""GradINNRegressor: scikit-learn's estimator checks, the prior choice, saving, pipelines."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks as checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from keras_gradinn.estimator import CANDIDATES, Candidate, GradINNRegressor

# The calibration fit changes no prediction and has its own tests (test_uncertainty.py):
# skipped here, where every check and choice would pay for it.
TINY = dict(steps=30, cv_steps=10, width=8, depth=1, n_collocation=16, random_state=0,
            calibrate=False)
RNG = np.random.default_rng(0)
X = RNG.random((40, 4))
Y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2  # inputs 2 and 3 are inert


@parametrize_with_checks(
    [GradINNRegressor(prior="smooth", **TINY)],
    expected_failed_checks=lambda estimator: {
        "check_sample_weight_equivalence_on_dense_data":
            "float32 training: weights agree with repeated rows to about 2e-7, not sklearn's "
            "rtol=1e-7 (test_zero_weights_are_the_same_as_dropping_rows checks it at 1e-4)",
    },
)
def test_scikit_learn_estimator_checks_with_a_fixed_prior(estimator, check):
    check(estimator)


# With the automatic choice, the checks about fitted state and determinism
# (the rest do not reach the choice and run above).
@pytest.mark.parametrize("check", [
    checks.check_fit_idempotent, checks.check_estimators_pickle, checks.check_n_features_in,
    checks.check_dict_unchanged, checks.check_dont_overwrite_parameters,
    checks.check_fit_check_is_fitted, checks.check_regressor_multioutput,
], ids=lambda check: check.__name__)
def test_scikit_learn_estimator_checks_with_the_automatic_choice(check):
    # Two candidates and two folds take the same paths as the default set.
    choice = [CANDIDATES["none"], CANDIDATES["stiff"]]
    check("GradINNRegressor", GradINNRegressor(candidates=choice, cv=2, **TINY))


@pytest.fixture(scope="module")
def auto():
    return GradINNRegressor(steps=400, cv_steps=200, calibrate=False, random_state=0).fit(X, Y)


def test_the_choice_is_the_best_held_out_score_and_never_below_the_plain_network(auto):
    results = auto.cv_results_
    names = [p["prior"] for p in results["params"]]
    assert names[:len(CANDIDATES)] == list(CANDIDATES)
    splits = np.stack([results[f"split{i}_test_score"] for i in range(5)], axis=1)
    np.testing.assert_allclose(results["mean_test_score"], splits.mean(axis=1))
    assert auto.best_index_ == int(np.argmax(results["mean_test_score"]))
    assert results["rank_test_score"][auto.best_index_] == 1
    assert auto.best_prior_ == names[auto.best_index_]
    assert results["mean_test_score"][auto.best_index_] >= results["mean_test_score"][0]


def test_screening_drops_the_inert_inputs_exactly(auto):
    # The smooth, well-sampled function is the kernel prior's; two inputs do nothing.
    assert auto.best_prior_ == "screened"
    gradient = auto.predict_gradient(RNG.random((20, 4)))
    assert gradient.shape == (20, 4)
    assert np.all(gradient[:, 2:] == 0) and np.all(np.abs(gradient[:, 0]) > 0)


def test_custom_candidates_and_a_screened_trainable_prior():
    wavy = Candidate("wavy", "oscillatory", 0.03, (("frequency", 1.0), ("n_features", 16)))
    model = GradINNRegressor(candidates=[wavy, "smooth", "screened"],
                             **{**TINY, "steps": 200, "cv_steps": 100}).fit(X, Y)
    names = [p["prior"] for p in model.cv_results_["params"]]
    assert names[:2] == ["wavy", "smooth"]
    np.testing.assert_allclose(model.cv_results_["gradient_weight"][:2], [0.03, 0.01])
    fixed = GradINNRegressor(prior=Candidate("smooth", "smooth", 0.1, (("width", 8),)),
                             **TINY).fit(X, Y)
    assert fixed.best_candidate_.gradient_weight == 0.1 and fixed.cv_results_ == {}
    # A screened smooth prior reads only the kept inputs, like its network.
    screened = GradINNRegressor(prior="smooth", **TINY)
    screened.fit(X, Y)
    from keras_gradinn.estimator import _Context

    context = _Context(screened, X, Y[:, None], np.ones(len(X)), 0, None)
    mask = np.array([[1, 1, 0, 0]] * 2, np.float32)
    stack = context.fit(CANDIDATES["smooth"], steps=2, masks=mask, splits=[
        (np.arange(20), np.arange(20, 40)), (np.arange(20, 40), np.arange(20))])
    z = np.random.default_rng(1).uniform(-1, 1, (5, 4)).astype("float32")
    moved = z.copy()
    moved[:, 2:] = -moved[:, 2:]
    np.testing.assert_array_equal(stack.prior(z).numpy(), stack.prior(moved).numpy())


@pytest.mark.parametrize(("candidate", "message"), [
    (Candidate("x", "psychic", 1.0), "prior must be one of"),
    (Candidate("x", "smooth", -1.0), "gradient_weight must be finite and >= 0"),
    (Candidate("x", "none", 1.0), "prior 'none' and only it has weight 0"),
    (Candidate("x", "smooth", 0.1, ("width", 8)), "options must be \\(name, value\\) pairs"),
])
def test_bad_candidates_are_named(candidate, message):
    with pytest.raises(ValueError, match=message):
        GradINNRegressor(candidates=["none", candidate], **TINY).fit(X, Y)


def test_predictions_and_gradients_agree_with_each_other(auto):
    x = RNG.uniform(0.1, 0.9, (6, 4))
    step = 1e-3
    differences = np.stack([(auto.predict(x + step * e) - auto.predict(x - step * e)) / (2 * step)
                            for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(auto.predict_gradient(x), differences, atol=2e-3, rtol=2e-2)
    test = RNG.random((200, 4))
    assert np.sqrt(np.mean((auto.predict(test) - np.sin(3 * test[:, 0]) - test[:, 1] ** 2) ** 2)) \
        < 0.2


def test_a_saved_estimator_loads_with_its_choice_and_predictions(auto, tmp_path):
    path = tmp_path / "surrogate.keras"
    auto.save(path)
    loaded = GradINNRegressor.load(path)
    assert loaded.get_params() == auto.get_params()
    assert loaded.best_prior_ == auto.best_prior_ and loaded.best_index_ == auto.best_index_
    for key, value in auto.cv_results_.items():
        np.testing.assert_equal(loaded.cv_results_[key], value)
    x = RNG.random((10, 4))
    np.testing.assert_array_equal(loaded.predict(x), auto.predict(x))
    np.testing.assert_array_equal(loaded.predict_gradient(x), auto.predict_gradient(x))
    with pytest.raises(ValueError, match="no GradINNRegressor"):
        import keras_gradinn as kg

        kg.GradINN(kg.mlp(4, 1), "smooth", bounds=[(0, 1)] * 4).save(tmp_path / "plain.keras")
        GradINNRegressor.load(tmp_path / "plain.keras")


def test_the_final_model_is_an_ensemble_of_n_members():
    model = GradINNRegressor(prior="smooth", **{**TINY, "n_members": 3}).fit(X, Y)
    assert model.model_.members == 3
    members = model.model_.predict_members(X)[:, :, 0]
    assert np.all(np.std(members, axis=1) > 0)  # different initial weights
    np.testing.assert_allclose(model.predict(X), members.mean(axis=1), rtol=1e-5, atol=1e-6)
    single = GradINNRegressor(prior="smooth", **{**TINY, "n_members": 1}).fit(X, Y)
    assert single.model_.members == 1
    np.testing.assert_allclose(single.predict(X), members[:, 0], rtol=1e-5, atol=1e-6)


def test_dataframes_name_the_inputs():
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(X, columns=["load", "span", "thickness", "colour"])
    model = GradINNRegressor(prior="none", **TINY).fit(frame, Y)
    assert list(model.feature_names_in_) == ["load", "span", "thickness", "colour"]
    assert model.model_.input_labels == ["load", "span", "thickness", "colour"]
    with pytest.warns(UserWarning, match="feature names"):
        model.predict(X)


def test_zero_weights_are_the_same_as_dropping_rows():
    bounds = [(0.0, 1.0)] * 4
    weights = np.where(np.arange(40) % 4 == 0, 0.0, 1.0)
    weighted = GradINNRegressor(prior="smooth", bounds=bounds, **TINY).fit(X, Y, weights)
    dropped = GradINNRegressor(prior="smooth", bounds=bounds, **TINY).fit(X[weights > 0],
                                                                         Y[weights > 0])
    np.testing.assert_allclose(weighted.predict(X), dropped.predict(X), rtol=1e-4, atol=1e-5)


def test_it_works_in_pipelines_grid_search_and_cross_validation():
    pipeline = make_pipeline(FunctionTransformer(), GradINNRegressor(prior="none", **TINY))
    scores = cross_val_score(pipeline, X, Y, cv=2)
    assert scores.shape == (2,) and np.all(np.isfinite(scores))
    search = GridSearchCV(GradINNRegressor(**TINY), {"prior": ["none", "stiff"]}, cv=2)
    search.fit(X, Y)
    assert search.best_params_["prior"] in ("none", "stiff")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(prior="psychic"), "prior"),
        (dict(gradient_weight=1.0), "fixed prior"),
        (dict(prior="none", gradient_weight=1.0), "no gradient term"),
        (dict(bounds=[(0, 1)] * 3), r"bounds must have shape \(4, 2\)"),
        (dict(bounds=[(0, 0.5)] * 4), "outside the bounds"),
        (dict(cv=1), "cv"),
        (dict(candidates=["none", "psychic"]), "candidates must be Candidate objects or names"),
        (dict(candidates=["none", "none"]), "each once"),
        (dict(prior="smooth", candidates=["none"]), "candidates apply to prior='auto'"),
    ],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        GradINNRegressor(**{**TINY, **params}).fit(X, Y)


def test_a_fit_prints_no_retracing_warnings():
    import logging

    import tensorflow as tf

    class Records(logging.Handler):
        messages: list = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    handler = Records()
    tf.get_logger().addHandler(handler)
    try:
        # Enough models (five candidates' stacks and the final one) for
        # TensorFlow to call their first traces excessive retracing.
        GradINNRegressor(**TINY).fit(X, Y)
        GradINNRegressor(**TINY).fit(X, Y)
    finally:
        tf.get_logger().removeHandler(handler)
    assert not [m for m in handler.messages if "retracing" in m]
    assert not tf.get_logger().filters
