"""Global sensitivity indices of a fitted surrogate: Sobol' (variance-based) and DGSM.

A surrogate costs microseconds per point and gives its exact Jacobian, so
global sensitivity analysis, which needs thousands of evaluations of the real
model, becomes a second's work on the surrogate. Both functions take a fitted
`GradINN` (or a `GradINNRegressor`, whose `model_` they use) and return
numpy arrays named as SALib names them, each of shape (d,) for a
single-output model and (m, d) for m outputs.

- `sobol`: the first-order index `S1_j = Var(E[Y | x_j]) / Var(Y)` and the
  total index `ST_j = E[Var(Y | x_~j)] / Var(Y)` (the share of the variance
  that involves x_j at all), estimated by SALib's Saltelli/Jansen estimators
  on the surrogate's predictions at SALib's `N (d + 2)` points.
- `dgsm`: the derivative-based measure `vi_j = E[(dY/dx_j)^2]` from the
  surrogate's exact Jacobian, and SALib's normalisation of it,
  `dgsm_j = vi_j (b_j - a_j)^2 / (pi^2 Var(Y))`, which bounds `ST_j` from
  above for inputs uniform on the box `[a, b]` (Sobol' and Kucherenko, 2009).
  SALib computes `vi` by finite differences, `N (d + 1)` model evaluations;
  here it costs N points of one batched Jacobian.

Inputs are taken uniform over the model's `bounds`, or over a smaller box
given as `bounds` (the inputs' nominal ranges, say). An ensemble's indices
are those of the members' mean (the model's prediction), with the spread of
the members' own indices beside them (`*_members_std`).

Example:
    >>> from keras_gradinn import sensitivity
    >>> indices = sensitivity.sobol(model, n_samples=4096, seed=0)
    >>> indices["ST"].shape  # one output, d inputs
    (5,)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from keras_gradinn import sampling
from keras_gradinn.validation import BOUNDS_SLACK, integer_in, positive_int

__all__ = ["dgsm", "sobol"]

Seed = int | np.random.Generator | None


def _fitted_model(model: Any):
    """The `GradINN` behind `model`: itself, or a fitted `GradINNRegressor`'s `model_`.

    Raises:
        sklearn.exceptions.NotFittedError: for a regressor not fitted yet.
        TypeError: for anything else.
    """
    from sklearn.exceptions import NotFittedError

    from keras_gradinn.estimator import GradINNRegressor
    from keras_gradinn.model import GradINN

    if isinstance(model, GradINNRegressor):
        if getattr(model, "model_", None) is None:
            raise NotFittedError("this GradINNRegressor is not fitted yet: call fit(X, y) "
                                 "before computing its sensitivity indices")
        return model.model_
    if isinstance(model, GradINN):
        return model
    raise TypeError(f"model must be a keras_gradinn.GradINN or a fitted GradINNRegressor; "
                    f"got {type(model).__name__}")


def _check_options(n_samples: Any, num_resamples: Any, conf_level: Any) -> tuple[int, int, float]:
    """The options both methods share, checked; a ValueError names the first bad one."""
    n_samples = integer_in(n_samples, "n_samples", 2)
    num_resamples = integer_in(num_resamples, "num_resamples", 2)
    if isinstance(conf_level, bool) or not isinstance(conf_level, (int, float, np.floating)) \
            or not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be a probability strictly between 0 and 1; "
                         f"got {conf_level!r}")
    return n_samples, num_resamples, float(conf_level)


def _check_seed(seed: Any) -> Seed:
    """`seed` as `numpy.random.default_rng` takes it: None, a Generator or an integer >= 0."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    return integer_in(seed, "seed", 0)


def _box(model, bounds: Any) -> np.ndarray:
    """The box the inputs are uniform on: the model's bounds, or `bounds` inside them."""
    if bounds is None:
        return model.bounds
    box = sampling.as_bounds(bounds)
    if box.shape != model.bounds.shape:
        raise ValueError(f"bounds must have shape {model.bounds.shape}, one (low, high) per "
                         f"input of the model; got shape {box.shape}")
    low, high = model.bounds.T
    slack = BOUNDS_SLACK * (high - low)  # as the model's own checks of points allow
    beyond = np.flatnonzero((box[:, 0] < low - slack) | (box[:, 1] > high + slack))
    if beyond.size:
        j = int(beyond[0])
        raise ValueError(f"bounds must lie inside the model's bounds, where it was fitted; "
                         f"input {model.input_labels[j]!r} has {tuple(box[j].tolist())}, "
                         f"outside {tuple(model.bounds[j].tolist())}")
    return box


