"""Tests of the `keras-gradinn perf` benchmark's counting, records and table."""

import json

import pytest
from conftest import SUBPROCESS_TIMEOUT

from keras_gradinn import cli
from keras_gradinn.bench import perf


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
