"""One trial of a search: sample a config, check the limits, train it as an ordinary run.

A trial that breaks a limit (too many parameters, a network that does not fit the image size)
is pruned before anything trains, with the reason in its user attribute ``rejected``; no run
folder is made. A trial whose validation metric falls behind (the study's pruner, asked after
every epoch) stops training: its run ends as ``early_stopped`` with its final evaluation, and
the trial is pruned with ``pruned_at_epoch``. A trial that was killed and re-queued resumes its
own run folder when that folder is on this machine.

User attributes of a trial: worker (host:pid), run_dir, params (Keras-style total), and one of
rejected / pruned_at_epoch / diverged / interrupted where that happened.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import optuna

from cnnlab.config import ConfigError
from cnnlab.pipeline import run_experiment
from cnnlab.runfolder import read_metrics
from cnnlab.search.limits import check_trial
from cnnlab.search.space import Space, SpaceError
from cnnlab.train.callbacks import Callback
from cnnlab.train.loop import TrainingDiverged

HOST = socket.gethostname()


@dataclass
class TrialSettings:
    space: Space
    study_name: str
    trials_dir: Path               # run folders of the trials (under the study folder)
    num_classes: int
    max_params: Optional[int] = None
    data_dir: Optional[str] = None
    report: bool = False           # report.html per trial (seconds each); curves.png is always drawn
    log: Callable[[str], None] = print


class PruneByEpoch(Callback):
    """Reports the metric after every epoch and stops the run when the study's pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial, self.metric = trial, metric
        self.pruned_at: Optional[int] = None
        self.value: Optional[float] = None

    def on_train_begin(self, logs: dict) -> None:
        # A resumed run: the epochs trained before the kill count for this trial too.
        for row in read_metrics(logs["run_dir"]):
            if row.get(self.metric) is not None:
                self.trial.report(float(row[self.metric]), step=int(row["epoch"]))

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        value = logs.get(self.metric)
        if value is None:
            return
        self.trial.report(float(value), step=int(logs["epoch"]))
        if self.trial.should_prune():
            logs["stop_training"] = True
            self.pruned_at, self.value = int(logs["epoch"]), float(value)


class RecordRunFolder(Callback):
    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def on_train_begin(self, logs: dict) -> None:
        self.trial.set_user_attr("run_dir", str(Path(logs["run_dir"]).resolve()))


def reject(trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("rejected", reason)
    raise optuna.TrialPruned(f"rejected before training: {reason}")


def resumable_run(trial: optuna.Trial) -> Optional[Path]:
    """The run folder of the killed trial this one retries, when it is on this machine."""
    run_dir, worker = trial.user_attrs.get("run_dir"), str(trial.user_attrs.get("worker", ""))
    if not run_dir or worker.rsplit(":", 1)[0] != HOST:
        return None
    path = Path(run_dir)
    return path if (path / "config.yaml").is_file() else None


def run_trial(trial: optuna.Trial, s: TrialSettings) -> float:
    """The objective: the trial's final validation metric (see the module doc)."""
    resume = resumable_run(trial)
    trial.set_user_attr("worker", f"{HOST}:{os.getpid()}")
    name = f"{s.study_name}-t{trial.number:04d}"
    try:
        cfg = s.space.config(trial, name)
    except (ConfigError, SpaceError, ValueError) as err:
        reject(trial, f"invalid config: {err}")
    check = check_trial(cfg, s.max_params, s.num_classes)
    if check.params is not None:
        trial.set_user_attr("params", check.params["total"])
    if check.reason:
        s.log(f"trial {trial.number}: rejected: {check.reason}")
        reject(trial, check.reason)

    pruning = PruneByEpoch(trial, s.space.metric)
    callbacks = [RecordRunFolder(trial), pruning]
    try:
        if resume is not None:
            s.log(f"trial {trial.number}: resuming {resume} (left by a stopped or killed trial)")
            result = run_experiment(None, resume=resume, data_dir=s.data_dir, quiet=True, callbacks=callbacks,
                                    report=s.report, log=s.log)
        else:
            result = run_experiment(cfg, runs_dir=s.trials_dir, data_dir=s.data_dir, quiet=True,
                                    callbacks=callbacks, report=s.report, log=s.log)
    except TrainingDiverged as err:
        trial.set_user_attr("diverged", str(err).split(";")[0])
        raise optuna.TrialPruned(f"diverged: {err}") from None
    if result.status == "interrupted":
        trial.set_user_attr("interrupted", True)
        s.log(f"trial {trial.number} stopped; the same cnnlab search command continues it from its checkpoint")
        raise KeyboardInterrupt
    if pruning.pruned_at is not None:
        trial.set_user_attr("pruned_at_epoch", pruning.pruned_at)
        raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}: {s.space.metric} {pruning.value:.4f}")
    value = (result.summary.get("final") or {}).get(s.space.metric)
    if value is None:
        raise ValueError(f"trial {trial.number} has no {s.space.metric}: give the search a validation split "
                         f"(base: data.val_size: 5000, or data.folder_split for image folders)")
    return float(value)


__all__ = ["TrialSettings", "run_trial", "PruneByEpoch", "resumable_run", "HOST"]
