"""The benchmark's methods behind one interface: `gradinn`, `gradinn-auto`, `snn`, `pinn`, `gp`,
and, trained on observed gradients too, `gradinn-grad`, `genn` and `gekpls`.

Every neural method shares the network (`Settings.width` x `Settings.depth`,
SiLU), the normalisation (inputs scaled to [-1, 1] by the problem's bounds,
targets standardised), the optimiser (Adam, cosine-decayed from
`Settings.learning_rate` to zero) and the full-batch step budget. They differ
only in the second loss term on collocation points:

- `gradinn`: `w * mean ||J f - h||^2` with the problem's tuned prior h, and
  `w = Settings.weight_for(n)`: `GradINNRegressor` with one network and the
  problem's candidates (`Settings.estimator`);
- `snn`: none (`gradient_weight=0`);
- `pinn`: `pinn_weight * mean ||r||^2`, r the problem's equation residuals
  divided by the output scale over the input scale (see `EquationModel`).

`gp` is scikit-learn's Gaussian process as the protocol fixes it.

`gradinn-auto` is `GradINNRegressor` with the library's defaults and no
per-problem settings: the problem only gives its domain (bounds, and the
shape of a domain that is not a box). `gradinn-auto-nokernel` is the same
without the kernel prior among its candidates, so the tables also say what
the choice among GradINN's own priors does.

`GRADIENT_METHODS` also train on the Jacobians observed at the training
points (`runner.training_data`): `gradinn-grad` is `gradinn-auto` fitted
with them, `genn` and `gekpls` are SMT's gradient-enhanced neural network
and Kriging (see `keras_gradinn.bench.smt` for their settings). A sweep runs
them only when asked for (`--methods`): they answer another question (what
observed gradients are worth) than the tables of GradINN against its
value-only baselines.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf
from sklearn.model_selection import ShuffleSplit

from keras_gradinn import priors, training
from keras_gradinn.estimator import CANDIDATES, Candidate, GradINNRegressor
from keras_gradinn.model import GradINN
from keras_gradinn.networks import mlp
from keras_gradinn.sampling import centre_and_half_width
from keras_gradinn.training import train_full_batch

if TYPE_CHECKING:
    from keras_gradinn.problems import Problem

__all__ = ["DEFAULT_METHODS", "GRADIENT_METHODS", "METHODS", "Fitted", "Settings",
           "EquationModel", "fit", "settings_for", "unavailable"]

#: The methods a sweep runs unless told otherwise.
DEFAULT_METHODS = ("gradinn", "gradinn-auto", "gradinn-auto-nokernel", "snn", "pinn", "gp")
#: The methods that train on observed gradients as well as values.
GRADIENT_METHODS = ("gradinn-grad", "genn", "gekpls")
METHODS = DEFAULT_METHODS + GRADIENT_METHODS


def unavailable(method: str, problem: Problem) -> str | None:
    """Why `method` cannot run on `problem` (to follow "problem NAME "), or None if it can."""
    if method == "pinn" and problem.equations is None:
        return "has no equations, so no pinn runs"
    if method == "gekpls" and problem.d < 2:
        return f"has {problem.d} input and GEKPLS needs at least 2, so no gekpls runs"
    return None


@dataclasses.dataclass(frozen=True)
class Settings:
    """Training choices of the neural methods for one problem.

    `prior` names a builder in `keras_gradinn.priors` and `prior_options`
    its keyword arguments. With `reference_n` set, GradINN's weight on n
    training points is `gradient_weight * reference_n / n` (see `weight_for`):
    the data term is a mean over the n points, so a fixed weight would make
    the prior count as much against 1,000 points as against 50.

    `alternatives` lists other priors for GradINN, each as `(field, value)`
    changes to these settings (see `variants`). GradINN is then
    `GradINNRegressor` choosing among the variants (and, with `screening`
    > 0, the best of them reading only the inputs whose relevance is at
    least `screening` times the largest) by the held-out error: on one
    seeded split holding out `validation_fraction` of the training data, or
    below `cross_validate_below` points on `round(1 / validation_fraction)`
    folds. Alternatives should change only the prior and its weight, so that
    S-NN and the PINN remain the same network.
    """

    steps: int = 20_000
    width: int = 64
    depth: int = 3
    activation: str = "silu"
    learning_rate: float = 3e-3
    n_collocation: int = 256
    prior: str = "smooth"
    prior_options: tuple[tuple[str, Any], ...] = ()
    gradient_weight: float = 1e-2
    pinn_weight: float = 1e-2
    reference_n: int | None = None
    alternatives: tuple[tuple[tuple[str, Any], ...], ...] = ()
    validation_fraction: float = 0.2
    cross_validate_below: int = 0
    screening: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1); got "
                             f"{self.validation_fraction!r}")
        if self.cross_validate_below < 0:
            raise ValueError(f"cross_validate_below must be >= 0; got "
                             f"{self.cross_validate_below!r}")
        if not 0 <= self.screening < 1:
            raise ValueError(f"screening must be in [0, 1); got {self.screening!r}")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def weight_for(self, n: int) -> float:
        """GradINN's gradient weight for `n` training points.

        The loss is `mean_i loss_i + w * mean_c ||J f - h||^2`. Read as a
        posterior, the data's log-likelihood is a *sum* over the n points and
        the prior's is not, so dividing through by n leaves `w` proportional
        to 1/n: the prior shapes f where data are few and fades as they grow.
        `gradient_weight` is the weight at `reference_n` points; without a
        `reference_n` it is used at every n.
        """
        if self.reference_n is None:
            return self.gradient_weight
        return self.gradient_weight * self.reference_n / n

    def prior_options_for(self, n: int) -> dict[str, Any]:
        """The prior's keyword arguments for `n` training points.

        A `sparsity` penalty (see `priors.smooth`) is part of the prior too,
        so with a `reference_n` it fades as 1/n like the gradient weight.
        """
        options = dict(self.prior_options)
        if self.reference_n is not None and "sparsity" in options:
            options["sparsity"] = options["sparsity"] * self.reference_n / n
        return options

    def variants(self) -> list[Settings]:
        """These settings, then each alternative applied to them; none has alternatives."""
        base = self.replace(alternatives=())
        return [base] + [base.replace(**dict(changes)) for changes in self.alternatives]

    def candidates(self, n: int) -> list[Candidate]:
        """The variants as the estimator's candidates for `n` training points."""
        return [Candidate(f"variant {i}", v.prior, v.weight_for(n),
                          tuple(sorted(v.prior_options_for(n).items())))
                for i, v in enumerate(self.variants())]

    def estimator(self, problem: Problem, n: int, seed: int) -> GradINNRegressor:
        """GradINN with these settings for `n` points of `problem`: one network."""
        common = dict(bounds=problem.bounds, contains=problem.contains, width=self.width,
                      depth=self.depth, activation=self.activation, steps=self.steps,
                      learning_rate=self.learning_rate, batch_size=max(n, 1),
                      n_collocation=self.n_collocation, n_members=1, calibrate=False,
                      random_state=seed)
        candidates = self.candidates(n)
        if len(candidates) == 1 and not self.screening:
            return GradINNRegressor(candidates[0], **common)
        if n < self.cross_validate_below:
            cv = max(2, round(1 / self.validation_fraction))
        else:
            cv = ShuffleSplit(1, test_size=self.validation_fraction, random_state=seed)
        return GradINNRegressor(candidates=[*candidates, *(["screened"] if self.screening else [])],
                                cv=cv, cv_steps=self.steps,
                                screen_threshold=self.screening or 0.3, **common)


