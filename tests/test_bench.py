"""The benchmark suite: GP gradient, run plan, resumable runner, report and CLI (tiny budgets)."""

import json
import pathlib
import shutil

import numpy as np
import pytest

from keras_gradinn import problems
from keras_gradinn.bench import gp, methods, report, runner
from keras_gradinn.cli import main


def test_gp_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    bounds = np.array([[0.0, 2.0], [-1.0, 3.0]])
    x = bounds[:, 0] + rng.random((30, 2)) * (bounds[:, 1] - bounds[:, 0])
    y = np.stack([np.sin(x[:, 0]) * x[:, 1], x[:, 0] ** 2 - x[:, 1]], axis=1)
    model = gp.fit_gp(x, y, bounds, seed=0)
    points = bounds[:, 0] + rng.random((7, 2)) * (bounds[:, 1] - bounds[:, 0])
    jacobian = model.gradient(points)
    assert jacobian.shape == (7, 2, 2)
    # A wide step: the posterior mean of a long-length-scale GP cancels large terms,
    # so its finite differences at tiny steps are round-off.
    h = 1e-3
    for j in range(2):
        step = np.zeros(2)
        step[j] = h
        central = (model.predict(points + step) - model.predict(points - step)) / (2 * h)
        np.testing.assert_allclose(jacobian[:, :, j], central, rtol=1e-4, atol=1e-5)


def test_plan_follows_the_protocol():
    runs = runner.plan(["friedman1", "lotka_volterra"])
    friedman = [r for r in runs if r.problem == "friedman1"]
    auto = {"gradinn-auto", "gradinn-auto-nokernel"}
    assert {r.method for r in friedman} == {"gradinn", *auto, "snn", "gp"}  # no pinn
    assert {r.noise for r in friedman} == {0.0, 0.01, 0.05, 0.10}
    headline = [r for r in friedman if (r.n, r.noise, r.method) == (200, 0.0, "gradinn")]
    assert sorted(r.seed for r in headline) == [0, 1, 2, 3, 4]
    other = [r for r in friedman if (r.n, r.noise, r.method) == (100, 0.0, "gradinn")]
    assert len(other) == 3
    lv = [r for r in runs if r.problem == "lotka_volterra"]
    assert {r.method for r in lv} == {"gradinn", *auto, "snn", "pinn", "gp"}
    assert {r.n for r in lv} == {10, 20, 40, 80} and {r.noise for r in lv} == {0.0, 0.05}
    assert len(lv) == 6 * 2 * 4 * 3
    assert len(runner.plan(["burgers"], quick=True)) == 6 * 2 * 4
    assert len(set(r.key for r in runs)) == len(runs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"methods": ["pinn"]}, "no equations"),
        ({"methods": ["svm"]}, "method must be one of"),
        ({"noises": [1.5]}, "noise must be in"),
        ({"sizes": [1]}, "n must be >= 2"),
        ({"seeds": 0}, "seeds must be >= 1"),
    ],
)
def test_plan_rejects_bad_requests(kwargs, message):
    with pytest.raises(ValueError, match=message):
        runner.plan(["friedman1"], **kwargs)


def test_training_set_is_seeded_and_noise_is_relative():
    problem = problems.get("friedman1")
    x, y = runner.training_set(problem, 4000, 0.1, seed=3)
    x2, y2 = runner.training_set(problem, 4000, 0.1, seed=3)
    np.testing.assert_array_equal(y, y2)
    clean = problem.solution(x)
    assert np.std(y - clean) == pytest.approx(0.1 * clean.std(), rel=0.05)
    assert not np.allclose(runner.training_set(problem, 4000, 0.1, seed=4)[0], x)


def test_equation_model_penalises_the_residual():
    problem = problems.get("lotka_volterra")
    x, y = runner.training_set(problem, 10, 0.0, seed=0)
    settings = methods.settings_for(problem.name, quick=True)
    model = methods._network_model("pinn", problem, y, settings, seed=0)
    model.adapt(y)
    z = np.linspace(-0.9, 0.9, 9, dtype="float32")[:, None]
    loss = float(model.gradient_loss(z))
    # The same residual from finite differences of the model's predictions.
    t = problem.bounds[0, 0] + (z[:, 0] + 1) * (problem.bounds[0, 1] - problem.bounds[0, 0]) / 2
    h = 1e-2
    values = model.predict(t[:, None].astype("float64"), verbose=0)
    slope = (model.predict((t + h)[:, None], verbose=0)
             - model.predict((t - h)[:, None], verbose=0)) / (2 * h)
    prey, predator = values[:, 0], values[:, 1]
    residual = np.stack([slope[:, 0] - (1.0 * prey - 0.1 * prey * predator),
                         slope[:, 1] - (0.075 * prey * predator - 1.5 * predator)], axis=1)
    expected = np.mean(np.sum((residual / model.residual_scale) ** 2, axis=1))
    assert loss == pytest.approx(expected, rel=2e-2)


