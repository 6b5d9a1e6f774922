"""The benchmark runner: every (problem, method, n, noise, seed) of the protocol, resumable.

Each run trains one method on one training set and appends one JSON object to
`DIR/runs.jsonl` as soon as it finishes, so an interrupted sweep restarts
where it stopped: runs already in the file are skipped. Runs go to `jobs`
worker processes (one TensorFlow thread each), which import TensorFlow once
and then take runs one after another.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import pathlib
import sys
import time
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["Run", "load_runs", "plan", "run_one", "sweep", "training_data", "training_set"]

#: Noise levels of the protocol: all four for `friedman1`, 0 and 0.05 elsewhere.
NOISE_LEVELS = {"friedman1": (0.0, 0.01, 0.05, 0.10)}
DEFAULT_NOISE = (0.0, 0.05)
#: The headline cell gets at least this many seeds.
HEADLINE = ("friedman1", 200, 0.0)
HEADLINE_SEEDS = 5
#: Seed of the runs whose predictions on a grid are kept for the field plots.
FIELD_SEED = 0


@dataclasses.dataclass(frozen=True, order=True)
class Run:
    """One cell of the sweep with one seed."""

    problem: str
    n: int
    noise: float
    seed: int
    method: str

    @property
    def key(self) -> tuple:
        return (self.problem, self.method, self.n, float(self.noise), self.seed)

    @classmethod
    def of(cls, record: dict) -> Run:
        """The run a `runs.jsonl` record describes."""
        return cls(record["problem"], int(record["n"]), float(record["noise"]),
                   int(record["seed"]), record["method"])


def plan(problems: Sequence[str], *, sizes: Sequence[int] | None = None,
         noises: Sequence[float] | None = None, methods: Sequence[str] | None = None,
         seeds: int = 3, quick: bool = False, first_seed: int = 0) -> list[Run]:
    """The runs of a sweep, in the order they are run.

    `sizes`, `noises` and `methods` default to the protocol's for each
    problem: `methods.DEFAULT_METHODS` that apply to it (`pinn` only where
    the problem has equations); the methods trained on observed gradients
    run when `methods` names them. `quick` runs one
    seed per cell; otherwise `seeds` per cell and at least `HEADLINE_SEEDS`
    in the headline cell. Seeds count from `first_seed` (0 for the report;
    1000 and up are the spare seeds that choices are tuned on).
    """
    from keras_gradinn import problems as registry
    from keras_gradinn.bench.methods import DEFAULT_METHODS, METHODS, unavailable

    if int(seeds) < 1:
        raise ValueError(f"seeds must be >= 1; got {seeds!r}")
    runs = []
    for name in problems:
        problem = registry.get(name)
        chosen = methods or [m for m in DEFAULT_METHODS if unavailable(m, problem) is None]
        for method in chosen:
            if method not in METHODS:
                raise ValueError(f"method must be one of {METHODS}; got {method!r}")
            reason = unavailable(method, problem)
            if reason is not None:
                raise ValueError(f"problem {name!r} {reason}")
        for noise in noises if noises is not None else NOISE_LEVELS.get(name, DEFAULT_NOISE):
            if not 0 <= float(noise) < 1:
                raise ValueError(f"noise must be in [0, 1); got {noise!r}")
            for n in sizes or problem.sizes:
                if int(n) < 2:
                    raise ValueError(f"n must be >= 2; got {n!r}")
                count = 1 if quick else int(seeds)
                if (name, int(n), float(noise)) == HEADLINE and not quick:
                    count = max(count, HEADLINE_SEEDS)
                runs += [Run(name, int(n), float(noise), seed, method)
                         for seed in range(first_seed, first_seed + count) for method in chosen]
    # Noise 0 and 0.05 first (the report's main tables), so a sweep stopped early
    # has whole tables; within a level, small training sets first.
    return sorted(runs, key=lambda r: (r.noise not in (0.0, 0.05), r.noise, r.n, r.problem,
                                       r.seed, r.method))


def _noisy_values(problem, n: int, noise: float, seed: int):
    """(x, noisy y, the generator after the value noise): every run's first draws."""
    rng = np.random.default_rng([seed, n])
    x = problem.sample(n, rng)
    y = problem.solution(x)
    return x, y + rng.normal(size=y.shape) * (noise * y.std(axis=0)), rng


