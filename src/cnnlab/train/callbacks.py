"""Callbacks see the run only through a `logs` dict (Keras-style); they never touch the trainer.

Hooks: on_train_begin(logs), on_epoch_begin(epoch, logs), on_batch_end(step, logs),
on_epoch_end(epoch, logs) with the epoch's metrics row, on_train_end(logs) with the summary.
"""

from __future__ import annotations

import time
from typing import Callable

from tqdm import tqdm


class Callback:
    def on_train_begin(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...
    def on_batch_end(self, step: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if pct else f"{value:.4f}"


class ProgressPrinter(Callback):
    """A tqdm bar per epoch (loss, accuracy, images/s); in quiet mode one plain line per epoch."""

    # Refresh the bar's numbers every this many batches: reading the running loss syncs a GPU.
    REFRESH_EVERY = 20

    def __init__(self, quiet: bool = False, log: Callable[[str], None] = print):
        self.quiet = quiet
        self.log = log
        self.bar: tqdm | None = None
        self.epochs = 0
        self.steps = 0

    def on_train_begin(self, logs: dict) -> None:
        self.epochs = logs["epochs"]
        self.steps = logs["steps_per_epoch"]

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        self.t0 = time.perf_counter()
        self.first_seen = None
        if not self.quiet:
            self.bar = tqdm(total=self.steps, initial=logs.get("first_step", 0), desc=f"epoch {epoch + 1}/{self.epochs}",
                            unit="batch", leave=True, dynamic_ncols=True)

    def on_batch_end(self, step: int, logs: dict) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if step % self.REFRESH_EVERY == 0 or step == self.steps - 1:
            seen = logs["seen"]
            if self.first_seen is None:
                self.first_seen = seen
            elapsed = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix(loss=f"{logs['loss_sum'].item() / max(seen, 1):.4f}",
                                 acc=f"{logs['correct'].item() / max(seen, 1):.3f}",
                                 img_s=f"{seen / elapsed:.0f}", lr=f"{logs['lr']:.2e}", refresh=False)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.log(f"epoch {logs['epoch']}/{self.epochs}  train loss {_fmt(logs['train_loss'])} "
                 f"acc {_fmt(logs['train_acc'], True)}  val loss {_fmt(logs['val_loss'])} "
                 f"acc {_fmt(logs['val_acc'], True)}  lr {logs['lr']:.2e}  {logs['seconds']:.1f}s "
                 f"{logs['images_per_sec']:.0f} img/s")

    def on_train_end(self, logs: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
