"""The page of a probe: ``<run>/probes/<name>/report.html`` + ``report.md`` + ``figures/`` + ``results.json``.

A table of accuracy per layer x method x train subset x scored set, the kNN-accuracy-vs-k curve
of each layer, learning curves across train subsets, and a t-SNE map per layer colored by class.
``learning_curve_figure`` is public: it also draws the fine-tuning series (000-c/d/e) side by side.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping

from matplotlib import colormaps
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import NullLocator

from cnnlab.atomic import write_text_atomically
from cnnlab.features.probe import KnnCurve, LayerMap, ProbeResult
from cnnlab.report import _format as fmt
from cnnlab.report._figures import figure_to_png_bytes, new_figure
from cnnlab.report.blocks import (Figure, Paragraph, Section, Table, figures_of, render_html, render_markdown,
                                  write_figures)

PROBES = "probes"
LEGEND_MAX_CLASSES = 20  # above this a t-SNE legend hides the map; the colours still separate classes


def learning_curve_figure(series: Mapping[str, Mapping[int, float]], title: str = "",
                          xlabel: str = "training images") -> MplFigure:
    """Accuracy (%) against the number of training images, one line per method.

    ``series`` = {method: {training images: accuracy as a fraction}}, e.g. {"frozen head": {100: 0.45,
    1000: 0.553, 10000: 0.582}, "kNN": {...}, "full fine-tuning": {10000: 0.852}}. The x axis is
    logarithmic when the sizes span more than a factor of 10 (100 / 1,000 / 10,000 / all).
    """
    if not series or not any(series.values()):
        raise ValueError("learning_curve_figure needs {method: {training images: accuracy}} with at least one point")
    sizes = sorted({int(n) for points in series.values() for n in points})
    if sizes[0] < 1:
        raise ValueError(f"training-set sizes must be positive image counts, got {sizes[0]}")
    for method, points in series.items():
        bad = [a for a in points.values() if not 0 <= a <= 1]
        if bad:
            raise ValueError(f"{method}: accuracies are fractions in 0..1, got {bad[0]}; divide percentages by 100")
    fig = new_figure(7, 4.2)
    ax = fig.subplots()
    for method, points in series.items():
        xs = sorted(points)
        ax.plot(xs, [100 * points[x] for x in xs], "-o", markersize=5, label=method)
    if sizes[-1] > 10 * sizes[0]:
        ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


def knn_curve_figure(curves: list[KnnCurve], title: str = "") -> MplFigure:
    """kNN accuracy (%) against k, one line per (train subset, scored set); the best k of each is marked."""
    if not curves:
        raise ValueError("knn_curve_figure needs at least one kNN curve")
    fig = new_figure(7, 4.2)
    ax = fig.subplots()
    several_sets = len({c.score_set for c in curves}) > 1
    for curve in curves:
        label = f"{curve.fit_size:,} fit images" + (f", {curve.score_set}" if several_sets else "")
        accs = [100 * a for a in curve.accuracies]
        line, = ax.plot(curve.ks, accs, "-", marker="." if len(curve.ks) > 1 else "o", label=label)
        best = max(range(len(accs)), key=lambda i: (accs[i], -i))
        ax.plot([curve.ks[best]], [accs[best]], "*", markersize=12, color=line.get_color())
    ax.set_xlabel("k (neighbours)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="★ best k")
    if title:
        ax.set_title(title)
    return fig


def tsne_figure(layer_map: LayerMap, classes: list[str], title: str = "") -> MplFigure:
    """The t-SNE map of one layer, one colour per class."""
    points, labels = layer_map.tsne.points, layer_map.tsne.labels
    fig = new_figure(6.5, 5.5)
    ax = fig.subplots()
    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "turbo"]
    size = min(30.0, max(4.0, 4000.0 / max(1, len(labels))))  # points² per dot: small when thousands overlap
    for c, name in enumerate(classes):
        mask = labels == c
        if mask.any():
            color = cmap(c if len(classes) <= 20 else c / max(1, len(classes) - 1))
            ax.scatter(points[mask, 0], points[mask, 1], s=size, color=color, label=name, alpha=0.8, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(classes) <= LEGEND_MAX_CLASSES:
        ax.legend(markerscale=2.5, fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title or f"t-SNE of {layer_map.layer} ({len(labels):,} {layer_map.score_set} images)")
    return fig


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", text).strip("_") or "x"


def _figure(name: str, fig: MplFigure, caption: str) -> Figure:
    return Figure(name=name, png=figure_to_png_bytes(fig), caption=caption)


def _setup(result: ProbeResult, run_name: str) -> Section:
    spec = result.spec
    dims = {row.layer: row.dim for row in result.rows}
    pairs = [("run", run_name), ("preset", spec.preset or fmt.ABSENT),
             ("layers", ", ".join(f"{layer} (D = {dims[layer]:,})" if layer in dims else layer
                                  for layer in spec.layers)),
             ("fit split", spec.fit_split + (f", first {spec.first:,} images" if spec.first else "")),
             ("scored on", f"{100 * spec.holdout:g}% of those held out (stratified)" if spec.holdout is not None
              else ", ".join(spec.score_splits)),
             ("train subsets", ", ".join("all" if s is None else f"{s:,}" for s in spec.train_subsets)
              + " (stratified, seeded)"),
             ("methods", ", ".join(([f"kNN, k = {spec.ks[0]}..{spec.ks[-1]}"] if spec.ks else [])
                                   + (["linear SVM (one-vs-rest)"] if spec.svm else [])
                                   + (["logistic regression"] if spec.logreg else [])
                                   + ([f"t-SNE (at most {spec.tsne_points:,} points)"] if spec.tsne else []))),
             ("seed", str(spec.seed)), ("time", fmt.duration(result.seconds))]
    blocks: list = [Table(headers=["", "value"], rows=[[k, v] for k, v in pairs])]
    if spec.ks:
        blocks.append(Paragraph("kNN: raw features, euclidean distance, uniform votes; a tied vote goes to the "
                                "lowest class index, as in scikit-learn's KNeighborsClassifier."))
    if spec.svm or spec.logreg:
        blocks.append(Paragraph("Linear SVM and logistic regression see standardized features (mean 0, std 1 per "
                                "feature, fitted on the fit images only)."))
    return Section("Setup", blocks)


def _table(result: ProbeResult) -> Section:
    rows, values = [], []
    for r in result.rows:
        rows.append([r.layer, f"{r.dim:,}", r.method_label, f"{r.fit_size:,}", r.score_set, f"{r.score_size:,}",
                     fmt.percent(r.accuracy), str(r.best_k) if r.best_k is not None else fmt.ABSENT])
        values.append([r.layer, r.dim, r.method_label, r.fit_size, r.score_set, r.score_size,
                       100 * r.accuracy, r.best_k])
    headers = ["layer", "D", "method", "fit images", "scored on", "images scored", "accuracy", "best k"]
    blocks: list = [Table(headers=headers, rows=rows, sort_values=values, sortable=True, table_id="probe-results")]
    if not rows:
        blocks = [Paragraph("No classifier was fitted (t-SNE only).")]
    return Section("Accuracy", blocks)


def build_sections(result: ProbeResult, run_name: str) -> list[Section]:
    """Every section of the probe page (figures rendered to PNG)."""
    sections = [_setup(result, run_name), _table(result)]
    if result.notes:
        sections[1].blocks.extend(Paragraph(f"Note: {note}.") for note in result.notes)
    knn = [_figure(f"knn-{_file_part(layer)}.png", knn_curve_figure(curves, f"kNN on {layer}"),
                   f"kNN accuracy against k, {layer}")
           for layer in result.spec.layers if (curves := [c for c in result.curves if c.layer == layer])]
    if knn:
        sections.append(Section("kNN accuracy against k", knn))
    if len(result.spec.train_subsets) > 1:
        learning = []
        for layer in result.spec.layers:
            for score_set in dict.fromkeys(r.score_set for r in result.rows if r.layer == layer):
                series = result.learning_curves(layer, score_set)
                learning.append(_figure(f"learning-{_file_part(layer)}-{_file_part(score_set)}.png",
                                        learning_curve_figure(series, f"{layer}, scored on {score_set}",
                                                              xlabel="fit images"),
                                        f"accuracy against the number of fit images, {layer}, {score_set}"))
        sections.append(Section("Learning curves", learning))
    if result.maps:
        sections.append(Section("t-SNE", [
            _figure(f"tsne-{_file_part(m.layer)}.png", tsne_figure(m, result.classes),
                    f"t-SNE of {m.layer} on {len(m.tsne.labels):,} {m.score_set} images, coloured by class")
            for m in result.maps]))
    return sections


def probe_dir(run_dir: str | Path, name: str) -> Path:
    """``<run>/probes/<name>``; ValueError for a name that is not one folder name."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"probe name {name!r} must be one folder name (no slashes); pass --name NAME")
    return Path(run_dir) / PROBES / name


