"""Shared pieces of the sweep/search tests (no tests here): tiny experiments, spaces and the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

REPO = Path(__file__).resolve().parents[1]

# The sub-commands through cnnlab's own entry point (cnnlab.cli.main), errors printed as the command prints them.
CLI = "import sys\nfrom cnnlab.cli import main\nsys.exit(main(sys.argv[1:]))\n"

# A 2-stage network of a few hundred parameters: an epoch of 180 images takes ~0.1 s on one core.
TINY_LAYERS = [{"conv_bn_act": 4}, {"pool": 2}, {"conv_bn_act": 8}, {"pool": {"kind": "global_avg"}}, "dense"]
TINY_BASE = {"data": {"name": "cifar10", "val_size": 20, "download": False}, "batch_size": 16,
             "eval_batch_size": 64, "threads": 1, "optimizer": {"name": "adam", "lr": 0.01}, "epochs": 2}


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_experiment(path: Path, **extra) -> Path:
    return write_yaml(path, {"name": "tiny", **TINY_BASE, "model": {"name": "sequential", "kwargs": {"layers": TINY_LAYERS}},
                             **extra})


def tiny_space(path: Path, base: dict | None = None, **sections) -> Path:
    """A space over tiny declared networks (one or two stages of 4-8 filters) unless `sections` say otherwise."""
    data = {"name": "tiny", "base": {**TINY_BASE, **(base or {})},
            "architecture": {"block": "plain", "stages": 2, "width": 4, "depth": 1},
            "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"}}
    data.update(sections)
    return write_yaml(path, data)


def cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=_env())


def cli_background(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=cwd, env=_env())


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def wait_for(condition: Callable[[], object], timeout: float, what: str, proc: subprocess.Popen | None = None):
    """Poll `condition` every 20 ms until truthy; fail naming `what` (with the process output if it ended)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def sigkill_when(cwd: Path, pattern: str, what: str, *command: str) -> Path:
    """Start `cnnlab COMMAND` in the background, SIGKILL it as soon as a file matching `pattern`
    (a glob under `cwd`, e.g. a run's first checkpoint) exists, and return that file."""
    import signal

    proc = cli_background(*command, cwd=cwd)
    try:
        found = wait_for(lambda: next(cwd.glob(pattern), None), 120, what, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
        proc.stdout.close()
    return found
