"""Stacked members: k networks trained together in one step as one GradINN.

`Members` is a `keras.Model` mixin of `GradINN` for a stacked `network`,
one mapping (n, d) to (n, k, m) such as `keras_gradinn.mlp(..., members=k)`
builds. Each member's data term and gradient term are its own, and the
step's loss is their sum, so every member gets the gradient it would get
alone. The prior is then shared (fields of shape (n, m*d)) or has one field
per member ((n, k, m*d)); a `sample_weight` of shape (n, k) weights the rows
for each member separately (e.g. 0 for rows held out of its
cross-validation fold). `call` and `predict` give the members' mean,
`predict_members` each member; the reported losses are means over the
members.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from keras_gradinn.validation import positive_int

__all__ = ["Members"]


class Members:
    """A `keras.Model` mixin: the data loss and per-member predictions of a stacked network.

    The model has `members`, `network`, `output_dim`, `_scales`,
    `_jacobian` (the members' Jacobians at normalised points) and
    `_check_points`.
    """

    def _stacked_data_loss(self, z, t, t_pred, sample_weight, training):
        """The compiled loss of a stacked network, averaged over its members.

        Targets are repeated for each member, so the compiled loss sees
        (n, k, m) arrays and its mean runs over rows and members; the weights
        are scaled by k so that its value is the *sum* of the members' own
        losses (plus any weight penalties, once), which is divided by k.
        """
        members = self.members
        targets = tf.repeat(t[:, None, :], members, axis=1)
        weights = tf.ones(tf.shape(t_pred)[:2], t_pred.dtype) if sample_weight is None \
            else tf.cast(sample_weight, t_pred.dtype)
        if weights.shape.rank == 1:
            weights = tf.repeat(weights[:, None], members, axis=1)
        total = self.compute_loss(x=z, y=targets, y_pred=t_pred,
                                  sample_weight=weights * members, training=training)
        return total / members

    def _member_jacobians(self, x: tf.Tensor) -> tf.Tensor:
        """Each member's Jacobian (n, k, m, d) in user units."""
        offset, scale, _, std = self._scales(x.dtype)
        jacobian = self._jacobian((x - offset) / scale, training=False)
        return tf.transpose(jacobian, [1, 0, 2, 3]) * (std[:, None] / scale[None, :])

    def predict_members(self, x: Any, *, batch_size: int = 1024) -> np.ndarray:
        """Each member's prediction in user units, shape (n, k, m) (k = 1 unless stacked)."""
        batch_size = positive_int(batch_size, "batch_size")
        x = self._check_points(x, "x", strict=False).astype(self.compute_dtype)
        offset, scale, mean, std = (v.numpy() for v in self._scales(self.compute_dtype))
        parts = []
        for i in range(0, len(x), batch_size):
            outputs = self.network((x[i : i + batch_size] - offset) / scale, training=False)
            parts.append(np.asarray(outputs).reshape(-1, self.members, self.output_dim))
        return mean + std * np.concatenate(parts, axis=0)
