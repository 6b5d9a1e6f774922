"""The Gaussian-process baseline of the benchmark protocol, with its exact gradient.

scikit-learn's `GaussianProcessRegressor` with kernel
`C * Matern(ARD length scales, nu=2.5) + White`, `normalize_y=True` and 3
optimiser restarts; one GP per output. Inputs are scaled to [-1, 1] by the
problem's bounds, like the networks'. The gradient is that of the posterior
mean, differentiated analytically: for the Matern 5/2 kernel
`k(r) = c (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r)`,
`dk/dx_j = -c (5/3) (1 + sqrt5 r) exp(-sqrt5 r) (x_j - x'_j) / l_j^2`.
"""

from __future__ import annotations

import warnings

import numpy as np

from keras_gradinn.sampling import centre_and_half_width

__all__ = ["GaussianProcess", "fit_gp"]


class GaussianProcess:
    """Fitted GPs (one per output) on inputs scaled to [-1, 1]."""

    def __init__(self, regressors: list, centre: np.ndarray, half_width: np.ndarray):
        self.regressors, self.centre, self.half_width = regressors, centre, half_width

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.centre) / self.half_width

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Posterior means, shape (n, m)."""
        z = self._scaled(x)
        return np.stack([gp.predict(z) for gp in self.regressors], axis=1)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """Jacobians of the posterior means, shape (n, m, d), in the problem's units."""
        z = self._scaled(x)
        rows = []
        for gp in self.regressors:
            product = gp.kernel_.k1
            c = float(product.k1.constant_value)
            lengths = np.broadcast_to(np.asarray(product.k2.length_scale, float), (z.shape[1],))
            alpha = np.ravel(gp.alpha_)
            grad = np.zeros_like(z)
            for start in range(0, len(z), 2048):
                block = z[start:start + 2048]
                scaled = (block[:, None, :] - gp.X_train_[None, :, :]) / lengths  # (x - x') / l
                r = np.sqrt(np.sum(scaled**2, axis=-1))
                weight = -c * (5.0 / 3.0) * (1 + np.sqrt(5.0) * r) * np.exp(-np.sqrt(5.0) * r)
                grad[start:start + 2048] = np.einsum("nk,nkj,k->nj", weight, scaled / lengths,
                                                     alpha)
            rows.append(grad * float(np.ravel(gp._y_train_std)[0]))
        return np.stack(rows, axis=1) / self.half_width


def fit_gp(x: np.ndarray, y: np.ndarray, bounds: np.ndarray, *, seed: int = 0) -> GaussianProcess:
    """Fits the protocol's GP to (x, y), one regressor per output column of y."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    centre, half_width = centre_and_half_width(np.asarray(bounds, dtype=np.float64))
    z = (np.asarray(x, dtype=np.float64) - centre) / half_width
    y = np.asarray(y, dtype=np.float64).reshape(len(z), -1)
    regressors = []
    for column in y.T:
        kernel = ConstantKernel(1.0) * Matern(length_scale=np.ones(z.shape[1]), nu=2.5) \
            + WhiteKernel(1e-5)
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=3,
                                      random_state=seed)
        with warnings.catch_warnings():
            # A length scale at its bound is a fit, not a failure; the record keeps the RMSE.
            warnings.simplefilter("ignore", ConvergenceWarning)
            regressors.append(gp.fit(z, column))
    return GaussianProcess(regressors, centre, half_width)
