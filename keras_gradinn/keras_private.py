"""Every use of Keras' (and tf.distribute's) private API in keras_gradinn.

Keras 3.15 cannot read a multi-worker strategy's batches or reduce its
scalar logs (keras-team/keras#20585), and keeps no public way to record
`steps_per_execution="auto"` in a compiled model's configuration. The
workarounds below reach into private attributes and methods: a Keras
upgrade checks this one file, and drops whatever it no longer needs.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

__all__ = ["MultiWorkerBuild", "keep_in_compile_config", "multi_worker", "multi_worker_logs"]


def multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether `strategy` is a MultiWorkerMirroredStrategy spanning several workers."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        strategy.extended._in_multi_worker_mode()
    )


def multi_worker_logs(logs: dict) -> dict:
    """A step's logs, shaped so that Keras can average them over workers.

    Keras averages step results over workers with `strategy.reduce("MEAN",
    value, axis=0)`, which rejects scalars; a leading axis of one gives the
    same mean. Without several workers, `logs` as they are.
    """
    if multi_worker(tf.distribute.get_strategy()):
        return keras.tree.map_structure(lambda value: tf.expand_dims(value, 0), logs)
    return logs


def keep_in_compile_config(model: keras.Model, key: str, value: Any) -> None:
    """Records `key=value` in the configuration that a saved `model` compiles with again."""
    model._compile_config.config[key] = value


class MultiWorkerBuild:
    """A `keras.Model` mixin: builds from one replica's batch across several workers.

    Keras learns the batch shapes by averaging a distributed batch over
    replicas, which fails across workers ("Attempt to convert a value
    (PerReplica...)"); any one replica's batch has the same shapes.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is not None and multi_worker(strategy):
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0], next(batches)
                )
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
