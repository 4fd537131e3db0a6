"""`cnnlab train` (one run, a resumed run, or N seeds) and `cnnlab config` (the resolved experiment)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnlab.cli.common import (EXIT_INTERRUPTED, add_command, add_data_dir_flag, add_override_flag,
                               add_runs_dir_flag, positive)


def _cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.train.experiment import load_experiment

    report = not args.no_report
    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    if args.seeds > 1:
        from cnnlab.train.distributed import env_world_size

        if args.resume:
            raise ValueError("--resume continues one run folder; to continue --seeds N, run the same train command "
                             "again")
        if args.nproc > 1 or env_world_size() > 1:
            raise ValueError(f"--seeds {args.seeds} cannot run under DDP (--nproc or torchrun): the seeds' folder is "
                             "planned and resumed by one process. Train one seed at a time instead: "
                             "cnnlab train EXP -o seed=S --nproc N")
    if args.nproc > 1:
        from cnnlab.train.distributed import check_divisible, env_world_size
        from cnnlab.train.launch import run_under_torchrun, without_option
        from cnnlab.train.resume import read_run_config

        if env_world_size() > 1:
            raise ValueError("--nproc starts torchrun itself; under torchrun, leave --nproc out")
        # A config that cannot split over the ranks fails here, before N processes start.
        if args.resume or args.experiment:
            check_divisible((read_run_config(Path(args.resume)) if args.resume
                             else load_experiment(args.experiment, args.override)).batch_size, args.nproc)
        return run_under_torchrun(args.nproc, without_option(args.argv, "--nproc"))
    if args.resume:
        if args.experiment or args.override:
            raise ValueError("--resume continues a run with its saved config: give no experiment file or -o")
        return _train_one(args, None, report)
    if not args.experiment:
        raise ValueError("give an experiment file (e.g. recipes/004-a.yaml) or --resume RUN")
    cfg = load_experiment(args.experiment, args.override)
    if args.with_sources:
        from cnnlab.pipeline import train_sources

        train_sources(cfg, runs_dir=args.runs_dir, data_dir=args.data_dir, quiet=args.quiet, report=report)
    if args.seeds > 1:
        return _train_seeds(args, report)
    return _train_one(args, cfg, report)


def _train_one(args: argparse.Namespace, cfg, report: bool) -> int:
    """One run folder directly under --runs-dir (or the --resume'd one); DDP ranks all come here."""
    from cnnlab.pipeline import run_experiment
    from cnnlab.report.outcome import run_outcome
    from cnnlab.train.loop import TrainingDiverged

    try:
        result = run_experiment(cfg, runs_dir=args.runs_dir, data_dir=args.data_dir, quiet=args.quiet, report=report,
                                resume=args.resume, ddp_timeout=args.ddp_timeout)
    except TrainingDiverged as err:
        if err.run_dir is not None:   # rank 0's folder: what it got to, then the error line (stderr)
            print(run_outcome(err.run_dir))
            print(err.run_dir)
        raise
    if result.rank == 0:   # rank 0 speaks for a DDP run
        # What the run achieved, on stdout (a log file gets it too), also with -q: it is the result.
        print(run_outcome(result.run_dir))
        print(result.run_dir)   # the last line is the run folder, for scripts
    return EXIT_INTERRUPTED if result.status == "interrupted" else 0


def _train_seeds(args: argparse.Namespace, report: bool) -> int:
    """--seeds N: a one-point sweep (cnnlab.search.seeds); the same command again continues it."""
    from cnnlab.report.compare import compare_runs
    from cnnlab.report.outcome import seeds_outcome
    from cnnlab.search.seeds import run_seeds

    outcome = run_seeds(args.experiment, args.seeds, args.runs_dir, overrides=args.override, data_dir=args.data_dir,
                        quiet=args.quiet, report=report)
    if outcome.busy:
        raise ValueError(f"another process is training these seeds in {outcome.sweep.folder}; let it finish, "
                         "then run this command again")
    if outcome.interrupted is not None:
        print(f"stopped; continue with the same command (finished seeds are skipped): {outcome.sweep.folder}",
              file=sys.stderr)
        print(outcome.interrupted)
        return EXIT_INTERRUPTED
    run_dirs = outcome.run_dirs()
    print(compare_runs(run_dirs, fmt="md"))
    print(seeds_outcome(run_dirs))
    for run_dir in run_dirs:
        print(run_dir)  # one per line; the last line is a run folder, for scripts
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from cnnlab.train.experiment import experiment_to_yaml, load_experiment

    print(experiment_to_yaml(load_experiment(args.experiment, args.override)), end="")
    return 0


def register(sub) -> None:
    """Add `train` and `config` to cnnlab's sub-commands."""
    t = add_command(sub, "train", "train an experiment into a new run folder", [
        "cnnlab train recipes/004-a.yaml -o epochs=5 -o optimizer.lr=0.01",
        "cnnlab train recipes/004-a.yaml --seeds 3        # run again after a kill: finished seeds are skipped",
        "cnnlab train --resume runs/004-a-20261204-101500",
        "cnnlab train recipes/004-a.yaml --nproc 2        # DDP on 2 processes"])
    t.add_argument("experiment", nargs="?", help="experiment YAML, e.g. recipes/004-a.yaml")
    add_override_flag(t)
    add_runs_dir_flag(t, "run folders are created (with --seeds N: a sweep-<name>-<time>/ folder of N runs)")
    add_data_dir_flag(t)
    t.add_argument("--resume", metavar="RUN", help="continue a killed or interrupted run folder")
    t.add_argument("--seeds", type=positive, default=1, metavar="N",
                   help="train with seeds seed, seed+1, ..., seed+N-1 as a one-point sweep and print the table "
                        "(mean ± std); the same command again skips finished seeds and resumes a killed one "
                        "(default 1: one plain run folder)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars: one line per epoch")
    t.add_argument("--no-report", action="store_true", help="skip report.html/report.md (write later: cnnlab report RUN)")
    t.add_argument("--with-sources", action="store_true",
                   help="first train the recipes named by model.pretrained or distill.teacher: {recipe: ...} "
                        "that have no finished run")
    t.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train on N processes of this machine with DDP (runs torchrun; gloo on CPU, NCCL on GPUs); "
                        "batch_size stays the global batch; one seed only")
    t.add_argument("--ddp-timeout", type=float, default=300.0, metavar="S",
                   help="under DDP, a rank that waits S seconds on the others stops with a message (default: 300)")
    t.set_defaults(func=_cmd_train)

    c = add_command(sub, "config", "print the resolved config of an experiment", [
        "cnnlab config recipes/004-a.yaml -o epochs=5"])
    c.add_argument("experiment", help="experiment YAML, e.g. recipes/004-a.yaml")
    add_override_flag(c)
    c.set_defaults(func=_cmd_config)