def _shaped(values: np.ndarray) -> np.ndarray:
    """Indices (m, d) as returned: (d,) for a single output."""
    values = np.asarray(values, dtype=np.float64)
    return values[0] if values.shape[0] == 1 else values


def _warn_constant(model, constant: np.ndarray) -> None:
    """Warns that the outputs flagged in `constant` (m,) have no variance to apportion."""
    if constant.any():
        names = [model.output_labels[i] for i in np.flatnonzero(constant)]
        warnings.warn(f"output(s) {names} are constant over the domain: their indices are "
                      f"NaN (there is no variance to apportion)", stacklevel=3)


def _members_std(values: np.ndarray) -> np.ndarray:
    """The unbiased standard deviation over the members (axis 0)."""
    return np.std(values, axis=0, ddof=1)


def sobol(
    model: Any,
    *,
    n_samples: int = 8192,
    seed: Seed = None,
    bounds: Any = None,
    num_resamples: int = 100,
    conf_level: float = 0.95,
    batch_size: int = 8192,
) -> dict[str, np.ndarray]:
    """First-order and total Sobol' indices of a fitted surrogate, per output.

    The surrogate is evaluated at SALib's Saltelli design
    (`SALib.sample.sobol.sample` with `calc_second_order=False`:
    `n_samples * (d + 2)` points uniform over the model's `bounds`) and the
    indices estimated by `SALib.analyze.sobol.analyze`, with its bootstrap
    confidence half-widths:

        S1_j = Var(E[Y | x_j]) / Var(Y),   ST_j = E[Var(Y | x_~j)] / Var(Y).

    `S1_j` is the share of the output's variance that x_j explains alone,
    `ST_j` the share in which x_j takes part, interactions included;
    `ST_j - S1_j` is its interactions' share, and `ST_j ~ 0` marks an inert
    input. Sobol' indices assume independent inputs, so a model whose domain
    is cut by a `contains` predicate is still evaluated over the whole box
    (with a warning: it extrapolates there).

    Args:
        model: a `GradINN`, or a fitted `GradINNRegressor` (its `model_`).
        n_samples: SALib's base sample size N, a power of two (the Sobol'
            sequence is balanced only in blocks of 2^k).
        seed: seed of the design and of the bootstrap (an integer, a
            `numpy.random.Generator`, or None for fresh entropy).
        bounds: the box (d, 2) the inputs are uniform on, inside the model's
            `bounds` (None: the model's bounds). A `GradINNRegressor` fitted
            without `bounds` has the data's range widened by 5 % on each
            side; pass the inputs' nominal ranges to analyse those.
        num_resamples: bootstrap resamples of the confidence half-widths.
        conf_level: probability of the confidence intervals.
        batch_size: rows per evaluation of the network.

    Returns:
        `"S1"`, `"S1_conf"`, `"ST"`, `"ST_conf"`: float64 arrays of shape
        (d,) for one output, (m, d) for m; the `_conf` entries are the
        half-widths of the `conf_level` intervals. For an ensemble
        (`model.members > 1`) also `"S1_members_std"` and `"ST_members_std"`:
        the standard deviation of each member's own indices, on the same
        design. An output that is constant over the box gets NaN (with a
        warning).

    Raises:
        ValueError: for bad options (naming the option and the value).
        TypeError: if `model` is not a GradINN or GradINNRegressor.

    Example:
        >>> indices = sobol(model, n_samples=4096, seed=0)
        >>> inert = np.flatnonzero(indices["ST"] < 0.01)
    """
    from SALib.analyze import sobol as sobol_analyze
    from SALib.sample import sobol as sobol_sample

    model = _fitted_model(model)
    n_samples, num_resamples, conf_level = _check_options(n_samples, num_resamples, conf_level)
    seed = _check_seed(seed)
    box = _box(model, bounds)
    if n_samples & (n_samples - 1):
        below = 1 << (n_samples.bit_length() - 1)
        raise ValueError(f"n_samples must be a power of two for the Sobol' design; got "
                         f"{n_samples} (try {below} or {2 * below})")
    if model.contains is not None:
        warnings.warn("the model's domain is cut by a contains predicate, but Sobol' indices "
                      "assume independent inputs: the surrogate is evaluated over the whole "
                      "bounds box, outside its domain too", stacklevel=2)
    rng = np.random.default_rng(seed)
    # SALib seeds its own generators only for a truthy seed (0 falls back to
    # NumPy's global one), so it is given nonzero integers drawn from `rng`.
    design_seed, bootstrap_seed = (int(s) for s in rng.integers(1, 2**31 - 1, size=2))
    problem = {"num_vars": model.input_dim, "names": list(model.input_labels),
               "bounds": box.tolist()}
    x = sobol_sample.sample(problem, n_samples, calc_second_order=False, seed=design_seed)
    members = model.predict_members(x, batch_size=batch_size).astype(np.float64)  # (n, k, m)
    k, m, d = model.members, model.output_dim, model.input_dim

    def indices(y: np.ndarray, resamples: int) -> dict[str, np.ndarray]:
        if not np.ptp(y) > 0:
            return {key: np.full(d, np.nan) for key in ("S1", "S1_conf", "ST", "ST_conf")}
        result = sobol_analyze.analyze(problem, y, calc_second_order=False,
                                       num_resamples=resamples, conf_level=conf_level,
                                       seed=bootstrap_seed)
        return {key: np.asarray(result[key], dtype=np.float64)
                for key in ("S1", "S1_conf", "ST", "ST_conf")}

    mean = members.mean(axis=1)
    per_output = [indices(mean[:, i], num_resamples) for i in range(m)]
    _warn_constant(model, np.array([not np.ptp(mean[:, i]) > 0 for i in range(m)]))
    result = {key: _shaped(np.stack([row[key] for row in per_output]))
              for key in ("S1", "S1_conf", "ST", "ST_conf")}
    if k > 1:
        # Each member's point estimates only: two resamples are SALib's least.
        own = [[indices(members[:, j, i], 2) for i in range(m)] for j in range(k)]
        for key in ("S1", "ST"):
            values = np.array([[row[key] for row in member] for member in own])  # (k, m, d)
            result[f"{key}_members_std"] = _shaped(_members_std(values))
    return result


