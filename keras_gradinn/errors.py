"""The exceptions that keras_gradinn raises for its own reasons.

Wrong arguments raise the built-in `ValueError`/`TypeError`; these classes
name failures a caller may want to catch on their own. Each derives from the
built-in error it refines, so `except ValueError` still catches it.
"""

from __future__ import annotations

__all__ = ["CommandError", "DataError", "ExportVerificationError", "NonFiniteLossError"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss or update; undone unless under a strategy."""


class ExportVerificationError(ValueError):
    """An exported artifact disagrees with the Keras model it came from."""


class CommandError(ValueError):
    """A command cannot run as asked; the message says why in one line."""


class DataError(ValueError):
    """A data file cannot be used; the message names the file and the problem."""
