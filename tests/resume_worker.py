"""Trains (or resumes) a run and SIGKILLs itself after a chosen step: a process killed mid-run.

    python resume_worker.py DATA_DIR RUNS_DIR KILL_EPOCH KILL_STEP OVERRIDES_JSON [RESUME_RUN] [--recipe RECIPE]
    python resume_worker.py DATA_DIR RUNS_DIR KILL_EPOCH KILL_STEP --cli ARGS_JSON --kill-in pNN[/sS]

KILL_EPOCH < 0 trains to the end. The kill comes right after the optimizer step of (epoch, step),
before anything of that epoch is saved, as a power cut or the OOM killer would. RECIPE (default
recipes/004-a.yaml) takes the OVERRIDES; RESUME_RUN continues a run folder instead.

With --cli the worker runs `cnnlab ARGS` (a sweep, or `train --seeds N`; the same command again
continues it) and the kill happens only in the run of point pNN (and seed S); KILL_EPOCH -2 kills
the process as that run is about to start, after the points before it finished: between points.

`main(argv)` is the whole worker, so a soak script can fork it without paying for the imports.
"""
import argparse
import json
import os
import signal
import sys
from pathlib import Path

from cnnlab.train.experiment import load_experiment
from cnnlab.pipeline import run_experiment

REPO = Path(__file__).resolve().parents[1]
BETWEEN = -2   # KILL_EPOCH that kills before the chosen sweep run starts


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


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
            die()


def _is_target(kill_in: str, runs_dir, resume, seed_suffix) -> bool:
    """Whether a sweep's run_experiment call trains point pNN (and seed S) of `kill_in`."""
    point, _, seed = kill_in.partition("/s")
    where = Path(resume) if resume is not None else Path(runs_dir)
    if point not in where.parts:
        return False
    if not seed:
        return True
    return seed_suffix == int(seed) if resume is None else where.name.endswith(f"-s{seed}")


def kill_in_sweep(kill_in: str, epoch: int, step: int) -> None:
    """Make cnnlab's sweeps SIGKILL this process in the run of `kill_in` at (epoch, step)."""
    import cnnlab.search.sweep as sweep

    original = sweep.run_experiment

    def run(cfg, *args, resume=None, callbacks=None, seed_suffix=None, **kwargs):
        if _is_target(kill_in, kwargs.get("runs_dir", args[0] if args else "runs"), resume, seed_suffix):
            if epoch == BETWEEN:
                die()
            callbacks = list(callbacks or []) + [KillAt(epoch, step)]
        return original(cfg, *args, resume=resume, callbacks=callbacks, seed_suffix=seed_suffix, **kwargs)

    sweep.run_experiment = run


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("data_dir")
    p.add_argument("runs_dir")
    p.add_argument("kill_epoch", type=int)
    p.add_argument("kill_step", type=int)
    p.add_argument("overrides", nargs="?", default="[]")
    p.add_argument("resume", nargs="?")
    p.add_argument("--recipe", default=str(REPO / "recipes" / "004-a.yaml"))
    p.add_argument("--cli", help="JSON list of cnnlab arguments (a sweep or train --seeds)")
    p.add_argument("--kill-in", default="p00", help="pNN or pNN/sS: the sweep run to kill")
    args = p.parse_args(argv)
    if args.cli:
        from cnnlab.cli import main as cli_main

        if args.kill_epoch != -1:   # (a test may call main in its own process for a reference)
            kill_in_sweep(args.kill_in, args.kill_epoch, args.kill_step)
        return cli_main(json.loads(args.cli))
    cfg = None if args.resume else load_experiment(args.recipe, json.loads(args.overrides))
    # run_experiment: the task (with a teacher when distill.teacher is set) as `cnnlab train` builds it
    result = run_experiment(cfg, runs_dir=args.runs_dir, data_dir=args.data_dir, quiet=True, resume=args.resume,
                            log=lambda s: None, callbacks=[KillAt(args.kill_epoch, args.kill_step)], report=False)
    print(result.run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
