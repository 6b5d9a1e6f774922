"""Streaming data from disk: keras_gradinn.datasets, GradINN.fit on streams, the scale benchmark."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gradinn as kg


def small_model(d=3, bounds=None):
    model = kg.GradINN(kg.mlp(d, 1, width=8, depth=1, seed=0), "smooth",
                       bounds=bounds if bounds is not None else [(0.0, 1.0)] * d,
                       n_collocation=16, seed=0)
    model.compile(optimizer="adam")
    return model


# ----------------------------------------------- GradINN.adapt on any stream


def test_adapt_names_the_batch_and_row_of_a_non_finite_target():
    # Regression: the running sums turned NaN and adapt blamed an overflow.
    x = np.random.default_rng(0).random((100, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    y[57] = np.nan
    stream = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = small_model()
    with pytest.raises(ValueError, match=r"NaN or inf: batch 3, row 9 .*row 57 of the stream"):
        model.fit(stream, epochs=1, verbose=0)
    assert not model.adapted
