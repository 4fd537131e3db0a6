"""Accuracy against the number of training images, across runs and probes (000-c / 000-d / 000-e).

Report 000 compares three ways of using a CIFAR-100 network on CIFAR-10 subsets of 100 / 1,000 /
10,000 images: a new last layer on frozen features (000-c, runs), kNN on the features (000-d, a
probe) and training everything (000-e, runs). ``learning_curves`` gathers such results into
``{series: {training images: accuracy}}`` and ``write_learning_curve`` draws them side by side with
``learning_curve_figure`` and writes the table beside the figure.

- A run folder gives one point: its experiment name is the series, ``summary.json["data"]["train"]``
  the training images, ``final[metric]`` the accuracy. Seeds of one name and size are averaged.
- A probe folder (``<run>/probes/<name>/results.json``) gives a series per layer and method: the
  ``fit images`` of each row scored on ``score_set``.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Iterable

from cnnlab.atomic import write_text_atomically
from cnnlab.features.linear import LABELS as METHOD_LABELS
from cnnlab.report import _format as show
from cnnlab.report._figures import save_figure
from cnnlab.report.blocks import markdown_table
from cnnlab.runfolder import FINISHED
from cnnlab.report.probe_page import learning_curve_figure
from cnnlab.runfolder import load_run_data

RUN_METRICS = ("test_acc", "val_acc", "test_tta_acc")

Series = dict[str, dict[int, float]]


def is_probe_folder(path: Path) -> bool:
    return (Path(path) / "results.json").is_file()


def _probe_series(folder: Path, score_set: str) -> Series:
    try:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        rows = results["rows"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{folder}/results.json is not a probe's results ({err}); write it with cnnlab probe") from err
    series: Series = {}
    for row in rows:
        if row.get("score_set") != score_set:
            continue
        label = f"{METHOD_LABELS.get(row['method'], row['method'])} on {row['layer']} ({folder.name})"
        series.setdefault(label, {})[int(row["fit_size"])] = float(row["accuracy"])
    if not series:
        scored = sorted({str(r.get("score_set")) for r in rows})
        raise ValueError(f"{folder}: no probe rows scored on {score_set!r}; this probe scored on {', '.join(scored)} "
                         f"(choose one with --score-set)")
    return series


def learning_curves(sources: Iterable[str | Path], metric: str = "test_acc", score_set: str = "test") -> Series:
    """{series: {training images: accuracy (fraction)}} from run folders and probe folders.

    A run that has not finished, or lacks ``metric``, is an error naming it rather than a point left
    out silently; so is a path that is neither a run nor a probe folder.
    """
    if metric not in RUN_METRICS:
        raise ValueError(f"metric {metric!r}: use one of {', '.join(RUN_METRICS)}")
    points: dict[str, dict[int, list[float]]] = {}
    series: Series = {}
    for source in sources:
        path = Path(source)
        if is_probe_folder(path):
            for label, curve in _probe_series(path, score_set).items():
                series.setdefault(label, {}).update(curve)
            continue
        run = load_run_data(path)   # raises RunFolderError naming the folder when it is no run
        summary = run.summary or {}
        if run.status not in FINISHED:
            raise ValueError(f"{path}: the run is {run.status or 'unfinished'}; finish it (cnnlab train --resume) "
                             f"or leave it out")
        images = (summary.get("data") or {}).get("train")
        value = run.final(metric)
        if images is None or value is None:
            raise ValueError(f"{path}: summary.json has no {'data.train' if images is None else 'final.' + metric}")
        points.setdefault(run.name, {}).setdefault(int(images), []).append(value)
    for name, by_size in points.items():
        series[name] = {size: statistics.fmean(values) for size, values in by_size.items()}
    if not series:
        raise ValueError("no runs or probe folders given")
    return series


def curve_table(series: Series) -> str:
    """Markdown: one row per series, one column per training-set size."""
    sizes = sorted({size for curve in series.values() for size in curve})
    rows = [[name] + [show.percent(curve.get(size)) for size in sizes] for name, curve in series.items()]
    return markdown_table(["series"] + [f"{size:,} images" for size in sizes], rows)


def write_learning_curve(sources: Iterable[str | Path], out_png: str | Path, metric: str = "test_acc",
                         score_set: str = "test", title: str = "") -> tuple[Path, str]:
    """Draw the learning curves of ``sources`` into ``out_png`` and write the table beside it
    (``<out>.md``); returns the figure's path and the table."""
    series = learning_curves(sources, metric=metric, score_set=score_set)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(learning_curve_figure(series, title=title), out)
    table = curve_table(series)
    write_text_atomically(out.with_suffix(".md"), table + "\n")
    return out, table
