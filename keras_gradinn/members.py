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

The members' spread is the model's uncertainty: `predictive_outputs` gives
the mean and standard deviation of the prediction and of its Jacobian, the
spread turned into a predictive standard deviation by the model's
`calibration` (see `keras_gradinn.uncertainty`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from keras_gradinn.jacobian import dense_value_and_jacobian
from keras_gradinn.uncertainty import Calibration
from keras_gradinn.validation import positive_int

__all__ = ["Members"]


class Members:
    """A `keras.Model` mixin: the data loss and per-member predictions of a stacked network.

    The model has `members`, `_stacked`, `network`, `output_dim`,
    `_scales`, `_as_rows`, `_jacobian` (the members' Jacobians at normalised
    points) and `_check_points`, and calls `_init_members` once.
    """

    def _init_members(self, calibration: Calibration | dict | None) -> None:
        self._calibration = None
        self._std_function = self._std_gradient_function = None
        # Keras' attribute tracking skips assigning None over None, setter included.
        if calibration is not None:
            self.calibration = calibration

    @property
    def calibration(self) -> Calibration | None:
        """How the members' spread becomes a standard deviation; None: the raw spread.

        Set by `GradINNRegressor.fit` from held-out residuals, or by hand
        (a `Calibration`, or its `as_dict()`); saved and exported with the
        model.
        """
        return self._calibration

    @calibration.setter
    def calibration(self, value: Calibration | dict | None) -> None:
        if isinstance(value, dict):
            value = Calibration.of(value)
        if value is not None and not isinstance(value, Calibration):
            raise TypeError(f"calibration must be a Calibration, its dict or None; got "
                            f"{type(value).__name__}")
        if value is not None and len(value.scale) != self.output_dim:
            raise ValueError(f"calibration must have one scale per output ({self.output_dim}); "
                             f"got {len(value.scale)}")
        self._calibration = value
        # The constants are part of the traced functions. Two attributes, not
        # a dict: Keras would track a dict and refuse to export its keys.
        self._std_function = self._std_gradient_function = None

    @property
    def has_std(self) -> bool:
        """Whether the standard deviation says anything: members that can
        disagree, or a calibration (one uncalibrated network's is zeros)."""
        return (self._stacked and self.members > 1) or self.calibration is not None

    def _spread(self, values: tf.Tensor) -> tf.Tensor:
        """The members' standard deviation (unbiased) over axis 1; zeros for one member."""
        k = values.shape[1]
        if k < 2:
            return tf.zeros_like(values[:, 0])
        return tf.math.reduce_std(values, axis=1) * float(np.sqrt(k / (k - 1)))

    def predictive_outputs(self, x, *, gradient: bool = True,
                           method: str = "reverse") -> dict[str, tf.Tensor]:
        """The prediction and its Jacobian, each with a standard deviation, in user units.

        Args:
            x: inputs of shape (n, d).
            gradient: add the Jacobian's mean and standard deviation.
            method: how the Jacobian is computed, as in `value_and_jacobian`.

        Returns:
            `{"y": (n, m), "y_std": (n, m)}`, and with `gradient` also
            `"dy_dx"` and `"dy_dx_std"` (n, m, d): means over the members,
            and their spread as the `calibration` scales it (plus its floor
            for `y_std`; see `keras_gradinn.uncertainty`). The standard
            deviation is of the function's value, not of a noisy
            observation of it.
        """
        x = self._as_rows(x)
        offset, scale, mean, std = self._scales(x.dtype)
        z = (x - offset) / scale
        calibration = self.calibration or Calibration.identity(self.output_dim)
        c_scale = tf.constant(calibration.scale, x.dtype)
        if gradient and method == "forward":
            t, jacobian = dense_value_and_jacobian(self.network, z)
            if self._stacked:  # member-major (k, n, m) and (k, n, m, d)
                t, jacobian = tf.transpose(t, [1, 0, 2]), tf.transpose(jacobian, [1, 0, 2, 3])
            else:
                t, jacobian = t[:, None], jacobian[:, None]
            jacobian = jacobian * (std[:, None] / scale[None, :])
        elif method in ("forward", "reverse"):
            t = self.network(z, training=False)
            t = t if self._stacked else t[:, None]
            jacobian = self._member_jacobians(x) if gradient else None
        else:
            raise ValueError(f"method must be 'reverse' or 'forward'; got {method!r}")
        floor = tf.constant(calibration.floor, x.dtype)
        sigma = tf.sqrt((c_scale * self._spread(t)) ** 2 + floor**2)
        outputs = {"y": mean + std * tf.reduce_mean(t, axis=1), "y_std": std * sigma}
        if gradient:
            outputs["dy_dx"] = tf.reduce_mean(jacobian, axis=1)
            outputs["dy_dx_std"] = c_scale[:, None] * self._spread(jacobian)
        return outputs

    def _predictive(self, x: Any, gradient: bool, batch_size: int) -> dict[str, np.ndarray]:
        """`predictive_outputs` on an array, in batches, as NumPy arrays."""
        batch_size = positive_int(batch_size, "batch_size")
        x = self._check_points(x, "x", strict=False).astype(self.compute_dtype)
        name = "_std_gradient_function" if gradient else "_std_function"
        if getattr(self, name) is None:
            spec = tf.TensorSpec((None, self.input_dim), self.compute_dtype)
            setattr(self, name, tf.function(
                lambda v: self.predictive_outputs(v, gradient=gradient), input_signature=[spec]))
        function = getattr(self, name)
        parts = [function(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return {key: np.concatenate([part[key].numpy() for part in parts], axis=0)
                for key in parts[0]}

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
