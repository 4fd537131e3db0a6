"""Training progress on the console: a live bar on a terminal, one plain line per epoch elsewhere.

A tqdm bar redraws itself with carriage returns many times per epoch. On a terminal that is one
line that updates in place; in a file or pipe (CI logs, nohup.out, `| tee`) every redraw stays,
and a 10-epoch run left hundreds of KB of them. So the bar is drawn only when its stream is a
terminal; otherwise (and in quiet mode) the callback writes exactly one line per epoch via `log`.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO

from tqdm import tqdm

from cnnlab.train.callbacks import Callback


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if pct else f"{value:.4f}"


def is_terminal(stream: object) -> bool:
    """True when `stream` is an open terminal; False for files, pipes, StringIO, closed streams."""
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (ValueError, OSError):  # closed or detached stream
        return False


def epoch_line(logs: dict, epochs: int) -> str:
    """The one line per epoch, from the epoch's metrics row."""
    return (f"epoch {logs['epoch']}/{epochs}  train loss {_fmt(logs['train_loss'])} "
            f"acc {_fmt(logs['train_acc'], True)}  val loss {_fmt(logs['val_loss'])} "
            f"acc {_fmt(logs['val_acc'], True)}  "
            + (f"test acc {_fmt(logs['test_acc'], True)}  " if logs.get("test_acc") is not None else "")
            + f"lr {logs['lr']:.2e}  {logs['seconds']:.1f}s "
            f"{logs['images_per_sec']:.0f} img/s")


class ProgressPrinter(Callback):
    """A tqdm bar per epoch (loss, accuracy, images/s, lr) when `stream` is a terminal, plus one
    plain line per epoch via `log`; with `quiet=True` or a non-terminal stream only the line.

    stream: where the bar goes; None = sys.stderr as it is when training begins.
    """

    # Refresh the bar's numbers every this many batches: reading the running loss syncs a GPU.
    REFRESH_EVERY = 20

    def __init__(self, quiet: bool = False, log: Callable[[str], None] = print,
                 stream: Optional[TextIO] = None):
        self.quiet = quiet
        self.log = log
        self.stream = stream
        self.bar: tqdm | None = None
        self.epochs = 0
        self.steps = 0
        self.t0 = 0.0
        self.show_bar = False

    def _stream(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def on_train_begin(self, logs: dict) -> None:
        self.epochs = logs["epochs"]
        self.steps = logs["steps_per_epoch"]
        # Decided once per run: a stream does not turn into a terminal halfway through.
        self.show_bar = not self.quiet and is_terminal(self._stream())

    def on_epoch_begin(self, epoch: int, logs: dict) -> None:
        self.t0 = time.perf_counter()
        if self.show_bar:
            self.bar = tqdm(total=self.steps, initial=logs.get("first_step", 0), desc=f"epoch {epoch + 1}/{self.epochs}",
                            unit="batch", leave=True, dynamic_ncols=True, file=self._stream())

    def on_batch_end(self, step: int, logs: dict) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if step % self.REFRESH_EVERY == 0 or step == self.steps - 1:
            seen = logs["seen"]
            elapsed = max(time.perf_counter() - self.t0, 1e-9)
            self.bar.set_postfix(loss=f"{logs['loss_sum'].item() / max(seen, 1):.4f}",
                                 acc=f"{logs['correct'].item() / max(seen, 1):.3f}",
                                 img_s=f"{seen / elapsed:.0f}", lr=f"{logs['lr']:.2e}", refresh=False)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self._close_bar()
        self.log(epoch_line(logs, self.epochs))

    def on_train_end(self, logs: dict) -> None:
        self._close_bar()
