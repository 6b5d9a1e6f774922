"""The Gaussian process and its posterior-mean gradient as a prior field."""

import keras
import numpy as np
import pytest

import keras_gradinn as kg
from keras_gradinn.kernels import KernelField, fit_gp
from keras_gradinn.model import GradINN

RNG = np.random.default_rng(0)
Z = RNG.uniform(-1, 1, (50, 3))
T = np.stack([np.sin(2 * Z[:, 0]) + Z[:, 1] ** 2, Z[:, 0] * Z[:, 1]], axis=1)
POINTS = RNG.uniform(-1, 1, (7, 3))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_mean_matches_scikit_learn_and_the_gradient_matches_finite_differences():
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    process = fit_gp(Z, T, restarts=0)
    for o in range(2):
        kernel = ConstantKernel(1.0) * Matern(length_scale=np.ones(3), nu=2.5) + WhiteKernel(1e-5)
        reference = GaussianProcessRegressor(kernel, normalize_y=True).fit(Z, T[:, o])
        np.testing.assert_allclose(process.predict(POINTS)[:, o], reference.predict(POINTS),
                                   rtol=1e-6, atol=1e-8)
        _, observed = reference.predict(POINTS, return_std=True)  # the white noise included
        np.testing.assert_allclose(process.std(POINTS, observation=True)[:, o], observed,
                                   rtol=1e-5, atol=1e-8)
        latent = np.sqrt(observed**2 - reference.kernel_.k2.noise_level * reference._y_train_std**2)
        np.testing.assert_allclose(process.std(POINTS)[:, o], latent, rtol=1e-4, atol=1e-8)
    step = 1e-4
    differences = np.stack([
        (process.predict(POINTS + step * e) - process.predict(POINTS - step * e)) / (2 * step)
        for e in np.eye(3)], axis=-1)
    np.testing.assert_allclose(process.gradient(POINTS), differences, rtol=1e-4, atol=1e-4)


def test_the_ard_length_scales_switch_off_an_inert_input():
    process = fit_gp(Z, T[:, :1], restarts=1)
    gradient = process.gradient(RNG.uniform(-1, 1, (200, 3)))
    assert np.abs(gradient[:, 0, 2]).max() < 1e-3 * np.abs(gradient[:, 0, 0]).max()


def test_the_field_layer_evaluates_the_gradient_and_stacks_members():
    first, second = fit_gp(Z, T, restarts=0), fit_gp(Z[:30], T[:30], restarts=0)
    one = KernelField.of([first])(POINTS.astype("float32")).numpy()
    np.testing.assert_allclose(one.reshape(7, 2, 3), first.gradient(POINTS), rtol=1e-5, atol=1e-6)
    both = KernelField.of([first, second], stacked=True)
    fields = both(POINTS.astype("float32")).numpy()
    assert fields.shape == (7, 2, 6)
    for j, process in enumerate((first, second)):
        np.testing.assert_allclose(fields[:, j].reshape(7, 2, 3), process.gradient(POINTS),
                                   rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="stacked=True"):
        KernelField.of([first, second])


def test_the_kernel_prior_saves_and_loads_safely(tmp_path):
    x = 2.0 + 3.0 * (Z + 1) / 2
    prior = kg.priors.kernel(x, T, [(2.0, 5.0)] * 3, restarts=0)
    assert not prior.trainable_weights
    model = GradINN(kg.mlp(3, 2, width=8, depth=1, seed=0), prior, bounds=[(2.0, 5.0)] * 3,
                    prior_trainable=False, seed=0)
    model.save(tmp_path / "kernel.keras")
    loaded = keras.models.load_model(tmp_path / "kernel.keras", safe_mode=True)
    z = POINTS.astype("float32")
    np.testing.assert_array_equal(loaded.prior(z).numpy(), prior(z).numpy())


def test_a_tabulated_frozen_prior_trains_as_the_evaluated_one(monkeypatch):
    x = 2.0 + 3.0 * (Z + 1) / 2
    pool = kg.sampling.sample(512, [(2.0, 5.0)] * 3, method="sobol", seed=1)

    def trained():
        keras.utils.set_random_seed(0)
        model = GradINN(kg.mlp(3, 2, width=8, depth=1, seed=0),
                        kg.priors.kernel(x, T, [(2.0, 5.0)] * 3, restarts=0),
                        bounds=[(2.0, 5.0)] * 3, sampler=pool, n_collocation=64,
                        gradient_weight=1.0, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        model.fit(x, T, epochs=10, batch_size=50, verbose=0)
        return model

    tabulated = trained()
    assert tabulated._table is not None and tabulated._table.shape == (512, 6)
    monkeypatch.setattr(GradINN, "_tabulate_prior", lambda self: setattr(self, "_table", None))
    evaluated = trained()
    assert evaluated._table is None
    np.testing.assert_allclose(tabulated.predict(x, verbose=0), evaluated.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tabulated.evaluate(x, T, verbose=0),
                               evaluated.evaluate(x, T, verbose=0),
                               rtol=1e-4)
