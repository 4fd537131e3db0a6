"""The loop's bookkeeping as one small object: where the run is, and what it has seen so far.

Everything here goes into every checkpoint, so a run resumed from it continues exactly: the
position (epoch, step in epoch, optimizer step), the running sums of the epoch in progress,
the shuffle generator's state at the epoch's start, the finished epochs' rows and the status.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import torch



def empty_sums() -> dict:
    """Running sums over the epoch in progress: data loss and loss with the L2 penalty, x images."""
    return {"loss_sum": 0.0, "total_loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


@dataclass
class TrainState:
    epoch: int = 0                 # 0-based epoch to run next (or in progress)
    step_in_epoch: int = 0         # steps of that epoch already taken
    global_step: int = 0           # optimizer steps since the start (the schedules' clock)
    sums: dict = field(default_factory=empty_sums)
    shuffle_epoch_start: Optional[torch.Tensor] = None   # shuffle generator state when `epoch` began
    history: list = field(default_factory=list)          # one metrics row per finished epoch
    status: str = "running"        # running | completed | early_stopped | interrupted | diverged
    wall_seconds: float = 0.0      # wall time of earlier sessions of this run (resumes add up)
    commands: list = field(default_factory=list)         # the command line that started the run, then each resume

    def begin_epoch(self) -> None:
        self.step_in_epoch, self.sums = 0, empty_sums()

    def end_epoch(self, row: dict) -> None:
        self.history.append(row)
        self.epoch += 1
        self.step_in_epoch, self.sums, self.shuffle_epoch_start = 0, empty_sums(), None

    def to_dict(self) -> dict:
        return asdict(self)

    def state_dict(self) -> dict:
        return self.to_dict()

    def load_state_dict(self, d: dict) -> None:
        """Continue from a checkpoint's state; a stopped run (interrupted, diverged) runs again."""
        for key, value in d.items():
            setattr(self, key, value)
        if self.status in ("interrupted", "diverged"):
            self.status = "running"

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        return cls(**d)
