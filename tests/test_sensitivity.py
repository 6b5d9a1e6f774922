"""Sobol' and DGSM indices of a surrogate, against closed forms, SALib and the command line.

A GradINN whose network is one Dense layer with fixed weights is the
linear map y = sum_j a_j x_j on its bounds box, whose indices are known:
with Var(x_j) = w_j^2 / 12 for a box of width w_j,

    S1_j = ST_j = a_j^2 Var(x_j) / sum_k a_k^2 Var(x_k),
    vi_j = a_j^2,  dgsm_j = vi_j w_j^2 / (pi^2 Var(y)) = (12 / pi^2) ST_j.
"""

import csv
import math
import re

import keras
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import keras_gradinn as kg
from keras_gradinn import sensitivity
from keras_gradinn.stacked import StackedMLP

BOUNDS = [(0.0, 1.0), (1.0, 5.0), (-2.0, 2.0), (10.0, 11.0)]
WIDTHS = np.array([high - low for low, high in BOUNDS])


def linear(kernel, bounds=BOUNDS, **kwargs) -> kg.GradINN:
    """A GradINN computing `z @ kernel`, z the inputs mapped onto [-1, 1]^d."""
    kernel = np.asarray(kernel, dtype="float32").reshape(len(bounds), -1)
    network = keras.Sequential([keras.Input((len(bounds),)), keras.layers.Dense(kernel.shape[1])])
    network.layers[0].set_weights([kernel, np.zeros(kernel.shape[1], "float32")])
    return kg.GradINN(network, "constant", bounds=bounds, seed=0, **kwargs)


def closed_form(slopes: np.ndarray, widths: np.ndarray = WIDTHS) -> tuple[np.ndarray, np.ndarray]:
    """Sobol' index and dgsm of y = slopes . x on a box of `widths` (both (d,))."""
    shares = slopes**2 * widths**2 / 12
    index = shares / shares.sum()
    return index, 12 / math.pi**2 * index


def slopes_of(kernel: np.ndarray) -> np.ndarray:
    """dy/dx of `linear(kernel)` in user units: the kernel over the half widths, (m, d)."""
    return (np.asarray(kernel, dtype=float).reshape(len(WIDTHS), -1) / (WIDTHS / 2)[:, None]).T


def test_sobol_and_dgsm_of_a_linear_map_match_their_closed_form():
    kernel = [1.0, 2.0, 0.0, 3.0]
    model = linear(kernel)
    index, bound = closed_form(slopes_of(kernel)[0])

    indices = sensitivity.sobol(model, n_samples=4096, seed=0)
    measures = sensitivity.dgsm(model, n_samples=4096, seed=0)

    assert set(indices) == {"S1", "S1_conf", "ST", "ST_conf"}
    assert set(measures) == {"vi", "vi_std", "dgsm", "dgsm_conf"}
    assert all(value.shape == (4,) for value in [*indices.values(), *measures.values()])
    np.testing.assert_allclose(indices["S1"], index, atol=0.01)
    np.testing.assert_allclose(indices["ST"], index, atol=0.01)
    assert indices["ST"][2] == 0 and (indices["ST_conf"][[0, 1, 3]] > 0).all()
    # The Jacobian is exact, so vi is the squared slope to float32 rounding.
    np.testing.assert_allclose(measures["vi"], slopes_of(kernel)[0] ** 2, rtol=1e-5)
    np.testing.assert_allclose(measures["vi_std"], 0, atol=1e-4)
    np.testing.assert_allclose(measures["dgsm"], bound, rtol=0.01)


