"""`keras-gradinn demo`: GradINN against a plain network on the Friedman function."""

from __future__ import annotations

import argparse

from keras_gradinn.cli.common import CommandError

__all__ = ["add_arguments", "run"]

HELP = "GradINN against a plain network on the Friedman function"
DESCRIPTION = ("Train GradINN and the same network without the gradient term on the "
               "Friedman function, print both test RMSEs, and write a plot and an ONNX file to "
               "--out.")
EPILOG = "example:\n  keras-gradinn demo --noise 0.05 --out demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn demo` to `parser`."""
    parser.add_argument("--n", type=int, default=200, help="training points (default 200)")
    parser.add_argument("--steps", type=int, default=10_000,
                        help="full-batch steps (default 10000)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of data and training (default 0)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="training noise, as a fraction of the targets' std (default 0)")
    parser.add_argument("--out", default="keras-gradinn-demo",
                        help="directory for the plot and ONNX file (default keras-gradinn-demo)")


def run(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn demo` (`keras_gradinn.demo.run`)."""
    if args.n < 2 or args.steps < 1 or not 0 <= args.noise < 10:
        raise CommandError("need --n >= 2, --steps >= 1 and 0 <= --noise < 10")
    from keras_gradinn import demo

    demo.run(n=args.n, steps=args.steps, seed=args.seed, noise=args.noise, out=args.out)
    return 0
