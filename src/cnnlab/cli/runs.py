"""Finished runs: `cnnlab eval`, `runs`, `compare`, `report`, `learning-curve` and `robust`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnlab.cli.common import (add_command, add_data_dir_flag, add_device_flag, add_out_flag, add_run_arg, add_tta_flag,
                               device_of)


def _cmd_eval(args: argparse.Namespace) -> int:
    from cnnlab.runfolder import read_summary
    from cnnlab.runs import load_run
    from cnnlab.train.predict import tta_name

    run = load_run(args.run, data_dir=args.data_dir, device=device_of(args))
    res = run.evaluate(args.split, tta=args.tta)
    final = (read_summary(args.run) or {}).get("final") or {}
    recorded = final.get(f"{args.split}_acc")
    # One line naming the run and the split; beside it the accuracy summary.json recorded at the end of training.
    print(f"eval of {args.run} on its {res['split']} split ({res['images']} images): accuracy "
          f"{100 * res['accuracy']:.2f}%   loss {res['loss']:.4f} ({res['loss_name']})"
          + (f"   (summary.json: {100 * recorded:.2f}%)" if recorded is not None else ""))
    if "tta_accuracy" in res:
        # summary.json's TTA row is comparable only when training scored test with the same views.
        trained_views = tta_name(run.config.tta)
        recorded_tta = final.get("test_tta_acc") if args.split == "test" and trained_views == res["tta"] else None
        print(f"  with {res['tta']} TTA: accuracy {100 * res['tta_accuracy']:.2f}%"
              + (f"   (summary.json: {100 * recorded_tta:.2f}%)" if recorded_tta is not None else ""))
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    from cnnlab.runs import runs_table

    print(runs_table(args.dir))
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
    print(build_site(target, Path(args.out or "site")))
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


def _corruption_list(text: str) -> list[str]:
    from cnnlab.data.corrupt import ALL, BENCHMARK, GROUPS

    names: list[str] = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if item == "all":
            names += list(ALL)
        elif item == "benchmark":
            names += list(BENCHMARK)
        elif item == "none":
            continue
        elif item in GROUPS:
            names += list(GROUPS[item])
        elif item in ALL:
            names.append(item)
        else:
            raise argparse.ArgumentTypeError(f"{item!r}: not a corruption; choose from all, benchmark, none, "
                                             f"{', '.join(GROUPS)}, {', '.join(ALL)}")
    return list(dict.fromkeys(names))


def _cmd_robust(args: argparse.Namespace) -> int:
    from cnnlab.data.corrupt import ALL, SEVERITIES
    from cnnlab.evaluate.robust import evaluate_robustness, robust_dir, write_robustness
    from cnnlab.report.robust_page import format_robustness, write_robust_page
    from cnnlab.runs import load_run

    run = load_run(args.run, data_dir=args.data_dir, device=device_of(args))
    run.require("robust")
    severities = [int(s) for s in args.severity] if args.severity else list(SEVERITIES)
    bad = [s for s in severities if s not in SEVERITIES]
    if bad:
        raise ValueError(f"--severity {bad[0]}: give 1 to 5")
    subset = None if args.test_subset == 0 else args.test_subset
    result = evaluate_robustness(run, split=args.split, subset=subset, corruptions=ALL if args.corruptions is None else args.corruptions,
                                 severities=severities, jpeg_qualities=args.jpeg, seed=args.seed,
                                 batch_size=args.batch_size, log=lambda m: print(m, file=sys.stderr))
    out = Path(args.out) if args.out else robust_dir(run.run_dir)
    json_path = write_robustness(result, out)
    page = write_robust_page(result, out, run.run_dir.name)
    print(format_robustness(result))
    print(json_path)
    if not args.out:
        print(f"(the run's report shows it from the next: cnnlab report {args.run})", file=sys.stderr)
    print(page)   # the last line is the page, for scripts
    return 0


def register(sub) -> None:
    """Add `eval`, `runs`, `report`, `compare` and `learning-curve` to cnnlab's sub-commands."""
    e = add_command(sub, "eval", "re-evaluate a run's saved weights on a split", [
        "cnnlab eval runs/004-a-20261204-101500 --split test --device cpu",
        "cnnlab eval runs/fast-cpu-94-20261207-172908 --tta airbench"])
    add_run_arg(e)
    e.add_argument("--split", default="test", choices=["train", "val", "test"], help="the split to score (default test)")
    add_tta_flag(e, "also score the split with test-time augmentation: ")
    add_data_dir_flag(e, for_run=True)
    add_device_flag(e)
    e.set_defaults(func=_cmd_eval)

    r = add_command(sub, "runs", "list run folders as a table", ["cnnlab runs", "cnnlab runs runs/sweep-002-a-*"])
    r.add_argument("dir", nargs="?", default="runs", help="folder searched for runs at any depth (default: runs)")
    r.set_defaults(func=_cmd_runs)

    rep = add_command(sub, "report", "HTML + Markdown report of a run, or a static site of many runs (--out)", [
        "cnnlab report runs/004-a-20261204-101500          # writes report.html / report.md in the run",
        "cnnlab report runs --out site                     # a static site of every run under runs/"])
    rep.add_argument("target", help="a run folder, or a folder of runs")
    add_out_flag(rep, "site folder: build a static site of every run under TARGET (default for a folder of runs: "
                      "site)")
    add_data_dir_flag(rep, for_run=True)
    rep.set_defaults(func=_cmd_report)

    cmp_ = add_command(sub, "compare", "compare runs in one table (mean ± std over seeds)", [
        "cnnlab compare runs/sweep-004-a-20261204-153000 --format csv",
        "cnnlab compare runs/004-a-* runs/004-b-* --curves curves.png"])
    cmp_.add_argument("runs", nargs="+", help="run folders, or folders searched for runs")
    cmp_.add_argument("--format", default="md", choices=["md", "csv", "html"], help="table format (default md)")
    cmp_.add_argument("--curves", default=None, metavar="PNG", help="also write overlaid curves to this PNG")
    cmp_.set_defaults(func=_cmd_compare)

    lc = add_command(sub, "learning-curve", "accuracy against training images, from runs and probes (000-c/d/e)", [
        "cnnlab learning-curve runs/000-c-* runs/000-a-*/probes/000-d --out learning_curve.png"])
    lc.add_argument("sources", nargs="+", help="run folders (one point each) and probe folders (<run>/probes/<name>)")
    add_out_flag(lc, "the figure; the table goes beside it as .md (default: learning_curve.png)",
                 default="learning_curve.png")
    lc.add_argument("--metric", default="test_acc", choices=["test_acc", "val_acc", "test_tta_acc"],
                    help="the runs' accuracy to plot")
    lc.add_argument("--score-set", default="test", help="the probes' scored set to plot (as in its results table)")
    lc.add_argument("--title", default="", help="the figure's title (default: none)")
    lc.set_defaults(func=_cmd_learning_curve)

    rb = add_command(sub, "robust", "test accuracy under JPEG and the CIFAR-10-C common corruptions", [
        "cnnlab robust runs/004-a-20261204-101500                       # 2,000 test images, 19 corruptions",
        "cnnlab robust runs/004-a-20261204-101500 --test-subset 0 --out robust-004-a   # every test image",
        "cnnlab robust runs/004-a-20261204-101500 --corruptions noise,fog --severity 3"],
        description="Accuracy of a classification run on its test images JPEG-compressed (quality 95/75/50, "
                    "4:2:0) and under the common corruptions of CIFAR-10-C (Hendrycks & Dietterich 2019: noise, "
                    "blur, weather, digital; five severities), generated on the fly; the mean corruption accuracy "
                    "over the 15 benchmark corruptions; a table and a plot. Writes robust.json, robust.html and "
                    "robust.md to <run>/robust/ (or --out), which the run's report then shows.")
    add_run_arg(rb)
    rb.add_argument("--test-subset", type=int, default=2000, metavar="N",
                    help="a stratified, seeded subset of N test images (default 2000; 0 = all: 19 corruptions x 5 "
                         "severities of 10,000 images is slow on a CPU)")
    rb.add_argument("--corruptions", type=_corruption_list, default=None, metavar="LIST",
                    help="comma-separated: all (default), benchmark (the 15), none, a group (noise, blur, weather, "
                         "digital) or names (gaussian_noise, fog, ...)")
    rb.add_argument("--severity", action="append", type=int, metavar="S", help="repeatable, 1..5 (default: all five)")
    rb.add_argument("--jpeg", type=lambda t: [int(q) for q in t.split(",") if q.strip()], default=[95, 75, 50],
                    metavar="QS", help="JPEG qualities, comma-separated (default 95,75,50; '' for none)")
    rb.add_argument("--split", default="test", choices=["train", "val", "test"], help="the split (default test)")
    rb.add_argument("--seed", type=int, default=0, help="seed of the subset and of the corruptions (default 0)")
    rb.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: eval_batch_size)")
    add_out_flag(rb, "folder for robust.json / robust.html / robust.md (default: <run>/robust)")
    add_data_dir_flag(rb, for_run=True)
    add_device_flag(rb)
    rb.set_defaults(func=_cmd_robust)
