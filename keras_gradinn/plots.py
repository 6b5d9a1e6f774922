"""PNG plots of a fitted surrogate, drawn with matplotlib's object API (no pyplot state)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np

from keras_gradinn.sampling import centre_and_half_width
from keras_gradinn.uncertainty import interval_half_width

__all__ = ["calibration", "comparison", "loss_curves", "new_figure", "parity", "slices"]


def new_figure(rows: int, columns: int, size: tuple[float, float]):
    """A matplotlib figure of `rows` x `columns` axes of `size` inches, and its axes (2-D).

    Drawn off-screen (Agg) through the object API, so no pyplot state is
    shared between plots; save it with `figure.savefig(path)`.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("plots need matplotlib: pip install matplotlib") from error
    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def _interval_bars(axis, measured: np.ndarray, predicted: np.ndarray, half_width: np.ndarray,
                   colour: str, level: float) -> None:
    """Vertical bars of the predictions' central `level` intervals, behind the points."""
    axis.errorbar(measured, predicted, yerr=half_width, fmt="none", ecolor=colour, alpha=0.35,
                  elinewidth=1, zorder=1, label=f"{level:.0%} interval")


def parity(
    path: str | pathlib.Path,
    names: Sequence[str],
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    train_std: np.ndarray | None = None,
    validation_std: np.ndarray | None = None,
    level: float = 0.9,
):
    """Predicted against measured values, one panel per output.

    Args:
        path: the PNG file to write.
        names: output names.
        train: `(measured, predicted)`, each (n, m).
        validation: the same for validation points, drawn in another colour.
        train_std, validation_std: the predictions' standard deviations (n, m),
            drawn as bars of their central `level` interval (+-1.645 std at
            0.9), for the points they are given for.
        level: the probability of the intervals drawn.

    Returns:
        The matplotlib figure written.
    """
    m = len(names)
    figure, axes = new_figure(1, m, (4.2 * m, 4.2))
    sets = [("training", train, train_std, "tab:blue", "o")]
    if validation is not None:
        sets.append(("validation", validation, validation_std, "tab:orange", "s"))
    for i, (axis, name) in enumerate(zip(axes[0], names)):
        half_widths = [None if std is None else interval_half_width(std[:, i], level)
                       for _, _, std, _, _ in sets]
        values = []
        for (_, (measured, predicted), _, _, _), half_width in zip(sets, half_widths):
            values += [measured[:, i], predicted[:, i]]
            if half_width is not None:  # no interval is cut short by the frame
                values += [predicted[:, i] - half_width, predicted[:, i] + half_width]
        low, high = np.min([v.min() for v in values]), np.max([v.max() for v in values])
        pad = 0.05 * (high - low or 1.0)
        axis.plot([low - pad, high + pad], [low - pad, high + pad], color="0.5", lw=1,
                  label="predicted = measured")
        for (label, (measured, predicted), _, colour, marker), half_width in zip(sets,
                                                                                half_widths):
            if half_width is not None:
                _interval_bars(axis, measured[:, i], predicted[:, i], half_width, colour, level)
            axis.scatter(measured[:, i], predicted[:, i], s=16, c=colour, marker=marker,
                         alpha=0.75, zorder=2, label=f"{label} ({len(measured)})")
        axis.set(xlabel=f"measured {name}", ylabel=f"predicted {name}", title=f"Parity: {name}",
                 xlim=(low - pad, high + pad), ylim=(low - pad, high + pad), aspect="equal")
        axis.legend(loc="upper left", fontsize=8)
    figure.suptitle("Parity: predicted vs measured")
    figure.savefig(path, dpi=110)
    return figure


def calibration(path: str | pathlib.Path,
                curves: dict[str, tuple[np.ndarray, np.ndarray]]):
    """Observed against expected coverage of central intervals, with the diagonal.

    Args:
        path: the PNG file to write.
        curves: label -> `(levels, observed)`, as `uncertainty.calibration_curve`
            returns them: for each probability in `levels`, the fraction of
            targets inside the central interval of that probability.

    Returns:
        The matplotlib figure written.
    """
    figure, axes = new_figure(1, 1, (4.6, 4.6))
    axis = axes[0, 0]
    axis.plot([0, 1], [0, 1], color="0.5", lw=1, label="calibrated (observed = expected)")
    for label, (levels, observed) in curves.items():
        axis.plot(levels, observed, "o-", ms=4, label=label)
    axis.set(xlabel="expected coverage (interval probability)", ylabel="observed coverage",
             xlim=(0, 1), ylim=(0, 1), aspect="equal",
             title="Below the diagonal: intervals too narrow")
    axis.legend(loc="upper left", fontsize=8)
    figure.suptitle("Calibration of the standard deviation")
    figure.savefig(path, dpi=110)
    return figure


def loss_curves(path: str | pathlib.Path, history: dict[str, list[float]], *,
                steps_per_epoch: int | None = None) -> None:
    """Data and gradient terms of the loss per epoch, training and validation.

    With observed derivatives, their term too.

    With `steps_per_epoch`, the horizontal axis counts training steps.
    """
    terms = [("data_loss", "Data term (standardised MSE)"), ("gradient_loss", "Gradient term")]
    if "derivative_loss" in history:
        terms.append(("derivative_loss", "Observed derivatives"))
    figure, axes = new_figure(1, len(terms), (5 * len(terms), 4))
    for axis, (term, title) in zip(axes[0], terms):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + term)
            if values:
                label = "validation" if prefix else "training"
                x = np.arange(1, len(values) + 1) * (steps_per_epoch or 1)
                axis.plot(x, values, style, label=label)
        axis.set(xlabel="step" if steps_per_epoch else "epoch", ylabel=term, title=title)
        if all(v > 0 for v in history.get(term, [0.0])):
            axis.set_yscale("log")
        axis.legend()
    figure.suptitle("Loss curves")
    figure.savefig(path, dpi=110)


