"""The domain a GradINN lives in: its bounds box and the collocation points drawn there.

`Domain` is a `keras.Model` mixin: it checks the arrays given to `fit`,
`evaluate` and `predict` (points inside the bounds, one target per row and
output) and draws each training step's collocation points as a pure
function of `(seed, step, replica)`.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_gradinn.collocation import Collocation, Sampler
from keras_gradinn.derivatives import check_derivatives, split_target
from keras_gradinn.guard import unsaved_variable
from keras_gradinn.validation import check_rows, finite_array, outside

__all__ = ["Domain", "is_array_like"]


def is_array_like(value: Any) -> bool:
    """Whether `value` is in-memory array data, which the checks read, rather than a stream."""
    return value is not None and not isinstance(value, (tf.data.Dataset, dict, str)) and (
        isinstance(value, (np.ndarray, list, tuple, numbers.Number))
        or hasattr(value, "__array__")
    )


class Domain:
    """A `keras.Model` mixin: bounds checks, the collocation sampler and its draws.

    The model has `bounds`, `input_dim`, `output_dim`, `n_collocation`,
    `seed`, `prior`, `gradient_weight` and the `collocation_step` counter.
    """

    def outside_bounds(self, x: Any) -> np.ndarray:
        """A boolean mask of the rows of `x` (shape (n, d)) outside the bounds."""
        return self._outside(np.asarray(x, dtype=np.float64).reshape(-1, self.input_dim))

    def _outside(self, x: np.ndarray) -> np.ndarray:
        return outside(self.bounds, x)

    def _check_points(self, x: Any, label: str, *, strict: bool) -> np.ndarray:
        """`x` as finite rows of d values; rows outside the bounds raise if `strict`, else warn."""
        array = check_rows(finite_array(x, label), label, self.input_dim,
                           purpose="to match the bounds")
        beyond = self._outside(array)
        if beyond.any():
            rows = np.flatnonzero(beyond)
            message = (
                f"{label} has {rows.size} row(s) outside the bounds "
                f"{self.bounds.tolist()}, first row {int(rows[0])}: "
                f"{array[rows[0]].tolist()}"
            )
            if strict:
                raise ValueError(f"{message}. Widen the bounds to cover the data")
            warnings.warn(f"{message}; the model extrapolates there", stacklevel=3)
        return array

    def _check_xy(
        self, x: Any, y: Any, label: str, *, strict: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Checked inputs (see `_check_points`) and targets of one value per row and output."""
        x = self._check_points(x, f"{label}x", strict=strict)
        if y is None:
            return x, None
        n, m = len(x), self.output_dim
        return x, check_rows(finite_array(y, f"{label}y"), f"{label}y", m, rows=n,
                             purpose=f"for {n} input rows and {m} output(s)")

    def _check_fit_data(self, arguments: dict, dy_dx: Any = None) -> tuple[Any, Any]:
        """Checks the array data among `fit`'s arguments, in place; returns `x` and `y`.

        Training arrays must lie inside the bounds; validation rows outside
        them only warn. Observed derivatives, `dy_dx` or the second part of
        a pair `(y, dy_dx)` of targets, become the pair of checked arrays
        (see `keras_gradinn.derivatives`); the `y` returned is the values.
        """
        x, y = arguments.get("x"), arguments.get("y")
        if x is None:
            raise ValueError("fit needs training inputs x; got None")
        if is_array_like(x):
            x, y, arguments["y"] = self._check_targets(x, y, "", dy_dx)
            arguments["x"] = x
        elif dy_dx is not None:
            raise ValueError(f"dy_dx goes with array inputs; a {type(x).__name__} carries "
                             f"observed derivatives in its targets, as (x, (y, dy_dx))")
        validation = arguments.get("validation_data")
        if isinstance(validation, (tuple, list)):
            if len(validation) not in (2, 3):
                raise ValueError(
                    f"validation_data must be (x, y) or (x, y, sample_weight); got a "
                    f"{type(validation).__name__} of {len(validation)}"
                )
            if is_array_like(validation[0]):
                x_valid, _, target = self._check_targets(validation[0], validation[1],
                                                         "validation_data ", strict=False)
                arguments["validation_data"] = (x_valid, target, *validation[2:])
        return x, y

    def _check_targets(self, x: Any, y: Any, label: str, dy_dx: Any = None, *,
                       strict: bool = True) -> tuple[np.ndarray, np.ndarray, Any]:
        """Checked inputs, target values and the whole target: the values or `(values, dy_dx)`.

        Observed derivatives come as `dy_dx` or as the second part of a pair
        `y = (values, dy_dx)` (see `keras_gradinn.derivatives`).
        """
        values, derivatives = split_target(y) if dy_dx is None else (y, dy_dx)
        x, values = self._check_xy(x, values, label, strict=strict)
        if values is None:
            raise ValueError(f"{label or 'fit '}needs targets y for array inputs")
        if derivatives is None:
            return x, values, values
        derivatives = check_derivatives(derivatives, len(x), self.output_dim, self.input_dim,
                                        f"{label}dy_dx")
        return x, values, (values, derivatives)

    def _as_rows(self, x) -> tf.Tensor:
        """`x` as a tensor of rows of d values in the compute dtype."""
        x = tf.cast(tf.convert_to_tensor(x), self.compute_dtype)
        return check_rows(x, "x", self.input_dim, purpose="to match the bounds")

    def set_sampler(
        self,
        sampler: str | np.ndarray | dict | Sampler | None,
        *,
        contains: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """Sets how collocation points are drawn.

        Args:
            sampler: `"uniform"`, `"sobol"`, `"halton"` or `"lhs"` (points drawn
                inside the graph; the quasi-random sets get a fresh random shift
                modulo the box at each step), a fixed array of points of shape
                (P, d) in user units (a random subset of `n_collocation` of them
                each step), a dict `{"method": "sobol", "size": P, "seed": s}` for
                such a pool drawn once by `sampling.sample` (inside `contains`,
                if given; saved as the dict), or a callable
                `sampler(n, rng) -> (n, d) array` in user units, called on the
                host at every step.
            contains: optional `contains(x) -> bool mask` for domains that are
                not boxes; points are then drawn on the host by rejection.

        Python callables (a callable `sampler`, or `contains`) are not saved
        with the model: after loading such a model, call `set_sampler` again
        before training it further. `sampler=None` leaves the model without
        a sampler: it predicts, and `evaluate` reports `gradient_loss` as NaN
        (leaving it out of `loss`), but it cannot train with the gradient term.
        """
        collocation = Collocation(sampler, contains=contains, bounds=self.bounds,
                                  n=self.n_collocation, seed=self.seed)
        if collocation.mode == "host" and getattr(self, "jit_compile", False) is True:
            raise ValueError(
                "a host-side collocation sampler (a callable sampler or a contains "
                "predicate) cannot run under jit_compile=True; compile without XLA"
            )
        self._collocation = collocation
        self._table = None
        self.supports_jit = collocation.mode != "host"
        self.train_function = self.test_function = None

    @property
    def contains(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """The predicate collocation points are drawn inside, or None for the whole box.

        A loaded model has None: `.keras` files do not store Python callables.
        """
        return self._collocation.contains

    def _saveable_sampler(self) -> Any:
        """The sampler as `get_config` saves it; warns once if it is a Python callable."""
        if self._collocation.mode == "host" and not getattr(self, "_warned_unsaved", False):
            self._warned_unsaved = True
            warnings.warn(
                "the collocation sampler or contains predicate is a Python callable "
                "and is not saved; call set_sampler(...) after loading to train further",
                stacklevel=3,
            )
        return self._collocation.saveable

    def _collocation_seed(self, step: Any = None) -> tf.Tensor:
        """The seed tensor of training step `step`'s draw: `(seed, step * replicas + replica)`."""
        step = self.collocation_step if step is None else step
        context = tf.distribute.get_replica_context()
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        replica = 0 if context is None else context.replica_id_in_sync_group
        draw = tf.cast(step, "int64") * replicas + tf.cast(replica, "int64")
        return tf.stack([tf.constant(self.seed, "int64"), draw])

    def collocation_points(self, step: Any = None) -> tf.Tensor:
        """The normalised collocation points of training step `step`.

        Draws are a pure function of `(seed, step, replica)`, so they are
        reproducible and differ between replicas. Returns a (k, d) tensor in
        [-1, 1]^d, with `k = n_collocation` (or the pool size, if smaller).
        """
        if self._collocation.mode is None:
            raise ValueError(
                "this model has no collocation sampler (it was built with sampler=None, "
                "or loaded from a file that could not store a Python callable sampler or "
                "contains predicate); call model.set_sampler(...) before training it "
                "with gradient_weight > 0"
            )
        return tf.cast(self._collocation.draw(self._collocation_seed(step)), self.compute_dtype)

    def _tabulate_prior(self) -> None:
        """Evaluates a frozen prior once on a fixed pool of collocation points.

        A prior without trainable weights gives the same field at a point at
        every step, and with a fixed pool (`sampler` an array) every step's
        points come from the pool: the step then gathers the field from this
        table instead of evaluating the prior, which for a `KernelField` on
        many data points costs more than the network. The table is rebuilt
        at each `fit`, so weights set in between are used.
        """
        if (self._collocation.mode != "subset" or self.prior.trainable_weights
                or self.gradient_weight == 0):
            self._table = None
            return
        pool = self._collocation.pool
        field = np.concatenate([keras.ops.convert_to_numpy(self.prior(pool[i:i + 4096]))
                                for i in range(0, len(pool), 4096)])
        if self._table is None or tuple(self._table.shape) != field.shape:
            self._table = unsaved_variable(field.astype("float32"))
            self.train_function = self.test_function = None
        else:
            self._table.assign(field.astype("float32"))
