"""Input Jacobians of Keras models, for training graphs and prediction."""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

__all__ = ["value_and_jacobian"]


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
