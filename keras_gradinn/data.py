"""Re-exports of `keras_gradinn.tables` for `datasets` and `estimator`, which import them here."""

from keras_gradinn.tables import AUTO_BOUNDS_MARGIN, DataError, auto_bounds, check_names

__all__ = ["AUTO_BOUNDS_MARGIN", "DataError", "auto_bounds", "check_names"]
