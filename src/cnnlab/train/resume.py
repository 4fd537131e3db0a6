"""What a run folder says about resuming it: its saved config, and whether it already finished."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from cnnlab.runfolder import RunFolderError, read_config_dict, read_summary
from cnnlab.train.experiment import ExperimentConfig, experiment_from_dict
from cnnlab.train.state import FINISHED


def read_run_config(run_dir: Path) -> ExperimentConfig:
    """The experiment a run folder was trained with; a missing or broken config.yaml names the file."""
    if not Path(run_dir).is_dir():
        raise RunFolderError(f"--resume {run_dir}: not a run folder (no such folder); list runs with: cnnlab runs")
    if not (Path(run_dir) / "config.yaml").is_file():
        raise RunFolderError(f"--resume {run_dir}: not a run folder (no config.yaml); list runs with: cnnlab runs")
    return experiment_from_dict(read_config_dict(run_dir))


def finished_summary(run_dir: Path) -> Optional[dict]:
    """The summary of a run that completed or stopped early and wrote its final weights, else None."""
    summary = read_summary(run_dir)
    if summary and summary.get("status") in FINISHED and (Path(run_dir) / "model.safetensors").is_file():
        return summary
    return None