#: Per-problem settings, from `keras-gradinn bench tune` (see docs/benchmarks.md).
DEFAULTS: dict[str, Settings] = {
    # Trainable random Fourier features at about one period across the domain, or, if
    # it predicts held-out data better (noisy data), a stiff 1x8 tanh prior; below 200
    # points the held-out error is 5-fold cross-validated.
    "friedman1": Settings(prior="oscillatory",
                          prior_options=(("frequency", 1.0), ("n_features", 128)),
                          gradient_weight=0.03,
                          alternatives=((("gradient_weight", 1.0), ("prior", "smooth"),
                                         ("prior_options", (("width", 8),))),),
                          cross_validate_below=200),
    # Five inert inputs: random Fourier features in 10-D cannot follow the field, and a
    # light per-input group penalty lets the tanh prior switch the inert ones off; then,
    # if it predicts held-out data better, a network and a prior that read only the
    # inputs of relevance above 0.3 of the largest.
    "friedman1_10d": Settings(prior_options=(("sparsity", 3e-5),), gradient_weight=0.03,
                              screening=0.3),
    "stokes_sphere": Settings(prior_options=(("depth", 2),), gradient_weight=0.01,
                              reference_n=50, pinn_weight=0.01),
    "lotka_volterra": Settings(prior="oscillatory",
                               prior_options=(("frequency", 10.0), ("n_features", 64)),
                               gradient_weight=0.1, reference_n=20, pinn_weight=0.1),
    "burgers": Settings(prior_options=(("depth", 2),), gradient_weight=0.003, reference_n=200,
                        pinn_weight=0.01),
}


