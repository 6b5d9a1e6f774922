"""How GradINN draws collocation points: in the graph where it can, on the host where it must."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from keras_gradinn import sampling
from keras_gradinn.validation import finite_array, outside

__all__ = ["Collocation", "stateless_uniform"]

_MASK32 = 0xFFFFFFFF


def _mix(h: tf.Tensor) -> tf.Tensor:
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 where every bit moves every other."""
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(16, tf.uint32)))
    h = h * tf.constant(0x85EBCA6B, tf.uint32)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(13, tf.uint32)))
    h = h * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, tf.constant(16, tf.uint32)))


def stateless_uniform(shape: tuple[int, ...], seed: tf.Tensor) -> tf.Tensor:
    """Float32 numbers uniform in [0, 1), a pure function of `shape` and an integer `seed` pair.

    Each entry hashes its index with the seed (MurmurHash3's finaliser, in
    unsigned 32-bit arithmetic) and keeps the top 24 bits. Integer
    arithmetic gives the same bits eagerly, in a graph and under XLA, on any
    device; `tf.random.stateless_uniform` does not (under XLA on the CPU,
    seed (5, 3) draws 0.859 instead of 0.903), so a model compiled with
    `jit_compile=True` would train on other points than `collocation_points`
    reports.
    """
    words = tf.cast(tf.bitwise.bitwise_and(
        tf.stack([tf.cast(seed, tf.int64), tf.bitwise.right_shift(tf.cast(seed, tf.int64), 32)]),
        _MASK32), tf.uint32)  # (2, 2): low and high words of both seeds
    xor = tf.bitwise.bitwise_xor
    key = tf.constant(0x9E3779B9, tf.uint32)  # any odd start, so that seed (0, 0) is mixed too
    for word in (words[1, 1], words[0, 1], words[1, 0], words[0, 0]):
        key = _mix(xor(key, word))
    index = tf.cast(tf.range(int(np.prod(shape))), tf.uint32)
    bits = _mix(_mix(xor(index, key)) + key)
    unit = tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)), tf.float32) * 2.0**-24
    return tf.reshape(unit, shape)

Sampler = Callable[[int, np.random.Generator], np.ndarray]


