"""The non-finite guard: a training step applies its update only if it is finite.

`StepGuard` is a `keras.Model` mixin for GradINN's `train_step`; the
`NonFiniteGuard` callback, which `fit` adds, turns the first non-finite
step into a `NonFiniteLossError` once the compiled call returns.
"""

from __future__ import annotations

import enum

import keras
import tensorflow as tf

from keras_gradinn.errors import NonFiniteLossError

__all__ = ["NonFinite", "NonFiniteGuard", "StepGuard", "any_replica", "unsaved_variable"]


class NonFinite(enum.IntFlag):
    """Which part of a training step became NaN or infinite, as `StepGuard._guard` records it."""

    DATA_LOSS = 1
    GRADIENT_LOSS = 2
    #: The losses were finite, their gradients were not.
    UPDATE = 4


_TERMS = {
    NonFinite.DATA_LOSS: "data_loss",
    NonFinite.GRADIENT_LOSS: "gradient_loss",
    NonFinite.DATA_LOSS | NonFinite.GRADIENT_LOSS: "data_loss and gradient_loss",
    NonFinite.UPDATE: "weight update (the losses were finite, their gradients were not)",
}


def unsaved_variable(value, dtype=None) -> tf.Variable:
    """A plain TF variable: Keras neither saves nor lists it among the weights.

    Replicas hold equal copies, so the first replica's write is the value.
    """
    return tf.Variable(value, dtype=dtype, trainable=False,
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def any_replica(*flags: tf.Tensor) -> list[tf.Tensor]:
    """Each boolean flag OR-ed over all replicas (one all-reduce; as is without a strategy).

    Replicas see different rows and collocation points, so one may go
    non-finite alone; all must agree, or their guards disagree on the step.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(flags)
    counts = context.all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(tf.stack(flags), tf.float32)
    )
    return tf.unstack(counts > 0)


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops `fit` at the first non-finite step, whose update the model skipped."""

    def on_train_begin(self, logs=None):
        self.model._nonfinite_step.assign(0)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model._nonfinite_step.numpy())
        if step:
            term = _TERMS[NonFinite(int(self.model._nonfinite_code.numpy()))]
            self.model.stop_training = True
            if self.model.distribute_strategy.num_replicas_in_sync == 1:
                # The step before may be the update that diverged: its start
                # is the last point whose loss was finite (see `StepGuard._guard`).
                weights = ("the weights are restored to the last ones whose loss was finite "
                           f"(those before step {max(step - 1, 1)})")
            else:
                weights = ("under a distribution strategy the update is not undone, so the "
                           "weights may be NaN: reload them from a checkpoint")
            raise NonFiniteLossError(
                f"training stopped at step {step}: the {term} became NaN or infinite; "
                f"{weights}. Lower the learning rate or the gradient_weight, and compile "
                f"again before training further"
            )


class StepGuard:
    """A `keras.Model` mixin that applies a training step's update only if it is finite.

    The model calls `_init_guard` once with the weights to guard, `_arm`
    before each `fit`, and `_guard` in `train_step` in place of
    `optimizer.apply_gradients`; it must count its steps in
    `collocation_step`.
    """

    def _init_guard(self, variables: list) -> None:
        self._guarded = list(variables)
        self._backups = [unsaved_variable(v.numpy()) for v in self._guarded]
        self._nonfinite_step = unsaved_variable(0, tf.int64)
        self._nonfinite_code = unsaved_variable(0, tf.int64)

    def _arm(self, arguments: dict) -> None:
        """Adds the `NonFiniteGuard` callback to `fit`'s arguments and backs the weights up."""
        arguments["callbacks"] = [*(arguments.get("callbacks") or []), NonFiniteGuard()]
        self._back_up()  # weights set since the last fit (set_weights, load) are the fallback

    @staticmethod
    def _restorable() -> bool:
        # Replicated weights can only be written through the optimizer's
        # cross-replica updates, so under a strategy the guard only reports.
        return tf.distribute.get_strategy().num_replicas_in_sync == 1

    def _back_up(self) -> None:
        if self._restorable():
            for v, b in zip(self._guarded, self._backups):
                b.assign(v)

    def _guard(self, data_loss, gradient_loss, gradients, variables) -> None:
        """Applies the update only if the losses and gradients are finite.

        A step whose loss and update are finite first copies the weights it
        was evaluated at; a step whose loss or update is not finite puts that
        copy back (the last weights with a finite loss, since the previous
        update may be what diverged), leaves the optimizer state alone, and
        records the first such step and its `NonFinite` code; the
        `NonFiniteGuard` callback that `fit` adds turns that into an error,
        and later steps of the same call change nothing.
        Under a distribution strategy, replicated weights can only change
        through the optimizer's cross-replica update, so the step is applied
        and only reported.
        """
        bad_data = tf.logical_not(tf.math.is_finite(data_loss))
        bad_gradient = tf.logical_not(tf.math.is_finite(gradient_loss))
        bad_update = tf.logical_not(
            tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in gradients])
        )
        bad_data, bad_gradient, bad_update = any_replica(bad_data, bad_gradient, bad_update)
        # DATA_LOSS is 1, so its flag is the cast itself.
        code = tf.cast(bad_data, tf.int64) + NonFinite.GRADIENT_LOSS.value * tf.cast(
            bad_gradient, tf.int64
        )
        only_update = tf.logical_and(bad_update, tf.equal(code, 0))
        code = tf.where(only_update, tf.constant(NonFinite.UPDATE.value, tf.int64), code)
        bad = tf.not_equal(code, 0)

        def update():
            self._back_up()
            self.optimizer.apply_gradients(zip(gradients, variables))
            return tf.constant(True)

        def restore():
            for v, b in zip(self._guarded, self._backups):
                v.assign(b)
            return tf.constant(False)

        if self._restorable():
            # After a bad step the rest of the call (steps_per_execution > 1)
            # changes nothing: fit stops at its end.
            stopped = tf.logical_or(bad, tf.not_equal(self._nonfinite_step, 0))
            tf.cond(stopped, restore, update)
        else:
            self.optimizer.apply_gradients(zip(gradients, variables))
        first = tf.logical_and(bad, tf.equal(self._nonfinite_step, 0))
        step = tf.cast(self.collocation_step, tf.int64) + 1  # 1-based; 0 means none
        self._nonfinite_step.assign(tf.where(first, step, self._nonfinite_step))
        self._nonfinite_code.assign(tf.where(first, code, self._nonfinite_code))
