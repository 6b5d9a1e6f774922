"""Tests for keras_gradinn.priors: prior networks over the normalised domain."""

import math

import keras
import numpy as np
import pytest
from conftest import assert_equal_to_rounding

from keras_gradinn import priors

DIMS = [(1, 1), (5, 1), (2, 3), (3, 2)]  # (d, m)


def points(n, d, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (n, d)).astype("float32")


def to_numpy(x):
    return np.asarray(x.numpy())


def rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


@pytest.mark.parametrize("kind", priors.KINDS)
@pytest.mark.parametrize("d, m", DIMS)
def test_builders_map_n_by_d_to_n_by_md(kind, d, m):
    model = priors.build(kind, d, m)
    assert isinstance(model, keras.Model)
    assert model.input_shape == (None, d)
    assert model.output_shape == (None, m * d)
    out = to_numpy(model(points(17, d)))
    assert out.shape == (17, m * d)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("builder", [priors.smooth, priors.oscillatory, priors.constant])
def test_direct_builders_match_build(builder):
    model = builder(2, 3)
    assert model.output_shape == (None, 6)


@pytest.mark.parametrize("builder", [priors.smooth, priors.oscillatory])
def test_non_constant_priors_vary_over_the_domain(builder):
    out = to_numpy(builder(2, 1, initial_scale=1.0, seed=0)(points(200, 2)))
    assert np.all(out.std(axis=0) > 1e-3)


def test_initial_scale_sets_smooth_prior_magnitude():
    z = points(2000, 3)
    small = to_numpy(priors.smooth(3, 2, initial_scale=0.01, seed=0)(z))
    large = to_numpy(priors.smooth(3, 2, initial_scale=1.0, seed=0)(z))
    assert small.std() < 0.01 * 3
    assert large.std() > 0.03
    assert large.std() > 30 * small.std()
    # The output layer's initial weights are proportional to initial_scale
    # (same seed), and the output layer is linear: outputs scale exactly, up
    # to float32 rounding. Each entry sums 64 products whose sizes add up to
    # about 3 max|large|; rounding the two kernels and summing in the order
    # this CPU's kernels choose leaves ~4 eps32 max|large| (measured, in
    # several orders), whatever the entry's own size: an entry near 0 is a
    # cancellation of large terms, so the tolerance follows max|large|, not
    # the entry (rtol 1e-4 with atol 1e-7 failed on another CPU at an entry
    # of 4e-4). 64 eps32 max|large| = 2.6e-5 still fails a scale off by
    # 1e-5 (3.4e-5 at the largest entry).
    assert_equal_to_rounding(100.0 * small, large, ulps=64)
    # The documented size: the field's RMS over the domain is initial_scale.
    assert rms(large) == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("initial_scale", [0.01, 0.1, 1.0])
def test_initial_scale_sets_oscillatory_prior_magnitude(initial_scale):
    # Sine features have rms ~ 1/sqrt(2), so the field's rms is a constant
    # fraction of initial_scale, whatever the number of features.
    for n_features in (16, 256):
        values = [
            rms(to_numpy(
                priors.oscillatory(3, 2, n_features=n_features,
                                   initial_scale=initial_scale, seed=s)(points(1000, 3))))
            for s in range(4)
        ]
        assert 0.3 * initial_scale < np.mean(values) < 1.5 * initial_scale


def test_smooth_prior_magnitude_is_initial_scale_whatever_the_width():
    z = points(1000, 3)
    sizes = {
        width: np.mean([rms(to_numpy(
            priors.smooth(3, 1, width=width, initial_scale=1.0, seed=s)(z)))
            for s in range(4)])
        for width in (8, 512)
    }
    assert all(1 / 3 < size < 3 for size in sizes.values())
    assert 0.5 < sizes[8] / sizes[512] < 2


@pytest.mark.parametrize("builder", [priors.smooth, priors.oscillatory])
def test_zero_initial_scale_gives_a_zero_field(builder):
    out = to_numpy(builder(2, 2, initial_scale=0.0, seed=0)(points(10, 2)))
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("builder", [priors.smooth, priors.oscillatory])
def test_negative_initial_scale_raises(builder):
    with pytest.raises(ValueError, match="initial_scale"):
        builder(2, 1, initial_scale=-0.1)


