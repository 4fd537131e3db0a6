"""The training loop: one readable function from config to a finished run folder.

    train(cfg) = start (a new run, or the run folder to resume)
               -> set_up   (build.py: data, model, task, engine, run folder, callbacks)
               -> restore  (components.py: every stateful part from checkpoints/last.pt)
               -> fit      (fit.py: epochs of steps (epoch.py), validation, callbacks, checkpoints)
               -> finish   (finish.py: final evaluation by the task, model.safetensors, summary.json)

Where a step happens: epoch.py `train_epoch` (the task's `step`). Where a checkpoint is written:
`Run.checkpoint` (build.py) at each epoch's end and on a signal. Where a stage switches: the
epoch loop calls `Engine.enter_stage` when the global step crosses a stage's start.

Randomness has three explicit sources so a run is reproducible and resumable bitwise: the
shuffle generator (CPU), the augmentation generator (on the training device) and torch's global
generator (dropout). All three, the loop's TrainState and every stateful part are saved in each
checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from cnnlab.atomic import output_option, remove_stale_temp_files, unwritable_error
from cnnlab.runfolder import LAST_CHECKPOINT, finished_summary
from cnnlab.train import distributed, runtime
from cnnlab.train.build import Run, set_up
from cnnlab.train.callbacks import Callback
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.experiment import ExperimentConfig
from cnnlab.train.finish import TrainingDiverged, finish
from cnnlab.train.fit import fit
from cnnlab.train.resume import read_run_config
from cnnlab.train.rundir import RunLock
from cnnlab.train.task import classification_only

# Free space a new run needs before the data is loaded: a checkpoint of a 15M-parameter model
# with Adam is ~180 MB; below this the run would fail at its first save.
MIN_FREE_BYTES = 64 << 20


@dataclass
class RunResult:
    run_dir: Path
    status: str          # completed | early_stopped | interrupted | diverged
    summary: dict
    splits: object = field(default=None, repr=False)   # the DataSplits it trained on (None for a finished resume)
    rank: int = 0        # this process's rank under DDP; rank 0 wrote the run folder


def train(cfg: Optional[ExperimentConfig], runs_dir: str | Path = "runs", *, data_dir: Optional[str] = None,
          quiet: bool = False, resume: Optional[str | Path] = None, seed_suffix: Optional[int] = None,
          callbacks: Optional[list[Callback]] = None, log: Callable[[str], None] = print,
          ddp_timeout: float = distributed.DEFAULT_TIMEOUT_S, task_factory=None) -> RunResult:
    """Train `cfg` into a new run folder under `runs_dir`, or continue the run folder `resume`.

    Resuming a finished run changes nothing and returns its summary; a run killed before its
    first checkpoint restarts from its saved config in the same folder. The figures and report
    pages are written by callbacks of the report layer (cnnlab.run_experiment adds them, and
    also resolves {recipe: ...} sources and builds any task of cnnlab.tasks: `task_factory`,
    config -> Task; by default classification only).

    Under torchrun (train/distributed.py) every rank calls this: rank 0 reads and writes the run
    folder and runs the callbacks; the others train their shards, log nothing and write nothing.
    A rank that waits more than `ddp_timeout` seconds on the others stops with a message.
    """
    task_factory = task_factory or (lambda c: classification_only(c.task))
    with ExitStack() as stack:
        world = stack.enter_context(distributed.session(ddp_timeout))
        if not world.is_main:   # one rank speaks for the run
            log, quiet = _silent, True
        cfg, ckpt, run_dir, done = world.from_main(lambda: _start(cfg, resume, Path(runs_dir), stack, log))
        if done is not None:
            log(f"{run_dir} already finished ({done['status']}, {done.get('epochs_completed')}/"
                f"{done.get('epochs')} epochs); nothing to resume. To train longer, start a new run.")
            return RunResult(run_dir, done["status"], done, rank=world.rank)
        run = set_up(cfg, run_dir, ckpt, stack, world, runs_dir=Path(runs_dir), data_dir=data_dir, quiet=quiet,
                     seed_suffix=seed_suffix, user_callbacks=list(callbacks or []), task_factory=task_factory,
                     log=log)
        restore(run, ckpt)
        fit(run)
        status = finish(run)
        return RunResult(run.run_dir, status, run.summary, run.splits, rank=world.rank)


def _start(cfg: Optional[ExperimentConfig], resume, runs_dir: Path, stack: ExitStack, log) -> tuple:
    """On rank 0: the config, checkpoint and folder to go on with (shared with the other ranks,
    which need no access to the run folder), or a finished run's summary."""
    if resume is None:
        if cfg is None:
            raise ValueError("train() needs an experiment config, or resume= a run folder")
        _check_runs_dir(runs_dir)
        return cfg, None, None, None
    run_dir = Path(resume)
    run_cfg = read_run_config(run_dir)
    stack.enter_context(RunLock(run_dir))
    done = finished_summary(run_dir)
    if done is not None:
        return run_cfg, None, run_dir, done
    ckpt, last = None, run_dir / LAST_CHECKPOINT
    if last.is_file():
        ckpt = load_checkpoint(last)
    else:
        log(f"{run_dir} has no checkpoint yet (killed in its first epoch): restarting it from its saved config")
    remove_stale_temp_files(run_dir)   # left by a killed writer; the lock says no one writes now
    return run_cfg, ckpt, run_dir, None


def restore(run: Run, ckpt: Optional[dict]) -> None:
    """Every stateful part from the checkpoint (a fresh run has none), then the command that
    started or resumed the run in its record (each rank runs `python -m cnnlab train ...`)."""
    if ckpt:
        run.checkpointer.restore(ckpt)
        run.log(f"resuming {run.run_dir} at epoch {run.state.epoch + 1}, step {run.state.step_in_epoch}/"
                f"{run.engine.steps_per_epoch}")
    run.state.commands.append(runtime.command_line() + (f"  [DDP: {run.world.size} ranks]" if run.world.enabled
                                                        else ""))
    run.wall_before = run.state.wall_seconds


def _silent(message: str) -> None:
    """The log of ranks other than 0: one rank speaks for the run."""


def _check_runs_dir(runs_dir: Path) -> None:
    """A runs folder that cannot be written, or a full disk, is found before minutes of data loading."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=runs_dir):
            pass
    except OSError as err:
        with output_option("--runs-dir"):
            unwritable = unwritable_error(runs_dir, err, what=f"run folders under {runs_dir}")
        if unwritable is not None:   # "...: <folder> is on a read-only file system; choose another --runs-dir or ..."
            raise unwritable from None
        raise OSError(f"cannot write run folders under {runs_dir} ({err.strerror}); choose another --runs-dir "
                      f"or fix its permissions") from None
    free = os.statvfs(runs_dir).f_bavail * os.statvfs(runs_dir).f_frsize if hasattr(os, "statvfs") else None
    if free is not None and free < MIN_FREE_BYTES:
        raise OSError(f"only {free >> 20} MiB free under {runs_dir}: a run needs room for its checkpoints; "
                      f"free some space or choose another --runs-dir")

__all__ = ["train", "RunResult", "TrainingDiverged"]
