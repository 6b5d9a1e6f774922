"""Full-batch training, the recipe of the demo and of the benchmarks."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_gradinn.model import GradINN

__all__ = ["train_full_batch"]


def train_full_batch(model: GradINN, x: np.ndarray, y: np.ndarray, *, steps: int,
                     learning_rate: float) -> GradINN:
    """Trains `model` on (x, y) as one batch for `steps` Adam steps; returns it.

    The recipe of the demo and of every neural method in the benchmarks:
    Adam with a cosine decay from `learning_rate` to zero over `steps`,
    output scaling adapted to `y`, and the whole training set as the batch
    of every step, which suits the small data sets of surrogate modelling.
    """
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    model.adapt(y)
    # One dataset element repeated for the budget: one epoch of `steps` steps
    # avoids Keras' per-epoch overhead over thousands of one-step epochs.
    data = tf.data.Dataset.from_tensors((x.astype("float32"), y.astype("float32"))).repeat()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return model
