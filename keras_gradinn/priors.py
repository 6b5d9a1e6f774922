"""Prior networks: what the user believes about the Jacobian of the surrogate.

A prior maps a point `z` of the normalised domain [-1, 1]^d to a field of
shape (m, d) (flattened to m*d outputs) that GradINN's gradient term pulls
the network's normalised Jacobian towards, where there is no data. The
units are those of the normalised problem: standardised outputs per unit of
normalised input, so a value of 1 means "the output changes by one standard
deviation over half the domain width".

Each builder returns a small functional `keras.Model`; with
`GradINN(prior_trainable=True)` (the default) the prior is trained with the
network, so it states a *family* of fields (smooth, oscillating, constant)
rather than one field, and the data pick the member.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np

__all__ = [
    "ConstantField",
    "KINDS",
    "SineFeatures",
    "build",
    "constant",
    "oscillatory",
    "smooth",
]

KINDS = ("smooth", "oscillatory", "constant")


@keras.saving.register_keras_serializable(package="keras_gradinn")
class SineFeatures(keras.layers.Layer):
    """Random Fourier features `sin(z @ W + b)` with scale `pi * frequency`.

    `W` starts as `pi * frequency * N(0, 1)` and `b` as `U(-pi, pi)`, so a
    feature completes about `frequency` periods across the normalised domain
    [-1, 1] along a typical direction.

    Args:
        units: number of features.
        frequency: typical number of periods across the domain (> 0).
        trainable_frequencies: whether `W` and `b` are trained.
        seed: initialiser seed.
    """

    def __init__(
        self,
        units: int,
        *,
        frequency: float = 2.0,
        trainable_frequencies: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"units must be >= 1; got {units!r}")
        if not frequency > 0:
            raise ValueError(f"frequency must be > 0; got {frequency!r}")
        self.units = int(units)
        self.frequency = float(frequency)
        self.trainable_frequencies = bool(trainable_frequencies)
        self.seed = seed

    def build(self, input_shape):
        seed = self.seed
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.units),
            initializer=keras.initializers.RandomNormal(
                stddev=math.pi * self.frequency, seed=seed
            ),
            trainable=self.trainable_frequencies,
        )
        self.phase = self.add_weight(
            name="phase",
            shape=(self.units,),
            initializer=keras.initializers.RandomUniform(
                -math.pi, math.pi, seed=None if seed is None else seed + 1
            ),
            trainable=self.trainable_frequencies,
        )

    def call(self, inputs):
        return keras.ops.sin(keras.ops.matmul(inputs, self.kernel) + self.phase)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            frequency=self.frequency,
            trainable_frequencies=self.trainable_frequencies,
            seed=self.seed,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_gradinn")
class ConstantField(keras.layers.Layer):
    """Outputs one learnable vector for every input row.

    Args:
        units: size of the vector.
        value: initial value, a scalar or a sequence of `units` numbers.
    """

    def __init__(self, units: int, *, value: float | Sequence[float] = 0.0, **kwargs):
        super().__init__(**kwargs)
        values = np.broadcast_to(np.asarray(value, dtype=np.float64), (int(units),))
        if not np.all(np.isfinite(values)):
            raise ValueError(f"value must be finite; got {value!r}")
        self.units = int(units)
        self.value = values.tolist()

    def build(self, input_shape):
        self.field = self.add_weight(
            name="field",
            shape=(self.units,),
            initializer=keras.initializers.Constant(self.value),
        )

    def call(self, inputs):
        # Broadcasting against a zero column ties the output to the batch
        # size without a data-dependent shape op.
        rows = keras.ops.zeros_like(inputs[:, :1])
        return rows + self.field

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, value=self.value)
        return config


def _check_dims(input_dim: int, output_dim: int) -> tuple[int, int]:
    for label, value in (("input_dim", input_dim), ("output_dim", output_dim)):
        if int(value) != value or value < 1:
            raise ValueError(f"{label} must be a positive integer; got {value!r}")
    return int(input_dim), int(output_dim)


def _small_output(scale: float, seed: int | None) -> keras.initializers.Initializer:
    # Variance scaling by fan-in makes the initial field's typical size
    # `initial_scale` whatever the width.
    return keras.initializers.VarianceScaling(
        scale=float(scale) ** 2, mode="fan_in", distribution="truncated_normal", seed=seed
    )


def smooth(
    input_dim: int,
    output_dim: int,
    *,
    width: int = 64,
    depth: int = 1,
    activation: str = "tanh",
    initial_scale: float = 0.1,
    seed: int | None = None,
    name: str = "smooth_prior",
) -> keras.Model:
    """A prior for a Jacobian that varies smoothly and slowly over the domain.

    A small `tanh` network `h(z) = W_out tanh(... tanh(W_1 z + b_1) ...)`.
    Belief: the gradient field is a smooth function of position with few
    features. Fewer or narrower layers make the belief stronger (only
    low-order fields); a larger `width` lets the data pick a more detailed
    field. `initial_scale` sets the typical size of the initial field
    (near zero: "flat unless the data say otherwise").

    Args:
        input_dim: inputs d.
        output_dim: outputs m; the prior has m*d outputs.
        width: hidden units per layer.
        depth: hidden layers (>= 1).
        activation: hidden activation (a smooth one).
        initial_scale: typical magnitude of the initial field (>= 0).
        seed: initialiser seed.
        name: model name.

    Returns:
        A functional `keras.Model` mapping (n, d) to (n, m*d).
    """
    d, m = _check_dims(input_dim, output_dim)
    if int(width) < 1 or int(depth) < 1:
        raise ValueError(f"width and depth must be >= 1; got {width!r}, {depth!r}")
    if not initial_scale >= 0:
        raise ValueError(f"initial_scale must be >= 0; got {initial_scale!r}")
    inputs = keras.Input(shape=(d,), name="z")
    h = inputs
    for i in range(int(depth)):
        h = keras.layers.Dense(
            int(width),
            activation=activation,
            kernel_initializer=keras.initializers.GlorotUniform(
                seed=None if seed is None else seed + i
            ),
            name=f"hidden_{i}",
        )(h)
    outputs = keras.layers.Dense(
        m * d,
        kernel_initializer=_small_output(initial_scale, None if seed is None else seed + depth),
        name="field",
    )(h)
    return keras.Model(inputs, outputs, name=name)


def oscillatory(
    input_dim: int,
    output_dim: int,
    *,
    n_features: int = 32,
    frequency: float = 2.0,
    trainable_frequencies: bool = True,
    initial_scale: float = 0.1,
    seed: int | None = None,
    name: str = "oscillatory_prior",
) -> keras.Model:
    """A prior for a Jacobian that oscillates with a characteristic frequency.

    `h(z) = W_out sin(z @ W + b)` with `W ~ pi * frequency * N(0, 1)`
    (`SineFeatures`). Belief: the gradient is a superposition of waves
    completing about `frequency` periods across the domain. A larger
    `n_features` allows more wave directions; `trainable_frequencies=False`
    fixes the frequencies and makes the belief stronger.

    Args:
        input_dim: inputs d.
        output_dim: outputs m; the prior has m*d outputs.
        n_features: number of sine features.
        frequency: typical number of periods across [-1, 1] (> 0).
        trainable_frequencies: whether the wave vectors and phases train.
        initial_scale: typical magnitude of the initial field (>= 0).
        seed: initialiser seed.
        name: model name.

    Returns:
        A functional `keras.Model` mapping (n, d) to (n, m*d).
    """
    d, m = _check_dims(input_dim, output_dim)
    if not initial_scale >= 0:
        raise ValueError(f"initial_scale must be >= 0; got {initial_scale!r}")
    inputs = keras.Input(shape=(d,), name="z")
    features = SineFeatures(
        n_features,
        frequency=frequency,
        trainable_frequencies=trainable_frequencies,
        seed=seed,
        name="sine_features",
    )(inputs)
    outputs = keras.layers.Dense(
        m * d,
        kernel_initializer=_small_output(initial_scale, None if seed is None else seed + 2),
        name="field",
    )(features)
    return keras.Model(inputs, outputs, name=name)


def constant(
    input_dim: int,
    output_dim: int,
    *,
    value: float | Sequence[float] | np.ndarray = 0.0,
    name: str = "constant_prior",
) -> keras.Model:
    """A prior for a Jacobian that is the same everywhere (a near-linear map).

    `h(z) = c`, one learnable (m, d) matrix. Belief: the surrogate is close
    to linear; with `value=0` and `GradINN(prior_trainable=False)` the
    gradient term becomes a plain gradient-norm (Sobolev) penalty.
    A known trend (e.g. the output rises by about one standard deviation
    across input j) is stated by setting the matching entry of `value`.

    Args:
        input_dim: inputs d.
        output_dim: outputs m.
        value: initial field: a scalar, or an array of shape (m, d) or (m*d,),
            in normalised units.
        name: model name.

    Returns:
        A functional `keras.Model` mapping (n, d) to (n, m*d).
    """
    d, m = _check_dims(input_dim, output_dim)
    values = np.asarray(value, dtype=np.float64)
    if values.ndim > 0 and values.size != m * d:
        raise ValueError(
            f"value must be a scalar or have m*d = {m * d} entries (shape "
            f"({m}, {d})); got shape {values.shape}"
        )
    inputs = keras.Input(shape=(d,), name="z")
    outputs = ConstantField(m * d, value=values.reshape(-1) if values.ndim else float(values),
                            name="field")(inputs)
    return keras.Model(inputs, outputs, name=name)


def build(kind: str, input_dim: int, output_dim: int, **kwargs) -> keras.Model:
    """Builds the prior named `kind` (one of `KINDS`) with its defaults."""
    builders = {"smooth": smooth, "oscillatory": oscillatory, "constant": constant}
    if kind not in builders:
        raise ValueError(f"prior must be one of {KINDS} or a keras.Model; got {kind!r}")
    return builders[kind](input_dim, output_dim, **kwargs)
