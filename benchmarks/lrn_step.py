"""The 002 ConvNet's training step with cnnlab's LocalResponseNorm (window sum as a band matmul)
against the same network with torch's nn.LocalResponseNorm put back, rounds interleaved in one
process, as a throughput ratio per round.

    python benchmarks/lrn_step.py --batch-size 256 --rounds 5 --steps 20 --json results/speed/lrn_step.json

Batch 256 is a siamese step of report 002-c (128 pairs, both images of a pair in one forward).
The step is the benchmarks' shared one (torch_steps.py): scale, forward, cross-entropy, backward,
Adam step, on random uint8 images, channels_last as the engine runs on the CPU.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from bench_common import round_ratios, write_json_atomic  # noqa: E402
from cnnlab.models import create_model  # noqa: E402
from torch_steps import time_training_steps  # noqa: E402

VARIANTS = ("torch_lrn", "cnnlab_lrn")


def build(variant: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("convnet002")
    if variant == "torch_lrn":
        for name in ("norm1", "norm2"):
            ours = getattr(model.features, name)
            setattr(model.features, name, nn.LocalResponseNorm(ours.size, ours.alpha, ours.beta, ours.k))
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant per round")
    p.add_argument("--warmup-steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--no-channels-last", action="store_true", help="NCHW instead of the engine's CPU default")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    for name, value in (("--steps", args.steps), ("--rounds", args.rounds), ("--batch-size", args.batch_size),
                        ("--threads", args.threads)):
        if value < 1:
            p.error(f"{name} must be positive, got {value}")
    torch.set_num_threads(args.threads)
    channels_last = not args.no_channels_last
    ips: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for variant in VARIANTS:
            model = build(variant, seed=r).train()
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            res = time_training_steps(model, torch.optim.Adam(model.parameters(), lr=1e-4),
                                      batch_size=args.batch_size, num_classes=10, channels_last=channels_last,
                                      bf16=args.bf16, warmup_steps=args.warmup_steps, steps=args.steps)
            ips[variant].append(res["images_per_s"])
            print(f"round {r + 1}/{args.rounds} {variant:11s} {res['images_per_s']:8.1f} img/s", flush=True)
    ratios = round_ratios(ips["cnnlab_lrn"], ips["torch_lrn"])
    print(f"\nconvnet002, batch {args.batch_size}, {'bf16' if args.bf16 else 'fp32'}"
          f"{', channels_last' if channels_last else ''}, {args.threads} threads, torch {torch.__version__}")
    for variant in VARIANTS:
        print(f"{variant:11s} {statistics.median(ips[variant]):8.1f} img/s (median of {args.rounds} rounds)")
    print(f"cnnlab_lrn / torch_lrn: {ratios['ratio_median']:.2f}x (min {ratios['ratio_min']:.2f}, "
          f"max {ratios['ratio_max']:.2f})")
    if args.json:
        write_json_atomic(args.json, {"batch_size": args.batch_size, "bf16": args.bf16, "channels_last": channels_last,
                                      "threads": args.threads, "torch": torch.__version__, "rounds": args.rounds,
                                      "steps": args.steps, "images_per_s_rounds": ips, **ratios})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