def training_set(problem, n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` uniform points drawn with the seed `(seed, n)`, plus Gaussian noise of `noise` x std.

    The noise's standard deviation is `noise` times the std of the clean
    targets, per output, as the protocol fixes it.
    """
    x, y, _ = _noisy_values(problem, n, noise, seed)
    return x, y


def training_data(problem, n: int, noise: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`training_set`'s (x, y), plus the Jacobians observed at x with noise of the same level.

    The gradient noise is Gaussian with standard deviation `noise` times the
    root mean square over the n points of each clean Jacobian entry (output
    j, input i): each entry has its own units, as each output has. Not its
    std, as for the values: a linear term's slope is the same everywhere
    (friedman1's 10 x4 + 5 x5), and would stay exact. An input an output
    ignores has a zero entry, which stays exact. The gradient noise is drawn
    from the same generator after the value noise, so x and y are those of
    `training_set`, bit for bit.

    Returns:
        x (n, d), y (n, m) and dy_dx (n, m, d), in the problem's units.
    """
    x, y, rng = _noisy_values(problem, n, noise, seed)
    jacobian = problem.gradient(x)
    scale = np.sqrt(np.mean(jacobian ** 2, axis=0))
    return x, y, jacobian + rng.normal(size=jacobian.shape) * (noise * scale)


def field_grid(problem, size: int = 101) -> np.ndarray:
    """A grid over a 2-D problem's box for the field plots (points outside the domain included)."""
    axes = [np.linspace(low, high, size) for low, high in problem.bounds]
    return np.stack([g.ravel() for g in np.meshgrid(*axes, indexing="xy")], axis=1)


def _field_runs(runs: Sequence[Run]) -> set[tuple]:
    """Runs whose fields are kept: seed 0, noise 0, each problem's second-smallest n."""
    sizes: dict[str, set[int]] = {}
    for run in runs:
        if run.noise == 0:
            sizes.setdefault(run.problem, set()).add(run.n)
    chosen = {p: sorted(n)[min(1, len(n) - 1)] for p, n in sizes.items()}
    return {run.key for run in runs
            if run.noise == 0 and run.seed == FIELD_SEED and chosen[run.problem] == run.n}


def run_one(run: Run, *, quick: bool = False, fields: str | None = None) -> dict:
    """Trains and scores one run; returns its record (see `docs/benchmarks.md`).

    With `fields` (a folder), a 2-D problem's predictions on `field_grid` are
    saved there for the report's field plots.
    """
    import keras_gradinn
    from keras_gradinn import problems as registry
    from keras_gradinn.bench import methods

    problem = registry.get(run.problem)
    if run.method in methods.GRADIENT_METHODS:
        x, y, dy_dx = training_data(problem, run.n, run.noise, run.seed)
    else:  # the gradients' draws come after the values', which are the same without them
        (x, y), dy_dx = training_set(problem, run.n, run.noise, run.seed), None
    x_test, y_test = problem.test_set()
    settings = methods.settings_for(problem.name, quick=quick)
    fitted = methods.fit(run.method, problem, x, y, dy_dx=dy_dx, settings=settings,
                         seed=run.seed)
    start = time.perf_counter()
    prediction = fitted.predict(x_test)
    predict_seconds = time.perf_counter() - start
    jacobian = fitted.gradient(x_test)
    rmse = np.sqrt(np.mean((prediction - y_test) ** 2, axis=0))
    record = {
        **dataclasses.asdict(run),
        "rmse": float(rmse.mean()),
        "nrmse": float(np.mean(rmse / y_test.std(axis=0))),
        "grad_rmse": float(np.sqrt(np.mean((jacobian - problem.gradient(x_test)) ** 2))),
        "rmse_per_output": rmse.tolist(),
        "train_seconds": fitted.train_seconds,
        "predict_seconds": predict_seconds,
        "quick": bool(quick),
        # The methods that read none of the neural settings record none.
        "settings": (None if run.method in ("gp", "gekpls", "gradinn-grad")
                     or run.method.startswith("gradinn-auto") else dataclasses.asdict(settings)),
        "chosen": fitted.chosen,
        "version": keras_gradinn.__version__,
    }
    if fitted.std is not None:
        from keras_gradinn.uncertainty import calibration_curve, coverage, gaussian_nll

        std = fitted.std(x_test)
        # Per output, then averaged, as the RMSE is: outputs have their own units.
        columns = [(y_test[:, j], prediction[:, j], std[:, j]) for j in range(problem.m)]
        record["coverage"] = float(np.mean([coverage(*c) for c in columns]))
        record["nll"] = float(np.mean([gaussian_nll(*c) for c in columns]))
        record["calibration_curve"] = np.mean([calibration_curve(*c)[1] for c in columns],
                                              axis=0).round(4).tolist()
    if fitted.members is not None:
        # Each member alone is a single network of the same recipe: the ensemble's gain.
        errors = np.sqrt(np.mean((fitted.members(x_test) - y_test[:, None]) ** 2, axis=0))
        record["member_rmse"] = float(errors.mean())
    if fields is not None and problem.d == 2:
        folder = pathlib.Path(fields)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{run.problem}-{run.method}-n{run.n}-noise{run.noise:g}.npy"
        np.save(folder / name, fitted.predict(field_grid(problem)).astype(np.float32))
    return record


def load_runs(path: str | os.PathLike) -> list[dict]:
    """Records of a runs file; a torn last line (an interrupted write) is dropped."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    lines = path.read_text().split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            Run.of(record)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            if number == len(lines):  # no newline after it: the write was cut short
                print(f"warning: dropping the incomplete last line of {path}", file=sys.stderr)
                continue
            raise ValueError(f"{path}, line {number}: not a benchmark run record ({error})") \
                from error
        records.append(record)
    return records


def worker_pool(jobs: int) -> concurrent.futures.ProcessPoolExecutor:
    """`jobs` fresh worker processes; with more than one, each keeps to one thread.

    Workers are spawned, not forked, so none inherits the parent's TensorFlow
    state, and each run's timing is its own process's.
    """
    threads = 1 if jobs > 1 else max(os.cpu_count() or 1, 1)
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker, initargs=(threads,))


def _start_worker(threads: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    try:  # the GP's linear algebra, too, keeps to its share of the cores
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(threads)


def _progress(done: int, total: int, started: float, text: str) -> None:
    width = 24
    filled = int(width * done / max(total, 1))
    elapsed = time.perf_counter() - started
    bar = "#" * filled + "." * (width - filled)
    print(f"[{bar}] {done}/{total} {elapsed / 60:5.1f} min  {text}", file=sys.stderr, flush=True)


def sweep(runs: Iterable[Run], out: str | os.PathLike, *, quick: bool = False,
          jobs: int = 1) -> list[dict]:
    """Runs what `runs` lists and `out/runs.jsonl` does not hold yet; returns all records.

    Args:
        runs: the runs to do (see `plan`).
        out: the results folder (created).
        quick: tiny step budgets, for trying the pipeline; a folder holds
            either quick or full runs, never both.
        jobs: worker processes; each uses one thread when `jobs > 1`.
    """
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "runs.jsonl"
    records = load_runs(path)
    if any(bool(r.get("quick")) != bool(quick) for r in records):
        raise ValueError(
            f"{path} holds {'full' if quick else 'quick'} runs; use another --out for "
            f"{'quick' if quick else 'full'} runs"
        )
    runs = list(runs)
    done = {Run.of(r).key for r in records}
    todo = [run for run in runs if run.key not in done]
    total = len(todo)
    if not total:
        return records
    started = time.perf_counter()
    with path.open("a") as sink, worker_pool(jobs) as pool:
        keep = _field_runs(runs)
        futures = {pool.submit(run_one, run, quick=quick,
                               fields=str(folder / "fields") if run.key in keep else None): run
                   for run in todo}
        for count, future in enumerate(concurrent.futures.as_completed(futures), 1):
            run = futures[future]
            try:
                record = future.result()
            except Exception as error:
                # Finished runs are on disk; the rest waits for the next call.
                pool.shutdown(wait=False, cancel_futures=True)
                raise RuntimeError(f"{run} failed: {error}") from error
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            records.append(record)
            _progress(count, total, started,
                      f"{run.problem} {run.method} n={run.n} noise={run.noise:g} seed={run.seed}"
                      f": rmse {record['rmse']:.4g}, grad {record['grad_rmse']:.4g}, "
                      f"{record['train_seconds']:.0f} s")
    return records
