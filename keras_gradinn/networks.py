"""The plain multilayer perceptron used as GradINN's primary network."""

from __future__ import annotations

import keras

__all__ = ["mlp"]


def _seed(seed: int | None, offset: int) -> int | None:
    return None if seed is None else int(seed) + offset


def mlp(
    input_dim: int,
    output_dim: int,
    *,
    width: int = 64,
    depth: int = 3,
    activation: str = "silu",
    seed: int | None = None,
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
        name: model name.

    Returns:
        A functional `keras.Model` mapping (n, d) to (n, m).

    Example:
        >>> net = mlp(5, 1, width=32, depth=2, activation="tanh", seed=0)
        >>> net.output_shape
        (None, 1)
    """
    for label, value in (("input_dim", input_dim), ("output_dim", output_dim),
                         ("width", width), ("depth", depth)):
        if int(value) != value or value < 1:
            raise ValueError(f"{label} must be a positive integer; got {value!r}")
    inputs = keras.Input(shape=(int(input_dim),), name="x")
    h = inputs
    for i in range(int(depth)):
        h = keras.layers.Dense(
            int(width),
            activation=activation,
            kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, i)),
            name=f"hidden_{i}",
        )(h)
    outputs = keras.layers.Dense(
        int(output_dim),
        kernel_initializer=keras.initializers.GlorotUniform(seed=_seed(seed, depth)),
        name="output",
    )(h)
    return keras.Model(inputs, outputs, name=name)
