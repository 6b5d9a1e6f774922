"""The benchmark's methods behind one interface: `gradinn`, `gradinn-auto`, `snn`, `pinn`, `gp`.

Every neural method shares the network (`Settings.width` x `Settings.depth`,
SiLU), the normalisation (inputs scaled to [-1, 1] by the problem's bounds,
targets standardised), the optimiser (Adam, cosine-decayed from
`Settings.learning_rate` to zero) and the full-batch step budget. They differ
only in the second loss term on collocation points:

- `gradinn`: `w * mean ||J f - h||^2` with the problem's prior h, and
  `w = Settings.weight_for(n)`;
- `snn`: none (`gradient_weight=0`);
- `pinn`: `pinn_weight * mean ||r||^2`, r the problem's equation residuals
  divided by the output scale over the input scale (see `EquationModel`).

`gp` is scikit-learn's Gaussian process as the protocol fixes it.

`gradinn-auto` is `GradINNRegressor` with the library's defaults and no
per-problem settings: the problem only gives its domain (bounds, and the
shape of a domain that is not a box). `gradinn-auto-nokernel` is the same
without the kernel prior among its candidates, so the tables also say what
the choice among GradINN's own priors does.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from keras_gradinn import priors
from keras_gradinn.model import GradINN
from keras_gradinn.networks import mlp
from keras_gradinn.sampling import centre_and_half_width
from keras_gradinn.training import train_full_batch

if TYPE_CHECKING:
    from keras_gradinn.problems import Problem

__all__ = ["METHODS", "Fitted", "Settings", "EquationModel", "choose", "fit", "settings_for"]

METHODS = ("gradinn", "gradinn-auto", "gradinn-auto-nokernel", "snn", "pinn", "gp")
SELECTIONS = ("lowest", "clear")


def _check_selection(selection: str) -> None:
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be 'lowest' or 'clear'; got {selection!r}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Training choices of the neural methods for one problem.

    `prior` names a builder in `keras_gradinn.priors` and `prior_options`
    its keyword arguments. With `reference_n` set, GradINN's weight on n
    training points is `gradient_weight * reference_n / n` (see `weight_for`):
    the data term is a mean over the n points, so a fixed weight would make
    the prior count as much against 1,000 points as against 50.

    `alternatives` lists other priors for GradINN, each as `(field, value)`
    changes to these settings (see `variants`). With alternatives, GradINN
    holds out `validation_fraction` of the training data, fits every variant
    on the rest, and refits one of them on all the data: the data choose,
    for instance, between a prior for clean data and a stronger one for noisy
    data. `selection` says which: `"lowest"`, the lowest held-out error;
    `"clear"`, the first variant unless another beats it by more than one
    standard error of the per-point difference (a small held-out set then
    keeps the default). Alternatives should change only the prior and its
    weight, so that S-NN and the PINN remain the same network.

    With fewer than `cross_validate_below` training points the held-out
    set would be a handful of points, so the choice cross-validates instead:
    the data split into `round(1 / validation_fraction)` folds (at least
    2), each variant is fitted once per fold on the others, and every point
    is held out once. It costs that many times the held-out fits; the first
    fold is the split used without cross-validation.

    `screening` > 0 lets the data drop inert inputs, a hard form of the
    belief that `f` does not depend on them. In the held-out fit of the first
    variant GradINN measures each input's relevance (`GradINN.input_relevance`);
    if some fall below `screening` times the largest, it adds a variant whose
    network reads only the others (`active_inputs`), with `screened_changes`
    applied to it, and the held-out choice decides between them. With
    `screen_prior` the screened variant's prior reads only those inputs too.
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
    selection: str = "lowest"
    cross_validate_below: int = 0
    screening: float = 0.0
    active_inputs: tuple[int, ...] | None = None
    screened_changes: tuple[tuple[str, Any], ...] = ()
    screen_prior: bool = False

    def __post_init__(self) -> None:
        _check_selection(self.selection)
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1); got "
                             f"{self.validation_fraction!r}")
        if self.cross_validate_below < 0:
            raise ValueError(f"cross_validate_below must be >= 0; got "
                             f"{self.cross_validate_below!r}")
        if not 0 <= self.screening < 1:
            raise ValueError(f"screening must be in [0, 1); got {self.screening!r}")

    def replace(self, **changes: Any) -> "Settings":
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

    def variants(self) -> list["Settings"]:
        """These settings, then each alternative applied to them; none has alternatives."""
        base = self.replace(alternatives=())
        return [base] + [base.replace(**dict(changes)) for changes in self.alternatives]


#: Per-problem settings, from `python -m keras_gradinn.bench.tune` (see docs/benchmarks.md).
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
    # if it predicts held-out data better, a network and a prior without the penalty
    # that read only the inputs of relevance above 0.3 of the largest.
    "friedman1_10d": Settings(prior_options=(("sparsity", 3e-5),), gradient_weight=0.03,
                              screening=0.3, screen_prior=True,
                              screened_changes=(("prior_options", ()),)),
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

    `chosen` is the index in `Settings.variants()` of the variant GradINN
    selected, when it had alternatives or screening (one past the last
    variant: the screened one), or the name of the prior `gradinn-auto`
    chose; `train_seconds` then includes the held-out fits. `active_inputs` are the inputs the network reads (None: all), and
    `relevance` the network's `GradINN.input_relevance`.
    """

    predict: Any
    gradient: Any
    train_seconds: float
    chosen: int | str | None = None
    active_inputs: tuple[int, ...] | None = None
    relevance: Any = None


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
    network = mlp(problem.d, problem.m, width=settings.width, depth=settings.depth,
                  activation=settings.activation, seed=seed)
    if settings.active_inputs is not None:
        network = _reading_only(network, settings.active_inputs, problem.d)
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
    weight = settings.weight_for(len(y)) if method == "gradinn" else 0.0
    options = settings.prior_options_for(len(y))
    if settings.prior != "constant":  # the only prior without random weights
        options.setdefault("seed", seed)
    prior = priors.build(settings.prior, problem.d, problem.m, **options)
    if settings.active_inputs is not None and settings.screen_prior:
        prior = _reading_only(prior, settings.active_inputs, problem.d)
    return GradINN(network, prior, gradient_weight=weight,
                   **_collocation(problem, problem.contains, seed), **common)


