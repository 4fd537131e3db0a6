"""Predictions of a run on image files: top-k classes per file, failures listed, and scores when
the files sit in class folders (folder/<class>/*.png): accuracy, per-class table, confusion matrix.

Files are decoded in chunks (``CHUNK`` files at a time, so memory stays bounded on any number of
files) exactly as the run's image folders were (``cnnlab.data.files``), then predicted batched
by ``LoadedRun.predict``. Outputs (CSV or JSON) are written atomically.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from cnnlab.atomic import write_text_atomically
from cnnlab.data.files import decode_files, find_image_files
from cnnlab.evaluate.metrics import classification_metrics

CHUNK = 1024               # files decoded at once: 1024 x 3 x 224 x 224 bytes = 154 MB at the largest common size
OUTPUT_SUFFIXES = (".csv", ".json")


@dataclass
class FilePredictions:
    """probs: float32 M x K for the M readable files (rows of ``files``); labels: class index per
    file, -1 when the file is not in a folder named like one of the run's classes."""

    classes: list[str]
    files: list[str]
    probs: np.ndarray
    labels: np.ndarray
    failed: dict[str, str] = field(default_factory=dict)     # path -> reason
    unscored_folders: list[str] = field(default_factory=list)  # class folders that are not run classes
    tta: bool | str = False   # false, "flip", "flip+translate" or "airbench" (train/predict.py TTA_SHIFTS)

    def __repr__(self) -> str:
        acc = self.metrics
        scored = f", accuracy {100 * acc['accuracy']:.2f}% on {acc['n']} labelled" if acc else ""
        return (f"FilePredictions({len(self.files)} file(s), {len(self.classes)} classes{scored}, "
                f"{len(self.failed)} unreadable)")

    @property
    def scored(self) -> np.ndarray:
        return self.labels >= 0

    @property
    def metrics(self) -> Optional[dict[str, Any]]:
        """classification_metrics of the files in class folders (None when there are none)."""
        if not self.scored.any():
            return None
        return classification_metrics(self.probs[self.scored], self.labels[self.scored], self.classes)

    def top(self, k: int) -> list[list[tuple[str, float]]]:
        """Per file, its k most probable classes with their probabilities, most probable first."""
        k = max(1, min(k, len(self.classes)))
        order = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
        return [[(self.classes[j], float(row[j])) for j in idx] for row, idx in zip(self.probs, order)]


def predict_files(run: Any, paths: Sequence[str | Path], tta: bool | str = False,
                  batch_size: Optional[int] = None) -> FilePredictions:
    """Predict every image file under ``paths`` (files and folders) with a loaded run."""
    listing = find_image_files(paths)
    class_index = {name: i for i, name in enumerate(run.classes)}
    groups = sorted({g for g in listing.groups if g is not None})
    unscored = [g for g in groups if g not in class_index]
    files, probs, labels = [], [], []
    failed = dict(listing.missing)
    for start in range(0, len(listing.files), CHUNK):
        chunk = listing.files[start:start + CHUNK]
        decoded = decode_files(chunk, run.input_size)
        failed.update(decoded.reasons)
        keep = np.flatnonzero(decoded.ok)
        if not len(keep):
            continue
        probs.append(run.predict(decoded.images[keep], batch_size=batch_size, tta=tta))
        for i in keep:
            files.append(chunk[i])
            labels.append(class_index.get(listing.groups[start + i], -1))
    k = len(run.classes)
    return FilePredictions(classes=list(run.classes), files=files,
                           probs=np.concatenate(probs) if probs else np.zeros((0, k), np.float32),
                           labels=np.asarray(labels, dtype=np.int64), failed=failed,
                           unscored_folders=unscored, tta=tta)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def format_predictions(result: FilePredictions, top_k: int = 3, list_files: bool = True) -> str:
    """Plain text: one line per file (its top-k; left out without ``list_files``), then failures,
    then scores for class folders."""
    lines = []
    for path, top, label in zip(result.files, result.top(top_k), result.labels) if list_files else ():
        mark = "" if label < 0 else ("  ok" if result.classes[label] == top[0][0] else
                                     f"  WRONG (true: {result.classes[label]})")
        lines.append(f"{path}  " + "  ".join(f"{c} {p:.4f}" for c, p in top) + mark)
    if result.failed:
        lines.append(f"\n{len(result.failed)} file(s) could not be read (skipped):")
        lines += [f"  {path}: {reason}" for path, reason in result.failed.items()]
    if result.unscored_folders:
        lines.append(f"\nnot scored: folder(s) {', '.join(result.unscored_folders)} are not classes of this run "
                     f"({', '.join(result.classes)})")
    metrics = result.metrics
    if metrics is not None:
        lines.append("")
        lines.append(format_scores(metrics))
    return "\n".join(lines)


