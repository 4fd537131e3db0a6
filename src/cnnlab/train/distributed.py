"""Data-parallel training on several processes with PyTorch's own engine (DDP, launched by torchrun).

The loop stays one loop: it asks a `World` which rows of each global batch are its own, whether
it writes files, and how to combine numbers across ranks. A single process gets a `World` of
size 1 whose every method is a no-op, so the single-process path computes exactly what it did
before DDP existed.

    torchrun --nproc-per-node 2 -m cnnlab train EXP      (or: cnnlab train EXP --nproc 2)

Importing this module changes nothing; the first `session()` of a process joins the process
group that torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) describes, and
the process leaves it when it exits.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

# A rank waits this long on its peers (a collective, the rendezvous) before it gives up with a
# message; long enough for a slow evaluation or report on rank 0, short enough not to hang for hours.
DEFAULT_TIMEOUT_S = 300.0


class PeerLost(RuntimeError):
    """Another rank died, was killed or stopped answering: this rank cannot go on alone."""


@dataclass(frozen=True)
class World:
    """Who this process is among the processes that train one run together."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    comm_device: torch.device = torch.device("cpu")   # where small tensors go for collectives

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run folder, metrics, checkpoints, weights and the report."""
        return self.rank == 0

    # --- which data is mine --------------------------------------------------------------------

    def rows(self, n: int) -> tuple[int, int]:
        """This rank's contiguous [start, stop) of n rows; sizes differ by at most one (equal when
        size divides n), and rank order is row order, so gathering the parts restores the whole."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)

    # --- combining across ranks ------------------------------------------------------------------

    def _collective(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, ValueError) as err:   # gloo/NCCL report a dead peer or a timeout this way
            raise PeerLost(f"rank {self.rank}/{self.size} lost the other ranks during {what} (one of them died, "
                           f"was killed, or did not answer within {self.timeout_s:g} s): {err}. Look at the "
                           f"other ranks' output for the cause; resume from the last checkpoint with "
                           f"cnnlab train --resume RUN") from None

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true on every rank when it is true on any: the ranks stop or skip together."""
        if not self.enabled:
            return tuple(bool(f) for f in flags)
        import torch.distributed as dist

        t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32, device=self.comm_device)
        self._collective("a stop/NaN check", dist.all_reduce, t, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in t.tolist())

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64), e.g. the epoch's loss sums and image counts."""
        if not self.enabled:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.comm_device)
        self._collective("the sum of the epoch's metrics", dist.all_reduce, t)
        return t.tolist()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (pickled): the run folder's path, a resumed checkpoint."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        self._collective("a broadcast from rank 0", dist.broadcast_object_list, box, src=0,
                         device=self.comm_device)
        return box[0]

    def from_main(self, fn: Callable[[], Any]) -> Any:
        """fn() run on rank 0 and its result given to every rank; an error there is raised on
        every rank, so the others stop with rank 0's message instead of waiting for it."""
        if not self.enabled:
            return fn()
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except Exception as err:  # noqa: BLE001 (re-raised below, here and on the other ranks)
                error = err
        try:
            shared = self.broadcast((result, _portable(error)))
        except PeerLost:
            if error is not None:
                raise error
            raise
        if error is not None:
            raise error
        if shared[1] is not None:
            raise shared[1]
        return shared[0]

    def gather_rows(self, part: torch.Tensor) -> torch.Tensor:
        """Every rank's N_r x K rows (from `rows()`) concatenated in rank order: the whole split's
        outputs, on the CPU, on every rank. A rank with no rows may pass any empty tensor."""
        if not self.enabled:
            return part
        import torch.distributed as dist

        part = part.reshape(part.shape[0], -1) if part.numel() else part.reshape(0, 0)
        info = torch.zeros((self.size, 2), dtype=torch.int64, device=self.comm_device)
        info[self.rank, 0], info[self.rank, 1] = part.shape[0], part.shape[1]
        self._collective("gathering predictions", dist.all_reduce, info)
        sizes, width = info[:, 0].tolist(), int(info[:, 1].max())
        padded = torch.zeros((max(sizes), width), dtype=torch.float32, device=self.comm_device)
        padded[:part.shape[0]] = part.to(self.comm_device, torch.float32)
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        self._collective("gathering predictions", dist.all_gather, parts, padded)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)]).cpu()

    def average_buffers(self, module: nn.Module) -> None:
        """Average the floating buffers (batch-norm running statistics) over ranks. Each rank's BN
        saw only its shard, so the ranks' statistics differ; evaluation and the saved weights use
        their mean, the same on every rank."""
        if not self.enabled:
            return
        import torch.distributed as dist

        for buf in module.buffers():
            if buf.is_floating_point():
                t = buf.detach().to(self.comm_device, copy=True)
                self._collective("averaging batch-norm statistics", dist.all_reduce, t)
                buf.copy_(t / self.size)

    def barrier(self, what: str) -> None:
        if self.enabled:
            import torch.distributed as dist

            self._collective(what, dist.barrier)

    @contextlib.contextmanager
    def main_first(self, what: str) -> Iterator[None]:
        """Rank 0 runs the block first (it may download or fill a cache), the others after it."""
        if not self.is_main:
            self.barrier(what)
        yield
        if self.is_main:
            self.barrier(what)

    # --- the model --------------------------------------------------------------------------------

    def wrap(self, model: nn.Module, device: torch.device) -> Optional[nn.Module]:
        """The model in DistributedDataParallel (it averages gradients over ranks during backward),
        or None in a single process. Rebuilt by the engine when a stage changes what trains."""
        if not self.enabled or not any(p.requires_grad for p in model.parameters()):
            return None
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return self._collective("wrapping the model in DDP", DistributedDataParallel, model, device_ids=ids,
                                output_device=device.index if ids else None)


