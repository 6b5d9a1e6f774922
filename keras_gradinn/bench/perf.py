"""Training-speed benchmark behind `keras-gradinn perf`.

Each measurement runs in a fresh Python process, so its peak resident
memory (`bench.memory.peak_rss_mib`) is its own and a crash (e.g. in XLA)
cannot take the others down.
Records are JSON objects, one per line, followed by a readable table.

What is measured:

- `step`: milliseconds per training step of GradINN (data batch plus
  `n_collocation` points) and of the plain network (`snn`: the same model
  with `gradient_weight=0`) over the same number of points, with and
  without XLA. The step runs `steps` times inside one compiled loop, so
  Python and Keras are not timed; the best of `repeats` loops is reported.
- `matmul`: FLOP/s of a 2048 x 2048 float32 matrix product, the machine's
  practical peak, measured in the same run.
- `fit`: wall time per step of `GradINN.fit` on 200 rows with batch 32 over
  many epochs, divided by the compiled step's time for the same batch: the
  overhead of Keras' loop, callbacks and input pipeline.

FLOPs are model FLOPs counted from the layer sizes, not from the ops that
ran: with `F` the multiply-adds of one forward pass of a network at one
point (`sum(fan_in * fan_out)` over its Dense layers), a training step
costs `3F` per data point (forward, and backward to inputs and weights) and
`3 (1 + min(d, m)) F` per collocation point (forward plus `min(d, m)`
Jacobian passes, all differentiated again), plus `3 F_prior` for the prior
at each collocation point. One multiply-add is 2 FLOPs. Element-wise work
and the optimizer update are not counted, so the fraction is a lower bound.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["CONFIGS", "Config", "add_arguments", "command", "main", "model_flops", "run", "table"]


@dataclasses.dataclass(frozen=True)
class Config:
    """One benchmark configuration: network shape, collocation points, batch."""

    d: int
    m: int
    width: int
    depth: int
    n_collocation: int
    batch: int = 256

    @property
    def name(self) -> str:
        return f"d={self.d} m={self.m} {self.depth}x{self.width} K={self.n_collocation}"


#: The measured configurations: inputs and outputs from (2, 3) to (100, 1) at
#: 1024 collocation points, and (5, 1, 3x64) at 256 and 4096 points to show
#: how the step grows with the number of collocation points.
CONFIGS: tuple[Config, ...] = (
    Config(5, 1, 64, 3, 1024),
    Config(20, 1, 64, 3, 1024),
    Config(2, 3, 64, 3, 1024),
    Config(100, 1, 128, 4, 1024),
    Config(5, 1, 64, 3, 256),
    Config(5, 1, 64, 3, 4096),
)


def _dense_macs(sizes: Sequence[int]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def model_flops(config: Config, prior_width: int = 64) -> dict[str, int]:
    """Model FLOPs of one GradINN step and one plain step over the same points.

    See the module docstring for how they are counted. The prior is the
    default smooth prior, one hidden layer of `prior_width` units.
    """
    net = _dense_macs([config.d] + [config.width] * config.depth + [config.m])
    prior = _dense_macs([config.d, prior_width, config.d * config.m])
    k, b = config.n_collocation, config.batch
    passes = 1 + min(config.d, config.m)
    gradinn = 2 * (3 * b * net + 3 * passes * k * net + 3 * k * prior)
    snn = 2 * 3 * (b + k) * net
    return {"gradinn": gradinn, "snn": snn}


def _best_seconds(function, repeats: int, warm_up: bool = True) -> float:
    if warm_up:
        function()  # tracing and compilation
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _matmul_record(repeats: int) -> dict[str, Any]:
    import tensorflow as tf

    n = 2048
    a = tf.random.normal((n, n), seed=1)
    b = tf.random.normal((n, n), seed=2)
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    seconds = _best_seconds(lambda: product().numpy(), max(repeats, 10))
    return {"kind": "matmul", "n": n, "gflops": 2 * n**3 / seconds / 1e9}


def _model(config: Config, method: str, jit_compile: bool, batch: int):
    """A compiled GradINN (or plain network) and one batch of data for it."""
    import keras
    import numpy as np

    import keras_gradinn as kg

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    plain = method == "snn"
    rows = batch + config.n_collocation if plain else batch
    x = rng.uniform(0.0, 1.0, (rows, config.d)).astype("float32")
    y = np.sin(x @ rng.normal(size=(config.d, config.m))).astype("float32")
    model = kg.GradINN(
        kg.mlp(config.d, config.m, width=config.width, depth=config.depth, seed=0),
        "smooth",
        bounds=[(0.0, 1.0)] * config.d,
        n_collocation=config.n_collocation,
        gradient_weight=0.0 if plain else 1e-2,
        seed=0,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    model.adapt(y)
    model.optimizer.build(model.trainable_variables)
    return model, x, y


def _step_seconds(model, x, y, jit_compile: bool, steps: int, repeats: int) -> float:
    """Seconds per `train_step`, run `steps` times inside one compiled loop."""
    import tensorflow as tf

    data = (tf.constant(x), tf.constant(y))

    @tf.function(jit_compile=jit_compile)
    def loop(n):
        for _ in tf.range(n):
            model.train_step(data)
        return model.collocation_step.value

    count = tf.constant(steps)
    return _best_seconds(lambda: loop(count).numpy(), repeats) / steps


def _step_record(config: Config, method: str, jit_compile: bool, steps: int, repeats: int):
    model, x, y = _model(config, method, jit_compile, config.batch)
    seconds = _step_seconds(model, x, y, jit_compile, steps, repeats)
    flops = model_flops(config)[method]
    return {
        "kind": "step",
        "config": config.name,
        **dataclasses.asdict(config),
        "method": method,
        "xla": jit_compile,
        "ms": seconds * 1e3,
        "gflops": flops / seconds / 1e9,
        "model_flops": flops,
    }


def _fit_record(jit_compile: bool, epochs: int, repeats: int) -> dict[str, Any]:
    """Keras overhead: `fit` per step against the compiled step, 200 rows, batch 32.

    The fit and the compiled loop alternate and the best of each is kept, so
    both are measured in the same state of a shared machine.
    """
    import numpy as np

    config = Config(5, 1, 64, 3, 1024, batch=32)
    model, _, _ = _model(config, "gradinn", jit_compile, 32)
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 1.0, (200, 5))
    y = np.sin(x.sum(axis=1, keepdims=True))
    steps = epochs * math.ceil(len(x) / 32)
    fit, raw = math.inf, math.inf
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)  # warm up: tracing and compilation
    for _ in range(repeats):
        fit = min(fit, _best_seconds(
            lambda: model.fit(x, y, batch_size=32, epochs=epochs, verbose=0), 1, warm_up=False
        ) / steps)
        raw = min(raw, _step_seconds(model, x[:32], y[:32], jit_compile, steps, 1))
    return {
        "kind": "fit",
        "config": "200 rows, batch 32, " + config.name,
        "xla": jit_compile,
        "epochs": epochs,
        "fit_ms_per_step": fit * 1e3,
        "step_ms": raw * 1e3,
        "overhead": fit / raw,
        "steps_per_execution": int(model.steps_per_execution),
    }


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    kind = spec["kind"]
    if kind == "matmul":
        record = _matmul_record(spec["repeats"])
    elif kind == "step":
        record = _step_record(
            Config(**spec["config"]), spec["method"], spec["xla"], spec["steps"], spec["repeats"]
        )
    elif kind == "fit":
        record = _fit_record(spec["xla"], spec["epochs"], spec["repeats"])
    else:
        raise ValueError(f"unknown measurement kind {kind!r}")
    from keras_gradinn.bench.memory import peak_rss_mib

    record["peak_rss_mib"] = peak_rss_mib()
    return record


def _spawn(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Runs one measurement in a fresh interpreter and returns its record."""
    command = [sys.executable, "-m", "keras_gradinn.bench.perf", "--worker", json.dumps(spec)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**spec, "error": f"exit code {done.returncode}: {tail}"}
    return json.loads(lines[-1])