def settings_for(problem: str, *, quick: bool = False) -> Settings:
    """The benchmark settings of `problem`; `quick` cuts them to 200 steps and 64 points."""
    settings = DEFAULTS.get(problem, Settings())
    return settings.replace(steps=200, n_collocation=64) if quick else settings


@dataclasses.dataclass
class Fitted:
    """A trained method: predictions and Jacobians in the problem's units.

    `chosen` names the prior GradINN chose (`gradinn` with alternatives or
    screening, `gradinn-auto`; `gradinn-grad` adds its final fit's steps),
    and `train_seconds` then includes the held-out fits. `std` gives the
    standard deviation of the prediction (of the function, not of a noisy
    observation) for the methods that have one: `gradinn-auto` (its
    calibrated ensemble) and `gp`; `members` each member's predictions
    (n, k, m), for ensembles.
    """

    predict: Any
    gradient: Any
    train_seconds: float
    chosen: str | None = None
    std: Any = None
    members: Any = None


class EquationModel(GradINN):
    """A physics-informed network: GradINN's training with the equations' residual.

    The second loss term is `mean_c ||r(x_c)||^2` over collocation points,
    `r` the problem's equation residuals of the prediction in user units,
    divided by `mean(std(y)) / mean(half width of x)` so that one weight suits
    problems in any units.
    """

    def __init__(self, network, *, equations, residual_scale: float, **kwargs):
        super().__init__(network, priors.constant(network.input_shape[-1],
                                                  network.output_shape[-1]), **kwargs)
        self.equations = equations
        self.residual_scale = float(residual_scale)

    def gradient_loss(self, z: tf.Tensor, training: bool = False) -> tf.Tensor:
        offset, scale, mean, std = self._scales(z.dtype)

        def predict(x):
            return mean + std * self.network((x - offset) / scale, training=training)

        residual = self.equations(predict, offset + scale * z) / self.residual_scale
        return tf.reduce_mean(tf.reduce_sum(tf.square(residual), axis=-1))


def _collocation(problem: Problem, contains, seed: int) -> dict[str, Any]:
    """Sampler arguments: quasi-random in a box, or a fixed pool in any other domain."""
    if contains is None:
        return {"sampler": "sobol"}
    box = dataclasses.replace(problem, contains=contains)
    return {"sampler": box.sample(16_384, np.random.default_rng(seed)), "contains": contains}


def _network_model(method: str, problem: Problem, y: np.ndarray, settings: Settings,
                   seed: int) -> GradINN:
    """The network of `snn` (no gradient term) or `pinn` (the equations' residual)."""
    network = mlp(problem.d, problem.m, width=settings.width, depth=settings.depth,
                  activation=settings.activation, seed=seed)
    common = dict(bounds=problem.bounds, n_collocation=settings.n_collocation, seed=seed)
    if method == "pinn":
        if problem.equations is None:
            raise ValueError(f"problem {problem.name!r} has no equations for the pinn method")
        contains = problem.equation_contains or problem.contains
        _, half_width = centre_and_half_width(problem.bounds)
        return EquationModel(
            network, equations=problem.equations,
            residual_scale=float(np.mean(np.std(y, axis=0)) / np.mean(half_width)),
            gradient_weight=settings.pinn_weight, **_collocation(problem, contains, seed),
            **common,
        )
    return GradINN(network, priors.constant(problem.d, problem.m), gradient_weight=0.0,
                   **_collocation(problem, problem.contains, seed), **common)


def _fitted(model: GradINN, seconds: float, chosen: str | None = None) -> Fitted:
    def std(points):
        return model.predict(points, batch_size=4096, return_std=True)[1].astype(float)

    return Fitted(
        predict=lambda points: model.predict(points, batch_size=4096, verbose=0).astype(float),
        gradient=lambda points: model.predict_gradient(points, batch_size=4096).astype(float),
        train_seconds=seconds, chosen=chosen,
        std=std if model.has_std else None,
        members=(lambda points: model.predict_members(points, batch_size=4096).astype(float))
        if model.members > 1 else None)


def _fit_network(method: str, problem: Problem, x: np.ndarray, y: np.ndarray,
                 settings: Settings, seed: int) -> Fitted:
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = train_full_batch(_network_model(method, problem, y, settings, seed), x, y,
                             steps=settings.steps, learning_rate=settings.learning_rate)
    return _fitted(model, time.perf_counter() - start)


