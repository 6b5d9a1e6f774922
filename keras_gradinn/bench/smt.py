"""SMT's gradient-enhanced baselines, GENN and GEKPLS, trained on values and observed gradients.

SMT (the Surrogate Modeling Toolbox) is in the `bench` extra only, so it is
imported when a model is fitted, never when this module is.

- `fit_genn`: SMT's gradient-enhanced neural network (`GENN`, a `jenn`
  network), one network for all outputs, fitted to the values and to every
  entry of the Jacobians with SMT's default weights (gradient term
  `gamma = 1`, L2 penalty `lambd = 0.01`) and its Adam. The network, the
  budget and the step size are the benchmark's neural methods': `depth`
  hidden layers of `width` tanh units (SMT's default is two of 12),
  `steps` full-batch iterations (SMT's default is 1,000) and Adam's step
  `learning_rate`, held constant as jenn has no schedule. SMT's default
  step, 0.05, suits its small network: with 3 x 64 on friedman1 (n=100,
  spare seed 1000) the training cost never settles (from 0.004 up to 0.8
  in the last 2,000 steps), and the last weights predict held-out data
  (400 points of seed 1001) no better than a constant (RMSE 4.0); at 3e-3
  the cost settles (0.0015) and the held-out RMSE is 0.042. Without the L2
  penalty it was 0.38, so `lambd` keeps SMT's default.
- `fit_gekpls`: SMT's gradient-enhanced Kriging with partial least squares
  (`GEKPLS`), one model per output since SMT's Kriging is single-output.
  The gradients enter it twice: they set the PLS directions of its
  anisotropic kernel, and each training point gets up to `extra_points`
  neighbours a step `1e-4` of the domain away, valued by first-order Taylor
  expansion along the point's leading directions. Away from SMT's defaults:
  all `d` PLS components (the default 2 is a reduction for inputs in the
  tens or hundreds; with d <= 10 the kernel keeps one length scale per
  direction, like the GP baseline's ARD kernel), as many extra points as
  `gradient_points_budget` allows (the default 0 leaves the gradient values
  out of the fit, using only their directions), and an estimated noise
  variance (`eval_noise=True`, as the GP baseline's WhiteKernel; the
  default interpolates noisy values exactly).

GENN's Jacobians are SMT's `predict_derivatives`. GEKPLS's are central
differences of its predictions with a step of `STEP` times the domain's
width per input, as the protocol allows for the GP: SMT 2.15 differentiates
its PLS kernel in a Python loop over every (point, training point, input),
about 2 s for 2,000 points against 120 training points, hours for the 10,000
test points against 1,000. Predictions go to SMT `CHUNK` rows at a time, as its
Kriging holds an array of (rows x training points x inputs) floats.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["CHUNK", "GEKPLS_POINTS", "STEP", "SMTSurrogate", "fit_gekpls", "fit_genn",
           "gekpls_extra_points", "import_smt"]

#: GEKPLS's training points with their extra points, at most: its Kriging fit costs
#: about (n (1 + extra points))^3 per likelihood evaluation. At 1,000 points one fit
#: took 27 s (friedman1, n=200) and 62 s (friedman1_10d, n=100) on one core, as the GP
#: baseline at n=1,000; at 2,000 (friedman1, n=500) it had not ended in 15 minutes
#: (on a shared machine, then loaded about 4x).
GEKPLS_POINTS = 1000
#: Rows per call to SMT's predictions.
CHUNK = 2000
#: GEKPLS's central-difference step over the domain's width. Not the protocol's 1e-5:
#: the extra points, 1e-4 of the width from their training point, make the Kriging
#: system ill-conditioned, and its mean's round-off over a step of 1e-5 is about 0.02
#: on friedman1's slopes of about 10 (1e-4 at 1e-3, against SMT's own derivatives).
STEP = 1e-3


def import_smt() -> Any:
    """`smt.surrogate_models`, or an ImportError that says how to install it."""
    try:
        from smt import surrogate_models
    except ImportError as error:
        raise ImportError("the genn and gekpls benchmark methods need SMT (the Surrogate "
                          "Modeling Toolbox): pip install 'keras-gradinn[bench]'") from error
    return surrogate_models


class SMTSurrogate:
    """Fitted SMT models answering in the problem's units; each gives some output columns.

    Args:
        models: trained SMT surrogates, in output order; GENN gives all m
            outputs from one model, GEKPLS one output per model.
        d: number of inputs.
        step: per-input steps (d,) of central differences for the
            Jacobians, or None for SMT's `predict_derivatives`.
    """

    def __init__(self, models: list, d: int, *, step: np.ndarray | None = None):
        self.models, self.d = list(models), int(d)
        self.step = None if step is None else np.asarray(step, dtype=np.float64)

    def _chunked(self, answer, x: np.ndarray) -> np.ndarray:
        """`answer(rows)` of every model, CHUNK rows at a time, outputs side by side."""
        x = np.asarray(x, dtype=np.float64)
        return np.concatenate([
            np.concatenate([answer(model, x[start:start + CHUNK]) for model in self.models],
                           axis=1)
            for start in range(0, len(x), CHUNK)], axis=0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted values, shape (n, m)."""
        return self._chunked(lambda model, rows: model.predict_values(rows), x)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """Jacobians of the predictions, shape (n, m, d)."""
        if self.step is None:
            return self._chunked(lambda model, rows: np.stack(
                [model.predict_derivatives(rows, i) for i in range(self.d)], axis=-1), x)
        x = np.asarray(x, dtype=np.float64)
        columns = []
        for i, h in enumerate(self.step):
            shift = np.zeros(self.d)
            shift[i] = h
            columns.append((self.predict(x + shift) - self.predict(x - shift)) / (2 * h))
        return np.stack(columns, axis=-1)

    @property
    def has_std(self) -> bool:
        """Whether every model gives a variance (SMT's Kriging does; GENN does not)."""
        return all(model.supports["variances"] for model in self.models)

    def std(self, x: np.ndarray) -> np.ndarray:
        """Standard deviations of the predictions, shape (n, m), from SMT's variances."""
        if not self.has_std:
            raise ValueError(f"{self.models[0].name} gives no variances")
        variances = self._chunked(lambda model, rows: model.predict_variances(rows), x)
        return np.sqrt(np.maximum(variances, 0.0))


