"""The benchmark report: markdown tables and PNG plots from `runs.jsonl` records.

`write` puts the tables in `OUT/tables.md` and, when the page `OUT.md` beside
the results folder exists (`docs/benchmarks.md` for `docs/benchmarks/`),
refreshes the generated blocks between its markers (`<!-- headline:start -->`
... `<!-- headline:end -->`, likewise `uncertainty`), so the page's numbers
are generated too.
"""

from __future__ import annotations

import collections
import os
import pathlib
from collections.abc import Sequence

import numpy as np

from keras_gradinn.plots import new_figure

__all__ = ["auto_summary", "fill", "headline", "plot_calibration", "plot_fields", "plot_rmse",
           "ratios", "tables", "uncertainty", "write"]

# The methods trained on observed gradients come last, so tables without them do not change.
METHOD_ORDER = ("gradinn-auto", "gradinn-auto-nokernel", "gradinn", "snn", "pinn", "gp",
                "gradinn-grad", "genn", "gekpls")
LABELS = {"gradinn-auto": "GradINN-auto", "gradinn-auto-nokernel": "auto, no kernel",
          "gradinn": "GradINN (tuned)", "snn": "S-NN", "pinn": "PINN", "gp": "GP",
          "gradinn-grad": "GradINN-grad", "genn": "GENN", "gekpls": "GEKPLS"}
COLOURS = {"gradinn-auto": "tab:purple", "gradinn-auto-nokernel": "tab:orange",
           "gradinn": "tab:red", "snn": "tab:blue", "pinn": "tab:green", "gp": "tab:gray",
           "gradinn-grad": "tab:pink", "genn": "tab:brown", "gekpls": "tab:olive"}


def _cells(records: Sequence[dict]) -> dict:
    """(problem, noise, n, method) -> list of records."""
    cells = collections.defaultdict(list)
    for r in records:
        cells[(r["problem"], float(r["noise"]), int(r["n"]), r["method"])].append(r)
    return cells


def _mean_std(values: Sequence[float]) -> str:
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3g} ± {std:.2g}"


def tables(records: Sequence[dict]) -> str:
    """Markdown: per problem and noise level, rows n, columns methods.

    Cells are `mean ± std` over seeds of the value RMSE, then of the gradient
    RMSE, then the seed count and mean training seconds; for methods with a
    standard deviation also the mean 90 % interval coverage and Gaussian
    negative log-likelihood of the test targets.
    """
    cells = _cells(records)
    out = []
    for problem in dict.fromkeys(r["problem"] for r in records):
        for noise in sorted({k[1] for k in cells if k[0] == problem}):
            methods = [m for m in METHOD_ORDER if any(
                k[0] == problem and k[1] == noise and k[3] == m for k in cells)]
            out.append(f"### {problem}, noise {noise:g}\n")
            out.append("Value RMSE (mean ± std over seeds); gradient RMSE below it.\n")
            out.append("| n | seeds | " + " | ".join(LABELS[m] for m in methods) + " |")
            out.append("| --- | --- |" + " --- |" * len(methods))
            for n in sorted({k[2] for k in cells if k[0] == problem and k[1] == noise}):
                row, grad, seconds, cover, nll, seeds = [], [], [], [], [], set()
                for m in methods:
                    runs = cells.get((problem, noise, n, m), [])
                    seeds |= {len(runs)}
                    row.append(_mean_std([r["rmse"] for r in runs]) if runs else "-")
                    grad.append(_mean_std([r["grad_rmse"] for r in runs]) if runs else "-")
                    seconds.append(f"{np.mean([r['train_seconds'] for r in runs]):.0f} s"
                                   if runs else "-")
                    scored = [r for r in runs if "coverage" in r]
                    cover.append(f"{np.mean([r['coverage'] for r in scored]):.2f}"
                                 if scored else "-")
                    nll.append(f"{np.mean([r['nll'] for r in scored]):.3g}" if scored else "-")
                count = "/".join(str(s) for s in sorted(seeds))
                out.append(f"| {n} | {count} | " + " | ".join(row) + " |")
                out.append("| ∇ |  | " + " | ".join(grad) + " |")
                out.append("| time |  | " + " | ".join(seconds) + " |")
                if any(c != "-" for c in cover):
                    out.append("| 90 % cover |  | " + " | ".join(cover) + " |")
                    out.append("| NLL |  | " + " | ".join(nll) + " |")
            out.append("")
    return "\n".join(out)


