"""The `keras-gradinn` command line, run for real through its console script."""

import csv
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import SUBPROCESS_TIMEOUT

import keras_gradinn as kg
from keras_gradinn import demo, plots
from keras_gradinn.cli import fit as fit_command
from keras_gradinn.uncertainty import coverage, gaussian_nll

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = pathlib.Path(sys.executable).parent / "keras-gradinn"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY = ["--steps", "4", "--cv-steps", "2", "--width", "8", "--depth", "1", "--n-collocation", "16",
        "--quiet"]


def run(*args, cwd=ROOT, timeout=SUBPROCESS_TIMEOUT):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=cwd)


def cli(*args, **kwargs):
    return run(SCRIPT, *args, **kwargs)


def write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def measurements(path, n=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform([0.0, 10.0], [1.0, 20.0], size=(n, 2))
    y = np.stack([np.sin(3 * x[:, 0]) + x[:, 1] / 10, x[:, 0] * x[:, 1]], axis=1)
    return write_csv(path, ["a", "b", "u", "v"], np.concatenate([x, y], axis=1).tolist())


class Result:
    """What `main` returned and printed, shaped like `subprocess.CompletedProcess`."""

    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def main_in_process(capsys):
    """Runs the command line in this process: the same code path, without a TF start-up."""
    from keras_gradinn.cli import main

    def call(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def assert_clean_failure(result, fragment):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("keras-gradinn: error: ") and fragment in last, last


def test_fit_predict_info_export_end_to_end(tmp_path, main_in_process):
    data = measurements(tmp_path / "data.csv")
    run_dir = tmp_path / "runs" / "first"
    fitted = cli("fit", data, "--inputs", "a,b", "--targets", "u,v", "--out", run_dir,
                 "--validation-split", "0.2", *TINY)
    assert fitted.returncode == 0, fitted.stderr[-2000:]
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "calibration.png", "config.toml", "loss.png", "metrics.json", "model.keras", "parity.png",
        "slices.png"]
    for picture in ("calibration.png", "loss.png", "parity.png", "slices.png"):
        assert (run_dir / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["train_rmse"]) == {"u", "v"} and metrics["n_validation"] == 6
    assert metrics["steps"] == metrics["final_steps"] == 4
    assert metrics["versions"]["keras_gradinn"] == kg.__version__
    # The default prior is chosen by cross-validation, and the choice is reported.
    scores = {name: -c["mean_test_score"] for name, c in metrics["cross_validation"].items()}
    assert set(scores) == {"none", "kernel", "smooth", "stiff"}
    assert metrics["prior"] == min(scores, key=scores.get)

    points = write_csv(tmp_path / "points.csv", ["b", "a"], [[12.0, 0.5], [15.0, 0.25]])
    predicted = main_in_process("predict", run_dir / "model.keras", points, "--gradient",
                                "--out", tmp_path / "pred.csv")
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    with open(tmp_path / "pred.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["a", "b", "u", "v", "du/da", "du/db", "dv/da", "dv/db"]
    table = np.array(rows[1:], dtype=np.float64)
    model = keras.models.load_model(run_dir / "model.keras")
    x = np.array([[0.5, 12.0], [0.25, 15.0]])
    np.testing.assert_allclose(table[:, :2], x)
    np.testing.assert_allclose(table[:, 2:4], model.predict(x, verbose=0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(table[:, 4:], model.predict_gradient(x).reshape(2, 4),
                               rtol=0, atol=1e-6)
    assert_std_columns(main_in_process, run_dir / "model.keras", points, tmp_path / "std.csv",
                       model, x)
    assert_validation_uncertainty(run_dir, model, metrics)

    described = main_in_process("info", run_dir / "model.keras")
    assert described.returncode == 0, described.stderr[-2000:]
    assert "a " in described.stdout and "bounds [" in described.stdout
    assert "validation rmse: u" in described.stdout
    assert f"choice: {metrics['prior']}, by 5-fold cross-validation" in described.stdout
    assert "<- chosen" in described.stdout

    exported = cli("export", run_dir / "model.keras", "--onnx", tmp_path / "m.onnx",
                   "--saved-model", tmp_path / "serving", "--with-gradient")
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert (tmp_path / "m.onnx").is_file()
    assert (tmp_path / "serving" / "1" / "saved_model.pb").is_file()

    again = cli("fit", "--config", run_dir / "config.toml", "--out", tmp_path / "runs" / "again",
                "--quiet")
    assert again.returncode == 0, again.stderr[-2000:]
    repeated = json.loads((tmp_path / "runs" / "again" / "metrics.json").read_text())
    for key in ("train_rmse", "validation_rmse", "train_data_loss", "train_gradient_loss"):
        assert repeated[key] == metrics[key]


def read_prediction_csv(path):
    with open(path) as handle:
        rows = list(csv.reader(handle))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def assert_std_columns(main_in_process, model_path, points, out, model, x):
    """`predict --std --gradient`: the standard deviations of `GradINN.predict` and
    `predict_gradient` (return_std=True), each block after the columns it belongs to."""
    result = main_in_process("predict", model_path, points, "--gradient", "--std", "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    header, table = read_prediction_csv(out)
    assert header == ["a", "b", "u", "v", "u_std", "v_std", "du/da", "du/db", "dv/da", "dv/db",
                      "du/da_std", "du/db_std", "dv/da_std", "dv/db_std"]
    std = model.predict(x, return_std=True)[1]
    jacobian_std = model.predict_gradient(x, return_std=True)[1].reshape(len(x), -1)
    assert (std > 0).all() and (jacobian_std > 0).all()  # five members: a spread to show
    np.testing.assert_allclose(table[:, 2:4], model.predict(x, verbose=0), rtol=0, atol=1e-6)
    np.testing.assert_allclose(table[:, 4:6], std, rtol=1e-6, atol=0)
    np.testing.assert_allclose(table[:, 6:10], model.predict_gradient(x).reshape(len(x), -1),
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(table[:, 10:], jacobian_std, rtol=1e-6, atol=0)


def assert_validation_uncertainty(run_dir, model, metrics):
    """metrics.json holds the validation rows' 90 % coverage and NLL per target, and
    calibration.png shows the validation rows' curve, not the cross-validation's."""
    config = fit_command.resolve_config(run_dir / "config.toml", {})
    data = fit_command.read_training_data(config)
    mean, std = model.predict(data.x_val, verbose=0), model.predict(data.x_val,
                                                                     return_std=True)[1]
    for i, name in enumerate(["u", "v"]):
        assert metrics["validation_coverage_90"][name] == coverage(data.y_val[:, i], mean[:, i],
                                                                  std[:, i])
        np.testing.assert_allclose(metrics["validation_nll"][name],
                                   gaussian_nll(data.y_val[:, i], mean[:, i], std[:, i]),
                                   rtol=1e-6)
    curves = fit_command.calibration_curves(data, fit_command.predict_rows(model, data),
                                            model.metadata["calibration_results"])
    assert list(curves) == ["validation rows (6)"]
    levels, observed = curves["validation rows (6)"]
    assert levels[17] == pytest.approx(0.9)
    assert observed[17] == pytest.approx(np.mean([metrics["validation_coverage_90"][n]
                                                  for n in ("u", "v")]))


def recorded(monkeypatch, name):
    """Calls of `plots.<name>` (which still draws), as (args, kwargs)."""
    calls, original = [], getattr(plots, name)

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(plots, name, record)
    return calls


def test_predict_names_rows_outside_the_bounds(tmp_path, main_in_process, monkeypatch):
    data = measurements(tmp_path / "data.csv")
    parity, calibration = recorded(monkeypatch, "parity"), recorded(monkeypatch, "calibration")
    main_in_process("fit", data, "--inputs", "a,b", "--targets", "u", "--out", tmp_path / "run",
                    "--prior", "smooth", *TINY)
    # Without validation rows: interval bars on the training rows, and the
    # calibration curve of the cross-validation's held-out folds.
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    x = np.loadtxt(data, delimiter=",", skiprows=1)[:, :2]
    np.testing.assert_allclose(parity[0][1]["train_std"], model.predict(x, return_std=True)[1],
                               rtol=1e-6)
    assert (tmp_path / "run" / "calibration.png").is_file()
    results = model.metadata["calibration_results"]
    [((_, curves), _)] = calibration
    levels, observed = curves["held-out folds of the cross-validation"]
    assert levels.tolist() == results["levels"] and observed.tolist() == results["observed"]
    points = write_csv(tmp_path / "points.csv", ["a", "b"], [[0.5, 12.0], [5.0, 12.0], [0.5, 99.0]])
    result = main_in_process("predict", tmp_path / "run" / "model.keras", points,
                             "--out", tmp_path / "p.csv")
    assert result.returncode == 0
    assert "2 row(s) lie outside the model's bounds" in result.stderr
    assert "row(s) 3, 4 of" in result.stderr  # file lines of the two bad rows
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize(
    "rows, header, args, fragment",
    [
        (None, None, ["--inputs", "a,b", "--targets", "u"], "no such file"),
        ([[0.1, 11, 1]] * 5, ["a", "b", "u"], ["--inputs", "a,bb", "--targets", "u"],
         "no column 'bb' for the inputs; did you mean 'b'?"),
        ([[0.1, 11, 1], [0.2, "twelve", 2], [0.3, 13, 3], [0.4, 14, 5]], ["a", "b", "u"],
         ["--inputs", "a,b", "--targets", "u"], "row 3, column 'b' holds 'twelve'"),
        ([[0.1, 11, 1], [0.2, 12, ""], [0.3, 13, 3], [0.4, 14, 5]], ["a", "b", "u"],
         ["--inputs", "a,b", "--targets", "u"], "row 3, column 'u' is empty"),
        ([[0.1, 11, 1], [0.2, 12, "nan"], [0.3, 13, 3], [0.4, 14, 5]], ["a", "b", "u"],
         ["--inputs", "a,b", "--targets", "u"], "row 3, column 'u' is empty"),
        ([[0.1, 11, 1], [0.2, 12, 2]], ["a", "b", "u"],
         ["--inputs", "a,b", "--targets", "u", "--validation-split", "0"],
         "2 training rows for 2 inputs; need at least 3"),
        ([[0.1, 11, 1, 2]] * 5, ["a", "b", "a", "u"], ["--inputs", "a,b", "--targets", "u"],
         "duplicate column name(s) 'a'"),
        ([[0.1 * i, 11 + i, 7.0] for i in range(8)], ["a", "b", "u"],
         ["--inputs", "a,b", "--targets", "u"], "target 'u' is constant"),
    ],
    ids=["missing-file", "misspelt-column", "non-numeric", "empty-cell", "nan-cell",
         "too-few-rows", "duplicate-columns", "constant-target"],
)
def test_fit_rejects_bad_data_in_one_line_and_writes_nothing(tmp_path, main_in_process, rows,
                                                             header, args, fragment):
    data = tmp_path / "data.csv"
    if rows is not None:
        write_csv(data, header, rows)
    result = main_in_process("fit", data, *args, "--out", tmp_path / "runs" / "r", *TINY)
    assert_clean_failure(result, fragment)
    assert not (tmp_path / "runs").exists()


def test_parity_bars_are_the_90_percent_intervals_of_the_points_given_a_std(tmp_path):
    rng = np.random.default_rng(0)
    measured, predicted = rng.normal(size=(2, 7, 2))
    std = rng.uniform(0.1, 0.5, size=(7, 2))
    figure = plots.parity(tmp_path / "a.png", ["u", "v"], (measured, predicted),
                          (measured[:3], predicted[:3]), validation_std=std[:3])
    for i, axis in enumerate(figure.axes):
        (bars,) = axis.containers  # the validation points' only
        segments = np.array(bars.lines[2][0].get_segments())  # (points, ends, xy)
        np.testing.assert_allclose(segments[:, :, 0], measured[:3, i, None].repeat(2, 1))
        np.testing.assert_allclose(segments[:, :, 1], predicted[:3, i, None]
                                   + np.array([-1, 1]) * 1.6448536 * std[:3, i, None],
                                   rtol=1e-6)
        # The frame holds every bar whole.
        assert axis.get_ylim()[1] > (predicted[:3, i] + 1.645 * std[:3, i]).max()
    assert not any(a.containers for a in plots.parity(
        tmp_path / "b.png", ["u", "v"], (measured, predicted)).axes)
    # One calibrated network's standard deviation is its floor, possibly 0: still a plot.
    plots.parity(tmp_path / "c.png", ["u", "v"], (measured, predicted), train_std=0 * std)
    figure = plots.calibration(tmp_path / "d.png", {"rows": ([0.1, 0.5, 0.9], [0.0, 0.3, 0.8])})
    lines = figure.axes[0].get_lines()
    assert [np.asarray(line.get_ydata()).tolist() for line in lines] == [[0, 1], [0, 0.3, 0.8]]
    assert all((tmp_path / f"{n}.png").read_bytes()[:4] == b"\x89PNG" for n in "abcd")


def test_predict_std_of_one_uncalibrated_network_is_zeros_and_names_must_not_clash(
        tmp_path, main_in_process):
    network = kg.mlp(2, 1, width=8, depth=1)
    kg.GradINN(network, "smooth", bounds=[(0, 1), (0, 1)], input_labels=["a", "b"],
               output_labels=["u"]).save(tmp_path / "one.keras")
    points = write_csv(tmp_path / "p.csv", ["a", "b"], [[0.5, 0.5], [0.1, 0.2]])
    result = main_in_process("predict", tmp_path / "one.keras", points, "--std", "--gradient",
                             "--out", tmp_path / "o.csv")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "its standard deviations are 0" in result.stderr
    header, table = read_prediction_csv(tmp_path / "o.csv")
    assert header == ["a", "b", "u", "u_std", "du/da", "du/db", "du/da_std", "du/db_std"]
    assert (table[:, [3, 6, 7]] == 0).all()

    kg.GradINN(network, "smooth", bounds=[(0, 1), (0, 1)], input_labels=["u_std", "b"],
               output_labels=["u"]).save(tmp_path / "clash.keras")
    points = write_csv(tmp_path / "q.csv", ["u_std", "b"], [[0.5, 0.5]])
    clashing = main_in_process("predict", tmp_path / "clash.keras", points, "--std",
                               "--out", tmp_path / "clash.csv")
    assert_clean_failure(clashing, "output column name(s) ['u_std'] would appear twice")
    assert not (tmp_path / "clash.csv").exists()
    plain = main_in_process("predict", tmp_path / "clash.keras", points, "--out",
                            tmp_path / "plain.csv")
    assert plain.returncode == 0 and read_prediction_csv(tmp_path / "plain.csv")[0] == [
        "u_std", "b", "u"]


@pytest.mark.parametrize(
    "bounds, fragment",
    [
        ([["input", "low"], ["a", 0]], "header 'input,low,high'"),
        ([["input", "low", "high"], ["a", 0, 1]], "one row per input (a, b)"),
        ([["input", "low", "high"], ["a", 0, 1], ["b", 30, 10]], "input 'b' needs finite bounds"),
    ],
)
def test_fit_rejects_a_bad_bounds_file(tmp_path, main_in_process, bounds, fragment):
    data = measurements(tmp_path / "data.csv")
    write_csv(tmp_path / "bounds.csv", bounds[0], bounds[1:])
    result = main_in_process("fit", data, "--inputs", "a,b", "--targets", "u", "--bounds",
                 tmp_path / "bounds.csv", "--out", tmp_path / "run", *TINY)
    assert_clean_failure(result, fragment)
    assert not (tmp_path / "run").exists()


def test_fit_refuses_a_non_empty_run_dir_without_overwrite(tmp_path, main_in_process):
    data = measurements(tmp_path / "data.csv")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("keep me")
    args = ["fit", data, "--inputs", "a,b", "--targets", "u", "--out", run_dir, "--prior",
            "smooth", *TINY]
    result = main_in_process(*args)
    assert_clean_failure(result, "exists and is not empty; pass --overwrite")
    assert [p.name for p in run_dir.iterdir()] == ["notes.txt"]
    replaced = main_in_process(*args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert "notes.txt" not in [p.name for p in run_dir.iterdir()]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_fit_with_a_fixed_prior_and_weight_skips_the_choice(tmp_path, main_in_process):
    data = measurements(tmp_path / "data.csv")
    args = ["fit", data, "--inputs", "a,b", "--targets", "u", *TINY]
    result = main_in_process(*args, "--prior", "stiff", "--gradient-weight", "0.5",
                             "--members", "1", "--no-calibrate", "--validation-split", "0.2",
                             "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    # One network, not calibrated: no standard deviation, so no calibration.png
    # and no interval scores, even with validation rows.
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "config.toml", "loss.png", "metrics.json", "model.keras", "parity.png", "slices.png"]
    assert "calibrate = false" in (tmp_path / "run" / "config.toml").read_text()
    model = keras.models.load_model(tmp_path / "run" / "model.keras", safe_mode=True)
    assert model.gradient_weight == 0.5
    assert model.prior.get_layer("field").width == 8  # the stiff prior: 8 tanh units
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["prior"] == "stiff" and metrics["cross_validation"] is None
    assert metrics["validation_rmse"] and metrics["validation_coverage_90"] is None
    assert metrics["validation_nll"] is None
    assert 'prior = "stiff"' in (tmp_path / "run" / "config.toml").read_text()
    for flags, fragment in [(["--gradient-weight", "0.5"], "gradient-weight needs a fixed --prior"),
                            (["--prior", "none", "--gradient-weight", "0.5"],
                             "prior='none' has no gradient term")]:
        assert_clean_failure(main_in_process(*args, *flags, "--out", tmp_path / "bad"), fragment)
        assert not (tmp_path / "bad").exists()


def gradient_measurements(path, n=30, seed=0):
    """`measurements` of u with its observed derivative du/da (every third cell empty: not
    observed), and a du/db column a run may leave unlisted. Returns x and du/da."""
    rng = np.random.default_rng(seed)
    x = rng.uniform([0.0, 10.0], [1.0, 20.0], size=(n, 2))
    u = np.sin(3 * x[:, 0]) + x[:, 1] / 10
    du_da = np.where(np.arange(n) % 3 == 0, np.nan, 3 * np.cos(3 * x[:, 0]))
    rows = [[*xi, ui, "" if np.isnan(g) else g, 0.1] for xi, ui, g in zip(x, u, du_da)]
    write_csv(path, ["a", "b", "u", "du/da", "du/db"], rows)
    return x, du_da


def test_fit_trains_on_observed_derivatives_and_records_them(tmp_path, main_in_process):
    data = tmp_path / "data.csv"
    x, du_da = gradient_measurements(data)
    seen = ~np.isnan(du_da)
    run_dir = tmp_path / "run"
    # No prior: the only information about the gradient is in the values and the derivatives.
    result = main_in_process(
        "fit", data, "--inputs", "a,b", "--targets", "u", "--gradients", "du/da",
        "--derivative-weight", "2", "--prior", "none", "--steps", "100", "--learning-rate", "0.01",
        "--width", "16", "--depth", "2", "--members", "1", "--no-calibrate",
        "--validation-split", "0.2", "--quiet", "--out", run_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "du/da: RMSE training" in result.stdout
    config = fit_command.resolve_config(run_dir / "config.toml", {})
    assert config["gradients"] == ["du/da"] and config["derivative_weight"] == 2.0
    model = keras.models.load_model(run_dir / "model.keras")
    assert model.derivative_weight == 2.0
    # The same recipe on the values alone learns the derivative less well.
    plain = dict(config, gradients=None, derivative_weight=None)
    rows = fit_command.read_training_data(plain)
    values = fit_command.build_estimator(plain, rows.bounds, quiet=True)
    values.fit(rows.x_train, rows.y_train)
    errors = [float(np.sqrt(np.mean((m.predict_gradient(x[seen])[:, 0, 0] - du_da[seen])**2)))
              for m in (model, values)]
    assert errors[0] < 0.5 * errors[1], errors

    metrics = json.loads((run_dir / "metrics.json").read_text())
    observed = fit_command.read_training_data(config).dy_dx_train
    assert metrics["n_observed_derivatives"] == np.isfinite(observed).sum() < seen.sum()
    assert list(metrics["train_derivative_rmse"]) == ["du/da"]
    assert metrics["train_derivative_loss"] > 0
    described = main_in_process("info", run_dir / "model.keras").stdout
    assert f"observed derivatives: {metrics['n_observed_derivatives']} entries, weight 2" \
        in described
    assert "train derivative rmse: du/da" in described


def test_gradient_columns_fill_their_slots_and_a_validation_file_needs_none(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(12, 2))
    y = np.stack([x[:, 0] + x[:, 1], x[:, 0] * x[:, 1]], axis=1)
    dv_da, du_da = x[:, 1].copy(), np.ones(12)
    du_da[[2, 7]] = np.nan
    columns = np.concatenate([x, y, dv_da[:, None], du_da[:, None], -np.ones((12, 1))], axis=1)
    write_csv(tmp_path / "data.csv", ["a", "b", "u", "v", "dv/da", "du/da", "du/db"],
              [["" if np.isnan(v) else v for v in row] for row in columns])
    (tmp_path / "run.toml").write_text(
        f'data = "{tmp_path / "data.csv"}"\ninputs = ["a", "b"]\ntargets = ["u", "v"]\n'
        'gradients = ["dv/da", "du/da"]\nvalidation_split = 0.25\n')
    config = fit_command.resolve_config(tmp_path / "run.toml", {})
    assert config["derivative_weight"] == 1.0  # the estimator's default
    data = fit_command.read_training_data(config)
    # The split takes each row's derivatives with its values.
    rows = [int(np.flatnonzero((x == row).all(axis=1))[0]) for row in data.x_train]
    assert len(rows) == 9
    g = data.dy_dx_train
    np.testing.assert_array_equal(g[:, 1, 0], dv_da[rows])
    np.testing.assert_array_equal(g[:, 0, 0], du_da[rows])  # NaN where the cell was empty
    assert np.isnan(g[:, 0, 1]).all() and np.isnan(g[:, 1, 1]).all()  # du/db is not listed
    # A validation file with the values only: the derivatives are all the file's rows'.
    write_csv(tmp_path / "held.csv", ["a", "b", "u", "v"], np.c_[x, y][:4].tolist())
    config = fit_command.resolve_config(tmp_path / "run.toml", {
        "validation": str(tmp_path / "held.csv"), "validation_split": 0.0})
    data = fit_command.read_training_data(config)
    assert data.dy_dx_train.shape == (12, 2, 2) and len(data.x_val) == 4
    np.testing.assert_array_equal(data.dy_dx_train[:, 0, 0], du_da)


def test_config_file_errors_are_one_line(tmp_path, main_in_process):
    (tmp_path / "run.toml").write_text(
        'data = "d.csv"\ninputs = ["a"]\ntargets = ["u"]\nstep = 3\n')
    result = main_in_process("fit", "--config", tmp_path / "run.toml", "--out", tmp_path / "run")
    assert_clean_failure(result, "unknown option 'step'; did you mean 'steps'?")


@pytest.mark.parametrize("content", [b"not a zip file", None])
def test_commands_refuse_a_file_that_is_not_a_gradinn_model(tmp_path, main_in_process, content):
    path = tmp_path / "model.keras"
    if content is None:
        inputs = keras.Input(shape=(2,))
        keras.Model(inputs, keras.layers.Dense(1)(inputs)).save(path)
        fragment = "holds a Keras Functional, not a keras_gradinn GradINN model"
    else:
        path.write_bytes(content)
        fragment = "not a readable .keras model file"
    assert_clean_failure(main_in_process("info", path), fragment)
    points = write_csv(tmp_path / "p.csv", ["x0", "x1"], [[0.0, 0.0]])
    assert_clean_failure(main_in_process("predict", path, points, "--out", tmp_path / "o.csv"),
                         fragment)
    assert not (tmp_path / "o.csv").exists()


class Payload:
    """Unpickling this runs `os.mkdir(path)`: a stand-in for any code a pickle can carry."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def smuggle_a_lambda(path, marker):
    """Replaces the first Dense layer of the GradINN in `path` by a `Lambda` whose
    (marshalled) code creates `marker` when it runs and keeps the shapes valid."""
    import zipfile

    code = (f"lambda x: __import__('pathlib').Path({str(marker)!r}).touch() "
            f"or __import__('keras').ops.tile(x, (1, 4))")
    layer = keras.layers.Lambda(eval(code), name="hidden_0").get_config()
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    dense = next(layer for layer in config["config"]["network"]["config"]["layers"]
                 if layer["class_name"] == "Dense")
    dense.update(class_name="Lambda", module="keras.layers", config=layer)
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)


def test_commands_refuse_smuggled_code_and_pickles_without_running_them(tmp_path,
                                                                        main_in_process):
    model = kg.GradINN(kg.mlp(2, 1, width=8, depth=1), "smooth", bounds=[(0, 1), (0, 1)])
    model.save(tmp_path / "good.keras")
    model.save(tmp_path / "evil.keras")
    ran = tmp_path / "ran"  # created by the smuggled code if it ever runs
    smuggle_a_lambda(tmp_path / "evil.keras", ran)
    np.savez(tmp_path / "evil.npz", x0=np.array([Payload(ran)], dtype=object),
             x1=np.array([0.5]))
    points = write_csv(tmp_path / "p.csv", ["x0", "x1"], [[0.5, 0.5]])
    out = tmp_path / "o.csv"

    lambda_refused = "not a readable .keras model file (Requested the deserialization of a `Lambda`"
    assert_clean_failure(main_in_process("info", tmp_path / "evil.keras"), lambda_refused)
    assert_clean_failure(main_in_process("predict", tmp_path / "evil.keras", points,
                                         "--out", out), lambda_refused)
    pickle_refused = "not a readable NPZ file (Object arrays cannot be loaded"
    assert_clean_failure(main_in_process("predict", tmp_path / "good.keras", tmp_path / "evil.npz",
                                         "--out", out), pickle_refused)
    assert_clean_failure(main_in_process("fit", tmp_path / "evil.npz", "--inputs", "x0",
                                         "--targets", "x1", "--out", tmp_path / "run", *TINY),
                         pickle_refused)
    assert not ran.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "evil.keras", "evil.npz", "good.keras", "p.csv"]
    # The good model and points do work: the refusals above are about the files.
    assert main_in_process("predict", tmp_path / "good.keras", points, "--out", out).returncode == 0


def test_friedman_function_values():
    x = np.array([[0.5] * 5, [0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0.5, 1.0, 1.0, 1.0]])
    expected = [10 * np.sin(np.pi / 4) + 7.5, 5.0, 10.0 + 5.0 + 10.0 + 5.0]
    np.testing.assert_allclose(demo.friedman(x)[:, 0], expected, rtol=1e-12)


def test_demo_run_trains_both_models_on_a_tiny_budget():
    results = demo.run(n=40, steps=30, seed=1, verbose=False)
    assert set(results) == {"GradINN", "plain network"}
    for result in results.values():
        # Friedman's test targets have a standard deviation near 5: an
        # untrained or broken model is far off, 30 steps already help.
        assert 0.0 < result["rmse"] < 5.0
    assert 0.0 <= results["GradINN"]["coverage"] <= 1.0  # calibrated; the baseline is not
    assert "coverage" not in results["plain network"]


def test_console_script_version_and_help(capsys):
    from keras_gradinn.cli import main

    version = cli("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"keras-gradinn {kg.__version__}"
    helped = run(sys.executable, "-m", "keras_gradinn", "fit", "--help")
    assert helped.returncode == 0 and "example:" in helped.stdout
    for command in ("fit", "predict", "info", "export", "demo", "perf", "bench"):
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0 and re.search(r"examples?:", capsys.readouterr().out), \
            command


def test_console_script_demo_prints_both_rmses_and_writes_its_files(tmp_path):
    result = cli("demo", "--n", "30", "--steps", "20", "--out", tmp_path / "demo")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if "test RMSE" in line]
    assert [line.split(":")[0].strip() for line in lines] == ["GradINN", "plain network"]
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "friedman.onnx", "test_predictions.png"]


@pytest.mark.parametrize(
    "args", [["demo", "--steps", "0"], ["demo", "--n", "1"], ["demo", "--noise", "-1"]]
)
def test_demo_rejects_bad_arguments_with_one_line(main_in_process, args):
    assert_clean_failure(main_in_process(*args), "need --n >= 2")


def test_the_real_script_reports_bad_input_without_a_traceback(tmp_path):
    write_csv(tmp_path / "data.csv", ["a", "b", "u"], [[0.1, 11, 1], [0.2, "x", 2]])
    result = cli("fit", tmp_path / "data.csv", "--inputs", "a,b", "--targets", "u",
                 "--out", tmp_path / "run")
    assert_clean_failure(result, "row 3, column 'b' holds 'x'")
    assert not (tmp_path / "run").exists()


def test_unknown_command_is_a_usage_error():
    result = cli("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_friedman_example_runs_end_to_end():
    result = run(sys.executable, "examples/friedman.py", "--steps", "20")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test RMSE: value" in result.stdout
    assert "reloaded predictions identical: True" in result.stdout


def test_surrogate_example_runs_end_to_end():
    result = run(sys.executable, "examples/surrogate.py", "--steps", "40")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "chosen: " in result.stdout and "test RMSE: value" in result.stdout
    assert "reloaded predictions identical: True" in result.stdout


FAULTS = ROOT / "tests" / "fault_injection.py"
# 501 steps are cut into 3 epochs of 167 (`training.epoch_steps`), each
# checkpointed (`--checkpoint-seconds 0`): a run with several resume points.
RESUMABLE = ["--steps", "501", "--cv-steps", "2", "--members", "1", "--width", "8", "--depth",
             "1", "--n-collocation", "16", "--checkpoint-seconds", "0", "--quiet"]


def killed(pattern, nth, *args, epochs=None):
    """Runs the command line in a new process that SIGKILLs itself just before the `nth`
    rename onto a name matching `pattern` (see `tests/fault_injection.py`); with
    `epochs`, the process appends each final-fit epoch it trains to that file."""
    log = [] if epochs is None else ["--epochs", epochs]
    result = run(sys.executable, FAULTS, pattern, nth, *log, "--", *args)
    assert result.returncode == -signal.SIGKILL, (result.returncode, result.stderr[-2000:])
    return result


@pytest.fixture
def trained_epochs(monkeypatch):
    """The final-fit epochs that `main_in_process` trains, in order (cleared by the test)."""
    from keras_gradinn import checkpoints

    epochs = []
    original = checkpoints.Checkpointer.on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        epochs.append(epoch)
        return original(self, epoch, logs)

    monkeypatch.setattr(checkpoints.Checkpointer, "on_epoch_end", on_epoch_end)
    return epochs


def assert_same_run(first, second):
    """Every weight and every metric of two run directories agree, bit for bit, except
    the clocks (training time, each candidate's fit time)."""
    a, b = (keras.models.load_model(run / "model.keras", safe_mode=True) for run in (first, second))
    assert len(a.get_weights()) == len(b.get_weights())
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    metrics = []
    for run in (first, second):
        values = json.loads((run / "metrics.json").read_text())
        del values["train_seconds"]
        for scores in (values["cross_validation"] or {}).values():
            del scores["fit_time"]
        metrics.append(values)
    assert metrics[0] == metrics[1]


def left_behind(root):
    """Every file under `root` (hidden ones included) but the test's own inputs and logs."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".csv", ".log"))


def assert_info_works_or_refuses(main_in_process, paths):
    """`info` on each file either describes a model or refuses it in one line."""
    assert paths
    for path in paths:
        result = main_in_process("info", path)
        if result.returncode != 0:
            assert_clean_failure(result, str(path))


def test_a_fit_killed_midway_resumes_to_the_uninterrupted_weights(tmp_path, main_in_process,
                                                                  trained_epochs):
    """SIGKILL at three deterministic points (a checkpoint, model.keras, the run
    directory's rename); each --resume continues from where the last left off, and
    the end is the uninterrupted run, bit for bit. Training is deterministic, so a
    resume that silently retrained from scratch would reach the same weights: the
    epochs each resumed process trained are counted too."""
    data = measurements(tmp_path / "data.csv", n=40)
    args = ["fit", data, "--inputs", "a,b", "--targets", "u", "--prior", "smooth", *RESUMABLE]
    assert main_in_process(*args, "--out", tmp_path / "whole").returncode == 0
    assert trained_epochs == [0, 1, 2]
    assert (tmp_path / "whole" / "calibration.png").is_file()  # one calibrated network
    run_dir, checkpoint = tmp_path / "killed", tmp_path / ".killed.checkpoint"

    # 1. Killed while writing the second checkpoint: the first is the last complete one.
    killed("epoch-000001", 1, *args, "--out", run_dir)
    assert not run_dir.exists()  # no half-written run directory
    assert [p.name for p in (checkpoint / "final").glob("epoch-*")] == ["epoch-000000"]
    assert list((checkpoint / "final").glob(".epoch-*.partial-*"))  # the killed write's staging
    assert_info_works_or_refuses(main_in_process, left_behind(tmp_path))
    # A resume with other options is refused and leaves the checkpoint as it was.
    before = sorted(checkpoint.rglob("*"))
    for changed in (["--seed", "1"], ["--steps", "1002"], ["--prior", "none"]):
        refused = main_in_process(*args, *changed, "--out", run_dir, "--resume")
        assert_clean_failure(refused, "the interrupted run used a different configuration")
        assert sorted(checkpoint.rglob("*")) == before and not run_dir.exists()

    # 2. Resumed, it trains only the two missing epochs, and is killed while
    # putting model.keras in place in its staged run directory.
    killed("model.keras", 1, *args, "--out", run_dir, "--resume", epochs=tmp_path / "2.log")
    assert (tmp_path / "2.log").read_text().split() == ["1", "2"]
    assert not run_dir.exists()
    assert not list((checkpoint / "final").glob(".epoch-*.partial-*"))  # the resume cleared it
    assert list(tmp_path.glob(".killed.partial-*"))  # this kill's staged run directory
    assert_info_works_or_refuses(main_in_process, left_behind(tmp_path))

    # 3. Resumed from the last epoch's checkpoint, it trains nothing, and is
    # killed while renaming its complete staged directory to RUN_DIR.
    killed("killed", 1, *args, "--out", run_dir, "--resume", epochs=tmp_path / "3.log")
    assert (tmp_path / "3.log").read_text() == ""
    assert not run_dir.exists()
    assert_info_works_or_refuses(main_in_process, left_behind(tmp_path))

    trained_epochs.clear()
    resumed = main_in_process(*args, "--out", run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert trained_epochs == []
    assert not checkpoint.exists()
    assert not list(tmp_path.glob(".killed.partial-*"))  # the killed runs' staging is gone
    assert_same_run(tmp_path / "whole", run_dir)


def test_an_export_killed_before_its_rename_leaves_no_file_and_runs_again(tmp_path,
                                                                         main_in_process):
    model = tmp_path / "model.keras"
    kg.GradINN(kg.mlp(2, 1, width=8, depth=1), "smooth", bounds=[(0, 1), (0, 1)]).save(model)
    onnx = tmp_path / "m.onnx"
    killed("m.onnx", 1, "export", model, "--onnx", onnx)
    assert not onnx.exists()
    assert_info_works_or_refuses(main_in_process, left_behind(tmp_path))
    exported = main_in_process("export", model, "--onnx", onnx)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert onnx.is_file()


def test_resume_without_an_interrupted_run_is_refused(tmp_path, main_in_process):
    data = measurements(tmp_path / "data.csv")
    result = main_in_process("fit", data, "--inputs", "a,b", "--targets", "u", "--out",
                             tmp_path / "run", "--resume", *TINY)
    assert_clean_failure(result, "there is no interrupted run to resume")
