"""What a run folder says about resuming it: its saved config (the rest is cnnlab.runfolder's)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.runfolder import RunFolderError, read_config_dict
from cnnlab.train.experiment import ExperimentConfig, experiment_from_dict


def read_run_config(run_dir: Path) -> ExperimentConfig:
    """The experiment a run folder was trained with; a missing or broken config.yaml names the file."""
    if not Path(run_dir).is_dir():
        raise RunFolderError(f"--resume {run_dir}: not a run folder (no such folder); list runs with: cnnlab runs")
    if not (Path(run_dir) / "config.yaml").is_file():
        raise RunFolderError(f"--resume {run_dir}: not a run folder (no config.yaml); list runs with: cnnlab runs")
    return experiment_from_dict(read_config_dict(run_dir))
