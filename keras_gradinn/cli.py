"""The `keras-gradinn` command line."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]

EXAMPLES = """examples:
  keras-gradinn demo                 # GradINN vs a plain network, about a minute
  keras-gradinn demo --steps 500     # a quick check
  keras-gradinn demo --noise 0.05    # noisy measurements
"""


def _parser() -> argparse.ArgumentParser:
    from keras_gradinn import __version__

    parser = argparse.ArgumentParser(
        prog="keras-gradinn",
        description="Gradient-Informed Neural Networks for Keras.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="train GradINN and a plain network on the Friedman function",
        description="Train GradINN and the same network without the gradient term on "
        "the Friedman function and print both test RMSEs.",
        epilog="example:\n  keras-gradinn demo --n 200 --steps 10000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--n", type=int, default=200, help="training points (default 200)")
    demo.add_argument("--steps", type=int, default=10_000, help="full-batch steps (default 10000)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and training (default 0)")
    demo.add_argument("--noise", type=float, default=0.0,
                      help="training noise, as a fraction of the targets' std (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.n < 2 or args.steps < 1 or not 0 <= args.noise < 10:
        print("keras-gradinn: error: need --n >= 2, --steps >= 1 and 0 <= --noise < 10",
              file=sys.stderr)
        return 2
    from keras_gradinn import demo

    demo.run(n=args.n, steps=args.steps, seed=args.seed, noise=args.noise)
    return 0


if __name__ == "__main__":
    sys.exit(main())
