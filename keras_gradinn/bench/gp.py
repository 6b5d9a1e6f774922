"""The Gaussian-process baseline of the benchmark protocol, with its exact gradient.

The library's GP (`keras_gradinn.gaussian_process.fit_gp`): scikit-learn's
`GaussianProcessRegressor` with kernel `C * Matern(ARD length scales,
nu=2.5) + White`, `normalize_y=True` and 3 optimiser restarts, one GP per
output, on inputs scaled to [-1, 1] by the problem's bounds, like the
networks'. Its gradient is that of the posterior mean, differentiated
analytically (see `kernels`).
"""

from __future__ import annotations

import numpy as np

from keras_gradinn.gaussian_process import fit_gp as _fit
from keras_gradinn.sampling import centre_and_half_width

__all__ = ["GaussianProcess", "fit_gp"]


class GaussianProcess:
    """A fitted `kernels.GaussianProcess` answering in the problem's units."""

    def __init__(self, process, centre: np.ndarray, half_width: np.ndarray):
        self.process, self.centre, self.half_width = process, centre, half_width

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.centre) / self.half_width

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Posterior means, shape (n, m)."""
        return self.process.predict(self._scaled(x))

    def std(self, x: np.ndarray, *, observation: bool = False) -> np.ndarray:
        """Posterior standard deviations, shape (n, m): of the function, or of an observation."""
        return self.process.std(self._scaled(x), observation=observation)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """Jacobians of the posterior means, shape (n, m, d), in the problem's units."""
        return self.process.gradient(self._scaled(x)) / self.half_width


def fit_gp(x: np.ndarray, y: np.ndarray, bounds: np.ndarray, *, seed: int = 0,
           restarts: int = 3) -> GaussianProcess:
    """Fits the protocol's GP to (x, y), one regressor per output column of y.

    Args:
        x: inputs (n, d) in the problem's units.
        y: targets (n, m) or (n,).
        bounds: the domain box (d, 2), mapped onto [-1, 1]^d.
        seed: seed of the optimiser's restarts.
        restarts: extra optimiser starts (the protocol's 3).
    """
    centre, half_width = centre_and_half_width(np.asarray(bounds, dtype=np.float64))
    z = (np.asarray(x, dtype=np.float64) - centre) / half_width
    y = np.asarray(y, dtype=np.float64).reshape(len(z), -1)
    return GaussianProcess(_fit(z, y, restarts=restarts, seed=seed), centre, half_width)
