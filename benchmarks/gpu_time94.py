"""Time to 94% CIFAR-10 test accuracy: cnnlab's GPU recipe beside airbench94, in one call on one GPU.

    python benchmarks/gpu_time94.py --data DIR --peer airbench94.py --out DIR [--runs 3]
        [--recipe recipes/fast-gpu.yaml] [--epochs 24] [--deadline UNIX_TIME]

DIR (from benchmarks/gpu_data.py unpack) holds cifar-10-batches-py for cnnlab and airbench/cifar10/*.pt
for the peer: the same 50,000 + 10,000 real images. First the peer (benchmarks/airbench_peer.py: its
own warm-up call, then RUNS runs), then RUNS seeds of the recipe (`cnnlab train ... -o seed=S -o
monitor_test=true`), then, while the deadline leaves room for a run as long as the longest so far,
the recipe at a second epoch count: fewer (epochs - 4) if the median TTA accuracy of the first set
reached 94%, else more (epochs + 8). Writes OUT/time94.json and prints a table.

Numbers per cnnlab run, all read from the run folder or timed here:
  command_wall_s   the whole `cnnlab train` process (bash-time equivalent: imports, data, everything)
  wall_seconds     summary.json: the engine's own wall clock of the run
  train_seconds    sum of metrics.jsonl `seconds` (training steps of each epoch, without evaluations)
  epoch_reached_94 / train_seconds_to_94: the first epoch whose per-epoch test accuracy (no TTA) is
                   >= 94%, and the training seconds up to and including it (null if none)
  test_acc, test_tta_acc: final, without and with 6-view TTA
Per peer run: its printed tta_val_acc (6-view TTA) and total_time_seconds (CUDA events around the
whitening init, training and TTA eval), and our host wall clock around its main(run).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.94


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(p for p in [str(REPO / "src"), os.environ.get("PYTHONPATH")] if p)}


def stats(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values),
            "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None}


def run_peer(a, log) -> dict:
    out_json = Path(a.out) / "airbench94.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "airbench_peer.py"), str(Path(a.peer).resolve()), str(a.runs),
           "--warmup", "--json", str(out_json)]
    t0 = time.perf_counter()
    with open(Path(a.out) / "airbench94.log", "w") as f:
        proc = subprocess.run(cmd, cwd=Path(a.data) / "airbench", stdout=f, stderr=subprocess.STDOUT, env=_env(),
                              timeout=a.peer_timeout)
    wall = round(time.perf_counter() - t0, 2)
    log(f"airbench94: rc {proc.returncode}, {wall} s for the command ({a.runs} runs + warm-up)")
    if proc.returncode != 0 or not out_json.exists():
        return {"error": f"peer exited {proc.returncode}; see airbench94.log", "command_wall_s": wall, "command": cmd}
    res = json.loads(out_json.read_text())
    res.update(command=cmd, command_wall_s=wall,
               tta_val_acc=stats([r["tta_val_acc"] for r in res["runs"]]),
               total_time_seconds=stats([r["total_time_seconds"] for r in res["runs"]]),
               host_wall_s=stats([r["host_wall_s"] for r in res["runs"]]))
    return res


def read_run(run: Path) -> dict:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run / "summary.json").read_text())
    cum, reached = 0.0, None
    for r in rows:
        cum += r["seconds"]
        if reached is None and r.get("test_acc") is not None and r["test_acc"] >= TARGET:
            reached = (r["epoch"], round(cum, 3))
    return {"run_dir": run.name, "status": summary.get("status"), "epochs": len(rows),
            "per_epoch": [{"epoch": r["epoch"], "seconds": r["seconds"], "test_acc": r.get("test_acc")} for r in rows],
            "train_seconds": round(sum(r["seconds"] for r in rows), 3),
            "epoch_reached_94": reached[0] if reached else None, "train_seconds_to_94": reached[1] if reached else None,
            "wall_seconds": summary.get("wall_seconds"), "test_acc": summary["final"]["test_acc"],
            "test_tta_acc": summary["final"].get("test_tta_acc"), "device": summary.get("device"),
            "gpu": summary.get("hardware", {}).get("gpu"), "versions": summary.get("versions")}


def run_ours(a, epochs: int, seed: int, log) -> dict:
    runs_dir = Path(a.out) / "runs" / f"e{epochs}-s{seed}"
    cmd = [sys.executable, "-m", "cnnlab.cli", "train", str(REPO / a.recipe), "--data-dir", str(a.data),
           "--runs-dir", str(runs_dir), "-q", "--no-report", "-o", f"seed={seed}", "-o", f"epochs={epochs}",
           "-o", "monitor_test=true", "-o", "data.download=false"]
    for o in a.override:
        cmd += ["-o", o]
    t0 = time.perf_counter()
    with open(Path(a.out) / f"cnnlab-e{epochs}-s{seed}.log", "w") as f:
        proc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=_env(), timeout=a.run_timeout)
    wall = round(time.perf_counter() - t0, 2)
    res = {"epochs_set": epochs, "seed": seed, "command": cmd, "command_wall_s": wall, "returncode": proc.returncode}
    dirs = [p for p in runs_dir.iterdir() if p.is_dir()] if runs_dir.is_dir() else []
    if proc.returncode == 0 and len(dirs) == 1:
        res.update(read_run(dirs[0]))
    else:
        res["error"] = f"cnnlab exited {proc.returncode}; see cnnlab-e{epochs}-s{seed}.log"
    log(f"cnnlab {a.recipe} epochs={epochs} seed={seed}: rc {proc.returncode}, {wall} s, "
        f"test {res.get('test_acc')}, TTA {res.get('test_tta_acc')}, 94% at epoch {res.get('epoch_reached_94')}")
    return res


def summarize(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    return {"n": len(ok), "failed": len(runs) - len(ok),
            "test_tta_acc": stats([r["test_tta_acc"] for r in ok]), "test_acc": stats([r["test_acc"] for r in ok]),
            "command_wall_s": stats([r["command_wall_s"] for r in ok]), "train_seconds": stats([r["train_seconds"] for r in ok]),
            "reached_94_no_tta": sum(r["epoch_reached_94"] is not None for r in ok),
            "train_seconds_to_94": stats([r["train_seconds_to_94"] for r in ok]),
            "tta_at_least_94": sum((r["test_tta_acc"] or 0) >= TARGET for r in ok)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--recipe", default="recipes/fast-gpu.yaml")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--deadline", type=float, default=None, help="unix time by which every run must have ended")
    ap.add_argument("--peer-timeout", type=float, default=240)
    ap.add_argument("--run-timeout", type=float, default=240)
    ap.add_argument("-o", "--override", action="append", default=[], help="more -o for each cnnlab run (dry runs)")
    a = ap.parse_args(argv)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    log = lambda s: print(f"[time94 {time.strftime('%H:%M:%S')}] {s}", flush=True)   # noqa: E731
    result = {"target": TARGET, "recipe": a.recipe, "runs_each": a.runs, "skipped": []}
    left = lambda: (a.deadline - time.time()) if a.deadline else float("inf")   # noqa: E731

    def save():
        (Path(a.out) / "time94.json").write_text(json.dumps(result, indent=1) + "\n")

    result["airbench94"] = run_peer(a, log)
    save()
    first, longest = [], 0.0
    for seed in range(a.runs):
        if longest and left() < longest * 1.2 + 10:
            result["skipped"].append(f"epochs={a.epochs} seed={seed}: {left():.0f} s left, a run took {longest:.0f} s")
            continue
        first.append(run_ours(a, a.epochs, seed, log))
        longest = max(longest, first[-1]["command_wall_s"])
        result["cnnlab"] = {"epochs": a.epochs, "runs": first, "summary": summarize(first)}
        save()
    s = summarize(first)
    med = (s["test_tta_acc"] or {}).get("median") or 0
    second_epochs = a.epochs - 4 if med >= TARGET else a.epochs + 8
    second = []
    for seed in range(a.runs):
        need = longest * second_epochs / a.epochs * 1.2 + 10
        if left() < need:
            result["skipped"].append(f"epochs={second_epochs} seed={seed}: {left():.0f} s left, needs about {need:.0f} s")
            break
        second.append(run_ours(a, second_epochs, seed, log))
        longest = max(longest, second[-1]["command_wall_s"] * a.epochs / second_epochs)
        result["cnnlab_second"] = {"epochs": second_epochs,
                                   "why": f"median TTA of the first set {'>=' if med >= TARGET else '<'} 94%",
                                   "runs": second, "summary": summarize(second)}
        save()
    save()
    print_table(result)
    errors = ["error" in result["airbench94"]] + ["error" in r for r in first + second]
    sys.exit(1 if any(errors) else 0)


def print_table(result: dict) -> None:
    def f(x, pct=False):
        if x is None:
            return "-"
        return f"{100 * x:.2f}" if pct else f"{x:.2f}"

    print("\n| who | runs | TTA acc % median (min-max) | timed s median (min-max) | command wall s median |")
    print("|---|---|---|---|---|")
    p = result.get("airbench94", {})
    if "error" not in p and p.get("tta_val_acc"):
        t, s = p["tta_val_acc"], p["total_time_seconds"]
        print(f"| airbench94 | {t['n']} | {f(t['median'], 1)} ({f(t['min'], 1)}-{f(t['max'], 1)}) | "
              f"{f(s['median'])} ({f(s['min'])}-{f(s['max'])}) own CUDA-event time | {p['command_wall_s']} (all runs + warm-up) |")
    for key in ("cnnlab", "cnnlab_second"):
        if key in result:
            s = result[key]["summary"]
            t, tr, w = s["test_tta_acc"] or {}, s["train_seconds"] or {}, s["command_wall_s"] or {}
            print(f"| cnnlab {result['recipe']} epochs={result[key]['epochs']} | {s['n']} | {f(t.get('median'), 1)} "
                  f"({f(t.get('min'), 1)}-{f(t.get('max'), 1)}) | {f(tr.get('median'))} ({f(tr.get('min'))}-{f(tr.get('max'))}) "
                  f"training steps | {f(w.get('median'))} |")
            print(f"|   reached 94% without TTA in {s['reached_94_no_tta']} of {s['n']} runs; "
                  f"TTA >= 94% in {s['tta_at_least_94']} of {s['n']} | | | |")


if __name__ == "__main__":
    main()
