"""The end of a run: its status, the final evaluation (the task's), predictions, and the run's
record: model.safetensors and summary.json, written by the RunRecord callback, summary last."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from cnnlab.atomic import make_folder, write_atomically
from cnnlab.runfolder import FINISHED, LAST_CHECKPOINT, PREDICTIONS, SUMMARY, WEIGHTS
from cnnlab.train import runtime
from cnnlab.train.batchnorm_stats import recompute_batchnorm_stats, training_batchnorms
from cnnlab.train.callbacks import Callback
from cnnlab.train.checkpoint import save_weights
from cnnlab.train.rundir import write_json

if TYPE_CHECKING:   # build.py imports this module
    from cnnlab.train.build import Run


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN or infinite; the last good checkpoint is kept in `run_dir`
    (rank 0's run folder; None on the other ranks of a DDP run)."""

    def __init__(self, message: str, run_dir: Optional[Path] = None) -> None:
        super().__init__(message)
        self.run_dir = run_dir


class RunRecord(Callback):
    """The run's own files at its end: the final weights of a finished run (model.safetensors),
    then summary.json, whose final status marks the run finished. First of the callbacks, so the
    others (the report) find both."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.model = None

    def on_train_begin(self, logs: dict) -> None:
        self.model = logs["model"]   # the evaluated weights (the EMA's when on)

    def on_train_end(self, logs: dict) -> None:
        summary = logs["summary"]   # the summary's own "data" (split sizes) is shadowed by the splits in logs
        if summary.get("status") in FINISHED:
            save_weights(self.model, self.run_dir / WEIGHTS,
                         metadata={"model": str(summary["model"]), "num_classes": str(len(summary["classes"]))})
        write_json(self.run_dir / SUMMARY, summary)


def run_summary(run: "Run") -> dict:
    """summary.json: what ran, how far it got, on what, with which versions."""
    cfg, state, splits = run.cfg, run.state, run.splits
    last = state.history[-1] if state.history else {}
    commands = state.commands or [runtime.command_line()]
    summary = {
        "name": cfg.name, "model": cfg.model.name, "seed": cfg.seed, "status": state.status,
        "epochs_completed": len(state.history), "epochs": run.epochs, "params": run.stages[0]["params"],
        "final": {"train_loss": last.get("train_loss"), "train_acc": last.get("train_acc"),
                  "val_loss": last.get("val_loss"), "val_acc": last.get("val_acc"),
                  "test_loss": None, "test_acc": None},
        "wall_seconds": round(state.wall_seconds, 2),
        "images_per_sec": (round(float(np.mean([r["images_per_sec"] for r in state.history])), 1)
                           if state.history else None),
        "device": str(run.engine.device), "versions": runtime.versions(), "hardware": runtime.hardware(run.engine.device),
        "git_commit": runtime.git_commit(), "command": commands[0], "resumed_by": commands[1:],
        "classes": list(splits.classes),
        "data": {k: (len(getattr(splits, k)) if getattr(splits, k) is not None else 0) for k in ("train", "val", "test")},
    }
    if run.world.enabled:
        summary["distributed"] = {"world_size": run.world.size, "backend": run.world.backend,
                                  "batch_per_rank": cfg.batch_size // run.world.size}
    if cfg.stages:
        summary["stages"] = run.stages
    return summary


def save_predictions(path: Path, probs: np.ndarray, ds) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: savez would append ".npz" to a bare name
            np.savez_compressed(f, probs=probs.astype(np.float32), labels=ds.labels.numpy().astype(np.int64),
                                indices=ds.indices.numpy().astype(np.int64))

    write_atomically(path, write)


def recompute_batchnorm(run: "Run") -> None:
    """Config `precise_bn`: the evaluated weights' batch-norm statistics as the mean over that many
    un-augmented training batches (train/batchnorm_stats.py). Each rank draws its own batches and
    the ranks' statistics are averaged. Idempotent: a resumed run that ends here again recomputes
    the same statistics from the same weights."""
    cfg, engine = run.cfg, run.engine
    names = training_batchnorms(engine.model, cfg.model.frozen_bn)
    if not cfg.precise_bn or not names:
        return
    generator = torch.Generator().manual_seed(cfg.seed + 2 + run.world.rank)
    n = recompute_batchnorm_stats(engine.eval_model, names, engine.train_x, engine.normalizer, cfg.precise_bn,
                                  cfg.batch_size, generator, engine.amp_dtype, engine.channels_last)
    run.world.average_buffers(engine.eval_model)
    run.log(f"precise_bn: batch-norm statistics of {len(names)} layers recomputed over {n:,} training images")


def final_evaluation(run: "Run") -> dict:
    """The task's evaluation of the final weights on every split (eval mode, no augmentation), its
    predictions saved. Under DDP every rank predicts its part of each split and gets everyone's
    (the numbers are then the same on all ranks); rank 0 alone saves them."""
    engine = run.engine
    result = engine.task.evaluate(engine.eval_model, run.splits, engine, evaluate_train=run.cfg.evaluate_train,
                                  tta=run.cfg.tta)
    if run.world.is_main:
        folder = run.run_dir / PREDICTIONS
        make_folder(folder, parents=False)
        for name, (probs, ds) in result.predictions.items():
            save_predictions(folder / f"{name}.npz", probs, ds)
    return result.numbers


def finish(run: "Run") -> str:
    """Evaluate a run that trained to its end, write its record (through the callbacks) and return
    its status. A stopped run (interrupted, diverged) records where it stopped and how to go on;
    a diverged one raises TrainingDiverged after that."""
    state = run.state
    if state.status == "running":
        state.status = "completed"
    state.wall_seconds = run.wall()
    summary = run_summary(run)
    if state.status in FINISHED:
        try:
            recompute_batchnorm(run)
            summary["final"] = final_evaluation(run)
            summary["wall_seconds"] = round(run.wall(), 2)
        except KeyboardInterrupt:
            # Ctrl-C after the last epoch: its checkpoint is saved, so a resume goes straight to this evaluation.
            state.status = "interrupted"
    summary["status"] = state.status
    if state.status not in FINISHED:
        summary["message"] = stop_message(state.status, state, run.run_dir, run.data_dir, run.world.size)
    for cb in run.callbacks:
        cb.on_train_end({**summary, "run_dir": str(run.run_dir), "data": run.splits, "summary": summary})
    run.summary = summary
    if state.status == "diverged":
        raise TrainingDiverged(summary["message"], run.run_dir if run.world.is_main else None)
    if state.status not in FINISHED:
        run.log(summary["message"])
    return state.status


def stop_message(status: str, state, run_dir: Path, data_dir: Optional[str], nproc: int = 1) -> str:
    resume = f"cnnlab train --resume {shlex.quote(str(run_dir))}"
    if data_dir:
        resume += f" --data-dir {shlex.quote(str(data_dir))}"
    if nproc > 1:   # any number of processes continues the run; suggest the same
        resume += f" --nproc {nproc}"
    if status == "interrupted":
        return f"stopped by a signal; continue with: {resume}"
    last = run_dir / LAST_CHECKPOINT
    kept = (f"the last good checkpoint (end of epoch {len(state.history)}) is kept in {last}" if last.is_file()
            else "no checkpoint had been written yet")
    return (f"the loss or the gradients became NaN or infinite in epoch {state.epoch + 1}, step "
            f"{state.step_in_epoch + 1}; no weights were updated with it, and {kept}. Lower optimizer.lr, add "
            f"regularization.grad_clip, or check the data's normalization.")


__all__ = ["RunRecord", "TrainingDiverged", "final_evaluation", "finish", "run_summary", "save_predictions"]