def test_tables_show_mean_and_std_per_cell():
    records = [
        {"problem": "p", "method": m, "n": 10, "noise": 0.0, "seed": s, "rmse": v,
         "grad_rmse": 2 * v, "train_seconds": 1.0}
        for m, values in (("gradinn", [1.0, 3.0]), ("gp", [0.5])) for s, v in enumerate(values)
    ]
    text = report.tables(records)
    assert "| n | seeds | GradINN (tuned) | GP |" in text
    assert "| 10 | 1/2 | 2 ± 1.4 | 0.5 ± 0 |" in text
    assert "| ∇ |  | 4 ± 2.8 | 1 ± 0 |" in text


def test_coverage_and_nll_are_tabled_for_the_methods_that_have_them():
    records = [
        {"problem": p, "method": m, "n": n, "noise": noise, "seed": 0, "rmse": 1.0,
         "grad_rmse": 1.0, "train_seconds": 1.0, **extra}
        for p, m, n, noise, extra in (
            ("p", "gradinn-auto", 10, 0.0, {"coverage": 0.8, "nll": -1.0, "member_rmse": 2.0}),
            ("p", "gradinn-auto", 20, 0.0, {"coverage": 1.0, "nll": -2.0, "member_rmse": 8.0}),
            ("p", "gp", 10, 0.0, {"coverage": 0.9, "nll": -3.0}),
            ("p", "snn", 10, 0.0, {}),
            ("q", "gradinn-auto", 10, 0.05, {"coverage": 0.5, "nll": 1.0}))
    ]
    cells = report.tables(records)
    assert "| 90 % cover |  | 0.80 | - | 0.90 |" in cells
    assert "| NLL |  | -1 | - | -3 |" in cells
    summary = report.uncertainty(records)
    # ensemble / member: 1/2 and 1/8, geometric mean 1/4
    assert "| p | 0 | 0.90, -1.5 (2) | 0.90, -3 (1) | 0.25 |" in summary
    assert "| q | 0.05 | 0.50, 1 (1) | - | - |" in summary
    assert "| all |  | 0.70, - (2 groups) | 0.90, - (1 groups) | 0.25 |" in summary


def test_ratios_compare_gradinn_with_the_baselines():
    records = [
        {"problem": "p", "method": m, "n": n, "noise": 0.0, "seed": 0, "rmse": v, "grad_rmse": g}
        for m, n, v, g in (("gradinn", 10, 1.0, 2.0), ("snn", 10, 2.0, 4.0),
                           ("gp", 10, 0.5, 1.0), ("gradinn", 20, 1.0, 1.0), ("snn", 20, 0.5, 2.0))
    ]
    text = report.ratios(records)
    assert "| p | 0 | 10 | 0.50, 0.50 * | 2.00, 2.00 |" in text
    assert "| p | 0 | 20 | 2.00, 0.50 | - |" in text


def test_the_auto_summary_counts_wins_means_and_times():
    rows = [  # (method, n, seed, rmse, seconds, chosen)
        ("gradinn-auto", 10, 0, 1.0, 80.0, "kernel"), ("gradinn-auto", 10, 1, 3.0, 120.0, "none"),
        ("snn", 10, 0, 4.0, 10.0, None), ("snn", 10, 1, 4.0, 10.0, None),
        ("gradinn", 10, 0, 4.0, 30.0, 0), ("gradinn-auto-nokernel", 10, 0, 2.0, 60.0, "none"),
        ("gp", 10, 0, 1.0, 1.0, None),
        ("gradinn-auto", 20, 0, 1.0, 50.0, "smooth"), ("snn", 20, 0, 0.5, 5.0, None),
        ("gradinn", 20, 0, 1.0, 20.0, 0), ("gradinn-auto-nokernel", 20, 0, 0.5, 40.0, "none"),
        ("gp", 20, 0, 1.0, 1.0, None),
    ]
    records = [{"problem": "p", "method": m, "n": n, "noise": 0.0, "seed": s, "rmse": v,
                "grad_rmse": v, "train_seconds": t, "chosen": c} for m, n, s, v, t, c in rows]
    text = report.auto_summary(records)
    assert "| p | 0 | 10 | 0.50 * | 0.50 | 0.50 | 2.00 | 10.0 | kernel 1, none 1 |" in text
    assert "| p | 0 | 20 | 2.00 | 1.00 | 1.00 | 1.00 | 10.0 | smooth 1 |" in text
    assert "beats S-NN in 1 of 2 cells" in text
    # geometric means: auto sqrt(2 * 1), tuned sqrt(4 * 1), no kernel sqrt(2 * 0.5)
    assert "GradINN-auto 1.414 against tuned GradINN's 2 over 2 cells (ratio 0.707)" in text
    assert "without the kernel prior 1 against tuned GradINN's 2 over 2 cells (ratio 0.500)" \
        in text
    assert "p 10.0x (10.0x)" in text


