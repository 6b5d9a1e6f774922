"""The plain multilayer perceptron used as GradINN's primary network."""

from __future__ import annotations

import keras
import numpy as np

from keras_gradinn.validation import positive_int

__all__ = ["dense_stack", "layer_seeds", "mlp", "positive_int"]


def layer_seeds(seed: int | None, count: int) -> list[int | None]:
    """Derives `count` independent initialiser seeds from one seed.

    `seed + i` would make neighbouring seeds share layers (the second
    layer of seed 0 would be the first of seed 1); a `SeedSequence` keeps
    networks built from seeds 0, 1, 2, ... independent.
    """
    if seed is None:
        return [None] * count
    state = np.random.SeedSequence(int(seed)).generate_state(count)
    return [int(s) % (2**31 - 1) for s in state]


def mlp(
    input_dim: int,
    output_dim: int,
    *,
    width: int = 64,
    depth: int = 3,
    activation: str = "silu",
    seed: int | None = None,
    members: int | None = None,
    name: str = "mlp",
) -> keras.Model:
    """Builds a fully connected network `R^input_dim -> R^output_dim`.

    `depth` hidden `keras.layers.Dense` layers of `width` units with a smooth
    `activation`, then a linear output layer. Smooth activations (`"silu"`,
    `"tanh"`, `"gelu"`, `"softplus"`) give the network a well-defined input
    Jacobian everywhere, which the gradient term needs; `"relu"` works but
    its Jacobian is piecewise constant.

    Args:
        input_dim: number of inputs d.
        output_dim: number of outputs m.
        width: units per hidden layer.
        depth: number of hidden layers (>= 1).
        activation: any Keras activation name.
        seed: seed for the Glorot initialisers (None: Keras' global seed).
        members: None for one network; an integer k for k independent
            networks of this shape evaluated and trained together (a
            `keras_gradinn.stacked.StackedMLP`), as ensembles and
            cross-validation use them. Member j equals the network built
            with `seed=stacked.member_seeds(seed, k)[j]`.
        name: model name.

    Returns:
        A functional `keras.Model` mapping (n, d) to (n, m), or with
        `members`, to (n, members, m).

    Example:
        >>> net = mlp(5, 1, width=32, depth=2, activation="tanh", seed=0)
        >>> net.output_shape
        (None, 1)
    """
    input_dim, output_dim, width, depth = (
        positive_int(value, label)
        for value, label in ((input_dim, "input_dim"), (output_dim, "output_dim"),
                             (width, "width"), (depth, "depth"))
    )
    if members is not None:
        from keras_gradinn.stacked import StackedMLP

        inputs = keras.Input(shape=(input_dim,), name="x")
        stack = StackedMLP(members, output_dim, width=width, depth=depth, activation=activation,
                           seed=seed, name="members")
        return keras.Model(inputs, stack(inputs), name=name)
    return dense_stack(input_dim, output_dim, width=width, depth=depth, activation=activation,
                       initializer=keras.initializers.GlorotUniform, seed=seed,
                       names=("x", "output"), name=name)


def dense_stack(
    input_dim: int,
    output_dim: int,
    *,
    width: int,
    depth: int,
    activation: str,
    initializer: type[keras.initializers.Initializer],
    seed: int | None,
    names: tuple[str, str],
    name: str,
    output_regularizer: keras.regularizers.Regularizer | None = None,
) -> keras.Model:
    """`depth` hidden Dense layers and a linear output layer, each seeded independently.

    `names` are the names of the input and of the output layer; hidden layers
    are `hidden_0`, `hidden_1`, ... `output_regularizer` regularises the
    output layer's kernel.
    """
    seeds = layer_seeds(seed, depth + 1)
    inputs = keras.Input(shape=(input_dim,), name=names[0])
    h = inputs
    for i in range(depth):
        h = keras.layers.Dense(width, activation=activation,
                               kernel_initializer=initializer(seed=seeds[i]),
                               name=f"hidden_{i}")(h)
    outputs = keras.layers.Dense(output_dim, kernel_initializer=initializer(seed=seeds[depth]),
                                 kernel_regularizer=output_regularizer, name=names[1])(h)
    return keras.Model(inputs, outputs, name=name)