def ratios(records: Sequence[dict]) -> str:
    """Markdown: GradINN's mean errors over S-NN's and over the GP's, per cell.

    Each cell reads `value / gradient` ratios of mean RMSEs; below 1 means
    GradINN is better. A `*` marks cells where GradINN beats S-NN in both.
    """
    cells = _cells(records)

    def mean(key, problem, noise, n, method):
        runs = cells.get((problem, noise, n, method))
        return np.mean([r[key] for r in runs]) if runs else np.nan

    out = ["| problem | noise | n | GradINN / S-NN (value, gradient) | GradINN / GP (value, "
           "gradient) |", "| --- | --- | --- | --- | --- |"]
    for problem, noise, n in sorted({k[:3] for k in cells}, key=lambda k: (
            list(dict.fromkeys(r["problem"] for r in records)).index(k[0]), k[1], k[2])):
        pair = []
        for other in ("snn", "gp"):
            value = mean("rmse", problem, noise, n, "gradinn") / mean("rmse", problem, noise, n,
                                                                          other)
            grad = (mean("grad_rmse", problem, noise, n, "gradinn")
                    / mean("grad_rmse", problem, noise, n, other))
            mark = " *" if other == "snn" and value < 1 and grad < 1 else ""
            pair.append("-" if np.isnan(value) else f"{value:.2f}, {grad:.2f}{mark}")
        out.append(f"| {problem} | {noise:g} | {n} | {pair[0]} | {pair[1]} |")
    return "\n".join(out) + "\n"


def plot_rmse(records: Sequence[dict], problem: str, path: str | os.PathLike) -> None:
    """Value and gradient RMSE against n on log axes, one line per method and noise."""
    cells = _cells(records)
    figure, axes = new_figure(1, 2, (10, 4))
    styles = ["-", "--", ":", "-."]
    noises = sorted({k[1] for k in cells if k[0] == problem})
    ticks = sorted({k[2] for k in cells if k[0] == problem})
    for axis, key, title in zip(axes[0], ("rmse", "grad_rmse"), ("value RMSE", "gradient RMSE")):
        for method in METHOD_ORDER:
            for style, noise in zip(styles, noises):
                sizes = sorted(k[2] for k in cells if k[0] == problem and k[1] == noise
                               and k[3] == method)
                if not sizes:
                    continue
                values = [np.mean([r[key] for r in cells[(problem, noise, n, method)]])
                          for n in sizes]
                axis.plot(sizes, values, style, marker="o", color=COLOURS[method],
                          label=f"{LABELS[method]}, noise {noise:g}")
        axis.set(xscale="log", yscale="log", xlabel="training points n", title=title)
        axis.set_xticks(ticks, [str(n) for n in ticks])
        axis.set_xticks([], minor=True)
        axis.grid(True, which="both", alpha=0.3)
    axes[0][1].legend(fontsize=7, ncol=2)
    figure.suptitle(problem)
    figure.savefig(path, dpi=110)


