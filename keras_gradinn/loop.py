"""GradINN's side of Keras' training loop: `fit`, `evaluate` and their speed-ups.

`Loop` is a `keras.Model` mixin, as Keras' own trainer is for `Model`.
Its `fit` checks the data, sets the output standardisation, arms the
non-finite guard and prepares the collocation draws before Keras' loop
runs. GradINN typically trains a few hundred rows for thousands of epochs,
so Keras' per-epoch costs (a new iterator over arrays, an eager operation
per metric variable, one compiled call per step) dominate; `Loop` removes
them without changing the batches, the steps or their results.
"""

from __future__ import annotations

import inspect
import math

import keras
import numpy as np
import tensorflow as tf

from keras_gradinn import keras_private
from keras_gradinn.domain import is_array_like

__all__ = ["AUTO_STEPS_PER_EXECUTION", "Loop", "repeat_arrays"]

#: The most training steps that `steps_per_execution="auto"` runs per call.
AUTO_STEPS_PER_EXECUTION = 64


def repeat_arrays(arguments: dict) -> None:
    """Replaces in-memory training arrays in `fit`'s arguments by one repeated `tf.data` pipeline.

    Keras builds a new iterator over arrays at every epoch, which costs
    several milliseconds: for a few hundred rows over thousands of epochs
    that is most of the training time. One pipeline repeated across
    epochs, with `steps_per_epoch` set, yields the same batches (the same
    size and order, a fresh shuffle per epoch when `shuffle=True`) and a
    `validation_split` takes the same tail of the rows.
    """
    x, y, weights = arguments["x"], arguments["y"], arguments.get("sample_weight")
    if weights is not None:
        weights = np.asarray(weights)
        if len(weights) != len(x):
            raise ValueError(
                f"sample_weight must have one value per row ({len(x)}); got {len(weights)}"
            )
    split = float(arguments.get("validation_split") or 0.0)
    batch = int(arguments.get("batch_size") or 32)
    if split and arguments.get("validation_data") is None:
        at = int(math.floor(len(x) * (1.0 - split)))
        # Targets may be a pair of values and observed derivatives.
        data = (x, y) if weights is None else (x, y, weights)
        arguments["validation_data"] = tf.nest.map_structure(lambda v: v[at:], data)
        x, y, *rest = tf.nest.map_structure(lambda v: v[:at], data)
        weights = rest[0] if rest else None
    if len(x) == 0:
        raise ValueError("fit needs at least one training row; got none")
    rows = tf.nest.map_structure(tf.constant, (x, y) if weights is None else (x, y, weights))
    # One permutation of the row indices per epoch, cut into batches that are
    # gathered at once: tf.data's `shuffle` and `batch` move indices one at a
    # time, which on 1e5 rows or more costs more than the training step.
    order = tf.data.Dataset.from_tensors(tf.range(len(x), dtype=tf.int64)).repeat()
    if arguments.get("shuffle", True):
        order = order.map(tf.random.shuffle)
    starts = tf.range(0, len(x), batch, dtype=tf.int64)
    dataset = order.flat_map(
        lambda o: tf.data.Dataset.from_tensor_slices(starts).map(lambda s: o[s : s + batch])
    ).map(lambda i: tf.nest.map_structure(lambda v: tf.gather(v, i), rows))
    arguments.update(
        x=dataset,
        y=None,
        sample_weight=None,
        batch_size=None,
        shuffle=False,
        validation_split=0.0,
        steps_per_epoch=math.ceil(len(x) / batch),
        validation_batch_size=arguments.get("validation_batch_size") or batch,
    )