def test_sine_features_match_numpy():
    layer = priors.SineFeatures(64, frequency=1.5, seed=3)
    z = points(50, 3)
    out = to_numpy(layer(z))
    kernel = to_numpy(layer.kernel)
    phase = to_numpy(layer.phase)
    assert kernel.shape == (3, 64) and phase.shape == (64,)
    np.testing.assert_allclose(out, np.sin(z @ kernel + phase), atol=1e-5)
    assert np.all(np.abs(phase) <= math.pi)
    assert layer.compute_output_shape((None, 3)) == (None, 64)


@pytest.mark.parametrize("frequency", [0.5, 2.0, 4.0])
def test_sine_features_kernel_scale_is_pi_times_frequency(frequency):
    layer = priors.SineFeatures(4096, frequency=frequency, seed=0)
    layer.build((None, 3))
    kernel = to_numpy(layer.kernel)
    phase = to_numpy(layer.phase)
    assert 0.9 < kernel.std() / (math.pi * frequency) < 1.1
    assert abs(kernel.mean()) < 0.1 * math.pi * frequency
    # U(-pi, pi) phases: std pi / sqrt(3).
    assert 0.9 < phase.std() / (math.pi / math.sqrt(3)) < 1.1


def test_sine_features_trainable_frequencies_flag():
    fixed = priors.SineFeatures(8, trainable_frequencies=False)
    fixed.build((None, 2))
    free = priors.SineFeatures(8)
    free.build((None, 2))
    assert len(fixed.trainable_weights) == 0 and len(fixed.non_trainable_weights) == 2
    assert len(free.trainable_weights) == 2


@pytest.mark.parametrize("kwargs", [dict(units=0), dict(units=4, frequency=0.0),
                                    dict(units=4, frequency=-1.0),
                                    dict(units=4, frequency=float("nan"))])
def test_sine_features_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        priors.SineFeatures(**kwargs)


@pytest.mark.parametrize("d, m", [(1, 1), (3, 1), (3, 2)])
def test_constant_prior_scalar_value(d, m):
    out = to_numpy(priors.constant(d, m, value=0.7)(points(13, d)))
    assert out.shape == (13, m * d)
    np.testing.assert_array_equal(out, np.float32(0.7))


@pytest.mark.parametrize("shape", ["matrix", "flat"])
def test_constant_prior_array_value_is_row_major_m_by_d(shape):
    m, d = 2, 3
    value = np.arange(1.0, 1.0 + m * d).reshape(m, d) * np.array([1.0, -1.0])[:, None]
    given = value if shape == "matrix" else value.reshape(-1)
    out = to_numpy(priors.constant(d, m, value=given)(points(9, d)))
    # Row-major flattening: out[:, i * d + j] is the (i, j) Jacobian entry.
    np.testing.assert_array_equal(out, np.tile(value.reshape(1, -1), (9, 1)).astype("float32"))
    np.testing.assert_array_equal(out.reshape(9, m, d)[4], value)


@pytest.mark.parametrize("value", [np.ones((3, 3)), np.ones(5), [1.0, 2.0], np.ones((3, 2))])
def test_constant_prior_wrong_shape_raises(value):
    # (3, 2) is the transposed (d, m) layout: same size, wrong entries.
    with pytest.raises(ValueError, match=r"have shape \(2, 3\)"):
        priors.constant(3, 2, value=value)


@pytest.mark.parametrize("value", [float("nan"), [0.0, float("inf")]])
def test_constant_prior_non_finite_raises(value):
    with pytest.raises(ValueError, match="finite"):
        priors.constant(2, 1, value=value)


@pytest.mark.parametrize("builder", [priors.smooth, priors.oscillatory, priors.constant])
@pytest.mark.parametrize("d, m", [(0, 1), (2, 0), (2.5, 1)])
def test_builders_reject_bad_dims(builder, d, m):
    with pytest.raises(ValueError, match="must be a positive integer"):
        builder(d, m)


def test_sine_features_config_round_trip():
    layer = priors.SineFeatures(12, frequency=3.0, trainable_frequencies=False, seed=5,
                                name="sines")
    config = layer.get_config()
    assert config["units"] == 12 and config["frequency"] == 3.0
    assert config["trainable_frequencies"] is False and config["seed"] == 5
    clone = priors.SineFeatures.from_config(config)
    assert clone.get_config() == config
    z = points(20, 2)
    # Seeded initialisers: the clone draws the same weights.
    np.testing.assert_array_equal(to_numpy(layer(z)),
                                  to_numpy(clone(z)))