def _checked(x: np.ndarray, y: np.ndarray, dy_dx: np.ndarray):
    """(x (n, d), y (n, m), dy_dx (n, m, d)) as float64, or a ValueError naming the bad one."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    y = y.reshape(len(y), -1) if y.ndim == 1 else y
    dy_dx = np.asarray(dy_dx, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n, d); got {x.shape}")
    n, d = x.shape
    if y.ndim != 2 or len(y) != n:
        raise ValueError(f"y must have shape ({n}, m); got {y.shape}")
    if dy_dx.shape != (n, y.shape[1], d):
        raise ValueError(f"dy_dx must have shape (n, m, d) = ({n}, {y.shape[1]}, {d}); got "
                         f"{dy_dx.shape}")
    if not np.isfinite(dy_dx).all():
        row = int(np.argwhere(~np.isfinite(dy_dx))[0, 0])
        raise ValueError(f"SMT's models take every gradient entry observed; dy_dx has a "
                         f"non-finite entry in row {row}")
    return x, y, dy_dx


def fit_genn(x: np.ndarray, y: np.ndarray, dy_dx: np.ndarray, *, width: int = 64,
             depth: int = 3, steps: int = 20_000, learning_rate: float = 3e-3,
             seed: int = 0) -> SMTSurrogate:
    """SMT's GENN fitted to values and Jacobians: `depth` x `width` tanh, `steps` Adam steps.

    Args:
        x: training inputs (n, d) in the problem's units.
        y: training targets (n, m) or (n,).
        dy_dx: observed Jacobians (n, m, d), every entry finite.
        width: units per hidden layer.
        depth: hidden layers.
        steps: full-batch optimiser iterations.
        learning_rate: Adam's step (SMT's `alpha`).
        seed: seed of the initial weights.
    """
    x, y, dy_dx = _checked(x, y, dy_dx)
    model = import_smt().GENN(hidden_layer_sizes=[int(width)] * int(depth),
                              num_iterations=int(steps), alpha=float(learning_rate),
                              seed=int(seed), print_global=False)
    model.set_training_values(x, y)
    for i in range(x.shape[1]):
        model.set_training_derivatives(x, dy_dx[:, :, i], i)
    model.train()
    return SMTSurrogate([model], x.shape[1])


def gekpls_extra_points(n: int, d: int, *, budget: int = GEKPLS_POINTS) -> int:
    """GEKPLS's extra points per training point: all `d` directions if `budget` allows.

    With n points and e extra points each the Kriging fit holds n (1 + e)
    points; e is the largest in [0, d] that keeps it within `budget`.
    """
    return int(min(d, max(0, budget // max(n, 1) - 1)))


def fit_gekpls(x: np.ndarray, y: np.ndarray, dy_dx: np.ndarray, bounds: np.ndarray, *,
               seed: int = 0, budget: int = GEKPLS_POINTS) -> SMTSurrogate:
    """SMT's GEKPLS fitted to values and gradients, one model per output.

    Args:
        x: training inputs (n, d) in the problem's units, d >= 2.
        y: training targets (n, m) or (n,).
        dy_dx: observed Jacobians (n, m, d), every entry finite.
        bounds: the domain box (d, 2): the scale of the extra points' step.
        seed: seed of the hyper-parameter optimiser's starting points.
        budget: most Kriging points per model (see `gekpls_extra_points`).
    """
    x, y, dy_dx = _checked(x, y, dy_dx)
    n, d = x.shape
    if d < 2:
        raise ValueError(f"GEKPLS needs at least 2 inputs (its PLS has at least 2 "
                         f"components); got d = {d}")
    bounds = np.asarray(bounds, dtype=np.float64)
    if bounds.shape != (d, 2):
        raise ValueError(f"bounds must have shape ({d}, 2); got {bounds.shape}")
    gekpls = import_smt().GEKPLS
    models = []
    for j in range(y.shape[1]):
        model = gekpls(xlimits=bounds, n_comp=d, extra_points=gekpls_extra_points(n, d,
                                                                                budget=budget),
                       eval_noise=True, seed=int(seed), print_global=False)
        model.set_training_values(x, y[:, j])
        for i in range(d):
            model.set_training_derivatives(x, dy_dx[:, j, i], i)
        model.train()
        models.append(model)
    return SMTSurrogate(models, d, step=STEP * (bounds[:, 1] - bounds[:, 0]))
