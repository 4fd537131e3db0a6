"""A rank whose collectives are still being finished by c10d's threads when it exits (run under
torchrun).

A gloo worker thread frees a finished collective's tensors after the caller has moved on, and
that takes the GIL; here the rank starts its last all_gathers without waiting and exits at once,
the widest form of that race. The process group is kept alive past destroy_process_group: here by
a reference; in a run, as the core dump showed, by something such as its DDP model. So leaving
the group does not wait for the threads. train/distributed.py's exit handler must let them
finish, or the rank aborts.
"""
import torch
import torch.distributed as dist

from cnnlab.train import distributed

KEPT = []   # alive until the interpreter shuts down

if __name__ == "__main__":
    with distributed.session(timeout_s=60) as world:
        assert world.size == 2, world
        start, stop = world.rows(128)
        whole = world.gather_rows(torch.randn(stop - start, 10))
        assert whole.shape == (128, 10)
        KEPT.append(dist.group.WORLD)
        for _ in range(20):
            dist.all_gather([torch.empty(64, 10) for _ in range(2)], torch.randn(64, 10), async_op=True)
