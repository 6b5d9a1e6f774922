"""`GradINNRegressor`: a scikit-learn estimator that chooses its own prior.

For the user with arrays or a DataFrame who wants a surrogate: bounds from
the data, the package's training recipe (`training.train`), and with
`prior="auto"` (the default) a prior chosen by k-fold cross-validation among
a small candidate set fixed in the library (`CANDIDATES`):

- `"none"`: no gradient term, the plain network. With it in the set, the
  choice is never worse than a plain network on held-out folds.
- `"kernel"`: the gradient of a Gaussian process's posterior mean, fitted to
  the same training rows (on each fold, to that fold's rows only), weight 1:
  a belief learned from the data (`priors.kernel`).
- `"smooth"`: a flexible trainable tanh prior (two layers of 64 units) at
  weight 0.01: the gradient varies smoothly, with the data choosing the
  field.
- `"stiff"`: a trainable tanh prior of 8 units at weight 1: a strong belief
  in a simple field, which suits noisy data.
- `"screened"` (with at least `SCREEN_MIN_INPUTS` inputs): the best of the
  three priors above, with the network reading only the inputs whose
  relevance (`GradINN.input_relevance`) in that candidate's fold fits is at
  least `screen_threshold` (0.3) of the largest; tried only if some input
  falls below it.

Each candidate is fitted once per fold, all folds together as one stacked
network (`StackedMLP`) for `cv_steps` steps; the one with the lowest mean
held-out squared error (targets standardised) is then refitted on all the
rows for `steps` steps, as an ensemble of `n_members` networks.

The ensemble's spread is its uncertainty (`predict(X, return_std=True)`),
calibrated on held-out rows (`calibrate=True`): the chosen candidate is
fitted once more per fold as `n_members` networks per fold (one stack,
`cv_steps` steps), and a scale of the spread and a floor (the error the
spread does not show, noise included) are chosen by maximum likelihood of
the held-out residuals (`keras_gradinn.uncertainty.fit_calibration`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import numbers
import pathlib
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from keras_gradinn import training
from keras_gradinn.jacobian import relevance
from keras_gradinn.uncertainty import Calibration
from keras_gradinn.validation import non_negative

__all__ = ["CANDIDATES", "Candidate", "GradINNRegressor"]

#: Inputs from which the "screened" candidate is tried.
SCREEN_MIN_INPUTS = 3
#: Collocation points are drawn from a fixed quasi-random pool of this size.
POOL_SIZE = 2**14
#: The Gaussian process of the kernel prior: restarts, rows for its
#: hyper-parameters, rows it is conditioned on.
GP_RESTARTS, GP_FIT_POINTS, GP_MAX_POINTS = 3, 300, 1000


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A prior and its gradient weight, as the estimator builds it.

    `prior` is `"none"` (no gradient term), `"kernel"` (`priors.kernel`, on
    the rows the fit sees), `"smooth"`, `"oscillatory"` or `"constant"`;
    `options` are keyword arguments of that `priors` builder, as
    `(name, value)` pairs. Pass Candidates as `GradINNRegressor(prior=...)`
    to fix one, or in `candidates=[...]` to choose among your own.

    Example:
        >>> Candidate("wavy", "oscillatory", 0.03, (("frequency", 1.0),)).checked().name
        'wavy'
    """

    name: str
    prior: str
    gradient_weight: float
    options: tuple[tuple[str, Any], ...] = ()

    KINDS = ("none", "kernel", "smooth", "oscillatory", "constant")

    def checked(self) -> Candidate:
        """This candidate, or a ValueError naming what is wrong with it."""
        if self.prior not in self.KINDS:
            raise ValueError(f"Candidate {self.name!r}: prior must be one of {self.KINDS}; "
                             f"got {self.prior!r}")
        weight = self.gradient_weight
        non_negative(weight, f"Candidate {self.name!r}: gradient_weight")
        if (self.prior == "none") != (weight == 0):
            raise ValueError(f"Candidate {self.name!r}: prior 'none' and only it has weight 0; "
                             f"got prior {self.prior!r} with weight {weight!r}")
        if not all(isinstance(o, tuple) and len(o) == 2 and isinstance(o[0], str)
                   for o in self.options):
            raise ValueError(f"Candidate {self.name!r}: options must be (name, value) pairs; "
                             f"got {self.options!r}")
        return self

    def as_dict(self) -> dict:
        """A JSON-serialisable form; `Candidate.of(d)` reads it back."""
        return {"name": self.name, "prior": self.prior, "gradient_weight": self.gradient_weight,
                "options": [list(option) for option in self.options]}

    @classmethod
    def of(cls, value: dict) -> Candidate:
        return cls(value["name"], value["prior"], value["gradient_weight"],
                   tuple(tuple(option) for option in value["options"]))


