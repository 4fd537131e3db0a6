"""Training-speed benchmark of the 004-a CNN: cnnlab vs a plain PyTorch loop vs Keras 3 (TF backend).

Runs every framework script as its own subprocess, in interleaved rounds (round 1 in one order,
round 2 reversed, ...) so slow drift of the machine (other jobs, thermal state) hits all of them
alike, then prints a table of images/s with the ratio to the plain PyTorch loop measured in the
same invocation, and writes benchmarks/results/train_speed.json.

    .venv/bin/python benchmarks/train_speed.py                 # 10,000 images, 3 epochs, 2 rounds
    .venv/bin/python benchmarks/train_speed.py --rounds 1 --num-images 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bench_common import PRECISIONS, write_json_atomic
from cifar_pickles import DEFAULT_DATA_DIR, CifarDataError, find_cifar10_folder
from machine_load import OtherLoadMeter, wait_until_quiet

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_KERAS_PYTHON = BENCH_DIR / ".venv-keras" / "bin" / "python"
KERAS_VENV_HINT = ("python3 -m venv benchmarks/.venv-keras && "
                   "benchmarks/.venv-keras/bin/pip install tensorflow-cpu keras")
DEFAULT_OUTPUT = BENCH_DIR / "results" / "train_speed.json"
BASELINE = "plain_torch"
# cnnlab_compile: cnnlab with `compile: true` (torch.compile); not run unless named in --frameworks.
FRAMEWORKS = ("plain_torch", "cnnlab", "keras", "cnnlab_compile")
DEFAULT_FRAMEWORKS = ("plain_torch", "cnnlab", "keras")
SCRIPTS = {"plain_torch": "plain_torch_004a.py", "cnnlab": "cnnlab_004a.py", "keras": "keras_004a.py",
           "cnnlab_compile": "cnnlab_004a.py"}
# A run during which other processes kept more than this many cores busy on average is flagged.
BUSY_FLAG_CORES = 0.25
LABELS = {"plain_torch": "plain PyTorch loop", "cnnlab": "cnnlab", "keras": "Keras 3 (TensorFlow)",
          "cnnlab_compile": "cnnlab, compile: true"}


class BenchmarkError(RuntimeError):
    """A framework script failed or printed no result line; the message carries its stderr tail."""


@dataclass
class Job:
    """One framework to run: its name and the interpreter that runs its script."""

    framework: str
    python: Path


def interleaved_order(frameworks: Sequence[str], rounds: int) -> list[str]:
    """Round r runs the frameworks forwards when r is even, backwards when odd (A B C, C B A, ...)."""
    order: list[str] = []
    for r in range(rounds):
        order.extend(frameworks if r % 2 == 0 else list(reversed(frameworks)))
    return order


def parse_result_line(stdout: str) -> dict[str, Any]:
    """The last stdout line that is a JSON object with a "framework" key (libraries may print above it)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "framework" in record and "images_per_sec" in record:
            return record
    raise BenchmarkError("no JSON result line on stdout")


def run_one(job: Job, script_args: list[str], threads: int, timeout_s: float) -> dict[str, Any]:
    """Run one framework script to completion and return its parsed JSON record."""
    command = [str(job.python), str(BENCH_DIR / SCRIPTS[job.framework]), *script_args]
    # Math libraries read these at start-up; pin them so no framework gets more cores than asked.
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    meter = OtherLoadMeter()
    meter.start()
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{job.framework}: took longer than {timeout_s:.0f} s; lower --num-images or --epochs") from None
    wall = time.perf_counter() - start
    other_cores = meter.stop()
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BenchmarkError(f"{job.framework}: exit code {proc.returncode}; command: {' '.join(command)}\n{tail}")
    try:
        record = parse_result_line(proc.stdout)
    except BenchmarkError as err:
        raise BenchmarkError(f"{job.framework}: {err}; command: {' '.join(command)}") from None
    record["process_wall_seconds"] = round(wall, 2)
    record["other_processes_busy_cores"] = None if other_cores is None else round(other_cores, 3)
    return record


def is_disturbed(record: dict[str, Any]) -> bool:
    """True when other processes kept more than BUSY_FLAG_CORES busy during the run."""
    other = record.get("other_processes_busy_cores")
    return other is not None and other > BUSY_FLAG_CORES


