"""Tests of the `keras-gradinn perf` benchmark's counting, records and table."""

import argparse
import json
import sys

import pytest
from conftest import SUBPROCESS_TIMEOUT

from keras_gradinn import cli
from keras_gradinn.bench import jax_step, perf


def test_model_flops_follow_the_stated_rule():
    config = perf.Config(d=5, m=1, width=64, depth=3, n_collocation=1024, batch=256)
    net = 5 * 64 + 64 * 64 + 64 * 64 + 64 * 1  # multiply-adds of one forward pass
    prior = 5 * 64 + 64 * 5
    flops = perf.model_flops(config)
    assert flops["snn"] == 2 * 3 * (256 + 1024) * net
    assert flops["gradinn"] == 2 * (3 * 256 * net + 3 * 2 * 1024 * net + 3 * 1024 * prior)
    # Forward mode for d=2, m=3: min(d, m) = 2 Jacobian passes.
    two_three = perf.Config(d=2, m=3, width=8, depth=1, n_collocation=10, batch=4)
    net = 2 * 8 + 8 * 3
    prior = 2 * 64 + 64 * 6
    assert perf.model_flops(two_three)["gradinn"] == 2 * (3 * 4 * net + 9 * 10 * net + 30 * prior)


def test_a_small_run_records_both_methods_and_renders_a_table():
    lines = []
    config = perf.Config(3, 1, 8, 1, 16, batch=8)
    records = perf.run((config,), xla=(False,), steps=3, repeats=1, fit_epochs=0,
                       isolate=False, emit=lines.append)
    kinds = [(r["kind"], r.get("method")) for r in records]
    assert kinds == [("matmul", None), ("step", "gradinn"), ("step", "snn"), ("matmul", None)]
    assert [json.loads(line) for line in lines] == records
    for record in records:
        assert "error" not in record and record["peak_rss_mib"] > 0
    step = records[1]
    assert step["ms"] > 0 and step["gflops"] == pytest.approx(
        perf.model_flops(config)["gradinn"] / step["ms"] / 1e6)
    table = perf.table(records)
    assert "| d=3 m=1 1x8 K=16 | off |" in table
    assert "matrix product peak" in table


def test_a_failed_measurement_is_a_record_not_a_crash():
    record = perf._spawn({"kind": "nonsense"}, timeout=SUBPROCESS_TIMEOUT)
    assert record["kind"] == "nonsense" and "unknown measurement kind" in record["error"]
    assert "failed:" in perf.table([record])


def test_perf_is_a_command_with_its_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["perf", "--help"])
    out = capsys.readouterr().out
    assert "--quick" in out and "--xla" in out and "--out" in out