class Loop:
    """A `keras.Model` mixin: GradINN's `fit` and `evaluate`, and the loop's speed-ups.

    The speed-ups are `steps_per_execution="auto"`, compiled metric reads
    and one input pipeline across epochs. The model has the checks of
    `Domain`, the standardisation of `Standardise` and the guard of
    `StepGuard`.
    """

    def fit(self, x=None, y=None, *args, dy_dx=None, **kwargs):
        """`keras.Model.fit`, after checking the data and adapting the outputs.

        Array inputs must have d columns, lie inside the bounds and be
        finite. The first call on an untrained model sets the output
        standardisation from the training targets (arrays, excluding a
        `validation_split` tail, or a finite `tf.data.Dataset` read once);
        for other inputs (generators, `PyDataset`) call `adapt(y)` first.

        `dy_dx`: observed derivatives of array targets, (n, m, d) in user
        units (or (n, d) for one output), NaN where not observed; they add
        the term weighted by `derivative_weight`. A dataset carries them in
        its targets instead, `(x, (y, dy_dx))`; so may `y` itself.
        """
        bound = inspect.signature(keras.Model.fit).bind(self, x, y, *args, **kwargs)
        arguments = bound.arguments
        x, y = self._check_fit_data(arguments, dy_dx)
        if isinstance(x, tf.data.Dataset):
            # Keras would warn on every call that `shuffle` does not apply to datasets.
            arguments.setdefault("shuffle", False)
        if not self.adapted:
            self._adapt_before_fit(x, y, float(arguments.get("validation_split") or 0.0))
        self._prepare_loop(arguments, arrays=is_array_like(x))
        self._arm(arguments)
        self._tabulate_prior()
        self._collocation.host_error = None
        try:
            return super().fit(*bound.args[1:], **bound.kwargs)
        except tf.errors.OpError:
            if self._collocation.host_error is not None:
                raise self._collocation.host_error from None
            raise

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`keras.Model.evaluate`, after checking array data (out-of-bounds rows warn).

        Array targets may be a pair `(y, dy_dx)` with observed derivatives.
        """
        if is_array_like(x):
            if y is None:
                raise ValueError("evaluate needs targets y for array inputs")
            x, _, y = self._check_targets(x, y, "", strict=False)
        return super().evaluate(x, y, *args, **kwargs)

    def compile(self, optimizer="adam", loss="mse", *, steps_per_execution="auto", **kwargs):
        """Like `keras.Model.compile`, with the data loss defaulting to "mse".

        The loss applies to standardised targets; `metrics` see user units.
        `steps_per_execution="auto"` (the default) runs one epoch per call
        of the compiled step function when an epoch has at most
        `AUTO_STEPS_PER_EXECUTION` steps, and otherwise the largest number
        of steps up to that which divides the epoch (batch callbacks then run
        once per such call); one step per call under a multi-replica
        strategy. An integer is used as given.
        """
        if kwargs.get("jit_compile") is True and self._collocation.mode == "host":
            raise ValueError(
                "jit_compile=True cannot be used with a host-side collocation sampler "
                "(a callable sampler or a contains predicate)"
            )
        self._auto_steps = steps_per_execution == "auto"
        super().compile(
            optimizer=optimizer,
            loss=loss,
            steps_per_execution=1 if self._auto_steps else steps_per_execution,
            **kwargs,
        )
        if self._auto_steps:
            keras_private.keep_in_compile_config(self, "steps_per_execution", "auto")

    def compile_from_config(self, config):
        # Keras skips models that override `compile`; ours only changes a
        # default, so the stored configuration applies as is.
        self.compile(**keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.trainable_variables)

    def _prepare_loop(self, arguments: dict, *, arrays: bool) -> None:
        """Adjusts `fit`'s arguments: one pipeline for `arrays`, then the steps per call."""
        simple = arguments.get("class_weight") is None and arguments.get("steps_per_epoch") is None
        if arrays and simple and isinstance(arguments.get("shuffle", True), bool):
            repeat_arrays(arguments)
        steps = arguments.get("steps_per_epoch")
        if steps is None and isinstance(arguments["x"], tf.data.Dataset):
            cardinality = int(arguments["x"].cardinality())
            steps = cardinality if cardinality > 0 else None
        self._set_steps_per_execution(steps)

    def _set_steps_per_execution(self, steps_per_epoch: int | None) -> None:
        """Chooses the steps per call for `steps_per_execution="auto"`."""
        if not getattr(self, "_auto_steps", False):
            return
        steps = 1
        # Keras 3.15's multi-step loop fails under MirroredStrategy ("You must
        # feed a value for placeholder tensor"), even for a plain Sequential.
        if steps_per_epoch and self.distribute_strategy.num_replicas_in_sync == 1:
            steps = max(
                k for k in range(1, min(steps_per_epoch, AUTO_STEPS_PER_EXECUTION) + 1)
                if steps_per_epoch % k == 0
            )
        if steps != self.steps_per_execution:
            self.steps_per_execution = steps
            self.train_function = None  # rebuilt by fit with the new count

    def reset_metrics(self) -> None:
        """Resets every metric, in one compiled call on a single replica.

        Keras resets each metric variable with its own eager operation at
        every epoch, which is a measurable part of an epoch of a few steps.
        """
        if self._compiled_metrics_ok():
            self._metrics_function("reset")()
        else:
            super().reset_metrics()

    def get_metrics_result(self) -> dict:
        """The metrics' current values, read in one compiled call (see `reset_metrics`)."""
        if self._compiled_metrics_ok():
            return self._metrics_function("result")()
        return super().get_metrics_result()

    def _compiled_metrics_ok(self) -> bool:
        return not self.run_eagerly and self.distribute_strategy.num_replicas_in_sync == 1

    def _metrics_function(self, kind: str):
        # Traced again whenever the metrics or their variables change: compiled
        # metrics only get their variables in the first training step.
        metrics = self.metrics
        key = (kind, tuple(id(v) for m in metrics for v in [m, *m.variables]))
        cached = self.__dict__.get("_metrics_functions", {})
        if key not in cached:
            if kind == "reset":
                def function():
                    for metric in metrics:
                        metric.reset_state()
            else:
                def function():
                    values = {}
                    for metric in metrics:
                        result = metric.result()
                        values.update(result if isinstance(result, dict) else {metric.name: result})
                    return values
            cached = {k: v for k, v in cached.items() if k[0] != kind}
            cached[key] = tf.function(function)
            # Set past Keras' attribute tracking, which would wrap the dict.
            object.__setattr__(self, "_metrics_functions", cached)
        return cached[key]
