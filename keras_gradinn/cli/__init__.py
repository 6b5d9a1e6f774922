"""The `keras-gradinn` command line (also `python -m keras_gradinn`).

Each subcommand is a module of this package with the same name, exporting
`HELP` (its line in the command list), `DESCRIPTION` and `EPILOG` (its
`--help`), `add_arguments(parser)` and `run(args) -> int`; `COMMANDS` lists
them in the order `--help` shows them.
`keras-gradinn bench scale` and `keras-gradinn bench tune` are benchmark
tools with options of their own (`bench.TOOLS`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

#: The subcommands, each a module `keras_gradinn.cli.<name>`.
COMMANDS = ("fit", "predict", "info", "sensitivity", "export", "demo", "perf", "bench")

EXAMPLES = """examples:
  keras-gradinn demo
  keras-gradinn fit examples/data/beam.csv --inputs load,span,thickness \
      --targets deflection --out runs/beam
  keras-gradinn predict runs/beam/model.keras new_points.csv --gradient --out predictions.csv
  keras-gradinn info runs/beam/model.keras
  keras-gradinn sensitivity runs/beam/model.keras --out runs/beam/sensitivity
  keras-gradinn export runs/beam/model.keras --onnx beam.onnx --with-gradient
  keras-gradinn perf --out perf.jsonl
  keras-gradinn bench friedman1 --quick --out bench-quick
"""


def _command(name: str):
    return importlib.import_module(f"keras_gradinn.cli.{name}")


def _parser() -> argparse.ArgumentParser:
    from keras_gradinn import __version__

    parser = argparse.ArgumentParser(
        prog="keras-gradinn",
        description="Gradient-Informed Neural Networks for Keras: fit surrogates from data "
        "files, predict, inspect and export them.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        command = _command(name)
        command.add_arguments(commands.add_parser(
            name, help=command.HELP, description=command.DESCRIPTION, epilog=command.EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line and returns the exit status (0 ok, 1 failed, 2 usage)."""
    from keras_gradinn.cli import bench

    argv = sys.argv[1:] if argv is None else list(argv)
    tool = argv[1] if len(argv) >= 2 and argv[0] == "bench" and argv[1] in bench.TOOLS else None
    if tool is None:
        args = _parser().parse_args(argv)
        if args.command is None:
            _parser().print_help()
            return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if tool is not None:
            return bench.run_tool(tool, argv[2:])
        return _command(args.command).run(args)
    except KeyboardInterrupt:
        print("keras-gradinn: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as error:
        # One line for users, not a traceback (KERAS_GRADINN_DEBUG=1 shows it).
        if os.environ.get("KERAS_GRADINN_DEBUG"):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        kind = "" if isinstance(error, (ValueError, OSError)) else f"{type(error).__name__}: "
        print(f"keras-gradinn: error: {kind}{message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
