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

import math
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

# Re-exported: `kernels.fit_gp` is where users find the GP behind the prior.
from keras_gradinn.gaussian_process import GaussianProcess, fit_gp

__all__ = ["GaussianProcess", "KernelField", "fit_gp"]

_SQRT5 = math.sqrt(5.0)


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
           **kwargs) -> KernelField:
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
