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

On request (`--members`, `--fit-rows`, `--against jax`), instead:

- `members`: the step of k stacked members (`mlp(..., members=k)`) on
  `MEMBERS_CONFIG` (d=5, 3x64, 200 data rows as one batch, 256 collocation
  points); k=1 is the plain network.
- `fit_rows`: `fit`'s overhead as above on 10^3 to 10^6 rows and batches up
  to 4096, on `MEMBERS_CONFIG`'s network and collocation points.
- `jax`: the same step as `members` written in JAX (`bench.jax_step`).

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

__all__ = [
    "CONFIGS",
    "FIT_BATCHES",
    "MEMBERS_CONFIG",
    "Config",
    "add_arguments",
    "command",
    "counts",
    "main",
    "model_flops",
    "run",
    "table",
]


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


#: The stacked-ensemble and fit-overhead configuration: 200 data rows, all in
#: every step, and 256 collocation points.
MEMBERS_CONFIG = Config(5, 1, 64, 3, 256, batch=200)

#: Batch sizes of the fit-overhead study (`--fit-batches`); a batch larger
#: than the rows is left out.
FIT_BATCHES: tuple[int, ...] = (256, 4096)


def _dense_macs(sizes: Sequence[int]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def model_flops(config: Config, prior_width: int = 64, members: int = 1) -> dict[str, int]:
    """Model FLOPs of one GradINN step and one plain step over the same points.

    See the module docstring for how they are counted. The prior is the
    default smooth prior, one hidden layer of `prior_width` units, shared by
    `members` stacked networks (each network's FLOPs count `members` times).
    """
    net = members * _dense_macs([config.d] + [config.width] * config.depth + [config.m])
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


def _model(config: Config, method: str, jit_compile: bool, batch: int, members: int = 1):
    """A compiled GradINN (or plain network) and one batch of data for it.

    `members` > 1 stacks that many networks (`mlp(..., members=k)`).
    """
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
        kg.mlp(config.d, config.m, width=config.width, depth=config.depth, seed=0,
               members=members if members > 1 else None),
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


def _members_record(config: Config, members: int, jit_compile: bool, steps: int,
                    repeats: int) -> dict[str, Any]:
    """The GradINN step of `members` stacked networks, every data row in each step."""
    model, x, y = _model(config, "gradinn", jit_compile, config.batch, members)
    seconds = _step_seconds(model, x, y, jit_compile, steps, repeats)
    flops = model_flops(config, members=members)["gradinn"]
    return {
        "kind": "members",
        "config": config.name,
        **dataclasses.asdict(config),
        "members": members,
        "xla": jit_compile,
        "ms": seconds * 1e3,
        "gflops": flops / seconds / 1e9,
        "model_flops": flops,
    }


def _jax_record(config: Config, members: int, steps: int, repeats: int) -> dict[str, Any]:
    """The same step as `_members_record`'s, written in JAX (`bench.jax_step`)."""
    from keras_gradinn.bench import jax_step

    seconds = jax_step.step_seconds(config, members, steps=steps, repeats=repeats)
    flops = model_flops(config, members=members)["gradinn"]
    return {
        "kind": "jax",
        "config": config.name,
        **dataclasses.asdict(config),
        "members": members,
        "ms": seconds * 1e3,
        "gflops": flops / seconds / 1e9,
        "model_flops": flops,
    }


def _fit_record(jit_compile: bool, epochs: int, repeats: int, *, rows: int = 200,
                batch: int = 32, n_collocation: int = 1024, kind: str = "fit") -> dict[str, Any]:
    """Keras overhead: `fit` per step against the compiled step on the same batch size.

    `fit` trains on `rows` rows of (5, 1) data, shuffled, in batches of
    `batch`, a 3x64 network with `n_collocation` points. The fit and the
    compiled loop alternate and the best of each is kept, so both are
    measured in the same state of a shared machine.
    """
    import numpy as np

    config = Config(5, 1, 64, 3, n_collocation, batch=batch)
    model, _, _ = _model(config, "gradinn", jit_compile, batch)
    rng = np.random.default_rng(1)
    x = rng.uniform(0.0, 1.0, (rows, 5))
    y = np.sin(x.sum(axis=1, keepdims=True))
    steps = epochs * math.ceil(len(x) / batch)
    fit, raw = math.inf, math.inf
    # Warm up: tracing and compilation (of the short last batch too).
    model.fit(x, y, batch_size=batch, epochs=1 if rows > 10 * batch else 2, verbose=0)
    for _ in range(repeats):
        fit = min(fit, _best_seconds(
            lambda: model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0), 1, warm_up=False
        ) / steps)
        raw = min(raw, _step_seconds(model, x[:batch], y[:batch], jit_compile, steps, 1))
    return {
        "kind": kind,
        "config": f"{rows} rows, batch {batch}, " + config.name,
        "rows": rows,
        "batch": batch,
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
    elif kind == "members":
        record = _members_record(Config(**spec["config"]), spec["members"], spec["xla"],
                                 spec["steps"], spec["repeats"])
    elif kind == "jax":
        record = _jax_record(Config(**spec["config"]), spec["members"], spec["steps"],
                             spec["repeats"])
    elif kind in ("fit", "fit_rows"):
        sizes = {key: spec[key] for key in ("rows", "batch", "n_collocation") if key in spec}
        record = _fit_record(spec["xla"], spec["epochs"], spec["repeats"], kind=kind, **sizes)
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


def _study_specs(
    members: Sequence[int],
    against: str | None,
    fit_rows: Sequence[int],
    fit_batches: Sequence[int],
    *,
    config: Config,
    xla: Sequence[bool],
    steps: int,
    repeats: int,
    fit_steps: int,
) -> list[dict[str, Any]]:
    """The measurements of the stacked members, of JAX's step and of fit on many rows."""
    specs: list[dict[str, Any]] = []
    common = {"config": dataclasses.asdict(config), "steps": steps, "repeats": repeats}
    for k in members:
        specs += [{"kind": "members", "members": k, "xla": x, **common} for x in xla]
        if against == "jax":
            specs.append({"kind": "jax", "members": k, **common})
    for rows in fit_rows:
        for batch in fit_batches:
            if batch > rows:
                continue
            epochs = max(1, round(fit_steps / math.ceil(rows / batch)))
            specs += [{"kind": "fit_rows", "rows": rows, "batch": batch,
                       "n_collocation": config.n_collocation, "xla": x, "epochs": epochs,
                       "repeats": min(repeats, 3)} for x in xla]
    return specs


def run(
    configs: Sequence[Config] = CONFIGS,
    *,
    xla: Sequence[bool] = (False, True),
    steps: int = 200,
    repeats: int = 5,
    fit_epochs: int = 300,
    members: Sequence[int] = (),
    against: str | None = None,
    fit_rows: Sequence[int] = (),
    fit_batches: Sequence[int] = FIT_BATCHES,
    fit_steps: int = 300,
    members_config: Config = MEMBERS_CONFIG,
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
        fit_epochs: epochs of the Keras-overhead fit on 200 rows (0 skips it).
        members: numbers k of stacked members whose step to time on
            `members_config`.
        against: `"jax"` also times each k's step written in JAX.
        fit_rows: row counts of the fit-overhead study (each with every
            batch of `fit_batches` that is not larger).
        fit_batches: batch sizes of that study.
        fit_steps: about how many steps each fit of that study runs (whole
            epochs, at least one).
        members_config: the network, data rows and collocation points of
            the members, JAX and fit-overhead measurements.
        timeout: seconds allowed for each measurement's process.
        isolate: run each measurement in a fresh process (peak memory per
            run, and a crash stays contained); False runs them all here.
        emit: called with each record's JSON line as it arrives.
    """
    if against not in (None, "jax"):
        raise ValueError(f"against must be None or 'jax'; got {against!r}")
    if against == "jax":
        from keras_gradinn.bench.jax_step import require_jax

        require_jax()  # before anything runs, not after minutes of measurements
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
    specs += _study_specs(members, against, fit_rows, fit_batches, config=members_config,
                          xla=xla, steps=steps, repeats=repeats, fit_steps=fit_steps)
    specs.append({"kind": "matmul", "repeats": repeats})
    records = []
    for spec in specs:
        record = _spawn(spec, timeout) if isolate else _worker(spec)
        records.append(record)
        emit(json.dumps(record))
    return records


def _on_off(jit_compile: bool) -> str:
    return "on" if jit_compile else "off"


def _step_table(records: Sequence[dict[str, Any]], peak: float) -> list[str]:
    """GradINN against the plain network per configuration and XLA setting."""
    steps = {(r["config"], r["xla"], r["method"]): r for r in records
             if r.get("kind") == "step" and "error" not in r}
    lines = [
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
            f"| {name} | {_on_off(jit_compile)} | {record['ms']:.3f} | {plain_ms:.3f} "
            f"| {ratio:.2f} | {record['gflops']:.0f} | {record['gflops'] / peak:.0%} | {rss:.0f} |"
        )
    return lines if steps else []


def _fit_table(records: Sequence[dict[str, Any]]) -> list[str]:
    """Keras' overhead on 200 rows with batch 32."""
    fits = [r for r in records if r.get("kind") == "fit" and "error" not in r]
    lines = ["| fit (200 rows, batch 32) | XLA | fit ms/step | step ms | overhead "
             "| steps/execution | peak RSS MiB |", "|" + " --- |" * 7]
    for r in fits:
        lines.append(
            f"| {r['epochs']} epochs | {_on_off(r['xla'])} | "
            f"{r['fit_ms_per_step']:.3f} | {r['step_ms']:.3f} | {r['overhead']:.2f}x | "
            f"{r['steps_per_execution']} | {r['peak_rss_mib']:.0f} |"
        )
    return lines if fits else []


def _members_table(records: Sequence[dict[str, Any]], peak: float) -> list[str]:
    """The step of k stacked members against one network's, and against JAX's when timed.

    GFLOP/s count every member's model FLOPs; "x 1 member" divides the
    step's time by the one network's (same XLA setting); "ours/JAX" divides
    it by the JAX step's with the same k.
    """
    found = [r for r in records if r.get("kind") == "members" and "error" not in r]
    jax = {r["members"]: r for r in records if r.get("kind") == "jax" and "error" not in r}
    if not found:
        return []
    single = {r["xla"]: r["ms"] for r in found if r["members"] == 1}
    header = ("| members | XLA | ms/step | x 1 member | ms per member | GFLOP/s | of peak "
              "| peak RSS MiB |")
    columns = 8
    if jax:
        header += " JAX ms | ours/JAX |"
        columns += 2
    lines = [f"stacked members: {found[0]['config']}, {found[0]['batch']} data rows per step",
             "", header, "|" + " --- |" * columns]
    for r in found:
        k = r["members"]
        ratio = r["ms"] / single[r["xla"]] if r["xla"] in single else float("nan")
        line = (f"| {k} | {_on_off(r['xla'])} | {r['ms']:.3f} | {ratio:.2f} | {r['ms'] / k:.3f} "
                f"| {r['gflops']:.0f} | {r['gflops'] / peak:.0%} | {r['peak_rss_mib']:.0f} |")
        if jax:
            other = jax.get(k)
            line += (f" {other['ms']:.3f} | {r['ms'] / other['ms']:.2f} |" if other
                     else " - | - |")
        lines.append(line)
    return lines


def _fit_rows_table(records: Sequence[dict[str, Any]]) -> list[str]:
    """`fit`'s time per step against the compiled step's, by rows and batch size."""
    found = [r for r in records if r.get("kind") == "fit_rows" and "error" not in r]
    lines = ["| fit rows | batch | XLA | epochs | fit ms/step | step ms | fit/step "
             "| steps/execution | peak RSS MiB |", "|" + " --- |" * 9]
    for r in found:
        lines.append(
            f"| {r['rows']} | {r['batch']} | {_on_off(r['xla'])} | {r['epochs']} | "
            f"{r['fit_ms_per_step']:.3f} | {r['step_ms']:.3f} | {r['overhead']:.2f}x | "
            f"{r['steps_per_execution']} | {r['peak_rss_mib']:.0f} |"
        )
    return lines if found else []


def table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown tables of the records, with the ratios and peak fractions."""
    peak = max((r["gflops"] for r in records if r.get("kind") == "matmul" and "error" not in r),
               default=float("nan"))
    lines = [f"matrix product peak: {peak:.0f} GFLOP/s (2048 x 2048 float32, best of the run)"]
    for part in (_step_table(records, peak), _fit_table(records),
                 _members_table(records, peak), _fit_rows_table(records)):
        if part:
            lines += ["", *part]
    errors = [r for r in records if "error" in r]
    for r in errors:
        lines.append(f"failed: {json.dumps(r)}")
    return "\n".join(lines)


def _write_lines(path: str, lines: Sequence[str]) -> None:
    """Writes `lines` to `path` through a temporary file and a rename."""
    from keras_gradinn.files import write_atomically

    write_atomically(pathlib.Path(path), "\n".join(lines) + "\n")


def counts(text: str) -> tuple[int, ...]:
    """Positive integers from a comma-separated list such as "1,5,10" or "1e3,1e4"."""
    values = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            value = float("nan")
        if not (value >= 1 and value == int(value)):
            raise argparse.ArgumentTypeError(
                f"expected positive integers separated by commas; got {item.strip()!r} in {text!r}")
        values.append(int(value))
    return tuple(values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn perf` to `parser`."""
    parser.add_argument("--quick", action="store_true",
                        help="one small configuration and short loops in this process "
                        "(a smoke test; memory is then not per run)")
    parser.add_argument("--xla", choices=("both", "on", "off"), default="both",
                        help="measure with XLA, without, or both (default both)")
    parser.add_argument("--members", type=counts, metavar="K,K,...",
                        help="instead of the default configurations, time the step of k stacked "
                        "members for each k (d=5, 3x64, 200 data rows per step, 256 collocation "
                        "points; e.g. 1,5,10,25)")
    parser.add_argument("--against", choices=("jax",),
                        help="also time the same step written in JAX for each k of --members "
                        "(default 1,5); needs pip install 'keras-gradinn[bench]'")
    parser.add_argument("--fit-rows", type=counts, metavar="N,N,...",
                        help="instead of the default configurations, time fit against the "
                        "compiled step on N rows (e.g. 1e3,1e4,1e5,1e6)")
    parser.add_argument("--fit-batches", type=counts, metavar="B,B,...", default=FIT_BATCHES,
                        help="batch sizes for --fit-rows (default "
                        f"{','.join(map(str, FIT_BATCHES))}; those above N are left out)")
    parser.add_argument("--out", help="also write the JSON records to this file")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """`run`'s arguments for the command line's options."""
    members = args.members or ((1, 5) if args.against else ())
    study = bool(members or args.fit_rows)
    options: dict[str, Any] = dict(members=members, against=args.against,
                                   fit_rows=args.fit_rows or (), fit_batches=args.fit_batches)
    if study:
        # The studies replace the default configurations and the 200-row fit.
        options.update(configs=(), fit_epochs=0)
    if args.quick:
        options.update(steps=20, repeats=2, fit_steps=10, isolate=False,
                       members_config=Config(5, 1, 16, 2, 64, batch=32))
        if not study:
            options.update(configs=(Config(5, 1, 16, 2, 64, batch=32),), fit_epochs=5)
    return options


def command(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn perf`: JSON records as they come, then a table."""
    xla = {"both": (False, True), "on": (True,), "off": (False,)}[args.xla]
    records = run(xla=xla, emit=lambda line: print(line, flush=True), **_options(args))
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