def plot_calibration(records: Sequence[dict], problem: str, path: str | os.PathLike) -> None:
    """Observed against expected coverage of central intervals, per method and noise level.

    Each line is the mean over sizes and seeds of the runs' `calibration_curve`
    (the fraction of test targets inside the central interval of each
    probability); a calibrated method lies on the diagonal.
    """
    from keras_gradinn.uncertainty import calibration_curve

    levels = calibration_curve([0.0], [0.0], [1.0])[0]
    figure, axes = new_figure(1, 1, (4.6, 4.2))
    axis = axes[0][0]
    axis.plot([0, 1], [0, 1], color="black", linewidth=0.8)
    runs = [r for r in records if r["problem"] == problem and "calibration_curve" in r]
    for method in METHOD_ORDER:
        for style, noise in zip(("-", "--", ":", "-."), sorted({float(r["noise"]) for r in runs})):
            curves = [r["calibration_curve"] for r in runs
                      if r["method"] == method and float(r["noise"]) == noise]
            if curves:
                axis.plot(levels, np.mean(curves, axis=0), style, marker=".",
                          color=COLOURS[method],
                          label=f"{LABELS[method]}, noise {noise:g} ({len(curves)} runs)")
    axis.set(xlabel="expected coverage", ylabel="observed coverage", xlim=(0, 1), ylim=(0, 1),
             title=f"{problem}: central intervals on the test set")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7)
    figure.savefig(path, dpi=110)


def plot_fields(problem, fields: dict[str, np.ndarray], grid: np.ndarray,
                path: str | os.PathLike, *, title: str) -> None:
    """Truth, then each method's prediction of every output on a 2-D grid."""
    inside = np.ones(len(grid), bool) if problem.contains is None else problem.contains(grid)
    truth = np.full((len(grid), problem.m), np.nan)
    truth[inside] = problem.solution(grid[inside])
    side = int(round(np.sqrt(len(grid))))
    panels = {"exact": truth, **fields}
    figure, axes = new_figure(problem.m, len(panels), (3.4 * len(panels), 2.6 * problem.m))
    extent = [*problem.bounds[0], *problem.bounds[1]]
    for j in range(problem.m):
        low, high = np.percentile(truth[inside, j], [1, 99])
        for axis, (name, values) in zip(axes[j], panels.items()):
            image = np.where(inside, values[:, j], np.nan).reshape(side, side)
            shown = axis.imshow(image, origin="lower", extent=extent, aspect="auto",
                                vmin=low, vmax=high, cmap="viridis")
            axis.set_title(f"{LABELS.get(name, name)}: {problem.output_labels[j]}", fontsize=9)
            axis.set(xlabel=problem.input_labels[0], ylabel=problem.input_labels[1])
        figure.colorbar(shown, ax=axes[j].tolist(), shrink=0.8)
    figure.suptitle(title)
    figure.savefig(path, dpi=90)


