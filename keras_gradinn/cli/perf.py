"""`keras-gradinn perf`: time GradINN's training step against the plain network."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]

HELP = "time GradINN's training step against the plain network"
DESCRIPTION = ("Time the GradINN training step and the plain network's over the same "
               "points, with and without XLA,\nagainst a large matrix product, and Keras' fit "
               "overhead. Prints one JSON record per measurement, then a table.")
EPILOG = "example:\n  keras-gradinn perf --out perf.jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn perf` (`bench.perf.add_arguments`) to `parser`."""
    from keras_gradinn.bench import perf

    perf.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn perf` (`bench.perf.command`)."""
    from keras_gradinn.bench import perf

    return perf.command(args)
