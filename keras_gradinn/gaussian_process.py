"""The Gaussian process of the library and of the benchmarks, without TensorFlow.

An ARD Matern 5/2 kernel, `k(z, z') = c (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r)`
with `r^2 = sum_j (z_j - z'_j)^2 / l_j^2`, plus white noise, fitted by
scikit-learn's `GaussianProcessRegressor` (one process per output) on inputs
normally scaled to [-1, 1]^d. `GaussianProcess` keeps the posterior mean in
closed form, with its exact gradient, and the posterior standard deviation
from the kernel matrix's Cholesky factor. `kernels.KernelField` evaluates that
gradient in a Keras graph as a GradINN prior; the benchmark baseline
(`bench.gp`) and the scaling study (`bench.scale`) fit the same GP. This
module imports only NumPy (scikit-learn when fitting), so that a process
measuring the GP's own memory does not load TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable

import numpy as np

__all__ = ["GaussianProcess", "fit_gp"]

_SQRT5 = math.sqrt(5.0)


@dataclasses.dataclass(frozen=True)
class GaussianProcess:
    """A fitted GP's posterior mean, per output, in the normalised space.

    Attributes:
        centres: the training inputs the mean is built on, shape (N, d).
        coefficients: `std * c * alpha` per output, shape (m, N).
        length_scales: ARD length scales per output, shape (m, d).
        mean: the posterior mean far from the data, shape (m,).
        noise: the fitted white-noise variance per output, in units of the
            targets' variance, shape (m,).
        amplitude: the kernel's variance `c` per output, in the same units,
            shape (m,).
        target_std: the targets' standard deviation those units refer to,
            shape (m,).
        cholesky: the lower Cholesky factor of each output's kernel matrix on
            the centres (noise included), shape (m, N, N).
    """

    centres: np.ndarray
    coefficients: np.ndarray
    length_scales: np.ndarray
    mean: np.ndarray
    noise: np.ndarray
    amplitude: np.ndarray | None = None
    target_std: np.ndarray | None = None
    cholesky: np.ndarray | None = None

    def _weights(self, z: np.ndarray, output: int, slope: bool) -> tuple[np.ndarray, np.ndarray]:
        scaled = (z[:, None, :] - self.centres[None]) / self.length_scales[output]
        r = np.sqrt(np.sum(scaled**2, axis=-1))
        decay = np.exp(-_SQRT5 * r)
        if slope:
            return -(5.0 / 3.0) * (1 + _SQRT5 * r) * decay, scaled / self.length_scales[output]
        return (1 + _SQRT5 * r + 5.0 / 3.0 * r**2) * decay, scaled

    def _per_output(self, z: np.ndarray, block: int, shape: tuple[int, ...],
                    value: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
        """`value(rows, output)` for every output over `z` in blocks of rows: (n, m, *shape).

        Blocks bound the memory of the (rows, centres) kernel matrices.
        """
        z = np.asarray(z, np.float64)
        out = np.empty((len(z), len(self.mean), *shape))
        for start in range(0, len(z), block):
            rows = z[start:start + block]
            for o in range(len(self.mean)):
                out[start:start + block, o] = value(rows, o)
        return out

    def predict(self, z: np.ndarray, *, block: int = 2048) -> np.ndarray:
        """The posterior mean at normalised points `z` (n, d); shape (n, m)."""

        def mean(rows, o):
            return self.mean[o] + self._weights(rows, o, slope=False)[0] @ self.coefficients[o]

        return self._per_output(z, block, (), mean)

    def std(self, z: np.ndarray, *, observation: bool = False, block: int = 2048) -> np.ndarray:
        """The posterior standard deviation at normalised points `z`; shape (n, m).

        Of the latent function, or with `observation` of a new noisy
        observation (adding the white noise, as scikit-learn's
        `predict(return_std=True)` does).
        """
        from scipy.linalg import solve_triangular

        if self.cholesky is None:
            raise ValueError("this GaussianProcess keeps no Cholesky factor (fit it with fit_gp)")

        def std(rows, o):
            k, _ = self._weights(rows, o, slope=False)
            v = solve_triangular(self.cholesky[o], self.amplitude[o] * k.T, lower=True)
            variance = self.amplitude[o] - np.sum(v**2, axis=0)
            if observation:
                variance = variance + self.noise[o]
            return self.target_std[o] * np.sqrt(np.maximum(variance, 0.0))

        return self._per_output(z, block, (), std)

    def gradient(self, z: np.ndarray, *, block: int = 2048) -> np.ndarray:
        """The posterior mean's Jacobian at normalised points `z`; shape (n, m, d)."""

        def slope(rows, o):
            k, direction = self._weights(rows, o, slope=True)
            return np.einsum("nk,nkj,k->nj", k, direction, self.coefficients[o])

        return self._per_output(z, block, (np.shape(z)[1],), slope)


