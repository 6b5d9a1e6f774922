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
from collections.abc import Sequence

import keras
import numpy as np

from keras_gradinn.networks import dense_stack, layer_seeds
from keras_gradinn.sampling import unit_points
from keras_gradinn.validation import non_negative, positive_int

__all__ = [
    "ConstantField",
    "InputGroupLasso",
    "KINDS",
    "SineFeatures",
    "build",
    "constant",
    "kernel",
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
        units = positive_int(units, "units")
        if not frequency > 0:
            raise ValueError(f"frequency must be > 0; got {frequency!r}")
        self.units = int(units)
        self.frequency = float(frequency)
        self.trainable_frequencies = bool(trainable_frequencies)
        self.seed = None if seed is None else int(seed)

    def build(self, input_shape):
        seeds = layer_seeds(self.seed, 2)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.units),
            initializer=keras.initializers.RandomNormal(
                stddev=math.pi * self.frequency, seed=seeds[0]
            ),
            trainable=self.trainable_frequencies,
        )
        self.phase = self.add_weight(
            name="phase",
            shape=(self.units,),
            initializer=keras.initializers.RandomUniform(
                -math.pi, math.pi, seed=seeds[1]
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
        units = positive_int(units, "units")
        values = np.asarray(value, dtype=np.float64)
        if values.ndim > 0 and values.shape != (units,):
            raise ValueError(
                f"value must be a scalar or have shape ({units},); got shape {values.shape}"
            )
        values = np.broadcast_to(values, (units,))
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


@keras.saving.register_keras_serializable(package="keras_gradinn")
class InputGroupLasso(keras.regularizers.Regularizer):
    """A group-lasso penalty that switches off whole inputs of a prior's field.

    For the kernel `W` (k, m*d) of a prior's output layer, whose column
    `i*d + j` makes the field's entry (output i, input j), the penalty is
    `strength * sum_j ||W[:, i*d + j for every i]||_2`: one Euclidean norm per
    input. For a stacked prior's kernel (members, k, m*d) it is the sum of
    the members' penalties. As the L1 norm does for single weights, it favours whole groups
    at zero, so the field, and through the gradient term the network's
    Jacobian, stops depending on inputs the data do not need (the belief
    "few inputs matter", what a Gaussian process's ARD length scales learn).

    Args:
        strength: the penalty's factor (>= 0), in units of the standardised
            data loss it is added to.
        input_dim: inputs d.
        output_dim: outputs m.

    Example:
        >>> penalty = InputGroupLasso(0.5, input_dim=2, output_dim=1)
        >>> round(float(penalty(np.array([[3.0, 0.0], [4.0, 0.0]]))), 4)  # 0.5 * (5 + 0)
        2.5
    """

    def __init__(self, strength: float, input_dim: int, output_dim: int):
        self.strength = non_negative(strength, "strength")
        self.input_dim, self.output_dim = _check_dims(input_dim, output_dim)

    def __call__(self, kernel):
        members = kernel.shape[0] if len(kernel.shape) == 3 else 1
        groups = keras.ops.reshape(kernel, (members, -1, self.output_dim, self.input_dim))
        # The small constant keeps the gradient finite at a group of zeros.
        norms = keras.ops.sqrt(keras.ops.sum(keras.ops.square(groups), axis=(1, 2)) + 1e-12)
        return self.strength * keras.ops.sum(norms)

    def get_config(self):
        return {"strength": self.strength, "input_dim": self.input_dim,
                "output_dim": self.output_dim}


def _check_dims(input_dim: int, output_dim: int) -> tuple[int, int]:
    return positive_int(input_dim, "input_dim"), positive_int(output_dim, "output_dim")


def _rescale_field(model: keras.Model, initial_scale: float) -> keras.Model:
    """Scales the output layer so the initial field's RMS over [-1, 1]^d is `initial_scale`.

    The hidden features' size depends on width, depth and activation, so the
    output weights are rescaled after initialisation on a fixed quasi-random
    set of points rather than guessed from fan-in. A stacked prior's members
    are rescaled each on its own.
    """
    d = model.input_shape[-1]
    z = 2.0 * unit_points(256, d, method="sobol", seed=0).astype("float32") - 1.0
    field = keras.ops.convert_to_numpy(model(z))
    if field.ndim == 3:  # (points, members, m*d): one factor per member's last kernel
        rms = np.sqrt(np.mean(np.square(field), axis=(0, 2)))
        kernel = model.get_layer("field").kernels[-1]
        factor = np.where(rms > 0, initial_scale / np.where(rms > 0, rms, 1.0), 0.0)
        kernel.assign(kernel * factor.astype("float32")[:, None, None])
        return model
    layer = model.get_layer("field")
    rms = float(np.sqrt(np.mean(np.square(field))))
    factor = initial_scale / rms if rms > 0 else 0.0
    layer.kernel.assign(layer.kernel * factor)
    return model


def smooth(
    input_dim: int,
    output_dim: int,
    *,
    width: int = 64,
    depth: int = 1,
    activation: str = "tanh",
    initial_scale: float = 0.1,
    sparsity: float = 0.0,
    seed: int | None = None,
    members: int | None = None,
    input_mask: np.ndarray | None = None,
    name: str = "smooth_prior",
) -> keras.Model:
    """A prior for a Jacobian that varies smoothly and slowly over the domain.

    A small `tanh` network `h(z) = W_out tanh(... tanh(W_1 z + b_1) ...)`
    with LeCun-normal hidden weights, so each hidden unit varies on the
    scale of the whole domain. Belief: the gradient field is a smooth
    function of position with few features. Fewer or narrower layers make
    the belief stronger (only low-order fields); a larger `width` lets the
    data pick a more detailed field. The initial field's RMS over the
    domain is `initial_scale` (near zero: "flat unless the data say
    otherwise"; 0 gives an exactly zero initial field). With `sparsity` > 0
    the prior also believes that few inputs matter: an `InputGroupLasso` of
    that strength on the output layer switches off the field's columns for
    inputs the data do not need, and the gradient term then pulls the
    network's derivatives along them to zero across the domain.

    Args:
        input_dim: inputs d.
        output_dim: outputs m; the prior has m*d outputs.
        width: hidden units per layer.
        depth: hidden layers (>= 1).
        activation: hidden activation (a smooth one).
        initial_scale: RMS of the initial field over [-1, 1]^d (>= 0).
        sparsity: strength of the per-input group penalty (>= 0; 0: none).
            It is a weight regularizer, added to the loss (and shown in
            `data_loss`) like any other.
        seed: initialiser seed.
        members: None for one field; an integer k for one field per member
            of a stacked network (`mlp(..., members=k)`), each trained with
            its own member. Member j equals the prior built with
            `seed=stacked.member_seeds(seed, k)[j]`.
        input_mask: with `members`, an optional 0/1 array (k, d): member j's
            field reads only the inputs where `input_mask[j]` is 1.
        name: model name.

    Returns:
        A functional `keras.Model` mapping (n, d) to (n, m*d), or with
        `members`, to (n, members, m*d).

    Example:
        >>> prior = smooth(3, 1, width=16, initial_scale=0.1, seed=0)
        >>> prior.output_shape
        (None, 3)
    """
    d, m = _check_dims(input_dim, output_dim)
    width, depth = positive_int(width, "width"), positive_int(depth, "depth")
    initial_scale = non_negative(initial_scale, "initial_scale")
    sparsity = non_negative(sparsity, "sparsity")
    regularizer = InputGroupLasso(sparsity, d, m) if sparsity else None
    if input_mask is not None and members is None:
        raise ValueError("input_mask applies to a stacked prior (members)")
    if members is not None:
        from keras_gradinn.stacked import StackedMLP

        inputs = keras.Input(shape=(d,), name="z")
        stack = StackedMLP(members, m * d, width=width, depth=depth, activation=activation,
                           kernel_initializer="lecun_normal", seed=seed, input_mask=input_mask,
                           output_regularizer=regularizer, name="field")
        return _rescale_field(keras.Model(inputs, stack(inputs), name=name), initial_scale)
    model = dense_stack(d, m * d, width=width, depth=depth, activation=activation,
                        initializer=keras.initializers.LecunNormal, seed=seed,
                        names=("z", "field"), name=name, output_regularizer=regularizer)
    return _rescale_field(model, initial_scale)


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
        initial_scale: RMS of the initial field over [-1, 1]^d (>= 0).
        seed: initialiser seed.
        name: model name.

    Returns:
        A functional `keras.Model` mapping (n, d) to (n, m*d).
    """
    d, m = _check_dims(input_dim, output_dim)
    initial_scale = non_negative(initial_scale, "initial_scale")
    seeds = layer_seeds(seed, 2)
    inputs = keras.Input(shape=(d,), name="z")
    features = SineFeatures(
        positive_int(n_features, "n_features"),
        frequency=frequency,
        trainable_frequencies=trainable_frequencies,
        seed=seeds[0],
        name="sine_features",
    )(inputs)
    outputs = keras.layers.Dense(
        m * d, kernel_initializer=keras.initializers.LecunNormal(seed=seeds[1]), name="field"
    )(features)
    return _rescale_field(keras.Model(inputs, outputs, name=name), initial_scale)


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
    if values.ndim > 0 and values.shape not in ((m, d), (m * d,)):
        raise ValueError(
            f"value must be a scalar or have shape ({m}, {d}) (outputs x inputs) or "
            f"({m * d},); got shape {values.shape}"
        )
    inputs = keras.Input(shape=(d,), name="z")
    outputs = ConstantField(m * d, value=values.reshape(-1) if values.ndim else float(values),
                            name="field")(inputs)
    return keras.Model(inputs, outputs, name=name)


def kernel(
    x: np.ndarray,
    y: np.ndarray,
    bounds: Sequence[Sequence[float]] | np.ndarray,
    *,
    restarts: int = 3,
    seed: int = 0,
    max_points: int | None = 1000,
    name: str = "kernel_prior",
) -> keras.Model:
    """A prior learned from the data: the gradient of a Gaussian process's mean.

    Fits the ARD Matern 5/2 GP of `keras_gradinn.kernels.fit_gp` to the
    training data in GradINN's normalised space (inputs mapped to [-1, 1]^d
    by `bounds`, targets standardised with their mean and spread, as
    `GradINN.adapt` does) and returns the gradient of its posterior mean as
    a field (`kernels.KernelField`). Belief: the surrogate's gradient is what
    a smooth stationary model of these data implies, including which inputs
    matter (the GP's length scales); the network follows it where the data
    say nothing else. The field has no trainable weights. Use it with
    `GradINN(..., gradient_weight=1.0)` or so, on the same `(x, y)` that
    `fit` gets; a `sampler` array of points lets training look the field up
    instead of evaluating it at every step.

    Args:
        x: training inputs (n, d) in user units.
        y: training targets (n, m) (or (n,)).
        bounds: the model's bounds, one `(low, high)` per input.
        restarts: extra random starts of the GP's hyper-parameter fit.
        seed: seed of those starts (and of the subset, see `max_points`).
        max_points: fit the GP to at most this many rows (None: all).
        name: model name.

    Returns:
        A functional `keras.Model` mapping (n, d) to (n, m*d).
    """
    from keras_gradinn import kernels
    from keras_gradinn.sampling import as_bounds, centre_and_half_width

    centre, half_width = centre_and_half_width(as_bounds(bounds))
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64).reshape(len(x), -1)
    spread = np.where(y.std(axis=0) > 0, y.std(axis=0), 1.0)
    process = kernels.fit_gp((x - centre) / half_width, (y - y.mean(axis=0)) / spread,
                             restarts=restarts, seed=seed, max_points=max_points)
    inputs = keras.Input(shape=(x.shape[1],), name="z")
    outputs = kernels.KernelField.of([process], name="field")(inputs)
    return keras.Model(inputs, outputs, name=name)


def build(kind: str, input_dim: int, output_dim: int, **kwargs) -> keras.Model:
    """Builds the prior named `kind` (one of `KINDS`) with its defaults."""
    builders = {"smooth": smooth, "oscillatory": oscillatory, "constant": constant}
    if kind not in builders:
        raise ValueError(f"prior must be one of {KINDS} or a keras.Model; got {kind!r}")
    return builders[kind](input_dim, output_dim, **kwargs)