def test_fill_replaces_only_the_marked_block():
    text = "intro\n<!-- headline:start -->\nold table\n<!-- headline:end -->\nrest\n"
    filled = report.fill(text, "headline", "| new |\n")
    assert filled == "intro\n<!-- headline:start -->\n\n| new |\n\n<!-- headline:end -->\nrest\n"
    assert report.fill(filled, "headline", "| new |") == filled
    for bad in ("no markers", text + text, "<!-- headline:end -->\n<!-- headline:start -->\n"):
        with pytest.raises(ValueError, match="must hold <!-- headline:start --> once"):
            report.fill(bad, "headline", "| new |")


def test_headline_gives_the_cell_and_geometric_ratios_per_problem():
    rows = [  # (method, n, seed, rmse)
        ("gradinn-auto", 10, 0, 1.0), ("snn", 10, 0, 2.0), ("snn", 10, 1, 2.0), ("gp", 10, 0, 4.0),
        ("gradinn-auto", 20, 0, 2.0), ("snn", 20, 0, 1.0), ("gp", 20, 0, 0.5),
    ]
    records = [{"problem": "p", "method": m, "n": n, "noise": 0.0, "seed": s, "rmse": v,
                "grad_rmse": 2 * v, "train_seconds": 10.0} for m, n, s, v in rows]
    text = report.headline(records, cell=("p", 10, 0.0))
    assert "| GradINN-auto | 1 | 1 ± 0 | 2 ± 0 | 10 s |" in text
    assert "| S-NN | 2 | 2 ± 0 | 4 ± 0 | 10 s |" in text
    # auto / S-NN: 0.5 and 2 (geometric mean 1, below 1 once); auto / GP: 0.25 and 4.
    assert "| GradINN-auto / S-NN | GradINN-auto / GP |" in text
    assert "| p | 0 | 10-20 | 1.00, 1/2 | 1.00, 1/2 |" in text
    assert "| all |  | 2 cells | 1.00, 1/2 | 1.00, 1/2 |" in text
    assert "Runs per cell: GradINN-auto 1, S-NN 1/2, GP 1." in text
    assert report.headline(records, cell=("p", 99, 0.0)).startswith("| problem |")  # no cell


def test_report_refreshes_the_headline_of_the_page_beside_its_folder(tmp_path):
    records = [{"problem": "friedman1", "method": m, "n": 200, "noise": 0.0, "seed": 0,
                "rmse": v, "grad_rmse": v, "train_seconds": 1.0}
               for m, v in (("gradinn", 0.02), ("snn", 0.03), ("gp", 0.01))]
    records[2].update(coverage=0.875, nll=-2.0)
    page = tmp_path / "bench.md"
    page.write_text("# Bench\n<!-- headline:start -->\nstale\n<!-- headline:end -->\nmid\n"
                    "<!-- uncertainty:start -->\nstale\n<!-- uncertainty:end -->\nend\n")
    other = tmp_path / "other.md"
    other.write_text("# Other, no markers\n")
    report.write(records, tmp_path / "bench")
    assert page.read_text() == report.fill(page.read_text(), "headline", report.headline(records))
    assert "| GradINN (tuned) | 1 | 0.02 ± 0 |" in page.read_text()
    assert "| friedman1 | 0 | 0.88, -2 (1) |" in page.read_text()
    assert "stale" not in page.read_text() and page.read_text().endswith("end\n")
    report.write(records, tmp_path / "other")  # a page without markers is left alone
    assert other.read_text() == "# Other, no markers\n"


