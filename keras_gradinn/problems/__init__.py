"""Benchmark problems with exact solutions and exact input Jacobians.

Each problem is a `Problem`: a domain, a float64 `solution` and its Jacobian
`gradient`, the training sizes and test-set size of the benchmark protocol
and, for the physical problems, the governing equations as TensorFlow
residuals for a physics-informed baseline. One module per problem defines it;
`get` loads that module on first use, so importing this package does no work.

| name | inputs | outputs | domain |
| --- | --- | --- | --- |
| `friedman1` | x1..x5 | y | [0, 1]^5 |
| `friedman1_10d` | x1..x10 | y | [0, 1]^10 (x6..x10 unused) |
| `stokes_sphere` | x, y | u, v, p | [-3, 3] x [0, 3] outside r < 1 |
| `lotka_volterra` | t | prey, predator | [0, 15] |
| `burgers` | x, t | u | [-1, 1] x [0, 1] |

Example:
    >>> import numpy as np
    >>> from keras_gradinn import problems
    >>> problem = problems.get("friedman1")
    >>> x = problem.sample(4, np.random.default_rng(0))
    >>> problem.solution(x).shape, problem.gradient(x).shape
    ((4, 1), (4, 1, 5))
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from keras_gradinn import sampling

__all__ = ["TEST_SEED", "Problem", "get", "names"]

#: Seed of every problem's test set; no training run may use it.
TEST_SEED = 2**31 - 1

# Problem name -> the module defining it as the upper-case constant of that name.
_MODULES = {
    "friedman1": "friedman",
    "friedman1_10d": "friedman",
    "stokes_sphere": "stokes",
    "lotka_volterra": "lotka_volterra",
    "burgers": "burgers",
}

Points = Callable[[np.ndarray], np.ndarray]


def as_points(x: Any, d: int) -> np.ndarray:
    """`x` as a float64 array of shape (n, d), or a ValueError naming its shape."""
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != d:
        raise ValueError(f"x must have shape (n, {d}); got shape {array.shape}")
    return array


# eq=False: the generated __eq__ and __hash__ would compare the `bounds` array,
# which is ambiguous; problems are singletons compared by identity.
@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A benchmark problem: domain, exact solution and Jacobian, protocol sizes.

    Attributes:
        name: the registry name.
        bounds: the bounding box, float64 of shape (d, 2) (read-only).
        input_labels: one name per input.
        output_labels: one name per output.
        solution: maps points (n, d) to float64 values (n, m).
        gradient: maps points (n, d) to the Jacobian (n, m, d),
            `gradient(x)[k, i, j] = d y_i / d x_j` at `x[k]`.
        sizes: the protocol's training-set sizes.
        n_test: the test-set size.
        contains: the domain inside the box, `contains(x) -> bool (n,)`; None
            for the whole box.
        equations: for the physical problems, `equations(f, x)` returns the
            residuals (k, q) of the governing equations for a differentiable
            TensorFlow callable `f` (k, d) -> (k, m) at points `x` (k, d),
            zero for the exact solution; None for the Friedman problems.
        equation_contains: where collocation points for `equations` may lie;
            None for the same domain as `contains`.
    """

    name: str
    bounds: np.ndarray
    input_labels: tuple[str, ...]
    output_labels: tuple[str, ...]
    solution: Points
    gradient: Points
    sizes: tuple[int, ...]
    n_test: int
    contains: Points | None = None
    equations: Callable | None = None
    equation_contains: Points | None = None
    _cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        bounds = sampling.as_bounds(self.bounds)
        bounds.setflags(write=False)
        object.__setattr__(self, "bounds", bounds)
        if len(self.input_labels) != len(bounds):
            raise ValueError(
                f"input_labels must name the {len(bounds)} inputs of the bounds; "
                f"got {self.input_labels!r}"
            )

    @property
    def d(self) -> int:
        """The number of inputs."""
        return len(self.input_labels)

    @property
    def m(self) -> int:
        """The number of outputs."""
        return len(self.output_labels)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draws `n` points uniformly in the domain, by rejection from the box.

        Args:
            n: number of points (>= 0).
            rng: the generator to draw from (advanced in place).

        Returns:
            A float64 array of shape (n, d).
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
        return sampling.sample(n, self.bounds, method="uniform", seed=rng, contains=self.contains)

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The protocol's test set: `n_test` points drawn with `TEST_SEED`, clean targets.

        Computed once per problem; each call returns fresh copies.

        Returns:
            `(x_test, y_test)` of shapes (n_test, d) and (n_test, m).
        """
        if "test" not in self._cache:
            x = self.sample(self.n_test, np.random.default_rng(TEST_SEED))
            self._cache["test"] = (x, self.solution(x))
        x, y = self._cache["test"]
        return x.copy(), y.copy()


def names() -> list[str]:
    """The registered problem names, in the protocol's order."""
    return list(_MODULES)


def get(name: str) -> Problem:
    """The problem registered as `name`.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if not isinstance(name, str) or name not in _MODULES:
        raise ValueError(f"unknown problem {name!r}; known problems are {names()}")
    module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return getattr(module, name.upper())
