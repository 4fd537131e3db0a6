"""Training time of several models on this machine: training-step throughput of each, as a ratio to
the first model measured in the same run, rounds interleaved (report 001-e's training-time
comparison, made fair: one process, one machine state, each model timed between the others).

    python benchmarks/model_steps.py --models cnn001d2 cnn001e_residual cnn001e_inception \
        --batch-size 32 --optimizer rmsprop --bf16 --channels-last --rounds 5

A model is a registered name, or NAME:JSON with keyword arguments for create_model, e.g. widths of
one family side by side (here the 50K nets of recipes/000-b-ours-sep*.yaml):

    python benchmarks/model_steps.py --batch-size 256 --optimizer sgd --bf16 --channels-last \
        --models 'airbench_cpu:{"widths": [52, 96, 116], "separable": true}' \
                 'airbench_cpu:{"widths": [48, 96, 116], "separable": true}'

Data are random uint8 images (throughput does not depend on the pixels). A step is what the
engine does for an image classifier: scale to [0, 1], forward, cross-entropy, backward, optimizer
step. Timing separate training runs instead compares whatever else the machine did in each.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from bench_common import round_ratios, write_json_atomic  # noqa: E402
from cnnlab.models import create_model  # noqa: E402
from cnnlab.models.params import count_params  # noqa: E402
from torch_steps import time_training_steps  # noqa: E402

OPTIMIZERS = {
    # RMSprop as Keras sets it (rho 0.9, eps 1e-7), the 001-d/001-e recipes' optimizer.
    "rmsprop": lambda params: torch.optim.RMSprop(params, lr=1e-4, alpha=0.9, eps=1e-7),
    "adam": lambda params: torch.optim.Adam(params, lr=1e-3),
    "sgd": lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True),
}


def parse_model_spec(spec: str) -> tuple[str, dict]:
    """'NAME' or 'NAME:JSON' (a JSON object of create_model keyword arguments) -> (name, kwargs)."""
    name, sep, raw = spec.partition(":")
    if not sep:
        return name, {}
    try:
        kwargs = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"model {spec!r}: the part after ':' is not JSON ({err}); "
                         f"write NAME:'{{\"widths\": [48, 96, 116]}}'") from None
    if not isinstance(kwargs, dict):
        raise ValueError(f"model {spec!r}: the part after ':' must be a JSON object of keyword arguments")
    return name, kwargs


def measure(name: str, kwargs: dict, *, batch_size: int, optimizer: str, bf16: bool, channels_last: bool,
            warmup_steps: int, steps: int, seed: int) -> dict:
    torch.manual_seed(seed)
    model = create_model(name, **kwargs)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    res = time_training_steps(model, OPTIMIZERS[optimizer](model.parameters()), batch_size=batch_size,
                              num_classes=model.num_classes, channels_last=channels_last, bf16=bf16,
                              warmup_steps=warmup_steps, steps=steps)
    return {"images_per_s": res["images_per_s"], "params": count_params(model)["total"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", required=True,
                   help="registered model names, or NAME:JSON with create_model kwargs; the first is the baseline")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="rmsprop")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (pays on a CPU with native bf16)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (cnnlab's CPU default)")
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--steps", type=int, default=100, help="timed steps per model per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if len(set(args.models)) != len(args.models):
        p.error(f"--models names a model twice: {args.models}")
    for name, value in (("--steps", args.steps), ("--rounds", args.rounds), ("--batch-size", args.batch_size),
                        ("--threads", args.threads)):
        if value < 1:
            p.error(f"{name} must be positive, got {value}")
    try:   # parsed once, before any timing: a malformed spec fails in a second, not after a round
        specs = {spec: parse_model_spec(spec) for spec in args.models}
    except ValueError as err:
        p.error(str(err))
    torch.set_num_threads(args.threads)
    runs: dict[str, list[dict]] = {m: [] for m in args.models}
    for r in range(args.rounds):
        for name in args.models:
            res = measure(*specs[name], batch_size=args.batch_size, optimizer=args.optimizer, bf16=args.bf16,
                          channels_last=args.channels_last, warmup_steps=args.warmup_steps, steps=args.steps, seed=r)
            runs[name].append(res)
            print(f"round {r + 1}/{args.rounds} {name:22s} {res['images_per_s']:8.1f} img/s", flush=True)
    base = args.models[0]
    print(f"\nbatch {args.batch_size}, {args.optimizer}, {'bf16' if args.bf16 else 'fp32'}"
          f"{', channels_last' if args.channels_last else ''}, {args.threads} threads, torch {torch.__version__}, "
          f"{args.rounds} rounds of {args.steps} timed steps")
    print(f"{'model':22s} {'params':>10s} {'img/s (median)':>14s} {'time per image vs ' + base + ' (median, min-max)':>44s}")
    rows = []
    for name in args.models:
        ips = [x["images_per_s"] for x in runs[name]]
        # Time per image relative to the baseline: the inverse of the throughput ratio, round by round.
        ratios = round_ratios([x["images_per_s"] for x in runs[base]], ips)
        row = {"model": name, "params": runs[name][0]["params"], "images_per_s": statistics.median(ips),
               "time_ratio_median": ratios["ratio_median"], "time_ratio_min": ratios["ratio_min"],
               "time_ratio_max": ratios["ratio_max"], "images_per_s_rounds": ips}
        rows.append(row)
        print(f"{name:22s} {row['params']:10,d} {row['images_per_s']:14.1f} {row['time_ratio_median']:30.2f}x "
              f"({row['time_ratio_min']:.2f}-{row['time_ratio_max']:.2f})")
    if args.json:
        write_json_atomic(args.json, {"models": args.models, "batch_size": args.batch_size, "optimizer": args.optimizer,
                                      "bf16": args.bf16, "channels_last": args.channels_last, "threads": args.threads,
                                      "torch": torch.__version__, "rounds": args.rounds, "steps": args.steps,
                                      "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