def summarize(records: list[dict[str, Any]], frameworks: Sequence[str]) -> list[dict[str, Any]]:
    """One row per framework: mean images/s over its rounds, and the ratio to the baseline's mean.

    Runs disturbed by other processes are left out of the mean when the framework has at least
    one undisturbed run (they stay in the JSON and show with a * in the table); if all its runs
    were disturbed, all are used and the row says so.
    """
    rows = []
    means: dict[str, float] = {}
    for framework in frameworks:
        runs = [r for r in records if r["framework"] == framework]
        if not runs:
            continue
        clean = [r for r in runs if not is_disturbed(r)]
        used = clean or runs
        means[framework] = statistics.fmean(r["images_per_sec"] for r in used)
        rows.append({
            "framework": framework,
            "images_per_sec": round(means[framework], 1),
            "images_per_sec_per_round": [round(r["images_per_sec"], 1) for r in runs],
            "disturbed_rounds": [i + 1 for i, r in enumerate(runs) if is_disturbed(r)],
            "rounds_used": len(used),
            "all_rounds_disturbed": not clean,
            "final_train_accuracy": round(statistics.fmean(r["final_train_accuracy"] for r in used), 4),
            "params": runs[0]["params"],
            "cpu_per_wall": round(statistics.fmean(r["cpu_per_wall"] for r in used), 2),
            "max_other_busy_cores": max((r.get("other_processes_busy_cores") or 0.0) for r in used),
        })
    baseline = means.get(BASELINE)
    for row in rows:
        row["ratio_vs_plain_torch"] = round(means[row["framework"]] / baseline, 3) if baseline else None
        ratios = paired_ratios(records, row["framework"])
        row["round_ratios"] = [round(r, 3) for r in ratios]
        row["round_ratio_median"] = round(statistics.median(ratios), 3) if ratios else None
        if "keras" in means and row["framework"] != "keras":   # issue 13's claim is against Keras
            vs_keras = paired_ratios(records, row["framework"], baseline="keras")
            row["round_ratios_vs_keras"] = [round(r, 3) for r in vs_keras]
            row["round_ratio_vs_keras_median"] = round(statistics.median(vs_keras), 3) if vs_keras else None
    return rows


