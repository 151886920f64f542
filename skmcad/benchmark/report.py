"""Tables, files and chart of a benchmark run: stdout table, results.csv/.md, auroc.png."""

import datetime
import os
import platform

import numpy as np
import pandas as pd

from .runner import COLUMNS

MISSING = "failed"  # cell of a detector with no successful run on that subset


def markdown_table(header, rows, align=None):
    """Return a GitHub-flavoured Markdown table with padded columns.

    Parameters
    ----------
    header : sequence of str
    rows : sequence of sequences
        Cells, converted with ``str``.
    align : sequence of {"l", "r"}, default=None
        Column alignment; by default the first column left, the others right.

    Returns
    -------
    table : str
        Lines joined with newlines, no trailing newline.

    Examples
    --------
    >>> print(markdown_table(["class", "AUROC"], [["0", "0.91"], ["mean", "0.9"]]))
    | class | AUROC |
    |:------|------:|
    | 0     |  0.91 |
    | mean  |   0.9 |
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if any(len(row) != len(header) for row in cells):
        raise ValueError("every row needs as many cells as the header")
    align = align or ["l"] + ["r"] * (len(header) - 1)
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(header))]

    def line(row):
        padded = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)]
        return "| " + " | ".join(padded) + " |"

    # The rule spans each cell with its two padding spaces; a colon marks the alignment.
    rule = [":" + "-" * (w + 1) if a == "l" else "-" * (w + 1) + ":" for w, a in zip(widths, align)]
    lines = [line(cells[0]), "|" + "|".join(rule) + "|"] + [line(row) for row in cells[1:]]
    return "\n".join(lines)


def _fmt(value, digits=3, missing=MISSING):
    return missing if pd.isna(value) else f"{value:.{digits}f}"


def _order(results, column):
    return list(pd.unique(results[column]))


def per_subset_means(results, metric="auroc"):
    """Return a subsets x detectors frame of ``metric`` averaged over the successful seeds."""
    ok = results[results["status"] == "ok"]
    table = ok.groupby(["subset", "detector"], sort=False)[metric].mean().unstack("detector")
    return table.reindex(index=_order(results, "subset"), columns=_order(results, "detector"))


def run_rows(results):
    """The rows of whole runs: without the per-defect-class rows of localisation protocols."""
    if "defect_class" not in results:
        return results
    return results[results["defect_class"].fillna("").astype(str) == ""]


def metric_table(results, metric="auroc", missing=MISSING):
    """Return ``(header, rows)``: one row per subset, one column per detector, a mean row.

    Per-defect-class rows (localisation protocols) are listed but not in the mean. The mean
    is over the subsets where the detector ran; it is starred when some failed. ``missing``
    fills the cells without a value.
    """
    table = per_subset_means(results, metric)
    whole = table.loc[[s for s in table.index if s in set(run_rows(results)["subset"])]]
    rows = [[subset] + [_fmt(v, missing=missing) for v in values]
            for subset, values in table.iterrows()]
    means = [_fmt(whole[d].mean(), missing=missing)
             + ("*" if 0 < whole[d].isna().sum() < len(whole) else "") for d in whole]
    return ["subset"] + list(table.columns), rows + [["**mean**"] + means]


def summary_table(results):
    """Return ``(header, rows)`` with one row per detector: means, totals and maxima."""
    header = ["detector", "runs ok", "mean AUROC", "mean AUCPR", "mean P@n", "fit s (total)",
              "fit s (median)", "score samples/s (mean)", "peak RSS MiB (max)", "peak GPU MiB (max)"]
    results = run_rows(results)
    means = {m: per_subset_means(results, m).mean() for m in ("auroc", "aucpr", "precision_at_n")}
    rows = []
    for detector in _order(results, "detector"):
        runs = results[results["detector"] == detector]
        ok = runs[runs["status"] == "ok"]
        rows.append([
            detector, f"{len(ok)}/{len(runs)}",
            *(_fmt(means[m].get(detector)) for m in ("auroc", "aucpr", "precision_at_n")),
            _fmt(ok["fit_seconds"].sum(min_count=1), 1), _fmt(ok["fit_seconds"].median(), 2),
            _fmt(ok["throughput"].mean(), 0),
            _fmt(runs["peak_rss_mb"].max(), 0), _fmt(runs["peak_gpu_mb"].max(), 0).replace(
                MISSING, "n/a"),
        ])
    return header, rows


NO_MAP = "-"  # cell of a detector without anomaly maps


def has_maps(results):
    """Whether some run of ``results`` measured anomaly maps (localisation protocols)."""
    return "pixel_auroc" in results and results["pixel_auroc"].notna().any()


def localisation_table(results):
    """Return ``(header, rows)``: per detector, the means over runs of the image and pixel
    metrics, fit seconds, scoring images/s and maps/s (``-`` for detectors without maps)."""
    header = ["detector", "image AUROC", "pixel AUROC", "AUPRO (30 % FPR)", "fit s",
              "images/s", "maps/s"]
    runs = run_rows(results)
    runs = runs[runs["status"] == "ok"]
    rows = []
    for detector in _order(results, "detector"):
        mine = runs[runs["detector"] == detector]
        rows.append([detector, _fmt(mine["auroc"].mean()),
                     _fmt(mine["pixel_auroc"].mean(), missing=NO_MAP),
                     _fmt(mine["aupro"].mean(), missing=NO_MAP),
                     _fmt(mine["fit_seconds"].mean(), 1), _fmt(mine["throughput"].mean(), 0),
                     _fmt((mine["n_test"] / mine["map_seconds"]).mean(), 0, missing=NO_MAP)])
    return header, rows


def failures(results):
    """Return ``(detector, subset, seed, error)`` for every failed run."""
    failed = results[results["status"] == "failed"]
    return list(failed[["detector", "subset", "seed", "error"]].itertuples(index=False))


def machine_info():
    """Return a dict describing where the benchmark ran (cores, torch device and threads)."""
    import torch

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(), "platform": platform.platform(),
        "python": platform.python_version(), "cpu cores": os.cpu_count(),
        "cores available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "torch": torch.__version__, "torch threads": torch.get_num_threads(),
        "torch device": "cpu",
        # Other processes on the machine slow the wall-clock times: note how busy it was.
        "load average (1, 5, 15 min) at the end": ", ".join(
            f"{load:.2f}" for load in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a",
    }
    if torch.cuda.is_available():
        info["torch device"] = f"cuda ({torch.cuda.get_device_name(0)})"
    for module in ("sklearn", "pyod"):
        info[module] = __import__(module).__version__
    try:  # optional: only XGBOD needs it
        info["xgboost"] = __import__("xgboost").__version__
    except ImportError:
        pass
    return info


def write_csv(results, path):
    """Write one row per run with the columns ``runner.COLUMNS``."""
    results.reindex(columns=list(COLUMNS)).to_csv(path, index=False)


def labelled_classes_lines(results):
    """Return one Markdown list item per subset and seed: the classes of its labelled
    anomalies (unbalanced protocol); none when no run had labelled anomalies."""
    if "labelled_classes" not in results:
        return []
    runs = results[results["labelled_classes"].fillna("").astype(str) != ""]
    runs = runs.drop_duplicates(["subset", "seed"])
    return [f"- {row.subset} (seed {row.seed}): {row.n_labelled} labelled anomalies from "
            f"classes {row.labelled_classes.replace(' ', ', ')}"
            for row in runs.itertuples()]


def render_markdown(results, command, machine, title, notes=()):
    """Return the text of results.md.

    Parameters
    ----------
    results : DataFrame
    command : str
    machine : dict
    title : str
    notes : sequence of str, default=()
        Paragraphs printed under the title (the protocol's settings).
    """
    parts = [f"# {title}", ""]
    for note in notes:
        parts += [note, ""]
    parts += ["## AUROC per subset (mean over seeds)", "",
             markdown_table(*metric_table(results, "auroc")), "",
             "## AUCPR per subset (mean over seeds)", "",
             markdown_table(*metric_table(results, "aucpr")), ""]
    if has_maps(results):
        parts += _localisation_parts(results)
    parts += ["## Summary", "", markdown_table(*summary_table(results)), "",
              "Means are over subsets (each the mean over its seeds); * = some subsets failed. "
              "Fit seconds are wall time of `fit` (PyOD detectors also score their training data "
              "there); the median per run is the least disturbed by other work on the machine; "
              "throughput is test samples / wall seconds of `decision_function`; peak RSS "
              "is the growth of the process's resident memory above its level before the run.",
              "", "## Command", "", f"```\n{command}\n```", "", "## Machine", ""]
    parts += [f"- {key}: {value}" for key, value in machine.items()]
    labelled = labelled_classes_lines(results)
    if labelled:
        parts += ["", "## Labelled anomalies of the training data", ""] + labelled
    parts += ["", "## Detector settings (first run of each)", ""]
    first = results.drop_duplicates("detector")
    parts += [f"- {row.detector}: `{row.params}`" for row in first.itertuples() if row.params]
    errors = failures(results)
    if errors:
        parts += ["", "## Failures", ""]
        parts += [f"- {d} on {s} (seed {seed}): {e}" for d, s, seed, e in errors]
    return "\n".join(parts) + "\n"


def _localisation_parts(results):
    return ["## Localisation (means over runs)", "", markdown_table(*localisation_table(results)),
            "", "Image AUROC from `decision_function`, pixel AUROC over every test pixel and "
            "AUPRO up to 30 % false-positive rate (MVTec AD's per-region overlap) from "
            "`anomaly_map`; images/s: `decision_function`, maps/s: `anomaly_map`, a pass of "
            "its own; `-`: the detector gives no map. Rows `<subset>/<class>` below score "
            "the normal test images against that defect class only; the picture of maps is "
            "maps.png.", "",
            "## Pixel AUROC per subset (mean over seeds)", "",
            markdown_table(*metric_table(results, "pixel_auroc", missing=NO_MAP)), "",
            "## AUPRO per subset (mean over seeds)", "",
            markdown_table(*metric_table(results, "aupro", missing=NO_MAP)), ""]


def plot_auroc(results, path, title):
    """Save a grouped bar chart of AUROC per subset (and the mean) and detector.

    Bars are the means over seeds, with a dot per seed when there are several; the mean
    group carries its values; the axis starts a little below the lowest value, so that
    0.88 and 0.98 look different; detectors with failed runs are named so in the legend
    and marked with an x where a bar is missing.
    """
    import textwrap

    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    runs = run_rows(results)
    table = per_subset_means(results, "auroc")
    table.loc["mean"] = per_subset_means(runs, "auroc").mean()
    n_groups, n_bars = table.shape
    width = 0.8 / max(n_bars, 1)
    fig_width = min(max(6.0, 0.15 * n_groups * n_bars + 3), 40)
    fig, ax = plt.subplots(figsize=(fig_width, 4.5))
    low = _axis_floor(table)
    positions = np.arange(n_groups)
    for i, detector in enumerate(table.columns):
        x = positions + (i - (n_bars - 1) / 2) * width
        values = table[detector]
        bars = ax.bar(x, values.fillna(low) - low, width, bottom=low,
                      label=_legend_label(runs, detector))
        missing = values.isna().to_numpy()
        colour = bars.patches[0].get_facecolor()
        ax.plot(x[missing], np.full(missing.sum(), low), "x", color=colour, markersize=8,
                markeredgewidth=2, clip_on=False)
        _seed_dots(ax, results, detector, table.index, x)
        if not np.isnan(values.iloc[-1]):
            ax.annotate(f"{values.iloc[-1]:.3f}", (x[-1], values.iloc[-1]), ha="center",
                        va="bottom", fontsize="x-small", rotation=90, xytext=(0, 2),
                        textcoords="offset points")
    if low < 0.5:
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)  # chance level
    ax.set(xticks=positions, ylim=(low, 1.02), ylabel="AUROC (test set)",
           xlabel="normal class or data set (mean: over them)")
    ax.set_title("\n".join(textwrap.wrap(title, width=int(fig_width * 11))), fontsize="medium")
    # slanted labels when they would not fit side by side (about 7 characters an inch)
    crowded = sum(len(str(name)) + 2 for name in table.index) > 7 * (fig_width - 2)
    ax.set_xticklabels(table.index, rotation=35 if crowded else 0,
                       ha="right" if crowded else "center")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))  # off the bars
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _axis_floor(table):
    """A y-axis start 0.05 below the lowest value, rounded down to a tenth (0 at most)."""
    lowest = np.nanmin(table.to_numpy(dtype=float)) if table.notna().any().any() else 0.0
    return float(max(0.0, np.floor((lowest - 0.05) * 10) / 10))


def _legend_label(runs, detector):
    mine = runs[runs["detector"] == detector]
    failed = int((mine["status"] != "ok").sum())
    return f"{detector} (failed {failed}/{len(mine)})" if failed else detector


def _seed_dots(ax, results, detector, subsets, x):
    """A dot per seed on each bar, where a subset ran with more than one seed."""
    ok = results[(results["detector"] == detector) & (results["status"] == "ok")]
    by_subset = ok.groupby("subset")["auroc"]
    if ok.empty or by_subset.size().max() < 2:
        return
    for position, subset in zip(x, subsets):
        if subset in by_subset.groups:
            values = by_subset.get_group(subset).to_numpy()
            ax.plot(np.full(len(values), position), values, ".", color="black", markersize=3)


def example_images(task, per_class=1, n_normal=2, seed=0):
    """Indices of test images to picture: ``per_class`` of each defect class, then
    ``n_normal`` normal ones, drawn with a fixed seed; None without masks."""
    if task.masks_eval is None:
        return None
    rng = np.random.default_rng(seed)
    groups = task.groups_eval if task.groups_eval is not None else task.y_eval.astype(str)
    chosen = []
    for group in pd.unique(groups[task.y_eval == 1]):
        members = np.flatnonzero((groups == group) & (task.y_eval == 1))
        chosen += rng.choice(members, min(per_class, len(members)), replace=False).tolist()
    normal = np.flatnonzero(task.y_eval == 0)
    chosen += rng.choice(normal, min(n_normal, len(normal)), replace=False).tolist()
    return np.array(chosen, dtype=int)


def pictured_detectors(maps, results):
    """MCAD (when it has maps) and the baseline of best pixel AUROC, in that order."""
    with_maps = [name for name, value in maps.items() if value is not None]
    runs = run_rows(results)
    pixel = runs.groupby("detector")["pixel_auroc"].mean()
    mcad = [name for name in with_maps if name == "mcad"]
    others = sorted((name for name in with_maps if not name.startswith("mcad")),
                    key=lambda name: -pixel.get(name, -np.inf))
    return mcad + others[:1] if mcad else others[:2]


def plot_map_grid(task, shown, maps, results, path):
    """Save a grid: per row a test image, its mask and the maps of :func:`pictured_detectors`.

    Each detector's maps share one colour scale (the range of its maps over the pictured
    images), so a map that is bright on a normal image is bright in the detector's terms.
    Nothing is written when no detector gave maps.
    """
    names = pictured_detectors(maps, results)
    if not names:
        return
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    columns = ["image", "mask"] + names
    fig, axes = plt.subplots(len(shown), len(columns), squeeze=False,
                             figsize=(1.8 * len(columns), 1.8 * len(shown)))
    groups = task.groups_eval if task.groups_eval is not None else task.y_eval.astype(str)
    for row, index in enumerate(shown):
        image = task.X_eval[index]
        panels = [(image, "gray", None), (task.masks_eval[index], "gray", (0, 1))]
        panels += [(maps[name][row], "inferno", (maps[name].min(), maps[name].max()))
                   for name in names]
        for col, (picture, cmap, limits) in enumerate(panels):
            ax = axes[row, col]
            vmin, vmax = limits if limits else (0, 1)
            ax.imshow(picture, cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize="small")
        axes[row, 0].set_ylabel(str(groups[index]), fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
