"""`cnnlab sweep` (a grid of runs) and `cnnlab search` (Optuna over a YAML space), both resumable.

Errors are raised as ValueError (one line naming the problem and the fix); cnnlab.cli.main prints them.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.common import (EXIT_INTERRUPTED, add_command, add_data_dir_flag, add_override_flag, add_runs_dir_flag,
                               positive)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from cnnlab.search.sweep import run_sweep
    from cnnlab.search.sweep_folder import open_sweep, plan_sweep
    from cnnlab.search.sweep_report import METRICS, sweep_outcome, write_sweep_report

    if args.metric not in METRICS:
        raise ValueError(f"--metric {args.metric!r}: use one of {', '.join(METRICS)}")
    if args.resume:
        if args.experiment or args.grid or args.override or args.seeds is not None or args.name:
            raise ValueError("--resume continues a sweep as it was planned: give no experiment, --grid, -o, --seeds "
                             "or --name")
        sweep = open_sweep(args.resume)
        print(f"continuing sweep {sweep.folder}")
    else:
        if not args.experiment:
            raise ValueError("give an experiment or sweep spec file (e.g. recipes/002-a-sweep.yaml), or --resume DIR")
        sweep, created = plan_sweep(args.experiment, args.grid, args.override, args.seeds, args.runs_dir, args.name)
        print(f"{'new' if created else 'continuing'} sweep {sweep.folder}: {len(sweep.points)} points x "
              f"{sweep.seeds} seed(s)")
    outcome = run_sweep(sweep, data_dir=args.data_dir, quiet=args.quiet, report=not args.no_report)
    md, png, text = write_sweep_report(sweep, args.metric)
    print(text)
    print(sweep_outcome(sweep, args.metric, md, png))
    if outcome.interrupted is not None:
        print(f"stopped; continue with: cnnlab sweep --resume {sweep.folder}")
        print(sweep.folder)
        return EXIT_INTERRUPTED
    print(sweep.folder)   # the last line is the sweep folder, for scripts
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from cnnlab.search.duration import parse_duration
    from cnnlab.search.runner import run_search

    timeout = parse_duration(args.timeout) if args.timeout else None
    outcome = run_search(args.space, args.trials, runs_dir=args.runs_dir, study_name=args.study, storage=args.storage,
                         timeout_s=timeout, max_params=args.max_params, pruner=args.pruner, data_dir=args.data_dir,
                         heartbeat_s=args.heartbeat, report=args.report)
    print(outcome.table)
    if outcome.worker.stopped_by == "timeout":
        print("\nstopped by --timeout")
    print(outcome.closing_block())
    if args.retrain_best:
        if outcome.best_recipe is None:
            raise ValueError("--retrain-best: no trial has completed yet; run more --trials first")
        code = _retrain(outcome.best_recipe, outcome.study_dir, outcome.best_number, args)
        if code:
            return code
    print(outcome.study_dir)   # the last line is the study folder, for scripts
    return 0


def _retrain(recipe: Path, study_dir: Path, number: int, args: argparse.Namespace) -> int:
    """The best config over --seeds seeds: a one-point sweep in the study folder (resumable the same way)."""
    from cnnlab.search.sweep import run_sweep
    from cnnlab.search.sweep_folder import plan_sweep
    from cnnlab.search.sweep_report import write_sweep_report

    sweep, _ = plan_sweep(recipe, [], [], args.seeds, study_dir, name=f"retrain-best-t{number:04d}")
    print(f"retraining the best config over {args.seeds} seeds in {sweep.folder}")
    outcome = run_sweep(sweep, data_dir=args.data_dir, quiet=True, report=True)
    print(write_sweep_report(sweep, "val_acc")[2])
    if outcome.interrupted is not None:
        print(f"stopped; continue with: cnnlab sweep --resume {sweep.folder}")
        return EXIT_INTERRUPTED
    return 0


def register(sub) -> None:
    """Add `sweep` and `search` to cnnlab's sub-commands."""
    s = add_command(sub, "sweep", "a grid of runs (cartesian product), resumable, in one sweep folder", [
        "cnnlab sweep recipes/002-a-sweep.yaml -o epochs=3",
        "cnnlab sweep recipes/004-a.yaml --grid batch_size=128,64 --grid optimizer.lr=0.1,0.01 --seeds 2",
        "cnnlab sweep --resume runs/sweep-004-a-20261204-153000"],
        description="Train every point of a grid as an ordinary run. Run the same command again (or --resume DIR) "
                    "to skip finished runs and resume a killed one.")
    s.add_argument("experiment", nargs="?", help="experiment YAML, or a sweep spec (YAML with grid:), "
                                                 "e.g. recipes/002-a-sweep.yaml")
    s.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="a grid axis, e.g. --grid batch_size=128,64; KEY1+KEY2=... sets both keys (repeatable)")
    add_override_flag(s, "every point's config")
    s.add_argument("--seeds", type=positive, default=None, metavar="N",
                   help="runs per point with seeds seed, seed+1, ... (default 1)")
    add_runs_dir_flag(s, "the sweep folder is made")
    s.add_argument("--name", default=None, help="sweep folder name (default: sweep-<experiment>-<time>)")
    s.add_argument("--resume", metavar="SWEEP_DIR", help="continue a sweep folder")
    s.add_argument("--metric", default="val_acc", help="metric of the figure and grid table (default: val_acc)")
    add_data_dir_flag(s)
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars: one line per epoch")
    s.add_argument("--no-report", action="store_true", help="skip each run's report.html/report.md")
    s.set_defaults(func=_cmd_sweep)

    q = add_command(sub, "search", "architecture / hyper-parameter search with Optuna over a YAML space", [
        "cnnlab search recipes/search/cifar10-50k.yaml --trials 50 --timeout 2h",
        "cnnlab search recipes/search/cifar10-50k.yaml --trials 50 --retrain-best --seeds 3"],
        description="Run trials of a search space (recipes/search/*.yaml) until the study has --trials trained ones. "
                    "Every trial is a run folder; the same command resumes after a kill; workers with one --storage "
                    "URL share a study.")
    q.add_argument("space", help="search space YAML, e.g. recipes/search/cifar10-50k.yaml")
    q.add_argument("--trials", type=int, required=True, help="trained trials the study should have in all")
    q.add_argument("--timeout", default=None, help="start no trial after this long, e.g. 2h, 30m, 90s")
    q.add_argument("--max-params", type=int, default=None,
                   help="parameter limit (Keras-style total), checked before a trial trains (default: the space's)")
    q.add_argument("--storage", default=None,
                   help="database URL (default: SQLite in the study folder); postgresql+psycopg://user:pw@host/db "
                        "lets workers on many machines join one study")
    q.add_argument("--study", default=None, help="study name (default: the space's name)")
    add_runs_dir_flag(q, "the study folder search-<study>/ is made")
    q.add_argument("--pruner", choices=["median", "hyperband", "none"], default=None,
                   help="per-epoch pruning (default: the space's, else median)")
    q.add_argument("--heartbeat", type=int, default=60,
                   help="seconds between a trial's heartbeats; a trial silent for twice this is re-queued (default 60)")
    q.add_argument("--retrain-best", action="store_true", help="then train the best config over --seeds seeds")
    q.add_argument("--seeds", type=positive, default=3, metavar="N", help="seeds for --retrain-best (default 3)")
    add_data_dir_flag(q)
    q.add_argument("--report", action="store_true", help="write report.html for every trial (default: curves only)")
    q.set_defaults(func=_cmd_search)


__all__ = ["register"]
