"""Predictive uncertainty of an ensemble: its calibration, and how to score it.

A stacked GradINN's members differ in their initial weights; their spread
`s(x)` (standard deviation over members) says where the data leave the
function open, but it is usually too narrow: members trained on the same
rows with the same prior share much of their error. `Calibration` holds,
per output and in units of the output's spread in the training targets (the
model's `output_std`), three numbers: the standard deviation of the
surrogate's error is

    sigma(x) = sqrt((scale * s(x))^2 + floor^2)

(`floor`: the error the spread does not show), and a new observation's adds
the targets' noise: `sqrt(sigma(x)^2 + noise^2)`. `fit_calibration` chooses
`scale` and `floor` by maximum likelihood of held-out residuals under that
observation model, given the noise level: residuals of members that did not
see those rows, with the spread of those members. The Jacobian's standard
deviation is `scale` times the members' spread of their Jacobians.

Predictions' standard deviations (`predict(x, return_std=True)`, the
exports' `y_std`) are `sigma(x)`, of the function's value as a GP's
posterior of its latent function is: the uncertainty a design or
optimisation loop needs, and the one that clean test targets measure.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["Calibration", "calibration_curve", "coverage", "fit_calibration", "gaussian_nll",
           "interval_half_width"]


def _floats(values) -> tuple[float, ...]:
    return tuple(float(v) for v in np.ravel(values))


@dataclasses.dataclass(frozen=True)
class Calibration:
    """`sigma = sqrt((scale * spread)^2 + floor^2)` per output, and the targets' `noise`.

    Tuples of one non-negative float per output, in units of the output's
    spread in the training targets. `Calibration.identity(m)` (scale 1,
    floor and noise 0) gives the raw spread.
    """

    scale: tuple[float, ...]
    floor: tuple[float, ...]
    noise: tuple[float, ...]

    def __post_init__(self):
        values = [_floats(v) for v in (self.scale, self.floor, self.noise)]
        if len({len(v) for v in values}) != 1 or not values[0]:
            raise ValueError(f"Calibration needs one scale, floor and noise per output; got "
                             f"{[len(v) for v in values]}")
        if not all(math.isfinite(v) and v >= 0 for v in sum(values, ())):
            raise ValueError(f"Calibration scale, floor and noise must be finite and >= 0; got "
                             f"{values}")
        for name, value in zip(("scale", "floor", "noise"), values):
            object.__setattr__(self, name, value)

    @classmethod
    def identity(cls, outputs: int) -> Calibration:
        return cls((1.0,) * outputs, (0.0,) * outputs, (0.0,) * outputs)

    def std(self, spread: np.ndarray, observation: bool = False) -> np.ndarray:
        """The standard deviation (normalised units) for spreads (..., m): of the
        function's value, or with `observation` of a new noisy observation."""
        noise = np.asarray(self.noise) if observation else 0.0
        return np.sqrt((np.asarray(self.scale) * spread) ** 2 + np.asarray(self.floor) ** 2
                       + noise**2)

    def as_dict(self) -> dict[str, list[float]]:
        return {"scale": list(self.scale), "floor": list(self.floor), "noise": list(self.noise)}

    @classmethod
    def of(cls, value: dict) -> Calibration:
        return cls(tuple(value["scale"]), tuple(value["floor"]), tuple(value["noise"]))


