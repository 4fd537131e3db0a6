"""The end of a run: validation rows, final evaluation of every split, predictions, the summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.atomic import write_atomically
from cnnlab.train import runtime
from cnnlab.train.losses import probabilities
from cnnlab.train.predict import evaluate, tta_probabilities

# Above this many stored probabilities (images x classes) the train-split predictions are not
# saved: 5e6 float32 = 20 MB, enough for CIFAR-100's 50,000 x 100.
MAX_SAVED_PROBS = 5_000_000


def run_summary(cfg, state, params: dict, classes, device, splits) -> dict:
    """summary.json: what ran, how far it got, on what, with which versions."""
    last = state.history[-1] if state.history else {}
    commands = state.commands or [runtime.command_line()]
    return {
        "name": cfg.name, "model": cfg.model.name, "seed": cfg.seed, "status": state.status,
        "epochs_completed": len(state.history), "epochs": cfg.epochs, "params": params,
        "final": {"train_loss": last.get("train_loss"), "train_acc": last.get("train_acc"),
                  "val_loss": last.get("val_loss"), "val_acc": last.get("val_acc"),
                  "test_loss": None, "test_acc": None},
        "wall_seconds": round(state.wall_seconds, 2),
        "images_per_sec": (round(float(np.mean([r["images_per_sec"] for r in state.history])), 1)
                           if state.history else None),
        "device": str(device), "versions": runtime.versions(), "hardware": runtime.hardware(device),
        "git_commit": runtime.git_commit(), "command": commands[0], "resumed_by": commands[1:],
        "classes": list(classes),
        "data": {k: (len(getattr(splits, k)) if getattr(splits, k) is not None else 0) for k in ("train", "val", "test")},
    }


def save_predictions(path: Path, probs: np.ndarray, ds) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: savez would append ".npz" to a bare name
            np.savez_compressed(f, probs=probs.astype(np.float32), labels=ds.labels.numpy().astype(np.int64),
                                indices=ds.indices.numpy().astype(np.int64))

    write_atomically(path, write)


def _scored_split(splits, split_name: str, cfg):
    """The split the final evaluation scores, or None: absent, empty, or train with evaluate_train off."""
    ds = getattr(splits, split_name)
    if ds is None or len(ds) == 0 or (split_name == "train" and not cfg.evaluate_train):
        return None
    return ds


def final_evaluation(model, splits, normalizer, cfg, amp_dtype, channels_last, run_dir: Path, engine=None) -> dict:
    """Evaluate the final weights on every split (eval mode, no augmentation) and save predictions.

    Under DDP every rank predicts its part of each split and gets everyone's (the numbers are then
    the same on all ranks); rank 0 alone saves them."""
    out = {}
    world = getattr(engine, "world", None)
    writes = world is None or world.is_main
    pred_dir = run_dir / "predictions"
    if writes:
        pred_dir.mkdir(exist_ok=True)
    task = getattr(engine, "task", None)
    if task is not None and task.name != "classification":
        for split_name in ("train", "val", "test"):
            ds = _scored_split(splits, split_name, cfg)
            if ds is None:
                out[f"{split_name}_loss"] = out[f"{split_name}_acc"] = None
                continue
            out[f"{split_name}_loss"], out[f"{split_name}_acc"] = task.score(model, ds, engine)
            probs = task.final_outputs(model, ds, engine)
            if probs is not None and writes:
                save_predictions(pred_dir / f"{split_name}.npz", probs.numpy(), ds)
        return out
    for split_name in ("train", "val", "test"):
        ds = _scored_split(splits, split_name, cfg)
        if ds is None:
            out[f"{split_name}_loss"] = out[f"{split_name}_acc"] = None
            continue
        res = evaluate(model, ds.images, ds.labels, normalizer, cfg.eval_batch_size, amp_dtype, channels_last, world)
        out[f"{split_name}_loss"], out[f"{split_name}_acc"] = res.loss, res.accuracy
        if writes and (split_name != "train" or res.logits.numel() <= MAX_SAVED_PROBS):
            save_predictions(pred_dir / f"{split_name}.npz", probabilities(res.logits).numpy(), ds)
    if cfg.tta and splits.test is not None:
        probs = tta_probabilities(model, splits.test.images, normalizer, cfg.eval_batch_size, cfg.tta, amp_dtype,
                                  channels_last, world)
        labels = splits.test.labels.numpy()
        pred = (probs[:, 0] > 0.5).astype(np.int64) if probs.shape[1] == 1 else probs.argmax(1)
        out["test_tta_acc"] = float((pred == labels).mean())
        if writes:
            save_predictions(pred_dir / "test_tta.npz", probs, splits.test)
    return out
