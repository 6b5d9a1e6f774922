"""Tests for keras_gradinn.sampling: host-side box samplers and domain checks."""

import numpy as np
import pytest
from scipy.stats import qmc

from keras_gradinn import sampling

# Non-unit boxes of growing dimension: offsets, a negative interval, a wide
# interval and a narrow one, so a wrong affine map shows up.
BOXES = {
    1: [(-3.0, 3.0)],
    2: [(-3.0, 3.0), (0.0, 3.0)],
    3: [(-3.0, 3.0), (0.0, 3.0), (-0.5, -0.25)],
    4: [(-3.0, 3.0), (0.0, 3.0), (-0.5, -0.25), (10.0, 1000.0)],
    5: [(-3.0, 3.0), (0.0, 3.0), (-0.5, -0.25), (10.0, 1000.0), (1e-3, 2e-3)],
}


def outside_unit_disk(x):
    return x[:, 0] ** 2 + x[:, 1] ** 2 > 1.0


@pytest.mark.parametrize("method", sampling.METHODS)
@pytest.mark.parametrize("d", sorted(BOXES))
def test_sample_shape_dtype_and_bounds(method, d):
    box = np.array(BOXES[d])
    n = 200  # not a power of two: exercises the Sobol prefix
    x = sampling.sample(n, box, method=method, seed=7)
    assert x.shape == (n, d)
    assert x.dtype == np.float64
    assert np.all(x >= box[:, 0]) and np.all(x <= box[:, 1])
    # The points fill each interval rather than a corner of it.
    width = box[:, 1] - box[:, 0]
    assert np.all(x.min(axis=0) < box[:, 0] + 0.05 * width)
    assert np.all(x.max(axis=0) > box[:, 1] - 0.05 * width)


@pytest.mark.parametrize("method", sampling.METHODS)
def test_unit_points_in_unit_cube(method):
    u = sampling.unit_points(100, 4, method=method, seed=3)
    assert u.shape == (100, 4) and u.dtype == np.float64
    assert np.all(u >= 0.0) and np.all(u < 1.0)


@pytest.mark.parametrize("method", sampling.METHODS)
@pytest.mark.parametrize("n", [1, 37, 300])
def test_contains_exact_count_and_predicate(method, n):
    box = [(-3.0, 3.0), (0.0, 3.0)]
    x = sampling.sample(n, box, method=method, seed=11, contains=outside_unit_disk)
    assert x.shape == (n, 2)
    assert x.dtype == np.float64
    assert np.all(outside_unit_disk(x))
    assert np.all(x >= [-3.0, 0.0]) and np.all(x <= [3.0, 3.0])
    assert len(np.unique(x, axis=0)) == n


def test_contains_keeps_points_in_a_thin_region():
    # Only ~2% of the box is accepted: several rejection rounds are needed.
    def in_strip(x):
        return np.abs(x[:, 0] - 1.0) < 0.06

    x = sampling.sample(500, [(-3.0, 3.0), (0.0, 3.0)], method="sobol", seed=2,
                        contains=in_strip)
    assert x.shape == (500, 2)
    assert np.all(in_strip(x))
    # The accepted points still spread over the strip's extent in y.
    assert x[:, 1].min() < 0.1 and x[:, 1].max() > 2.9


@pytest.mark.parametrize("method", sampling.METHODS)
@pytest.mark.parametrize("contains", [None, outside_unit_disk])
def test_same_seed_same_points_different_seed_different(method, contains):
    box = [(-3.0, 3.0), (0.0, 3.0)]
    a = sampling.sample(64, box, method=method, seed=5, contains=contains)
    b = sampling.sample(64, box, method=method, seed=5, contains=contains)
    c = sampling.sample(64, box, method=method, seed=6, contains=contains)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("method", sampling.METHODS)
def test_generator_seed_is_reproducible(method):
    box = [(-1.0, 2.0)] * 3
    a = sampling.sample(50, box, method=method, seed=np.random.default_rng(9))
    b = sampling.sample(50, box, method=method, seed=np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["sobol", "halton", "lhs"])
def test_low_discrepancy_beats_uniform(method):
    n, box = 256, np.array([(-3.0, 3.0), (0.0, 3.0), (10.0, 12.0)])
    low, width = box[:, 0], box[:, 1] - box[:, 0]

    def mean_discrepancy(name):
        values = [
            qmc.discrepancy((sampling.sample(n, box, method=name, seed=s) - low) / width)
            for s in range(5)
        ]
        return float(np.mean(values))

    uniform = mean_discrepancy("uniform")
    # Measured for these seeds: uniform ~3e-3, lhs ~3e-4, halton ~7e-5,
    # sobol ~4e-5. Requiring half of the i.i.d. value still fails for a
    # sampler that silently falls back to i.i.d. points.
    assert mean_discrepancy(method) < 0.5 * uniform


def test_predicate_rejecting_everything_raises():
    with pytest.raises(ValueError, match="accepted only 0 of"):
        sampling.sample(10, [(0.0, 1.0), (0.0, 1.0)], seed=0,
                        contains=lambda x: np.zeros(len(x), dtype=bool))