def fit_gp(
    z: np.ndarray,
    t: np.ndarray,
    *,
    restarts: int = 3,
    seed: int = 0,
    max_points: int | None = None,
    fit_points: int | None = None,
) -> GaussianProcess:
    """Fits the ARD Matern 5/2 GP to normalised inputs `z` (n, d) and targets `t` (n, m).

    scikit-learn's `GaussianProcessRegressor` with kernel
    `C * Matern(ARD, nu=2.5) + White`, `normalize_y=True`, one process per
    output column, hyper-parameters by maximum likelihood from the default
    start and `restarts` random ones.

    Args:
        z: inputs, normally in [-1, 1]^d.
        t: targets, shape (n, m) (or (n,)).
        restarts: extra optimiser starts.
        seed: seed of the restarts and of the subset.
        max_points: with more rows than this, the GP is fitted to a random
            subset of that many (a subset-of-data approximation, since the
            exact GP costs O(n^3)); None for all rows.
        fit_points: with more rows than this (after `max_points`), the
            hyper-parameters are fitted to a random subset of that many and
            the posterior is then conditioned on all rows; None for all.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    z = np.asarray(z, np.float64)
    t = np.asarray(t, np.float64).reshape(len(z), -1)
    rng = np.random.default_rng([seed, len(z)])
    if max_points is not None and len(z) > max_points:
        rows = np.sort(rng.choice(len(z), max_points, replace=False))
        z, t = z[rows], t[rows]
    fitted = np.arange(len(z))
    if fit_points is not None and len(z) > fit_points:
        fitted = np.sort(rng.choice(len(z), fit_points, replace=False))
    coefficients, lengths, means, noises, amplitudes, stds, factors = [], [], [], [], [], [], []
    for column in t.T:
        kernel = ConstantKernel(1.0) * Matern(length_scale=np.ones(z.shape[1]), nu=2.5) \
            + WhiteKernel(1e-5)
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=restarts,
                                      random_state=seed)
        with warnings.catch_warnings():
            # A length scale at its bound is a fit, not a failure.
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(z[fitted], column[fitted])
            if len(fitted) < len(z):
                gp = GaussianProcessRegressor(gp.kernel_, normalize_y=True, optimizer=None)
                gp.fit(z, column)
        product, white = gp.kernel_.k1, gp.kernel_.k2
        std = float(np.ravel(gp._y_train_std)[0])
        coefficients.append(std * float(product.k1.constant_value) * np.ravel(gp.alpha_))
        lengths.append(np.broadcast_to(np.asarray(product.k2.length_scale, float), (z.shape[1],)))
        means.append(float(np.ravel(gp._y_train_mean)[0]))
        noises.append(float(white.noise_level))
        amplitudes.append(float(product.k1.constant_value))
        stds.append(std)
        factors.append(gp.L_)
    return GaussianProcess(centres=z, coefficients=np.array(coefficients),
                           length_scales=np.array(lengths), mean=np.array(means),
                           noise=np.array(noises), amplitude=np.array(amplitudes),
                           target_std=np.array(stds), cholesky=np.array(factors))