def test_sobol_tells_an_interaction_from_a_main_effect():
    # y = z0 z1 + 2 z2 with z uniform on [-1, 1]^3: Var = 1/9 + 4/3, and the
    # product's share is all interaction (S1 = 0 < ST) while z2's is all its own.
    bounds = BOUNDS[:3]
    inputs = keras.Input((3,))
    pick = [keras.layers.Dense(1, use_bias=False, trainable=False) for _ in range(3)]
    terms = [layer(inputs) for layer in pick]
    outputs = keras.layers.Add()([keras.layers.Multiply()(terms[:2]), terms[2]])
    network = keras.Model(inputs, outputs)
    for j, (layer, weight) in enumerate(zip(pick, (1.0, 1.0, 2.0))):
        layer.set_weights([weight * np.eye(3, dtype="float32")[:, j:j + 1]])
    model = kg.GradINN(network, "constant", bounds=bounds, seed=0)
    variance = 1 / 9 + 4 / 3

    indices = sensitivity.sobol(model, n_samples=4096, seed=0)
    measures = sensitivity.dgsm(model, n_samples=4096, seed=0)

    np.testing.assert_allclose(indices["S1"], [0, 0, 4 / 3 / variance], atol=0.02)
    np.testing.assert_allclose(indices["ST"], [1 / 9 / variance, 1 / 9 / variance,
                                               4 / 3 / variance], atol=0.02)
    # dy/dx0 = z1 / h0, so vi_0 = E[z1^2] / h0^2 = 1 / (3 h0^2), and so on.
    half = WIDTHS[:3] / 2
    vi = np.array([1 / 3, 1 / 3, 4]) / half**2
    np.testing.assert_allclose(measures["vi"], vi, rtol=0.01)
    np.testing.assert_allclose(measures["dgsm"], vi * WIDTHS[:3] ** 2 / (math.pi**2 * variance),
                               rtol=0.02)


def test_dgsm_interval_is_the_bootstrap_of_the_index_not_of_vi():
    # For a linear map vi is exact, so all the index's uncertainty is Var(y)'s:
    # by the delta method, sd(dgsm) = dgsm sd(s^2) / s^2 with sd(s^2)^2 = (mu4 - s^4) / n.
    model = linear([1.0, 2.0, 0.5, 3.0])
    n = 2048
    measures = sensitivity.dgsm(model, n_samples=n, seed=3, num_resamples=400)
    x = kg.sampling.sample(n, model.bounds, method="sobol", seed=np.random.default_rng(3))
    y = model.predict(x, verbose=0)[:, 0].astype(float)
    s2, mu4 = y.var(), np.mean((y - y.mean()) ** 4)
    expected = 1.959964 * measures["dgsm"] * math.sqrt((mu4 - s2**2) / n) / s2
    np.testing.assert_allclose(measures["dgsm_conf"], expected, rtol=0.2)


def test_several_outputs_give_one_row_of_indices_per_output():
    kernel = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 1.0], [3.0, 0.5]])
    model = linear(kernel)
    indices = sensitivity.sobol(model, n_samples=2048, seed=1)
    measures = sensitivity.dgsm(model, n_samples=2048, seed=1)

    assert all(value.shape == (2, 4) for value in [*indices.values(), *measures.values()])
    for i, slopes in enumerate(slopes_of(kernel)):
        index, bound = closed_form(slopes)
        np.testing.assert_allclose(indices["ST"][i], index, atol=0.015)
        np.testing.assert_allclose(measures["dgsm"][i], bound, rtol=0.02)


