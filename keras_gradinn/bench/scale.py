"""Scale benchmark: GradINN trained on a stream from disk against a Gaussian process.

Run `keras-gradinn bench scale` (`--help` for the options). It

1. writes a synthetic data set (default 1,000,000 rows x 20 inputs, 1 output)
   to `.npy` files, streams it with `keras_gradinn.datasets.from_npy`, lets
   `GradINN` compute its output standardisation in one streaming pass and
   trains on it, reporting rows/s and peak memory (`stream_fit_record`);
2. fits scikit-learn's `GaussianProcessRegressor` on n = 500, 1000, 2000, ...
   rows of the same function until a fit exceeds the time or memory limit
   (`gp_fit_record`), then extrapolates its O(n^3) time and O(n^2) memory
   to the next sizes, up to the size of the stream.

Each measurement runs in a fresh child process, so its peak resident memory
is that run's alone. A Gaussian process child enters the package without
running `keras_gradinn/__init__.py`, so it does not carry TensorFlow's
memory. The peak is the process's high-water mark (`bench.memory`):
`ru_maxrss` is reported too, but on Linux it survives `exec` and so includes
the parent's resident memory at the time of the spawn. The output is one
JSON line per record (as each finishes), then a table.

The Gaussian process is the benchmark's (`bench.gp`, the library's
`gaussian_process.fit_gp`), which imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_gradinn.bench.memory import peak_rss_mib, rss_mib, ru_maxrss_mib, status_rss_mib
from keras_gradinn.problems import TEST_SEED

__all__ = ["add_arguments", "gp_fit_record", "main", "run", "stream_fit_record", "synthetic",
           "write_synthetic_npy"]


# ------------------------------------------------------------------ the problem


def synthetic(x: np.ndarray) -> np.ndarray:
    """A smooth test function of d >= 5 inputs on [0, 1]^d, shape (n, d) -> (n, 1).

    Friedman's function of the first five inputs (`problems.friedman`), plus
    sin(pi x_j) terms of decreasing weight 4 / (j - 3) for the inputs j >= 5,
    so every input matters a little and the later ones less.
    """
    from keras_gradinn.problems import friedman

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 5:
        raise ValueError(f"synthetic needs inputs of shape (n, d >= 5); got {x.shape}")
    y = friedman.solution(x)[:, 0]
    for j in range(5, x.shape[1]):
        y += 4.0 / (j - 3) * np.sin(np.pi * x[:, j])
    return y[:, None]


def _sample(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).random((n, d))
    return x, synthetic(x)


def write_synthetic_npy(
    directory: str | os.PathLike, rows: int, d: int, *, seed: int = 0, chunk_rows: int = 65_536
) -> tuple[pathlib.Path, pathlib.Path]:
    """Writes `rows` uniform inputs and their `synthetic` targets as float32 `.npy` files.

    The rows are generated and appended a chunk at a time, so memory does
    not grow with `rows`.

    Args:
        directory: where to write `x.npy` (rows, d) and `y.npy` (rows, 1).
        rows: number of rows (>= 1).
        d: number of inputs (>= 5).
        seed: seed of the inputs.
        chunk_rows: rows generated per chunk.

    Returns:
        The paths of `x.npy` and `y.npy`.
    """
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "x.npy", directory / "y.npy"
    rng = np.random.default_rng(seed)
    with open(paths[0], "wb") as fx, open(paths[1], "wb") as fy:
        for handle, columns in ((fx, d), (fy, 1)):
            np.lib.format.write_array_header_1_0(handle, {
                "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False, "shape": (rows, columns)})
        for start in range(0, rows, chunk_rows):
            x = rng.random((min(chunk_rows, rows - start), d))
            fx.write(x.astype(np.float32).tobytes())
            fy.write(synthetic(x).astype(np.float32).tobytes())
    return paths


# ---------------------------------------------------------------- measurements


def stream_fit_record(
    rows: int = 1_000_000,
    d: int = 20,
    *,
    batch_size: int = 1024,
    epochs: int = 1,
    shuffle_buffer: int | None = 65_536,
    n_collocation: int = 1024,
    width: int = 64,
    depth: int = 3,
    workdir: str | os.PathLike | None = None,
    seed: int = 0,
    n_test: int = 2000,
) -> dict[str, Any]:
    """Trains a GradINN on a synthetic data set streamed from `.npy` files.

    Writes the data (`write_synthetic_npy`) to `workdir` (a temporary
    directory, removed afterwards, if None), builds `mlp(d, 1, width,
    depth)` with the default smooth prior on [0, 1]^d, computes the output
    standardisation with `GradINN.adapt` on the stream (the pass `fit`
    makes on its own; timed separately here) and fits `epochs` epochs.
    Run it in a fresh process for a meaningful peak memory.

    Returns:
        A JSON-able dict: `rows`, timings (`write_seconds`,
        `adapt_seconds`, `train_seconds`, `first_step_seconds`, which
        includes tracing), `adapt_rows_per_s`, `train_rows_per_s` (all
        epochs over `train_seconds`), `steady_rows_per_s` (after the first
        step), memory in MiB (`baseline_rss_mib` after imports,
        `peak_rss_through_training_mib` (the high-water mark when `fit`
        returns), `peak_rss_mib` (at the end, after prediction),
        `rss_mib_during_training` sampled ten times),
        `final_loss`, `adapt_max_rel_error` of the mean/std against NumPy on
        the whole target file, and `test_rmse` on `n_test` fresh points.
    """
    import keras

    import keras_gradinn as kg
    from keras_gradinn import datasets

    baseline = rss_mib()
    own_dir = workdir is None
    directory = pathlib.Path(tempfile.mkdtemp(prefix="gradinn-scale-") if own_dir else workdir)
    try:
        start = time.perf_counter()
        x_path, y_path = write_synthetic_npy(directory, rows, d, seed=seed)
        write_seconds = time.perf_counter() - start
        rss_after_write = rss_mib()

        keras.utils.set_random_seed(seed)
        stream = datasets.from_npy(x_path, y_path, batch_size=batch_size,
                                   shuffle_buffer=shuffle_buffer, seed=seed)
        model = kg.GradINN(kg.mlp(d, 1, width=width, depth=depth, seed=seed), "smooth",
                           bounds=[(0.0, 1.0)] * d, n_collocation=n_collocation, seed=seed)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))

        start = time.perf_counter()
        model.adapt(stream)
        adapt_seconds = time.perf_counter() - start
        rss_after_adapt = rss_mib()
        targets = np.load(y_path, mmap_mode="r")
        mean, std = np.zeros(1), np.zeros(1)
        for i in range(0, rows, 1 << 20):  # NumPy's own statistics, chunk by chunk
            chunk = np.asarray(targets[i:i + (1 << 20)], dtype=np.float64)
            mean += chunk.sum(axis=0)
        mean /= rows
        for i in range(0, rows, 1 << 20):
            chunk = np.asarray(targets[i:i + (1 << 20)], dtype=np.float64)
            std += ((chunk - mean) ** 2).sum(axis=0)
        std = np.sqrt(std / rows)
        del targets
        adapted = [keras.ops.convert_to_numpy(v) for v in (model.output_mean, model.output_std)]
        adapt_error = max(float(np.max(np.abs(adapted[0] - mean) / std)),
                          float(np.max(np.abs(adapted[1] / std - 1))))

        steps = math.ceil(rows / batch_size) * epochs
        marks = {max(1, round(steps * k / 10)) for k in range(1, 11)}
        samples: list[float] = []
        times: list[float] = []

        class Probe(keras.callbacks.Callback):
            # With steps_per_execution > 1 a batch hook ends several steps.
            def on_train_batch_end(self, batch, logs=None):
                step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
                if not times:
                    times.append(time.perf_counter())
                while marks and step >= min(marks):
                    marks.remove(min(marks))
                    samples.append(round(rss_mib(), 1))

        start = time.perf_counter()
        history = model.fit(stream, epochs=epochs, verbose=0, callbacks=[Probe()])
        end = time.perf_counter()
        train_seconds = end - start
        peak_through_training = peak_rss_mib()
        first_step = times[0] - start if times else float("nan")
        steady = (rows * epochs - min(batch_size, rows)) / (end - times[0]) if (
            times and steps > 1) else float("nan")

        x_test, y_test = _sample(n_test, d, TEST_SEED)
        y_pred = model.predict(x_test.astype(np.float32), batch_size=4096, verbose=0)
        rmse = float(np.sqrt(np.mean((y_pred - y_test) ** 2)))
        return {
            "record": "stream_fit", "status": "ok",
            "rows": rows, "d": d, "batch_size": batch_size, "epochs": epochs,
            "shuffle_buffer": shuffle_buffer, "n_collocation": n_collocation,
            "network": f"{depth}x{width}", "steps": steps,
            "file_mib": round((x_path.stat().st_size + y_path.stat().st_size) / 2**20, 1),
            "write_seconds": round(write_seconds, 2),
            "adapt_seconds": round(adapt_seconds, 2),
            "adapt_rows_per_s": round(rows / adapt_seconds),
            "train_seconds": round(train_seconds, 2),
            "first_step_seconds": round(first_step, 2),
            "train_rows_per_s": round(rows * epochs / train_seconds),
            "steady_rows_per_s": round(steady) if math.isfinite(steady) else None,
            "baseline_rss_mib": round(baseline, 1),
            "rss_after_write_mib": round(rss_after_write, 1),
            "rss_after_adapt_mib": round(rss_after_adapt, 1),
            "rss_mib_during_training": samples,
            "peak_rss_through_training_mib": round(peak_through_training, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "ru_maxrss_mib": round(ru_maxrss_mib(), 1),
            "final_loss": float(history.history["loss"][-1]),
            "final_data_loss": float(history.history["data_loss"][-1]),
            "adapt_max_rel_error": adapt_error,
            "test_rmse": rmse,
            "test_std": float(np.std(y_test)),
        }
    finally:
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)


def gp_fit_record(
    n: int, d: int = 20, *, n_restarts: int = 3, n_test: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Fits the benchmark's Gaussian process (`bench.gp`) on `n` rows of `synthetic`.

    The protocol's GP: `C * Matern(ARD, nu=2.5) + White`, `normalize_y=True`
    and `n_restarts` optimiser restarts, on inputs scaled to [-1, 1]. Run it
    in a fresh process for a meaningful peak memory.

    Returns:
        A JSON-able dict: `n`, `fit_seconds`, `predict_seconds`,
        `baseline_rss_mib` (after imports and data), `peak_rss_mib`,
        `test_rmse` on `n_test` fresh points, the fitted length scales and
        noise, and the BLAS in use.
    """
    from keras_gradinn.bench.gp import fit_gp

    try:
        from threadpoolctl import threadpool_info

        blas = sorted({f"{i['internal_api']} {i.get('architecture')} x{i['num_threads']}"
                       for i in threadpool_info() if i["user_api"] == "blas"})
    except ImportError:  # pragma: no cover - scikit-learn depends on threadpoolctl
        blas = []

    x, y = _sample(n, d, seed)
    x_test, y_test = _sample(n_test, d, TEST_SEED)
    baseline = rss_mib()
    start = time.perf_counter()
    gp = fit_gp(x, y, np.array([(0.0, 1.0)] * d), seed=seed, restarts=n_restarts)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    y_pred = gp.predict(x_test)[:, 0]
    predict_seconds = time.perf_counter() - start
    return {
        "record": "gp_fit", "n": n, "d": d, "n_restarts": n_restarts,
        "status": "ok",
        "fit_seconds": round(fit_seconds, 2),
        "predict_seconds": round(predict_seconds, 3),
        "baseline_rss_mib": round(baseline, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "ru_maxrss_mib": round(ru_maxrss_mib(), 1),
        "test_rmse": float(np.sqrt(np.mean((y_pred - y_test[:, 0]) ** 2))),
        "test_std": float(np.std(y_test)),
        "length_scales": [round(float(v), 4) for v in gp.process.length_scales[0]],
        "noise": float(gp.process.noise[0]),
        "blas": blas,
    }


# ------------------------------------------------------------------ the driver


# Runs `_child` in a new interpreter on the same package as this process. A
# Gaussian process record enters the package without `keras_gradinn/__init__.py`,
# which imports TensorFlow, so that its peak memory is its own.
_CHILD = (
    "import sys, types\n"
    "root, kind, arguments = sys.argv[1:4]\n"
    "sys.path.insert(0, root)\n"
    "if kind == 'gp':\n"
    "    package = types.ModuleType('keras_gradinn')\n"
    "    package.__path__ = [root + '/keras_gradinn']\n"
    "    sys.modules['keras_gradinn'] = package\n"
    "from keras_gradinn.bench import scale\n"
    "sys.exit(scale._child(kind, arguments))\n"
)


def _child(kind: str, arguments: str) -> int:
    function = {"stream": stream_fit_record, "gp": gp_fit_record}[kind]
    record = function(**json.loads(arguments))
    print(json.dumps(record), flush=True)
    return 0


def run_in_child(kind: str, arguments: dict[str, Any], *, time_limit: float | None = None,
                 memory_limit_mib: float | None = None) -> dict[str, Any]:
    """Runs `stream_fit_record` (`kind="stream"`) or `gp_fit_record` (`"gp"`) in a new process.

    The child is killed when it runs longer than `time_limit` seconds or its
    resident memory (polled every 0.2 s) exceeds `memory_limit_mib`; the
    record then has `status` `"time limit"` or `"memory limit"`. A child
    that fails gets `status` `"error"` and the end of its error output.
    """
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(pathlib.Path(__file__).resolve().parents[2]),
             kind, json.dumps(arguments)],
            stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL,
        )
        status, peak = None, 0.0
        while process.poll() is None:
            time.sleep(0.2)
            rss = status_rss_mib(process.pid)
            peak = max(peak, rss)
            elapsed = time.perf_counter() - start
            if time_limit is not None and elapsed > time_limit:
                status = "time limit"
            elif memory_limit_mib is not None and rss > memory_limit_mib:
                status = "memory limit"
            if status:
                process.kill()
                process.wait()
                break
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        base = {"record": f"{kind}_fit", **arguments, "wall_seconds": round(wall, 1)}
        if status:
            return {**base, "status": status, "polled_peak_rss_mib": round(peak, 1)}
        if process.returncode != 0 or not lines:
            tail = err.read().strip().splitlines()[-5:]
            return {**base, "status": "error", "returncode": process.returncode,
                    "error": " | ".join(tail)}
        return {**json.loads(lines[-1]), "wall_seconds": round(wall, 1)}


