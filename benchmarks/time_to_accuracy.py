"""Time to a report's test accuracy: the report's own Keras recipe against a cnnlab recipe, same machine, same run.

For report 004-a (78.05% test) or 001-d (73.83%), each round runs, interleaved (Keras first in odd
rounds, cnnlab first in even ones, so the machine's drift hits both):
  - keras:  benchmarks/keras_report.py --experiment ID in benchmarks/.venv-keras: the report's recipe
            to its last epoch, then the test set;
  - cnnlab: `cnnlab train RECIPE -o seed=ROUND ...` (default: recipes/fast-cpu.yaml, no TTA, with the
            epochs given by --epochs): the whole command, data loading and the final test pass included.
Each side's time is the wall clock of its whole process (interpreter start to exit). The per-round
ratio keras seconds / cnnlab seconds gives the median and its spread. A side whose test accuracy
falls short of the report's number is marked: its time is not a time to that accuracy.

    .venv/bin/python benchmarks/time_to_accuracy.py --experiment 004-a --epochs 3 --rounds 3 \\
        --data-dir "$CNNLAB_DATA" --output results/speed/DATE/time_to_accuracy-004a.json

Run it alone on the machine (a second job slows both sides and the ratio means nothing); before
each run the driver waits for a quiet machine and it marks runs that others disturbed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import write_json_atomic
from cifar_pickles import DEFAULT_DATA_DIR, CifarDataError, find_cifar10_folder
from keras_report import RECIPES
from machine_load import OtherLoadMeter, wait_until_quiet
from train_speed import BUSY_FLAG_CORES, DEFAULT_KERAS_PYTHON, KERAS_VENV_HINT, BenchmarkError, machine_info

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
SIDES = ("keras", "cnnlab")
# The run record files kept per cnnlab run (--keep-runs): small, readable without cnnlab.
RUN_RECORD_FILES = ("config.yaml", "metrics.jsonl", "summary.json")


def round_order(rounds: int) -> list[tuple[int, str]]:
    """(round, side) pairs: keras then cnnlab in round 1, cnnlab then keras in round 2, and so on."""
    order: list[tuple[int, str]] = []
    for r in range(1, rounds + 1):
        sides = SIDES if r % 2 == 1 else tuple(reversed(SIDES))
        order.extend((r, side) for side in sides)
    return order


def last_json_line(stdout: str, key: str) -> dict[str, Any]:
    """The last stdout line that is a JSON object holding `key` (libraries may print above it)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and key in record:
                return record
    raise BenchmarkError(f"no JSON line with {key!r} on stdout")


def timed_process(command: list[str], threads: int, timeout_s: float, label: str) -> tuple[subprocess.CompletedProcess, float, float | None]:
    """Run `command` to its end; returns (process, wall seconds, cores other processes used meanwhile)."""
    # Math libraries read these at start-up; pin them so neither side gets more cores than asked.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    meter = OtherLoadMeter()
    meter.start()
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{label}: took longer than --timeout {timeout_s:.0f} s") from None
    wall = time.perf_counter() - start
    other = meter.stop()
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BenchmarkError(f"{label}: exit code {proc.returncode}; command: {' '.join(command)}\n{tail}")
    return proc, wall, other


def run_keras(args: argparse.Namespace, data_folder: Path, round_no: int) -> dict[str, Any]:
    """The report's Keras recipe, whole process timed; its JSON line plus the wall time."""
    command = [str(args.keras_python), str(BENCH_DIR / "keras_report.py"), "--experiment", args.experiment,
               "--data-dir", str(data_folder), "--threads", str(args.threads), "--seed", str(round_no)]
    command += args.keras_test_args
    proc, wall, other = timed_process(command, args.threads, args.timeout, "keras")
    record = last_json_line(proc.stdout, "test_accuracy")
    return {**record, "wall_seconds": round(wall, 2), "other_processes_busy_cores": other, "command": command}


