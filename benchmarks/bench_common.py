"""What every framework script of the train-speed benchmark shares: its flags and its JSON line.

Standard library only, because the Keras script imports it inside its own venv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from cifar_pickles import DEFAULT_DATA_DIR

# Recipe of report 004-a: Adam lr 1e-3, batch 64, categorical cross-entropy, pixels / 255.
LEARNING_RATE = 1e-3
BATCH_SIZE = 64
# Keras-style count for 004-a: 81,962 trainable + 384 BatchNorm moving mean/variance values.
EXPECTED_PARAMS_004A = 82_346
WARMUP_EPOCHS = 1  # the first epoch pays one-off costs (graph tracing, allocator growth, caches)
# fp32: every framework computes in float32 (the report's setting). bf16: each framework's own mixed
# precision (torch.autocast / Keras' "mixed_bfloat16" policy: bf16 compute, float32 weights and loss);
# it pays only on a CPU with native bf16 (`avx512_bf16` or `amx_bf16` in lscpu).
PRECISIONS = ("fp32", "bf16")


class EpochClock:
    """Wall-clock and process-CPU seconds of each epoch.

    CPU seconds / wall seconds tells whether the run had its cores: about `threads` on a quiet
    machine, clearly less when other processes competed for them (the driver warns then).
    """

    def __init__(self) -> None:
        self.wall_seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self._wall0 = self._cpu0 = 0.0

    def start(self) -> None:
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()

    def stop(self) -> None:
        self.wall_seconds.append(time.perf_counter() - self._wall0)
        self.cpu_seconds.append(time.process_time() - self._cpu0)

    def cpu_per_wall(self) -> float:
        """Mean busy cores over the timed (post-warm-up) epochs."""
        wall = sum(self.wall_seconds[WARMUP_EPOCHS:])
        return sum(self.cpu_seconds[WARMUP_EPOCHS:]) / wall if wall > 0 else float("nan")


def build_arg_parser(description: str) -> argparse.ArgumentParser:
    """Flags common to every framework script (data, size of the run, threads, seed)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="folder holding cifar-10-batches-py/, as for `cnnlab train --data-dir` "
                             "(that folder itself is accepted too); default: %(default)s")
    parser.add_argument("--num-images", type=int, default=10_000, help="first N train images (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs, the first is warm-up (default %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op CPU threads (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and shuffling (default %(default)s)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32, or bf16 mixed precision (float32 weights and loss) (default %(default)s)")
    return parser


def check_run_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject sizes that cannot give a steady-state measurement, via parser.error (exit code 2)."""
    if args.epochs < WARMUP_EPOCHS + 1:
        parser.error(f"--epochs must be at least {WARMUP_EPOCHS + 1} (the first is warm-up and not timed), got {args.epochs}")
    if args.num_images < 1:
        parser.error(f"--num-images must be positive, got {args.num_images}")
    if args.threads < 1:
        parser.error(f"--threads must be positive, got {args.threads}")


def steady_images_per_sec(epoch_seconds: Sequence[float], images_per_epoch: int) -> float:
    """Images per second over the epochs after the warm-up: all their images / all their seconds."""
    timed = list(epoch_seconds)[WARMUP_EPOCHS:]
    if not timed:
        raise ValueError(f"need more than {WARMUP_EPOCHS} epoch(s) to measure, got {len(epoch_seconds)}")
    total = sum(timed)
    if total <= 0:
        raise ValueError(f"timed epochs took {total} s; the clock did not advance")
    return images_per_epoch * len(timed) / total


def result_record(framework: str, args: argparse.Namespace, clock: EpochClock,
                  params: int, trainable_params: int, final_train_accuracy: float,
                  versions: dict[str, str], **extra: Any) -> dict[str, Any]:
    """The one JSON object each framework script prints; the driver reads these keys."""
    return {
        "framework": framework,
        "images_per_sec": steady_images_per_sec(clock.wall_seconds, args.num_images),
        "epoch_seconds": [round(s, 4) for s in clock.wall_seconds],
        "epoch_cpu_seconds": [round(s, 4) for s in clock.cpu_seconds],
        "cpu_per_wall": round(clock.cpu_per_wall(), 3),
        "warmup_epochs": WARMUP_EPOCHS,
        "num_images": args.num_images,
        "epochs": args.epochs,
        "batch_size": BATCH_SIZE,
        "threads": args.threads,
        "precision": args.precision,
        "params": params,
        "trainable_params": trainable_params,
        # Mean accuracy over the last epoch's batches in training mode (dropout on), as Keras logs it.
        "final_train_accuracy": final_train_accuracy,
        "python": platform.python_version(),
        "versions": versions,
        **extra,
    }


def print_result(record: dict[str, Any]) -> None:
    """Print the record as one JSON line on stdout; the driver takes the last such line."""
    print(json.dumps(record), flush=True)


def round_ratios(values: Sequence[float], baselines: Sequence[float]) -> dict[str, float]:
    """Median, min and max of the per-round ratios value / baseline (rounds paired in order): the
    drift of a shared machine moves both sides of a round together, so the ratios are what to claim."""
    ratios = [v / b for v, b in zip(values, baselines)]
    return {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}


def widths_kwargs(parser: argparse.ArgumentParser, model: str, text: str | None) -> dict[str, list[int]]:
    """--widths "64,256,256" as create_model keyword arguments: an airbench net's three channel
    counts ({} when not given); a usage error for a model that has no widths."""
    if not text:
        return {}
    if not model.startswith("airbench"):
        parser.error("--widths applies to the airbench models only")
    return {"widths": [int(w) for w in text.split(",")]}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write via a temporary file in the same folder, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
