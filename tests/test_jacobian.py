"""Tests for keras_gradinn.value_and_jacobian: per-row input Jacobians."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_equal_to_rounding

import keras_gradinn as kg
from keras_gradinn import mlp, value_and_jacobian
from keras_gradinn.jacobian import ACTIVATIONS, dense_value_and_jacobian


@pytest.fixture
def float64():
    """Builds Keras layers in float64 for the duration of a test.

    `set_floatx` alone is not enough: once any layer has been built, Keras 3
    has fixed its global dtype policy at the floatx of that moment, and new
    layers follow the policy. Set (and restore) both.
    """
    previous_floatx = keras.config.floatx()
    previous_policy = keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous_policy)
        keras.config.set_floatx(previous_floatx)


def random_points(n, d, seed=0, scale=1.5):
    return np.random.default_rng(seed).uniform(-scale, scale, (n, d))


def scalar_field(x):
    # f(x) = sin(x0 x1) + x2^2
    return (tf.sin(x[:, 0] * x[:, 1]) + x[:, 2] ** 2)[:, None]


def scalar_field_jacobian(x):
    c = np.cos(x[:, 0] * x[:, 1])
    return np.stack([x[:, 1] * c, x[:, 0] * c, 2.0 * x[:, 2]], axis=1)[:, None, :]


def vector_field(x):
    # f(x) = (x0 x1, x0 sin(x2), exp(x1) + x2^3)
    x0, x1, x2 = x[:, 0], x[:, 1], x[:, 2]
    return tf.stack([x0 * x1, x0 * tf.sin(x2), tf.exp(x1) + x2 ** 3], axis=1)


def vector_field_jacobian(x):
    x0, x1, x2 = x[:, 0], x[:, 1], x[:, 2]
    zero = np.zeros_like(x0)
    return np.stack([
        np.stack([x1, x0, zero], axis=1),
        np.stack([np.sin(x2), zero, x0 * np.cos(x2)], axis=1),
        np.stack([zero, np.exp(x1), 3.0 * x2 ** 2], axis=1),
    ], axis=1)


@pytest.mark.parametrize(
    "fn, analytic, m",
    [(scalar_field, scalar_field_jacobian, 1), (vector_field, vector_field_jacobian, 3)],
    ids=["m1", "m3"],
)
def test_analytic_jacobian(fn, analytic, m):
    x = random_points(40, 3)
    y, jac = value_and_jacobian(fn, tf.constant(x))
    assert y.shape == (40, m) and jac.shape == (40, m, 3)
    assert jac.dtype == tf.float64
    np.testing.assert_allclose(y.numpy(), fn(tf.constant(x)).numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(jac.numpy(), analytic(x), rtol=1e-5, atol=1e-5)


def test_analytic_jacobian_float32_input():
    x = random_points(10, 3).astype("float32")
    y, jac = value_and_jacobian(vector_field, x)  # a NumPy array is accepted
    assert jac.dtype == tf.float32
    np.testing.assert_allclose(jac.numpy(), vector_field_jacobian(x.astype("float64")),
                               rtol=1e-5, atol=1e-5)


def test_docstring_example():
    _, jac = value_and_jacobian(lambda v: v[:, :1] * v[:, 1:], tf.constant([[1.0, 2.0]]))
    assert jac.numpy().tolist() == [[[2.0, 1.0]]]


def central_differences(fn, x, h):
    n, d = x.shape
    columns = []
    for j in range(d):
        step = np.zeros(d)
        step[j] = h
        columns.append((fn(x + step) - fn(x - step)) / (2 * h))
    return np.stack(columns, axis=-1)  # (n, m, d)


@pytest.mark.parametrize("d, m", [(3, 1), (4, 3), (1, 2)])
@pytest.mark.parametrize("activation", ["silu", "tanh"])
def test_mlp_jacobian_matches_finite_differences(float64, d, m, activation):
    net = mlp(d, m, width=16, depth=2, activation=activation, seed=4)
    assert all(w.dtype == "float64" for w in net.weights)
    x = random_points(25, d, seed=1)
    y, jac = value_and_jacobian(net, tf.constant(x))
    assert jac.dtype == tf.float64 and jac.shape == (25, m, d)
    expected = central_differences(lambda v: net(v).numpy(), x, h=1e-5)
    assert np.abs(expected).max() > 1e-2  # a non-trivial Jacobian
    np.testing.assert_allclose(y.numpy(), net(x).numpy())
    np.testing.assert_allclose(jac.numpy(), expected, rtol=1e-6, atol=1e-8)


def test_mlp_jacobian_float32_matches_float64_differences():
    net = mlp(3, 2, width=16, depth=2, activation="tanh", seed=2)
    assert all(w.dtype == "float32" for w in net.weights)
    x = random_points(20, 3, seed=5).astype("float32")
    _, jac = value_and_jacobian(net, x)
    weights = [w.astype("float64") for w in net.get_weights()]

    def forward64(v):  # the same network evaluated in float64 with NumPy
        h = v
        for kernel, bias in zip(weights[0:-2:2], weights[1:-2:2]):
            h = np.tanh(h @ kernel + bias)
        return h @ weights[-2] + weights[-1]

    expected = central_differences(forward64, x.astype("float64"), h=1e-6)
    np.testing.assert_allclose(jac.numpy(), expected, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize(
    "fn, m",
    [
        (lambda x: (x[:, 0] ** 2 + tf.sin(x[:, 2]))[:, None], 1),
        (lambda x: tf.stack([x[:, 0] * x[:, 2], tf.cos(x[:, 2])], axis=1), 2),
    ],
    ids=["m1", "m2"],
)
def test_ignored_input_gives_exact_zero_column(fn, m):
    x = tf.constant(random_points(12, 3, seed=2))
    _, jac = value_and_jacobian(fn, x)
    assert jac is not None and jac.shape == (12, m, 3)
    np.testing.assert_array_equal(jac.numpy()[:, :, 1], 0.0)
    assert np.all(np.abs(jac.numpy()[:, 0, [0, 2]]) > 0.0)


@pytest.mark.parametrize("m", [1, 2])
def test_input_independent_function_gives_zero_jacobian(m):
    # No gradient path to x at all: the tape returns None unless the
    # unconnected gradients are mapped to zeros.
    x = tf.constant(random_points(5, 3, seed=3))
    y, jac = value_and_jacobian(lambda v: tf.ones((5, m), dtype=v.dtype), x)
    assert y.shape == (5, m)
    assert jac.shape == (5, m, 3)
    np.testing.assert_array_equal(jac.numpy(), 0.0)


def test_rows_are_independent():
    # Each row's Jacobian depends only on that row's input.
    net = mlp(2, 2, width=8, depth=1, seed=0)
    x = random_points(6, 2, seed=4).astype("float32")
    _, full = value_and_jacobian(net, x)
    _, single = value_and_jacobian(net, x[3:4])
    # A batch of 6 and a batch of 1 go through different kernels: float32
    # rounding relative to the largest entry.
    assert_equal_to_rounding(single.numpy(), full.numpy()[3:4],
                             scale=float(np.abs(full.numpy()).max()))


@pytest.mark.parametrize("m", [1, 3])
def test_second_order_gradient_matches_finite_differences(float64, m):
    net = mlp(3, m, width=6, depth=2, activation="tanh", seed=7)
    assert all(w.dtype == "float64" for w in net.weights)
    x = tf.constant(random_points(10, 3, seed=6))
    kernel = net.get_layer("hidden_0").kernel

    def loss():
        _, jac = value_and_jacobian(net, x)
        return tf.reduce_sum(jac)

    with tf.GradientTape() as outer:
        value = loss()
    grad = outer.gradient(value, kernel)
    assert grad is not None
    grad = grad.numpy()
    assert grad.shape == tuple(kernel.shape)
    assert np.abs(grad).max() > 1e-3

    h, original = 1e-6, kernel.numpy().copy()
    expected = np.zeros_like(original)
    try:
        for index in np.ndindex(*original.shape):
            shifted = original.copy()
            shifted[index] += h
            kernel.assign(shifted)
            up = loss().numpy()
            shifted[index] -= 2 * h
            kernel.assign(shifted)
            down = loss().numpy()
            expected[index] = (up - down) / (2 * h)
    finally:
        kernel.assign(original)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def test_second_order_gradient_inside_tf_function():
    net = mlp(2, 2, width=8, depth=1, activation="tanh", seed=1)
    x = tf.constant(random_points(4, 2, seed=8).astype("float32"))

    @tf.function
    def grads():
        with tf.GradientTape() as outer:
            _, jac = value_and_jacobian(net, x)
            loss = tf.reduce_sum(jac ** 2)
        return outer.gradient(loss, net.trainable_variables)

    compiled = grads()
    with tf.GradientTape() as outer:
        _, jac = value_and_jacobian(net, x)
        loss = tf.reduce_sum(jac ** 2)
    eager = outer.gradient(loss, net.trainable_variables)
    assert len(compiled) == len(net.trainable_variables)
    # The Jacobian does not depend on the output bias; every other weight
    # gets a gradient.
    output_bias = net.get_layer("output").bias
    for variable, a, b in zip(net.trainable_variables, compiled, eager):
        if variable is output_bias:
            assert a is None and b is None
            continue
        assert a is not None and np.abs(a.numpy()).max() > 0
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize(("d", "m"), [(5, 1), (2, 3), (3, 3)])
def test_explicit_chain_rule_matches_the_tape_in_both_modes(float64, mode, d, m):
    net = mlp(d, m, width=7, depth=3, activation="silu", seed=2)
    x = tf.constant(random_points(9, d, seed=3))
    y_tape, tape_jac = value_and_jacobian(net, x)
    y, jac = dense_value_and_jacobian(net, x, mode)
    np.testing.assert_allclose(y.numpy(), y_tape.numpy(), rtol=1e-12)
    np.testing.assert_allclose(jac.numpy(), tape_jac.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_explicit_chain_rule_has_the_tapes_second_order_gradient(float64, mode):
    # Training differentiates the Jacobian again: both routes must agree.
    net = mlp(3, 2, width=6, depth=2, activation="silu", seed=5)
    x = tf.constant(random_points(8, 3, seed=9))

    def grads(jacobian):
        with tf.GradientTape() as outer:
            loss = tf.reduce_sum(tf.sin(jacobian()))
        # The output bias does not reach the Jacobian: its gradient is None.
        return [None if g is None else g.numpy() for g in outer.gradient(loss, net.weights)]

    tape = grads(lambda: value_and_jacobian(net, x)[1])
    explicit = grads(lambda: dense_value_and_jacobian(net, x, mode)[1])
    assert [g is None for g in explicit] == [g is None for g in tape]
    assert sum(g is not None for g in tape) == len(net.weights) - 1
    for a, b in zip(explicit, tape):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_explicit_chain_rule_refuses_unknown_modes():
    net = mlp(2, 1, width=4, depth=1, seed=0)
    with pytest.raises(ValueError, match="mode must be 'forward', 'reverse' or 'auto'"):
        dense_value_and_jacobian(net, tf.zeros((1, 2)), "sideways")


def nearest_kink(network, z):
    """The smallest |pre-activation| of any hidden unit at the points `z`."""
    nearest, h = np.inf, z
    for layer in network.layers[1:-1]:  # the output layer is linear
        pre = tf.matmul(h, layer.kernel) + layer.bias
        nearest = min(nearest, float(tf.reduce_min(tf.abs(pre))))
        h = layer.activation(pre)
    return nearest


BOUNDS_3D = [(-1.0, 2.0), (0.0, 1.0), (-3.0, -1.0)]


def one_training_update(jacobian, activation):
    """One SGD step of a float64 GradINN with gradient_weight 1.

    Returns the weights before the step, their change, the gradient loss
    before the step and the nearest kink at the step's collocation points.
    """
    x = random_points(24, 3, seed=11) * [1.0, 1 / 3, 2 / 3] + [0.5, 0.5, -2.0]
    y = np.stack([np.sin(x[:, 0]) * x[:, 1], x[:, 2] ** 2 - x[:, 0]], axis=1)
    network = mlp(3, 2, width=6, depth=2, activation=activation, seed=3)
    # Non-zero biases: Keras starts them at zero, which would hide an
    # explicit forward pass that drops them, and gives ReLU units exact
    # zeros (a point that switches off every unit of one layer).
    rng = np.random.default_rng(6)
    for layer in network.layers[1:]:
        layer.bias.assign(rng.normal(0.0, 0.3, layer.bias.shape))
    prior = kg.priors.smooth(3, 2, width=4, seed=5)
    model = kg.GradINN(network, prior, bounds=BOUNDS_3D, n_collocation=32, gradient_weight=1.0,
                       jacobian=jacobian, seed=4)
    assert (model._dense is None) == (jacobian == "tape")  # the route under test
    # Plain SGD: the update is the gradient times the learning rate. Adam's
    # first step is close to sign(gradient), which would hide a wrong slope.
    # Eagerly: the same train_step code, ten times faster than tracing it for
    # one step (graph mode is compared in test_model.py, in float32).
    model.compile(optimizer=keras.optimizers.SGD(0.1), run_eagerly=True)
    points = model.collocation_points(0)  # the first step's
    gradient_loss = float(model.gradient_loss(points))
    kink = nearest_kink(network, points)
    variables = network.trainable_weights + prior.trainable_weights
    before = [v.numpy() for v in variables]
    model.fit(x, y, epochs=1, batch_size=len(x), shuffle=False, verbose=0)
    update = [v.numpy() - b for v, b in zip(variables, before)]
    return before, update, gradient_loss, kink


#: The tape's update per activation, shared by the forward and reverse cases.
TAPE_UPDATES = {}


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_the_explicit_chain_rule_gives_the_tapes_training_update_for_every_activation(
    float64, activation, mode
):
    # The training step differentiates the Jacobian with respect to the
    # weights, so each activation's closed-form slope and its derivative
    # (through `tf.sigmoid`, `tf.exp`, ...) are checked against TensorFlow's
    # own gradients of that activation and of their gradients. d=3 and m=2 so
    # that a transposed Jacobian or a mixed-up axis cannot have the right shape.
    before, update, gradient_loss, kink = one_training_update(mode, activation)
    if activation not in TAPE_UPDATES:  # the same for both modes: computed once
        TAPE_UPDATES[activation] = one_training_update("tape", activation)[:2]
    tape_before, tape_update = TAPE_UPDATES[activation]
    for a, b in zip(before, tape_before):
        np.testing.assert_array_equal(a, b)
    # The gradient term must be large enough to matter in the update;
    # otherwise the comparison would mostly check the data term, which does
    # not use the Jacobian.
    assert gradient_loss > 1e-2

    # ReLU's slope jumps at zero and its second derivative is zero elsewhere
    # (both routes then give the outer gradient no contribution through the
    # slope, so the comparison checks the products of kernels and slopes).
    # The routes agree exactly unless a collocation point puts a hidden unit
    # on its kink, where rounding could send their identical pre-activations
    # to different sides: make sure none is near one. The seeds are fixed,
    # so this holds or fails deterministically.
    assert kink > 1e-6

    # float64 rounding in a few hundred sums: 1e-9 relative is ~10^7 ulps of
    # slack, while any wrong slope or transposition changes the update at the
    # percent level. TensorFlow's exact GELU (which the tape differentiates)
    # multiplies by 1/sqrt(2) rounded to float32, a relative error of 1.7e-8,
    # so there the two routes differentiate functions 1e-8 apart (seen: 2e-9
    # of the largest update): 1e-6 still sees any wrong formula.
    rtol, atol = (1e-6, 1e-6) if activation == "gelu" else (1e-9, 1e-12)
    for a, b in zip(update, tape_update):
        assert np.abs(b).max() > 0
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * np.abs(b).max())