#: The candidates of `prior="auto"`, in order; also the priors one can fix by name.
CANDIDATES: dict[str, Candidate] = {
    candidate.name: candidate for candidate in (
        Candidate("none", "none", 0.0),
        Candidate("kernel", "kernel", 1.0),
        Candidate("smooth", "smooth", 0.01, (("depth", 2),)),
        Candidate("stiff", "smooth", 1.0, (("width", 8),)),
    )
}
#: Further priors one can fix by name, with their default weights.
FIXED = {
    "oscillatory": Candidate("oscillatory", "oscillatory", 0.01),
    "constant": Candidate("constant", "constant", 0.01),
}


class _NoRetracingWarning(logging.Filter):
    """Drops TensorFlow's warning that a function was traced "excessively"."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_retracing():
    """Within: no retracing warnings, which every fit would otherwise print.

    Each candidate's fold stack and the final ensemble are new models with
    their own traced steps; TensorFlow counts traces per code object across
    models and calls five of them excessive retracing.
    """
    import tensorflow as tf

    logger, quiet = tf.get_logger(), _NoRetracingWarning()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _seed(random_state) -> int:
    """An integer seed from sklearn's `random_state` (None, int or RandomState)."""
    if random_state is None:
        return int(np.random.default_rng().integers(2**31 - 1))
    if isinstance(random_state, numbers.Integral):
        return int(random_state) % (2**31 - 1)
    return int(random_state.randint(2**31 - 1))


