"""Callbacks see the run only through a `logs` dict (Keras-style); they never touch the trainer.

Hooks: on_train_begin(logs), on_epoch_begin(epoch, logs), on_batch_end(step, logs),
on_epoch_end(epoch, logs) with the epoch's metrics row, on_train_end(logs) with the summary.

A callback asks the loop to stop by setting ``logs["stop_training"] = True`` in on_epoch_end.
A callback with a ``state_key`` keeps state across a kill: the loop stores ``state_dict()`` in
every checkpoint and hands it back through ``load_state_dict`` when the run resumes, so early
stopping and best-weights bookkeeping continue exactly where they were.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional


class Callback:
    state_key: Optional[str] = None   # set by callbacks whose state must survive a resume

    def on_train_begin(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...
    def on_batch_end(self, step: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def _improves(value: float, best: Optional[float], monitor: str, min_delta: float) -> bool:
    if best is None:
        return True
    if monitor.endswith("loss"):   # lower is better
        return value < best - min_delta
    return value > best + min_delta


class EarlyStopping(Callback):
    """Stop after `patience` epochs in which `monitor` did not improve by more than `min_delta`."""

    state_key = "early_stopping"

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best: Optional[float] = None
        self.bad_epochs = 0

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        value = logs.get(self.monitor)
        if self.patience <= 0 or value is None:
            return
        if _improves(value, self.best, self.monitor, self.min_delta):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            logs["stop_training"] = True

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


class BestWeights(Callback):
    """Save the evaluated model's weights to `path` whenever `monitor` improves (higher acc, lower loss).

    The model comes in on_train_begin's logs["model"]; this callback only reads it.
    """

    state_key = "best_weights"

    def __init__(self, path: Path, monitor: str = "val_acc"):
        self.path, self.monitor = Path(path), monitor
        self.best: Optional[float] = None
        self.best_epoch: Optional[int] = None
        self.model = None

    def on_train_begin(self, logs: dict) -> None:
        self.model = logs["model"]

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        from cnnlab.train.checkpoint import save_weights

        value = logs.get(self.monitor)
        if value is None or not math.isfinite(value) or not _improves(value, self.best, self.monitor, 0.0):
            return
        self.best, self.best_epoch = value, logs["epoch"]
        save_weights(self.model, self.path, metadata={"epoch": str(logs["epoch"]), self.monitor: repr(value)})

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class MetricsWriter(Callback):
    """metrics.jsonl: one JSON line per finished epoch, rewritten whole and atomically each epoch.

    On resume the file is rewritten from the checkpoint's rows, dropping any line written after it.
    """

    state_key = "metrics"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict] = []

    def on_train_begin(self, logs: dict) -> None:
        self._write()

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.rows.append({k: v for k, v in logs.items() if k != "stop_training"})
        self._write()

    def _write(self) -> None:
        from cnnlab.atomic import write_text_atomically

        write_text_atomically(self.path, "".join(json.dumps(r, default=_json_value) + "\n" for r in self.rows))

    def state_dict(self) -> dict:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])


def _json_value(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
