"""A finished siamese run read back: its twin with the saved weights, its inputs and its data.

Rebuilt the way the loop built it (cnnlab.train.setup.build_model, then the task's build_model),
so the weights file's keys (body.*, head.*) load strictly.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from cnnlab.data import DataSplits, Normalizer, load_splits
from cnnlab.runfolder import read_config_dict
from cnnlab.siamese.task import SiameseTask
from cnnlab.train.checkpoint import load_weights
from cnnlab.train.experiment import ExperimentConfig, experiment_from_dict
from cnnlab.train.runtime import resolve_device
from cnnlab.train.setup import build_model
from cnnlab.train.task import create_task

WEIGHTS = "model.safetensors"


@dataclass
class SiameseRun:
    run_dir: Path
    cfg: ExperimentConfig
    task: SiameseTask
    model: torch.nn.Module        # the twin, eval mode, on `device`
    normalizer: Normalizer
    splits: DataSplits
    device: torch.device


def load_siamese_run(run_dir: str | Path, data_dir: Optional[str] = None, weights: str = WEIGHTS,
                     device: str = "auto", splits: Optional[DataSplits] = None) -> SiameseRun:
    """The run's twin with ``weights`` loaded, its normalizer (normalization.json) and its data
    splits (``splits`` when given: the ones the run trained on, e.g. a callback's logs["data"])."""
    run_dir = Path(run_dir)
    cfg = experiment_from_dict(read_config_dict(run_dir))
    task = create_task(cfg.task)
    if not isinstance(task, SiameseTask):
        raise ValueError(f"{run_dir} is not a siamese run (its task is {cfg.task.get('name', 'classification')!r})")
    weights_path = run_dir / weights
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} is missing: the run did not finish; continue it with: "
                                f"cnnlab train --resume {run_dir}")
    norm_path = run_dir / "normalization.json"
    if not norm_path.is_file():
        raise FileNotFoundError(f"{norm_path} is missing: the run's input statistics are unknown")
    normalizer = Normalizer.from_state_dict(json.loads(norm_path.read_text(encoding="utf-8")))
    if splits is None:
        splits = load_splits(cfg.data, seed=cfg.seed, data_dir=data_dir)
    images = splits.train.images
    model_cfg = copy.copy(cfg.model)
    model_cfg.pretrained = None   # the run's own weights replace any starting point
    body = build_model(model_cfg, num_classes=len(splits.classes), in_chans=images.shape[1],
                       input_size=images.shape[-1])
    model = task.build_model(body, len(splits.classes), images.shape[1], images.shape[-1])
    model.load_state_dict(load_weights(weights_path))
    dev = resolve_device(device)   # auto: the GPU when there is one
    return SiameseRun(run_dir, cfg, task, model.to(dev).eval(), normalizer, splits, dev)


__all__ = ["SiameseRun", "load_siamese_run"]
