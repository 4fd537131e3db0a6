"""How close the fast recipe's training step comes to this CPU's arithmetic limit (issue 38 item 4).

    python benchmarks/cpu_efficiency.py --out results/speed/2026-12-04/cpu_efficiency.json
    python benchmarks/cpu_efficiency.py --widths 64,256,256 --precision bf16     (fast-cpu-94's step)

In one run, on the same threads:
1. the machine's measured peak: matrix products (n x n @ n x n, 2 n^3 FLOPs) of a few sizes in the
   step's precision (fp32, or bf16 for a bf16 step, where fp32 is measured beside it for reference),
   the best of several repeats; the large-matmul rate is the limit a convolution (lowered to
   GEMM-like kernels by oneDNN) could reach;
2. the training step of `recipes/fast-cpu.yaml` as the engine runs it in epochs 2-11: uint8 batch ->
   normalize -> flip + 2 px reflect-padded crop (cnnlab's Augmenter) -> channels_last -> forward ->
   label-smoothed cross-entropy -> backward -> Nesterov SGD with weight decay -> Lookahead every 5
   steps; the whitening layer frozen (freeze_after: {whiten: 1}); with --precision bf16 the forward
   runs under bf16 autocast as the engine runs it (recipes/fast-cpu-94.yaml: --widths 64,256,256);
3. its arithmetic: per conv/linear layer, forward 2 x MACs, weight gradient 2 x MACs (trainable
   layers), input gradient 2 x MACs (every layer whose input needs a gradient: not the frozen
   first one), over the batch; achieved FLOP/s = that / measured step time;
4. where the time goes: torch.profiler over a few steps, self CPU time grouped into convolution
   (forward and backward), batch norm, elementwise/activation, optimizer, data path
   (normalize + augment) and other.

Run it alone: on 2 cores anything else running changes both numbers (not their meaning).
"""
from __future__ import annotations

import argparse
from contextlib import nullcontext
import json
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from bench_common import widths_kwargs, write_json_atomic  # noqa: E402
from cnnlab.data import AugmentConfig, Augmenter  # noqa: E402
from cnnlab.data.normalize import Normalizer  # noqa: E402
from cnnlab.models import create_model  # noqa: E402
from cnnlab.models.blocks.whiten import PatchWhitening  # noqa: E402
from cnnlab.train.lookahead import Lookahead  # noqa: E402
from cnnlab.train.options import LookaheadConfig  # noqa: E402


def matmul_peak(sizes: list[int], repeats: int, dtype: torch.dtype = torch.float32) -> dict:
    """Best GFLOP/s of an n x n product in `dtype`, per n."""
    out = {}
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)   # warm-up: oneDNN/MKL picks its kernel
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
        out[n] = 2 * n ** 3 / best / 1e9
    return out