class GradINNRegressor(RegressorMixin, BaseEstimator):
    """A GradINN surrogate as a scikit-learn regressor, choosing its prior by cross-validation.

    Args:
        prior: `"auto"` to choose among `CANDIDATES` by cross-validation, or
            one prior to fit without a choice: a name (a key of `CANDIDATES`,
            or `"oscillatory"`, `"constant"`) or a `Candidate`.
        gradient_weight: with a fixed `prior`, its weight (None: the
            candidate's); must be None with `"auto"`.
        derivative_weight: the weight of observed derivatives, when `fit`
            is given `dy_dx` (see `GradINN`; 1 counts each observed
            derivative entry's squared error as much as a value's). With
            `prior="auto"`, the chosen candidate's folds are then also fitted
            for `steps` steps, and the final fit runs `steps` or `cv_steps`,
            whichever the folds score better (`final_steps_`): long fits
            learn noisy derivatives by heart.
        candidates: with `"auto"`, the candidates to choose among: names
            from `CANDIDATES`, `Candidate` objects, and `"screened"` to try
            screening the best of them (None: all of `CANDIDATES` and
            `"screened"`).
        bounds: the domain box, one `(low, high)` per input; None for the
            data's range widened by 5 % on each side.
        contains: optional `contains(x) -> bool mask` for a domain that is
            not a box; collocation points are drawn inside it (not saved with
            `save`).
        width: hidden units per layer of the network.
        depth: hidden layers of the network.
        activation: hidden activation (one of `jacobian.ACTIVATIONS`).
        steps: training steps of the final fit (see `training.train`).
        learning_rate: initial learning rate of the cosine-decayed Adam.
        batch_size: rows per step above which batches are drawn.
        n_collocation: collocation points per step.
        cv: folds of the cross-validation: an integer k for k shuffled folds
            (at most one per row), or as `GridSearchCV` takes it: a
            scikit-learn splitter, or an iterable of (train, test) indices.
        cv_steps: training steps of each fold fit (None: `steps // 8`).
        screen_threshold: the "screened" candidate drops the inputs whose
            relevance is below this fraction of the largest.
        n_members: networks in the final model, each trained on all rows
            from its own initial weights (they share each step's
            collocation points); predictions are their mean, and their
            spread the uncertainty. 1 gives a single network (its standard
            deviation is then the calibrated floor alone, the same
            everywhere).
        calibrate: whether to calibrate the standard deviation on held-out
            rows (the cross-validation's folds; costs one more stacked fit
            of `cv_steps` steps). False: `predict(X, return_std=True)` gives
            the raw spread of the members.
        random_state: seed of the folds, weights and collocation draws
            (None: fresh each fit).
        verbose: 1 to print the cross-validation as it goes.

    Attributes:
        model_: the fitted `GradINN`, its network a stack of `n_members`
            members (`StackedMLP`).
        history_: the final fit's `loss`, `data_loss` and `gradient_loss`
            at the end of each of its epochs (`training.epoch_steps` steps).
        best_prior_: the name of the chosen (or fixed) prior.
        best_candidate_: that `Candidate` ("screened": the screened
            candidate's prior and weight).
        best_index_: its row in `cv_results_` (None without a choice).
        final_steps_: the final fit's training steps: `steps`, or with
            `prior="auto"` and observed derivatives, whichever of `cv_steps`
            and `steps` scored better in `steps_scores_`.
        steps_scores_: that choice's mean held-out scores (as in
            `cv_results_`) of the chosen candidate by training steps; empty
            without it.
        calibration_: the `uncertainty.Calibration` of the standard
            deviation (None with `calibrate=False`).
        calibration_results_: with `calibrate`, the held-out rows' 90 %
            interval `coverage` and Gaussian `nll` (normalised targets,
            calibrated in-sample), the raw spread's `raw_coverage`, and the
            coverage `observed` of central intervals at probabilities
            `levels` (`uncertainty.calibration_curve`).
        cv_results_: like `GridSearchCV`'s: `params`, `split<i>_test_score`
            (negative mean squared error of the standardised targets on fold
            i), `mean_test_score`, `std_test_score`, `rank_test_score`,
            `fit_time` (seconds for all folds), `gradient_weight`; empty
            without a choice.
        bounds_: the domain box used, shape (d, 2).
        n_features_in_, feature_names_in_: as scikit-learn defines them.
        n_outputs_: number of target columns.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(0).random((40, 2))
        >>> model = GradINNRegressor(steps=200, cv_steps=50, random_state=0)
        >>> model.fit(x, x[:, 0] * x[:, 1]).predict(x[:2]).shape
        (2,)
    """

    _parameter_constraints: dict = {
        "prior": [StrOptions({"auto", *CANDIDATES, *FIXED}), Candidate],
        "gradient_weight": [Interval(numbers.Real, 0, None, closed="left"), None],
        "derivative_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "candidates": ["array-like", None],
        "bounds": ["array-like", None],
        "contains": [callable, None],
        "width": [Interval(numbers.Integral, 1, None, closed="left")],
        "depth": [Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions({"linear", "tanh", "sigmoid", "silu", "softplus", "relu",
                                   "elu", "gelu"})],
        "steps": [Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_collocation": [Interval(numbers.Integral, 1, None, closed="left")],
        "cv": [Interval(numbers.Integral, 2, None, closed="left"), "cv_object"],
        "screen_threshold": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_members": [Interval(numbers.Integral, 1, None, closed="left")],
        "calibrate": ["boolean"],
        "cv_steps": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        prior: str | Candidate = "auto",
        *,
        gradient_weight: float | None = None,
        derivative_weight: float = 1.0,
        candidates: Sequence[str | Candidate] | None = None,
        bounds=None,
        contains: Callable[[np.ndarray], np.ndarray] | None = None,
        width: int = 64,
        depth: int = 3,
        activation: str = "silu",
        steps: int = training.STEPS,
        learning_rate: float = training.LEARNING_RATE,
        batch_size: int = training.FULL_BATCH_ROWS,
        n_collocation: int = 128,
        cv=5,
        cv_steps: int | None = None,
        screen_threshold: float = 0.3,
        n_members: int = 5,
        calibrate: bool = True,
        random_state=None,
        verbose: int = 0,
    ):
        self.prior = prior
        self.gradient_weight = gradient_weight
        self.derivative_weight = derivative_weight
        self.candidates = candidates
        self.bounds = bounds
        self.contains = contains
        self.width = width
        self.depth = depth
        self.activation = activation
        self.steps = steps
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_collocation = n_collocation
        self.cv = cv
        self.cv_steps = cv_steps
        self.screen_threshold = screen_threshold
        self.n_members = n_members
        self.calibrate = calibrate
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting

    def fit(self, X, y, sample_weight=None, *, dy_dx=None, checkpoint_dir=None,
            checkpoint_seconds: float = 30.0) -> GradINNRegressor:
        """Chooses the prior (with `prior="auto"`) and fits the surrogate on all rows.

        Args:
            X: inputs (n, d): an array or a DataFrame.
            y: targets (n,) or (n, m).
            sample_weight: optional non-negative weights of the rows; the
                data term is their weighted mean, and so are the
                cross-validation scores.
            dy_dx: optional observed derivatives dy/dx at the rows, in the
                units of y and X: (n, d) for a 1-D y, else (n, m, d); NaN
                marks an entry that was not observed. Every fit (the
                folds', the calibration's, the final one) trains on them
                at its own rows, weighted by `derivative_weight`; the
                cross-validation still scores held-out values.
            checkpoint_dir: a folder that makes the fit resumable: each
                candidate's scores are kept there once it is done, and the
                final fit's state at most every `checkpoint_seconds`. A later
                call with the same data, parameters and folder (after the
                process was killed, say) continues from them, to the model
                the uninterrupted fit gives (exactly, with full batches). The
                caller removes the folder when done.
            checkpoint_seconds: the least time between final-fit checkpoints.
        """
        self._validate_params()
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        if len(X) < 2:
            raise ValueError(f"GradINNRegressor needs at least 2 samples; got n_samples = "
                             f"{len(X)}")
        if self.prior != "auto" and self.candidates is not None:
            raise ValueError("candidates apply to prior='auto'; a fixed prior has no choice")
        if self.prior == "auto" and self.gradient_weight is not None:
            raise ValueError("gradient_weight applies to a fixed prior; with prior='auto' each "
                             "candidate has its own (set prior to a candidate's name)")
        self._y_ndim = y.ndim
        targets = y.reshape(len(y), -1)
        self.n_outputs_ = targets.shape[1]
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if not weights.sum() > 0:
            raise ValueError("sample_weight must have a positive sum")
        weights = weights / weights.mean()
        if dy_dx is not None:
            from keras_gradinn.derivatives import check_derivatives

            dy_dx = check_derivatives(dy_dx, len(X), targets.shape[1], X.shape[1])
        self.bounds_ = self._bounds(X)
        seed = _seed(self.random_state)
        context = _Context(self, X, targets, weights, seed, checkpoint_dir, dy_dx)
        # Split once: a `cv` given as an iterable of splits may be a one-pass generator.
        splits = self._splits(context) if self.prior == "auto" or self.calibrate else None
        with _quiet_retracing():
            if self.prior == "auto":
                chosen, mask, fold_masks = self._cross_validate(context, splits)
            else:
                chosen, mask, fold_masks = self._fixed_candidate(), None, None
                self.best_index_, self.cv_results_ = None, {}
            self.best_prior_ = chosen.name
            self.best_candidate_ = chosen
            self.steps_scores_ = ({} if self.prior != "auto" or dy_dx is None
                                  else self._score_steps(context, chosen, fold_masks, splits))
            self.final_steps_ = (max(self.steps_scores_, key=self.steps_scores_.get)
                                 if self.steps_scores_ else self.steps)
            masks = None if mask is None else np.repeat(mask[None], self.n_members, axis=0)
            self.model_, self.history_ = context.fit_final(chosen, masks, self.final_steps_,
                                                           checkpoint_seconds)
            # After the final fit, so that calibrating leaves the model's weights as they were.
            self.calibration_, self.calibration_results_ = (
                self._calibrate(context, chosen, fold_masks, splits) if self.calibrate
                else (None, {}))
        self.model_.calibration = self.calibration_
        self.model_.metadata = self._metadata()
        return self

    def _fold_steps(self) -> int:
        """Training steps of each fold fit."""
        return self.cv_steps or max(1, self.steps // 8)

    def _score_steps(self, context: _Context, candidate: Candidate, fold_masks, splits
                     ) -> dict[int, float]:
        """The chosen candidate's mean held-out score at the fold fits' budget and at `steps`.

        With observed derivatives the final fit runs the better of the two:
        a long fit learns all n (d + 1) noisy targets by heart, and the
        slopes' noise bends the surface between the rows (on noisy data a
        fit of `cv_steps` steps can beat one of `steps` severalfold), while
        on clean data the long fit is usually the better one.
        """
        short = self._fold_steps()
        scores = {short: float(self.cv_results_["mean_test_score"][self.best_index_])}
        if self.steps > short:
            _, done = context.held_out(candidate, splits, steps=self.steps, masks=fold_masks,
                                       name=f"cv-{candidate.name}-{self.steps}-steps")
            scores[self.steps] = -float(np.mean(done["losses"]))
            if self.verbose:
                print(f"GradINNRegressor: {candidate.name:>9} at {self.steps} steps: held-out "
                      f"MSE {-scores[self.steps]:.4g} ({done['seconds']:.0f} s), at {short}: "
                      f"{-scores[short]:.4g}", flush=True)
        return scores

    def _calibrate(self, context: _Context, candidate: Candidate, fold_masks, splits
                   ) -> tuple[Calibration, dict]:
        """The calibration of the ensemble's spread from `n_members` networks per fold."""
        from keras_gradinn.uncertainty import (
            calibration_curve,
            coverage,
            fit_calibration,
            gaussian_nll,
        )

        done = context.recall("calibration")
        if done is None:
            k = self.n_members
            masks = None if fold_masks is None else np.repeat(fold_masks, k, axis=0)
            model = context.fit(candidate, steps=self._fold_steps(),
                                masks=masks, splits=splits, replicas=k)
            predicted = (model.predict_members(context.x) - context.mean) / context.spread
            rows = np.concatenate([test for _, test in splits])
            groups = np.concatenate([np.full(len(test), j) for j, (_, test) in enumerate(splits)])
            members = predicted[rows].reshape(len(rows), len(splits), k, -1)[
                np.arange(len(rows)), groups]  # (rows, k, m): the fold's members at its rows
            spreads = members.std(1, ddof=1) if k > 1 else np.zeros_like(members[:, 0])
            done = {"rows": rows.tolist(), "spreads": spreads.tolist(),
                    "residuals": (context.t[rows] - members.mean(1)).tolist()}
            context.remember("calibration", done)
        rows = np.asarray(done["rows"])
        residuals, spreads = np.asarray(done["residuals"]), np.asarray(done["spreads"])
        # No noise level: a GP's white noise, the one estimate at hand, also
        # takes up its own misfit (on clean data as much as the networks'
        # error), so the floor holds all error the spread does not explain.
        calibration = fit_calibration(residuals, spreads, context.weights[rows])
        std = calibration.std(spreads, observation=True)
        zeros = np.zeros_like(residuals)
        levels, observed = calibration_curve(residuals, zeros, std)
        results = {"coverage": coverage(residuals, zeros, std),
                   "nll": gaussian_nll(residuals, zeros, std),
                   "raw_coverage": coverage(residuals, zeros, spreads),
                   "levels": levels.tolist(), "observed": observed.tolist()}
        if self.verbose:
            print(f"GradINNRegressor: calibration scale {calibration.scale}, floor "
                  f"{calibration.floor}; held-out 90 % coverage {results['coverage']:.2f} "
                  f"(raw spread {results['raw_coverage']:.2f})", flush=True)
        return calibration, results

    def _fixed_candidate(self) -> Candidate:
        if isinstance(self.prior, Candidate):
            candidate = self.prior.checked()
        else:
            candidate = CANDIDATES.get(self.prior) or FIXED[self.prior]
        if self.gradient_weight is not None:
            candidate = dataclasses.replace(candidate, gradient_weight=float(self.gradient_weight))
        if candidate.prior == "none" and candidate.gradient_weight:
            raise ValueError("prior='none' has no gradient term; its gradient_weight must be "
                             f"None or 0; got {self.gradient_weight!r}")
        return candidate

    def _bounds(self, X: np.ndarray) -> np.ndarray:
        from keras_gradinn import sampling, tables
        from keras_gradinn.validation import outside

        names = [str(n) for n in getattr(self, "feature_names_in_", range(X.shape[1]))]
        if self.bounds is None:
            return tables.auto_bounds(X, names)
        bounds = sampling.as_bounds(self.bounds)
        if bounds.shape != (X.shape[1], 2):
            raise ValueError(f"bounds must have shape ({X.shape[1]}, 2) for {X.shape[1]} inputs; "
                             f"got {bounds.shape}")
        rows = np.flatnonzero(outside(bounds, X))
        if rows.size:
            raise ValueError(f"{rows.size} row(s) of X lie outside the bounds, first row "
                             f"{int(rows[0])}: {X[rows[0]].tolist()}")
        return bounds

    def _splits(self, context: _Context) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import KFold, check_cv

        if isinstance(self.cv, numbers.Integral):
            splitter = KFold(min(self.cv, len(context.x)), shuffle=True,
                             random_state=context.seed)
        else:
            splitter = check_cv(self.cv)
        splits = [(np.asarray(train), np.asarray(test))
                  for train, test in splitter.split(context.x, context.y)]
        if not splits or any(len(train) == 0 or len(test) == 0 for train, test in splits):
            raise ValueError("cv must give at least one split, each with training and test rows")
        return splits

    def _candidate_list(self) -> tuple[list[Candidate], bool]:
        """The candidates to cross-validate, and whether to try screening."""
        if self.candidates is None:
            return list(CANDIDATES.values()), True
        chosen, screening = [], False
        for item in self.candidates:
            if isinstance(item, Candidate):
                chosen.append(item.checked())
            elif item == "screened":
                screening = True
            elif item in CANDIDATES:
                chosen.append(CANDIDATES[item])
            else:
                raise ValueError(f"candidates must be Candidate objects or names from "
                                 f"{[*CANDIDATES, 'screened']}; got {item!r}")
        names = [c.name for c in chosen]
        if not chosen or len(set(names)) != len(names) or "screened" in names:
            raise ValueError(f"candidates must name at least one prior, each once (and none "
                             f"'screened', which is derived); got {names}")
        return chosen, screening

    def _cross_validate(self, context: _Context, splits
                        ) -> tuple[Candidate, np.ndarray | None, np.ndarray | None]:
        """The best candidate, and with "screened" its input mask and its folds' masks."""
        chosen, screening = self._candidate_list()
        cv_steps = self._fold_steps()
        tried, losses, seconds, models = [], [], [], {}
        for candidate in chosen:
            models[candidate.name] = self._score(context, candidate, splits, cv_steps, None,
                                                 tried, losses, seconds)
        screened = None
        with_prior = [i for i, c in enumerate(tried) if c.gradient_weight]
        if screening and with_prior and context.x.shape[1] >= SCREEN_MIN_INPUTS:
            base = tried[min(with_prior, key=lambda i: losses[i].mean())]
            masks = context.recall("screen")
            if masks is None:
                model = models[base.name] or context.fit(base, steps=cv_steps, masks=None,
                                                         splits=splits)
                masks = [m.tolist() for m in context.screen(model, splits) or ()]
                context.remember("screen", masks)
            if masks:
                screened = (dataclasses.replace(base, name="screened"),
                            np.asarray(masks[1], np.float32), np.asarray(masks[0], np.float32))
                self._score(context, screened[0], splits, cv_steps, screened[2], tried, losses,
                            seconds)
        scores = -np.array(losses)  # (candidates, folds)
        mean = scores.mean(axis=1)
        self.best_index_ = int(np.argmax(mean))
        self.cv_results_ = {
            "params": [{"prior": c.name} for c in tried],
            **{f"split{i}_test_score": scores[:, i] for i in range(len(splits))},
            "mean_test_score": mean,
            "std_test_score": scores.std(axis=1),
            "rank_test_score": (np.argsort(np.argsort(-mean, kind="stable")) + 1).astype(int),
            "fit_time": np.array(seconds),
            "gradient_weight": np.array([c.gradient_weight for c in tried]),
        }
        best = tried[self.best_index_]
        if best.name == "screened":
            return best, screened[1], screened[2]
        return best, None, None

    def _score(self, context, candidate, splits, cv_steps, masks, tried, losses, seconds):
        """Cross-validates `candidate`; returns its stack (None if its scores were on disk)."""
        model, done = context.held_out(candidate, splits, steps=cv_steps, masks=masks,
                                       name=f"cv-{candidate.name}")
        fold_losses = done["losses"]
        tried.append(candidate)
        losses.append(np.array(fold_losses))
        seconds.append(done["seconds"])
        if self.verbose:
            print(f"GradINNRegressor: {candidate.name:>9}: held-out MSE "
                  f"{np.mean(fold_losses):.4g} ({seconds[-1]:.0f} s)", flush=True)
        return model

    # --------------------------------------------------------------- predicting

    def predict(self, X, return_std: bool = False):
        """Predictions (n,) or (n, m) in the units of y, as y was given to `fit`.

        With `return_std=True`, `(mean, std)`: the ensemble's mean and the
        standard deviation of its error there, the members' spread as
        `calibration_` scales it, plus its floor. The floor is calibrated
        on held-out targets: with noisy data it includes the noise, so the
        intervals are then those of a new observation, wider than the
        function's.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*outside the bounds.*")
            if return_std:
                predicted = self.model_.predict(X, batch_size=4096, return_std=True)
            else:
                predicted = (self.model_.predict(X, batch_size=4096, verbose=0),)
        predicted = tuple(self._shaped(p, 1) for p in predicted)
        return predicted if return_std else predicted[0]

    def predict_gradient(self, X, return_std: bool = False):
        """The Jacobian dy/dx in user units: (n, d) for a 1-D y, else (n, m, d).

        With `return_std=True`, `(mean, std)`: the members' mean Jacobian and
        its element-wise standard deviation (their spread times the
        calibration's scale; the floor does not enter).
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*outside the bounds.*")
            jacobian = self.model_.predict_gradient(X, batch_size=4096, return_std=return_std)
        jacobian = tuple(self._shaped(j, 1) for j in (jacobian if return_std else (jacobian,)))
        return jacobian if return_std else jacobian[0]

    def _shaped(self, values: np.ndarray, axis: int) -> np.ndarray:
        """Float64 values with the outputs' axis dropped when y was 1-D."""
        values = np.asarray(values, dtype=np.float64)
        return values.take(0, axis=axis) if self._y_ndim == 1 else values

    # ------------------------------------------------------------ saving

    def _metadata(self) -> dict:
        params = {k: v for k, v in self.get_params().items() if k != "contains"}
        if isinstance(params["prior"], Candidate):
            params["prior"] = params["prior"].as_dict()
        if params["candidates"] is not None:
            params["candidates"] = [c.as_dict() if isinstance(c, Candidate) else str(c)
                                    for c in params["candidates"]]
        if params["bounds"] is not None:
            params["bounds"] = np.asarray(params["bounds"], dtype=float).tolist()
        if isinstance(params["random_state"], np.random.RandomState):
            params["random_state"] = None
        if not isinstance(params["cv"], numbers.Integral):  # a splitter: kept as its count
            from sklearn.model_selection import check_cv

            params["cv"] = max(2, check_cv(params["cv"]).get_n_splits())
        results = {key: (value.tolist() if isinstance(value, np.ndarray) else value)
                   for key, value in self.cv_results_.items()}
        return {"estimator": "GradINNRegressor", "params": params,
                "best_prior": self.best_prior_, "best_candidate": self.best_candidate_.as_dict(),
                "best_index": self.best_index_,
                "steps_scores": {str(k): v for k, v in self.steps_scores_.items()},
                "final_steps": self.final_steps_,
                "cv_results": results, "y_ndim": self._y_ndim,
                "calibration_results": self.calibration_results_,
                "feature_names_in": (None if not hasattr(self, "feature_names_in_")
                                     else [str(n) for n in self.feature_names_in_])}

    def save(self, path) -> None:
        """Writes the fitted estimator to a `.keras` file (see `load`)."""
        check_is_fitted(self)
        if self.contains is not None:
            warnings.warn("contains is a Python callable and is not saved", stacklevel=2)
        self.model_.save(path)

    @classmethod
    def load(cls, path) -> GradINNRegressor:
        """Reads an estimator written by `save`, with `safe_mode=True`."""
        import keras

        from keras_gradinn.model import GradINN

        model = keras.models.load_model(path, safe_mode=True)
        info = getattr(model, "metadata", None) or {}
        if not isinstance(model, GradINN) or info.get("estimator") != "GradINNRegressor":
            raise ValueError(f"{str(path)!r} holds no GradINNRegressor (save one with "
                             f"GradINNRegressor.save)")
        params = dict(info["params"])
        if isinstance(params["prior"], dict):
            params["prior"] = Candidate.of(params["prior"])
        if params["candidates"] is not None:
            params["candidates"] = [Candidate.of(c) if isinstance(c, dict) else c
                                    for c in params["candidates"]]
        estimator = cls(**params)
        estimator.model_ = model
        estimator.best_candidate_ = Candidate.of(info["best_candidate"])
        estimator.best_prior_, estimator.best_index_ = info["best_prior"], info["best_index"]
        estimator.steps_scores_ = {int(k): v for k, v in info.get("steps_scores", {}).items()}
        estimator.final_steps_ = info.get("final_steps", params["steps"])
        estimator.cv_results_ = {key: (np.asarray(value) if key != "params" else value)
                                 for key, value in info["cv_results"].items()}
        estimator._y_ndim = info["y_ndim"]
        estimator.calibration_ = model.calibration
        estimator.calibration_results_ = info.get("calibration_results", {})
        estimator.bounds_ = np.asarray(model.bounds)
        estimator.n_features_in_ = model.input_dim
        estimator.n_outputs_ = model.output_dim
        if info["feature_names_in"] is not None:
            estimator.feature_names_in_ = np.asarray(info["feature_names_in"], dtype=object)
        return estimator

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = True
        return tags


class _Context:
    """What every fit of one `GradINNRegressor.fit` call shares: data, seeds, pool, GPs."""

    def __init__(self, estimator: GradINNRegressor, x, y, weights, seed, checkpoint_dir,
                 dy_dx=None):
        from keras_gradinn import sampling

        self.checkpoint_dir = None if checkpoint_dir is None else pathlib.Path(checkpoint_dir)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.estimator, self.x, self.y, self.weights = estimator, x, y, weights
        self.dy_dx = dy_dx
        self.mean = np.average(y, axis=0, weights=weights)
        spread = np.sqrt(np.average((y - self.mean) ** 2, axis=0, weights=weights))
        self.spread = np.where(spread > 0, spread, 1.0)
        self.t = (y - self.mean) / self.spread
        self.seed = seed
        seeds = np.random.SeedSequence(seed).generate_state(4) % (2**31 - 1)
        self.network_seed, self.prior_seed, self.collocation_seed, pool_seed = map(int, seeds)
        self.pool = {"method": "sobol", "size": POOL_SIZE, "seed": pool_seed}
        self.centre, self.half_width = sampling.centre_and_half_width(estimator.bounds_)
        self.z = (x - self.centre) / self.half_width
        self._processes: dict = {}

    def process(self, rows: np.ndarray):
        """The kernel prior's GP on these rows (cached)."""
        from keras_gradinn.kernels import fit_gp

        rows = rows[self.weights[rows] > 0]  # a GP has no row weights; it skips weightless rows
        key = rows.tobytes()
        if key not in self._processes:
            self._processes[key] = fit_gp(self.z[rows], self.t[rows], restarts=GP_RESTARTS,
                                          seed=self.seed, max_points=GP_MAX_POINTS,
                                          fit_points=GP_FIT_POINTS)
        return self._processes[key]

    def recall(self, name: str):
        """What `remember` kept under `name` in the checkpoint folder, or None."""
        if self.checkpoint_dir is None or not (self.checkpoint_dir / f"{name}.json").is_file():
            return None
        return json.loads((self.checkpoint_dir / f"{name}.json").read_text())

    def remember(self, name: str, value) -> None:
        """Keeps a JSON value in the checkpoint folder (if any), written atomically."""
        if self.checkpoint_dir is not None:
            from keras_gradinn.files import write_atomically

            write_atomically(self.checkpoint_dir / f"{name}.json", json.dumps(value))

    def fit_final(self, candidate: Candidate, masks, steps: int, checkpoint_seconds: float):
        """The chosen candidate on all rows, checkpointed; returns (model, losses per epoch)."""
        from keras_gradinn import checkpoints

        epochs = steps // training.epoch_steps(steps)
        if self.checkpoint_dir is None:
            model = self.fit(candidate, steps=steps, masks=masks, splits=None, epochs=epochs)
            return model, {k: [float(v) for v in values]
                           for k, values in model.history.history.items()}
        folder = self.checkpoint_dir / "final"
        folder.mkdir(exist_ok=True)
        latest = checkpoints.latest(folder)
        history = {} if latest is None else json.loads((latest / "state.json").read_text())[
            "history"]
        saver = checkpoints.Checkpointer(folder, seconds=checkpoint_seconds, early_stopping=None,
                                         history=history)
        model = self.fit(candidate, steps=steps, masks=masks, splits=None, epochs=epochs,
                         callbacks=[saver], resume=latest)
        return model, saver.history

    def held_out(self, candidate: Candidate, splits, *, steps: int, masks, name: str):
        """`candidate`'s fold fits of `steps` steps and their held-out losses (kept as `name`).

        Returns the stack (None if the losses were on disk) and
        `{"losses": weighted MSE of the standardised targets per fold, "seconds": ...}`.
        """
        model, done = None, self.recall(name)
        if done is None:
            start = time.perf_counter()
            model = self.fit(candidate, steps=steps, masks=masks, splits=splits)
            predicted = model.predict_members(self.x)  # (n, folds, m)
            losses = []
            for j, (_, rows) in enumerate(splits):
                residual = (predicted[rows, j] - self.y[rows]) / self.spread
                losses.append(float(np.average(np.mean(residual**2, axis=1),
                                               weights=self.weights[rows])))
            done = {"losses": losses, "seconds": time.perf_counter() - start}
            self.remember(name, done)
        return model, done

    def fit(self, candidate: Candidate, *, steps: int, masks, splits, epochs: int = 1,
            callbacks=(), resume=None, replicas: int = 1):
        """`candidate` fitted as a stack: `replicas` members per (train, test) split (fold-major),
        or `n_members` on all rows."""
        import keras

        from keras_gradinn import priors
        from keras_gradinn.kernels import KernelField
        from keras_gradinn.model import GradINN
        from keras_gradinn.stacked import StackedMLP

        e, n = self.estimator, len(self.x)
        members = e.n_members if splits is None else len(splits) * replicas
        kept = [np.arange(n)] * members if splits is None else \
            [train for train, _ in splits for _ in range(replicas)]
        weights = np.zeros((n, members))
        for j, rows in enumerate(kept):
            weights[rows, j] = self.weights[rows] * n / self.weights[rows].sum()
        d, m = self.x.shape[1], self.y.shape[1]
        inputs = keras.Input((d,), name="x")
        stack = StackedMLP(members, m, width=e.width, depth=e.depth, activation=e.activation,
                           seed=self.network_seed, input_mask=masks, name="members")
        network = keras.Model(inputs, stack(inputs), name="mlp")
        if candidate.prior == "kernel":
            # Fold members each have their fold's GP; an ensemble shares one.
            processes = [self.process(rows) for rows in (kept if splits else kept[:1])]
            field = KernelField.of(processes, stacked=splits is not None, name="field")
            z = keras.Input((d,), name="z")
            prior = keras.Model(z, field(z), name="kernel_prior")
        elif candidate.prior in ("none", "constant"):
            prior = priors.constant(d, m)
        elif candidate.prior == "smooth":
            # With screening, the prior's field reads only the kept inputs, too.
            prior = priors.smooth(d, m, seed=self.prior_seed, members=members, input_mask=masks,
                                  **dict(candidate.options))
        else:
            prior = priors.build(candidate.prior, d, m, seed=self.prior_seed,
                                 **dict(candidate.options))
        model = GradINN(network, prior, bounds=e.bounds_, n_collocation=e.n_collocation,
                        sampler=self.pool, contains=e.contains,
                        gradient_weight=candidate.gradient_weight,
                        derivative_weight=e.derivative_weight,
                        seed=self.collocation_seed,
                        input_labels=[str(c) for c in getattr(e, "feature_names_in_", [])] or None)
        model.adapt(self.y, self.weights)  # the kernel prior's standardisation, too
        return training.train(model, self.x, self.y,
                              sample_weight=weights if splits is not None else weights[:, 0],
                              dy_dx=self.dy_dx, steps=steps, learning_rate=e.learning_rate,
                              batch_size=e.batch_size, seed=self.seed, epochs=epochs,
                              callbacks=callbacks, resume=resume)

    def screen(self, model, splits) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-fold input masks from `model`'s fold members, and one for all rows; or None."""
        import keras

        jacobian = model.predict_gradient(self.x, members=True)  # (n, folds, m, d)
        std = keras.ops.convert_to_numpy(model.output_std).astype(float)
        scores = np.stack([relevance(jacobian[train, j], self.half_width, std)
                           for j, (train, _) in enumerate(splits)])
        threshold = self.estimator.screen_threshold
        masks = (scores >= threshold * scores.max(axis=1, keepdims=True)).astype("float32")
        overall = scores.mean(axis=0)
        final = (overall >= threshold * overall.max()).astype("float32")
        if masks.all() and final.all():
            return None
        return masks, final
