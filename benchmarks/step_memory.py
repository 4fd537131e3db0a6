"""What cnnlab's malloc setting (`reuse_memory`) and its CPU dropout buy: training-step throughput and
page faults per step of one model, each variant in a fresh process (the malloc setting is
process-wide, so it cannot be undone inside one), rounds interleaved, ratios to the baseline of the
same round.

    python benchmarks/step_memory.py --model cnn004 --batch-size 64 --rounds 5

Variants: `baseline` (torch's nn.Dropout, glibc's default malloc: what a hand-written loop gets),
`reuse_memory` (cnnlab's runtime.reuse_freed_memory), `cnnlab_dropout` (cnnlab's Dropout layer in
place of nn.Dropout), `both` (what a cnnlab run gets). Each step: forward, cross-entropy, backward,
Adam step on random images in channels_last (cnnlab's CPU default), as the 004-a benchmark trains.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_common import round_ratios, write_json_atomic

SRC = Path(__file__).resolve().parents[1] / "src"
VARIANTS = {"baseline": (False, False), "reuse_memory": (True, False), "cnnlab_dropout": (False, True),
            "both": (True, True)}


def child(model_name: str, batch_size: int, steps: int, warmup: int, threads: int, reuse: bool,
          cnnlab_dropout: bool) -> dict:
    """One variant's measurement, in this (fresh) process."""
    sys.path.insert(0, str(SRC))
    from cnnlab.train.runtime import reuse_freed_memory

    applied = reuse_freed_memory() if reuse else False
    import torch
    from torch import nn

    from cnnlab.models import create_model
    from cnnlab.models.blocks.dropout import Dropout

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model(model_name).to(memory_format=torch.channels_last)
    dropouts = [name for name, m in model.named_modules() if isinstance(m, Dropout)]
    if not cnnlab_dropout:   # torch's own layer, same p, in the same place
        for name in dropouts:
            parent_name, _, child_name = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child_name, nn.Dropout(getattr(parent, child_name).p))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.rand(batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (batch_size,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        opt.step()

    for _ in range(warmup):
        step()
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    return {"images_per_s": steps * batch_size / seconds, "page_faults_per_step": faults / steps,
            "reuse_applied": applied, "dropout_layers": len(dropouts)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cnn004")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=60, help="timed steps per variant per round")
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        reuse, dropout = VARIANTS[args.child]
        print(json.dumps(child(args.model, args.batch_size, args.steps, args.warmup_steps, args.threads, reuse, dropout)))
        return 0
    names = ["baseline"] + [v for v in args.variants if v != "baseline"]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            cmd = [sys.executable, __file__, "--child", name, "--model", args.model, "--batch-size", str(args.batch_size),
                   "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                raise SystemExit(f"variant {name} failed (exit {out.returncode}); its stderr is above")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name].append(res)
            print(f"round {r + 1}/{args.rounds} {name:15s} {res['images_per_s']:8.1f} img/s "
                  f"{res['page_faults_per_step']:9.0f} page faults/step", flush=True)
    print(f"\nmodel {args.model}, batch {args.batch_size}, {args.threads} threads, {args.rounds} rounds of "
          f"{args.steps} timed steps, each variant in a fresh process")
    print(f"{'variant':15s} {'img/s (median)':>14s} {'faults/step':>12s} {'ratio to baseline (median, min-max)':>36s}")
    rows = []
    for name in names:
        row = {"variant": name, "images_per_s": statistics.median(x["images_per_s"] for x in runs[name]),
               "page_faults_per_step": statistics.median(x["page_faults_per_step"] for x in runs[name]),
               **round_ratios([x["images_per_s"] for x in runs[name]], [x["images_per_s"] for x in runs["baseline"]]),
               "per_round_images_per_s": [round(x["images_per_s"], 1) for x in runs[name]],
               "reuse_applied": runs[name][0]["reuse_applied"], "dropout_layers": runs[name][0]["dropout_layers"]}
        rows.append(row)
        print(f"{name:15s} {row['images_per_s']:14.1f} {row['page_faults_per_step']:12.0f} "
              f"{row['ratio_median']:20.2f}x ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})")
    if args.json:
        write_json_atomic(args.json, {"model": args.model, "batch_size": args.batch_size, "threads": args.threads,
                                      "rounds": args.rounds, "steps": args.steps, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