def test_predicate_rejecting_almost_everything_respects_max_candidates():
    calls = []

    def rare(x):
        calls.append(len(x))
        return np.zeros(len(x), dtype=bool)

    with pytest.raises(ValueError, match="accepted only"):
        sampling.sample(5, [(0.0, 1.0)], method="uniform", seed=0, contains=rare,
                        max_candidates=640)
    assert sum(calls) == 640


@pytest.mark.parametrize(
    "contains",
    [
        lambda x: (x[:, 0] > 0)[:, None],  # (k, 1) instead of (k,)
        lambda x: np.ones(len(x) - 1, dtype=bool),  # one short
        lambda x: True,  # a scalar
    ],
    ids=["column", "short", "scalar"],
)
def test_predicate_with_wrong_shape_mask_raises(contains):
    with pytest.raises(ValueError, match="boolean mask of shape"):
        sampling.sample(8, [(-1.0, 1.0), (-1.0, 1.0)], seed=0, contains=contains)


@pytest.mark.parametrize(
    "bounds, message",
    [
        ([0.0, 1.0, 2.0], r"shape \(d, 2\).*got shape \(3,\)"),
        (np.zeros((2, 3)), r"shape \(d, 2\).*got shape \(2, 3\)"),
        ([], r"shape \(d, 2\)"),
        (np.zeros((0, 2)), r"shape \(d, 2\)"),
        ([(0.0, 1.0), (2.0, 2.0)], r"low < high.*input 1"),
        ([(1.0, 0.0)], r"low < high.*input 0"),
        ([(0.0, np.nan)], "finite"),
        ([(0.0, 1.0), (-np.inf, 1.0)], "finite"),
        ([("a", "b")], "numbers"),
        ([(0.0, 1.0), (0.0,)], "numbers"),  # ragged
    ],
    ids=["flat3", "2x3", "empty", "0x2", "equal", "reversed", "nan", "inf",
         "strings", "ragged"],
)
def test_as_bounds_rejects(bounds, message):
    with pytest.raises(ValueError, match=message):
        sampling.as_bounds(bounds)


def test_sample_validates_bounds():
    with pytest.raises(ValueError, match="low < high"):
        sampling.sample(4, [(1.0, 1.0)])


@pytest.mark.parametrize(
    "bounds",
    [[(-3, 3), (0, 3)], np.array([[-3, 3], [0, 3]]), np.array([[-3.0, 3.0], [0.0, 3.0]])],
    ids=["list_of_int_pairs", "int_array", "float_array"],
)
def test_as_bounds_accepts_pairs_and_arrays(bounds):
    box = sampling.as_bounds(bounds)
    assert box.dtype == np.float64 and box.shape == (2, 2)
    np.testing.assert_array_equal(box, [[-3.0, 3.0], [0.0, 3.0]])
    # A new array: editing it leaves the caller's bounds alone.
    box[0, 0] = 99.0
    assert np.asarray(bounds)[0, 0] == -3


@pytest.mark.parametrize("method", ["random", "Sobol", "", None])
def test_unknown_method_raises(method):
    with pytest.raises(ValueError, match="method must be one of"):
        sampling.sample(4, [(0.0, 1.0)], method=method)
    with pytest.raises(ValueError, match="method must be one of"):
        sampling.unit_points(4, 1, method=method)


def test_negative_n_raises():
    with pytest.raises(ValueError, match="n must be >= 0"):
        sampling.sample(-1, [(0.0, 1.0)])


@pytest.mark.parametrize("method", sampling.METHODS)
def test_zero_points_without_predicate(method):
    assert sampling.sample(0, [(0.0, 1.0), (2.0, 3.0)], method=method, seed=0).shape == (0, 2)


def test_zero_points_with_predicate():
    x = sampling.sample(0, [(-3.0, 3.0), (0.0, 3.0)], seed=0, contains=outside_unit_disk)
    assert x.shape == (0, 2)


def test_the_collocation_hash_draws_independent_uniform_numbers_the_same_under_xla():
    import tensorflow as tf
    from scipy import stats

    from keras_gradinn.collocation import stateless_uniform

    def draw(seed):
        return stateless_uniform((4000, 3), tf.constant(seed, tf.int64))

    first = draw([5, 3]).numpy()
    compiled = tf.function(draw, jit_compile=True)
    np.testing.assert_array_equal(compiled([5, 3]).numpy(), first)
    assert first.dtype == np.float32 and 0.0 <= first.min() and first.max() < 1.0
    # Uniform (fixed seeds: deterministic, not flaky), and unrelated across
    # neighbouring steps, seeds and entries; large seeds use their high words.
    assert stats.kstest(first.ravel(), "uniform").pvalue > 0.01
    for other in ([5, 4], [6, 3], [5 + 2**32, 3]):
        again = draw(other).numpy()
        assert not np.array_equal(again, first)
        assert abs(np.corrcoef(first.ravel(), again.ravel())[0, 1]) < 0.03
    assert abs(np.corrcoef(first.ravel()[:-1], first.ravel()[1:])[0, 1]) < 0.03
    counts, _, _ = np.histogram2d(first[:, 0], first[:, 1], bins=8)
    assert stats.chisquare(counts.ravel()).pvalue > 0.01