def write_probe_page(result: ProbeResult, run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the probe's page, figures and results.json under ``<run>/probes/<name>/`` (or
    ``out_dir``: the run folder is then left alone); returns report.html.

    Every file is written atomically, figures first, so the page never links a missing figure;
    figures of an earlier probe of the same name that this one no longer draws are removed.
    """
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else probe_dir(run_dir, result.spec.folder_name())
    title = f"Probe {result.spec.folder_name()} of {run_dir.name}"
    sections = build_sections(result, run_dir.name)
    write_figures(out / "figures", figures_of(sections))
    write_text_atomically(out / "results.json", json.dumps(result.to_dict(), indent=2) + "\n")
    write_text_atomically(out / "report.md", render_markdown(title, sections))
    return write_text_atomically(out / "report.html", render_html(title, sections))


def results_table(result: ProbeResult) -> str:
    """The accuracy table as Markdown, for the terminal."""
    from cnnlab.report.blocks import markdown_table

    rows = [[r.layer, r.method_label, f"{r.fit_size:,}", r.score_set, fmt.percent(r.accuracy),
             str(r.best_k) if r.best_k is not None else ""] for r in result.rows]
    return markdown_table(["layer", "method", "fit images", "scored on", "accuracy", "best k"], rows)


def knn_table(result: ProbeResult) -> str:
    """kNN accuracy at every k swept, one column per (layer, fit subset, scored set), for the
    terminal ('' without a kNN sweep). The best k of each column is marked with *."""
    from cnnlab.report.blocks import markdown_table

    if not result.curves:
        return ""
    many_layers = len({c.layer for c in result.curves}) > 1
    headers = ["k"] + [(f"{c.layer} " if many_layers else "") + f"fit {c.fit_size:,} / {c.score_set}"
                       for c in result.curves]
    ks = sorted({k for c in result.curves for k in c.ks})
    columns = []
    for c in result.curves:
        by_k = dict(zip(c.ks, c.accuracies))
        best = max(c.accuracies)
        columns.append({k: fmt.percent(a) + ("*" if a == best else "") for k, a in by_k.items()})
    rows = [[str(k)] + [col.get(k, "") for col in columns] for k in ks]
    return markdown_table(headers, rows)


def probe_outcome(result: ProbeResult, page: str | Path) -> str:
    """The closing block of `cnnlab probe`: per layer, each method's accuracy (kNN with its best k) on
    the largest fit set and the first scored set, then the page."""
    lines = [f"result: probe {result.spec.folder_name()} in {fmt.duration(result.seconds)}"]
    layers = list(dict.fromkeys(r.layer for r in result.rows))
    width = max([len("page")] + [len(layer) for layer in layers])
    for layer in layers:
        rows = [r for r in result.rows if r.layer == layer]
        fit = max(r.fit_size for r in rows)
        scored = rows[0].score_set
        parts = []
        for r in rows:
            if r.fit_size == fit and r.score_set == scored:
                parts.append(f"{r.method_label} {fmt.percent(r.accuracy)}"
                             + (f" (k={r.best_k})" if r.best_k is not None else ""))
        lines.append(f"  {layer:<{width}}  " + "   ".join(parts) + f"   (fit on {fit:,} images, scored on {scored})")
    lines.append(f"  {'page':<{width}}  {page}")
    return "\n".join(lines)


__all__ = ["build_sections", "knn_curve_figure", "knn_table", "learning_curve_figure", "probe_dir", "probe_outcome",
           "results_table", "tsne_figure", "write_probe_page"]
