"""Host-side point samplers for a box domain, optionally cut by a predicate.

The model draws its collocation points inside the training graph; this module
is the public, host-side counterpart (NumPy and `scipy.stats.qmc`) used to draw
training designs, test sets and fixed collocation sets, and to validate domains.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import qmc

__all__ = ["METHODS", "as_bounds", "centre_and_half_width", "sample", "unit_points"]

METHODS = ("uniform", "sobol", "halton", "lhs")

Contains = Callable[[np.ndarray], np.ndarray]


def as_bounds(bounds: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Validates a domain box and returns it as a float64 array of shape (d, 2).

    Args:
        bounds: one `(low, high)` pair per input, or an array of shape (d, 2).

    Returns:
        A new float64 array `b` with `b[:, 0] < b[:, 1]`, all finite.

    Raises:
        ValueError: if the shape is not (d, 2) with d >= 1, a value is not
            finite, or some `low >= high`.
    """
    try:
        array = np.array(bounds, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"bounds must be numbers of shape (d, 2); got {bounds!r}"
        ) from error
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 1:
        raise ValueError(
            f"bounds must have shape (d, 2) with one (low, high) pair per "
            f"input; got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"bounds must be finite; got {array.tolist()}")
    bad = np.flatnonzero(array[:, 0] >= array[:, 1])
    if bad.size:
        raise ValueError(
            f"bounds need low < high for every input; input {int(bad[0])} has "
            f"(low, high) = {tuple(array[bad[0]].tolist())}"
        )
    return array


def centre_and_half_width(bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The centre and half-width of a (d, 2) box.

    `z = (x - centre) / half_width` maps the box onto [-1, 1]^d.
    """
    return bounds.mean(axis=1), (bounds[:, 1] - bounds[:, 0]) / 2


def _base2_prefix(engine: qmc.QMCEngine, n: int) -> np.ndarray:
    # Sobol points keep their balance only in blocks of 2^k; drawing the
    # enclosing block and keeping its prefix avoids scipy's warning.
    return engine.random_base2(max(0, math.ceil(math.log2(max(n, 1)))))[:n]


def unit_points(
    n: int, d: int, *, method: str = "sobol", seed: int | np.random.Generator | None = None
) -> np.ndarray:
    """Draws `n` points in the unit cube [0, 1)^d.

    Args:
        n: number of points (>= 0).
        d: dimension (>= 1).
        method: `"uniform"` (i.i.d.), `"sobol"` (scrambled Sobol),
            `"halton"` (scrambled Halton) or `"lhs"` (Latin hypercube).
        seed: an integer, a `numpy.random.Generator`, or None (fresh entropy).

    Returns:
        A float64 array of shape (n, d).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if int(n) < 0 or int(d) < 1:
        raise ValueError(f"need n >= 0 and d >= 1; got n={n}, d={d}")
    rng = np.random.default_rng(seed)
    if method == "uniform":
        return rng.random((n, d))
    if method == "sobol":
        return _base2_prefix(qmc.Sobol(d, scramble=True, rng=rng), n)
    if method == "halton":
        return qmc.Halton(d, scramble=True, rng=rng).random(n)
    return qmc.LatinHypercube(d, rng=rng).random(n)


def _check_mask(mask: np.ndarray, n: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != (n,):
        raise ValueError(
            f"contains(x) must return a boolean mask of shape ({n},); got "
            f"shape {mask.shape}"
        )
    return mask.astype(bool)


def sample(
    n: int,
    bounds: Sequence[Sequence[float]] | np.ndarray,
    *,
    method: str = "sobol",
    seed: int | np.random.Generator | None = None,
    contains: Contains | None = None,
    max_candidates: int | None = None,
) -> np.ndarray:
    """Draws `n` points in the domain `bounds` (cut by `contains`, if given).

    Points are drawn in the unit cube with `unit_points` and mapped affinely
    onto the box. With `contains`, candidates are drawn in rounds and those
    outside the domain are rejected, so the accepted points keep the chosen
    method's spread over the remaining region.

    Args:
        n: number of points.
        bounds: the domain box, shape (d, 2).
        method: one of `METHODS`.
        seed: an integer, a `numpy.random.Generator`, or None.
        contains: optional predicate `contains(x) -> bool mask of shape (k,)`
            for points `x` of shape (k, d) in user units.
        max_candidates: give up after this many candidates (default
            `max(1000 * n, 100_000)`).

    Returns:
        A float64 array of shape (n, d).

    Raises:
        ValueError: on bad bounds or method, or when `contains` accepts too
            few candidates.

    Example:
        >>> x = sample(4, [(0.0, 1.0), (-1.0, 1.0)], method="sobol", seed=0)
        >>> x.shape
        (4, 2)
    """
    box = as_bounds(bounds)
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    rng = np.random.default_rng(seed)
    low, width = box[:, 0], box[:, 1] - box[:, 0]
    if contains is None:
        return low + width * unit_points(n, len(box), method=method, seed=rng)

    limit = max_candidates or max(1000 * n, 100_000)
    accepted: list[np.ndarray] = [np.empty((0, len(box)))]
    count, drawn, batch = 0, 0, max(2 * n, 64)
    while count < n:
        if drawn >= limit:
            raise ValueError(
                f"contains(x) accepted only {count} of {drawn} candidate points "
                f"in bounds {box.tolist()}; need {n}. Check the predicate and "
                f"the bounds"
            )
        candidates = low + width * unit_points(batch, len(box), method=method, seed=rng)
        inside = candidates[_check_mask(contains(candidates), batch)]
        accepted.append(inside)
        count += len(inside)
        drawn += batch
    return np.concatenate(accepted)[:n]