def _fmt_seconds(seconds: float) -> str:
    for unit, size in (("years", 3.156e7), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:,.0f} {unit}" if value >= 1000 else f"{value:.3g} {unit}"
    return f"{seconds:.3g} s"


def _fmt_mib(mib: float) -> str:
    for unit, size in (("PiB", 2**30), ("TiB", 2**20), ("GiB", 2**10)):
        if mib >= size:
            return f"{mib / size:.3g} {unit}"
    return f"{mib:.0f} MiB"


#: What `keras-gradinn bench scale` does, in one line.
DESCRIPTION = ("GradINN on a data set streamed from disk against scikit-learn's Gaussian "
               "process: rows/s, peak memory and where the GP stops being usable.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn bench scale` to `parser`."""
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the stream")
    parser.add_argument("--d", type=int, default=20, help="inputs (>= 5)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--shuffle-buffer", type=int, default=65_536,
                        help="rows mixed at a time (0: no shuffling)")
    parser.add_argument("--n-collocation", type=int, default=1024)
    parser.add_argument("--gp-start", type=int, default=500, help="first GP size; doubled")
    parser.add_argument("--gp-max", type=int, default=64_000, help="largest GP size tried")
    parser.add_argument("--gp-restarts", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds after which a GP run is stopped and counted unusable")
    parser.add_argument("--memory-limit-gib", type=float, default=12.0,
                        help="resident memory above which a GP run is stopped (and "
                             "beyond which, predicted from the last run, it is not started)")
    parser.add_argument("--skip-stream", action="store_true")
    parser.add_argument("--skip-gp", action="store_true")
    parser.add_argument("--workdir", help="where to write the stream's files (default: a "
                                          "temporary directory, removed afterwards)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes for a smoke test (under a minute)")


def _gp_sweep(args: argparse.Namespace, emit) -> list[dict[str, Any]]:
    limit_mib = args.memory_limit_gib * 1024
    records: list[dict[str, Any]] = []
    done: dict[str, Any] | None = None
    completed: list[dict[str, Any]] = []
    n = args.gp_start
    stop: str | None = None
    while stop is None and n <= args.gp_max:
        if done is not None:
            growth = (n / done["n"]) ** 2
            predicted = done["baseline_rss_mib"] + (
                done["peak_rss_mib"] - done["baseline_rss_mib"]) * growth
            if predicted > limit_mib:
                record = {"record": "gp_fit", "n": n, "d": args.d, "status": "not run",
                          "reason": f"predicted peak memory {_fmt_mib(predicted)} from n="
                                    f"{done['n']} exceeds the {_fmt_mib(limit_mib)} limit"}
                emit(record)
                records.append(record)
                stop = record["reason"]
                break
        record = run_in_child(
            "gp", {"n": n, "d": args.d, "n_restarts": args.gp_restarts,
                   "n_test": 200 if args.quick else 2000},
            time_limit=args.time_limit, memory_limit_mib=limit_mib,
        )
        emit(record)
        records.append(record)
        if record.get("status") != "ok":
            limits = {"time limit": f"{args.time_limit:g} s time limit",
                      "memory limit": f"{_fmt_mib(limit_mib)} memory limit"}
            stop = f"n={n} exceeded the {limits[record['status']]}" if (
                record["status"] in limits) else f"n={n} failed: {record.get('error', '')}"
            break
        done = record
        completed.append(record)
        n *= 2
    if done is not None:
        # Extrapolate the largest completed fit: time ~ n^3, memory above baseline ~ n^2.
        size = done["n"] * 2
        target = max(args.rows, size)
        while size <= target:
            ratio = size / done["n"]
            extra = (done["peak_rss_mib"] - done["baseline_rss_mib"]) * ratio**2
            record = {
                "record": "gp_extrapolated", "n": size, "from_n": done["n"],
                "fit_seconds": round(done["fit_seconds"] * ratio**3, 1),
                "peak_rss_mib": round(done["baseline_rss_mib"] + extra, 1),
                "kernel_matrix_mib": round(8 * size**2 / 2**20, 1),
            }
            emit(record)
            records.append(record)
            if size == target:
                break
            size = min(size * 2, target)
    stop_record = {"record": "gp_stop", "reason": stop or f"reached --gp-max {args.gp_max}"}
    # Fit times are rounded to 0.01 s: a tiny fit on a fast machine reports 0.
    if len(completed) >= 2 and all(r["fit_seconds"] > 0 for r in completed[-2:]):
        # How fast the fit time actually grew between the two largest completed runs:
        # below 3 while the O(n^2 d) kernel gradients outweigh the O(n^3) Cholesky.
        a, b = completed[-2], completed[-1]
        stop_record["observed_time_exponent"] = round(
            math.log(b["fit_seconds"] / a["fit_seconds"]) / math.log(b["n"] / a["n"]), 2)
    records.append(stop_record)
    emit(records[-1])
    return records


def _table(stream: dict[str, Any] | None, gp: list[dict[str, Any]], args) -> str:
    lines = []
    if stream is not None:
        lines.append("GradINN on a stream from disk")
        if stream.get("status", "ok") != "ok":
            lines.append(f"  failed: {stream.get('status')} {stream.get('error', '')}")
        else:
            s = stream
            lines += [
                f"  rows x inputs        {s['rows']:,} x {s['d']} ({s['file_mib']} MiB of .npy), "
                f"batch {s['batch_size']}, shuffle buffer {s['shuffle_buffer']}, "
                f"{s['epochs']} epoch(s), {s['network']} network, "
                f"{s['n_collocation']} collocation points/step",
                f"  adapt (1 pass)       {s['adapt_seconds']} s = {s['adapt_rows_per_s']:,} rows/s"
                f"  (mean/std max rel. error vs NumPy {s['adapt_max_rel_error']:.1e})",
                f"  training             {s['train_seconds']} s = {s['train_rows_per_s']:,} rows/s"
                f" ({s['steady_rows_per_s']:,} rows/s after the first step, which took "
                f"{s['first_step_seconds']} s with tracing)",
                f"  memory               peak RSS {_fmt_mib(s['peak_rss_mib'])} (after imports "
                f"{_fmt_mib(s['baseline_rss_mib'])}; during training "
                f"{min(s['rss_mib_during_training']):.0f}-"
                f"{max(s['rss_mib_during_training']):.0f} MiB)",
                f"  accuracy             final loss {s['final_loss']:.4g}, test RMSE "
                f"{s['test_rmse']:.4g} (target std {s['test_std']:.3g})",
            ]
    if gp:
        lines.append("")
        lines.append(f"scikit-learn GaussianProcessRegressor, d={args.d}, ARD Matern 2.5, "
                     f"{args.gp_restarts} restarts (limits: {args.time_limit:g} s, "
                     f"{args.memory_limit_gib:g} GiB)")
        lines.append(f"  {'n':>9}  {'fit time':>14}  {'peak RSS':>10}  {'test RMSE':>9}  status")
        for r in gp:
            if r["record"] == "gp_fit" and r.get("status") == "ok":
                lines.append(f"  {r['n']:>9,}  {_fmt_seconds(r['fit_seconds']):>14}  "
                             f"{_fmt_mib(r['peak_rss_mib']):>10}  {r['test_rmse']:>9.4g}  ok")
            elif r["record"] == "gp_fit":
                timed_out = r["status"] == "time limit"
                took = ">" + _fmt_seconds(r["wall_seconds"]) if timed_out else ""
                seen = r.get("polled_peak_rss_mib")
                memory = (">" if r["status"] == "memory limit" else "") + _fmt_mib(seen) if (
                    seen) else ""
                lines.append(f"  {r['n']:>9,}  {took:>14}  {memory:>10}  {'':>9}  "
                             f"{r['status']} {r.get('reason', r.get('error', ''))}".rstrip())
            elif r["record"] == "gp_extrapolated":
                lines.append(f"  {r['n']:>9,}  {'~' + _fmt_seconds(r['fit_seconds']):>14}  "
                             f"{'~' + _fmt_mib(r['peak_rss_mib']):>10}  {'':>9}  "
                             f"extrapolated from n={r['from_n']:,} (n^3 time, n^2 memory)")
            elif r["record"] == "gp_stop":
                lines.append(f"  sweep stopped: {r['reason']}")
                if "observed_time_exponent" in r:
                    lines.append(f"  fit time grew as n^{r['observed_time_exponent']} between "
                                 f"the two largest completed runs")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Runs the stream fit and the Gaussian process sweep, each size in its own process.

    Prints one JSON line per record as it completes, then a table. Returns
    0, or 1 if the stream fit failed.
    """
    if args.quick:
        args.rows, args.batch_size, args.shuffle_buffer = 4096, 256, 1024
        args.n_collocation, args.gp_start, args.gp_max = 64, 50, 100
        # The limit stops a runaway fit; a loaded machine may need minutes to start one.
        args.gp_restarts, args.time_limit = 0, min(args.time_limit, 600.0)

    def emit(record):
        print(json.dumps(record), flush=True)

    stream = None
    if not args.skip_stream:
        arguments = {"rows": args.rows, "d": args.d, "batch_size": args.batch_size,
                     "epochs": args.epochs, "shuffle_buffer": args.shuffle_buffer or None,
                     "n_collocation": args.n_collocation, "workdir": args.workdir}
        if args.quick:
            arguments.update(width=16, depth=2, n_test=200)
        stream = run_in_child("stream", arguments)
        emit(stream)
    gp = [] if args.skip_gp else _gp_sweep(args, emit)
    print()
    print(_table(stream, gp, args), flush=True)
    return 1 if stream is not None and stream.get("status", "ok") != "ok" else 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m keras_gradinn.bench.scale`, the same as `keras-gradinn bench scale`."""
    parser = argparse.ArgumentParser(prog="keras-gradinn bench scale", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
