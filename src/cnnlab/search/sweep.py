"""Running a sweep: every grid point x seed as an ordinary run, skipping what is done.

For each point and seed, in order: a finished run (completed, early stopped, or diverged: running
it again would give the same) is skipped; a run folder left by a kill is resumed where its last
checkpoint is (or restarted from its config when it had none); otherwise a new run starts in
the point's folder. A point another process is working on (its lock is held) is left to it.
Ctrl-C stops the sweep after the current run saved; the same command continues it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from cnnlab.pipeline import run_experiment
from cnnlab.runfolder import find_runs, read_config_dict, read_summary
from cnnlab.search.sweep_folder import Sweep, locked, point_label, record_run, seeds_of
from cnnlab.train.callbacks import Callback
from cnnlab.train.loop import TrainingDiverged
from cnnlab.train.rundir import RunLocked

DONE = ("completed", "early_stopped", "diverged")


@dataclass
class SweepOutcome:
    sweep: Sweep
    trained: list[Path] = field(default_factory=list)    # runs trained (new or resumed) by this call
    skipped: list[Path] = field(default_factory=list)    # runs already finished
    busy: list[str] = field(default_factory=list)        # points left to another process
    interrupted: Optional[Path] = None                   # the run Ctrl-C stopped, if any

    def run_dirs(self) -> list[Path]:
        """Every run folder of the sweep, in point order."""
        return [self.sweep.folder / r["folder"] for p in self.sweep.points for r in p.get("runs") or []
                if (self.sweep.folder / r["folder"]).is_dir()]


class _RecordRunFolder(Callback):
    """Writes the run folder into sweep.yaml as soon as the trainer has made it."""

    def __init__(self, sweep: Sweep, point_id: str, seed: int):
        self.sweep, self.point_id, self.seed = sweep, point_id, seed

    def on_train_begin(self, logs: dict) -> None:
        record_run(self.sweep, self.point_id, self.seed, Path(logs["run_dir"]))


def run_of_seed(point_dir: Path, seed: int) -> Optional[Path]:
    """The point's run folder trained with `seed` (the newest, should there be two), or None.

    A folder without config.yaml (killed between its creation and its first file) is no run.
    """
    found = [run for run in find_runs(point_dir) if read_config_dict(run).get("seed") == seed]
    return found[-1] if found else None


def run_sweep(sweep: Sweep, *, data_dir: Optional[str] = None, quiet: bool = True, report: bool = True,
              log: Callable[[str], None] = print) -> SweepOutcome:
    """Train every point x seed of `sweep` that is not finished yet; see the module doc."""
    outcome = SweepOutcome(sweep)
    seeds = seeds_of(sweep)
    total = len(sweep.points) * len(seeds)
    done = 0
    for point in list(sweep.points):
        point_dir = sweep.folder / point["id"]
        with locked(point_dir / ".point.lock", blocking=False) as mine:
            if not mine:
                log(f"[{point['id']}] {point_label(point)}: another process is training it; left to that one")
                outcome.busy.append(point["id"])
                done += len(seeds)
                continue
            for seed in seeds:
                done += 1
                where = f"[{done}/{total}] {point['id']} seed {seed}: {point_label(point)}"
                existing = run_of_seed(point_dir, seed)
                if existing is not None:
                    record_run(sweep, point["id"], seed, existing)
                    status = (read_summary(existing) or {}).get("status")
                    if status in DONE:
                        log(f"{where}: already {status} ({existing.name}); skipped")
                        outcome.skipped.append(existing)
                        continue
                    log(f"{where}: resuming {existing.name}")
                else:
                    log(f"{where}: training")
                recorder = _RecordRunFolder(sweep, point["id"], seed)
                try:
                    if existing is not None:
                        result = run_experiment(None, resume=existing, data_dir=data_dir, quiet=quiet,
                                                callbacks=[recorder], report=report, log=log)
                    else:
                        cfg = sweep.point_config(point, seed)
                        result = run_experiment(cfg, runs_dir=point_dir, data_dir=data_dir, quiet=quiet,
                                                seed_suffix=seed if len(seeds) > 1 else None,
                                                callbacks=[recorder], report=report, log=log)
                except TrainingDiverged as err:
                    # A result of the grid (lr too high, say): the table shows it unfinished; go on.
                    log(f"{where}: diverged: {err}")
                    continue
                except RunLocked as err:
                    log(f"{where}: {err}; left to that process")
                    outcome.busy.append(point["id"])
                    continue
                outcome.trained.append(result.run_dir)
                if result.status == "interrupted":
                    outcome.interrupted = result.run_dir
                    return outcome
    return outcome


__all__ = ["run_sweep", "SweepOutcome", "run_of_seed", "DONE"]
