"""What pays on this CPU: training-step throughput of one model under execution options, each as
a ratio to plain eager fp32 (NCHW) measured in the same run, rounds interleaved.

    python benchmarks/cpu_options.py --model airbench_cpu --batch-size 512 --rounds 3

Options: channels_last memory format, bf16 autocast, torch.compile (default mode), their
combinations, and (airbench nets) a frozen whitening layer. Data are random uint8 images (throughput does not depend on the pixels); each
step is normalize + forward + cross-entropy + backward + Nesterov SGD step, as the engine does.
torch.compile's one-off compile time is reported apart: a 10-minute run pays it once.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from bench_common import round_ratios, widths_kwargs, write_json_atomic  # noqa: E402
from cnnlab.models import create_model  # noqa: E402
from torch_steps import time_training_steps  # noqa: E402

VARIANTS = {
    "eager": dict(channels_last=False, bf16=False, compile=False),
    "channels_last": dict(channels_last=True, bf16=False, compile=False),
    "bf16": dict(channels_last=False, bf16=True, compile=False),
    "bf16+channels_last": dict(channels_last=True, bf16=True, compile=False),
    "compile": dict(channels_last=False, bf16=False, compile=True),
    "compile+channels_last": dict(channels_last=True, bf16=False, compile=True),
    # Inductor can fuse autocast's casts into the neighbouring kernels, which eager bf16 pays for one by one.
    "compile+bf16+channels_last": dict(channels_last=True, bf16=True, compile=True),
    # A frozen first layer (airbench's whitening bias after its first epochs, config freeze_after):
    # its input gradient, the costliest one at full resolution, is never computed. Models with a
    # `whiten` module only.
    "channels_last+frozen_whiten": dict(channels_last=True, bf16=False, compile=False, freeze="whiten"),
    # fast-cpu-94's step (bf16 on a CPU with native bf16, whitening frozen after epoch 1), and compiled.
    "bf16+channels_last+frozen_whiten": dict(channels_last=True, bf16=True, compile=False, freeze="whiten"),
    "compile+bf16+channels_last+frozen_whiten": dict(channels_last=True, bf16=True, compile=True, freeze="whiten"),
}


def measure(model_name: str, variant: dict, batch_size: int, warmup_steps: int, steps: int, seed: int,
            model_kwargs: dict | None = None) -> dict:
    torch.manual_seed(seed)
    model = create_model(model_name, **(model_kwargs or {}))
    if variant["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    frozen = variant.get("freeze")
    if frozen:
        if not hasattr(model, frozen):
            raise SystemExit(f"variant freezes module {frozen!r}, which {model_name} lacks; leave the variant out")
        for p in getattr(model, frozen).parameters():
            p.requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, nesterov=True)
    model.train()
    # The warm-up steps pay the one-off costs, torch.compile's compilation among them (reported apart).
    return time_training_steps(torch.compile(model) if variant["compile"] else model, opt, batch_size=batch_size,
                               num_classes=10, channels_last=variant["channels_last"], bf16=variant["bf16"],
                               warmup_steps=warmup_steps, steps=steps, scale=lambda x: (x - 127.5) / 64.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="airbench_cpu")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--warmup-steps", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS),
                   help="default: all that apply to the model (frozen_whiten needs a whiten module)")
    p.add_argument("--widths", default=None,
                   help="airbench models: three channel counts, e.g. 64,256,256 (fast-cpu-94's net)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    model_kwargs = widths_kwargs(p, args.model, args.widths)
    torch.set_num_threads(args.threads)
    if args.variants is None:
        has = set(dict(create_model(args.model, **model_kwargs).named_children()))
        args.variants = [n for n, v in VARIANTS.items() if v.get("freeze") is None or v["freeze"] in has]
    names = ["eager"] + [v for v in args.variants if v != "eager"]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    width = max(len(n) for n in [*names, "variant"])  # the name column fits the longest name and its header
    for r in range(args.rounds):
        for name in names:
            res = measure(args.model, VARIANTS[name], args.batch_size, args.warmup_steps, args.steps, seed=r,
                          model_kwargs=model_kwargs)
            runs[name].append(res)
            print(f"round {r + 1}/{args.rounds} {name:{width}s} {res['images_per_s']:8.1f} img/s "
                  f"(warm-up {res['warmup_s']:.1f} s)", flush=True)
    print(f"\nmodel {args.model} {model_kwargs.get('widths', '')}, batch {args.batch_size}, {args.threads} threads, "
          f"torch {torch.__version__}, {args.rounds} rounds of {args.steps} timed steps")
    print(f"{'variant':{width}s} {'img/s (median)':>14s} {'ratio to eager (median, min-max)':>34s} {'warm-up s':>10s}")
    rows = []
    for name in names:
        ips = statistics.median(x["images_per_s"] for x in runs[name])
        row = {"variant": name, "images_per_s": ips,
               **round_ratios([x["images_per_s"] for x in runs[name]], [x["images_per_s"] for x in runs["eager"]]),
               "warmup_s": statistics.median(x["warmup_s"] for x in runs[name])}
        rows.append(row)
        print(f"{name:{width}s} {ips:14.1f} {row['ratio_median']:14.2f}x ({row['ratio_min']:.2f}-{row['ratio_max']:.2f})"
              f"{'':8s} {row['warmup_s']:10.1f}")
    if args.json:
        write_json_atomic(args.json, {"model": args.model, "model_kwargs": model_kwargs,
                                      "batch_size": args.batch_size, "threads": args.threads,
                                      "torch": torch.__version__, "rounds": args.rounds, "steps": args.steps,
                                      "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
