"""The tuning procedure behind `methods.DEFAULTS`: a small grid scored on spare seeds.

For each problem, each candidate setting trains on training sets drawn with
seeds `SPARE_SEEDS` (never used by the sweep, which uses 0-4) at the stated
sizes and noise levels, and is scored by value RMSE on `N_VALIDATION` points
drawn with `VALIDATION_SEED` (not the test set's seed). The candidate with
the lowest geometric mean of the normalised RMSE over those cases wins (the
errors of clean and noisy cases differ by decades, so each case counts by its
ratio). The test points are never looked at.

The candidates are data, not code: `docs/benchmarks/candidates.json` (beside
the records in `tuning.jsonl`, which name them). A candidate's name says what
it changes in the problem's settings (`methods.settings_for`):

- "smooth w=W": the smooth prior at gradient weight W; "2x64" a network of 2
  layers of 64 units, "1x16" a prior of one hidden layer of 16 units;
- "w=W xR/n": weight W at R training points, W * R / n at n points;
- "fourier FxK" / "oscillatory FxK": F random Fourier features of frequency
  K ("fixed": frequencies not trained);
- "sparse S": a group-lasso of strength S per input on the prior's output
  layer (the weight and sparsity fade as 1/n together where "xR/n" is given);
- "screened T": the held-out choice may drop inputs whose relevance in the
  fold fits is below T times the largest (`methods.Settings.screening`);
- "A or B": GradINN fits A and B on 80 % of the training set and refits the
  one that predicts the other 20 % better (`methods.Settings.alternatives`);
- ", cross-validated": below 200 points that choice is 5-fold
  cross-validation (`methods.Settings.cross_validate_below`);
- ", NxW", ", S steps", ", lr L": the network, step budget or peak learning
  rate, changed alike for S-NN and GradINN;
- "sine ..." / "tanh ...": the oscillatory or smooth prior of the candidate
  of the same settings;
- "gp": the reference GradINN is measured against, not a candidate.

    keras-gradinn bench tune friedman1 --n 50 200 [--jobs 2] [--out tune.jsonl]
    python -m keras_gradinn.bench.tune ...   (the same)
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from keras_gradinn.bench.methods import Settings

__all__ = ["add_arguments", "candidate_settings", "default_grid_path", "geometric_mean",
           "load_candidates", "main", "run", "score"]

SPARE_SEEDS = (1000,)
VALIDATION_SEED = 999
N_VALIDATION = 2000


# The problem's own choice rule, which candidates do not inherit (the defaults of
# `friedman1` and `friedman1_10d` choose among priors by held-out data): a candidate
# has a choice rule only where it names one (`alternatives`, `screening`,
# `cross_validate_below`).
_NO_CHOICE = {"alternatives": (), "cross_validate_below": 0, "screening": 0.0}


def default_grid_path() -> pathlib.Path:
    """`docs/benchmarks/candidates.json` of the repository this package is run from."""
    return pathlib.Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "candidates.json"


def _changes(entry: dict[str, Any]) -> dict[str, Any]:
    """A grid entry's changes to `methods.Settings`, in the fields' own types."""
    changes = dict(entry)
    if "prior_options" in changes:
        changes["prior_options"] = tuple(sorted(changes["prior_options"].items()))
    if "alternatives" in changes:
        changes["alternatives"] = tuple(tuple(sorted(_changes(alternative).items()))
                                        for alternative in changes["alternatives"])
    return changes


def load_candidates(path: str | os.PathLike | None = None) -> dict[str, dict[str, tuple]]:
    """Reads a tuning grid: problem -> candidate name -> (method, changes to its settings).

    The file (JSON; see `docs/benchmarks/candidates.json`) maps each problem
    to its candidates, each an object with `method` and the `methods.Settings`
    fields it changes (`prior_options` as an object, `alternatives` as a list
    of such changes).

    Args:
        path: the grid file; default `default_grid_path()`.
    """
    path = pathlib.Path(path) if path is not None else default_grid_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r}: no tuning grid there; pass the path of candidates.json "
            f"(docs/benchmarks/ of the repository) with --grid")
    grids = json.loads(path.read_text(encoding="utf-8"))["problems"]
    return {problem: {name: (entry["method"],
                             _changes({k: v for k, v in entry.items() if k != "method"}))
                      for name, entry in candidates.items()}
            for problem, candidates in grids.items()}


def geometric_mean(values) -> float:
    """The selection score: errors of different cases span decades, so ratios count."""
    return float(np.exp(np.mean(np.log(values))))


def candidate_settings(problem_name: str, candidate: str, *, quick: bool = False,
                       grid: str | os.PathLike | None = None) -> tuple[str, Settings]:
    """The method and the settings that `candidate` of `problem_name` trains with.

    They are the problem's settings (`methods.settings_for`, `quick` as there)
    without their choice rule, then the candidate's changes as the tuning
    grid (`load_candidates(grid)`) gives them.
    """
    from keras_gradinn.bench import methods

    method, changes = load_candidates(grid)[problem_name][candidate]
    return method, methods.settings_for(problem_name, quick=quick).replace(
        **{**_NO_CHOICE, **changes})


def score(problem_name: str, candidate: str, n: int, noise: float, seed: int,
          grid: str | os.PathLike | None = None) -> dict:
    """Validation RMSE of one candidate on one spare training set (of `grid`'s candidates)."""
    from keras_gradinn import problems
    from keras_gradinn.bench import methods
    from keras_gradinn.bench.runner import training_set

    problem = problems.get(problem_name)
    method, settings = candidate_settings(problem_name, candidate, grid=grid)
    x, y = training_set(problem, n, noise, seed)
    x_val = problem.sample(N_VALIDATION, np.random.default_rng(VALIDATION_SEED))
    y_val = problem.solution(x_val)
    fitted = methods.fit(method, problem, x, y, settings=settings, seed=seed)
    rmse = np.sqrt(np.mean((fitted.predict(x_val) - y_val) ** 2, axis=0))
    grad_rmse = np.sqrt(np.mean((fitted.gradient(x_val) - problem.gradient(x_val)) ** 2))
    return {"problem": problem_name, "candidate": candidate, "n": n, "noise": noise,
            "seed": seed, "rmse": float(rmse.mean()),
            "nrmse": float(np.mean(rmse / y_val.std(axis=0))), "grad_rmse": float(grad_rmse),
            "train_seconds": fitted.train_seconds, "chosen": fitted.chosen}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn bench tune` to `parser`."""
    parser.add_argument("problem")
    parser.add_argument("--n", type=int, nargs="+", required=True)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0])
    parser.add_argument("--candidates", nargs="+", help="default: all of the problem's")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SPARE_SEEDS),
                        help=f"spare training seeds (default {SPARE_SEEDS}; the sweep uses 0-4)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", help="append one JSON line per score here")
    # `--candidates` names candidates, so the grid file is `--grid`.
    parser.add_argument("--grid", help="the tuning grid, a JSON file (default: "
                        "docs/benchmarks/candidates.json of the repository)")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Scores the chosen candidates of `args.problem`; usage errors go to `parser`."""
    from keras_gradinn.bench.runner import worker_pool

    grid = str(pathlib.Path(args.grid or default_grid_path()).resolve())
    candidates = load_candidates(grid)
    if args.problem not in candidates:
        parser.error(f"no tuning grid for problem {args.problem!r}; grids: {sorted(candidates)}")
    unknown = set(args.candidates or ()) - set(candidates[args.problem])
    if unknown:
        parser.error(f"unknown candidates {sorted(unknown)}; {args.problem}'s are "
                     f"{list(candidates[args.problem])}")
    args.candidates = args.candidates or list(candidates[args.problem])
    cases = [(args.problem, c, n, noise, seed, grid) for n in args.n for noise in args.noise
             for seed in args.seeds for c in args.candidates]
    results = []
    with worker_pool(args.jobs) as pool:
        for record in pool.map(score, *zip(*cases)):
            results.append(record)
            print(json.dumps(record), flush=True)
            if args.out:
                with open(args.out, "a") as sink:
                    sink.write(json.dumps(record) + "\n")
    print("\ncandidate: geometric mean of nRMSE over cases, then each case", file=sys.stderr)
    for candidate in args.candidates:
        values = [r["nrmse"] for r in results if r["candidate"] == candidate]
        print(f"  {candidate:24s} {geometric_mean(values):.4f}  " + " ".join(
            f"{v:.4f}" for v in values), file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m keras_gradinn.bench.tune`, the same as `keras-gradinn bench tune`."""
    parser = argparse.ArgumentParser(prog="keras-gradinn bench tune",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