@pytest.mark.parametrize("name, images", [("benchmarks", "img"),
                                          ("uncertainty", "img/uncertainty")])
def test_the_committed_tables_and_page_are_what_the_report_writes(tmp_path, name, images):
    """`bench all --report-only --out docs/<name> --images docs/<images>`, without training."""
    docs = pathlib.Path(__file__).resolve().parents[1] / "docs"
    records = runner.load_runs(docs / name / "runs.jsonl")
    shutil.copy(docs / f"{name}.md", tmp_path / f"{name}.md")
    (tmp_path / name).mkdir()
    path = report.write(records, tmp_path / name, images=tmp_path / images,
                        header=f"Report of the {len(records)} runs in "
                        f"`docs/{name}/runs.jsonl`.\n")
    assert path.read_text() == (docs / name / "tables.md").read_text()
    assert (tmp_path / f"{name}.md").read_text() == (docs / f"{name}.md").read_text()


def test_runs_file_errors_and_torn_lines(tmp_path):
    path = tmp_path / "runs.jsonl"
    good = {"problem": "friedman1", "method": "gp", "n": 10, "noise": 0.0, "seed": 0}
    path.write_text(json.dumps(good) + "\n" + '{"problem": "friedm')
    assert runner.load_runs(path) == [good]
    path.write_text('{"oops": 1}\n' + json.dumps(good) + "\n")
    with pytest.raises(ValueError, match="line 1: not a benchmark run record"):
        runner.load_runs(path)


def test_bench_command_runs_resumes_and_reports(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "stokes_sphere", "--n", "12", "--noise", "0", "--methods", "gradinn",
            "gradinn-auto", "snn", "pinn", "gp", "--quick", "--jobs", "1", "--out", str(out)]
    assert main(argv) == 0
    records = runner.load_runs(out / "runs.jsonl")
    assert sorted(r["method"] for r in records) == ["gp", "gradinn", "gradinn-auto", "pinn",
                                                    "snn"]
    auto = next(r for r in records if r["method"] == "gradinn-auto")
    assert auto["chosen"] in ("none", "kernel", "smooth", "stiff") and auto["settings"] is None
    for record in records:
        assert {"problem", "method", "n", "noise", "seed", "rmse", "nrmse", "grad_rmse",
                "train_seconds"} <= set(record)
        assert record["quick"] and np.isfinite(record["rmse"]) and record["grad_rmse"] > 0
        # The calibrated ensemble and the GP give standard deviations; the others none.
        has_std = record["method"] in ("gp", "gradinn-auto")
        assert ("coverage" in record) == ("nll" in record) == has_std
        assert not has_std or (0 <= record["coverage"] <= 1 and np.isfinite(record["nll"])
                               and len(record["calibration_curve"]) == 19)
    assert auto["member_rmse"] > 0  # its five members, each alone
    assert (out / "img" / "stokes_sphere_rmse.png").stat().st_size > 0
    assert list((out / "img").glob("stokes_sphere_field_*.png"))
    assert "### stokes_sphere, noise 0" in (out / "tables.md").read_text()
    assert "GradINN-auto beats S-NN in" in (out / "tables.md").read_text()
    assert "## Uncertainty" in (out / "tables.md").read_text()
    assert (out / "img" / "stokes_sphere_calibration.png").stat().st_size > 0
    before = (out / "runs.jsonl").read_text()
    assert main(argv) == 0  # everything is done: nothing is trained again
    assert (out / "runs.jsonl").read_text() == before
    (out / "tables.md").unlink()
    assert main([*argv[:2], "--report-only", "--out", str(out)]) == 0
    assert "### stokes_sphere, noise 0" in (out / "tables.md").read_text()
    with pytest.raises(ValueError, match="holds quick runs"):
        runner.sweep(runner.plan(["stokes_sphere"], sizes=[12], noises=[0.0]), out)


def test_gradient_weight_fades_as_one_over_n():
    fixed = methods.Settings(gradient_weight=0.03)
    fading = fixed.replace(reference_n=200)
    assert fixed.weight_for(50) == fixed.weight_for(1000) == 0.03
    assert fading.weight_for(200) == pytest.approx(0.03)
    assert fading.weight_for(50) == pytest.approx(0.12)
    assert fading.weight_for(1000) == pytest.approx(0.006)
    assert [c.gradient_weight for c in fading.candidates(100)] == [pytest.approx(0.06)]
    sparse = fading.replace(prior_options=(("sparsity", 1e-4), ("width", 16)))
    assert sparse.prior_options_for(50) == {"sparsity": pytest.approx(4e-4), "width": 16}
    assert fixed.replace(prior_options=(("sparsity", 1e-4),)).prior_options_for(50) == {
        "sparsity": 1e-4}
    assert dict(sparse.candidates(100)[0].options) == {"sparsity": pytest.approx(2e-4),
                                                        "width": 16}


