"""What the subcommands share: their error type and how they load a saved model."""

from __future__ import annotations

import os
import pathlib

from keras_gradinn.errors import CommandError

__all__ = ["CommandError", "derivative_column", "load_model"]


def load_model(path: str | os.PathLike):
    """Loads a `.keras` file and checks that it holds a `GradINN`."""
    import keras

    from keras_gradinn.model import GradINN

    path = pathlib.Path(path)
    if not path.is_file():
        raise CommandError(f"{path}: no such model file")
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001 - any failure means "not a usable model file"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CommandError(f"{path}: not a readable .keras model file ({first})") from None
    if not isinstance(model, GradINN):
        raise CommandError(
            f"{path}: holds a Keras {type(model).__name__}, not a keras_gradinn GradINN model"
        )
    return model


def derivative_column(target: str, input_name: str) -> str:
    """The column name of d target / d input: `d<target>/d<input>`, as `predict --gradient`
    writes it and `fit --gradients` reads it."""
    return f"d{target}/d{input_name}"