def paired_ratios(records: list[dict[str, Any]], framework: str, baseline: str = BASELINE) -> list[float]:
    """Per round, the framework's speed over the baseline's speed in the same round.

    The machine's own speed drifts between rounds (14% between two back-to-back runs of one script
    was seen here); a round runs every framework back to back, so a ratio within a round cancels
    most of that drift, and the median of the rounds' ratios is what a claim should rest on.
    Rounds where either run was disturbed by other processes are left out.
    """
    def by_round(name: str) -> dict[int, dict[str, Any]]:
        runs = [r for r in records if r["framework"] == name]
        return {r.get("round", i + 1): r for i, r in enumerate(runs)}

    base, mine = by_round(baseline), by_round(framework)
    return [mine[k]["images_per_sec"] / base[k]["images_per_sec"] for k in sorted(mine.keys() & base.keys())
            if base[k]["images_per_sec"] > 0 and not (is_disturbed(mine[k]) or is_disturbed(base[k]))]


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table, ready to paste into a README."""
    lines = ["| framework | images/s | per round | ratio vs plain PyTorch | per-round ratio: median (min-max) | params "
             "| last-epoch train acc | busy cores (own / others) |",
             "|---|---:|---|---:|---|---:|---:|---:|"]
    for row in rows:
        ratio = f"{row['ratio_vs_plain_torch']:.2f}x" if row["ratio_vs_plain_torch"] is not None else "n/a"
        per_round = ", ".join(f"{s:.0f}" + ("*" if i + 1 in row["disturbed_rounds"] else "")
                              for i, s in enumerate(row["images_per_sec_per_round"]))
        paired = row.get("round_ratios") or []
        spread = (f"{row['round_ratio_median']:.2f}x ({min(paired):.2f}-{max(paired):.2f}, {len(paired)} rounds)"
                  if paired else "n/a (no undisturbed round pair)")
        lines.append(f"| {LABELS.get(row['framework'], row['framework'])} | {row['images_per_sec']:.0f} | {per_round} "
                     f"| {ratio} | {spread} | {row['params']:,} | {row['final_train_accuracy']:.3f} "
                     f"| {row['cpu_per_wall']:.2f} / {row['max_other_busy_cores']:.2f} |")
    for row in rows:
        if row.get("round_ratios_vs_keras"):
            lines.append("")
            lines.append(f"{LABELS.get(row['framework'], row['framework'])} vs Keras, round by round: "
                         + ", ".join(f"{r:.2f}" for r in row["round_ratios_vs_keras"])
                         + f"x (median {row['round_ratio_vs_keras_median']:.2f}x)")
    if any(row["disturbed_rounds"] for row in rows):
        lines.append("")
        lines.append(f"\\* other processes used more than {BUSY_FLAG_CORES} cores during that run; left out of "
                     "the mean when the framework has an undisturbed run.")
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """What the numbers depend on: CPU model, core count, load when the run started."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if hasattr(os, "getloadavg"):
        info["load_average_1_5_15min"] = [round(x, 2) for x in os.getloadavg()]
    return info


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of the driver."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--num-images", type=int, default=10_000, help="train images per epoch")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is warm-up, not timed")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; each runs every framework once; "
                   "the per-round ratios give the median and its spread")
    p.add_argument("--threads", type=int, default=2, help="intra-op CPU threads for every framework")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 everywhere, or every framework in its own bf16 mixed precision (needs a CPU with native bf16)")
    p.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS, default=list(DEFAULT_FRAMEWORKS))
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help="folder holding cifar-10-batches-py/, as for `cnnlab train --data-dir` and the Makefile's "
                        "CNNLAB_DATA (python ../shared/datasets/unpack.py cifar10 DIR makes one)")
    p.add_argument("--recipe", type=Path, default=REPO_DIR / "recipes" / "004-a.yaml", help="cnnlab recipe")
    p.add_argument("--keras-python", type=Path, default=DEFAULT_KERAS_PYTHON, help="python of the Keras venv")
    p.add_argument("--max-busy-cores", type=float, default=0.3,
                   help="before each run, wait until fewer cores than this are busy (other users' jobs)")
    p.add_argument("--quiet-wait", type=float, default=120, help="longest wait (s) for a quiet machine per run")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per framework run")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="results JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0, or 1 when a framework failed (the others still run)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (the first is warm-up and not timed), got {args.epochs}")
    for name in ("num_images", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    try:
        data_folder = find_cifar10_folder(args.data_dir)
    except CifarDataError as err:
        parser.error(str(err))
    if BASELINE not in args.frameworks:
        parser.error(f"--frameworks must include {BASELINE}: the ratios are relative to it")

    jobs: dict[str, Job] = {}
    notes: list[str] = []
    for framework in args.frameworks:
        if framework == "keras" and not args.keras_python.exists():
            notes.append(f"keras skipped: {args.keras_python} not found; create the venv with: {KERAS_VENV_HINT}")
            print(notes[-1], file=sys.stderr)
            continue
        jobs[framework] = Job(framework, args.keras_python if framework == "keras" else Path(sys.executable))

    # Every script gets the resolved cifar-10-batches-py folder (their --data-dir accepts it, as cnnlab's does),
    # so all read the same files and the Keras venv, which cannot import cnnlab, needs no lookup of its own.
    common = ["--data-dir", str(data_folder), "--num-images", str(args.num_images),
              "--epochs", str(args.epochs), "--threads", str(args.threads), "--precision", args.precision]
    extra = {"cnnlab": ["--recipe", str(args.recipe)], "cnnlab_compile": ["--recipe", str(args.recipe), "--compile"]}
    machine = machine_info()
    records: list[dict[str, Any]] = []
    failures: list[str] = []
    order = interleaved_order(list(jobs), args.rounds)
    for i, framework in enumerate(order, 1):
        # With no waiting allowed, one short sample still records how busy the machine was.
        busy, waited = wait_until_quiet(args.max_busy_cores, args.quiet_wait,
                                        sample_seconds=2.0 if args.quiet_wait > 0 else 0.5)
        busy_text = "unknown" if busy is None else f"{busy:.2f}"
        print(f"[{i}/{len(order)}] {framework} (busy cores before: {busy_text}, waited {waited:.0f} s) ...",
              file=sys.stderr, flush=True)
        try:
            record = run_one(jobs[framework], common + extra.get(framework, []), args.threads, args.timeout)
        except BenchmarkError as err:
            failures.append(str(err))
            print(f"  FAILED: {err}", file=sys.stderr, flush=True)
            continue
        record["round"] = (i - 1) // len(jobs) + 1
        record["busy_cores_before"] = busy
        records.append(record)
        other = record["other_processes_busy_cores"]
        print(f"  {record['images_per_sec']:.1f} images/s (epochs: {record['epoch_seconds']} s; "
              f"cores used by other processes meanwhile: {other})", file=sys.stderr, flush=True)
        if other is not None and other > BUSY_FLAG_CORES:
            notes.append(f"warning: during {framework} round {record['round']} other processes used {other:.2f} cores "
                         "on average; its speed is understated. Rerun on a quiet machine.")
            print("  " + notes[-1], file=sys.stderr, flush=True)

    rows = summarize(records, list(jobs))
    table = format_table(rows)
    print(table)
    for note in notes:
        print(note)
    results = {
        "benchmark": "train_speed_004a",
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else " ".join(argv),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": {"num_images": args.num_images, "epochs": args.epochs, "timed_epochs": args.epochs - 1,
                     "rounds": args.rounds, "threads": args.threads, "batch_size": 64, "order": order,
                     "precision": args.precision,
                     "data_dir": str(args.data_dir), "data_folder": str(data_folder)},
        "machine": {**machine, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]
                    if hasattr(os, "getloadavg") else None},
        "summary": rows, "table_markdown": table, "runs": records, "notes": notes, "failures": failures,
    }
    write_json_atomic(args.output, results)
    print(f"results written to {args.output}")
    if failures:
        print(f"{len(failures)} run(s) failed; see above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
