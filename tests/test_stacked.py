"""Stacked networks: members evaluated and trained together behave as if alone."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_equal_to_rounding

import keras_gradinn as kg
from keras_gradinn.jacobian import dense_forward, dense_jacobian, dense_layers
from keras_gradinn.stacked import StackedMLP, member_seeds

D, M, K = 3, 2, 4
RNG = np.random.default_rng(0)
X = RNG.uniform(0.0, 2.0, (24, D))
Y = np.stack([np.sin(X[:, 0]) * X[:, 1], X[:, 2] ** 2 - X[:, 0]], axis=1)
BOUNDS = [(0.0, 2.0)] * D


def test_members_equal_the_networks_built_with_their_seeds():
    stack = kg.mlp(D, M, width=8, depth=2, seed=5, members=K)
    z = RNG.uniform(-1, 1, (6, D)).astype("float32")
    outputs = stack(z).numpy()
    assert outputs.shape == (6, K, M)
    # A member and its lone network: the same arithmetic through other kernels
    # (batched products against Dense).
    for j, seed in enumerate(member_seeds(5, K)):
        assert_equal_to_rounding(outputs[:, j], kg.mlp(D, M, width=8, depth=2, seed=seed)(z))
    priors = kg.priors.smooth(D, M, width=8, seed=3, members=K)(z).numpy()
    for j, seed in enumerate(member_seeds(3, K)):
        assert_equal_to_rounding(priors[:, j], kg.priors.smooth(D, M, width=8, seed=seed)(z))


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_stacked_jacobian_matches_each_members_tape(mode):
    stack = kg.mlp(D, M, width=8, depth=2, seed=1, members=K, activation="tanh")
    z = tf.constant(RNG.uniform(-1, 1, (5, D)).astype("float32"))
    layers = dense_layers(stack)
    values, slopes = dense_forward(layers, z)
    jacobian = dense_jacobian(layers, slopes, mode).numpy()
    assert jacobian.shape == (K, 5, M, D)
    for j, seed in enumerate(member_seeds(1, K)):
        single = kg.mlp(D, M, width=8, depth=2, seed=seed, activation="tanh")
        expected = kg.value_and_jacobian(single, z)[1].numpy()
        assert_equal_to_rounding(jacobian[j], expected)


def test_an_input_mask_zeroes_the_derivative_along_masked_inputs():
    mask = np.array([[1, 0, 1], [0, 1, 1]], np.float32)
    layer = StackedMLP(2, 1, width=8, depth=2, seed=0, input_mask=mask)
    z = tf.constant(RNG.uniform(-1, 1, (7, D)).astype("float32"))
    before = layer(z).numpy()
    _, slopes = dense_forward([layer], z)
    jacobian = dense_jacobian([layer], slopes, "reverse").numpy()  # (2, 7, 1, 3)
    assert np.all(jacobian[0, :, :, 1] == 0) and np.all(jacobian[1, :, :, 0] == 0)
    assert np.all(np.abs(jacobian[0, :, :, 0]) > 0)
    moved = z.numpy().copy()
    moved[:, 1] += 0.5
    np.testing.assert_array_equal(layer(moved).numpy()[:, 0], before[:, 0])


def _train(model, weights, steps=15):
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.adapt(Y)
    data = tf.data.Dataset.from_tensors(
        (X.astype("float32"), Y.astype("float32"), weights.astype("float32"))).repeat()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return model


@pytest.mark.parametrize("jacobian", ["auto", "tape"])
def test_a_stacked_gradinn_trains_each_member_as_if_alone(jacobian):
    # Per-member row weights (a held-out fold has weight 0) and per-member priors.
    weights = np.ones((len(X), K))
    for j in range(K):
        weights[j::K, j] = 0.0
    common = dict(bounds=BOUNDS, n_collocation=32, seed=11, gradient_weight=0.3,
                  jacobian=jacobian)
    stacked = _train(kg.GradINN(kg.mlp(D, M, width=8, depth=2, seed=2, members=K),
                                kg.priors.smooth(D, M, width=8, seed=4, members=K), **common),
                     weights)
    members = stacked.predict_members(X)
    gradients = stacked.predict_gradient(X, members=True)
    for j, (net_seed, prior_seed) in enumerate(zip(member_seeds(2, K), member_seeds(4, K))):
        single = _train(kg.GradINN(kg.mlp(D, M, width=8, depth=2, seed=net_seed),
                                   kg.priors.smooth(D, M, width=8, seed=prior_seed), **common),
                        weights[:, j])
        np.testing.assert_allclose(members[:, j], single.predict(X, verbose=0), atol=2e-5)
        np.testing.assert_allclose(gradients[:, j], single.predict_gradient(X), atol=2e-4)
    np.testing.assert_allclose(stacked.predict(X, verbose=0), members.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(stacked.predict_gradient(X), gradients.mean(axis=1), atol=1e-4)


def test_a_stacked_gradinn_saves_loads_and_reports_mean_losses(tmp_path):
    model = kg.GradINN(kg.mlp(D, M, width=8, depth=2, seed=2, members=K), "smooth",
                       bounds=BOUNDS, n_collocation=16, seed=0)
    _train(model, np.ones(len(X)), steps=3)
    path = tmp_path / "stack.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict_members(X), model.predict_members(X), atol=1e-6)
    logs = model.evaluate(X, Y, verbose=0, return_dict=True)
    residual = (model.predict_members(X) - Y[:, None, :]) / Y.std(axis=0)
    np.testing.assert_allclose(logs["data_loss"], np.mean(residual**2), rtol=1e-4)
