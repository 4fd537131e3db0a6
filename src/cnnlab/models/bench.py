"""CPU forward throughput of every registered model: ``python -m cnnlab.models.bench``.

Prints a Markdown table: model, params (Keras counting), MACs per image, forward
images/s (eval mode, no grad, batch 64 at the model's input size).
"""
from __future__ import annotations

import argparse
import time

import torch

from .params import count_params
from .registry import create_model, list_models, model_info
from .summary import count_macs


@torch.no_grad()
def images_per_second(model: torch.nn.Module, input_size: int, batch: int = 64, min_seconds: float = 2.0) -> float:
    """Forward passes of ``batch`` random images until ``min_seconds`` elapsed (after one warm-up)."""
    model.eval()
    x = torch.randn(batch, 3, input_size, input_size)
    model(x)  # warm-up: allocator, kernels
    runs, start = 0, time.perf_counter()
    while True:
        model(x)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and runs >= 2:
            return runs * batch / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", help="model names (default: all but 'sequential')")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per model")
    args = parser.parse_args(argv)
    names = args.models or [n for n in list_models() if n != "sequential"]
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    print("| model | input | params | MACs/image | CPU forward images/s |")
    print("|---|---|---:|---:|---:|")
    for name in names:
        info = model_info(name)
        model = create_model(name, num_classes=info.num_classes)
        s = info.input_size
        ips = images_per_second(model, s, args.batch, args.seconds)
        macs = count_macs(model, s)
        print(f"| {name} | {s}x{s} | {count_params(model)['total']:,} | {macs / 1e6:,.1f} M | {ips:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
