"""Trains (or resumes) a run and SIGKILLs itself after a chosen step: a process killed mid-run.

    python resume_worker.py DATA_DIR RUNS_DIR KILL_EPOCH KILL_STEP OVERRIDES_JSON [RESUME_RUN]

KILL_EPOCH < 0 trains to the end. The kill comes right after the optimizer step of (epoch, step),
before anything of that epoch is saved, as a power cut or the OOM killer would.
"""
import json
import os
import signal
import sys
from pathlib import Path

from cnnlab.train.experiment import load_experiment
from cnnlab.pipeline import run_experiment

REPO = Path(__file__).resolve().parents[1]


class KillAt:
    def __init__(self, epoch: int, step: int):
        self.epoch, self.step, self.current = epoch, step, -1

    def on_train_begin(self, logs): ...
    def on_epoch_begin(self, epoch, logs):
        self.current = epoch
    def on_epoch_end(self, epoch, logs): ...
    def on_train_end(self, logs): ...

    def on_batch_end(self, step, logs):
        if (self.current, step) == (self.epoch, self.step):
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    data_dir, runs_dir, kill_epoch, kill_step, overrides = sys.argv[1:6]
    resume = sys.argv[6] if len(sys.argv) > 6 else None
    cfg = None if resume else load_experiment(REPO / "recipes" / "004-a.yaml", json.loads(overrides))
    # run_experiment: the task (with a teacher when distill.teacher is set) as `cnnlab train` builds it
    result = run_experiment(cfg, runs_dir=runs_dir, data_dir=data_dir, quiet=True, resume=resume, log=lambda s: None,
                            callbacks=[KillAt(int(kill_epoch), int(kill_step))], report=False)
    print(result.run_dir)


if __name__ == "__main__":
    main()
