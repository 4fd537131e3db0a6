"""`cnnlab` command line: a thin layer over the Python API (each command is a few lines)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _cmd_train(args: argparse.Namespace) -> int:
    from cnnlab.pipeline import run_experiment, train_sources
    from cnnlab.train.experiment import load_experiment

    report = not args.no_report
    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
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
    ddp = {"ddp_timeout": args.ddp_timeout}
    if args.resume:
        if args.experiment or args.override:
            raise ValueError("--resume continues a run with its saved config: give no experiment file or -o")
        result = run_experiment(None, resume=args.resume, data_dir=args.data_dir, quiet=args.quiet, report=report,
                                **ddp)
        if result.rank == 0:
            print(result.run_dir)
        return EXIT_INTERRUPTED if result.status == "interrupted" else 0
    if not args.experiment:
        raise ValueError("give an experiment file (e.g. recipes/004-a.yaml) or --resume RUN")
    cfg = load_experiment(args.experiment, args.override)
    if args.with_sources:
        train_sources(cfg, runs_dir=args.runs_dir, data_dir=args.data_dir, quiet=args.quiet, report=report)
    seeds = [cfg.seed + i for i in range(args.seeds)] if args.seeds > 1 else [None]
    run_dirs = []
    for seed in seeds:
        if seed is not None:
            cfg = load_experiment(args.experiment, list(args.override) + [f"seed={seed}"])
        result = run_experiment(cfg, runs_dir=args.runs_dir, data_dir=args.data_dir, quiet=args.quiet,
                                seed_suffix=seed, report=report, **ddp)
        run_dirs.append(result.run_dir)
        if result.status == "interrupted":
            if result.rank == 0:
                print(result.run_dir)
            return EXIT_INTERRUPTED
    if result.rank != 0:   # rank 0 speaks for a DDP run
        return 0
    if len(run_dirs) > 1:
        from cnnlab.report.compare import compare_runs

        print(compare_runs(run_dirs, fmt="md"))
    for run_dir in run_dirs:
        print(run_dir)  # the last line is the run folder, for scripts
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from cnnlab.runs import evaluate_run

    res = evaluate_run(args.run, split=args.split, data_dir=args.data_dir)
    print(f"{res['split']}: {res['images']} images  loss {res['loss']:.4f}  accuracy {100 * res['accuracy']:.2f}%")
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    from cnnlab.runs import runs_table

    print(runs_table(args.dir))
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from cnnlab.data import dataset_info

    print(dataset_info(args.name, args.data_dir, Path(args.out) if args.out else None))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from cnnlab.models import format_model_table

    print(format_model_table())
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from cnnlab.models import create_model, model_info, summary

    info = model_info(args.model)
    size = args.input_size or info.input_size   # e.g. 150 for cnn001a
    classes = args.num_classes or info.num_classes   # e.g. 1 sigmoid output for cnn001a, 200 for autokeras003b
    model = create_model(args.model, num_classes=classes, input_size=size)
    print(summary(model, input_size=size))
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from cnnlab.train.experiment import experiment_to_yaml, load_experiment

    print(experiment_to_yaml(load_experiment(args.experiment, args.override)), end="")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from cnnlab.report import build_site, write_run_report
    from cnnlab.runfolder import find_runs
    from cnnlab.runs import load_run

    target = Path(args.target)
    if (target / "config.yaml").is_file() and not args.out:
        images = None
        try:
            run = load_run(target, data_dir=args.data_dir)
            images = {k: getattr(run.splits, k).images.numpy() for k in ("train", "val", "test")
                      if getattr(run.splits, k) is not None}
        except Exception as err:  # a report without example images is still a report
            print(f"warning: no example images ({err})", file=sys.stderr)
        html, md = write_run_report(target, images=images)
        print(html)
        print(md)
        return 0
    if not find_runs(target):
        raise ValueError(f"{target}: no run folders found (a run folder holds config.yaml)")
    out = Path(args.out or "site")
    index = build_site(target, out)
    print(index)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from cnnlab.report.compare import compare_runs, plot_overlaid_curves
    from cnnlab.runfolder import find_runs

    runs = [r for target in args.runs for r in find_runs(target)]
    if not runs:
        raise ValueError("no run folders among the given paths")
    print(compare_runs(runs, fmt=args.format))
    if args.curves:
        plot_overlaid_curves(runs, Path(args.curves))
        print(f"curves: {args.curves}", file=sys.stderr)
    return 0


def _cmd_learning_curve(args: argparse.Namespace) -> int:
    from cnnlab.report.learning_curve import write_learning_curve

    out, table = write_learning_curve(args.sources, args.out, metric=args.metric, score_set=args.score_set,
                                      title=args.title)
    print(table)
    print(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnnlab", description="Image-classification experiments with CNNs, end to end.")
    p.add_argument("--version", action="version", version=f"cnnlab {__import__('cnnlab').__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train an experiment into a new run folder")
    t.add_argument("experiment", nargs="?", help="experiment YAML, e.g. recipes/004-a.yaml")
    t.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. -o optimizer.lr=0.01 -o epochs=5 (repeatable)")
    t.add_argument("--runs-dir", default="runs", help="where run folders are created (default: runs)")
    t.add_argument("--data-dir", default=None, help="folder holding the dataset (else $CNNLAB_DATA, else the cache)")
    t.add_argument("--resume", metavar="RUN", help="continue a killed or interrupted run folder")
    t.add_argument("--seeds", type=int, default=1, help="repeat with seeds seed, seed+1, ... (tables show mean ± std)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bars: one line per epoch")
    t.add_argument("--no-report", action="store_true", help="skip report.html/report.md (write later: cnnlab report RUN)")
    t.add_argument("--with-sources", action="store_true",
                   help="first train the recipes named by model.pretrained or distill.teacher: {recipe: ...} that have no finished run")
    t.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train on N processes of this machine with DDP (runs torchrun; gloo on CPU, NCCL on GPUs); "
                        "batch_size stays the global batch")
    t.add_argument("--ddp-timeout", type=float, default=300.0, metavar="S",
                   help="under DDP, a rank that waits S seconds on the others stops with a message (default: 300)")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="re-evaluate a run's saved weights on a split")
    e.add_argument("run")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--data-dir", default=None)
    e.set_defaults(func=_cmd_eval)

    r = sub.add_parser("runs", help="list run folders as a table")
    r.add_argument("dir", nargs="?", default="runs")
    r.set_defaults(func=_cmd_runs)

    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_command", required=True)
    di = dsub.add_parser("info", help="sizes, class counts, pixel statistics and a sample grid")
    di.add_argument("name", help="cifar10 | cifar100 | a folder root/<class>/*.jpg")
    di.add_argument("--data-dir", default=None)
    di.add_argument("--out", default=None, help="also write a grid of sample images to this PNG")
    di.set_defaults(func=_cmd_data_info)

    m = sub.add_parser("models", help="list registered models")
    m.set_defaults(func=_cmd_models)

    s = sub.add_parser("summary", help="Keras-style summary of a model")
    s.add_argument("model")
    s.add_argument("--input-size", type=int, default=None, help="default: the model's own input size")
    s.add_argument("--num-classes", type=int, default=None, help="default: the model's own (10 for CIFAR models)")
    s.set_defaults(func=_cmd_summary)

    c = sub.add_parser("config", help="print the resolved config of an experiment")
    c.add_argument("experiment")
    c.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    c.set_defaults(func=_cmd_config)

    rep = sub.add_parser("report", help="HTML + Markdown report of a run, or a static site of many runs (-o)")
    rep.add_argument("target", help="a run folder, or a folder of runs")
    rep.add_argument("-o", "--out", default=None, help="site folder (for a folder of runs)")
    rep.add_argument("--data-dir", default=None)
    rep.set_defaults(func=_cmd_report)

    cmp_ = sub.add_parser("compare", help="compare runs in one table (mean ± std over seeds)")
    cmp_.add_argument("runs", nargs="+")
    cmp_.add_argument("--format", default="md", choices=["md", "csv", "html"])
    cmp_.add_argument("--curves", default=None, help="also write overlaid curves to this PNG")
    cmp_.set_defaults(func=_cmd_compare)

    lc = sub.add_parser("learning-curve", help="accuracy against training images, from runs and probes (000-c/d/e)")
    lc.add_argument("sources", nargs="+", help="run folders (one point each) and probe folders (<run>/probes/<name>)")
    lc.add_argument("--out", default="learning_curve.png", help="the figure; the table goes beside it as .md")
    lc.add_argument("--metric", default="test_acc", choices=["test_acc", "val_acc", "test_tta_acc"],
                    help="the runs' accuracy to plot")
    lc.add_argument("--score-set", default="test", help="the probes' scored set to plot (as in its results table)")
    lc.add_argument("--title", default="")
    lc.set_defaults(func=_cmd_learning_curve)

    # Commands of the packages above training, each registered by its own module.
    from cnnlab.explain.cli import register as register_explain
    from cnnlab.predict_cli import register as register_predict
    from cnnlab.probe_cli import register as register_probe
    from cnnlab.search.cli import register as register_search

    register_probe(sub)
    register_explain(sub)
    register_search(sub)
    register_predict(sub)
    return p


def _who() -> str:
    """"cnnlab", or under torchrun "cnnlab [rank R]": each rank reports its own errors."""
    import os

    if os.environ.get("WORLD_SIZE", "1") not in ("", "1") and "RANK" in os.environ:
        return f"cnnlab [rank {os.environ['RANK']}]"
    return "cnnlab"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv   # `train --nproc N` runs the same command under torchrun
    from cnnlab.config import ConfigError

    try:
        return args.func(args)
    except ConfigError as err:
        print(f"{_who()}: config error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as err:
        # DataError, CheckpointError, TrainingDiverged and model errors all land here with
        # messages that name the problem and the fix; a traceback would bury them.
        print(f"{_who()}: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as err:
        from cnnlab.data import DataError

        if isinstance(err, DataError):
            print(f"{_who()}: data error: {err}", file=sys.stderr)
            return EXIT_ERROR
        raise


if __name__ == "__main__":
    sys.exit(main())