class Collocation:
    """A validated collocation sampler for a box domain, drawing normalised points.

    Modes, chosen from `GradINN`'s `sampler` and `contains` arguments:

    - `"uniform"`: fresh uniform points each step, in the graph;
    - `"shift"` (sobol, halton, lhs): one scrambled quasi-random set, shifted
      by a fresh random vector modulo the box each step, in the graph;
    - `"subset"` (a fixed array, or a dict `{"method": ..., "size": ..., "seed": ...}`
      for a pool drawn once by `sampling.sample`, inside `contains` if given):
      a random subset each step, in the graph;
    - `"host"` (a callable, or any method with `contains`): drawn in NumPy
      through `tf.numpy_function`, so not XLA-compatible;
    - `None` (`sampler=None`): no sampler.

    Draws are a pure function of a seed tensor `(seed, counter)`.
    """

    def __init__(self, sampler: str | np.ndarray | dict | Sampler | None, *,
                 contains: Callable[[np.ndarray], np.ndarray] | None,
                 bounds: np.ndarray, n: int, seed: int):
        if contains is not None and not callable(contains):
            raise TypeError(f"contains must be callable; got {type(contains).__name__}")
        self.sampler, self.contains, self.bounds, self.n = sampler, contains, bounds, n
        self._centre, self._half_width = sampling.centre_and_half_width(bounds)
        self.pool = self.unit_base = self.host_sampler = None
        self.host_error: Exception | None = None
        d = len(bounds)
        if sampler is None:
            self.mode = None
        elif isinstance(sampler, str):
            if sampler not in sampling.METHODS:
                raise ValueError(
                    f"sampler must be one of {sampling.METHODS}, an array of points "
                    f"or a callable; got {sampler!r}"
                )
            if contains is not None:
                self.mode = "host"

                def draw_with_predicate(k, rng):
                    return sampling.sample(k, bounds, method=sampler, seed=rng,
                                           contains=contains)

                self.host_sampler = draw_with_predicate
            elif sampler == "uniform":
                self.mode = "uniform"
            else:
                self.mode = "shift"
                self.unit_base = sampling.unit_points(n, d, method=sampler,
                                                      seed=seed).astype("float32")
        elif callable(sampler):
            self.mode, self.host_sampler = "host", sampler
        elif isinstance(sampler, dict):
            if set(sampler) != {"method", "size", "seed"}:
                raise ValueError(f"a pool sampler is a dict with keys 'method', 'size' and 'seed'; "
                                 f"got keys {sorted(sampler)}")
            self.mode = "subset"
            pool = sampling.sample(sampler["size"], bounds, method=sampler["method"],
                                   seed=sampler["seed"], contains=contains)
            self.pool = self.to_unit_box(pool)
        else:
            self.mode = "subset"
            self.pool = self.to_unit_box(self.check(sampler, "sampler points", None))
        if self.mode == "host":
            # Fail now, with a clear message, rather than inside the graph.
            self.check(self.host_sampler(n, np.random.default_rng(seed)), "sampler output", n)

    @property
    def saveable(self) -> str | list | None:
        """The sampler as it can be stored in a config (None for Python callables)."""
        if self.mode == "host" or (isinstance(self.sampler, dict) and self.contains is not None):
            return None
        if isinstance(self.sampler, dict):
            return dict(self.sampler)
        if self.mode == "subset":
            return np.asarray(self.sampler, dtype=np.float64).tolist()
        return self.sampler

    def check(self, points: Any, label: str, n: int | None) -> np.ndarray:
        """`points` as a (n, d) array inside the domain, or a ValueError naming the problem."""
        d = len(self.bounds)
        array = finite_array(points, label)
        if array.ndim == 1 and d == 1:
            array = array[:, None]
        expected = (n if n is not None else array.shape[0], d)
        if array.ndim != 2 or array.shape != expected:
            raise ValueError(f"{label} must have shape {expected}; got shape {array.shape}")
        rejected = outside(self.bounds, array)
        if self.contains is not None:
            mask = np.asarray(self.contains(array))
            if mask.shape != (len(array),):
                raise ValueError(
                    f"contains(x) must return a mask of shape ({len(array)},); "
                    f"got shape {mask.shape}"
                )
            rejected |= ~mask.astype(bool)
        if rejected.any():
            row = int(np.flatnonzero(rejected)[0])
            raise ValueError(
                f"{label} must lie inside the domain; {int(rejected.sum())} point(s) "
                f"do not, first {array[row].tolist()} (bounds {self.bounds.tolist()})"
            )
        return array

    def to_unit_box(self, x: np.ndarray) -> np.ndarray:
        return ((x - self._centre) / self._half_width).astype("float32")

    def _host_points(self, seed: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([int(s) for s in seed])
        try:
            checked = self.check(self.host_sampler(self.n, rng), "sampler output", self.n)
        except Exception as error:
            # TensorFlow wraps errors raised here; `GradINN.fit` re-raises this one.
            self.host_error = error
            raise
        return self.to_unit_box(checked)

    def draw(self, seed: tf.Tensor) -> tf.Tensor:
        """Float32 points in [-1, 1]^d: `n` of them, or the pool size if smaller."""
        n, d = self.n, len(self.bounds)
        if self.mode == "uniform":
            return 2.0 * stateless_uniform((n, d), seed) - 1.0
        if self.mode == "shift":
            shift = stateless_uniform((1, d), seed)
            return 2.0 * tf.math.floormod(tf.constant(self.unit_base) + shift, 1.0) - 1.0
        if self.mode == "subset":
            return tf.gather(tf.constant(self.pool), self.subset(seed))
        points = tf.numpy_function(self._host_points, [seed], tf.float32, stateful=False)
        points.set_shape((n, d))
        return points

    def subset(self, seed: tf.Tensor) -> tf.Tensor:
        """The indices into `pool` of the `"subset"` mode's draw with `seed`."""
        keys = stateless_uniform((len(self.pool),), seed)
        return tf.math.top_k(keys, k=min(self.n, len(self.pool))).indices