def run_cnnlab(args: argparse.Namespace, data_folder: Path, round_no: int, runs_dir: Path) -> dict[str, Any]:
    """`cnnlab train` in a fresh process, timed whole; test accuracy from the run's summary.json."""
    out = runs_dir / f"round{round_no}"
    overrides = [f"threads={args.threads}", f"seed={round_no}", *args.override]
    if args.epochs is not None:
        overrides.append(f"epochs={args.epochs}")
    command = [sys.executable, "-m", "cnnlab", "train", str(args.recipe), "-q", "--runs-dir", str(out),
               "--data-dir", str(data_folder.parent)]
    for item in overrides:
        command += ["-o", item]
    proc, wall, other = timed_process(command, args.threads, args.timeout, "cnnlab")
    folders = [p for p in out.iterdir() if (p / "summary.json").is_file()]
    if len(folders) != 1:
        raise BenchmarkError(f"cnnlab: expected one run folder with summary.json under {out}, found {len(folders)}")
    run = folders[0]
    summary = json.loads((run / "summary.json").read_text())
    final = summary.get("final", {})
    if final.get("test_acc") is None:
        raise BenchmarkError(f"cnnlab: {run}/summary.json has no final test accuracy")
    per_epoch = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    record = {
        "framework": "cnnlab", "experiment": args.experiment, "recipe": str(args.recipe), "overrides": overrides,
        "test_accuracy": float(final["test_acc"]), "test_tta_accuracy": final.get("test_tta_acc"),
        "epochs": summary.get("epochs_completed"), "params": summary.get("params"),
        "run_folder": run.name, "wall_seconds": round(wall, 2), "other_processes_busy_cores": other,
        # Test accuracy after each epoch, when the recipe monitors it (monitor_test=true).
        "test_accuracy_per_epoch": [row.get("test_acc") for row in per_epoch if "test_acc" in row],
        "command": command,
    }
    if args.keep_runs is not None:
        dest = args.keep_runs / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in RUN_RECORD_FILES:
            shutil.copy2(run / name, dest / name)
    return record


