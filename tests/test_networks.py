"""Tests for keras_gradinn.mlp: the primary fully connected network."""

import keras
import numpy as np
import pytest

from keras_gradinn import mlp


def dense_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


@pytest.mark.parametrize(
    "d, m, width, depth",
    [(1, 1, 4, 1), (5, 1, 32, 2), (2, 3, 8, 3), (7, 4, 16, 4)],
)
def test_output_shape(d, m, width, depth):
    net = mlp(d, m, width=width, depth=depth, seed=0)
    assert net.input_shape == (None, d)
    assert net.output_shape == (None, m)
    x = np.random.default_rng(0).normal(size=(11, d)).astype("float32")
    out = net(x).numpy()
    assert out.shape == (11, m)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_dense_layer_count_units_and_activations(depth):
    net = mlp(3, 2, width=10, depth=depth, activation="tanh", seed=0)
    layers = dense_layers(net)
    assert len(layers) == depth + 1
    assert [layer.units for layer in layers] == [10] * depth + [2]
    assert all(layer.activation is keras.activations.tanh for layer in layers[:-1])
    assert layers[-1].activation is keras.activations.linear
    assert net.count_params() == (3 * 10 + 10) + (depth - 1) * (10 * 10 + 10) + (10 * 2 + 2)


def test_default_activation_is_silu_and_is_applied():
    net = mlp(2, 1, width=4, depth=1, seed=0)
    hidden = net.get_layer("hidden_0")
    assert hidden.activation is keras.activations.silu
    x = np.array([[0.3, -1.2]], dtype="float32")
    kernel, bias = hidden.kernel.numpy(), hidden.bias.numpy()
    pre = x @ kernel + bias
    expected = (pre / (1.0 + np.exp(-pre))) @ net.get_layer("output").kernel.numpy()
    np.testing.assert_allclose(net(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_same_seed_gives_identical_weights():
    a = mlp(4, 2, width=16, depth=3, seed=42)
    b = mlp(4, 2, width=16, depth=3, seed=42)
    weights_a, weights_b = a.get_weights(), b.get_weights()
    assert len(weights_a) == len(weights_b) == 8
    for wa, wb in zip(weights_a, weights_b):
        np.testing.assert_array_equal(wa, wb)
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_different_seed_gives_different_weights():
    a = mlp(4, 2, width=16, depth=3, seed=42)
    b = mlp(4, 2, width=16, depth=3, seed=43)
    for layer_a, layer_b in zip(dense_layers(a), dense_layers(b)):
        assert not np.allclose(layer_a.kernel.numpy(), layer_b.kernel.numpy())
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    assert not np.allclose(a(x).numpy(), b(x).numpy())


def test_layers_within_one_network_are_not_copies():
    # Each layer has its own seed offset: two equally shaped hidden layers
    # must not start from the same matrix.
    net = mlp(3, 1, width=8, depth=3, seed=0)
    kernels = [net.get_layer(f"hidden_{i}").kernel.numpy() for i in (1, 2)]
    assert not np.allclose(kernels[0], kernels[1])


def test_unseeded_networks_follow_the_keras_global_seed():
    keras.utils.set_random_seed(5)
    a = mlp(3, 1, width=8, depth=2).get_weights()
    keras.utils.set_random_seed(5)
    b = mlp(3, 1, width=8, depth=2).get_weights()
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize(
    "kwargs, label",
    [
        (dict(input_dim=0, output_dim=1), "input_dim"),
        (dict(input_dim=-2, output_dim=1), "input_dim"),
        (dict(input_dim=2.5, output_dim=1), "input_dim"),
        (dict(input_dim=2, output_dim=0), "output_dim"),
        (dict(input_dim=2, output_dim=1, width=0), "width"),
        (dict(input_dim=2, output_dim=1, width=-8), "width"),
        (dict(input_dim=2, output_dim=1, width=3.5), "width"),
        (dict(input_dim=2, output_dim=1, width="8"), "width"),
        (dict(input_dim=2, output_dim=1, depth=0), "depth"),
        (dict(input_dim=2, output_dim=1, depth=1.5), "depth"),
    ],
)
def test_invalid_arguments_raise(kwargs, label):
    with pytest.raises(ValueError, match=f"{label} must be a positive integer"):
        mlp(**kwargs)


def test_integral_floats_and_numpy_ints_are_accepted():
    net = mlp(np.int64(3), 2.0, width=np.int32(5), depth=2.0)
    assert net.output_shape == (None, 2)
    assert [layer.units for layer in dense_layers(net)] == [5, 5, 2]
    seeded = mlp(3, 2, width=np.int64(5), depth=2, seed=np.int64(0))
    for a, b in zip(seeded.get_weights(), mlp(3, 2, width=5, depth=2, seed=0).get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("depth", [2.0, np.int64(2)], ids=["float", "numpy_int"])
def test_non_python_int_depth_with_a_seed(depth):
    net = mlp(3, 2, width=5, depth=depth, seed=0)
    assert [layer.units for layer in dense_layers(net)] == [5, 5, 2]


def test_neighbouring_seeds_give_independent_layers():
    # With per-layer seeds `seed + i`, layer 1 of seed 0 would equal layer 0 of seed 1.
    first = mlp(4, 1, width=8, depth=3, seed=0).get_layer("hidden_2").kernel.numpy()
    second = mlp(4, 1, width=8, depth=3, seed=1).get_layer("hidden_1").kernel.numpy()
    assert not np.allclose(first, second)
