"""Input Jacobians of Keras models, for training graphs, prediction and export.

Two ways to the same Jacobian:

- `value_and_jacobian`: reverse-mode automatic differentiation with a
  `tf.GradientTape`, one pass per output. Works for any network; used in
  training (nested in the step's tape) and by `GradINN.predict_gradient`.
- `dense_forward` + `dense_jacobian` (together `dense_value_and_jacobian`):
  an explicit chain rule through a chain of `keras.layers.Dense` layers, in
  forward mode (`d` tangents) or reverse mode (`m` cotangents), built from
  plain matrix products and closed-form activation derivatives. It contains
  no gradient ops, so graph converters that cannot handle them (tf2onnx) can
  export it, and an outer tape differentiates it with first-order ops only,
  which is what makes GradINN's training step fast and XLA-compilable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

__all__ = [
    "ACTIVATIONS",
    "dense_forward",
    "dense_jacobian",
    "dense_layers",
    "dense_value_and_jacobian",
    "relevance",
    "value_and_jacobian",
]


def _linear(p):
    return p, tf.ones_like(p)


def _tanh(p):
    t = tf.tanh(p)
    return t, 1.0 - t * t


def _sigmoid(p):
    s = tf.sigmoid(p)
    return s, s * (1.0 - s)


def _silu(p):
    s = tf.sigmoid(p)
    return p * s, s * (1.0 + p * (1.0 - s))


def _softplus(p):
    return tf.math.softplus(p), tf.sigmoid(p)


def _relu(p):
    return tf.nn.relu(p), tf.cast(p > 0, p.dtype)


def _elu(p):
    negative = tf.exp(tf.minimum(p, 0.0))
    return tf.where(p > 0, p, negative - 1.0), tf.where(p > 0, tf.ones_like(p), negative)


def _gelu(p):
    # The exact (erf) form, as `keras.activations.gelu` computes by default;
    # written with Erf because converters lack the Erfc that TF's own uses.
    cdf = 0.5 * (1.0 + tf.math.erf(p / math.sqrt(2.0)))
    return p * cdf, cdf + p * tf.exp(-0.5 * p * p) / math.sqrt(2.0 * math.pi)


#: Activations with a closed-form derivative, by their Keras names: each maps
#: pre-activations `p` to `(activation(p), activation'(p))`.
ACTIVATIONS: dict[str, Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]] = {
    "linear": _linear,
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "silu": _silu,
    "softplus": _softplus,
    "relu": _relu,
    "elu": _elu,
    "gelu": _gelu,
}


def dense_layers(network: keras.Model) -> list[keras.layers.Layer]:
    """The layers of `network` whose Jacobian the chain rule writes out.

    Args:
        network: a functional or sequential Keras model that is a plain chain
            of `keras.layers.Dense` layers (as `mlp` builds), or one made of a
            single `StackedMLP` (as `mlp(..., members=k)` builds), or a
            `StackedMLP` itself.

    Returns:
        The `keras.layers.Dense` layers in order, or `[the StackedMLP]`.

    Raises:
        ValueError: naming the first layer or activation that is not a
            Dense layer with one of `ACTIVATIONS`, or a graph that is not a
            simple chain.
    """
    if _is_stacked(network):
        return [network]
    layers = [layer for layer in network.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers:
        raise ValueError(f"network {network.name!r} has no layers")
    if len(layers) == 1 and _is_stacked(layers[0]):
        return layers
    previous = None
    for layer in layers:
        if type(layer) is not keras.layers.Dense:
            raise ValueError(
                f"layer {layer.name!r} of type {type(layer).__name__} is not supported; "
                f"the explicit Jacobian needs a chain of keras.layers.Dense layers"
            )
        name = keras.activations.serialize(layer.activation)
        if not isinstance(name, str) or name not in ACTIVATIONS:
            raise ValueError(
                f"layer {layer.name!r} has activation {name!r}; supported activations "
                f"are {sorted(ACTIVATIONS)}"
            )
        if previous is not None and layer.input is not previous.output:
            raise ValueError(
                f"layer {layer.name!r} does not take its input from {previous.name!r}; "
                f"the explicit Jacobian needs a simple chain of Dense layers"
            )
        previous = layer
    return layers


def _is_stacked(layer) -> bool:
    # Duck-typed, since keras_gradinn.stacked imports this module.
    return callable(getattr(layer, "links", None)) and hasattr(layer, "members")


def _links(layers: Sequence[keras.layers.Layer]) -> list[tuple[tf.Tensor, tf.Tensor | None, str]]:
    """`(kernel, bias or None, activation)` for each layer of a chain, read now."""
    if len(layers) == 1 and _is_stacked(layers[0]):
        return layers[0].links()
    return [(layer.kernel, layer.bias if layer.use_bias else None,
             keras.activations.serialize(layer.activation)) for layer in layers]


def _rows(x: tf.Tensor, lead: tuple, columns: int) -> tf.Tensor:
    """`x` reshaped to (*lead, rows, columns), for one (batched) matrix product."""
    return tf.reshape(x, [*lead, -1, columns])


def dense_forward(
    layers: Sequence[keras.layers.Layer], z: tf.Tensor
) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """Evaluates a chain of Dense layers, keeping each layer's activation slope.

    Args:
        layers: the chain, as `dense_layers` returns it.
        z: inputs of shape (n, d).

    Returns:
        `(y, slopes)`: the output (n, m) and, per layer, the derivative of its
        activation at its pre-activation, shape (n, units). For a
        `StackedMLP` both have a leading members axis: (members, n, m) and
        (members, n, units).
    """
    h, slopes = tf.convert_to_tensor(z), []
    for kernel, bias, activation in _links(layers):
        # A shared (n, d) input broadcasts against stacked (members, d, units) kernels.
        pre = tf.matmul(h, tf.cast(kernel, h.dtype))
        if bias is not None:
            pre = pre + tf.cast(bias, h.dtype)
        h, slope = ACTIVATIONS[activation](pre)
        slopes.append(slope)
    return h, slopes


def dense_jacobian(
    layers: Sequence[keras.layers.Layer], slopes: Sequence[tf.Tensor], mode: str = "auto"
) -> tf.Tensor:
    """The input Jacobian (n, m, d) of a Dense chain from `dense_forward`'s slopes.

    Forward mode carries `d` tangents from the input to the output,
    `T_l = a_l' * (T_{l-1} W_l)`; reverse mode carries `m` cotangents back,
    `C_{l-1} = (C_l W_l^T) * a_{l-1}'`. Both are plain matrix products and
    element-wise products, so the Jacobian can be differentiated again by an
    outer tape (first-order through these ops), compiled by XLA and converted
    by graph converters. Their costs scale with `d` and `m` respectively.

    Args:
        layers: the chain, as `dense_layers` returns it.
        slopes: the activation slopes of each layer at the points, as
            `dense_forward` returns them (any subset of rows, in the same
            order for every layer).
        mode: `"forward"`, `"reverse"`, or `"auto"` (forward if d < m).

    Returns:
        The Jacobian `dy[b, i] / dz[b, j]`, shape (n, m, d); for a
        `StackedMLP`, (members, n, m, d).
    """
    dtype = slopes[0].dtype
    links = _links(layers)
    kernels = [tf.cast(kernel, dtype) for kernel, _, _ in links]
    lead = tuple(kernels[0].shape[:-2])  # () for Dense layers, (members,) for a stack
    d, m = kernels[0].shape[-2], kernels[-1].shape[-1]
    if mode == "auto":
        mode = "forward" if d < m else "reverse"
    if mode == "forward":
        # (*lead, n, d, units), each product as one (batched) matrix product.
        # expand_dims rather than `[..., None]`: tf2onnx mistranslates the latter.
        tangent = tf.expand_dims(slopes[0], -2) * tf.expand_dims(kernels[0], -3)
        for kernel, slope in zip(kernels[1:], slopes[1:]):
            flat = tf.matmul(_rows(tangent, lead, tangent.shape[-1]), kernel)
            tangent = tf.expand_dims(slope, -2) * tf.reshape(flat, [*lead, -1, d, kernel.shape[-1]])
        return tf.linalg.matrix_transpose(tangent)
    if mode != "reverse":
        raise ValueError(f"mode must be 'forward', 'reverse' or 'auto'; got {mode!r}")
    # (*lead, n, m, units): row i of the last layer's cotangent is e_i * slope.
    cotangent = tf.expand_dims(slopes[-1], -1) * tf.eye(m, dtype=dtype)
    for kernel, slope in zip(kernels[:0:-1], slopes[-2::-1]):
        flat = tf.matmul(_rows(cotangent, lead, kernel.shape[-1]), kernel, transpose_b=True)
        cotangent = tf.reshape(flat, [*lead, -1, m, kernel.shape[-2]]) * tf.expand_dims(slope, -2)
    flat = tf.matmul(_rows(cotangent, lead, kernels[0].shape[-1]), kernels[0], transpose_b=True)
    return tf.reshape(flat, [*lead, -1, m, d])


def dense_value_and_jacobian(
    network: keras.Model, z: tf.Tensor, mode: str = "forward"
) -> tuple[tf.Tensor, tf.Tensor]:
    """Evaluates a chain of Dense layers and its input Jacobian by the chain rule.

    The explicit counterpart of `value_and_jacobian`: `dense_forward`
    followed by `dense_jacobian`. The graph has no gradient ops.

    Args:
        network: a model accepted by `dense_layers`.
        z: inputs of shape (n, d).
        mode: `"forward"` (the default, about `d` forward passes),
            `"reverse"` (about `m`), or `"auto"` (forward if d < m).

    Returns:
        `(y, jacobian)` with shapes (n, m) and (n, m, d), as
        `value_and_jacobian` returns them; for a stacked network, with a
        leading members axis.
    """
    layers = dense_layers(network)
    y, slopes = dense_forward(layers, z)
    return y, dense_jacobian(layers, slopes, mode)


def value_and_jacobian(
    fn: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Evaluates `fn` and its input Jacobian row by row.

    `jacobian[b, i, j] = d fn(x)[b, i] / d x[b, j]`, computed with one
    reverse pass per output (`m` passes for `m` outputs). Rows of `x` must be
    independent (no batch-coupled layers such as batch normalisation in
    training mode), which holds for the point-wise networks used here.

    Called inside another `tf.GradientTape`, the result is differentiable
    with respect to `fn`'s weights (a nested, second-order tape).

    Args:
        fn: maps a (n, d) float tensor to a (n, m) tensor.
        x: inputs of shape (n, d).

    Returns:
        `(y, jacobian)` with shapes (n, m) and (n, m, d).

    Example:
        >>> x = tf.constant([[1.0, 2.0]])
        >>> y, jac = value_and_jacobian(lambda v: v[:, :1] * v[:, 1:], x)
        >>> jac.numpy().tolist()
        [[[2.0, 1.0]]]
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = fn(x)
    m = y.shape[-1]
    if m is None:
        raise ValueError(f"fn must return a tensor with a known last dimension; got {y.shape}")
    zero = tf.UnconnectedGradients.ZERO
    if m == 1:
        rows = [tape.gradient(y, x, unconnected_gradients=zero)]
    else:
        # A one-hot cotangent per output avoids slicing y, whose gradient
        # (StridedSliceGrad) is awkward for graph converters.
        eye = tf.eye(m, dtype=y.dtype)
        rows = [
            tape.gradient(
                y,
                x,
                output_gradients=tf.broadcast_to(eye[i], tf.shape(y)),
                unconnected_gradients=zero,
            )
            for i in range(m)
        ]
    del tape
    return y, tf.stack(rows, axis=1)


def relevance(jacobian: np.ndarray, half_width: np.ndarray, std: np.ndarray) -> np.ndarray:
    """How many output standard deviations a move across each input's range makes.

    The RMS over points and outputs of `J[b, i, j] * half_width[j] / std[i]`
    for a Jacobian `J` (n, m, d) in user units, inputs of half-widths
    `half_width` (d,) and outputs of spreads `std` (m,); shape (d,). See
    `GradINN.input_relevance`.
    """
    scaled = np.asarray(jacobian, float) * half_width[None, None, :] / std[None, :, None]
    return np.sqrt(np.mean(np.square(scaled), axis=(0, 1)))
