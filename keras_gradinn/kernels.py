"""Gaussian-process regression, and the gradient of its posterior mean as a prior field.

A Gaussian process with an ARD Matern 5/2 kernel,
`k(z, z') = c (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r)` with
`r^2 = sum_j (z_j - z'_j)^2 / l_j^2`, plus white noise, fitted by
scikit-learn on inputs scaled to [-1, 1]^d (one process per output). Its
posterior mean `mu(z) = mean + std * sum_i alpha_i k(z, z_i)` has the
gradient

    d mu / d z_j = -std * c * (5/3) * sum_i alpha_i (1 + sqrt5 r_i) exp(-sqrt5 r_i)
                   * (z_j - z_ij) / l_j^2,

which `KernelField` evaluates inside a Keras graph. As a GradINN prior it is
a belief learned from the data (empirical Bayes): the gradient field the
data imply under a smooth stationary model, with the ARD length scales
switching off inputs the data do not use; the network follows it where it
cannot tell better and departs from it where the data insist.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

__all__ = ["GaussianProcess", "KernelField", "fit_gp"]

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
    """

    centres: np.ndarray
    coefficients: np.ndarray
    length_scales: np.ndarray
    mean: np.ndarray
    noise: np.ndarray

    def _weights(self, z: np.ndarray, output: int, slope: bool) -> tuple[np.ndarray, np.ndarray]:
        scaled = (z[:, None, :] - self.centres[None]) / self.length_scales[output]
        r = np.sqrt(np.sum(scaled**2, axis=-1))
        decay = np.exp(-_SQRT5 * r)
        if slope:
            return -(5.0 / 3.0) * (1 + _SQRT5 * r) * decay, scaled / self.length_scales[output]
        return (1 + _SQRT5 * r + 5.0 / 3.0 * r**2) * decay, scaled

    def predict(self, z: np.ndarray, *, block: int = 2048) -> np.ndarray:
        """The posterior mean at normalised points `z` (n, d); shape (n, m)."""
        z = np.asarray(z, np.float64)
        out = np.empty((len(z), len(self.mean)))
        for start in range(0, len(z), block):
            rows = z[start:start + block]
            for o in range(len(self.mean)):
                k, _ = self._weights(rows, o, slope=False)
                out[start:start + block, o] = self.mean[o] + k @ self.coefficients[o]
        return out

    def gradient(self, z: np.ndarray, *, block: int = 2048) -> np.ndarray:
        """The posterior mean's Jacobian at normalised points `z`; shape (n, m, d)."""
        z = np.asarray(z, np.float64)
        out = np.empty((len(z), len(self.mean), z.shape[1]))
        for start in range(0, len(z), block):
            rows = z[start:start + block]
            for o in range(len(self.mean)):
                k, direction = self._weights(rows, o, slope=True)
                out[start:start + block, o] = np.einsum(
                    "nk,nkj,k->nj", k, direction, self.coefficients[o])
        return out


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
    coefficients, lengths, means, noises = [], [], [], []
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
    return GaussianProcess(centres=z, coefficients=np.array(coefficients),
                           length_scales=np.array(lengths), mean=np.array(means),
                           noise=np.array(noises))


@keras.saving.register_keras_serializable(package="keras_gradinn")
class KernelField(keras.layers.Layer):
    """The gradient of GPs' posterior means, evaluated in the graph; not trained.

    Holds `members` sets of GPs (one per output each) built on shared
    `centres`; member j's coefficients are zero at centres its GP did not
    use (e.g. rows held out of its cross-validation fold). Maps points `z`
    (n, d) to fields (n, m*d), or with `members`, (n, members, m*d).

    Build it with `KernelField.of(processes)`; its weights hold the numbers.

    Args:
        input_dim: d.
        output_dim: m.
        n_centres: N.
        members: None for one field; an integer for that many.
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, input_dim: int, output_dim: int, n_centres: int, *,
                 members: int | None = None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.n_centres = int(n_centres)
        self.members = None if members is None else int(members)
        count = self.members or 1
        # Float64: with long length scales the coefficients are large and
        # cancel, which float32 would turn into an error of about 1e-2.
        self.centres = self.add_weight(name="centres", shape=(self.n_centres, self.input_dim),
                                       initializer="zeros", trainable=False, dtype="float64")
        self.coefficients = self.add_weight(
            name="coefficients", shape=(count, self.output_dim, self.n_centres),
            initializer="zeros", trainable=False, dtype="float64")
        self.inverse_lengths = self.add_weight(
            name="inverse_lengths", shape=(count, self.output_dim, self.input_dim),
            initializer="ones", trainable=False, dtype="float64")

    @classmethod
    def of(cls, processes: Sequence[GaussianProcess], *, stacked: bool = False,
           **kwargs) -> "KernelField":
        """The field of one GP (`stacked=False`) or of each of several, on their joint centres."""
        processes = list(processes)
        if not stacked and len(processes) != 1:
            raise ValueError(f"one GP gives one field; got {len(processes)} (use stacked=True)")
        centres = np.unique(np.concatenate([p.centres for p in processes]), axis=0)
        index = {row.tobytes(): i for i, row in enumerate(centres)}
        m, d = processes[0].coefficients.shape[0], centres.shape[1]
        coefficients = np.zeros((len(processes), m, len(centres)))
        for j, process in enumerate(processes):
            columns = [index[row.tobytes()] for row in process.centres]
            coefficients[j][:, columns] = process.coefficients
        field = cls(d, m, len(centres), members=len(processes) if stacked else None, **kwargs)
        field.centres.assign(centres)
        field.coefficients.assign(coefficients)
        field.inverse_lengths.assign(np.stack([1.0 / p.length_scales for p in processes]))
        return field

    def call(self, inputs):
        z = tf.cast(inputs, tf.float64)
        count = self.members or 1
        inverse = tf.reshape(self.inverse_lengths, [count * self.output_dim, 1, self.input_dim])
        coefficients = tf.reshape(self.coefficients, [count * self.output_dim, 1, self.n_centres])
        scaled_z = z[None] * inverse                                  # (P, n, d)
        scaled_c = self.centres[None] * inverse                       # (P, N, d)
        squared = (tf.reduce_sum(scaled_z**2, -1)[:, :, None]
                   + tf.reduce_sum(scaled_c**2, -1)[:, None, :]
                   - 2.0 * tf.matmul(scaled_z, scaled_c, transpose_b=True))
        r = tf.sqrt(tf.maximum(squared, 0.0))
        weights = coefficients * (1.0 + _SQRT5 * r) * tf.exp(-_SQRT5 * r)  # (P, n, N)
        # sum_i w_i (z - z_i) / l^2 = (z~ sum_i w_i - W z~_i) / l in the scaled coordinates.
        gradient = -(5.0 / 3.0) * inverse * (
            scaled_z * tf.reduce_sum(weights, -1, keepdims=True) - tf.matmul(weights, scaled_c))
        gradient = tf.reshape(gradient, [count, self.output_dim, -1, self.input_dim])
        gradient = tf.transpose(gradient, [2, 0, 1, 3])               # (n, count, m, d)
        flat = tf.cast(tf.reshape(gradient, [-1, count, self.output_dim * self.input_dim]),
                       self.compute_dtype)
        return flat if self.members else flat[:, 0]

    def compute_output_shape(self, input_shape):
        fields = self.output_dim * self.input_dim
        if self.members:
            return (input_shape[0], self.members, fields)
        return (input_shape[0], fields)

    def get_config(self):
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim,
                      n_centres=self.n_centres, members=self.members)
        return config