def test_tuned_settings_become_the_estimators_candidates_and_folds():
    friedman = problems.get("friedman1")
    tuned = methods.DEFAULTS["friedman1"]
    small = tuned.estimator(friedman, 100, seed=7).get_params()
    assert [c.name for c in small["candidates"]] == ["variant 0", "variant 1"]
    assert [c.gradient_weight for c in small["candidates"]] == [0.03, 1.0]
    assert small["cv"] == 5 and small["cv_steps"] == small["steps"] == 20_000
    assert small["n_members"] == 1 and small["n_collocation"] == 256
    assert small["batch_size"] == 100 and small["random_state"] == 7  # every row in every step
    large = tuned.estimator(friedman, 500, seed=7).get_params()
    assert large["cv"].get_n_splits() == 1 and large["cv"].test_size == 0.2  # one split
    screened = methods.DEFAULTS["friedman1_10d"].estimator(problems.get("friedman1_10d"), 50, 0)
    assert [getattr(c, "name", c) for c in screened.candidates] == ["variant 0", "screened"]
    assert screened.screen_threshold == 0.3
    stokes = problems.get("stokes_sphere")
    fixed = methods.DEFAULTS["stokes_sphere"].estimator(stokes, 100, seed=0)
    assert fixed.prior.gradient_weight == pytest.approx(0.005) and fixed.candidates is None
    assert fixed.contains is stokes.contains


@pytest.mark.parametrize("changes, message", [
    ({"validation_fraction": 1.0}, r"validation_fraction must be in \(0, 1\); got 1.0"),
    ({"validation_fraction": 0}, r"validation_fraction must be in \(0, 1\); got 0"),
    ({"screening": 1.0}, r"screening must be in \[0, 1\); got 1.0"),
    ({"cross_validate_below": -1}, "cross_validate_below must be >= 0; got -1"),
])
def test_settings_refuse_a_bad_choice_rule_before_any_fit(changes, message):
    with pytest.raises(ValueError, match=message):
        methods.Settings(**changes)
    with pytest.raises(ValueError, match=message):
        methods.DEFAULTS["friedman1"].replace(**changes)


def test_every_tuning_candidate_builds_its_model():
    from keras_gradinn.bench import tune

    for name, candidates in tune.load_candidates().items():
        problem = problems.get(name)
        x, y = runner.training_set(problem, 8, 0.0, seed=0)
        for candidate in candidates:
            method, chosen = tune.candidate_settings(name, candidate, quick=True)
            if method == "gp":  # the reference, without a network
                continue
            if method == "gradinn":
                estimator = chosen.estimator(problem, 8, seed=0)
                weights = [c.gradient_weight for c in estimator.candidates or [estimator.prior]
                           if not isinstance(c, str)]
                assert weights == [v.weight_for(8) for v in chosen.variants()]
                continue
            model = methods._network_model(method, problem, y, chosen, seed=0)
            assert model.gradient_weight == (chosen.pinn_weight if method == "pinn" else 0.0)


@pytest.mark.parametrize("problem, candidate", [
    ("friedman1", "fourier 128x1 w=0.03"),
    ("friedman1_10d", "smooth sparse 3e-05 w=0.03"),
])
def test_a_tuning_candidate_of_one_prior_does_not_inherit_the_defaults_choice(problem,
                                                                              candidate):
    from keras_gradinn.bench import tune

    _, settings = tune.candidate_settings(problem, candidate)
    assert len(settings.variants()) == 1
    assert (settings.screening, settings.cross_validate_below) == (0.0, 0)


def test_tuning_score_is_the_geometric_mean():
    from keras_gradinn.bench.tune import geometric_mean

    assert geometric_mean([0.01, 1.0]) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nosuch", "--n", "50"], "no tuning grid for problem 'nosuch'"),
        (["friedman1", "--n", "50", "--candidates", "smooth w=9"], "unknown candidates"),
    ],
)
def test_tune_rejects_unknown_problems_and_candidates(argv, message, capsys):
    from keras_gradinn.bench import tune

    with pytest.raises(SystemExit):
        tune.main(argv)
    assert message in capsys.readouterr().err


