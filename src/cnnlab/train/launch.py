"""`cnnlab train EXP --nproc N`: the same command again under torchrun, on N local processes.

torchrun (torch.distributed.run, PyTorch's own launcher) starts the ranks and sets their
environment; each rank runs `python -m cnnlab train ...` and train/distributed.py joins them.
This is one node's `torchrun --standalone --nproc-per-node N -m cnnlab train ...`; for several
nodes run torchrun yourself (README: "Several processes, GPUs or nodes").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

EXIT_INTERRUPTED = 130


def without_option(argv: list[str], name: str) -> list[str]:
    """argv with `name VALUE` and `name=VALUE` removed."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def torchrun_command(nproc: int, cnnlab_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "cnnlab", *cnnlab_args]


def run_under_torchrun(nproc: int, cnnlab_args: list[str]) -> int:
    """Run torchrun and wait for it. Ctrl-C or SIGTERM here reaches each rank once, through
    torchrun (it runs in its own process group, so the terminal's Ctrl-C does not hit the ranks
    twice); the ranks then stop together, rank 0 saves a checkpoint, and this returns 130."""
    env = dict(os.environ)
    # torchrun would set 1 thread per rank with a warning; share the cores out instead.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    proc = subprocess.Popen(torchrun_command(nproc, cnnlab_args), env=env, start_new_session=True)
    signalled = []

    def forward(signum, frame) -> None:  # noqa: ANN001
        if not signalled:
            proc.send_signal(signal.SIGTERM)   # torchrun passes it to every rank
        signalled.append(signum)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return EXIT_INTERRUPTED if signalled else code
