"""A sweep's results: one table (the grid values per point, then report 003's comparison table)
and a figure of a metric over the grid, both written into the sweep folder.

Only finished runs (completed, early stopped) enter a mean; a point's seeds give mean ± sample std.
"""
from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from pathlib import Path

from cnnlab.atomic import write_text_atomically
from cnnlab.report._figures import new_figure, save_figure
from cnnlab.report.blocks import markdown_table
from cnnlab.report.compare import compare_runs
from cnnlab.runfolder import FINISHED, load_run_data
from cnnlab.search.grid import format_value
from cnnlab.search.sweep_folder import Sweep, point_label

METRICS = ("val_acc", "test_acc", "train_acc", "val_loss", "test_loss", "train_loss")


@dataclass
class PointResult:
    point_id: str
    values: tuple          # one value per grid axis, in axis order
    metric: list[float]    # the metric of each finished run (one per seed)
    unfinished: int        # runs of the point not finished (running, killed, diverged, not started)


def point_results(sweep: Sweep, metric: str = "val_acc") -> list[PointResult]:
    if metric not in METRICS:
        raise ValueError(f"--metric {metric!r}: use one of {', '.join(METRICS)}")
    axes = sweep.axes
    results = []
    for index, point in enumerate(sweep.points):
        combo = next(itertools.islice(itertools.product(*(a.values for a in axes)), index, None), ())
        values, unfinished = [], sweep.seeds
        for entry in point.get("runs") or []:
            run_dir = sweep.folder / entry["folder"]
            if not run_dir.is_dir():
                continue
            run = load_run_data(run_dir)
            value = run.final(metric)
            if run.status in FINISHED and value is not None:
                values.append(value)
                unfinished -= 1
        results.append(PointResult(point["id"], tuple(combo), values, unfinished))
    return results


def _mean_std(values: list[float], scale: float) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = statistics.fmean(values) * scale
    return mean, (statistics.stdev(values) * scale if len(values) > 1 else None)


def grid_table_md(sweep: Sweep, results: list[PointResult], metric: str) -> str:
    """point | each axis | n | metric (mean ± std) — the grid at a glance."""
    percent = metric.endswith("_acc")
    headers = ["point"] + [a.name for a in sweep.axes] + ["n", metric + (" (%)" if percent else "")]
    rows = []
    for r in results:
        mean, std = _mean_std(r.metric, 100.0 if percent else 1.0)
        shown = "—" if mean is None else (f"{mean:.2f}" if percent else f"{mean:.4f}")
        if std is not None:
            shown += f" ± {std:.2f}" if percent else f" ± {std:.4f}"
        if r.unfinished:
            shown += f" ({r.unfinished} unfinished)"
        rows.append([r.point_id] + [format_value(v) for v in r.values] + [str(len(r.metric)), shown])
    return markdown_table(headers, rows)


def plot_grid(sweep: Sweep, results: list[PointResult], metric: str, out_png: Path) -> Path | None:
    """The metric against the first axis' values, one line per combination of the other axes,
    error bars = sample std over seeds. None when the grid has no axis."""
    axes = sweep.axes
    if not axes:
        return None
    percent = metric.endswith("_acc")
    scale = 100.0 if percent else 1.0
    first = axes[0]
    fig = new_figure(7, 4.5)
    ax = fig.subplots()
    series: dict[tuple, list[tuple[int, float, float]]] = {}
    for r in results:
        mean, std = _mean_std(r.metric, scale)
        if mean is None:
            continue
        x = first.values.index(r.values[0])
        series.setdefault(r.values[1:], []).append((x, mean, std or 0.0))
    for i, (rest, points) in enumerate(series.items()):
        label = ", ".join(f"{a.name}={format_value(v)}" for a, v in zip(axes[1:], rest)) or metric
        xs, ys, errs = zip(*sorted(points))
        # a small sideways shift per line (fraction of a category) keeps overlapping error bars apart
        shift = (i - (len(series) - 1) / 2) * 0.04
        ax.errorbar([x + shift for x in xs], ys, yerr=errs, marker="o", capsize=3, label=label, color=f"C{i % 10}")
    ax.set_xticks(range(len(first.values)), [format_value(v) for v in first.values])
    ax.set_xlabel(first.name)
    ax.set_ylabel(metric + (" (%)" if percent else ""))
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    n = f"mean ± std over {sweep.seeds} seeds" if sweep.seeds > 1 else "one run per point"
    ax.set_title(f"{sweep.folder.name}: {metric} ({n})", fontsize=9)
    return save_figure(fig, out_png)


def write_sweep_report(sweep: Sweep, metric: str = "val_acc") -> tuple[Path, Path | None, str]:
    """sweep.md (grid table + comparison table) and sweep.png; returns (md, png, the text printed)."""
    results = point_results(sweep, metric)
    run_dirs = [sweep.folder / r["folder"] for p in sweep.points for r in p.get("runs") or []
                if (sweep.folder / r["folder"]).is_dir()]
    text = f"# Sweep {sweep.folder.name}\n\n" + grid_table_md(sweep, results, metric) + "\n"
    if run_dirs:
        text += "\n" + compare_runs(run_dirs, fmt="md")
    md = write_text_atomically(sweep.folder / "sweep.md", text)
    png = plot_grid(sweep, results, metric, sweep.folder / "sweep.png")
    return md, png, text


def _shown(metric: str, values: list[float]) -> str:
    """mean ± std of a point's runs as the grid table shows it, with the metric's unit."""
    percent = metric.endswith("_acc")
    mean, std = _mean_std(values, 100.0 if percent else 1.0)
    digits = 2 if percent else 4
    text = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")
    return text + ("%" if percent else "")


def sweep_outcome(sweep: Sweep, metric: str = "val_acc", md: Path | None = None, png: Path | None = None) -> str:
    """The closing block of `cnnlab sweep`: how many runs finished, the best point by `metric` (highest
    accuracy, lowest loss; mean over its seeds) with its test accuracy and run folders, and the pages."""
    results = point_results(sweep, metric)
    finished = sum(len(r.metric) for r in results)
    lines = [f"result: sweep {sweep.folder.name}: {len(sweep.points)} points x {sweep.seeds} seed(s), "
             f"{finished} of {len(sweep.points) * sweep.seeds} runs finished"]
    scored = [r for r in results if r.metric]
    if scored:
        sign = -1.0 if metric.endswith("_loss") else 1.0
        best = max(scored, key=lambda r: sign * statistics.fmean(r.metric))
        point = next(p for p in sweep.points if p["id"] == best.point_id)
        runs = [sweep.folder / e["folder"] for e in point.get("runs") or [] if (sweep.folder / e["folder"]).is_dir()]
        line = f"  best point      {best.point_id} ({point_label(point)}): {metric} {_shown(metric, best.metric)}"
        if metric != "test_acc":
            tests = [v for v in (load_run_data(r).final("test_acc") for r in runs) if v is not None]
            if tests:
                line += f", test_acc {_shown('test_acc', tests)}"
        lines.append(line)
        for run in runs:
            page = run / "report.html"
            lines.append(f"  {'its run':<15} {page if page.is_file() else run}")
    else:
        lines.append(f"  best point      none yet: no finished run has {metric}"
                     + (" (no validation split? try --metric test_acc)" if metric.startswith("val_") else ""))
    if md is not None:
        lines.append(f"  {'table':<15} {md}")
    if png is not None:
        lines.append(f"  {'figure':<15} {png}")
    return "\n".join(lines)


__all__ = ["sweep_outcome", "write_sweep_report", "point_results", "grid_table_md", "plot_grid", "PointResult",
           "METRICS"]