def _fit_estimator(estimator: GradINNRegressor, x: np.ndarray, y: np.ndarray,
                   dy_dx: np.ndarray | None = None) -> Fitted:
    keras.backend.clear_session()
    start = time.perf_counter()
    estimator.fit(x, y, dy_dx=dy_dx)
    seconds = time.perf_counter() - start
    chosen = None if estimator.best_index_ is None else estimator.best_prior_
    if estimator.steps_scores_:  # with observed derivatives the budget is a choice too
        chosen = f"{chosen}, {estimator.final_steps_} steps"
    return _fitted(estimator.model_, seconds, chosen)


def _auto(problem: Problem, settings: Settings, seed: int, *, kernel: bool) -> GradINNRegressor:
    """`gradinn-auto`: the library's defaults; the problem gives only its domain."""
    # Only a quick run changes the budget.
    budget = {} if settings.steps == training.STEPS else {"steps": settings.steps}
    candidates = None if kernel else [*(c for c in CANDIDATES if c != "kernel"), "screened"]
    return GradINNRegressor(bounds=problem.bounds, contains=problem.contains,
                            candidates=candidates, random_state=seed, **budget)


def _fit_gp(problem: Problem, x: np.ndarray, y: np.ndarray, seed: int) -> Fitted:
    from keras_gradinn.bench.gp import fit_gp

    start = time.perf_counter()
    gp = fit_gp(x, y, problem.bounds, seed=seed)
    seconds = time.perf_counter() - start
    return Fitted(predict=gp.predict, gradient=gp.gradient, train_seconds=seconds, std=gp.std)


def _fit_smt(method: str, problem: Problem, x: np.ndarray, y: np.ndarray, dy_dx: np.ndarray,
             settings: Settings, seed: int) -> Fitted:
    """`genn` (the neural methods' network, step budget and learning rate) or `gekpls`."""
    from keras_gradinn.bench import smt

    start = time.perf_counter()
    if method == "genn":
        model = smt.fit_genn(x, y, dy_dx, width=settings.width, depth=settings.depth,
                             steps=settings.steps, learning_rate=settings.learning_rate,
                             seed=seed)
    else:
        model = smt.fit_gekpls(x, y, dy_dx, problem.bounds, seed=seed)
    seconds = time.perf_counter() - start
    return Fitted(predict=model.predict, gradient=model.gradient, train_seconds=seconds,
                  std=model.std if model.has_std else None)


def fit(method: str, problem: Problem, x: np.ndarray, y: np.ndarray, *,
        dy_dx: np.ndarray | None = None, settings: Settings | None = None,
        seed: int = 0) -> Fitted:
    """Trains `method` on (x, y) of `problem`, and on `dy_dx` for `GRADIENT_METHODS`.

    Args:
        method: one of `METHODS`.
        problem: the benchmark problem (bounds, domain, equations).
        x: training inputs (n, d) in the problem's units.
        y: training targets (n, m).
        dy_dx: the Jacobians observed at x (n, m, d), in the problem's
            units; required by `GRADIENT_METHODS`, unread by the others.
        settings: neural training choices (default `settings_for(problem.name)`);
            GradINN chooses among their `variants()` when they have alternatives.
        seed: seed of weights and collocation draws (and the GP's restarts).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    reason = unavailable(method, problem)
    if reason is not None:
        raise ValueError(f"problem {problem.name!r} {reason}")
    if method in GRADIENT_METHODS and dy_dx is None:
        raise ValueError(f"method {method!r} trains on observed gradients: pass dy_dx of "
                         f"shape (n, m, d) = ({len(x)}, {problem.m}, {problem.d})")
    if method == "gp":
        return _fit_gp(problem, x, y, seed)
    settings = settings or settings_for(problem.name)
    if method in ("genn", "gekpls"):
        return _fit_smt(method, problem, x, y, dy_dx, settings, seed)
    if method == "gradinn-grad":
        return _fit_estimator(_auto(problem, settings, seed, kernel=True), x, y, dy_dx)
    if method == "gradinn":
        return _fit_estimator(settings.estimator(problem, len(y), seed), x, y)
    if method.startswith("gradinn-auto"):
        return _fit_estimator(_auto(problem, settings, seed, kernel=method == "gradinn-auto"),
                              x, y)
    return _fit_network(method, problem, x, y, settings, seed)