def run(
    configs: Sequence[Config] = CONFIGS,
    *,
    xla: Sequence[bool] = (False, True),
    steps: int = 200,
    repeats: int = 5,
    fit_epochs: int = 300,
    timeout: float = 900.0,
    isolate: bool = True,
    emit=print,
) -> list[dict[str, Any]]:
    """Runs the benchmark and returns its records, emitting each as JSON.

    Args:
        configs: the step configurations.
        xla: which `jit_compile` settings to measure.
        steps: training steps per timed loop.
        repeats: timed loops per measurement (the best is kept).
        fit_epochs: epochs of the Keras-overhead fit (0 skips it).
        timeout: seconds allowed for each measurement's process.
        isolate: run each measurement in a fresh process (peak memory per
            run, and a crash stays contained); False runs them all here.
        emit: called with each record's JSON line as it arrives.
    """
    specs: list[dict[str, Any]] = [{"kind": "matmul", "repeats": repeats}]
    for config in configs:
        for jit_compile in xla:
            for method in ("gradinn", "snn"):
                specs.append({
                    "kind": "step", "config": dataclasses.asdict(config), "method": method,
                    "xla": jit_compile, "steps": steps, "repeats": repeats,
                })
    if fit_epochs > 0:
        specs += [
            {"kind": "fit", "xla": jit_compile, "epochs": fit_epochs, "repeats": min(repeats, 3)}
            for jit_compile in xla
        ]
    specs.append({"kind": "matmul", "repeats": repeats})
    records = []
    for spec in specs:
        record = _spawn(spec, timeout) if isolate else _worker(spec)
        records.append(record)
        emit(json.dumps(record))
    return records


