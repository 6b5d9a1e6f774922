"""The `keras-gradinn` command line (also `python -m keras_gradinn`)."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["main"]

_RAW = argparse.RawDescriptionHelpFormatter

EXAMPLES = """examples:
  keras-gradinn demo
  keras-gradinn fit examples/data/beam.csv --inputs load,span,thickness --targets deflection --out runs/beam
  keras-gradinn predict runs/beam/model.keras new_points.csv --gradient --out predictions.csv
  keras-gradinn info runs/beam/model.keras
  keras-gradinn export runs/beam/model.keras --onnx beam.onnx --with-gradient
  keras-gradinn perf --out perf.jsonl
  keras-gradinn bench friedman1 --quick --out bench-quick
"""


def _fit_parser(commands) -> None:
    from keras_gradinn.commands import PRIORS

    fit = commands.add_parser(
        "fit",
        help="train a surrogate from a CSV or NPZ file",
        formatter_class=_RAW,
        description="Train a GradINN surrogate on columns of DATA and write RUN_DIR with "
        "model.keras, metrics.json, config.toml and plots (parity.png, loss.png, slices.png).\n"
        "Options come from --config (TOML, same names with underscores), then flags.\n"
        "By default the prior is chosen by 5-fold cross-validation among a fixed set of "
        "candidates\n(no gradient term, a Gaussian process's gradient, a smooth and a stiff "
        "prior, and\ninput screening) and the chosen one is refitted on all rows for a fixed "
        "number of steps.",
        epilog="example:\n  keras-gradinn fit examples/data/beam.csv --inputs load,span,thickness "
        "--targets deflection --out runs/beam\n  keras-gradinn fit --config runs/beam/config.toml "
        "--out runs/beam-again",
    )
    fit.add_argument("data", nargs="?", help="CSV with a header row, or NPZ of 1-D columns")
    fit.add_argument("--inputs", help="input columns, comma-separated")
    fit.add_argument("--targets", help="target columns, comma-separated")
    fit.add_argument("--config", help="TOML file with any of the options below")
    fit.add_argument("--prior", choices=PRIORS,
                     help="belief about the gradient: auto (choose by cross-validation; "
                     "default) or one to fix")
    fit.add_argument("--gradient-weight", type=float,
                     help="with a fixed --prior, the weight of the gradient term "
                     "(default: the prior's)")
    fit.add_argument("--bounds", help="'auto' (data range widened by 5%% each side; default) or a "
                     "CSV file with header input,low,high")
    fit.add_argument("--steps", type=int, help="training steps of the final fit (default 20000)")
    fit.add_argument("--batch-size", type=int,
                     help="all rows in each step up to this many, else batches of it "
                     "(default 1024)")
    fit.add_argument("--learning-rate", type=float,
                     help="initial Adam learning rate, cosine-decayed to 0 (default 0.003)")
    fit.add_argument("--cv", type=int, help="cross-validation folds for --prior auto (default 5)")
    fit.add_argument("--cv-steps", type=int,
                     help="training steps of each fold fit (default: an eighth of --steps)")
    fit.add_argument("--members", type=int, dest="n_members",
                     help="networks in the final ensemble, trained from different initial "
                     "weights (default 5)")
    held_out = fit.add_mutually_exclusive_group()
    held_out.add_argument("--validation-split", type=float,
                          help="fraction of rows held out at random and only reported "
                          "(default 0)")
    held_out.add_argument("--validation", help="a separate validation file with the same columns")
    fit.add_argument("--seed", type=int, help="seed of the folds, weights and sampling (default 0)")
    fit.add_argument("--width", type=int, help="network width (default 64)")
    fit.add_argument("--depth", type=int, help="network hidden layers (default 3)")
    fit.add_argument("--activation", help="network activation (default silu)")
    fit.add_argument("--n-collocation", type=int, help="collocation points per step (default 128)")
    fit.add_argument("--checkpoint-seconds", type=float,
                     help="checkpoint at most this often, for --resume (default 30)")
    fit.add_argument("--resume", action="store_true",
                     help="continue an interrupted run of the same command from its last checkpoint")
    fit.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory to write")
    fit.add_argument("--overwrite", action="store_true", help="replace a non-empty RUN_DIR")
    fit.add_argument("--quiet", action="store_true", help="no progress lines")


def _parser() -> argparse.ArgumentParser:
    from keras_gradinn import __version__

    parser = argparse.ArgumentParser(
        prog="keras-gradinn",
        description="Gradient-Informed Neural Networks for Keras: fit surrogates from data "
        "files, predict, inspect and export them.",
        epilog=EXAMPLES,
        formatter_class=_RAW,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _fit_parser(commands)

    predict = commands.add_parser(
        "predict", help="predict (and differentiate) a saved surrogate on a data file",
        formatter_class=_RAW,
        description="Write the inputs of DATA with the model's predictions to a CSV file; with "
        "--gradient also the Jacobian, in columns named d<target>/d<input>. Rows outside the "
        "model's bounds are predicted, and named in a warning.",
        epilog="example:\n  keras-gradinn predict runs/beam/model.keras new_points.csv "
        "--gradient --out predictions.csv",
    )
    predict.add_argument("model", help="a model.keras written by fit")
    predict.add_argument("data", help="CSV or NPZ with the model's input columns")
    predict.add_argument("--gradient", action="store_true", help="add Jacobian columns")
    predict.add_argument("--out", required=True, help="CSV file to write")

    info = commands.add_parser(
        "info", help="describe a saved surrogate", formatter_class=_RAW,
        description="Print the inputs and bounds, outputs and normalisation, network, prior, "
        "gradient term, and the training metrics if metrics.json lies next to the model.",
        epilog="example:\n  keras-gradinn info runs/beam/model.keras",
    )
    info.add_argument("model", help="a .keras file")

    export = commands.add_parser(
        "export", help="export a saved surrogate to TF Serving and/or ONNX", formatter_class=_RAW,
        description="Write a TF Serving SavedModel (DIR/<next version>/) and/or an ONNX file, "
        "each verified against the Keras model before it is put in place.",
        epilog="example:\n  keras-gradinn export runs/beam/model.keras --saved-model serving/beam "
        "--onnx beam.onnx --with-gradient",
    )
    export.add_argument("model", help="a .keras file")
    export.add_argument("--saved-model", metavar="DIR", help="TF Serving model directory")
    export.add_argument("--onnx", metavar="FILE", help="ONNX file to write")
    export.add_argument("--with-gradient", action="store_true",
                        help="also output dy_dx (the Jacobian)")

    demo = commands.add_parser(
        "demo", help="GradINN against a plain network on the Friedman function",
        formatter_class=_RAW,
        description="Train GradINN and the same network without the gradient term on the "
        "Friedman function, print both test RMSEs, and write a plot and an ONNX file to --out.",
        epilog="example:\n  keras-gradinn demo --noise 0.05 --out demo",
    )
    demo.add_argument("--n", type=int, default=200, help="training points (default 200)")
    demo.add_argument("--steps", type=int, default=10_000, help="full-batch steps (default 10000)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data and training (default 0)")
    demo.add_argument("--noise", type=float, default=0.0,
                      help="training noise, as a fraction of the targets' std (default 0)")
    demo.add_argument("--out", default="keras-gradinn-demo",
                      help="directory for the plot and ONNX file (default keras-gradinn-demo)")

    perf = commands.add_parser(
        "perf", help="time GradINN's training step against the plain network",
        formatter_class=_RAW,
        description="Time the GradINN training step and the plain network's over the same "
        "points, with and without XLA,\nagainst a large matrix product, and Keras' fit "
        "overhead. Prints one JSON record per measurement, then a table.",
        epilog="example:\n  keras-gradinn perf --out perf.jsonl",
    )
    from keras_gradinn.bench import perf as perf_module

    perf_module.add_arguments(perf)

    bench = commands.add_parser(
        "bench", help="run the benchmark protocol: GradINN against S-NN, PINN and a GP",
        formatter_class=_RAW,
        description="Train every method on every (n, noise, seed) of the protocol for the given "
        "problems,\nappending one JSON record per run to OUT/runs.jsonl (runs already there are "
        "skipped),\nthen write OUT/tables.md and PNG plots.",
        epilog="example:\n  keras-gradinn bench friedman1 --n 50 200 --methods gradinn snn gp "
        "--out bench",
    )
    from keras_gradinn.bench import command as bench_command

    bench_command.add_arguments(bench)
    return parser


def _run(args: argparse.Namespace) -> int:
    from keras_gradinn import commands

    if args.command == "fit":
        # Every fit option with a flag; the rest (e.g. sampler) come from --config.
        flags = {name: getattr(args, name) for name in commands.DEFAULTS if hasattr(args, name)}
        config = commands.resolve_config(args.config, flags)
        if args.validation is not None:
            config["validation_split"] = 0.0
        metrics = commands.fit(config, out=args.out, overwrite=args.overwrite, quiet=args.quiet,
                               resume=args.resume)
        validation = metrics["validation_rmse"] or {}
        for name, value in metrics["train_rmse"].items():
            held = f", validation {validation[name]:.6g}" if name in validation else ""
            print(f"{name}: RMSE training {value:.6g}{held}")
        print(f"wrote {args.out}")
    elif args.command == "predict":
        for warning in commands.predict(args.model, args.data, out=args.out,
                                        gradient=args.gradient):
            print(f"keras-gradinn: warning: {warning}", file=sys.stderr)
        print(f"wrote {args.out}")
    elif args.command == "info":
        print(commands.info(args.model))
    elif args.command == "export":
        for path in commands.export(args.model, saved_model=args.saved_model, onnx=args.onnx,
                                    with_gradient=args.with_gradient):
            print(f"wrote {path}")
    elif args.command == "demo":
        if args.n < 2 or args.steps < 1 or not 0 <= args.noise < 10:
            raise commands.CommandError("need --n >= 2, --steps >= 1 and 0 <= --noise < 10")
        from keras_gradinn import demo

        demo.run(n=args.n, steps=args.steps, seed=args.seed, noise=args.noise, out=args.out)
    elif args.command == "perf":
        from keras_gradinn.bench import perf

        return perf.command(args)
    elif args.command == "bench":
        from keras_gradinn.bench import command as bench_command

        return bench_command.command(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs the command line and returns the exit status (0 ok, 1 failed, 2 usage)."""
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("keras-gradinn: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - one line for users, not a traceback
        if os.environ.get("KERAS_GRADINN_DEBUG"):
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        kind = "" if isinstance(error, (ValueError, OSError)) else f"{type(error).__name__}: "
        print(f"keras-gradinn: error: {kind}{message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
