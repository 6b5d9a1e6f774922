"""The normalisation around GradINN's network: inputs to [-1, 1]^d, outputs standardised.

`Standardise` is a `keras.Model` mixin. Its constants are non-trainable
weights, so they are saved and exported with the model: the input offset
and scale come from the bounds; the output mean and spread from the
training targets (the first `fit`, or `adapt`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from keras_gradinn.validation import check_rows, finite_array, first_nonfinite_row

__all__ = ["Scales", "Standardise"]


class Scales(NamedTuple):
    """The normalisation constants: `z = (x - offset) / scale`, `y = mean + std * t`."""

    offset: tf.Tensor
    scale: tf.Tensor
    mean: tf.Tensor
    std: tf.Tensor


class Standardise:
    """A `keras.Model` mixin: the model's normalisation weights, `adapt` and `_normalise`.

    The model calls `_init_scales` once, has `input_dim`, `output_dim` and
    `collocation_step`, and turns inputs into rows with `_as_rows`.
    """

    def _init_scales(self, centre: np.ndarray, half_width: np.ndarray, m: int) -> None:
        """Adds the normalisation weights: the bounds' centre and half width, then (0, 1)."""
        d = len(centre)
        constant = keras.initializers.Constant
        self.input_offset = self.add_weight(
            name="input_offset", shape=(d,), initializer=constant(centre), trainable=False
        )
        self.input_scale = self.add_weight(
            name="input_scale", shape=(d,), initializer=constant(half_width), trainable=False
        )
        self.output_mean = self.add_weight(
            name="output_mean", shape=(m,), initializer="zeros", trainable=False
        )
        self.output_std = self.add_weight(
            name="output_std", shape=(m,), initializer="ones", trainable=False
        )
        self.output_adapted = self.add_weight(
            name="output_adapted", shape=(), initializer="zeros", trainable=False
        )

    def _scales(self, dtype) -> Scales:
        """The normalisation constants cast to `dtype`."""
        return Scales(*(
            tf.cast(v, dtype)
            for v in (self.input_offset, self.input_scale, self.output_mean, self.output_std)
        ))

    def _normalise(self, x, y, derivatives=None):
        """Normalised inputs `z`, standardised targets `t` and derivatives `dt/dz`.

        `t` is None without targets, and `dt/dz` without `derivatives`
        (n, m, d) in user units, NaN where not observed.
        """
        x = self._as_rows(x)
        offset, scale, mean, std = self._scales(x.dtype)
        z = (x - offset) / scale
        if y is None:
            return z, None, None
        y = tf.cast(y, x.dtype)
        m = self.output_dim
        y = check_rows(y, "y", m, purpose=f"for {m} output(s)")
        if derivatives is None:
            return z, (y - mean) / std, None
        derivatives = tf.reshape(tf.cast(derivatives, x.dtype), [-1, m, self.input_dim])
        return z, (y - mean) / std, derivatives * scale[None, None, :] / std[None, :, None]

    @property
    def adapted(self) -> bool:
        """Whether the output standardisation has been set."""
        return bool(keras.ops.convert_to_numpy(self.output_adapted) > 0)

    def adapt(self, y: Any, sample_weight: Any = None) -> None:
        """Sets the output standardisation from training targets.

        Args:
            y: targets of shape (n, m) (or (n,) for m = 1), or a
                `tf.data.Dataset` of `(x, y)` or `(x, y, sample_weight)`
                batches, read once in a streaming pass.
            sample_weight: for array targets, optional non-negative row
                weights (n,): the weighted mean and spread are used, so a
                row of weight 2 counts as two rows and one of weight 0 as none.
        """
        if isinstance(y, tf.data.Dataset):
            mean, std = self._dataset_moments(y)
        else:
            targets = finite_array(y, "y")
            targets = targets.reshape(len(targets), -1)
            if targets.shape[1] != self.output_dim:
                raise ValueError(
                    f"y must have {self.output_dim} column(s); got shape {targets.shape}"
                )
            weights = None if sample_weight is None else finite_array(sample_weight,
                                                                      "sample_weight")
            if weights is not None and (weights.shape != (len(targets),) or (weights < 0).any()
                                        or not weights.sum() > 0):
                raise ValueError(f"sample_weight must be {len(targets)} non-negative values with "
                                 f"a positive sum; got shape {weights.shape}")
            mean = np.average(targets, axis=0, weights=weights)
            std = np.sqrt(np.average((targets - mean) ** 2, axis=0, weights=weights))
        if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(std)):
            raise ValueError("y is too large to standardise (its mean or spread overflows)")
        with np.errstate(over="ignore"):
            fits = np.all(np.isfinite(np.append(mean, std).astype(np.float32)))
        if not fits:
            raise ValueError("y is too large for float32 (mean or spread above 3.4e38); rescale it")
        flat = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
        if flat.any():
            warnings.warn(
                f"target column(s) {np.flatnonzero(flat).tolist()} are constant; "
                f"they are centred but not scaled",
                stacklevel=2,
            )
            std = np.where(flat, 1.0, std)
        self.output_mean.assign(mean.astype("float32"))
        self.output_std.assign(std.astype("float32"))
        self.output_adapted.assign(1.0)

    def _dataset_moments(self, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
        """The mean and spread of a dataset's targets, in one streaming pass."""
        count, total, squares, shift = 0, 0.0, 0.0, None
        for index, batch in enumerate(dataset):
            _, target, _ = keras.utils.unpack_x_y_sample_weight(batch)
            if target is None:
                raise ValueError("the dataset must yield (x, y) pairs to adapt to")
            target = check_rows(np.asarray(target, dtype=np.float64), "the dataset's targets",
                                self.output_dim, rows="batch")
            # Otherwise the sums turn NaN and the error blames overflow.
            row = first_nonfinite_row(target)
            if row is not None:
                raise ValueError(
                    f"the dataset's targets contain NaN or inf: batch {index}, row {row} "
                    f"of that batch (row {count + row} of the stream)"
                )
            # Sums of differences from the first target: no cancellation
            # when the targets sit far from zero.
            shift = target[0] if shift is None else shift
            count += len(target)
            total = total + (target - shift).sum(axis=0)
            squares = squares + ((target - shift) ** 2).sum(axis=0)
        if count == 0:
            raise ValueError("cannot adapt to an empty dataset")
        mean = shift + total / count
        std = np.sqrt(np.maximum(squares / count - (total / count) ** 2, 0.0))
        return mean, std

    def _adapt_before_fit(self, x, y, validation_split: float) -> None:
        """Sets the output standardisation from `fit`'s data, or says why it cannot."""
        if int(keras.ops.convert_to_numpy(self.collocation_step)) > 0:
            # Standardising a trained network would shift every prediction.
            warnings.warn(
                "this model was trained before its output standardisation was set; "
                "fit leaves it unset (call adapt(y) to set it deliberately)",
                stacklevel=3,
            )
        elif y is not None:
            self.adapt(y[: int(math.floor(len(y) * (1.0 - validation_split)))])
        elif isinstance(x, tf.data.Dataset):
            if x.cardinality() == tf.data.INFINITE_CARDINALITY:
                raise ValueError(
                    "the dataset is infinite, so the output standardisation cannot be "
                    "computed from it; call model.adapt(y) before fit"
                )
            self.adapt(x)
        else:
            raise ValueError(
                f"fit cannot compute the output standardisation from a "
                f"{type(x).__name__}; call model.adapt(y) with the training targets first"
            )
