"""`keras-gradinn export`: a saved surrogate to TF Serving and/or ONNX, verified first."""

from __future__ import annotations

import argparse

from keras_gradinn.cli.common import CommandError, load_model

__all__ = ["add_arguments", "export", "run"]

HELP = "export a saved surrogate to TF Serving and/or ONNX"
DESCRIPTION = ("Write a TF Serving SavedModel (DIR/<next version>/) and/or an ONNX file, "
               "each verified against the Keras model before it is put in place.")
EPILOG = ("example:\n  keras-gradinn export runs/beam/model.keras --saved-model serving/beam "
          "--onnx beam.onnx --with-gradient")


def export(model_path: str, *, saved_model: str | None, onnx: str | None,
           with_gradient: bool) -> list[str]:
    """Exports a saved model; returns the written paths."""
    if saved_model is None and onnx is None:
        raise CommandError("nothing to do: give --saved-model DIR and/or --onnx FILE")
    from keras_gradinn import export as export_lib

    model = load_model(model_path)
    written = []
    if saved_model is not None:
        written.append(str(export_lib.to_saved_model(model, saved_model,
                                                     with_gradient=with_gradient)))
    if onnx is not None:
        written.append(str(export_lib.to_onnx(model, onnx, with_gradient=with_gradient)))
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn export` to `parser`."""
    parser.add_argument("model", help="a .keras file")
    parser.add_argument("--saved-model", metavar="DIR", help="TF Serving model directory")
    parser.add_argument("--onnx", metavar="FILE", help="ONNX file to write")
    parser.add_argument("--with-gradient", action="store_true",
                        help="also output dy_dx (the Jacobian)")


def run(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn export`: prints each path written."""
    for path in export(args.model, saved_model=args.saved_model, onnx=args.onnx,
                       with_gradient=args.with_gradient):
        print(f"wrote {path}")
    return 0
