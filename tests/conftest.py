"""Shared test set-up: quiet TensorFlow logs and a seeded Keras per test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def seeded_keras():
    keras.utils.set_random_seed(1234)
    yield
