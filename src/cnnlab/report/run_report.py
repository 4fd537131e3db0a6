"""The per-run report: one self-contained HTML page and a Markdown twin with PNG figures."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image as PILImage

from cnnlab.evaluate._inputs import PredictionFormatError
from cnnlab.evaluate.examples import EXAMPLE_COLUMNS, GROUP_TITLES, example_groups
from cnnlab.evaluate.metrics import classification_metrics, format_confused_pair, most_confused_pairs
from cnnlab.evaluate.milestones import time_to_accuracy
from cnnlab.report import _format as fmt
from cnnlab.atomic import write_text_atomically
from cnnlab.report._figures import figure_to_png_bytes
from cnnlab.report.blocks import (Figure, Paragraph, Preformatted, Section, Table, figures_of, render_html,
                                  render_markdown, write_figures)
from cnnlab.report.confusion import confusion_figure
from cnnlab.report.curves import curves_figure, learning_rate_figure
from cnnlab.report.example_grid import as_image_array, examples_figure
from cnnlab.runfolder import SPLIT_ORDER, RunData, load_run_data

MAIN_SPLIT_PREFERENCE = ("test", "val", "train")  # per-class table and examples use the first present
EXAMPLES_PER_GROUP = 9  # a 3 x 3 grid, as report 004-a
CONFUSED_PAIRS_SHOWN = 10
SPLIT_LABELS = {"train": "train", "val": "validation", "test": "test", "test_tta": "test (flip TTA)"}


@dataclass
class RenderedReport:
    """A report ready to write: HTML page, Markdown text and its figures (file name -> PNG bytes)."""

    title: str
    html: str
    markdown: str
    figures: dict[str, bytes]


def _figure(name: str, fig: Any, caption: str) -> Figure:
    return Figure(name=name, png=figure_to_png_bytes(fig), caption=caption)


def _split_label(split: str, config: dict | None = None) -> str:
    views = (config or {}).get("tta")
    if split == "test_tta" and views == "flip+translate":
        return "test (flip + translate TTA)"
    if split == "test_tta" and views == "airbench":
        return "test (flip + translate TTA, airbench's weights)"
    return SPLIT_LABELS.get(split, split)


def _key_value_table(pairs: list[tuple[str, Any]]) -> Table:
    rows = []
    for key, value in pairs:
        if isinstance(value, (dict, list)):
            value = json.dumps(value, sort_keys=True)
        rows.append([key, fmt.ABSENT if value is None else str(value)])
    return Table(headers=["", "value"], rows=rows)


def _overview(run: RunData) -> Section:
    summary = run.summary or {}
    epochs = summary.get("epochs_completed", len(run.metrics) or None)
    planned = summary.get("epochs", (run.config or {}).get("epochs"))
    return Section("Overview", [_key_value_table([
        ("experiment", run.name), ("run", run.run_id), ("status", summary.get("status")),
        ("model", summary.get("model") or ((run.config or {}).get("model") or {}).get("name")),
        ("seed", summary.get("seed", (run.config or {}).get("seed"))),
        ("epochs", f"{fmt.ABSENT if epochs is None else epochs} of {fmt.ABSENT if planned is None else planned}"),
        ("device", summary.get("device")),
    ])])


def _final_results(run: RunData) -> Section:
    rows = []
    for split in ("train", "val", "test", "test_tta"):   # test_tta: with `tta: true` (accuracy only)
        loss, acc = run.final(f"{split}_loss"), run.final(f"{split}_acc")
        if loss is not None or acc is not None:
            rows.append([_split_label(split, run.config), fmt.decimal(loss), fmt.percent(acc)])
    if not rows:
        return Section("Final results", [
            Paragraph("No final numbers: summary.json and metrics.jsonl are absent or empty.")])
    return Section("Final results", [Table(headers=["split", "loss", "accuracy"], rows=rows)])


def _curves(run: RunData) -> Section:
    if not run.metrics:
        return Section("Training curves", [Paragraph("No per-epoch metrics (metrics.jsonl absent): no curves.")])
    blocks: list[Any] = [_figure("curves.png", curves_figure(run.metrics, run.name), "loss and accuracy per epoch")]
    if not any(row.get("val_loss") is not None for row in run.metrics):
        blocks.append(Paragraph("No validation split: only training curves are shown."))
    blocks.append(_figure("learning_rate.png", learning_rate_figure(run.metrics), "learning rate per epoch"))
    rows = [[str(r.get("epoch")), fmt.decimal(r.get("train_loss")), fmt.percent(r.get("train_acc")),
             fmt.decimal(r.get("val_loss")), fmt.percent(r.get("val_acc")),
             f"{r['lr']:.3g}" if r.get("lr") is not None else fmt.ABSENT,
             fmt.decimal(r.get("seconds"), 1), fmt.decimal(r.get("images_per_sec"), 0)] for r in run.metrics]
    headers = ["epoch", "train loss", "train acc", "val loss", "val acc", "lr", "seconds", "images/s"]
    blocks.append(Table(headers=headers, rows=rows))
    return Section("Training curves", blocks)


def _n_classes(probs: np.ndarray) -> int:
    probs = np.asarray(probs)
    return 2 if probs.ndim == 1 or probs.shape[1] == 1 else probs.shape[1]


def _class_names_for(run: RunData, split: str) -> list[str] | None:
    """The run's class names when they fit the split's predictions, else None (numbers are shown)."""
    names = run.class_names
    n_classes = _n_classes(run.predictions[split].probs)
    if names and len(names) == n_classes:
        return names
    if names:
        run.warnings.append(f"predictions/{split}.npz has {n_classes} classes but the run names {len(names)}: "
                            "classes are shown as numbers")
    return None


def _split_metrics(run: RunData) -> tuple[Section, dict[str, dict[str, Any]]]:
    computed: dict[str, dict[str, Any]] = {}
    problems: list[Paragraph] = []
    for split, predictions in run.predictions.items():
        try:
            computed[split] = classification_metrics(predictions.probs, predictions.labels,
                                                     _class_names_for(run, split))
        except PredictionFormatError as error:  # one bad file must not cost the whole report
            problems.append(Paragraph(f"predictions/{split}.npz skipped: {error}"))
            run.warnings.append(f"predictions/{split}.npz could not be evaluated ({error})")
    if not computed:
        return Section("Metrics per split", problems or [
            Paragraph("No predictions (predictions/*.npz absent): no metrics per split.")]), computed
    rows = [[_split_label(split, run.config), fmt.integer(m["n"]), fmt.percent(m["accuracy"]), fmt.decimal(m["log_loss"]),
             fmt.percent(m["top5_accuracy"]), fmt.percent(m["macro_avg"]["precision"]),
             fmt.percent(m["macro_avg"]["recall"]), fmt.percent(m["macro_avg"]["f1"])] for split, m in computed.items()]
    headers = ["split", "images", "accuracy", "log-loss", "top-5", "macro precision", "macro recall", "macro F1"]
    return Section("Metrics per split", [Table(headers=headers, rows=rows), *problems]), computed


def _main_split(available: Mapping[str, Any]) -> str | None:
    return next((s for s in MAIN_SPLIT_PREFERENCE if s in available), next(iter(available), None))


def _per_class(computed: dict[str, dict[str, Any]]) -> Section:
    split = _main_split(computed)
    if split is None:
        return Section("Per class", [Paragraph("No predictions: no per-class metrics.")])
    rows = [[c["class"], fmt.percent(c["precision"]), fmt.percent(c["recall"]), fmt.percent(c["f1"]), str(c["support"])]
            for c in computed[split]["per_class"]]
    return Section(f"Per class ({_split_label(split)})", [
        Paragraph("Recall is the per-class accuracy: the share of that class's images classified right."),
        Table(headers=["class", "precision", "recall (class accuracy)", "F1", "support"], rows=rows)])


def _confusion(computed: dict[str, dict[str, Any]]) -> Section:
    if not computed:
        return Section("Confusion matrices", [Paragraph("No predictions: no confusion matrices.")])
    blocks: list[Any] = []
    # extra prediction sets such as test_tta get a metrics row, not another pair of figures
    shown = [split for split in computed if split in SPLIT_ORDER] or list(computed)
    for split in shown:
        m, label = computed[split], _split_label(split)
        for normalize, kind in ((False, "counts"), (True, "row-normalized")):
            suffix = "normalized" if normalize else "counts"
            fig = confusion_figure(m["confusion_matrix"], m["class_names"], normalize, f"{label}: {kind}")
            blocks.append(_figure(f"confusion_{split}_{suffix}.png", fig, f"confusion matrix, {label}, {kind}"))
        pairs = most_confused_pairs(m["confusion_matrix"], m["class_names"], top=CONFUSED_PAIRS_SHOWN)
        if pairs:
            blocks.append(Paragraph(f"Most confused pairs, {label} (true -> predicted): "
                                    + "; ".join(format_confused_pair(p) for p in pairs[:3])))
            blocks.append(Table(headers=["true", "predicted", "count", "share of true class"],
                                rows=[[p["true"], p["predicted"], str(p["count"]), fmt.percent(p["share_of_true"])]
                                      for p in pairs]))
        else:
            blocks.append(Paragraph(f"No confusions on {label}: every image was classified right."))
    return Section("Confusion matrices", blocks)


SOURCE_KEY = "cnnlab-source"  # PNG text chunk naming the predictions an example grid was drawn from


def _predictions_fingerprint(run: RunData, split: str) -> str:
    """"predictions/<split>.npz sha256:<hex>" of the file the examples come from."""
    npz = run.run_dir / "predictions" / f"{split}.npz"
    digest = hashlib.sha256(npz.read_bytes()).hexdigest() if npz.is_file() else "absent"
    return f"predictions/{split}.npz sha256:{digest}"


def _saved_example_grid(run: RunData, key: str, split: str, fingerprint: str) -> bytes | None:
    """An example grid drawn by an earlier report from the very same predictions file, else None.

    Lets ``cnnlab report`` and the site show grids without the images, which only the trainer
    has; a grid from other predictions (re-evaluated, copied in) is never reused.
    """
    png = run.run_dir / "figures" / f"examples_{split}_{key}.png"
    if not png.is_file():
        return None
    try:
        with PILImage.open(png) as image:
            source = image.text.get(SOURCE_KEY)  # type: ignore[attr-defined]
    except OSError:
        return None
    return png.read_bytes() if source == fingerprint else None


def _examples(run: RunData, computed: Mapping[str, Any], images: Mapping[str, Any] | None) -> Section:
    split = _main_split(computed)
    if split is None:
        return Section("Best and worst examples", [Paragraph("No usable predictions: no best or worst examples.")])
    predictions = run.predictions[split]
    names = computed[split]["class_names"]
    groups = example_groups(predictions.probs, predictions.labels, names, predictions.indices, EXAMPLES_PER_GROUP)
    split_images = (images or {}).get(split)
    blocks: list[Any] = [Paragraph(
        f"Split: {_split_label(split)}. pred_prob is the probability of the predicted class; "
        "idx is the image's index in the source split.")]
    if split_images is not None:
        split_images = as_image_array(split_images)
        if len(split_images) != len(predictions.labels):
            blocks.append(Paragraph(
                f"The images passed for {_split_label(split)} number {len(split_images)} but its predictions "
                f"{len(predictions.labels)}: image grids skipped (pass one image per prediction row, in order)."))
            split_images = None
    grids = 0
    fingerprint = _predictions_fingerprint(run, split)
    for key, rows in groups.items():
        title = GROUP_TITLES[key]
        blocks.append(Paragraph(f"{title}:"))
        if not rows:
            blocks.append(Paragraph("(none)"))
            continue
        blocks.append(Table(headers=list(EXAMPLE_COLUMNS),
                            rows=[[f"{r['pred_prob']:.6f}", r["pred_cat"], r["y_cat"], str(r["idx"])] for r in rows]))
        name = f"examples_{split}_{key}.png"
        saved = None if split_images is not None else _saved_example_grid(run, key, split, fingerprint)
        if split_images is not None:
            png = figure_to_png_bytes(examples_figure(rows, split_images, title), {SOURCE_KEY: fingerprint})
            blocks.append(Figure(name=name, png=png, caption=title))
        elif saved is not None:
            blocks.append(Figure(name=name, png=saved, caption=title))
        else:
            continue
        grids += 1
    if grids == 0 and any(groups.values()):
        blocks.insert(1, Paragraph(
            "No images for this split, so the examples are tables only "
            "(pass images={split: uint8 N x C x H x W} to write_run_report)."))
    return Section("Best and worst examples", blocks)


def _timing_and_params(run: RunData) -> Section:
    summary = run.summary or {}
    params = summary.get("params") or {}
    epoch_seconds = [float(r["seconds"]) for r in run.metrics if r.get("seconds") is not None]
    return Section("Timing and size", [_key_value_table([
        ("wall time", fmt.duration(summary.get("wall_seconds"))),
        ("mean epoch time", fmt.duration(float(np.mean(epoch_seconds))) if epoch_seconds else None),
        ("training images/s", fmt.decimal(summary.get("images_per_sec"), 0)),
        ("parameters (total)", fmt.integer(params.get("total"))),
        ("trainable", fmt.integer(params.get("trainable"))),
        ("non-trainable", fmt.integer(params.get("non_trainable"))),
        ("torch total", fmt.integer(params.get("torch_total"))),
    ]), *_milestones(run)])


def _milestones(run: RunData) -> list:
    """Training time to each validation-accuracy milestone (test accuracy, when the run monitored it and
    has no validation split), or nothing for a run without either."""
    key, label = "val_acc", "validation"
    if not any(r.get("val_acc") is not None for r in run.metrics) and any(r.get("test_acc") is not None
                                                                          for r in run.metrics):
        key, label = "test_acc", "test (monitored after each epoch, used for no decision)"
    marks = time_to_accuracy(run.metrics, key=key)
    if not any(m.epoch for m in marks):
        return []
    rows = [[fmt.percent(m.accuracy, 0), str(m.epoch) if m.epoch else "not reached",
             fmt.duration(m.seconds) if m.epoch else ""] for m in marks]
    return [Paragraph(f"Time to {label} accuracy: training time (steps only) up to the end of the first epoch "
                      "at or above each milestone."),
            Table(headers=[f"{key.split('_')[0]} accuracy", "epoch", "training time"], rows=rows)]


def _text_section(title: str, text: str | None, absent: str) -> Section:
    return Section(title, [Preformatted(text) if text else Paragraph(absent)])


def _environment(run: RunData) -> Section:
    summary = run.summary or {}
    pairs: list[tuple[str, Any]] = [(f"version: {k}", v) for k, v in sorted((summary.get("versions") or {}).items())]
    hardware = summary.get("hardware")
    if isinstance(hardware, dict):
        pairs += [(f"hardware: {k}", v) for k, v in sorted(hardware.items())]
    else:
        pairs.append(("hardware", hardware))
    pairs.append(("git commit", summary.get("git_commit")))
    return Section("Versions and hardware", [_key_value_table(pairs)])


def build_sections(run: RunData, images: Mapping[str, Any] | None = None) -> list[Section]:
    """All report sections of ``run``, in page order."""
    metrics_section, computed = _split_metrics(run)
    return [
        _overview(run), _final_results(run), _curves(run), metrics_section, _per_class(computed),
        _confusion(computed), _examples(run, computed, images), _timing_and_params(run),
        _text_section("Model summary", run.model_summary, "model_summary.txt is absent."),
        _text_section("Config", run.config_text, "config.yaml is absent."),
        _environment(run),
    ]


def render_run_report(run: RunData, images: Mapping[str, Any] | None = None,
                      back_link: tuple[str, str] | None = None,
                      extra_sections: list[Section] | None = None) -> RenderedReport:
    """Render the report of a loaded run without writing anything (``back_link``: see ``render_html``).

    ``extra_sections`` (made by higher layers, e.g. the pipeline's Grad-CAM of the worst mistakes)
    go right after the best and worst examples, or at the end when the page has none.
    """
    sections = build_sections(run, images)
    if extra_sections:
        at = next((i + 1 for i, s in enumerate(sections) if s.title == "Best and worst examples"), len(sections))
        sections[at:at] = list(extra_sections)
    notes = list(run.missing) + list(run.warnings)
    if run.predictions and not any(name.startswith("examples_") for name in figures_of(sections)):
        notes.append("images (none passed: example tables only, no example grids)")
    title = f"cnnlab report: {run.name} ({run.run_id})"
    return RenderedReport(title=title, html=render_html(title, sections, notes, back_link),
                          markdown=render_markdown(title, sections, notes), figures=figures_of(sections))


def _robust_sections(run_dir: Path) -> list[Section]:
    """The robustness section when `cnnlab robust RUN` left <run>/robust/robust.json (opt-in: the
    evaluation is too slow on a CPU to run with every report)."""
    from cnnlab.evaluate.robust import read_robustness, robust_dir
    from cnnlab.report.robust_page import robust_section

    result = read_robustness(robust_dir(run_dir))
    if not result:
        return []
    try:
        return [robust_section(result)]
    except (KeyError, TypeError, ValueError):   # a robust.json of another shape: the report goes on without it
        return []


def write_run_report(run_dir: Path, images: dict[str, np.ndarray] | None = None,
                     extra_sections: list[Section] | None = None) -> tuple[Path, Path]:
    """Write ``run_dir/report.html`` (self-contained) and ``run_dir/report.md`` with PNGs in ``run_dir/figures/``.

    ``images`` maps a split name ("test", "val", "train") to that split's uint8 N x C x H x W
    images (numpy or torch) in the order of its predictions (row i of predictions/<split>.npz
    is images[i]); without it the examples are tables only (or reuse grids an earlier report
    drew from the same predictions). ``extra_sections`` are added to the page (see
    ``render_run_report``); a robustness section follows when ``<run>/robust/robust.json`` exists
    (``cnnlab robust``). Missing parts of the run are listed at the top of the
    report. Every file is written atomically; stale figures of an earlier report are removed.
    Returns (html_path, md_path).
    """
    run_dir = Path(run_dir)
    extra_sections = list(extra_sections or []) + _robust_sections(run_dir)
    report = render_run_report(load_run_data(run_dir), images, extra_sections=extra_sections)
    write_figures(run_dir / "figures", report.figures)
    md_path = write_text_atomically(run_dir / "report.md", report.markdown)
    html_path = write_text_atomically(run_dir / "report.html", report.html)
    return html_path, md_path


__all__ = ["RenderedReport", "build_sections", "render_run_report", "write_run_report"]
