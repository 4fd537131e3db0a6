"""Device, precision, seeding and determinism: everything about *where* a run executes."""

from __future__ import annotations

import contextlib
import os
import platform
import random
import subprocess
import sys
from pathlib import Path

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} asked for, but this machine has no CUDA GPU; use device=cpu or auto")
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast where it helps (CUDA); plain float32 on CPU unless asked."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    return device.type == "cuda" if setting is None else setting


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, torch (CPU and CUDA); all data randomness uses explicit generators instead."""
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls (CUDA >= 10.2).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True


def versions() -> dict:
    import numpy

    import cnnlab

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "cnnlab": cnnlab.__version__}


def hardware(device: torch.device) -> dict:
    info = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def git_commit() -> str | None:
    """Commit of the cnnlab source tree, if it is a git checkout (None when installed from a wheel)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def command_line() -> str:
    return " ".join(sys.argv)