def format_scores(metrics: dict[str, Any]) -> str:
    """Accuracy, the per-class table and the confusion matrix (row = true class) as text."""
    names = metrics["class_names"]
    out = [f"accuracy {100 * metrics['accuracy']:.2f}% on {metrics['n']} images in class folders"
           f"  (log-loss {metrics['log_loss']:.4f} nats)", ""]
    out.append(_table(["class", "precision", "recall", "f1", "support"],
                      [[r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", str(r["support"])]
                       for r in metrics["per_class"]]))
    out += ["", "confusion matrix (rows: true class, columns: predicted)"]
    out.append(_table(["true \\ predicted"] + names,
                      [[name] + [str(v) for v in row] for name, row in zip(names, metrics["confusion_matrix"])]))
    return "\n".join(out)


def to_json(result: FilePredictions, top_k: int = 3, run_dir: Optional[Path] = None) -> str:
    files = []
    for path, top, label, probs in zip(result.files, result.top(top_k), result.labels, result.probs):
        item: dict[str, Any] = {"path": path, "top": [{"class": c, "probability": p} for c, p in top],
                                "probabilities": [float(v) for v in probs]}
        if label >= 0:
            item["label"] = result.classes[label]
        files.append(item)
    doc = {"run": str(run_dir) if run_dir else None, "classes": result.classes, "tta": result.tta,
           "predictions": files, "failed": [{"path": p, "reason": r} for p, r in result.failed.items()],
           "unscored_folders": result.unscored_folders, "metrics": result.metrics}
    return json.dumps(doc, indent=2) + "\n"


def to_csv(result: FilePredictions, top_k: int = 3) -> str:
    """One row per file: path, true_label (its class folder, if any), pred_label (the most probable
    class), top-k class/probability pairs, error (the reason, for files that could not be read;
    their prediction cells are empty)."""
    k = max(1, min(top_k, len(result.classes)))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "true_label", "pred_label"]
                    + [f"{h}_{i}" for i in range(1, k + 1) for h in ("class", "prob")] + ["error"])
    for path, top, label in zip(result.files, result.top(k), result.labels):
        cells = [c for pair in top for c in (pair[0], f"{pair[1]:.6f}")]
        writer.writerow([path, result.classes[label] if label >= 0 else "", top[0][0]] + cells + [""])
    for path, reason in result.failed.items():
        writer.writerow([path, "", ""] + [""] * (2 * k) + [reason])
    return buffer.getvalue()


def write_predictions(result: FilePredictions, out: str | Path, top_k: int = 3,
                      run_dir: Optional[Path] = None) -> Path:
    """Write ``result`` to ``out`` (.csv or .json by its suffix), atomically."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out {out}: unknown format {suffix or '(no suffix)'!r}; name the file .csv or .json")
    text = to_csv(result, top_k) if suffix == ".csv" else to_json(result, top_k, run_dir)
    return write_text_atomically(out, text)


__all__ = ["FilePredictions", "format_predictions", "format_scores", "predict_files", "to_csv", "to_json",
           "write_predictions"]