def test_constant_field_config_round_trip():
    layer = priors.ConstantField(3, value=[1.0, -2.0, 0.5], name="c")
    config = layer.get_config()
    assert config["units"] == 3 and config["value"] == [1.0, -2.0, 0.5]
    clone = priors.ConstantField.from_config(config)
    assert clone.get_config() == config
    out = to_numpy(clone(points(4, 2)))
    np.testing.assert_array_equal(out, np.tile([1.0, -2.0, 0.5], (4, 1)))


def test_constant_field_broadcasts_scalar_value():
    layer = priors.ConstantField(4, value=2.0)
    assert layer.get_config()["value"] == [2.0] * 4
    with pytest.raises(ValueError):
        priors.ConstantField(4, value=[1.0, 2.0, 3.0])


@pytest.mark.parametrize("kind", priors.KINDS)
def test_keras_save_and_safe_load(kind, tmp_path):
    d, m = 3, 2
    kwargs = {} if kind == "constant" else {"seed": 0}
    model = priors.build(kind, d, m, **kwargs)
    # Move every weight away from its initial value, so that reloading must
    # restore the saved weights rather than re-run the (seeded) initialisers.
    rng = np.random.default_rng(1)
    model.set_weights([w + rng.normal(0.0, 0.3, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    z = points(32, d)
    expected = to_numpy(model(z))

    path = tmp_path / f"{kind}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)

    assert loaded.output_shape == (None, m * d)
    np.testing.assert_array_equal(to_numpy(loaded(z)), expected)
    for before, after in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_build_unknown_kind_lists_kinds():
    with pytest.raises(ValueError) as info:
        priors.build("nope", 2, 1)
    message = str(info.value)
    assert "'nope'" in message
    for kind in priors.KINDS:
        assert kind in message


def test_build_passes_keyword_arguments():
    model = priors.build("oscillatory", 2, 1, n_features=7)
    assert model.get_layer("sine_features").units == 7


@pytest.mark.parametrize("builder", [priors.smooth, priors.oscillatory])
def test_numpy_integer_seed_is_accepted_and_reproducible(builder):
    z = points(5, 2)
    a = to_numpy(builder(2, 1, seed=np.int64(3))(z))
    b = to_numpy(builder(2, 1, seed=3)(z))
    np.testing.assert_array_equal(a, b)


def test_input_group_lasso_sums_one_norm_per_input():
    d, m, width = 3, 2, 4
    kernel = np.random.default_rng(0).normal(size=(width, m * d)).astype("float32")
    penalty = priors.InputGroupLasso(0.5, d, m)
    # Column i*d + j is the field's entry (output i, input j).
    expected = 0.5 * sum(np.linalg.norm(kernel[:, [i * d + j for i in range(m)]])
                         for j in range(d))
    assert float(penalty(kernel)) == pytest.approx(expected, rel=1e-5)
    assert penalty.get_config() == {"strength": 0.5, "input_dim": 3, "output_dim": 2}
    for strength in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="strength must be finite and >= 0"):
            priors.InputGroupLasso(strength, d, m)


def test_sparse_smooth_prior_penalises_its_field_and_survives_saving(tmp_path):
    plain = priors.smooth(3, 2, seed=0)
    sparse = priors.smooth(3, 2, sparsity=1e-3, seed=0)
    assert plain.losses == []
    field = sparse.get_layer("field").kernel
    assert float(keras.ops.sum(sparse.losses)) == pytest.approx(
        float(priors.InputGroupLasso(1e-3, 3, 2)(field)))
    path = tmp_path / "sparse.keras"
    sparse.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.get_layer("field").kernel_regularizer.get_config() == {
        "strength": 1e-3, "input_dim": 3, "output_dim": 2}
    assert float(keras.ops.sum(loaded.losses)) == pytest.approx(float(keras.ops.sum(sparse.losses)))


@pytest.mark.parametrize("sparsity", [-1e-3, float("inf")])
def test_smooth_prior_rejects_a_bad_sparsity_by_its_name(sparsity):
    with pytest.raises(ValueError, match="sparsity must be finite and >= 0"):
        priors.smooth(3, 2, sparsity=sparsity)
