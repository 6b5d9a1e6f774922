"""Shared test set-up: quiet TensorFlow logs, a seeded Keras per test, the one
time limit for child processes, and the one comparison up to rounding.

Tests import `SUBPROCESS_TIMEOUT` and `assert_equal_to_rounding` from here
(`from conftest import ...`; `tests/` is on `sys.path` in pytest's default
`prepend` import mode, as `import multiworker_worker` already relies on).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest


def _timeout_scale() -> float:
    """KERAS_GRADINN_TEST_TIMEOUT_SCALE (default 1): multiplies every child-process time limit."""
    text = os.environ.get("KERAS_GRADINN_TEST_TIMEOUT_SCALE", "1")
    try:
        scale = float(text)
    except ValueError:
        scale = float("nan")
    if not scale > 0 or scale == float("inf"):
        raise pytest.UsageError(
            f"KERAS_GRADINN_TEST_TIMEOUT_SCALE must be a positive number, not {text!r}")
    return scale


# Seconds any one child process (a CLI run, an export check, a worker) may
# take before the test fails. The limit only exists to turn a hang into a
# failure, so it is far above the 5-60 s the children take on an idle
# 2-core machine: a loaded machine (the suite beside three CPU-heavy
# processes runs several times slower) must not fail. Scale it with
# KERAS_GRADINN_TEST_TIMEOUT_SCALE (e.g. 4 on a slow shared runner, 0.2 to
# find hangs quickly on a fast idle one).
SUBPROCESS_TIMEOUT: float = 900.0 * _timeout_scale()


def assert_equal_to_rounding(actual, expected, *, ulps: float = 16, dtype=np.float32,
                             scale: float | None = None) -> None:
    """`actual` equals `expected` to `ulps` rounding units of `dtype` times the largest value.

    The same arithmetic along another code path (another kernel or batch
    size, a graph against eager code, a distribution strategy) sums in
    another order, and oneDNN picks kernels and orders per CPU: each entry
    may then differ by a few eps times the size of the terms summed. So the
    tolerance follows `scale` (by default max|expected|), not the entry: an
    entry near 0 is a cancellation of larger terms.
    """
    expected = np.asarray(expected)
    if scale is None:
        scale = float(np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=0,
                               atol=ulps * float(np.finfo(dtype).eps) * scale)


@pytest.fixture(autouse=True)
def seeded_keras():
    keras.utils.set_random_seed(1234)
    yield
