"""Read a run folder written by the trainer, tolerating missing parts (and listing them)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

PREDICTION_KEYS = ("probs", "labels", "indices")
SPLIT_ORDER = ("train", "val", "test")  # table order; extra prediction files (e.g. test_tta) follow


class RunFolderError(ValueError):
    """A run folder is missing or one of its files cannot be read."""


@dataclass
class Predictions:
    """Saved predictions of one split: probs N x K (or N x 1 sigmoid), labels N, indices N."""

    probs: np.ndarray
    labels: np.ndarray
    indices: np.ndarray


@dataclass
class RunData:
    """Everything a report needs from one run folder; absent parts are None/empty and named in ``missing``."""

    run_dir: Path
    config: dict[str, Any] | None = None
    config_text: str | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    predictions: dict[str, Predictions] = field(default_factory=dict)
    model_summary: str | None = None
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        """The folder name, e.g. 20260101-120000-004-a-s1."""
        return self.run_dir.name

    @property
    def name(self) -> str:
        """Experiment name: summary name, else config name, else the folder name."""
        for source in (self.summary, self.config):
            if source and source.get("name"):
                return str(source["name"])
        return self.run_id

    @property
    def class_names(self) -> list[str] | None:
        """Class names from the summary, else from config data.classes, else None."""
        if self.summary and self.summary.get("classes"):
            return [str(c) for c in self.summary["classes"]]
        data = (self.config or {}).get("data") or {}
        if isinstance(data, dict) and data.get("classes"):
            return [str(c) for c in data["classes"]]
        return None

    def final(self, key: str) -> float | None:
        """summary.final[key], falling back to the last epoch of metrics.jsonl for train_/val_ keys."""
        final = (self.summary or {}).get("final") or {}
        if final.get(key) is not None:
            return float(final[key])
        for row in reversed(self.metrics):
            if row.get(key) is not None:
                return float(row[key])
        return None


def _read_metrics(path: Path, run: RunData) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):  # a run killed mid-write leaves a partial last line
                run.warnings.append(f"metrics.jsonl: ignored a partial last line ({error.msg})")
                continue
            raise RunFolderError(f"{path}:{number} is not valid JSON ({error.msg}); fix or delete that line") from error
        if not isinstance(row, dict) or "epoch" not in row:
            raise RunFolderError(f"{path}:{number} has no 'epoch' key; each line must be one epoch's JSON object")
        run.metrics.append(row)


def _read_predictions(folder: Path, run: RunData) -> None:
    files = sorted(folder.glob("*.npz"))
    order = {split: i for i, split in enumerate(SPLIT_ORDER)}
    for path in sorted(files, key=lambda p: (order.get(p.stem, len(order)), p.stem)):
        try:
            with np.load(path) as archive:
                absent = [key for key in PREDICTION_KEYS[:2] if key not in archive.files]
                if absent:
                    raise RunFolderError(f"{path} lacks {absent}; it must hold arrays probs, labels (and indices)")
                probs = archive["probs"]
                labels = archive["labels"]
                indices = archive["indices"] if "indices" in archive.files else np.arange(len(labels))
        except (OSError, ValueError) as error:
            if isinstance(error, RunFolderError):
                raise
            raise RunFolderError(f"cannot read {path} ({error}); re-run `cnnlab report` after re-evaluating") from error
        run.predictions[path.stem] = Predictions(probs=probs, labels=labels, indices=indices)


def load_run(run_dir: Path) -> RunData:
    """Read config.yaml, metrics.jsonl, summary.json, predictions/*.npz and model_summary.txt.

    Raises RunFolderError when ``run_dir`` is not a folder or holds none of these files, or
    when a present file is corrupt. Absent files are listed in ``RunData.missing``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist; pass a folder under runs/")
    run = RunData(run_dir=run_dir)
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        run.config_text = config_path.read_text(encoding="utf-8")
        try:
            loaded = yaml.safe_load(run.config_text)
        except yaml.YAMLError as error:
            raise RunFolderError(f"{config_path} is not valid YAML: {error}") from error
        run.config = loaded if isinstance(loaded, dict) else None
    else:
        run.missing.append("config.yaml (no config to show)")
    metrics_path = run_dir / "metrics.jsonl"
    if metrics_path.is_file():
        _read_metrics(metrics_path, run)
    if not run.metrics:
        run.missing.append("metrics.jsonl (no per-epoch curves)")
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        try:
            run.summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise RunFolderError(f"{summary_path} is not valid JSON ({error.msg}); the run may have been killed while writing it") from error
    else:
        run.missing.append("summary.json (no final numbers, timing, versions or hardware)")
    predictions_dir = run_dir / "predictions"
    if predictions_dir.is_dir():
        _read_predictions(predictions_dir, run)
    if not run.predictions:
        run.missing.append("predictions/*.npz (no metrics per class, confusion matrices or examples)")
    summary_txt = run_dir / "model_summary.txt"
    if summary_txt.is_file():
        run.model_summary = summary_txt.read_text(encoding="utf-8")
    else:
        run.missing.append("model_summary.txt (no model summary)")
    if run.config is None and not run.metrics and run.summary is None and not run.predictions:
        raise RunFolderError(
            f"{run_dir} holds no config.yaml, metrics.jsonl, summary.json or predictions/: is it a run folder?"
        )
    return run


def find_run_dirs(runs_root: Path) -> list[Path]:
    """Run folders under ``runs_root`` (any depth), i.e. folders holding config.yaml, summary.json or metrics.jsonl, sorted."""
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        raise RunFolderError(f"{runs_root} is not a folder; pass the folder that holds your runs (e.g. runs/)")
    found = {p.parent for pattern in ("config.yaml", "summary.json", "metrics.jsonl") for p in runs_root.rglob(pattern)}
    return sorted(found)