def write(records: Sequence[dict], out: str | os.PathLike, *,
          images: str | os.PathLike | None = None, header: str = "") -> pathlib.Path:
    """Writes `out/tables.md` and the plots (in `images`, default `out/img`).

    When a page `out.md` beside the folder holds `<!-- headline:start -->`,
    its block is refreshed with `headline(records)`; likewise
    `<!-- uncertainty:start -->` with `uncertainty(records)`.
    """
    from keras_gradinn import problems
    from keras_gradinn.bench.runner import field_grid

    folder = pathlib.Path(out)
    images = pathlib.Path(images) if images is not None else folder / "img"
    images.mkdir(parents=True, exist_ok=True)
    lines = [header] if header else []
    for name in dict.fromkeys(r["problem"] for r in records):
        png = images / f"{name}_rmse.png"
        plot_rmse(records, name, png)
        lines.append(f"![{name}: RMSE against n]({os.path.relpath(png, folder)})\n")
        problem = problems.get(name)
        saved = sorted((folder / "fields").glob(f"{name}-*.npy"))
        cells = collections.defaultdict(dict)
        for file in saved:
            # problem-method-n<n>-noise<noise>; method names may hold hyphens.
            method, n, noise = file.stem.split("-", 1)[1].rsplit("-", 2)
            cells[(n, noise)][method] = np.load(file)
        for (n, noise), fields in sorted(cells.items()):
            if "snn" not in fields or not {"gradinn", "gradinn-auto"} & set(fields):
                continue
            shown = {m: fields[m] for m in ("gradinn-auto", "gradinn", "snn", "pinn")
                     if m in fields}
            png = images / f"{name}_field_{n}_{noise}.png"
            plot_fields(problem, shown, field_grid(problem), png,
                        title=f"{name}, {n[1:]} points, noise {noise[5:]}, seed 0")
            lines.append(f"![{name}: fields]({os.path.relpath(png, folder)})\n")
    path = folder / "tables.md"
    sections = "\n".join(lines)
    if any(r["method"] == "gradinn-auto" for r in records):
        sections += ("\n## GradINN-auto (library defaults) against S-NN, tuned GradINN and "
                     "the GP\n\n" + auto_summary(records))
    if any("coverage" in r for r in records):
        sections += ("\n## Uncertainty: GradINN-auto's calibrated ensemble and the GP\n\n"
                     + uncertainty(records))
        for name in dict.fromkeys(r["problem"] for r in records if "calibration_curve" in r):
            png = images / f"{name}_calibration.png"
            plot_calibration(records, name, png)
            sections += f"\n![{name}: calibration]({os.path.relpath(png, folder)})\n"
    path.write_text(sections + "\n## Tuned GradINN against S-NN and the GP\n\n"
                    + ratios(records) + "\n## All cells\n\n" + tables(records))
    page = folder.with_suffix(".md")
    if page.is_file():
        text = page.read_text()
        for name, block in (("headline", headline), ("uncertainty", uncertainty)):
            if _marker(name, "start") in text:
                text = fill(text, name, block(records))
        page.write_text(text)
    return path


def _marker(name: str, end: str) -> str:
    return f"<!-- {name}:{end} -->"


def fill(text: str, name: str, block: str) -> str:
    """`text` with `block` between its `<!-- name:start -->` and `<!-- name:end -->` lines.

    Whatever stood between the markers is replaced; the rest of `text` is
    kept as it is, so filling twice with the same block changes nothing.
    """
    start, end = _marker(name, "start"), _marker(name, "end")
    counts = (text.count(start), text.count(end))
    if counts != (1, 1) or text.index(start) > text.index(end):
        raise ValueError(f"the text must hold {start} once, then {end} once; got "
                         f"{counts[0]} start and {counts[1]} end markers"
                         + (", the end first" if counts == (1, 1) else ""))
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n\n{block.strip()}\n\n{end}{tail}"


def _geometric(ratios: Sequence[float]) -> str:
    """`geometric mean, k/n`: k of the n ratios are below 1; `-` without any."""
    ratios = [r for r in ratios if not np.isnan(r)]
    if not ratios:
        return "-"
    below = sum(r < 1 for r in ratios)
    return f"{np.exp(np.mean(np.log(ratios))):.2f}, {below}/{len(ratios)}"


