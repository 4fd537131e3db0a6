"""One experiment over N seeds, resumable: a one-point sweep (empty grid) through the sweep code.

    runs/sweep-004-a-20261204-153000/
      experiment.yaml, sweep.yaml     as for any sweep (fingerprint: resolved config, no grid, N seeds)
      p00/004-a-..._s0/ ..._s1/ ...   one run folder per seed

`cnnlab train EXP --seeds N` calls ``run_seeds``. The same call again (after a kill or Ctrl-C)
finds the folder by its fingerprint, skips the finished seeds, resumes the interrupted one and
trains the missing ones: exactly what ``cnnlab sweep EXP --seeds N`` does, and the two commands
share the folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from cnnlab.search.sweep import SweepOutcome, run_sweep
from cnnlab.search.sweep_folder import plan_sweep, read_sweep_spec_file


def run_seeds(experiment: str | Path, seeds: int, runs_dir: str | Path = "runs", *, overrides: Optional[list[str]] = None,
              data_dir: Optional[str] = None, quiet: bool = False, report: bool = True,
              log: Callable[[str], None] = print) -> SweepOutcome:
    """Train `experiment` (a YAML file, with `overrides`) with seeds seed, seed+1, ..., seed+N-1,
    each an ordinary run folder, skipping those a previous call finished; see the module doc.

    ``outcome.run_dirs()`` lists the seeds' run folders in seed order; ``outcome.interrupted`` is the
    run Ctrl-C stopped (call again to continue); ``outcome.busy`` is non-empty when another process
    is training these seeds.
    """
    if seeds < 1:
        raise ValueError(f"--seeds {seeds}: give 1 or more")
    if read_sweep_spec_file(Path(experiment)) is not None:
        raise ValueError(f"{experiment} is a sweep spec (it has grid:); run it with: cnnlab sweep {experiment}")
    sweep, created = plan_sweep(experiment, [], list(overrides or []), seeds, runs_dir)
    log(f"{'new' if created else 'continuing'} seeds folder {sweep.folder}: {seeds} seed(s)")
    return run_sweep(sweep, data_dir=data_dir, quiet=quiet, report=report, log=log)


__all__ = ["run_seeds"]
