"""Reading finished run folders back: re-evaluation and the table of runs.

Reading the files of a run folder is ``cnnlab.runfolder``'s job (one reader for every layer);
this module rebuilds a run's model and data on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from cnnlab.train.experiment import ExperimentConfig, experiment_from_dict
from cnnlab.runfolder import RunFolderError, find_runs, read_config_dict, read_summary

__all__ = ["LoadedRun", "RunFolderError", "evaluate_run", "find_runs", "load_run", "read_config", "runs_table"]


@dataclass
class LoadedRun:
    run_dir: Path
    config: ExperimentConfig
    model: torch.nn.Module
    normalizer: object
    splits: object


def read_config(run_dir: Path) -> ExperimentConfig:
    """The run's saved experiment, validated (RunFolderError when config.yaml is absent or not YAML)."""
    return experiment_from_dict(read_config_dict(run_dir))


def load_run(run_dir: str | Path, data_dir: Optional[str] = None, weights: str = "model.safetensors",
             device: str = "cpu") -> LoadedRun:
    """Rebuild a run's data splits, normalizer and model with its saved weights."""
    from cnnlab.data import Normalizer, load_splits
    from cnnlab.train.checkpoint import load_weights
    from cnnlab.train.setup import build_model

    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    weights_path = run_dir / weights
    if not weights_path.is_file():
        raise RunFolderError(f"{weights_path} is missing: the run did not finish. "
                             f"Continue it with: cnnlab train --resume {run_dir}")
    splits = load_splits(cfg.data, seed=cfg.seed, data_dir=data_dir)
    normalizer = _saved_normalizer(run_dir) or Normalizer.fit(cfg.data.normalize, splits.train.images)
    model_cfg = cfg.model
    model_cfg.pretrained = None  # the run's own weights replace any starting point
    model = build_model(model_cfg, num_classes=len(splits.classes), in_chans=splits.train.images.shape[1])
    model.load_state_dict(load_weights(weights_path))
    model.to(torch.device(device)).eval()
    return LoadedRun(run_dir, cfg, model, normalizer, splits)


def _saved_normalizer(run_dir: Path):
    """The input statistics the run trained with: normalization.json (any run since it was added),
    else the checkpoint of an older run; None when neither is there (refit on the same train split)."""
    import json

    from cnnlab.data import Normalizer
    from cnnlab.train.checkpoint import load_checkpoint

    path = run_dir / "normalization.json"
    if path.is_file():
        try:
            return Normalizer.from_state_dict(json.loads(path.read_text(encoding="utf-8")))
        except ValueError as err:
            raise RunFolderError(f"{path} is not valid ({err}); delete it to refit the statistics on the "
                                 f"run's train split") from None
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    return Normalizer.from_state_dict(load_checkpoint(ckpt_path)["normalizer"]) if ckpt_path.is_file() else None


def evaluate_run(run_dir: str | Path, split: str = "test", data_dir: Optional[str] = None) -> dict:
    from cnnlab.train.predict import evaluate

    run = load_run(run_dir, data_dir=data_dir)
    ds = getattr(run.splits, split, None)
    if ds is None:
        raise ValueError(f"split {split!r} does not exist in this run; choose train, val (if the run has one) or test")
    res = evaluate(run.model, ds.images, ds.labels, run.normalizer, run.config.eval_batch_size)
    return {"run": str(run.run_dir), "split": split, "images": len(ds), "loss": res.loss, "accuracy": res.accuracy}


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _run_label(run: Path, root: Path) -> str:
    """The run's folder name, or its path below `root` when runs are nested (runs/sweep/<run>)."""
    try:
        relative = run.relative_to(root)
    except ValueError:
        return run.name
    return run.name if str(relative) == "." else relative.as_posix()


def runs_table(root: str | Path) -> str:
    """Plain-text table of the runs under `root` (any depth), oldest first.

    A run whose summary.json or config.yaml cannot be read is still listed, its status naming
    the unreadable file, so one damaged run never hides the others.
    """
    root = Path(root)
    rows = []
    for run in find_runs(root):
        problems = []
        try:
            s = read_summary(run) or {}
        except RunFolderError:
            s = {}
            problems.append("summary.json unreadable")
        model = s.get("model")
        if model is None:
            try:
                section = read_config_dict(run).get("model")
                model = section.get("name") if isinstance(section, dict) else None
            except RunFolderError:
                problems.append("config.yaml unreadable")
        final = s.get("final") or {}
        params = (s.get("params") or {}).get("total")
        rows.append([_run_label(run, root), model or "?", f"{params:,}" if params else "-",
                     f"{s.get('epochs_completed', 0)}/{s.get('epochs', '?')}", _pct(final.get("val_acc")),
                     _pct(final.get("test_acc")), f"{s['wall_seconds']:.0f}s" if s.get("wall_seconds") else "-",
                     ", ".join(problems) or s.get("status") or "running or killed"])
    if not rows:
        return f"no runs under {root}"
    header = ["run", "model", "params", "epochs", "val acc %", "test acc %", "time", "status"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