def test_an_ensemble_reports_the_mean_models_indices_and_the_members_spread():
    k, d = 3, len(BOUNDS)
    inputs = keras.Input((d,))
    stack = StackedMLP(k, 1, width=4, depth=1, activation="linear", seed=5)
    model = kg.GradINN(keras.Model(inputs, stack(inputs)), "constant", bounds=BOUNDS, seed=0)
    # Each member is linear: its slopes, read by differences of its predictions.
    x = np.array([[0.5, 3.0, 0.0, 10.5]])
    base = model.predict_members(x)[0, :, 0]
    slopes = np.stack([(model.predict_members(x + 0.5 * np.eye(d)[j])[0, :, 0] - base) / 0.5
                       for j in range(d)], axis=1)  # (k, d)
    members = np.array([closed_form(row) for row in slopes])  # (k, 2, d)
    mean_index, mean_bound = closed_form(slopes.mean(axis=0))

    indices = sensitivity.sobol(model, n_samples=4096, seed=2)
    measures = sensitivity.dgsm(model, n_samples=4096, seed=2)

    np.testing.assert_allclose(indices["ST"], mean_index, atol=0.01)
    np.testing.assert_allclose(measures["dgsm"], mean_bound, rtol=0.01)
    np.testing.assert_allclose(indices["ST_members_std"], members[:, 0].std(axis=0, ddof=1),
                               atol=0.01)
    np.testing.assert_allclose(measures["dgsm_members_std"],
                               members[:, 1].std(axis=0, ddof=1), rtol=0.02, atol=1e-3)
    np.testing.assert_allclose(measures["vi_members_std"],
                               (slopes**2).std(axis=0, ddof=1), rtol=1e-3)
    assert measures["dgsm_members_std"].max() > 0.01  # the members do disagree


def test_dgsm_matches_salibs_finite_difference_analysis_of_the_same_surrogate():
    from SALib.analyze import dgsm as salib_dgsm
    from SALib.sample import finite_diff

    bounds = [(1.0, 2.0), (1.0, 3.0), (2.0, 2.5)]
    network = kg.mlp(3, 1, width=16, depth=2, activation="tanh", seed=4)
    model = kg.GradINN(network, "constant", bounds=bounds, seed=0)
    problem = {"num_vars": 3, "names": ["a", "b", "c"], "bounds": [list(b) for b in bounds]}
    x = finite_diff.sample(problem, 4096, delta=0.001, seed=0)
    y = model.predict(x, verbose=0, batch_size=8192)[:, 0].astype(float)
    reference = salib_dgsm.analyze(problem, x, y, seed=1)

    measures = sensitivity.dgsm(model, n_samples=4096, seed=0)

    assert np.ptp(reference["dgsm"]) > 0.1  # the inputs differ, so the check discriminates
    np.testing.assert_allclose(measures["vi"], reference["vi"], rtol=0.05)
    np.testing.assert_allclose(measures["vi_std"], reference["vi_std"], rtol=0.1)
    np.testing.assert_allclose(measures["dgsm"], reference["dgsm"], rtol=0.05)


def test_indices_over_a_smaller_box_follow_its_widths():
    kernel = [1.0, 2.0, 0.5, 3.0]
    box = np.array([(0.0, 0.5), (1.0, 5.0), (-1.0, 1.0), (10.0, 11.0)])
    model = linear(kernel)
    index, bound = closed_form(slopes_of(kernel)[0], box[:, 1] - box[:, 0])
    assert np.abs(index - closed_form(slopes_of(kernel)[0])[0]).max() > 0.05
    np.testing.assert_allclose(sensitivity.sobol(model, n_samples=2048, seed=0, bounds=box)["ST"],
                               index, atol=0.01)
    np.testing.assert_allclose(sensitivity.dgsm(model, n_samples=2048, seed=0, bounds=box)["dgsm"],
                               bound, rtol=0.01)