SINGLE = World()


def _portable(error: Optional[BaseException]) -> Optional[BaseException]:
    """The error as the other ranks can unpickle it (its own type when that survives pickling)."""
    if error is None:
        return None
    import pickle

    try:
        return pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001 (an exception type with an unusual constructor)
        return RuntimeError(f"{type(error).__name__}: {error}")


def env_world_size() -> int:
    """WORLD_SIZE as torchrun sets it (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number; launch with torchrun "
                         f"or cnnlab train --nproc N") from None


@contextlib.contextmanager
def session(timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[World]:
    """The World of this process: torchrun's process group, a process group the caller already
    made, or a single process.

    The group is joined at the first call and kept until the process exits: a process started by
    torchrun is one rank for its whole life (`--seeds 3` trains three runs in it), and joining
    torchrun's rendezvous a second time after leaving it hangs.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        yield _world_of_group(timeout_s)
        return
    if env_world_size() <= 1:
        yield SINGLE
        return
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; install a build with it to train on "
                           "several processes")
    if not dist.is_gloo_available():
        raise RuntimeError("this torch build has no gloo backend, which DDP on CPU needs")
    # gloo for CPU tensors always; NCCL for CUDA tensors when there are GPUs. Each collective
    # goes to the backend of its tensors' device.
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as err:
        raise PeerLost(f"could not join the other ranks (MASTER_ADDR={os.environ.get('MASTER_ADDR')}, "
                       f"MASTER_PORT={os.environ.get('MASTER_PORT')}, WORLD_SIZE={os.environ.get('WORLD_SIZE')}) "
                       f"within {timeout_s:g} s: {err}") from None
    atexit.register(_leave)
    yield _world_of_group(timeout_s)


# Seconds this process releases the GIL before it leaves the group at exit (see _leave). 0.1 s failed
# 1 launch of 3 in a CI dry run on 2 busy cores (2026-11-24); 0.5 s costs nothing that matters at exit.
EXIT_GIL_WINDOW_S = 0.5


def _leave() -> None:
    """Leave the process group at exit, after letting c10d's worker threads finish.

    A gloo worker thread frees a finished collective (its Work and tensors) after the caller has
    already returned from it, and freeing a tensor that Python has seen takes the GIL. If the
    interpreter is shutting down by then, that thread is ended inside a C++ destructor and the
    whole rank aborts ("terminate called without an active exception", SIGABRT), which torchrun
    reports as a failed run although every file was written. Seen in 3 of 146 launches of
    tests/test_ddp.py's `--nproc 2 --seeds 2` (a core dump showed a gloo thread in the destructor
    of an all_gather's Work), and in 8 of 10 of tests/ddp_exit_worker.py, which exits with
    collectives in flight. Sleeping releases the GIL, so those threads finish first: 0 of 16.
    destroy_process_group alone is not enough: the dump showed the group's threads still alive at
    shutdown, so something (the DDP model, most likely) still held the group.
    """
    import time

    import torch.distributed as dist

    if dist.is_initialized():
        time.sleep(EXIT_GIL_WINDOW_S)
        dist.destroy_process_group()


def _world_of_group(timeout_s: float) -> World:
    import torch.distributed as dist

    backend = str(dist.get_backend())
    # Object broadcasts and small flags travel on the CPU unless NCCL is the only backend.
    comm = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                 backend=backend, timeout_s=timeout_s, comm_device=comm)


def check_batch_split(batch_size: int, n_train: int, steps: int, world: World) -> None:
    """The global batch must split evenly over the ranks (each rank takes batch_size / N), and a
    kept partial last batch must leave no rank empty."""
    if not world.enabled:
        return
    check_divisible(batch_size, world.size)
    rest = n_train - (steps - 1) * batch_size
    if rest < world.size:
        raise ValueError(f"the last batch of each epoch holds {rest} image(s), fewer than the {world.size} ranks; "
                         f"set drop_last: true or change batch_size")


def check_divisible(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise ValueError(f"batch_size={batch_size} is the global batch and must divide evenly over the "
                         f"{world_size} ranks; use a multiple of {world_size} (e.g. "
                         f"{batch_size - batch_size % world_size or world_size}) or another --nproc")


def check_task(task, world: World) -> None:
    if world.enabled and not getattr(task, "shards_batches", False):
        raise ValueError(f"task {task.name!r} cannot train on several processes yet (its loss needs the whole "
                         f"batch on one rank); train it without --nproc / torchrun")


def check_sync_bn(sync_bn: bool, device: torch.device, world: World) -> None:
    if world.enabled and sync_bn and device.type != "cuda":
        raise ValueError("sync_bn: true needs CUDA: torch's SyncBatchNorm does not run on CPU tensors; set "
                         "sync_bn: false (each rank then normalizes with its own shard's statistics)")
