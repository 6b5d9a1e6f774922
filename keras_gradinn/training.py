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

import pathlib
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_gradinn.model import GradINN

__all__ = ["FULL_BATCH_ROWS", "STEPS", "LEARNING_RATE", "epoch_steps", "train",
           "train_full_batch"]

#: Steps of the recipe (the benchmarks' budget).
STEPS = 20_000
#: Initial learning rate of the cosine-decayed Adam.
LEARNING_RATE = 3e-3
#: Up to this many rows, every step sees all of them.
FULL_BATCH_ROWS = 1024


def epoch_steps(steps: int, most: int = 500) -> int:
    """The largest divisor of `steps` up to `most`: the steps per epoch of a run cut into epochs."""
    return max(k for k in range(1, min(steps, most) + 1) if steps % k == 0)


def train(
    model: GradINN,
    x: np.ndarray,
    y: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    dy_dx: np.ndarray | None = None,
    steps: int = STEPS,
    learning_rate: float = LEARNING_RATE,
    batch_size: int = FULL_BATCH_ROWS,
    seed: int = 0,
    epochs: int = 1,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    resume: pathlib.Path | None = None,
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
        dy_dx: optional observed derivatives (n, m, d), NaN where not
            observed (see `keras_gradinn.derivatives`).
        steps: optimizer steps.
        learning_rate: initial learning rate.
        batch_size: rows per step above which batches are drawn.
        seed: seed of the batch order.
        epochs: Keras epochs to cut the steps into (a divisor of `steps`;
            callbacks see an epoch end after each), e.g. for checkpoints.
        callbacks: Keras callbacks for `fit`.
        resume: a checkpoint written by `checkpoints.Checkpointer` during an
            earlier run of the same call, to continue from (with full
            batches the continuation is exact).

    Returns:
        The model; its `history` attribute holds the losses per epoch (of
        this call only).
    """
    if steps % epochs:
        raise ValueError(f"epochs must divide steps; got {epochs} epochs for {steps} steps")
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    if not model.adapted:
        weights = None if sample_weight is None else np.asarray(sample_weight, float)
        # One standardisation for all members of a stack: each row's mean weight.
        model.adapt(y, weights if weights is None or weights.ndim == 1 else weights.mean(axis=1))
    target = y.astype("float32")
    if dy_dx is not None:
        target = (target, np.asarray(dy_dx, "float32").reshape(len(y), model.output_dim,
                                                                 model.input_dim))
    rows = [x.astype("float32"), target]
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
    initial_epoch = 0
    if resume is not None:
        from keras_gradinn import checkpoints

        initial_epoch, _ = checkpoints.restore(model, resume, None)
    model.fit(data, epochs=epochs, steps_per_epoch=steps // epochs, initial_epoch=initial_epoch,
              callbacks=list(callbacks), verbose=0)
    return model


def train_full_batch(model: GradINN, x: np.ndarray, y: np.ndarray, *, steps: int,
                     learning_rate: float) -> GradINN:
    """`train` with every row in every step, whatever their number (the benchmarks' recipe)."""
    return train(model, x, y, steps=steps, learning_rate=learning_rate,
                 batch_size=max(len(x), 1))