def _reading_only(model: keras.Model, active: tuple[int, ...], d: int) -> keras.Model:
    """`model` with every input outside `active` set to zero (the centre of its range)."""
    mask = np.isin(np.arange(d), active).astype("float32")
    inputs = keras.Input((d,))
    return keras.Model(inputs, model(keras.layers.Rescaling(mask)(inputs)))


def _fit_network(method: str, problem: Problem, x: np.ndarray, y: np.ndarray,
                 settings: Settings, seed: int) -> Fitted:
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = train_full_batch(_network_model(method, problem, y, settings, seed), x, y,
                             steps=settings.steps, learning_rate=settings.learning_rate)
    seconds = time.perf_counter() - start
    return Fitted(
        predict=lambda points: model.predict(points, batch_size=4096, verbose=0).astype(float),
        gradient=lambda points: model.predict_gradient(points, batch_size=4096).astype(float),
        train_seconds=seconds,
        active_inputs=settings.active_inputs,
        relevance=lambda points: model.input_relevance(points, batch_size=4096),
    )


def choose(losses: np.ndarray, selection: str) -> int:
    """The variant to refit, from held-out losses of shape (variants, points).

    `"lowest"` takes the lowest mean loss. `"clear"` keeps variant 0 unless
    others beat it by more than one standard error of the paired per-point
    gain `losses[0] - losses[k]`, and then takes the lowest of those.
    """
    _check_selection(selection)
    if selection == "lowest":
        return int(np.argmin(losses.mean(axis=1)))
    gains = losses[0] - losses
    if gains.shape[1] < 2:  # no spread to judge a gain by
        return 0
    clear = gains.mean(axis=1) > gains.std(axis=1, ddof=1) / np.sqrt(gains.shape[1])
    clear[0] = True
    return int(np.argmin(np.where(clear, losses.mean(axis=1), np.inf)))


