"""The training recipe of the estimator, the command line, the demo and the benchmarks.

A fixed step budget rather than epochs and early stopping: Adam with a
cosine decay from the learning rate to zero over `steps`, the whole training
set as the batch of every step up to `FULL_BATCH_ROWS` rows, and shuffled
batches of that many rows above. For the small data sets of surrogate
modelling (tens to thousands of rows) a network of the default size then
interpolates or fits to the noise level long before the end, and the
decayed steps settle it; early stopping on a held-out fifth of a few dozen
rows stops on noise.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_gradinn.model import GradINN

__all__ = ["FULL_BATCH_ROWS", "STEPS", "LEARNING_RATE", "train", "train_full_batch"]

#: Steps of the recipe (the benchmarks' budget).
STEPS = 20_000
#: Initial learning rate of the cosine-decayed Adam.
LEARNING_RATE = 3e-3
#: Up to this many rows, every step sees all of them.
FULL_BATCH_ROWS = 1024


def train(
    model: GradINN,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    steps: int = STEPS,
    learning_rate: float = LEARNING_RATE,
    batch_size: int = FULL_BATCH_ROWS,
    seed: int = 0,
) -> GradINN:
    """Trains `model` on (x, y) for `steps` Adam steps with a cosine decay; returns it.

    Unless `model.adapted`, the output standardisation is adapted to `y`,
    weighted by `sample_weight` (for a stack, by each row's mean weight over
    its members). With at most `batch_size`
    rows, each step takes all of them; with more, shuffled batches of
    `batch_size` rows (reshuffled each pass, with `seed`).

    Args:
        model: the model to train (compiled here).
        x: inputs (n, d).
        y: targets (n, m).
        sample_weight: optional row weights (n,), or (n, k) for a stacked
            model's members.
        steps: optimizer steps.
        learning_rate: initial learning rate.
        batch_size: rows per step above which batches are drawn.
        seed: seed of the batch order.
    """
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    if not model.adapted:
        weights = None if sample_weight is None else np.asarray(sample_weight, float)
        # One standardisation for all members of a stack: each row's mean weight.
        model.adapt(y, weights if weights is None or weights.ndim == 1 else weights.mean(axis=1))
    rows = [x.astype("float32"), y.astype("float32")]
    if sample_weight is not None:
        rows.append(np.asarray(sample_weight, "float32"))
    if len(x) <= batch_size:
        # One dataset element repeated for the budget: one epoch of `steps`
        # steps avoids Keras' per-epoch overhead over thousands of epochs.
        data = tf.data.Dataset.from_tensors(tuple(rows)).repeat()
    else:
        data = (tf.data.Dataset.from_tensor_slices(tuple(rows))
                .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
                .repeat().batch(batch_size, drop_remainder=True))
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return model


def train_full_batch(model: GradINN, x: np.ndarray, y: np.ndarray, *, steps: int,
                     learning_rate: float) -> GradINN:
    """`train` with every row in every step, whatever their number (the benchmarks' recipe)."""
    return train(model, x, y, steps=steps, learning_rate=learning_rate,
                 batch_size=max(len(x), 1))