def _fit_one(r2: np.ndarray, s2: np.ndarray, noise2: float,
             weights: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (scale, floor) of one output's squared residuals and spreads."""
    from scipy.optimize import minimize

    unit = float(np.average(r2, weights=weights))
    if unit == 0:
        return 1.0, 0.0
    spread2 = float(np.average(s2, weights=weights))

    # Variances relative to the mean squared residual keep the search in a
    # range of order one; log-parameters keep them positive.
    def nll(p: np.ndarray) -> float:
        variance = (np.exp(p[0]) * s2 + np.exp(p[1])) * unit + noise2
        return float(np.average(np.log(variance) + r2 / variance, weights=weights))

    if spread2 == 0:  # no spread to scale: a floor alone
        best = minimize(lambda q: nll(np.array([0.0, q[0]])), np.array([-1.0]),
                        method="L-BFGS-B", bounds=[(-30.0, 2.0)])
        return 1.0, math.sqrt(math.exp(best.x[0]) * unit)
    guess = math.log(unit / spread2)
    starts = [np.array([guess, -2.0]), np.array([guess - 4.0, 0.0]), np.array([guess, -12.0])]
    bounds = [(guess - 25.0, guess + 25.0), (-30.0, 2.0)]
    best = min((minimize(nll, p, method="L-BFGS-B", bounds=bounds) for p in starts),
               key=lambda result: result.fun)
    return math.sqrt(math.exp(best.x[0]) * unit), math.sqrt(math.exp(best.x[1]) * unit)


def fit_calibration(residuals: np.ndarray, spreads: np.ndarray,
                    sample_weight: np.ndarray | None = None,
                    noise: Sequence[float] | float = 0.0) -> Calibration:
    """The `Calibration` that maximises the Gaussian likelihood of held-out residuals.

    Args:
        residuals: targets minus the ensemble's mean, (n, m) or (n,), at rows
            the members did not see, in normalised units.
        spreads: the members' standard deviation at those rows, same shape.
        sample_weight: optional non-negative weights of the rows.
        noise: the targets' noise standard deviation per output (or one for
            all), estimated elsewhere; the residuals' variance beyond it and
            beyond the scaled spread is the floor. With 0, all of the
            unexplained error counts as the function's.

    Returns:
        The calibration, one (scale, floor, noise) per output.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> spread = rng.uniform(0.1, 1.0, 2000)
        >>> round(fit_calibration(3 * spread * rng.standard_normal(2000), spread).scale[0], 1)
        3.0
    """
    residuals = np.asarray(residuals, dtype=float)
    spreads = np.asarray(spreads, dtype=float)
    if residuals.shape != spreads.shape or residuals.ndim not in (1, 2) or not len(residuals):
        raise ValueError(f"residuals and spreads must have the same shape (n,) or (n, m) with "
                         f"n >= 1; got {residuals.shape} and {spreads.shape}")
    if not (np.isfinite(residuals).all() and np.isfinite(spreads).all()) or (spreads < 0).any():
        raise ValueError("residuals must be finite and spreads finite and >= 0")
    residuals, spreads = residuals.reshape(len(residuals), -1), spreads.reshape(len(spreads), -1)
    m = residuals.shape[1]
    noise = np.broadcast_to(np.asarray(noise, dtype=float), (m,))
    if not (np.isfinite(noise).all() and (noise >= 0).all()):
        raise ValueError(f"noise must be finite and >= 0; got {noise.tolist()}")
    weights = np.ones(len(residuals)) if sample_weight is None \
        else np.asarray(sample_weight, dtype=float)
    if weights.shape != (len(residuals),) or (weights < 0).any() or not weights.sum() > 0:
        raise ValueError(f"sample_weight must be {len(residuals)} non-negative weights with a "
                         f"positive sum")
    fitted = [_fit_one(residuals[:, i] ** 2, spreads[:, i] ** 2, float(noise[i]) ** 2, weights)
              for i in range(m)]
    return Calibration(tuple(s for s, _ in fitted), tuple(f for _, f in fitted), tuple(noise))


def _checked(y, mean, std) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, mean, std = (np.asarray(a, dtype=float) for a in (y, mean, std))
    if not y.shape == mean.shape == std.shape:
        raise ValueError(f"y, mean and std must have the same shape; got {y.shape}, "
                         f"{mean.shape} and {std.shape}")
    return y, mean, std


def interval_half_width(std, level: float = 0.9) -> np.ndarray:
    """Half the width of the central `level` interval of N(mean, std^2): 1.645 std at 0.9."""
    from scipy.stats import norm

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    return norm.ppf(0.5 + level / 2) * np.asarray(std, dtype=float)


def coverage(y, mean, std, level: float = 0.9) -> float:
    """The fraction of `y` inside the central `level` interval of N(mean, std^2)."""
    y, mean, std = _checked(y, mean, std)
    return float(np.mean(np.abs(y - mean) <= interval_half_width(std, level)))


def gaussian_nll(y, mean, std) -> float:
    """The mean negative log-density of `y` under N(mean, std^2) (std floored at 1e-12)."""
    y, mean, std = _checked(y, mean, std)
    variance = np.maximum(std, 1e-12) ** 2
    return float(np.mean(0.5 * (np.log(2 * np.pi * variance) + (y - mean) ** 2 / variance)))


def calibration_curve(y, mean, std, levels: Sequence[float] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Expected against observed coverage of central intervals, for a calibration plot.

    Returns `(levels, observed)`: for each level, the fraction of `y` inside
    the central interval of that probability. A calibrated model lies on the
    diagonal; below it, the intervals are too narrow.
    """
    levels = np.linspace(0.05, 0.95, 19) if levels is None else np.asarray(levels, dtype=float)
    return levels, np.array([coverage(y, mean, std, level) for level in levels])