def _splits(settings: Settings, n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(held-out, kept) index pairs: one seeded split, or folds that hold out each point once.

    Kept points stay in the seeded order, so the first fold fits exactly as the
    split without cross-validation does.
    """
    order = np.random.default_rng([seed, n, 1]).permutation(n)
    n_held = max(1, round(settings.validation_fraction * n))
    if n < settings.cross_validate_below:
        k = max(2, round(1 / settings.validation_fraction))
        if n < k:
            raise ValueError(f"{n} training points are too few for {k}-fold cross-validation")
        folds = [order[:n_held]] + np.array_split(order[n_held:], k - 1)
        return [(held, np.concatenate(folds[:i] + folds[i + 1:]))
                for i, held in enumerate(folds)]
    if n_held >= n:
        raise ValueError(f"{n} training points are too few to hold out "
                         f"{settings.validation_fraction:g} of them")
    return [(order[:n_held], order[n_held:])]


def _fit_selected(problem: Problem, x: np.ndarray, y: np.ndarray, settings: Settings,
                  seed: int) -> Fitted:
    """GradINN refit with the variant of `settings` that `choose` takes on held-out data."""
    variants = settings.variants()
    splits = _splits(settings, len(y), seed)
    held_out = np.concatenate([held for held, _ in splits])
    scale = np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0)
    losses, seconds = [], 0.0

    def hold_out(variant: Settings) -> list[Fitted]:
        """`variant` fitted once per fold without it; its held-out losses go to `losses`."""
        nonlocal seconds
        trials, predicted = [], []
        for held, kept in splits:
            trial = _fit_network("gradinn", problem, x[kept], y[kept], variant, seed)
            seconds += trial.train_seconds
            trials.append(trial)
            predicted.append(trial.predict(x[held]))
        residual = (np.concatenate(predicted) - y[held_out]) / scale
        losses.append(np.mean(residual ** 2, axis=1))
        return trials

    first = hold_out(variants[0])
    for variant in variants[1:]:
        hold_out(variant)
    if settings.screening:
        relevance = np.mean([trial.relevance(x) for trial in first], axis=0)
        active = tuple(int(i) for i in np.flatnonzero(relevance >= settings.screening
                                                      * relevance.max()))
        if len(active) < problem.d:
            variants.append(variants[0].replace(active_inputs=active,
                                                **dict(settings.screened_changes)))
            hold_out(variants[-1])
    chosen = choose(np.array(losses), settings.selection)
    fitted = _fit_network("gradinn", problem, x, y, variants[chosen], seed)
    return dataclasses.replace(fitted, train_seconds=fitted.train_seconds + seconds,
                               chosen=chosen)


def _fit_auto(problem: Problem, x: np.ndarray, y: np.ndarray, settings: Settings, seed: int, *,
              kernel: bool) -> Fitted:
    from keras_gradinn import training
    from keras_gradinn.estimator import CANDIDATES, GradINNRegressor

    keras.backend.clear_session()
    # Only a quick run changes the budget; every other option is the library's default.
    budget = {} if settings.steps == training.STEPS else {"steps": settings.steps,
                                                          "cv_steps": settings.steps // 4}
    candidates = None if kernel else [*(c for c in CANDIDATES if c != "kernel"), "screened"]
    estimator = GradINNRegressor(bounds=problem.bounds, contains=problem.contains,
                                 candidates=candidates, random_state=seed, **budget)
    start = time.perf_counter()
    estimator.fit(x, y)
    seconds = time.perf_counter() - start
    model = estimator.model_
    return Fitted(
        predict=lambda points: model.predict(points, batch_size=4096, verbose=0).astype(float),
        gradient=lambda points: model.predict_gradient(points, batch_size=4096).astype(float),
        train_seconds=seconds,
        chosen=estimator.best_prior_,
        relevance=lambda points: model.input_relevance(points, batch_size=4096),
    )


def _fit_gp(problem: Problem, x: np.ndarray, y: np.ndarray, seed: int) -> Fitted:
    from keras_gradinn.bench.gp import fit_gp

    start = time.perf_counter()
    gp = fit_gp(x, y, problem.bounds, seed=seed)
    seconds = time.perf_counter() - start
    return Fitted(predict=gp.predict, gradient=gp.gradient, train_seconds=seconds)


def fit(method: str, problem: Problem, x: np.ndarray, y: np.ndarray, *,
        settings: Settings | None = None, seed: int = 0) -> Fitted:
    """Trains `method` on (x, y) of `problem`.

    Args:
        method: one of `METHODS`.
        problem: the benchmark problem (bounds, domain, equations).
        x: training inputs (n, d) in the problem's units.
        y: training targets (n, m).
        settings: neural training choices (default `settings_for(problem.name)`);
            GradINN selects among their `variants()` when they have alternatives.
        seed: seed of weights and collocation draws (and the GP's restarts).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if method == "gp":
        return _fit_gp(problem, x, y, seed)
    settings = settings or settings_for(problem.name)
    if method.startswith("gradinn-auto"):
        return _fit_auto(problem, x, y, settings, seed, kernel=method == "gradinn-auto")
    if method == "gradinn" and (settings.alternatives or settings.screening):
        return _fit_selected(problem, x, y, settings, seed)
    return _fit_network(method, problem, x, y, settings, seed)