def _dgsm_indices(jacobian: np.ndarray, y: np.ndarray,
                  widths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SALib's `vi`, `vi_std` and `dgsm` (each (m, d)) from Jacobians (n, m, d) and outputs (n, m).

    As `SALib.analyze.dgsm`: `vi` is the mean of the squared derivatives,
    `vi_std` their population standard deviation, and
    `dgsm = vi * width^2 / (pi^2 * Var(Y))` with the population variance of
    the outputs at the same points; NaN where the output is constant.
    """
    squared = jacobian**2
    vi, vi_std = squared.mean(axis=0), squared.std(axis=0)
    variance = y.var(axis=0)[:, None]
    scaled = vi * widths**2 / np.pi**2
    with np.errstate(divide="ignore", invalid="ignore"):
        index = np.where(variance > 0, scaled / variance, np.nan)
    return vi, vi_std, index


def _bootstrap_dgsm(squared: np.ndarray, y: np.ndarray, widths: np.ndarray,
                    rng: np.random.Generator, num_resamples: int) -> np.ndarray:
    """The `dgsm` index (m, d) recomputed on `num_resamples` resamples of the points: (R, m, d).

    Each resample draws n points with replacement, as SALib does, and
    recomputes both the mean squared derivative and the output's variance
    from them; the draws are turned into counts so a resample costs one
    matrix-vector product over the points.
    """
    n, m, d = squared.shape
    flat = squared.reshape(n, m * d)
    centred = y - y.mean(axis=0)
    draws = np.empty((num_resamples, m, d))
    for r in range(num_resamples):
        weights = np.bincount(rng.integers(n, size=n), minlength=n) / n
        vi = (weights @ flat).reshape(m, d)
        variance = weights @ centred**2 - (weights @ centred) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            draws[r] = vi * widths**2 / (np.pi**2 * variance[:, None])
    return draws


def _member_jacobians(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Each member's exact Jacobian (n, k, m, d), float64, evaluated eagerly.

    `predict_gradient` traces a graph on its first call, which pays off over
    repeated calls but takes several times longer than this one pass.
    """
    import tensorflow as tf

    x = x.astype(model.compute_dtype)
    parts = [model._member_jacobians(tf.constant(x[i:i + batch_size])).numpy()
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts, axis=0).astype(np.float64)


def dgsm(
    model: Any,
    *,
    n_samples: int = 8192,
    seed: Seed = None,
    bounds: Any = None,
    num_resamples: int = 100,
    conf_level: float = 0.95,
    batch_size: int = 8192,
) -> dict[str, np.ndarray]:
    """Derivative-based global sensitivity measures from the surrogate's exact Jacobian.

    At `n_samples` points of a scrambled Sobol' sequence over the box (the
    model's `bounds`, or `bounds`), inside the model's `contains` predicate
    if it was built with one,

        vi_j   = E[(dY/dx_j)^2],
        dgsm_j = vi_j (b_j - a_j)^2 / (pi^2 Var(Y)),

    normalised as `SALib.analyze.dgsm` does. For inputs uniform on the box
    `[a, b]`, `dgsm_j >= ST_j` (Sobol' and Kucherenko, 2009): a small
    `dgsm_j` proves input j inert, a large one only allows it to matter.
    Inside a `contains` domain the bound no longer holds exactly (its
    constant is the box's), but `vi` still ranks the inputs by how steeply
    the output moves along each of them. The derivatives are the model's
    exact Jacobian (as `predict_gradient` gives it, one evaluation per
    `batch_size` rows), not finite differences.

    Args:
        model: a `GradINN`, or a fitted `GradINNRegressor` (its `model_`).
        n_samples: points at which the Jacobian is evaluated (>= 2).
        seed: seed of the points and of the bootstrap (an integer, a
            `numpy.random.Generator`, or None for fresh entropy).
        bounds: the box (d, 2) the points are drawn in and whose widths
            normalise `dgsm`, inside the model's `bounds` (None: the
            model's bounds); see `sobol`.
        num_resamples: bootstrap resamples of the confidence half-width.
        conf_level: probability of the confidence interval.
        batch_size: rows per Jacobian evaluation.

    Returns:
        float64 arrays of shape (d,) for one output, (m, d) for m:
        `"vi"` (in squared output units per squared input unit), `"vi_std"`
        (the squared derivatives' standard deviation over the points, as
        SALib reports it), `"dgsm"` and `"dgsm_conf"`, the half-width of its
        `conf_level` bootstrap interval. The bootstrap redraws the points
        with replacement, recomputes `vi` and `Var(Y)`, and takes
        `z * std` of the resampled `dgsm` (SALib's `dgsm_conf` is the same
        for `vi`, unnormalised, so is not in the index's units). For an
        ensemble (`model.members > 1`) also `"vi_members_std"` and
        `"dgsm_members_std"`: the standard deviation of each member's own
        measures at the same points. An output that is constant over the
        domain gets a NaN `dgsm` (with a warning).

    Raises:
        ValueError: for bad options (naming the option and the value).
        TypeError: if `model` is not a GradINN or GradINNRegressor.

    Example:
        >>> measures = dgsm(model, n_samples=10_000, seed=0)
        >>> measures["dgsm"] >= sobol(model, seed=0)["ST"] - 0.02  # the bound
    """
    from scipy.stats import norm

    model = _fitted_model(model)
    n_samples, num_resamples, conf_level = _check_options(n_samples, num_resamples, conf_level)
    seed = _check_seed(seed)
    box = _box(model, bounds)
    rng = np.random.default_rng(seed)
    x = sampling.sample(n_samples, box, method="sobol", seed=rng,
                        contains=model.contains)
    jacobians = _member_jacobians(model, x, positive_int(batch_size, "batch_size"))
    members = model.predict_members(x, batch_size=batch_size).astype(np.float64)  # (n, k, m)
    widths = box[:, 1] - box[:, 0]
    # The model's prediction is the members' mean, and so is its Jacobian.
    jacobian, y = jacobians.mean(axis=1), members.mean(axis=1)
    vi, vi_std, index = _dgsm_indices(jacobian, y, widths)
    _warn_constant(model, np.isnan(index).all(axis=1))
    draws = _bootstrap_dgsm(jacobian**2, y, widths, rng, num_resamples)
    z = norm.ppf(0.5 + conf_level / 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN draws of a constant output
        conf = z * np.std(draws, axis=0, ddof=1)
    result = {"vi": _shaped(vi), "vi_std": _shaped(vi_std), "dgsm": _shaped(index),
              "dgsm_conf": _shaped(conf)}
    if model.members > 1:
        own = [_dgsm_indices(jacobians[:, j], members[:, j], widths)
               for j in range(model.members)]
        result["vi_members_std"] = _shaped(_members_std(np.array([o[0] for o in own])))
        result["dgsm_members_std"] = _shaped(_members_std(np.array([o[2] for o in own])))
    return result

