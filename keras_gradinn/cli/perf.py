"""`keras-gradinn perf`: time GradINN's training step against the plain network."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]

HELP = "time GradINN's training step against the plain network"
DESCRIPTION = ("Time the GradINN training step and the plain network's over the same "
               "points, with and without XLA,\nagainst a large matrix product, and Keras' fit "
               "overhead. Prints one JSON record per measurement, then a table.\n"
               "--members, --fit-rows and --against time stacked ensembles, fit on many\nrows "
               "and the same step in JAX instead.")
EPILOG = ("examples:\n  keras-gradinn perf --out perf.jsonl\n"
          "  keras-gradinn perf --members 1,5,10,25 --against jax --out members.jsonl\n"
          "  keras-gradinn perf --fit-rows 1e3,1e4,1e5,1e6 --out fit.jsonl")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn perf` (`bench.perf.add_arguments`) to `parser`."""
    from keras_gradinn.bench import perf

    perf.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn perf` (`bench.perf.command`)."""
    from keras_gradinn.bench import perf

    return perf.command(args)