def headline(records: Sequence[dict], *, cell: tuple[str, int, float] | None = None) -> str:
    """Markdown: every method in the headline cell, then each problem against S-NN and the GP.

    The first table gives `mean ± std` over seeds of the value and gradient
    RMSE in `cell` (default `runner.HEADLINE`). The second gives, per
    problem and noise level, the geometric mean over the training sizes of
    the ratio of mean value RMSEs (below 1: the first method is better) and
    in how many sizes it is below 1; its last row covers every cell.
    """
    if cell is None:
        from keras_gradinn.bench.runner import HEADLINE as cell
    cells = _cells(records)
    problem, n, noise = cell[0], int(cell[1]), float(cell[2])
    methods = [m for m in METHOD_ORDER if (problem, noise, n, m) in cells]
    out = [f"`{problem}`, n={n}, noise {noise:g}:", "",
           "| method | seeds | value RMSE | gradient RMSE | training time |",
           "| --- | --- | --- | --- | --- |"] if methods else []
    for m in methods:
        runs = cells[(problem, noise, n, m)]
        out.append(f"| {LABELS[m]} | {len(runs)} | {_mean_std([r['rmse'] for r in runs])} | "
                   f"{_mean_std([r['grad_rmse'] for r in runs])} | "
                   f"{np.mean([r['train_seconds'] for r in runs]):.0f} s |")
    if methods:
        out.append("")

    def mean(key, method):
        runs = cells.get((*key, method))
        return float(np.mean([r["rmse"] for r in runs])) if runs else np.nan

    pairs = [(m, o) for m, o in (("gradinn-auto", "snn"), ("gradinn-auto", "gp"),
                                 ("gradinn", "snn"), ("gradinn", "gp"), ("pinn", "gp"))
             if any(k[3] == m for k in cells)]
    order = list(dict.fromkeys(r["problem"] for r in records))
    keys = sorted({k[:3] for k in cells}, key=lambda k: (order.index(k[0]), k[1], k[2]))
    groups = {k[:2]: [c for c in keys if c[:2] == k[:2]] for k in keys}
    out += ["| problem | noise | n | " + " | ".join(f"{LABELS[m]} / {LABELS[o]}"
                                                       for m, o in pairs) + " |",
            "| --- | --- | --- |" + " --- |" * len(pairs)]
    rows = [(name, f"{level:g}", f"{group[0][2]}-{group[-1][2]}", group)
            for (name, level), group in groups.items()]
    for name, level, sizes, group in [*rows, ("all", "", f"{len(keys)} cells", keys)]:
        row = [_geometric([mean(k, m) / mean(k, o) for k in group]) for m, o in pairs]
        out.append(f"| {name} | {level} | {sizes} | " + " | ".join(row) + " |")
    seeds = {m: sorted({len(v) for k, v in cells.items() if k[3] == m}) for m in METHOD_ORDER}
    out += ["", "Runs per cell: " + ", ".join(
        f"{LABELS[m]} {'/'.join(map(str, counts))}" for m, counts in seeds.items() if counts)
        + "."]
    return "\n".join(out) + "\n"


def uncertainty(records: Sequence[dict]) -> str:
    """Markdown: per problem and noise, the 90 % coverage and NLL of the methods that have them.

    Means over the sizes and seeds of the runs that report a standard
    deviation (`coverage`, `nll`); the last row averages every such run of a
    method, each problem and noise level weighing alike. For ensembles that
    report their members' errors (`member_rmse`), the geometric mean of the
    ensemble's RMSE over its average member's (below 1: the ensemble is
    more accurate than one network).
    """
    scored = [r for r in records if "coverage" in r]
    methods = [m for m in METHOD_ORDER if any(r["method"] == m for r in scored)]
    groups = sorted({(r["problem"], float(r["noise"])) for r in scored},
                    key=lambda k: ([r["problem"] for r in scored].index(k[0]), k[1]))
    gains = [r for r in scored if "member_rmse" in r]
    out = ["| problem | noise | " + " | ".join(f"{LABELS[m]}: 90 % cover, NLL (runs)"
                                               for m in methods)
           + (" | ensemble / member RMSE |" if gains else " |"),
           "| --- | --- |" + " --- |" * (len(methods) + bool(gains))]
    averages = collections.defaultdict(list)

    def gain(runs: Sequence[dict]) -> str:
        ratios = [r["rmse"] / r["member_rmse"] for r in runs if "member_rmse" in r]
        return f"{np.exp(np.mean(np.log(ratios))):.2f}" if ratios else "-"

    for problem, noise in groups:
        row = []
        for m in methods:
            runs = [r for r in scored if (r["problem"], float(r["noise"]), r["method"])
                    == (problem, noise, m)]
            if not runs:
                row.append("-")
                continue
            cover, nll = np.mean([r["coverage"] for r in runs]), np.mean([r["nll"] for r in runs])
            averages[m].append(cover)
            row.append(f"{cover:.2f}, {nll:.3g} ({len(runs)})")
        if gains:
            row.append(gain([r for r in gains if (r["problem"], float(r["noise"]))
                             == (problem, noise)]))
        out.append(f"| {problem} | {noise:g} | " + " | ".join(row) + " |")
    out.append("| all |  | " + " | ".join(
        f"{np.mean(averages[m]):.2f}, - ({len(averages[m])} groups)" for m in methods)
        + (f" | {gain(gains)} |" if gains else " |"))
    return "\n".join(out) + "\n"