def test_counts_reads_comma_separated_positive_integers():
    assert perf.counts("1,5,10,25") == (1, 5, 10, 25)
    assert perf.counts("1e3, 1e6") == (1000, 1_000_000)
    for bad in ("0", "1,x", "2.5", "", "-3"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive integers"):
            perf.counts(bad)


def _options(*argv):
    parser = argparse.ArgumentParser()
    perf.add_arguments(parser)
    return perf._options(parser.parse_args(list(argv)))


def test_the_studies_replace_the_default_configurations_only_when_asked():
    default = _options()
    assert "configs" not in default and "fit_epochs" not in default
    assert default["members"] == () and default["fit_rows"] == () and default["against"] is None
    members = _options("--members", "1,5,10,25")
    assert members["members"] == (1, 5, 10, 25)
    assert members["configs"] == () and members["fit_epochs"] == 0
    jax = _options("--against", "jax")
    assert jax["members"] == (1, 5) and jax["against"] == "jax"
    fit = _options("--fit-rows", "1e3,1e6", "--fit-batches", "32,4096")
    assert fit["fit_rows"] == (1000, 1_000_000) and fit["fit_batches"] == (32, 4096)
    assert fit["members"] == () and fit["configs"] == ()
    with pytest.raises(SystemExit):
        _options("--against", "torch")


def test_study_specs_pair_each_k_with_jax_and_skip_batches_above_the_rows():
    specs = perf._study_specs((1, 5), "jax", (100, 10_000), (32, 256), config=perf.MEMBERS_CONFIG,
                              xla=(False, True), steps=7, repeats=2, fit_steps=300)
    kinds = [(s["kind"], s.get("members") or (s["rows"], s["batch"]), s.get("xla"))
             for s in specs]
    assert kinds == [
        ("members", 1, False), ("members", 1, True), ("jax", 1, None),
        ("members", 5, False), ("members", 5, True), ("jax", 5, None),
        ("fit_rows", (100, 32), False), ("fit_rows", (100, 32), True),
        ("fit_rows", (10_000, 32), False), ("fit_rows", (10_000, 32), True),
        ("fit_rows", (10_000, 256), False), ("fit_rows", (10_000, 256), True),
    ]
    # About 300 steps in whole epochs: 4 steps an epoch -> 75 epochs; 313 -> 1; 40 -> 8.
    assert [s["epochs"] for s in specs if s["kind"] == "fit_rows"][::2] == [75, 1, 8]


def test_model_flops_count_each_member_and_the_shared_prior_once():
    config = perf.MEMBERS_CONFIG
    one, three = perf.model_flops(config), perf.model_flops(config, members=3)
    prior = 2 * 3 * config.n_collocation * (5 * 64 + 64 * 5)
    assert three["gradinn"] - prior == 3 * (one["gradinn"] - prior)
    assert three["snn"] == 3 * one["snn"]


def test_a_small_members_and_fit_rows_run_records_what_the_tables_need():
    config = perf.Config(3, 1, 8, 1, 16, batch=8)
    records = perf.run((), xla=(False,), steps=2, repeats=1, fit_epochs=0, members=(2,),
                       fit_rows=(16,), fit_batches=(8, 32), fit_steps=2, members_config=config,
                       isolate=False, emit=lambda line: None)
    assert [(r["kind"], r.get("members"), r.get("rows")) for r in records] == [
        ("matmul", None, None), ("members", 2, None), ("fit_rows", None, 16),
        ("matmul", None, None)]
    for record in records:
        assert "error" not in record
    two, fit = records[1], records[2]
    assert two["gflops"] == pytest.approx(
        perf.model_flops(config, members=2)["gradinn"] / two["ms"] / 1e6)
    assert fit["batch"] == 8 and fit["epochs"] == 1 and fit["overhead"] == pytest.approx(
        fit["fit_ms_per_step"] / fit["step_ms"])
    assert "| 16 | 8 | off | 1 |" in perf.table(records)


def _study_records():
    members = [{"kind": "members", "config": "d=5 m=1 3x64 K=256", "batch": 200, "members": k,
                "xla": xla, "ms": ms, "gflops": gflops, "peak_rss_mib": 900.0}
               for k, xla, ms, gflops in ((1, False, 2.0, 20.0), (1, True, 1.0, 40.0),
                                          (5, False, 6.0, 33.0), (5, True, 4.0, 50.0))]
    jax = [{"kind": "jax", "members": k, "ms": ms} for k, ms in ((1, 0.5), (5, 8.0))]
    fit = {"kind": "fit_rows", "rows": 1000, "batch": 256, "xla": False, "epochs": 75,
           "fit_ms_per_step": 3.0, "step_ms": 1.5, "overhead": 2.0, "steps_per_execution": 4,
           "peak_rss_mib": 950.0}
    return [{"kind": "matmul", "gflops": 100.0}, *members, *jax, fit]


def test_the_members_table_divides_by_one_member_and_by_jax_with_the_same_k():
    lines = perf.table(_study_records()).splitlines()
    assert "stacked members: d=5 m=1 3x64 K=256, 200 data rows per step" in lines
    assert "| 1 | off | 2.000 | 1.00 | 2.000 | 20 | 20% | 900 | 0.500 | 4.00 |" in lines
    assert "| 5 | off | 6.000 | 3.00 | 1.200 | 33 | 33% | 900 | 8.000 | 0.75 |" in lines
    assert "| 5 | on | 4.000 | 4.00 | 0.800 | 50 | 50% | 900 | 8.000 | 0.50 |" in lines
    assert "| 1000 | 256 | off | 75 | 3.000 | 1.500 | 2.00x | 4 | 950 |" in lines
    assert not any(line.startswith("| configuration |") for line in lines)  # no step records
    without_jax = perf.table([r for r in _study_records() if r["kind"] != "jax"])
    assert "JAX" not in without_jax and "| 5 | on | 4.000 | 4.00 |" in without_jax


def test_against_jax_without_jax_names_the_extra_before_measuring(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "jax", None)  # makes `import jax` fail
    with pytest.raises(ImportError, match=r"pip install 'keras-gradinn\[bench\]'"):
        jax_step.require_jax()
    emitted = []
    with pytest.raises(ImportError, match="keras-gradinn"):
        perf.run((), fit_epochs=0, members=(1,), against="jax", isolate=False,
                 emit=emitted.append)
    assert emitted == []
    assert cli.main(["perf", "--against", "jax"]) == 1
    assert "pip install 'keras-gradinn[bench]'" in capsys.readouterr().err


def test_the_jax_step_runs_for_one_and_for_stacked_members():
    pytest.importorskip("jax")
    pytest.importorskip("optax")
    config = perf.Config(3, 2, 8, 1, 16, batch=8)
    for members in (1, 3):
        seconds = jax_step.step_seconds(config, members, steps=1, repeats=1)
        assert 0 < seconds < 10