def slices(
    path: str | pathlib.Path,
    model,
    centre: np.ndarray,
    x_data: np.ndarray,
    *,
    points: int = 201,
) -> None:
    """1-D slices of the surrogate and its gradient through `centre`, one row per input.

    For input j, the other inputs are held at `centre`; the left panel shows
    the surrogate's outputs along x_j, the right panel d y / d x_j together
    with the prior's field converted to the same units (what the gradient
    term pulled it towards; for an ensemble, the members' mean of both).
    Ticks on the x axis mark the data's x_j.
    """
    import keras

    d, m = model.input_dim, model.output_dim
    bounds = model.bounds
    std = keras.ops.convert_to_numpy(model.output_std).astype(np.float64)
    middle, half_width = centre_and_half_width(bounds)
    figure, axes = new_figure(d, 2, (10, 2.6 * d))
    for j in range(d):
        grid = np.tile(centre, (points, 1))
        grid[:, j] = np.linspace(bounds[j, 0], bounds[j, 1], points)
        y = model.predict(grid, verbose=0)
        jacobian = model.predict_gradient(grid)
        z = (grid - middle) / half_width
        field = keras.ops.convert_to_numpy(model.prior(z.astype("float32")))
        # A prior with one field per ensemble member is shown as the members' mean.
        field = field.reshape(points, -1, m, d).mean(axis=1)
        prior = field * std[None, :, None] / half_width[None, None, :]
        value_axis, gradient_axis = axes[j]
        for i, name in enumerate(model.output_labels):
            line, = value_axis.plot(grid[:, j], y[:, i], label=name)
            gradient_axis.plot(grid[:, j], jacobian[:, i, j], color=line.get_color(),
                               label=f"d{name}/d{model.input_labels[j]}")
            gradient_axis.plot(grid[:, j], prior[:, i, j], ":", color=line.get_color(),
                               label=f"prior field for d{name}/d{model.input_labels[j]}")
        for axis in (value_axis, gradient_axis):
            axis.plot(x_data[:, j], np.full(len(x_data), axis.get_ylim()[0]), "|", color="0.4",
                      markersize=8)
        name = model.input_labels[j]
        value_axis.set(xlabel=name, ylabel="surrogate", title=f"Surrogate along {name}")
        gradient_axis.set(xlabel=name, ylabel="gradient", title=f"Gradient along {name}")
        value_axis.legend(fontsize=8)
        gradient_axis.legend(fontsize=7)
    figure.suptitle("1-D slices through the data's centre (other inputs fixed)")
    figure.savefig(path, dpi=100)


def comparison(path: str | pathlib.Path, truth: np.ndarray,
               predictions: dict[str, np.ndarray]) -> None:
    """Test predictions of several models against the truth, one panel each, RMSE in the title."""
    figure, axes = new_figure(1, len(predictions), (4.2 * len(predictions), 4.2))
    low, high = truth.min(), truth.max()
    for axis, (name, predicted) in zip(axes[0], predictions.items()):
        rmse = float(np.sqrt(np.mean((predicted - truth) ** 2)))
        axis.plot([low, high], [low, high], color="0.5", lw=1)
        axis.scatter(truth.ravel(), predicted.ravel(), s=3, alpha=0.3)
        axis.set(xlabel="exact", ylabel="predicted", title=f"{name}: test RMSE {rmse:.4f}",
                 aspect="equal")
    figure.suptitle("Test predictions against the exact function")
    figure.savefig(path, dpi=110)


def sensitivity(path: str | pathlib.Path, inputs: Sequence[str], outputs: Sequence[str],
              results: dict[str, np.ndarray]):
    """One panel per output: each input's S1, ST and dgsm as bars with their intervals.

    Returns the matplotlib figure written.
    """
    shown = [(key, label) for key, label in (
        ("S1", "S1 (first order)"), ("ST", "ST (total)"), ("dgsm", "DGSM (bound on ST)"))
        if key in results]
    d, width = len(inputs), 0.8 / len(shown)
    size = (min(16.0, max(5.0, 0.35 * d * len(shown) + 2)), 3.6 * len(outputs))
    figure, axes = new_figure(len(outputs), 1, size)
    positions = np.arange(d)
    for i, (axis, output) in enumerate(zip(axes[:, 0], outputs)):
        for s, (key, label) in enumerate(shown):
            axis.bar(positions + (s - (len(shown) - 1) / 2) * width, results[key][i], width,
                     yerr=results[f"{key}_conf"][i], capsize=2, label=label)
        axis.set_xticks(positions, list(inputs))
        axis.set(ylabel="share of Var(output)", title=f"Sensitivity of {output}")
        axis.axhline(0, color="0.5", lw=0.8)
        axis.legend(fontsize=8)
    figure.suptitle("Global sensitivity (whiskers: 95 % bootstrap intervals)")
    figure.savefig(path, dpi=110)
    return figure