def test_a_regressor_is_read_through_its_fitted_model_and_seeds_repeat():
    model = linear([1.0, 2.0, 0.0, 3.0])
    estimator = kg.GradINNRegressor()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        sensitivity.dgsm(estimator)
    estimator.model_ = model
    for method in (sensitivity.sobol, sensitivity.dgsm):
        first = method(estimator, n_samples=512, seed=7)
        again = method(model, n_samples=512, seed=7)
        other = method(model, n_samples=512, seed=8)
        for key in first:
            np.testing.assert_array_equal(first[key], again[key])
        assert any(not np.array_equal(first[key], other[key]) for key in first
                   if np.ptp(first[key]) > 0)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda m: sensitivity.dgsm(m, n_samples=1), ValueError, "n_samples must be an integer >= 2"),
    (lambda m: sensitivity.sobol(m, n_samples=1000), ValueError,
     "power of two for the Sobol' design; got 1000 (try 512 or 1024)"),
    (lambda m: sensitivity.dgsm(m, n_samples=64.0), ValueError, "n_samples must be"),
    (lambda m: sensitivity.dgsm(m, conf_level=1.0), ValueError, "conf_level must be"),
    (lambda m: sensitivity.sobol(m, num_resamples=1), ValueError, "num_resamples must be"),
    (lambda m: sensitivity.dgsm(m, seed=-1), ValueError, "seed must be"),
    (lambda m: sensitivity.sobol(m.network), TypeError, "got Sequential"),
    (lambda m: sensitivity.dgsm(m, bounds=[(0, 1)] * 3), ValueError,
     "bounds must have shape (4, 2), one (low, high) per input of the model; got shape (3, 2)"),
    (lambda m: sensitivity.sobol(m, bounds=[(0, 1), (0, 5), (-2, 2), (10, 11)]), ValueError,
     "input 'x1' has (0.0, 5.0), outside (1.0, 5.0)"),
])
def test_bad_arguments_are_refused_by_name(call, error, fragment):
    model = linear([1.0, 2.0, 0.0, 3.0])
    with pytest.raises(error, match=re.escape(fragment)):
        call(model)


def test_a_constant_output_gets_nan_indices_with_a_warning():
    model = linear(np.array([[1.0, 0.0]] * 4), output_labels=["moving", "flat"])
    with pytest.warns(UserWarning, match=r"\['flat'\] are constant"):
        indices = sensitivity.sobol(model, n_samples=256, seed=0)
    with pytest.warns(UserWarning, match=r"\['flat'\] are constant"):
        measures = sensitivity.dgsm(model, n_samples=256, seed=0)
    assert np.isnan(indices["ST"][1]).all() and np.isnan(measures["dgsm"][1]).all()
    assert np.isfinite(indices["ST"][0]).all() and np.isfinite(measures["dgsm"][0]).all()
    np.testing.assert_array_equal(measures["vi"][1], 0)


def test_dgsm_draws_inside_a_non_box_domain_and_sobol_warns_it_leaves_it():
    def contains(x):
        return x[:, 0] <= 0.5

    model = linear([1.0, 2.0, 0.0, 3.0], contains=contains)
    assert model.contains is contains and linear([1.0, 2.0, 0.0, 3.0]).contains is None
    seen = []
    members = model.predict_members

    def spy(x, **kwargs):
        seen.append(np.array(x))
        return members(x, **kwargs)

    model.predict_members = spy
    sensitivity.dgsm(model, n_samples=300, seed=0)
    assert len(seen[0]) == 300 and contains(seen[0]).all()
    with pytest.warns(UserWarning, match="outside its domain"):
        sensitivity.sobol(model, n_samples=256, seed=0)


@pytest.fixture
def main_in_process(capsys):
    from keras_gradinn.cli import main

    def call(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def test_the_command_prints_and_writes_the_librarys_indices(tmp_path, main_in_process):
    kernel = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 1.0], [3.0, 0.5]])
    model = linear(kernel, input_labels=["load", "span", "colour", "depth"],
                   output_labels=["stress", "sag"])
    model.save(tmp_path / "model.keras")
    out = tmp_path / "new" / "sensitivity"

    code, stdout, _ = main_in_process("sensitivity", tmp_path / "model.keras", "--samples", "512",
                                      "--seed", "3", "--out", out)

    assert code == 0
    expected = {**sensitivity.sobol(model, n_samples=512, seed=3),
                **sensitivity.dgsm(model, n_samples=512, seed=3)}
    lines = stdout.splitlines()
    assert lines[0].split() == ["output", "input", "S1", "S1_conf", "ST", "ST_conf", "dgsm",
                                "dgsm_conf"]
    assert lines[4].split() == ["stress", "depth", *(f"{expected[key][0, 3]:.4f}" for key in (
        "S1", "S1_conf", "ST", "ST_conf", "dgsm", "dgsm_conf"))]
    with open(out / "sensitivity.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["output"], r["input"]) for r in rows[:5]] == [
        ("stress", "load"), ("stress", "span"), ("stress", "colour"), ("stress", "depth"),
        ("sag", "load")]
    for key in ("S1", "ST", "vi", "dgsm", "dgsm_conf"):
        np.testing.assert_array_equal([float(r[key]) for r in rows], expected[key].ravel())
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.parent.iterdir()) == ["sensitivity"]


