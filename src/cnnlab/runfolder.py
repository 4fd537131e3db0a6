"""The run folder on disk, read back: one module for the trainer (resume), ``cnnlab.runs`` and the reports.

A run folder is a folder holding ``config.yaml`` (the trainer writes it first)::

    <runs>/<YYYYmmdd-HHMMSS>-<name>[-s<seed>]/
        config.yaml  normalization.json  metrics.jsonl  summary.json  model_summary.txt
        model.safetensors  checkpoints/last.pt  checkpoints/best.safetensors  predictions/<split>.npz ...

This is the one reader of those files (config, metrics, summary, normalization, predictions, the
paths of weights and checkpoints, and whether the run finished); ``cnnlab.runs.load_run`` builds
the model and data on top of it. A leaf module: standard library, yaml and numpy only (no torch, no other cnnlab module), so any
layer may import it. Importing it changes no global state.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
MODEL_SUMMARY = "model_summary.txt"
PREDICTIONS = "predictions"
NORMALIZATION = "normalization.json"
WEIGHTS = "model.safetensors"                    # final weights (the evaluated ones: EMA's when on)
BEST_WEIGHTS = "checkpoints/best.safetensors"    # weights of the best validation accuracy
LAST_CHECKPOINT = "checkpoints/last.pt"          # resume state

# A run with one of these statuses and its final weights is finished; interrupted and diverged runs resume.
FINISHED = ("completed", "early_stopped")

PREDICTION_KEYS = ("probs", "labels", "indices")
SPLIT_ORDER = ("train", "val", "test")  # table order; extra prediction files (e.g. test_tta) follow


class RunFolderError(ValueError):
    """A path is not a cnnlab run folder, or one of its files cannot be read (the message names the file)."""


def find_runs(root: str | Path) -> list[Path]:
    """Run folders under ``root``, sorted: ``root`` itself when it holds config.yaml, else every
    folder at any depth below it that holds config.yaml. A missing ``root`` has no runs ([])."""
    root = Path(root)
    if (root / CONFIG).is_file():
        return [root]
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob(CONFIG) if p.is_file())


def _restore_hint(run_dir: Path) -> str:
    """Where a lost config.yaml can come from: the command summary.json recorded, if readable."""
    try:
        command = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8")).get("command")
    except (OSError, ValueError, AttributeError):
        command = None
    source = f"the experiment it was trained from (summary.json: `{command}`)" if command else \
        "the experiment file it was trained from"
    return f"restore it from {source} with `cnnlab config EXPERIMENT -o ... > {run_dir / CONFIG}`, or delete the run"


def read_config_dict(run_dir: str | Path) -> dict[str, Any]:
    """config.yaml of ``run_dir`` as a dict (the resolved experiment, exactly as saved).

    Raises RunFolderError when it is absent, not valid YAML (naming the line) or not a mapping.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not path.is_file():
        raise RunFolderError(f"{run_dir} is not a cnnlab run folder (no {CONFIG}); list runs with: cnnlab runs")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RunFolderError(f"{CONFIG} of {run_dir} is not valid YAML{where}: {problem}; "
                             f"{_restore_hint(run_dir)}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{CONFIG} of {run_dir} cannot be read ({error}); {_restore_hint(run_dir)}") from error
    if not isinstance(loaded, dict):
        raise RunFolderError(f"{CONFIG} of {run_dir} holds {type(loaded).__name__}, not the experiment's "
                             f"key: value mapping; {_restore_hint(run_dir)}")
    return loaded


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """summary.json of ``run_dir`` as a dict; None when absent (the run is still going or was killed).

    Raises RunFolderError naming the file when it is not a valid JSON object.
    """
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        return None
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise RunFolderError(f"{SUMMARY} of {run_dir} is not valid JSON (line {error.lineno}: {error.msg}); the run "
                             "may have been killed while writing it: re-evaluate it or delete the run") from error
    except (OSError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{SUMMARY} of {run_dir} cannot be read ({error})") from error
    if not isinstance(loaded, dict):
        raise RunFolderError(f"{SUMMARY} of {run_dir} holds {type(loaded).__name__}, not a JSON object")
    return loaded


def read_metrics(run_dir: str | Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """The per-epoch rows of metrics.jsonl ([] when absent).

    A partial last line (a run killed mid-write) is skipped, with a note appended to ``warnings``;
    a bad line elsewhere, or a row without "epoch", raises RunFolderError naming file and line.
    """
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                if warnings is not None:
                    warnings.append(f"{METRICS}: ignored a partial last line ({error.msg})")
                continue
            raise RunFolderError(f"{path}:{number} is not valid JSON ({error.msg}); fix or delete that line") from error
        if not isinstance(row, dict) or "epoch" not in row:
            raise RunFolderError(f"{path}:{number} has no 'epoch' key; each line must be one epoch's JSON object")
        rows.append(row)
    return rows


def read_normalization(run_dir: str | Path) -> dict[str, Any] | None:
    """normalization.json of ``run_dir`` (kind, mean, std in 0..255 units); None when absent.

    Raises RunFolderError naming the file when it is not a JSON object with kind, mean and std.
    """
    path = Path(run_dir) / NORMALIZATION
    if not path.is_file():
        return None
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunFolderError(f"{path} cannot be read ({error}); delete it to refit the statistics on the run's "
                             f"train split") from None
    if not isinstance(loaded, dict) or not {"kind", "mean", "std"} <= set(loaded):
        raise RunFolderError(f"{path} must be a JSON object with kind, mean and std; delete it to refit the "
                             f"statistics on the run's train split")
    return loaded


def finished_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The summary of a run that completed or stopped early and wrote its final weights, else None
    (running, killed, interrupted or diverged: those resume)."""
    summary = read_summary(run_dir)
    if summary and summary.get("status") in FINISHED and (Path(run_dir) / WEIGHTS).is_file():
        return summary
    return None


def weights_path(run_dir: str | Path, weights: str = WEIGHTS) -> Path:
    """The weights file ``weights`` (a path inside the run folder) of a finished run.

    Raises RunFolderError with the command that finishes the run when the file is missing.
    """
    path = Path(run_dir) / weights
    if not path.is_file():
        raise RunFolderError(f"{path} is missing: the run did not finish. Continue it with: "
                             f"cnnlab train --resume {run_dir}")
    return path


@dataclass
class Predictions:
    """Saved predictions of one split: probs N x K (or N x 1 sigmoid), labels N, indices N."""

    probs: np.ndarray
    labels: np.ndarray
    indices: np.ndarray


def read_predictions(run_dir: str | Path) -> dict[str, Predictions]:
    """predictions/<split>.npz by split name, train/val/test first, then others (e.g. test_tta) by name."""
    folder = Path(run_dir) / PREDICTIONS
    if not folder.is_dir():
        return {}
    order = {split: i for i, split in enumerate(SPLIT_ORDER)}
    found: dict[str, Predictions] = {}
    for path in sorted(folder.glob("*.npz"), key=lambda p: (order.get(p.stem, len(order)), p.stem)):
        try:
            with np.load(path) as archive:
                absent = [key for key in PREDICTION_KEYS[:2] if key not in archive.files]
                if absent:
                    raise RunFolderError(f"{path} lacks {absent}; it must hold arrays probs, labels (and indices)")
                probs = archive["probs"]
                labels = archive["labels"]
                indices = archive["indices"] if "indices" in archive.files else np.arange(len(labels))
        except RunFolderError:
            raise
        except (OSError, ValueError, EOFError) as error:
            raise RunFolderError(f"cannot read {path} ({error}); re-evaluate the run or delete the file") from error
        found[path.stem] = Predictions(probs=probs, labels=labels, indices=indices)
    return found


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
    def status(self) -> str | None:
        """summary.json status (completed, early_stopped, interrupted, diverged), None without a summary."""
        return (self.summary or {}).get("status")

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


def load_run_data(run_dir: str | Path) -> RunData:
    """Read config.yaml, metrics.jsonl, summary.json, predictions/*.npz and model_summary.txt.

    Raises RunFolderError when ``run_dir`` is not a folder or holds none of these files, or
    when a present file is corrupt. Absent files are listed in ``RunData.missing``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist; list runs with: cnnlab runs")
    run = RunData(run_dir=run_dir)
    if (run_dir / CONFIG).is_file():
        run.config = read_config_dict(run_dir)
        run.config_text = (run_dir / CONFIG).read_text(encoding="utf-8")
    else:
        run.missing.append(f"{CONFIG} (no config to show)")
    run.metrics = read_metrics(run_dir, run.warnings)
    if not run.metrics:
        run.missing.append(f"{METRICS} (no per-epoch curves)")
    run.summary = read_summary(run_dir)
    if run.summary is None:
        run.missing.append(f"{SUMMARY} (no final numbers, timing, versions or hardware)")
    run.predictions = read_predictions(run_dir)
    if not run.predictions:
        run.missing.append(f"{PREDICTIONS}/*.npz (no metrics per class, confusion matrices or examples)")
    if (run_dir / MODEL_SUMMARY).is_file():
        run.model_summary = (run_dir / MODEL_SUMMARY).read_text(encoding="utf-8")
    else:
        run.missing.append(f"{MODEL_SUMMARY} (no model summary)")
    if run.config is None and not run.metrics and run.summary is None and not run.predictions:
        raise RunFolderError(
            f"{run_dir} holds no {CONFIG}, {METRICS}, {SUMMARY} or {PREDICTIONS}/: is it a run folder?")
    return run


__all__ = ["RunFolderError", "RunData", "Predictions", "FINISHED", "find_runs", "finished_summary",
           "read_config_dict", "read_summary", "read_metrics", "read_normalization", "read_predictions",
           "load_run_data", "weights_path", "SPLIT_ORDER"]