def table(records: Sequence[dict[str, Any]]) -> str:
    """A markdown table of the step records, with the ratios and peak fractions."""
    peak = max((r["gflops"] for r in records if r.get("kind") == "matmul" and "error" not in r),
               default=float("nan"))
    steps = {(r["config"], r["xla"], r["method"]): r for r in records
             if r.get("kind") == "step" and "error" not in r}
    lines = [
        f"matrix product peak: {peak:.0f} GFLOP/s (2048 x 2048 float32, best of the run)",
        "",
        "| configuration | XLA | GradINN ms | S-NN ms | ratio | GradINN GFLOP/s | of peak "
        "| peak RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (name, jit_compile, method), record in steps.items():
        if method != "gradinn":
            continue
        plain = steps.get((name, jit_compile, "snn"))
        ratio = record["ms"] / plain["ms"] if plain else float("nan")
        plain_ms = plain["ms"] if plain else float("nan")
        rss = max(record["peak_rss_mib"], plain["peak_rss_mib"] if plain else 0.0)
        lines.append(
            f"| {name} | {'on' if jit_compile else 'off'} | {record['ms']:.3f} | {plain_ms:.3f} "
            f"| {ratio:.2f} | {record['gflops']:.0f} | {record['gflops'] / peak:.0%} | {rss:.0f} |"
        )
    fits = [r for r in records if r.get("kind") == "fit" and "error" not in r]
    if fits:
        lines += ["", "| fit (200 rows, batch 32) | XLA | fit ms/step | step ms | overhead "
                  "| steps/execution | peak RSS MiB |", "|" + " --- |" * 7]
        for r in fits:
            lines.append(
                f"| {r['epochs']} epochs | {'on' if r['xla'] else 'off'} | "
                f"{r['fit_ms_per_step']:.3f} | {r['step_ms']:.3f} | {r['overhead']:.2f}x | "
                f"{r['steps_per_execution']} | {r['peak_rss_mib']:.0f} |"
            )
    errors = [r for r in records if "error" in r]
    for r in errors:
        lines.append(f"failed: {json.dumps(r)}")
    return "\n".join(lines)


def _write_lines(path: str, lines: Sequence[str]) -> None:
    """Writes `lines` to `path` through a temporary file and a rename."""
    from keras_gradinn.files import write_atomically

    write_atomically(pathlib.Path(path), "\n".join(lines) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn perf` to `parser`."""
    parser.add_argument("--quick", action="store_true",
                        help="one small configuration and short loops in this process "
                        "(a smoke test; memory is then not per run)")
    parser.add_argument("--xla", choices=("both", "on", "off"), default="both",
                        help="measure with XLA, without, or both (default both)")
    parser.add_argument("--out", help="also write the JSON records to this file")


def command(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn perf`: JSON records as they come, then a table."""
    xla = {"both": (False, True), "on": (True,), "off": (False,)}[args.xla]
    if args.quick:
        options = dict(configs=(Config(5, 1, 16, 2, 64, batch=32),), steps=20, repeats=2,
                       fit_epochs=5, isolate=False)
    else:
        options = dict(configs=CONFIGS)
    records = run(xla=xla, emit=lambda line: print(line, flush=True), **options)
    print()
    print(table(records))
    if args.out:
        _write_lines(args.out, [json.dumps(r) for r in records])
    return 1 if any("error" in r for r in records) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m keras_gradinn.bench.perf`, also how each measurement's process runs."""
    parser = argparse.ArgumentParser(prog="python -m keras_gradinn.bench.perf",
                                     description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))), flush=True)
        return 0
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