def test_the_tuning_grid_file_reads_as_methods_settings_changes():
    from keras_gradinn.bench import tune

    grid = tune.load_candidates()
    assert {name: len(candidates) for name, candidates in grid.items()} == {
        "friedman1": 38, "friedman1_10d": 51, "stokes_sphere": 14, "burgers": 15,
        "lotka_volterra": 24}
    # Options and alternatives come back as the sorted tuples `Settings` holds.
    assert grid["friedman1"]["fourier 128x1 w=0.03 or smooth 1x8 w=1, cross-validated"] == (
        "gradinn", {"gradient_weight": 0.03, "prior": "oscillatory", "reference_n": None,
                    "prior_options": (("frequency", 1.0), ("n_features", 128)),
                    "alternatives": ((("gradient_weight", 1.0), ("prior", "smooth"),
                                      ("prior_options", (("width", 8),)),
                                      ("reference_n", None)),),
                    "cross_validate_below": 200})


def test_a_missing_tuning_grid_is_named():
    from keras_gradinn.bench import tune

    with pytest.raises(FileNotFoundError, match="no tuning grid there"):
        tune.load_candidates("no/such/candidates.json")


def test_the_scale_benchmarks_function_is_friedmans_plus_fading_sines():
    from keras_gradinn.bench import scale

    # Written out, in the order of operations the scale records were made with.
    x = np.random.default_rng(0).random((64, 8))
    expected = (10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2
                + 10 * x[:, 3] + 5 * x[:, 4])
    for j in range(5, 8):
        expected += 4.0 / (j - 3) * np.sin(np.pi * x[:, j])
    np.testing.assert_array_equal(scale.synthetic(x), expected[:, None])
    with pytest.raises(ValueError, match=r"shape \(n, d >= 5\); got \(3, 4\)"):
        scale.synthetic(np.zeros((3, 4)))



def test_bench_scale_and_tune_are_subcommands_that_no_problem_shadows(capsys):
    from keras_gradinn.cli import bench as bench_command

    assert set(bench_command.TOOLS) == {"scale", "tune"}
    assert not set(bench_command.TOOLS) & set(problems.names())
    for tool in bench_command.TOOLS:
        with pytest.raises(SystemExit) as done:
            main(["bench", tool, "--help"])
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: keras-gradinn bench {tool} ")
    with pytest.raises(SystemExit):
        main(["bench", "tune", "nosuch", "--n", "50"])
    assert "no tuning grid for problem 'nosuch'" in capsys.readouterr().err


def _old_training_set(problem, n, noise, seed):
    """The value draws every record so far was made with, written out."""
    rng = np.random.default_rng([seed, n])
    x = problem.sample(n, rng)
    y = problem.solution(x)
    return x, y + rng.normal(size=y.shape) * (noise * y.std(axis=0))


@pytest.mark.parametrize("name", ["friedman1", "stokes_sphere"])
def test_observed_gradients_leave_the_value_draws_bit_identical(name):
    problem = problems.get(name)
    old_x, old_y = _old_training_set(problem, 50, 0.05, 2)
    for x, y in (runner.training_set(problem, 50, 0.05, seed=2)[:2],
                 runner.training_data(problem, 50, 0.05, seed=2)[:2]):
        np.testing.assert_array_equal(x, old_x)
        np.testing.assert_array_equal(y, old_y)
    x, _, dy_dx = runner.training_data(problem, 50, 0.0, seed=2)
    assert dy_dx.shape == (50, problem.m, problem.d)
    np.testing.assert_array_equal(dy_dx, problem.gradient(x))  # noise 0: exact


def test_gradient_noise_is_relative_per_jacobian_entry():
    problem = problems.get("friedman1_10d")
    x, y, dy_dx = runner.training_data(problem, 4000, 0.1, seed=3)
    clean = problem.gradient(x)[:, 0]
    error = dy_dx[:, 0] - clean
    scale = np.sqrt(np.mean(clean ** 2, axis=0))  # x4 and x5 have constant slopes 10 and 5
    np.testing.assert_allclose(error[:, :5].std(axis=0), 0.1 * scale[:5], rtol=0.05)
    np.testing.assert_array_equal(error[:, 5:], 0.0)  # inert inputs stay exact
    # Independent of the value noise: drawn after it, from the same stream.
    assert abs(np.corrcoef(error[:, 0], (y - problem.solution(x))[:, 0])[0, 1]) < 0.05


