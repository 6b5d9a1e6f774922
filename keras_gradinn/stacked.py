"""Several independent multilayer perceptrons evaluated as one, for ensembles and cross-validation.

`StackedMLP` holds `members` networks of the same shape with their weights
stacked along a leading axis (kernels of shape (members, fan_in, fan_out)),
so one batched matrix product evaluates all of them and one optimizer step
trains all of them. Member `j` is exactly the network `networks.mlp` builds
with `seed=member_seeds(seed, members)[j]`; members share no weights, so
training them together gives each the gradient it would get alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_gradinn.jacobian import ACTIVATIONS
from keras_gradinn.networks import layer_seeds
from keras_gradinn.validation import positive_int

__all__ = ["StackedMLP", "member_seeds"]

_INITIALIZERS = {"glorot_uniform": keras.initializers.GlorotUniform,
                 "lecun_normal": keras.initializers.LecunNormal}


def member_seeds(seed: int | None, members: int) -> list[int | None]:
    """The seed of each member of a stack built with `seed` (None: Keras' global seed)."""
    return layer_seeds(seed, members)


@keras.saving.register_keras_serializable(package="keras_gradinn")
class StackedMLP(keras.layers.Layer):
    """`members` fully connected networks `R^d -> R^units` evaluated together.

    Each member has `depth` hidden layers of `width` units with `activation`
    and a linear output layer of `units`, like `networks.mlp`. Inputs of
    shape (n, d) are shared by all members; the output has shape
    (n, members, units). An `input_mask` of shape (members, d) with 0/1
    entries makes member `j` read only the inputs where `input_mask[j]` is 1:
    its derivative along the others is exactly zero.

    Args:
        members: number of networks (>= 1).
        units: outputs of each network.
        width: hidden units per layer.
        depth: hidden layers (>= 1).
        activation: hidden activation, one of `jacobian.ACTIVATIONS`, so the
            explicit chain-rule Jacobian applies.
        kernel_initializer: `"glorot_uniform"` (as `networks.mlp`) or
            `"lecun_normal"` (as the smooth prior).
        seed: seed of all members' initial weights (see `member_seeds`).
        input_mask: optional (members, d) array of 0/1.
        output_regularizer: a regularizer of the output layer's stacked
            kernel (members, width, units).
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(
        self,
        members: int,
        units: int,
        *,
        width: int = 64,
        depth: int = 3,
        activation: str = "silu",
        kernel_initializer: str = "glorot_uniform",
        seed: int | None = None,
        input_mask: Sequence[Sequence[float]] | np.ndarray | None = None,
        output_regularizer: keras.regularizers.Regularizer | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.members = positive_int(members, "members")
        self.units = positive_int(units, "units")
        self.width = positive_int(width, "width")
        self.depth = positive_int(depth, "depth")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        if kernel_initializer not in _INITIALIZERS:
            raise ValueError(f"kernel_initializer must be one of {sorted(_INITIALIZERS)}; "
                             f"got {kernel_initializer!r}")
        self.activation = activation
        self.kernel_initializer = kernel_initializer
        self.seed = None if seed is None else int(seed)
        self._mask_value = None if input_mask is None else np.asarray(input_mask, np.float32)
        self.output_regularizer = keras.regularizers.get(output_regularizer)

    def build(self, input_shape):
        d = int(input_shape[-1])
        mask = np.ones((self.members, d), np.float32) if self._mask_value is None \
            else self._mask_value
        if mask.shape != (self.members, d) or not np.isin(mask, (0.0, 1.0)).all():
            raise ValueError(f"input_mask must be a 0/1 array of shape ({self.members}, {d}); "
                             f"got shape {mask.shape}")
        sizes = [d] + [self.width] * self.depth + [self.units]
        seeds = [layer_seeds(s, self.depth + 1) for s in member_seeds(self.seed, self.members)]
        initializer = _INITIALIZERS[self.kernel_initializer]
        self.kernels, self.biases = [], []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            value = np.stack([
                keras.ops.convert_to_numpy(initializer(seed=s[index])((fan_in, fan_out)))
                for s in seeds
            ])
            last = index == len(sizes) - 2
            self.kernels.append(self.add_weight(
                name=f"kernel_{index}", shape=value.shape,
                initializer=keras.initializers.Constant(value),
                regularizer=self.output_regularizer if last else None))
            self.biases.append(self.add_weight(
                name=f"bias_{index}", shape=(self.members, fan_out), initializer="zeros"))
        self.input_mask = self.add_weight(name="input_mask", shape=mask.shape,
                                          initializer=keras.initializers.Constant(mask),
                                          trainable=False)

    def links(self) -> list[tuple[tf.Tensor, tf.Tensor, str]]:
        """`(kernel, bias, activation)` per layer, kernels (members, fan_in, fan_out).

        The first kernel has the masked inputs' rows zeroed; biases have
        shape (members, 1, fan_out), ready to add to (members, n, fan_out).
        """
        kernels = [self.kernels[0] * tf.cast(self.input_mask, self.kernels[0].dtype)[:, :, None],
                   *self.kernels[1:]]
        activations = [self.activation] * self.depth + ["linear"]
        return [(k, b[:, None, :], a) for k, b, a in zip(kernels, self.biases, activations)]

    def call(self, inputs):
        from keras_gradinn.jacobian import dense_forward

        outputs, _ = dense_forward([self], inputs)
        return tf.transpose(outputs, [1, 0, 2])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.members, self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            members=self.members, units=self.units, width=self.width, depth=self.depth,
            activation=self.activation, kernel_initializer=self.kernel_initializer,
            seed=self.seed,
            input_mask=None if self._mask_value is None else self._mask_value.tolist(),
            output_regularizer=keras.regularizers.serialize(self.output_regularizer),
        )
        return config
