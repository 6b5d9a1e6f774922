"""`keras-gradinn bench`: run the benchmark protocol and write its report.

`keras-gradinn bench scale ...` and `keras-gradinn bench tune ...` run the
benchmark tools of `TOOLS` instead, each with its own options; no problem
may take their names.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys
from collections.abc import Sequence

__all__ = ["TOOLS", "add_arguments", "run", "run_tool"]

#: `keras-gradinn bench TOOL ...`: the tool's module under `keras_gradinn.bench`.
TOOLS = {"scale": "keras_gradinn.bench.scale", "tune": "keras_gradinn.bench.tune"}

HELP = "run the benchmark protocol: GradINN against S-NN, PINN and a GP"
DESCRIPTION = ("Train every method on every (n, noise, seed) of the protocol for the given "
               "problems,\nappending one JSON record per run to OUT/runs.jsonl (runs already "
               "there are skipped),\nthen write OUT/tables.md and PNG plots.")
EPILOG = ("example:\n  keras-gradinn bench friedman1 --n 50 200 --methods gradinn snn gp "
          "--out bench\n\nbenchmark tools (each with its own --help):\n"
          "  keras-gradinn bench scale   GradINN on a stream from disk against a GP: rows/s, "
          "memory\n"
          "  keras-gradinn bench tune    score a problem's tuning candidates on spare seeds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn bench PROBLEM ...` to `parser`."""
    parser.add_argument("problems", nargs="+", metavar="PROBLEM",
                        help="problem names (see keras_gradinn.problems.names()), or 'all'")
    parser.add_argument("--n", type=int, nargs="+", help="training sizes (default: the protocol's)")
    parser.add_argument("--noise", type=float, nargs="+",
                        help="noise levels (default: 0 0.01 0.05 0.1 for friedman1, else 0 0.05)")
    parser.add_argument("--methods", nargs="+",
                        help="gradinn gradinn-auto gradinn-auto-nokernel snn pinn gp "
                        "(default: all that apply), or, trained on observed gradients too, "
                        "gradinn-grad genn gekpls (genn and gekpls need SMT: pip install "
                        "'keras-gradinn[bench]')")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds per cell (default 3; the headline cell gets at least 5)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds count from here (default 0, the report's; 1000 and up "
                        "are spare seeds for tuning)")
    parser.add_argument("--quick", action="store_true",
                        help="one seed per cell and 200 steps: a smoke test, not a result")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes (default: 2, or 1 on a one-core machine)")
    parser.add_argument("--out", default="bench", help="results folder (default ./bench)")
    parser.add_argument("--images", help="folder for the PNG plots (default OUT/img)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the report from the runs already in OUT")


def run(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn bench PROBLEM ...`: the sweep (or `--report-only`), then the report."""
    from keras_gradinn import __version__, problems
    from keras_gradinn.bench import report, runner

    names = problems.names() if args.problems == ["all"] else args.problems
    for name in names:
        problems.get(name)  # an unknown name fails before any work
    if args.jobs < 1:
        raise ValueError(f"--jobs must be >= 1; got {args.jobs}")
    runs = runner.plan(names, sizes=args.n, noises=args.noise, methods=args.methods,
                       seeds=args.seeds, quick=args.quick, first_seed=args.first_seed)
    if args.report_only:  # whatever the folder holds for these problems
        records = runner.load_runs(pathlib.Path(args.out) / "runs.jsonl")
        shown = [r for r in records if r["problem"] in names]
        header = f"Report of the {len(shown)} runs in `{args.out}/runs.jsonl`.\n"
    else:
        print(f"{len(runs)} runs planned in {args.out}", file=sys.stderr)
        records = runner.sweep(runs, args.out, quick=args.quick, jobs=args.jobs)
        wanted = {run.key for run in runs}
        shown = [r for r in records if runner.Run.of(r).key in wanted]
        header = (f"keras_gradinn {__version__}, {os.cpu_count()} CPU core(s), command: "
                  f"`keras-gradinn bench {' '.join(sys.argv[2:])}`"
                  + (" (QUICK: one seed, 200 steps; not a result)" if args.quick else "") + "\n")
    path = report.write(shown, args.out, images=args.images, header=header)
    print(report.tables(shown))
    print(f"wrote {args.out}/runs.jsonl and {path}", file=sys.stderr)
    return 0


def run_tool(name: str, argv: Sequence[str]) -> int:
    """Runs `keras-gradinn bench NAME ARGV...`, a tool of `TOOLS`, with its own options."""
    tool = importlib.import_module(TOOLS[name])
    return tool.main(list(argv))
