"""One DDP rank started by hand (as torchrun would start it), which may signal itself mid-run.

    RANK=r WORLD_SIZE=2 MASTER_ADDR=... MASTER_PORT=... python ddp_worker.py SIG_RANK SIGNAL AFTER -- cnnlab args

On rank SIG_RANK, the AFTER-th cross-rank agreement (two per step: the NaN check and the stop
check) sends this process SIGNAL first (TERM, KILL or NONE): a signal or a death at an exact,
repeatable step on one rank only.
"""
import os
import signal
import sys

from cnnlab.cli import main
from cnnlab.train import distributed


def main_with_signal() -> int:
    sig_rank, sig_name, after = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    args = sys.argv[5:]
    if sig_name != "NONE" and int(os.environ["RANK"]) == sig_rank:
        original, calls = distributed.World.any, [0]

        def any_with_signal(self, *flags):
            calls[0] += 1
            if calls[0] == after:
                os.kill(os.getpid(), getattr(signal, "SIG" + sig_name))
            return original(self, *flags)

        distributed.World.any = any_with_signal
    return main(args)


if __name__ == "__main__":
    sys.exit(main_with_signal())