def layer_flops(model: nn.Module, batch: torch.Tensor, frozen: set[str]) -> dict:
    """Forward, weight-gradient and input-gradient FLOPs of one training step's conv/linear layers."""
    macs: dict[str, int] = {}

    def hook(name):
        def record(module, inputs, output):
            if isinstance(module, nn.Conv2d):
                kernel = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
                macs[name] = output.numel() * kernel
            elif isinstance(module, PatchWhitening):   # a plain convolution with fixed filters
                macs[name] = output.numel() * module.in_chans * module.kernel_size ** 2
            else:
                macs[name] = output.numel() * module.in_features
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, PatchWhitening))]
    with torch.no_grad():
        model(batch)
    for h in handles:
        h.remove()
    order = list(macs)   # forward order; the first layer's input (the images) needs no gradient
    forward = sum(2 * v for v in macs.values())
    wgrad = sum(2 * v for k, v in macs.items() if not any(k.startswith(f) for f in frozen))
    dgrad = sum(2 * v for k, v in macs.items() if k != order[0])
    return {"layers": len(macs), "forward": forward, "weight_grad": wgrad, "input_grad": dgrad,
            "step": forward + wgrad + dgrad, "first_layer": order[0], "macs_per_image": sum(macs.values()) // len(batch)}


CATEGORIES = (
    ("convolution", ("conv", "mkldnn_convolution")),
    ("batch norm", ("batch_norm", "native_batch_norm")),
    ("matmul / linear", ("addmm", "aten::mm", "aten::bmm", "linear")),
    ("optimizer", ("_foreach", "sgd", "lerp", "aten::add_", "aten::mul_")),
    ("pooling", ("pool",)),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
)


def cpu_name() -> str:
    """The CPU's model name (platform.processor() is empty on most Linux systems)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def categorize(name: str, in_data: bool) -> str:
    if in_data:
        return "data path (normalize + augment)"
    low = name.lower()
    for label, keys in CATEGORIES:
        if any(k in low for k in keys):
            return label
    if any(k in low for k in ("gelu", "relu", "add", "mul", "copy", "clone", "fill", "zero", "contiguous", "to_copy")):
        return "elementwise / copies"
    return "other"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="airbench_cpu")
    p.add_argument("--widths", default=None,
                   help="airbench models: three channel counts, e.g. 64,256,256 (fast-cpu-94); default the model's")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: the forward under bf16 autocast, and the peak measured as a bf16 matmul")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--profile-steps", type=int, default=6)
    p.add_argument("--matmul", default="512,1024,2048")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, the core count)")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)
    kwargs: dict = widths_kwargs(p, args.model, args.widths)   # a bad --widths fails before the timing starts
    if args.model.startswith("airbench"):
        kwargs["logit_scale"] = 1.0
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    threads = torch.get_num_threads()

    sizes = [int(n) for n in args.matmul.split(",")]
    amp_dtype = torch.bfloat16 if args.precision == "bf16" else None
    peak = matmul_peak(sizes, repeats=5, dtype=amp_dtype or torch.float32)
    peak_gflops = max(peak.values())
    # A bf16 step is held against the bf16 limit; the fp32 one beside it says what bf16 bought.
    peak_fp32 = matmul_peak(sizes, repeats=5) if amp_dtype else peak

    images = torch.randint(0, 256, (args.batch_size * 4, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (args.batch_size * 4,))
    normalizer = Normalizer.fit("per_channel", images)
    augmenter = Augmenter(AugmentConfig(hflip=True, crop_padding=2))
    model = create_model(args.model, **kwargs)
    if hasattr(model, "init_from_data"):
        model.init_from_data(normalizer(images))
    model = model.to(memory_format=torch.channels_last).train()
    frozen = {"whiten"} if hasattr(model, "whiten") else set()
    for name, param in model.named_parameters():
        if any(name.startswith(f) for f in frozen):
            param.requires_grad_(False)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    total_steps = args.warmup + args.steps + args.profile_steps + 10
    lookahead = Lookahead(model, LookaheadConfig(every=5), total_steps)
    gen = torch.Generator().manual_seed(1)
    flops = layer_flops(model, normalizer(images[:args.batch_size]).contiguous(memory_format=torch.channels_last),
                        frozen)

    step_no = [0]

    def step(record=None) -> None:
        start = (step_no[0] % 4) * args.batch_size
        with torch.profiler.record_function("data_path") if record else nullcontext():
            x = augmenter(normalizer(images[start:start + args.batch_size]), gen)
            x = x.contiguous(memory_format=torch.channels_last)
        y = labels[start:start + args.batch_size]
        with torch.autocast("cpu", dtype=amp_dtype) if amp_dtype else nullcontext():
            logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step_no[0] += 1
        lookahead.after_step(model, step_no[0])

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    achieved = flops["step"] / step_s / 1e9

    # Profile: self CPU time per op, grouped; ops inside the data_path range are charged to it.
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(args.profile_steps):
            step(record=True)
    events = prof.events()
    data_ranges = [(e.time_range.start, e.time_range.end) for e in events if e.name == "data_path"]
    groups: dict[str, float] = defaultdict(float)
    for e in events:
        if e.name == "data_path" or e.self_cpu_time_total <= 0:
            continue
        inside = any(s <= e.time_range.start and e.time_range.end <= t for s, t in data_ranges)
        groups[categorize(e.name, inside)] += e.self_cpu_time_total / 1e6
    per_step = {k: v / args.profile_steps for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}
    profiled = sum(per_step.values())   # seconds per step that the profiler saw

    result = {
        "benchmark": "cpu_efficiency", "model": args.model, "model_kwargs": kwargs, "precision": args.precision,
        "batch_size": args.batch_size, "threads": threads, "cpu": cpu_name(), "torch": torch.__version__,
        "matmul_gflops": {str(k): round(v, 2) for k, v in peak.items()}, "peak_gflops": round(peak_gflops, 2),
        "matmul_gflops_fp32": {str(k): round(v, 2) for k, v in peak_fp32.items()},
        "flops_per_step": flops, "step_seconds_median": step_s,
        "step_seconds_spread": [min(times), max(times)], "images_per_s": args.batch_size / step_s,
        "achieved_gflops": round(achieved, 2), "share_of_peak": achieved / peak_gflops,
        "profile_seconds_per_step": {k: round(v, 4) for k, v in per_step.items()},
        "profile_share": {k: round(v / profiled, 3) for k, v in per_step.items()},
        "conv_gflops_in_profile": round(flops["step"] / max(per_step.get("convolution", 1e-9), 1e-9) / 1e9, 2),
    }
    print(f"{args.model} {kwargs.get('widths', '')}, {args.precision}, batch {args.batch_size}, {threads} threads, "
          f"torch {torch.__version__}, {result['cpu']}")
    print(f"{args.precision} matmul peak: " + ", ".join(f"n={k}: {v:.1f} GFLOP/s" for k, v in peak.items()))
    if amp_dtype:
        print("fp32 matmul (reference): " + ", ".join(f"n={k}: {v:.1f} GFLOP/s" for k, v in peak_fp32.items()))
    print(f"training step: {flops['step'] / 1e9:.2f} GFLOP ({flops['forward'] / 1e9:.2f} forward, "
          f"{flops['weight_grad'] / 1e9:.2f} weight grad, {flops['input_grad'] / 1e9:.2f} input grad), "
          f"median {1000 * step_s:.1f} ms ({min(times) * 1000:.1f}-{max(times) * 1000:.1f}), "
          f"{args.batch_size / step_s:,.0f} img/s")
    print(f"achieved {achieved:.1f} GFLOP/s = {100 * achieved / peak_gflops:.1f}% of the measured peak "
          f"({peak_gflops:.1f} GFLOP/s)")
    print(f"profile ({args.profile_steps} steps, self CPU time per step, {1000 * profiled:.1f} ms in all; "
          "the profiler adds its own overhead):")
    for k, v in per_step.items():
        print(f"  {k:34s} {1000 * v:7.1f} ms  {100 * v / profiled:5.1f}%")
    print(f"convolution kernels alone: {result['conv_gflops_in_profile']:.1f} GFLOP/s "
          f"({100 * result['conv_gflops_in_profile'] / peak_gflops:.0f}% of peak)")
    if args.out:
        write_json_atomic(Path(args.out), result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