def auto_summary(records: Sequence[dict]) -> str:
    """Markdown: `gradinn-auto` per cell against S-NN, tuned GradINN and the GP, then totals.

    Per cell: mean value RMSE ratios (below 1: auto is better), the ratio of
    mean training times to S-NN's, and how often each prior was chosen.
    Then the cells where auto beats S-NN, the geometric mean of its RMSE over
    all cells against tuned GradINN's (and without the kernel prior), and the
    time ratio per problem.
    """
    cells = _cells(records)

    def mean(key, cell, method):
        runs = cells.get((*cell, method))
        return float(np.mean([r[key] for r in runs])) if runs else np.nan

    order = list(dict.fromkeys(r["problem"] for r in records))
    keys = sorted({k[:3] for k in cells if k[3] == "gradinn-auto"},
                  key=lambda k: (order.index(k[0]), k[1], k[2]))
    out = ["| problem | noise | n | auto / S-NN | auto / tuned | no kernel / S-NN | auto / GP "
           "| time / S-NN | chosen |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    wins, ratios_tuned, times = 0, [], collections.defaultdict(list)
    for cell in keys:
        auto = mean("rmse", cell, "gradinn-auto")
        snn, tuned = mean("rmse", cell, "snn"), mean("rmse", cell, "gradinn")
        free, gp = mean("rmse", cell, "gradinn-auto-nokernel"), mean("rmse", cell, "gp")
        time_ratio = mean("train_seconds", cell, "gradinn-auto") / mean("train_seconds", cell,
                                                                          "snn")
        wins += bool(auto < snn)
        ratios_tuned.append((auto, tuned, free))
        times[cell[0]].append(time_ratio)
        chosen = collections.Counter(r["chosen"] for r in cells[(*cell, "gradinn-auto")])
        choice = ", ".join(f"{name} {count}" for name, count in chosen.most_common())
        mark = " *" if auto < snn else ""
        out.append(f"| {cell[0]} | {cell[1]:g} | {cell[2]} | {auto / snn:.2f}{mark} | "
                   f"{auto / tuned:.2f} | {free / snn:.2f} | {auto / gp:.2f} | "
                   f"{time_ratio:.1f} | {choice} |")
    ratios_tuned = np.array(ratios_tuned)

    def geometric(column: int) -> str:
        both = ~np.isnan(ratios_tuned[:, [column, 1]]).any(axis=1)
        if not both.any():
            return "no cells to compare"
        means = np.exp(np.mean(np.log(ratios_tuned[both][:, [column, 1]]), axis=0))
        return (f"{means[0]:.4g} against tuned GradINN's {means[1]:.4g} over {int(both.sum())} "
                f"cells (ratio {means[0] / means[1]:.3f})")

    out += ["", f"- GradINN-auto beats S-NN in {wins} of {len(keys)} cells (`*`).",
            f"- Geometric mean of the value RMSE: GradINN-auto {geometric(0)}; without the "
            f"kernel prior {geometric(2)}.",
            "- Training time of GradINN-auto over S-NN's, mean over each problem's cells "
            "(largest): " + ", ".join(f"{p} {np.mean(v):.1f}x ({np.max(v):.1f}x)"
                                      for p, v in times.items()) + "."]
    return "\n".join(out) + "\n"
