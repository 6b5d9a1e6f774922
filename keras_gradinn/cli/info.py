"""`keras-gradinn info`: describe a saved surrogate and, if found, its training metrics."""

from __future__ import annotations

import argparse
import json
import pathlib

from keras_gradinn.cli.common import load_model

__all__ = ["add_arguments", "info", "run"]

HELP = "describe a saved surrogate"
DESCRIPTION = ("Print the inputs and bounds, outputs and normalisation, network, prior, "
               "gradient term, and the training metrics if metrics.json lies next to the model.")
EPILOG = "example:\n  keras-gradinn info runs/beam/model.keras"


def info(model_path: str) -> str:
    """A readable description of a saved model and, if found, its training metrics."""
    import keras

    model = load_model(model_path)
    mean = keras.ops.convert_to_numpy(model.output_mean)
    std = keras.ops.convert_to_numpy(model.output_std)
    lines = [f"model: {model_path}", f"inputs ({model.input_dim}):"]
    for name, (low, high) in zip(model.input_labels, model.bounds):
        lines.append(f"  {name:<16} bounds [{low:.6g}, {high:.6g}]")
    lines.append(f"outputs ({model.output_dim}):")
    for name, mu, sigma in zip(model.output_labels, mean, std):
        lines.append(f"  {name:<16} standardised with mean {mu:.6g}, std {sigma:.6g}")
    stacks = [layer for layer in model.network.layers if hasattr(layer, "members")]
    if stacks:
        stack = stacks[0]
        layers = (f"{stack.members} member(s) of {stack.depth} x {stack.width} "
                  f"{stack.activation}, output {stack.units} linear")
    else:
        layers = "Dense layers: " + ", ".join(
            f"{layer.units} {keras.activations.serialize(layer.activation)}"
            for layer in model.network.layers if isinstance(layer, keras.layers.Dense))
    lines.append(f"network: {model.network.name}, {layers}, "
                 f"{model.network.count_params()} weights")
    trained = "trainable" if model.prior_trainable and model.prior.trainable_weights else "frozen"
    lines.append(f"prior: {model.prior.name} ({trained}, {model.prior.count_params()} weights)")
    sampler = model.get_config()["sampler"]
    if isinstance(sampler, dict):
        sampler = f"a fixed pool of {sampler['size']} {sampler['method']} points"
    elif isinstance(sampler, list):
        sampler = f"a fixed pool of {len(sampler)} points"
    else:
        sampler = repr(sampler)
    lines.append(f"gradient term: weight {model.gradient_weight:g}, {model.n_collocation} "
                 f"collocation points per step, sampler {sampler}")
    lines += _choice_lines(model.metadata or {})
    if model.calibration is not None:
        c = model.calibration
        lines.append(f"uncertainty: {model.members} members, spread x {list(c.scale)}, floor "
                     f"{list(c.floor)} (target spreads)")
    metrics_path = pathlib.Path(model_path).with_name("metrics.json")
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        lines.append(f"training ({metrics_path}): {metrics['steps']} steps, "
                     f"{metrics['train_seconds']:.1f} s, {metrics['n_train']} training rows")
        if metrics.get("n_observed_derivatives"):
            lines.append(f"  observed derivatives: {metrics['n_observed_derivatives']} entries, "
                         f"weight {model.derivative_weight:g}")
        for key in ("train_rmse", "validation_rmse", "validation_coverage_90",
                    "validation_nll", "train_derivative_rmse"):
            if metrics.get(key):
                values = ", ".join(f"{k} {v:.6g}" for k, v in metrics[key].items())
                lines.append(f"  {key.replace('_', ' ')}: {values}")
    return "\n".join(lines)


def _choice_lines(metadata: dict) -> list[str]:
    """The prior choice a `GradINNRegressor` saved with the model, as lines of text."""
    if metadata.get("estimator") != "GradINNRegressor":
        return []
    results = metadata["cv_results"]
    if not results:
        return [f"choice: {metadata['best_prior']}, fixed (no cross-validation)"]
    folds = len([key for key in results if key.startswith("split")])
    lines = [f"choice: {metadata['best_prior']}, by {folds}-fold cross-validation "
             f"(held-out mean squared error of the standardised targets):"]
    for i, params in enumerate(results["params"]):
        mark = "  <- chosen" if i == metadata["best_index"] else ""
        lines.append(f"  {params['prior']:<10} {-results['mean_test_score'][i]:.4g} "
                     f"+- {results['std_test_score'][i]:.2g}  "
                     f"(weight {results['gradient_weight'][i]:g}, "
                     f"{results['fit_time'][i]:.0f} s){mark}")
    scores = metadata.get("steps_scores") or {}
    if scores:
        held_out = ", ".join(f"{-score:.4g} at {steps}" for steps, score in scores.items())
        lines.append(f"final fit: {metadata['final_steps']} steps, chosen on observed "
                     f"derivatives by held-out error ({held_out} steps)")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-gradinn info` to `parser`."""
    parser.add_argument("model", help="a .keras file")


def run(args: argparse.Namespace) -> int:
    """Runs `keras-gradinn info`: prints the description."""
    print(info(args.model))
    return 0
