"""The tuning procedure behind `methods.DEFAULTS`: a small grid scored on spare seeds.

For each problem, each candidate setting trains on training sets drawn with
seeds `SPARE_SEEDS` (never used by the sweep, which uses 0-4) at the stated
sizes and noise levels, and is scored by value RMSE on `N_VALIDATION` points
drawn with `VALIDATION_SEED` (not the test set's seed). The candidate with
the lowest geometric mean of the normalised RMSE over those cases wins (the
errors of clean and noisy cases differ by decades, so each case counts by its
ratio). The test points are never looked at.

    python -m keras_gradinn.bench.tune friedman1 [--jobs 2] [--out tune.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from keras_gradinn.bench.methods import Settings

__all__ = ["CANDIDATES", "candidate_settings", "geometric_mean", "main", "score"]

SPARE_SEEDS = (1000,)
VALIDATION_SEED = 999
N_VALIDATION = 2000


# The problem's own choice rule, which candidates do not inherit (the defaults of
# `friedman1` and `friedman1_10d` choose among priors by held-out data): a candidate
# has a choice rule only where it names one (`_select`, `_screened`, `_cross_validated`).
_NO_CHOICE = {"alternatives": (), "cross_validate_below": 0, "screening": 0.0}


def _gradinn(weight: float, prior: str = "smooth", reference_n: int | None = None,
             **options) -> tuple[str, dict]:
    return ("gradinn", {"gradient_weight": weight, "prior": prior, "reference_n": reference_n,
                        "prior_options": tuple(sorted(options.items()))})


def _changed(candidate: tuple[str, dict], **fields) -> tuple[str, dict]:
    """`candidate` with further `Settings` fields changed (the network, the budget)."""
    method, changes = candidate
    return method, {**changes, **fields}


def _reweighted(candidate: tuple[str, dict], weight: float) -> tuple[str, dict]:
    """`candidate` with gradient weight `weight` (at its reference size, if it has one)."""
    return _changed(candidate, gradient_weight=weight)


def _screened(candidate: tuple[str, dict], threshold: float) -> tuple[str, dict]:
    """`candidate`, free to drop inputs less relevant than `threshold` times the most."""
    return _changed(candidate, screening=threshold)


def _cross_validated(candidate: tuple[str, dict], below: int) -> tuple[str, dict]:
    """`candidate`, its held-out choice cross-validated on fewer than `below` points."""
    return _changed(candidate, cross_validate_below=below)


def _select(first: tuple[str, dict], *others: tuple[str, dict]) -> tuple[str, dict]:
    """GradINN choosing between candidates by a held-out split of its training data."""
    alternatives = tuple(tuple(sorted(changes.items())) for _, changes in others)
    return ("gradinn", {**first[1], "alternatives": alternatives})


_FRIEDMAN = {
    "gp": ("gp", {}),  # the reference GradINN is measured against, not a candidate
    "snn": ("snn", {}),
    "smooth w=0.003": _gradinn(0.003),
    "smooth w=0.03": _gradinn(0.03),
    "smooth w=0.1": _gradinn(0.1),
    "smooth 1x16 w=0.1": _gradinn(0.1, width=16),
    # Stiffer still, for noisy data.
    "smooth 1x16 w=0.3": _gradinn(0.3, width=16),
    "smooth 1x16 w=1": _gradinn(1.0, width=16),
    "smooth 1x8 w=0.3": _gradinn(0.3, width=8),
    "smooth 1x8 w=1": _gradinn(1.0, width=8),
    "smooth 1x4 w=0.3": _gradinn(0.3, width=4),
    "smooth 1x4 w=1": _gradinn(1.0, width=4),
    "smooth 2x64 w=0.03": _gradinn(0.03, depth=2),
    "smooth 2x64 w=0.1": _gradinn(0.1, depth=2),
    # "w=W xR/n": weight W at R training points, W * R / n at n points.
    "smooth w=0.03x50/n": _gradinn(0.03, reference_n=50),
    "smooth w=0.03x200/n": _gradinn(0.03, reference_n=200),
    "smooth w=0.1x200/n": _gradinn(0.1, reference_n=200),
    # Fixed random Fourier features at about one period: a kernel-like basis for the field.
    "fourier 128x0.5 fixed w=0.03": _gradinn(0.03, "oscillatory", n_features=128, frequency=0.5,
                                             trainable_frequencies=False),
    "fourier 128x1 fixed w=0.03": _gradinn(0.03, "oscillatory", n_features=128, frequency=1.0,
                                           trainable_frequencies=False),
    "fourier 128x1 fixed w=0.1": _gradinn(0.1, "oscillatory", n_features=128, frequency=1.0,
                                          trainable_frequencies=False),
    "fourier 128x1 w=0.03": _gradinn(0.03, "oscillatory", n_features=128, frequency=1.0),
    "fourier 128x1 w=0.1": _gradinn(0.1, "oscillatory", n_features=128, frequency=1.0),
    "fourier 128x0.5 w=0.03": _gradinn(0.03, "oscillatory", n_features=128, frequency=0.5),
    "fourier 128x2 w=0.03": _gradinn(0.03, "oscillatory", n_features=128, frequency=2.0),
    "fourier 128x2 w=0.1": _gradinn(0.1, "oscillatory", n_features=128, frequency=2.0),
    "fourier 64x1 w=0.03": _gradinn(0.03, "oscillatory", n_features=64, frequency=1.0),
}
# "A or B": GradINN fits A and B on 80 % of the training set and refits the one that
# predicts the other 20 % better (`methods.Settings.alternatives`).
_FRIEDMAN.update({
    f"{first} or {second}": _select(_FRIEDMAN[first], _FRIEDMAN[second])
    for first, second in [("fourier 128x1 w=0.03", "fourier 128x2 w=0.1"),
                          ("fourier 128x1 w=0.03", "smooth 1x16 w=0.1"),
                          ("fourier 128x1 w=0.03", "smooth 1x8 w=1")]
})
# "..., cross-validated": below 200 points the held-out choice is 5-fold cross-validation
# (`methods.Settings.cross_validate_below`) rather than one split of 10-20 points.
_FRIEDMAN["fourier 128x1 w=0.03 or smooth 1x8 w=1, cross-validated"] = _cross_validated(
    _FRIEDMAN["fourier 128x1 w=0.03 or smooth 1x8 w=1"], 200)
# "NxW", "S steps", "lr L": the network (N layers of W units), the step budget or the
# peak learning rate of both the plain network and GradINN's, for the small training
# sets where the GP leads most. Each pair changes S-NN and GradINN alike.
_NETWORKS = {"2x32": {"depth": 2, "width": 32}, "3x128": {"width": 128},
             "5000 steps": {"steps": 5000}, "lr 1e-3": {"learning_rate": 1e-3}}
for _base in ("snn", "fourier 128x1 w=0.03"):
    _FRIEDMAN.update({f"{_base}, {name}": _changed(_FRIEDMAN[_base], **fields)
                      for name, fields in _NETWORKS.items()})
_PHYSICAL = {
    "snn": ("snn", {}),
    "smooth w=0.001": _gradinn(0.001),
    "smooth w=0.01": _gradinn(0.01),
    "smooth w=0.1": _gradinn(0.1),
    "smooth w=1": _gradinn(1.0),
    "smooth 2x64 w=0.01": _gradinn(0.01, depth=2),
    "smooth 2x64 w=0.01x50/n": _gradinn(0.01, depth=2, reference_n=50),
    "smooth 2x64 w=0.01x200/n": _gradinn(0.01, depth=2, reference_n=200),
    "smooth 2x128 w=0.01x200/n": _gradinn(0.01, depth=2, width=128, reference_n=200),
    "smooth 3x64 w=0.01x200/n": _gradinn(0.01, depth=3, reference_n=200),
    "smooth 2x64 w=0.003x200/n": _gradinn(0.003, depth=2, reference_n=200),
    "pinn w=0.01": ("pinn", {"pinn_weight": 0.01}),
    "pinn w=0.1": ("pinn", {"pinn_weight": 0.1}),
    "pinn w=1": ("pinn", {"pinn_weight": 1.0}),
}
_SPARSE = _gradinn(0.03, sparsity=3e-5)  # the 10-D incumbent, the base of the screens
#: problem -> candidate name -> (method, changes to the problem's base settings)
CANDIDATES = {
    "friedman1": _FRIEDMAN,
    "friedman1_10d": {
        **_FRIEDMAN,
        # "sparse S": a group-lasso of strength S per input on the prior's output layer.
        **{f"smooth sparse {s:g} w=0.03": _gradinn(0.03, sparsity=s) for s in (3e-5, 1e-4, 3e-4)},
        # Both the weight and the sparsity fade as 1/n (`Settings.prior_options_for`).
        "smooth sparse 0.0003 w=0.03x50/n": _gradinn(0.03, sparsity=3e-4, reference_n=50),
        # "screened T": the held-out choice may drop inputs whose relevance in the fold
        # fits is below T times the largest; the screened network and prior read only
        # the kept inputs (`methods.Settings.screening`).
        **{f"smooth sparse 3e-05 w=0.03 screened {t:g}": _screened(_SPARSE, t)
           for t in (0.05, 0.1, 0.2, 0.3)},
        "smooth sparse 3e-05 w=0.03 screened 0.3, cross-validated":
            _cross_validated(_screened(_SPARSE, 0.3), 200),
        **{f"smooth sparse 3e-05 w=0.03, {name}": _changed(_SPARSE, **fields)
           for name, fields in _NETWORKS.items()},
    },
    "stokes_sphere": _PHYSICAL,
    "burgers": _PHYSICAL,
    "lotka_volterra": {
        **_PHYSICAL,
        "oscillatory w=0.01": _gradinn(0.01, "oscillatory", frequency=2.5),
        "oscillatory w=0.1": _gradinn(0.1, "oscillatory", frequency=2.5),
        "oscillatory w=1": _gradinn(1.0, "oscillatory", frequency=2.5),
        "oscillatory w=0.1x20/n": _gradinn(0.1, "oscillatory", reference_n=20, frequency=2.5),
        # More and faster waves, for the populations' sharp peaks.
        "oscillatory 64x5 w=0.1x20/n": _gradinn(0.1, "oscillatory", reference_n=20,
                                                frequency=5.0, n_features=64),
        "oscillatory 64x10 w=0.1x20/n": _gradinn(0.1, "oscillatory", reference_n=20,
                                                 frequency=10.0, n_features=64),
        "oscillatory 64x10 w=0.1": _gradinn(0.1, "oscillatory", frequency=10.0, n_features=64),
        "oscillatory 64x20 w=0.1x20/n": _gradinn(0.1, "oscillatory", reference_n=20,
                                                 frequency=20.0, n_features=64),
        "oscillatory 128x10 w=0.1x20/n": _gradinn(0.1, "oscillatory", reference_n=20,
                                                  frequency=10.0, n_features=128),
    },
}
# "A or A/10": a held-out choice between a prior and the same prior ten times weaker,
# for the sizes at which the data say more than the prior.
_SINE = CANDIDATES["lotka_volterra"]["oscillatory 64x10 w=0.1x20/n"]
CANDIDATES["lotka_volterra"].update({
    "sine w=0.1x20/n or w=0.01x20/n": _select(_SINE, _reweighted(_SINE, 0.01)),
})
_TANH = _PHYSICAL["smooth 2x64 w=0.003x200/n"]
CANDIDATES["burgers"] = {
    **_PHYSICAL,
    "tanh w=0.003x200/n or w=0.0003x200/n": _select(_TANH, _reweighted(_TANH, 0.0003)),
}


def geometric_mean(values) -> float:
    """The selection score: errors of different cases span decades, so ratios count."""
    return float(np.exp(np.mean(np.log(values))))


def candidate_settings(problem_name: str, candidate: str, *,
                       quick: bool = False) -> tuple[str, Settings]:
    """The method and the settings that `candidate` of `problem_name` trains with.

    They are the problem's settings (`methods.settings_for`, `quick` as there)
    without their choice rule, then the candidate's changes.
    """
    from keras_gradinn.bench import methods

    method, changes = CANDIDATES[problem_name][candidate]
    return method, methods.settings_for(problem_name, quick=quick).replace(
        **{**_NO_CHOICE, **changes})


def score(problem_name: str, candidate: str, n: int, noise: float, seed: int) -> dict:
    """Validation RMSE of one candidate on one spare training set."""
    from keras_gradinn import problems
    from keras_gradinn.bench import methods
    from keras_gradinn.bench.runner import training_set

    problem = problems.get(problem_name)
    method, settings = candidate_settings(problem_name, candidate)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("problem")
    parser.add_argument("--n", type=int, nargs="+", required=True)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0])
    parser.add_argument("--candidates", nargs="+", help="default: all of the problem's")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SPARE_SEEDS),
                        help=f"spare training seeds (default {SPARE_SEEDS}; the sweep uses 0-4)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", help="append one JSON line per score here")
    args = parser.parse_args(argv)
    from keras_gradinn.bench.runner import worker_pool

    if args.problem not in CANDIDATES:
        parser.error(f"no tuning grid for problem {args.problem!r}; grids: {sorted(CANDIDATES)}")
    unknown = set(args.candidates or ()) - set(CANDIDATES[args.problem])
    if unknown:
        parser.error(f"unknown candidates {sorted(unknown)}; {args.problem}'s are "
                     f"{list(CANDIDATES[args.problem])}")
    args.candidates = args.candidates or list(CANDIDATES[args.problem])
    cases = [(args.problem, c, n, noise, seed) for n in args.n for noise in args.noise
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


if __name__ == "__main__":
    sys.exit(main())