def _constant_rmse(y_train, y_test):
    return np.sqrt(np.mean((y_test - y_train.mean(axis=0)) ** 2, axis=0))


@pytest.fixture
def one_thread():
    """One BLAS thread: SMT's small Kriging systems run many times slower on a shared machine's
    oversubscribed cores, and the test processes share them."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.mark.parametrize("method, n", [("genn", 40), ("gekpls", 20)])
def test_smt_baselines_learn_from_values_and_gradients(method, n, one_thread):
    pytest.importorskip("smt")
    problem = problems.get("friedman1")
    x, y, dy_dx = runner.training_data(problem, n, 0.0, seed=0)
    points = problem.test_set()[0][:300]
    truth = problem.solution(points)
    settings = methods.settings_for(problem.name, quick=True)  # GENN: 200 steps
    fitted = methods.fit(method, problem, x, y, dy_dx=dy_dx, settings=settings, seed=0)
    prediction, jacobian = fitted.predict(points), fitted.gradient(points)
    assert prediction.shape == (300, 1) and jacobian.shape == (300, 1, 5)
    assert np.isfinite(prediction).all() and np.isfinite(jacobian).all()
    rmse = np.sqrt(np.mean((prediction - truth) ** 2))
    assert rmse < 0.7 * _constant_rmse(y, truth)[0]
    # The Jacobian's input axis is that of the inputs: against SMT's own derivatives.
    for model in fitted.predict.__self__.models:
        analytic = np.stack([model.predict_derivatives(points[:20], i) for i in range(5)], -1)
        np.testing.assert_allclose(jacobian[:20], analytic, rtol=1e-4, atol=2e-3)
    assert (fitted.std is None) == (method == "genn")
    # The settings the report states: GENN the neural methods' network, budget and step;
    # GEKPLS every PLS component and, within the points budget, every gradient entry.
    options = fitted.predict.__self__.models[0].options
    if method == "genn":
        assert options["hidden_layer_sizes"] == [64, 64, 64] and options["num_iterations"] == 200
        assert options["alpha"] == settings.learning_rate and options["lambd"] == 0.01
    else:
        assert (options["n_comp"], options["extra_points"], options["eval_noise"]) == (5, 5, True)


def test_gekpls_fits_one_model_per_output_in_output_order(one_thread):
    pytest.importorskip("smt")
    problem = problems.get("stokes_sphere")
    x, y, dy_dx = runner.training_data(problem, 20, 0.0, seed=0)
    points = problem.test_set()[0][:300]
    truth = problem.solution(points)
    fitted = methods.fit("gekpls", problem, x, y, dy_dx=dy_dx, seed=0)
    prediction, std = fitted.predict(points), fitted.std(points)
    assert prediction.shape == std.shape == (300, 3) and (std >= 0).all()
    assert fitted.gradient(points).shape == (300, 3, 2)
    rmse = np.sqrt(np.mean((prediction - truth) ** 2, axis=0))
    assert (rmse < 0.5 * _constant_rmse(y, truth)).all()


def test_gekpls_extra_points_use_every_gradient_the_budget_allows():
    from keras_gradinn.bench import smt

    assert smt.gekpls_extra_points(100, 5) == 5
    assert smt.gekpls_extra_points(200, 5) == 4
    assert smt.gekpls_extra_points(500, 10) == 1
    assert smt.gekpls_extra_points(1000, 2) == 0
    for n, d in ((50, 10), (200, 5), (333, 2), (2000, 5)):
        extra = smt.gekpls_extra_points(n, d)
        assert 0 <= extra <= d and (n * (1 + extra) <= smt.GEKPLS_POINTS or extra == 0)


def test_smt_baselines_name_the_extra_to_install_when_smt_is_missing(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "smt", None)  # `import smt` now raises ImportError
    problem = problems.get("friedman1")
    x, y, dy_dx = runner.training_data(problem, 10, 0.0, seed=0)
    for method in ("genn", "gekpls"):
        with pytest.raises(ImportError, match=r"pip install 'keras-gradinn\[bench\]'"):
            methods.fit(method, problem, x, y, dy_dx=dy_dx)


@pytest.mark.parametrize("call, message", [
    (lambda p, x, y, g: methods.fit("genn", p, x, y), "trains on observed gradients"),
    (lambda p, x, y, g: methods.fit("gekpls", p, x, y, dy_dx=g[:, :, :2]),
     r"dy_dx must have shape \(n, m, d\) = \(10, 1, 5\); got \(10, 1, 2\)"),
    (lambda p, x, y, g: methods.fit("genn", p, x, y, dy_dx=np.where(np.arange(10)[:, None, None]
                                                                    == 3, np.nan, g)),
     "non-finite entry in row 3"),
])
def test_gradient_methods_refuse_missing_or_misshapen_gradients(call, message):
    problem = problems.get("friedman1")
    x, y, dy_dx = runner.training_data(problem, 10, 0.0, seed=0)
    with pytest.raises(ValueError, match=message):
        call(problem, x, y, dy_dx)


def test_gradient_methods_run_only_when_asked_and_where_they_apply():
    defaults = {r.method for r in runner.plan(["friedman1"], sizes=[50], noises=[0.0])}
    assert not defaults & set(methods.GRADIENT_METHODS)
    asked = runner.plan(["stokes_sphere"], sizes=[50], noises=[0.0], seeds=1,
                        methods=list(methods.GRADIENT_METHODS))
    assert sorted(r.method for r in asked) == sorted(methods.GRADIENT_METHODS)
    with pytest.raises(ValueError, match="'lotka_volterra' has 1 input and GEKPLS needs at "
                                         "least 2"):
        runner.plan(["lotka_volterra"], methods=["gekpls"])
    for method in methods.GRADIENT_METHODS:
        assert method in report.METHOD_ORDER and method in report.LABELS


def test_a_gradient_run_records_the_fields_of_the_others(one_thread):
    pytest.importorskip("smt")
    records = {m: runner.run_one(runner.Run("friedman1", 40, 0.05, 0, m), quick=True)
               for m in ("gp", "genn")}
    uncertainty = {"coverage", "nll", "calibration_curve"}  # the GP's standard deviation
    assert set(records["genn"]) == set(records["gp"]) - uncertainty
    assert records["genn"]["settings"]["steps"] == 200 and records["genn"]["quick"]
    assert records["genn"]["rmse"] < 3.5  # friedman1's test targets' std is 4.9


def test_gradinn_grad_is_the_library_defaults_given_the_gradients(monkeypatch):
    from keras_gradinn.estimator import GradINNRegressor

    calls = []

    class Stop(Exception):
        pass

    def fit(self, X, y, **kwargs):
        calls.append((self.get_params(), X, y, kwargs))
        raise Stop

    monkeypatch.setattr(GradINNRegressor, "fit", fit)
    problem = problems.get("stokes_sphere")
    x, y, dy_dx = runner.training_data(problem, 10, 0.05, seed=0)
    with pytest.raises(Stop):
        methods.fit("gradinn-grad", problem, x, y, dy_dx=dy_dx, seed=4)
    params, fitted_x, fitted_y, kwargs = calls[0]
    defaults = GradINNRegressor(bounds=problem.bounds, contains=problem.contains,
                                random_state=4).get_params()
    assert params.keys() == defaults.keys()
    assert all(params[k] is defaults[k] or np.array_equal(params[k], defaults[k])
               or params[k] == defaults[k] for k in params)
    assert fitted_x is x and fitted_y is y and kwargs.keys() == {"dy_dx"}
    assert kwargs["dy_dx"] is dy_dx


@pytest.mark.slow
def test_gradinn_grad_trains_on_the_observed_gradients():
    """Two quick fits of the library's defaults, about 20 s each on an idle machine."""
    problem = problems.get("friedman1")
    x, y, dy_dx = runner.training_data(problem, 20, 0.0, seed=0)
    points = problem.test_set()[0][:300]
    truth = problem.solution(points)
    settings = methods.settings_for(problem.name, quick=True)
    fitted = methods.fit("gradinn-grad", problem, x, y, dy_dx=dy_dx, settings=settings, seed=0)
    prediction, jacobian = fitted.predict(points), fitted.gradient(points)
    assert prediction.shape == (300, 1) and jacobian.shape == (300, 1, 5)
    assert np.sqrt(np.mean((prediction - truth) ** 2)) < 0.7 * _constant_rmse(y, truth)[0]
    # The gradients reach the fit: wrong ones give another model.
    wrong = methods.fit("gradinn-grad", problem, x, y, dy_dx=-dy_dx, settings=settings, seed=0)
    assert not np.allclose(wrong.predict(points), prediction)