def summarize(records: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """Per side: median wall seconds (min-max), median test accuracy, rounds at the target;
    the per-round ratio keras / cnnlab over rounds where both sides ran."""
    out: dict[str, Any] = {"target_test_accuracy": target}
    for side in SIDES:
        rows = [r for r in records if r["framework"] == side]
        if not rows:
            continue
        walls = [r["wall_seconds"] for r in rows]
        accs = [r["test_accuracy"] for r in rows]
        out[side] = {"runs": len(rows), "wall_median": statistics.median(walls), "wall_min": min(walls),
                     "wall_max": max(walls), "test_accuracy_median": statistics.median(accs),
                     "test_accuracy_mean": statistics.fmean(accs),
                     "test_accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                     "reached_target": sum(a >= target for a in accs)}
    by_round: dict[int, dict[str, float]] = {}
    for r in records:
        by_round.setdefault(r["round"], {})[r["framework"]] = r["wall_seconds"]
    ratios = [sides["keras"] / sides["cnnlab"] for _, sides in sorted(by_round.items()) if len(sides) == 2]
    if ratios:
        out["ratios"] = [round(x, 3) for x in ratios]
        out["ratio_median"], out["ratio_min"], out["ratio_max"] = statistics.median(ratios), min(ratios), max(ratios)
    return out


def format_table(records: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """Markdown: one row per run, then the medians and the ratio."""
    target = summary["target_test_accuracy"]
    lines = ["| round | side | wall s | test acc | at the report's number | disturbed |", "|---:|---|---:|---:|---|---|"]
    for r in sorted(records, key=lambda r: (r["round"], r["framework"])):
        other = r.get("other_processes_busy_cores")
        flag = f"yes ({other:.2f} cores)" if other is not None and other > BUSY_FLAG_CORES else "no"
        lines.append(f"| {r['round']} | {r['framework']} | {r['wall_seconds']:.1f} | {100 * r['test_accuracy']:.2f}% "
                     f"| {'yes' if r['test_accuracy'] >= target else 'NO'} | {flag} |")
    lines.append("")
    for side in SIDES:
        s = summary.get(side)
        if s:
            lines.append(f"{side}: median {s['wall_median']:.1f} s ({s['wall_min']:.1f}-{s['wall_max']:.1f}), test "
                         f"{100 * s['test_accuracy_mean']:.2f} ± {100 * s['test_accuracy_std']:.2f}% "
                         f"(mean ± std), {s['reached_target']}/{s['runs']} runs at {100 * target:.2f}%")
    if "ratio_median" in summary:
        lines.append(f"keras / cnnlab time per round: {', '.join(f'{x:.2f}' for x in summary['ratios'])} "
                     f"(median {summary['ratio_median']:.2f}x, {summary['ratio_min']:.2f}-{summary['ratio_max']:.2f})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--experiment", choices=sorted(RECIPES), default="004-a", help="the report whose number is the target")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="intra-op CPU threads for both sides")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder holding cifar-10-batches-py/")
    p.add_argument("--recipe", type=Path, default=REPO_DIR / "recipes" / "fast-cpu.yaml", help="cnnlab recipe")
    p.add_argument("--epochs", type=int, default=None, help="cnnlab epochs (default: the recipe's)")
    p.add_argument("-o", "--override", action="append", default=["tta=false"],
                   help="extra cnnlab override KEY=VALUE (repeatable); tta=false is always first, the report scored one view")
    p.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    p.add_argument("--keras-python", type=Path, default=DEFAULT_KERAS_PYTHON, help="python of the Keras venv")
    p.add_argument("--keras-test-args", nargs=argparse.REMAINDER, default=[],
                   help="(tests only) flags passed on to keras_report.py, e.g. --epochs 1 --num-images 600")
    p.add_argument("--keep-runs", type=Path, default=None,
                   help="copy each cnnlab run's config.yaml, metrics.jsonl and summary.json here")
    p.add_argument("--max-busy-cores", type=float, default=0.3)
    p.add_argument("--quiet-wait", type=float, default=120, help="longest wait (s) for a quiet machine before each run")
    p.add_argument("--timeout", type=float, default=7200, help="seconds allowed per run")
    p.add_argument("--output", type=Path, default=BENCH_DIR / "results" / "time_to_accuracy.json")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be positive, got {args.epochs}")
    try:
        data_folder = find_cifar10_folder(args.data_dir)
    except CifarDataError as err:
        parser.error(str(err))
    if "keras" in args.sides and not args.keras_python.exists():
        parser.error(f"{args.keras_python} not found; create the Keras venv with: {KERAS_VENV_HINT} "
                     "(or pass --sides cnnlab)")
    target = RECIPES[args.experiment].reported_test_accuracy
    order = [(r, s) for r, s in round_order(args.rounds) if s in args.sides]
    records: list[dict[str, Any]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="time-to-acc-") as tmp:
        for i, (round_no, side) in enumerate(order, 1):
            busy, waited = wait_until_quiet(args.max_busy_cores, args.quiet_wait,
                                            sample_seconds=2.0 if args.quiet_wait > 0 else 0.5)
            print(f"[{i}/{len(order)}] round {round_no} {side} (busy cores before: "
                  f"{'unknown' if busy is None else f'{busy:.2f}'}, waited {waited:.0f} s) ...", file=sys.stderr, flush=True)
            try:
                record = (run_keras(args, data_folder, round_no) if side == "keras"
                          else run_cnnlab(args, data_folder, round_no, Path(tmp)))
            except BenchmarkError as err:
                failures.append(str(err))
                print(f"  FAILED: {err}", file=sys.stderr, flush=True)
                continue
            record["round"] = round_no
            records.append(record)
            print(f"  {record['wall_seconds']:.1f} s, test {100 * record['test_accuracy']:.2f}%", file=sys.stderr, flush=True)
    summary = summarize(records, target)
    table = format_table(records, summary)
    print(table)
    results = {
        "benchmark": f"time_to_accuracy_{args.experiment}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else " ".join(argv),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {"experiment": args.experiment, "rounds": args.rounds, "threads": args.threads,
                     "recipe": str(args.recipe), "epochs": args.epochs, "overrides": args.override,
                     "order": order, "data_folder": str(data_folder)},
        "machine": machine_info(), "summary": summary, "table_markdown": table, "runs": records, "failures": failures,
    }
    write_json_atomic(args.output, results)
    print(f"results written to {args.output}")
    if failures:
        print(f"{len(failures)} run(s) failed; see above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
