"""The run folder: plain files anyone can read without cnnlab.

    <runs>/<YYYYmmdd-HHMMSS>-<name>[-s<seed>]/
        config.yaml       resolved experiment config
        metrics.jsonl     one JSON object per epoch
        summary.json      final numbers, parameter counts, timing, versions, hardware, git commit
        checkpoints/      last.pt (resume state), best.safetensors (best validation accuracy)
        model.safetensors final weights
        predictions/      <split>.npz: probs, labels, indices
        curves.png, model_summary.txt, report.html, report.md
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

import torch

from cnnlab.atomic import write_text_atomically


def new_run_dir(runs_dir: Path, name: str, seed_suffix: int | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{name}" + (f"-s{seed_suffix}" if seed_suffix is not None else "")
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        path = runs_dir / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {runs_dir}")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_json(path: Path, data: dict) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


class RunLocked(RuntimeError):
    """Another process is training in this run folder."""


class RunLock:
    """An exclusive lock on a run folder for as long as a process trains in it.

    A kernel lock (flock) on ``<run>/.lock``: it is released when the process ends in any way,
    SIGKILL included, so a killed run never stays locked.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self._file = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # Windows: no flock; one trainer per folder is then the user's job
            return self
        f = open(self.path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise RunLocked(f"{self.path.parent} is being trained by another process (pid {holder}); wait for it "
                            f"to finish or stop it, then resume") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()   # closing releases the flock
            self._file = None


def saved_normalizer(run_dir: Path):
    """The input statistics the run trained with: normalization.json (any run since it was added),
    else the checkpoint of an older run; None when neither is there (the caller decides: refit on the same
    train split, or refuse). The one reader of what the loop writes there."""
    from cnnlab.data import DataError, Normalizer
    from cnnlab.runfolder import LAST_CHECKPOINT, NORMALIZATION, RunFolderError, read_normalization
    from cnnlab.train.checkpoint import load_checkpoint

    saved = read_normalization(run_dir)
    if saved is not None:
        try:
            return Normalizer.from_state_dict(saved)
        except (ValueError, TypeError, DataError) as err:
            raise RunFolderError(f"{Path(run_dir) / NORMALIZATION} is not valid ({err}); delete it to refit the "
                                 f"statistics on the run's train split") from None
    ckpt_path = Path(run_dir) / LAST_CHECKPOINT
    return Normalizer.from_state_dict(load_checkpoint(ckpt_path)["normalizer"]) if ckpt_path.is_file() else None


def normalization_record(normalizer, n_train: int, source=None) -> dict:
    """normalization.json; `source` (model.pretrained) when data.normalize is "source"."""
    state = normalizer.state_dict()
    fitted_on = (f"the source network's inputs (data.normalize: source, model.pretrained: {source})" if source
                 else "published ImageNet statistics" if state["kind"] == "imagenet"
                 else f"the train split only ({n_train} images)")
    return {"kind": state["kind"], "mean": state["mean"].tolist(), "std": state["std"].tolist(),
            "units": "pixel values 0..255; model input = (x - mean) / std per channel", "fitted_on": fitted_on}


def write_model_summary(model, run_dir: Path, input_size: int, in_chans: int, log) -> None:
    """Keras-style summary beside the config; the summary's dry forward must not touch the RNG."""
    from cnnlab.models import summary

    rng = torch.get_rng_state()
    try:
        write_text_atomically(run_dir / "model_summary.txt", summary(model, input_size=input_size, in_chans=in_chans) + "\n")
    except Exception as err:  # a model the summary cannot trace still trains
        log(f"warning: no model_summary.txt: {err}")
    finally:
        torch.set_rng_state(rng)
