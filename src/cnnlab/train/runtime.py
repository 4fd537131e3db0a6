"""Device, precision, seeding and determinism: everything about *where* a run executes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import shutil
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


# CPU flags of bf16 arithmetic: x86 (AVX512-BF16, AMX) and Arm (FEAT_BF16, "Features: ... bf16").
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether the CPU computes in bf16 natively; None where unknown (no /proc/cpuinfo). Without it
    bf16 autocast is emulated: airbench_cpu's training step ran at 0.59x the steps/s of fp32 on a
    2-core VM without AVX512-BF16 and at 1.71x on an AMD EPYC with it (benchmarks/cpu_options.py,
    both channels_last; docs/notebook/2026-12-speed.md)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return bool(NATIVE_BF16_FLAGS & set(value.split()))
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    """Auto (None) is on for every device: NHWC convolutions are faster on CUDA and, measured on a
    2-core AVX-512 CPU with torch 2.13 (benchmarks/cpu_options.py), 1.29-1.55x faster training
    steps there too (resnet20 1.29x, cnn004 1.35x, airbench_cpu 1.55x). `False` keeps NCHW."""
    del device   # kept in the signature: a device where NHWC loses would be excluded here
    return True if setting is None else setting


def check_compile(enabled: bool, device: torch.device) -> None:
    """torch.compile's inductor backend writes C++ kernels for the CPU (and Triton for CUDA, which
    the CUDA wheels bring): without a C++ compiler the first step would fail deep inside torch."""
    if enabled and device.type == "cpu" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise ValueError("compile: true needs a C++ compiler on the CPU (torch.compile builds C++ kernels); "
                         "install one (apt install g++) or set compile: false")


def compiled(module: torch.nn.Module) -> torch.nn.Module:
    """The module under torch.compile (default mode). Its parameters stay the module's own: the
    optimizer, checkpoints and evaluation keep using the plain module."""
    return torch.compile(module, dynamic=False)


# glibc's mallopt parameters (<malloc.h>).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# 32 MiB: glibc's largest mmap threshold on 64-bit; buffers below it come from the heap and are reused.
MMAP_THRESHOLD_BYTES = 32 * 2 ** 20
# 1 GiB: freed heap memory up to this much stays in the process for the next step instead of going
# back to the kernel; a run's resident size stays near its peak (measured +6%: 561 -> 592 MB).
TRIM_THRESHOLD_BYTES = 2 ** 30


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed tensor buffers for reuse; True where it was set.

    By default glibc serves each buffer above 128 KiB with its own mmap and unmaps it when freed, so
    the next step's buffer of the same size is fresh memory that page-faults in again, page by page:
    measured on the 2-core VM, 10,700 page faults a training step for cnn004 at batch 64 and 16,000
    for airbench_cpu at batch 256, against 27 and 164 with this setting, and 1.13-1.3x the training
    steps/s (what LD_PRELOAD-ing jemalloc or tcmalloc buys, which PyTorch's CPU tuning guide advises).
    The setting is process-wide and glibc has no call to undo it: it lasts until the process ends.
    Elsewhere (macOS, Windows, musl) nothing is changed and False comes back.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
                and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def seed_torch(seed: int) -> None:
    """Seed torch's global generators (CPU and CUDA), which dropout draws from; shuffling and
    augmentation use explicit generators instead."""
    torch.manual_seed(seed)


@contextlib.contextmanager
def run_settings(threads: int | None, deterministic: bool):
    """Thread count, deterministic algorithms and cuDNN autotuning for one run, restored afterwards,
    so that calling train() from a notebook leaves the process as it found it."""
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(), torch.backends.cudnn.benchmark,
              os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    try:
        if threads:
            torch.set_num_threads(threads)
        if deterministic:
            # cuBLAS needs this workspace setting for deterministic matmuls (CUDA >= 10.2).
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = not deterministic   # autotuned kernels are the fast, non-bitwise choice
        yield
    finally:
        threads_before, det, warn_only, bench, cublas = before
        torch.set_num_threads(threads_before)
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.backends.cudnn.benchmark = bench
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def versions() -> dict:
    import numpy

    from cnnlab.version import __version__

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "cnnlab": __version__}


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