def test_the_command_analyses_the_box_of_a_bounds_file(tmp_path, main_in_process):
    model = linear([1.0, 2.0, 0.5, 3.0])
    model.save(tmp_path / "model.keras")
    box = [(0.0, 0.5), (1.0, 5.0), (-1.0, 1.0), (10.0, 11.0)]
    (tmp_path / "box.csv").write_text("input,low,high\n" + "".join(
        f"x{j},{low},{high}\n" for j, (low, high) in enumerate(box)))

    code, stdout, _ = main_in_process("sensitivity", tmp_path / "model.keras", "--method",
                                      "dgsm", "--samples", "300", "--bounds", tmp_path / "box.csv")

    assert code == 0
    expected = sensitivity.dgsm(model, n_samples=300, seed=0, bounds=box)["dgsm"]
    assert [line.split()[2] for line in stdout.splitlines()[1:]] == [f"{v:.4f}" for v in expected]


@pytest.mark.parametrize("args, fragment", [
    (["--samples", "1"], "--samples must be at least 2; got 1"),
    (["--samples", "1000"], "power of two for Sobol' indices; got 1000"),
    (["--samples", "1000", "--method", "sobol"], "power of two"),
    (["--seed", "-4"], "--seed must be a non-negative integer; got -4"),
    (["--bounds", "wide.csv"], "input 'x0' has (-1.0, 1.0), outside (0.0, 1.0)"),
    (["--bounds", "missing.csv"], "missing.csv: no such file"),
])
def test_the_command_refuses_bad_input_and_writes_nothing(tmp_path, main_in_process, args,
                                                          fragment):
    linear([1.0, 2.0, 0.0, 3.0]).save(tmp_path / "model.keras")
    (tmp_path / "wide.csv").write_text("input,low,high\nx0,-1,1\nx1,1,5\nx2,-2,2\nx3,10,11\n")
    before = sorted(tmp_path.rglob("*"))
    code, stdout, stderr = main_in_process(
        "sensitivity", tmp_path / "model.keras",
        *(tmp_path / a if a.endswith(".csv") else a for a in args),
        "--out", tmp_path / "out" / "deeper")
    assert code == 1 and stdout == ""
    assert stderr.startswith("keras-gradinn: error: ") and fragment in stderr, stderr
    assert sorted(tmp_path.rglob("*")) == before


def test_the_command_refuses_an_unknown_method_and_a_missing_model(tmp_path, main_in_process):
    with pytest.raises(SystemExit) as caught:
        main_in_process("sensitivity", tmp_path / "m.keras", "--method", "morris")
    assert caught.value.code == 2
    code, _, stderr = main_in_process("sensitivity", tmp_path / "m.keras", "--out", tmp_path / "o")
    assert code == 1 and "m.keras: no such model file" in stderr
    assert list(tmp_path.iterdir()) == []


def test_the_command_is_listed_and_has_help_with_examples(capsys):
    from keras_gradinn.cli import COMMANDS, main

    assert "sensitivity" in COMMANDS
    with pytest.raises(SystemExit) as exited:
        main(["sensitivity", "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "examples:" in out and "--bounds FILE" in out
