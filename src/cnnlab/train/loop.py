"""The training loop: one readable function from config to a finished run folder.

Randomness has three explicit sources so a run is reproducible and resumable bitwise:
the shuffle generator (CPU), the augmentation generator (on the training device) and torch's
global generator (dropout). All three are saved in every checkpoint.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from cnnlab.atomic import write_atomically, write_text_atomically
from cnnlab.data import Augmenter, Normalizer, load_splits
from cnnlab.experiment import ExperimentConfig, experiment_from_dict, experiment_to_yaml
from cnnlab.models import count_params
from cnnlab.report.loggers import loggers_from_settings
from cnnlab.train import runtime
from cnnlab.train.callbacks import Callback, ProgressPrinter
from cnnlab.train.checkpoint import (load_checkpoint, restore_rng_state, rng_state, save_checkpoint,
                                     save_weights)
from cnnlab.train.ema import ModelEMA
from cnnlab.train.losses import classification_loss, correct_count, probabilities
from cnnlab.train.optim import build_optimizer, set_lr
from cnnlab.train.predict import evaluate
from cnnlab.train.regularization import check_l2_selectors, l2_kernels, l2_penalty
from cnnlab.train.rundir import new_run_dir, read_json, write_json, write_metrics
from cnnlab.train.schedules import lr_at
from cnnlab.train.setup import build_model

# Above this many stored probabilities (images x classes) the train-split predictions are not
# saved: 5e6 float32 = 20 MB, enough for CIFAR-100's 50,000 x 100.
MAX_SAVED_PROBS = 5_000_000


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class RunResult:
    run_dir: Path
    status: str          # completed | early_stopped | interrupted | diverged
    summary: dict


class _StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves at the next step boundary. A second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:  # noqa: ANN001
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: no handlers, Ctrl-C behaves as usual
                pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _resume_state(resume: Path):
    run_dir = Path(resume)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"--resume {run_dir}: not a run folder (no config.yaml)")
    import yaml

    saved_cfg = experiment_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()))
    return saved_cfg, run_dir, load_checkpoint(run_dir / "checkpoints" / "last.pt")


def train(cfg: ExperimentConfig, runs_dir: str | Path = "runs", *, data_dir: Optional[str] = None,
          quiet: bool = False, resume: Optional[str | Path] = None, seed_suffix: Optional[int] = None,
          callbacks: Optional[list[Callback]] = None, log: Callable[[str], None] = print,
          report: bool = True) -> RunResult:
    """Train `cfg` into a new run folder under `runs_dir` (or continue the run folder `resume`).

    `report=False` skips the HTML/Markdown report (seconds of matplotlib); `cnnlab report RUN`
    writes it later from the saved predictions.
    """
    run_dir, ckpt = None, None
    if resume is not None:
        cfg, run_dir, ckpt = _resume_state(Path(resume))
    wall_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = runtime.resolve_device(cfg.device)
    runtime.seed_everything(cfg.seed, cfg.deterministic)
    amp_dtype = runtime.autocast_dtype(cfg.precision, device)
    channels_last = runtime.use_channels_last(cfg.channels_last, device)

    if not quiet:
        log(experiment_to_yaml(cfg))
    splits = load_splits(cfg.data, seed=cfg.seed, data_dir=data_dir)
    classes = splits.classes
    train_x = splits.train.images.to(device)
    train_y = splits.train.labels.to(device)
    normalizer = (Normalizer.from_state_dict(ckpt["normalizer"]) if ckpt
                  else Normalizer.fit(cfg.data.normalize, splits.train.images))
    augmenter = Augmenter(cfg.augment)

    model = build_model(cfg.model, num_classes=len(classes), in_chans=train_x.shape[1]).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    check_l2_selectors(model, cfg.regularization.l2_layers)
    kernels = l2_kernels(model, cfg.regularization.l2_layers)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    ema = ModelEMA(model, cfg.regularization.ema) if cfg.regularization.ema else None
    params = count_params(model)
    loggers = loggers_from_settings(cfg.logging)   # checked before a run folder exists
    if run_dir is None:
        # Created only once data and model are known good, so a bad start leaves no empty run.
        run_dir = new_run_dir(Path(runs_dir), cfg.name, seed_suffix)
        write_text_atomically(run_dir / "config.yaml", experiment_to_yaml(cfg))
        _write_model_summary(model, run_dir, input_size=train_x.shape[-1], in_chans=train_x.shape[1], log=log)
    log(f"run folder: {run_dir}")

    shuffle_gen = torch.Generator().manual_seed(cfg.seed)
    augment_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    generators = {"shuffle": shuffle_gen, "augment": augment_gen}

    n_train = train_x.shape[0]
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    history: list[dict] = []
    start_epoch, start_step, global_step = 0, 0, 0
    partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    shuffle_epoch_start = None
    best_val_acc = -1.0
    stopper = {"best": None, "bad_epochs": 0}
    wall_before = 0.0
    if ckpt:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema:
            ema.load_state_dict(ckpt["ema"])
        restore_rng_state(ckpt["rng"], generators)
        start_epoch, start_step, global_step = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]
        partial = dict(ckpt["partial"])
        shuffle_epoch_start = ckpt.get("shuffle_epoch_start")
        history = list(ckpt["history"])
        best_val_acc = ckpt["best_val_acc"]
        stopper = dict(ckpt["stopper"])
        wall_before = ckpt["wall_seconds"]
        write_metrics(run_dir / "metrics.jsonl", history)  # drop lines written after the checkpoint
        log(f"resuming {run_dir} at epoch {start_epoch + 1}, step {start_step}/{steps_per_epoch}")

    callbacks = list(callbacks or []) + loggers + [ProgressPrinter(quiet=quiet, log=log)]
    base_logs = {"run_dir": str(run_dir), "epochs": cfg.epochs, "steps_per_epoch": steps_per_epoch,
                 "params": params, "device": str(device)}
    for cb in callbacks:
        cb.on_train_begin(dict(base_logs))

    def checkpoint_state(epoch: int, step_in_epoch: int, epoch_start_state) -> dict:
        return {"epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "ema": ema.state_dict() if ema else None, "rng": rng_state(generators),
                "shuffle_epoch_start": epoch_start_state, "partial": dict(partial), "history": history,
                "best_val_acc": best_val_acc, "stopper": stopper, "normalizer": normalizer.state_dict(),
                "wall_seconds": wall_before + time.perf_counter() - wall_start}

    status = "completed"
    eval_model = ema.module if ema else model
    with _StopRequest() as stop:
        for epoch in range(start_epoch, cfg.epochs):
            # The permutation is regenerated from the state saved at the epoch's start, so a run
            # resumed mid-epoch sees the same batches in the same order.
            if shuffle_epoch_start is not None and epoch == start_epoch and start_step > 0:
                shuffle_gen.set_state(shuffle_epoch_start)
            epoch_start_state = shuffle_gen.get_state()
            perm = torch.randperm(n_train, generator=shuffle_gen).to(device)
            first_step = start_step if epoch == start_epoch else 0
            if first_step == 0:
                partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
            model.train()
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {**base_logs, "first_step": first_step})
            loss_sum = torch.zeros((), dtype=torch.float64, device=device) + partial["loss_sum"]
            correct = torch.zeros((), dtype=torch.int64, device=device) + partial["correct"]
            seen = partial["seen"]
            t0 = time.perf_counter()
            # The LR of the last step taken, for the metrics row when a resume starts at the epoch's end.
            lr = lr_at(max(global_step - 1, 0), steps_per_epoch, cfg.epochs, cfg.optimizer.lr, cfg.schedule)
            for step in range(first_step, steps_per_epoch):
                idx = perm[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                x = normalizer(train_x[idx])
                y = train_y[idx]
                if augmenter.enabled:
                    x = augmenter(x, augment_gen)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                lr = lr_at(global_step, steps_per_epoch, cfg.epochs, cfg.optimizer.lr, cfg.schedule)
                set_lr(optimizer, lr)
                with runtime.autocast(device, amp_dtype):
                    logits = model(x)
                loss = classification_loss(logits, y, cfg.regularization.label_smoothing)
                penalty = l2_penalty(kernels, cfg.regularization.l2)
                total = loss if penalty is None else loss + penalty
                # One host sync per step on CPU costs nothing measurable and stops a NaN before it
                # reaches the weights; on CUDA we check every 25 steps to keep the GPU fed.
                if (device.type == "cpu" or step % 25 == 0) and not torch.isfinite(total.detach()).item():
                    status = "diverged"
                    break
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if cfg.regularization.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.regularization.grad_clip)
                optimizer.step()
                if ema:
                    ema.update(model)
                global_step += 1
                loss_sum += loss.detach().double() * y.shape[0]
                correct += correct_count(logits.detach(), y)
                seen += y.shape[0]
                for cb in callbacks:
                    cb.on_batch_end(step, {"loss_sum": loss_sum, "correct": correct, "seen": seen, "lr": lr})
                if stop.requested:
                    partial = {"loss_sum": loss_sum.item(), "correct": int(correct.item()), "seen": seen,
                               "seconds": partial["seconds"] + time.perf_counter() - t0}
                    save_checkpoint(checkpoint_state(epoch, step + 1, epoch_start_state),
                                    run_dir / "checkpoints" / "last.pt")
                    status = "interrupted"
                    break
            if status in ("diverged", "interrupted"):
                break
            epoch_seconds = partial["seconds"] + time.perf_counter() - t0
            train_loss = loss_sum.item() / max(1, seen)
            if not math.isfinite(train_loss):
                status = "diverged"
                break
            row = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": correct.item() / max(1, seen),
                   "val_loss": None, "val_acc": None, "lr": lr, "seconds": round(epoch_seconds, 3),
                   "images_per_sec": round(seen / max(epoch_seconds, 1e-9), 1)}
            if splits.val is not None:
                res = evaluate(eval_model, splits.val.images, splits.val.labels, normalizer,
                               cfg.eval_batch_size, amp_dtype, channels_last)
                row["val_loss"], row["val_acc"] = res.loss, res.accuracy
            history.append(row)
            if row["val_acc"] is not None and row["val_acc"] > best_val_acc:
                best_val_acc = row["val_acc"]
                save_weights(eval_model, run_dir / "checkpoints" / "best.safetensors")
            stop_early = _early_stopping_update(stopper, row, cfg)
            partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
            save_checkpoint(checkpoint_state(epoch + 1, 0, None), run_dir / "checkpoints" / "last.pt")
            write_metrics(run_dir / "metrics.jsonl", history)
            for cb in callbacks:
                cb.on_epoch_end(epoch, dict(row))
            if stop_early:
                status = "early_stopped"
                break
            if stop.requested:
                status = "interrupted"
                break

    wall = wall_before + time.perf_counter() - wall_start
    summary = _summary(cfg, status, history, params, classes, device, wall)
    summary["data"] = {k: (len(getattr(splits, k)) if getattr(splits, k) is not None else 0) for k in ("train", "val", "test")}
    if status in ("interrupted", "diverged"):
        summary["message"] = (
            f"stopped by a signal; continue with: cnnlab train --resume {run_dir}" if status == "interrupted" else
            f"the loss became NaN or infinite at epoch {len(history) + 1}, step {global_step}; the last good "
            f"checkpoint (epoch {len(history)}) is kept in {run_dir / 'checkpoints' / 'last.pt'}. "
            f"Lower optimizer.lr, add regularization.grad_clip, or check the data's normalization.")
        write_json(run_dir / "summary.json", summary)
        for cb in callbacks:
            cb.on_train_end({**summary})
        if status == "diverged":
            raise TrainingDiverged(summary["message"])
        log(summary["message"])
        return RunResult(run_dir, status, summary)

    final = _final_evaluation(eval_model, splits, normalizer, cfg, amp_dtype, channels_last, run_dir)
    summary["final"] = final
    summary["wall_seconds"] = round(wall_before + time.perf_counter() - wall_start, 2)
    save_weights(eval_model, run_dir / "model.safetensors",
                 metadata={"model": cfg.model.name, "num_classes": str(len(classes))})
    write_json(run_dir / "summary.json", summary)
    _write_figures_and_report(run_dir, history, splits, log, report)
    for cb in callbacks:
        cb.on_train_end({**summary, "run_dir": str(run_dir)})
    return RunResult(run_dir, status, summary)


def _write_model_summary(model, run_dir: Path, input_size: int, in_chans: int, log) -> None:
    """Keras-style summary beside the config; the summary's dry forward must not touch the RNG."""
    from cnnlab.models import summary

    rng = torch.get_rng_state()
    try:
        write_text_atomically(run_dir / "model_summary.txt", summary(model, input_size=input_size, in_chans=in_chans) + "\n")
    except Exception as err:  # a model the summary cannot trace still trains
        log(f"warning: no model_summary.txt: {err}")
    finally:
        torch.set_rng_state(rng)


def _early_stopping_update(stopper: dict, row: dict, cfg: ExperimentConfig) -> bool:
    es = cfg.early_stopping
    value = row.get(es.monitor)
    if es.patience <= 0 or value is None:
        return False
    sign = -1.0 if es.monitor.endswith("loss") else 1.0   # higher is better after the sign
    if stopper["best"] is None or sign * value > sign * stopper["best"] + es.min_delta:
        stopper["best"], stopper["bad_epochs"] = value, 0
        return False
    stopper["bad_epochs"] += 1
    return stopper["bad_epochs"] >= es.patience


def _summary(cfg, status, history, params, classes, device, wall) -> dict:
    last = history[-1] if history else {}
    return {
        "name": cfg.name, "model": cfg.model.name, "seed": cfg.seed, "status": status,
        "epochs_completed": len(history), "epochs": cfg.epochs, "params": params,
        "final": {"train_loss": last.get("train_loss"), "train_acc": last.get("train_acc"),
                  "val_loss": last.get("val_loss"), "val_acc": last.get("val_acc"),
                  "test_loss": None, "test_acc": None},
        "wall_seconds": round(wall, 2),
        "images_per_sec": round(float(np.mean([r["images_per_sec"] for r in history])), 1) if history else None,
        "device": str(device), "versions": runtime.versions(), "hardware": runtime.hardware(device),
        "git_commit": runtime.git_commit(), "command": runtime.command_line(), "classes": list(classes),
    }


def _save_predictions(path: Path, probs: np.ndarray, ds) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: savez would append ".npz" to a bare name
            np.savez_compressed(f, probs=probs.astype(np.float32), labels=ds.labels.numpy().astype(np.int64),
                                indices=ds.indices.numpy().astype(np.int64))

    write_atomically(path, write)


def _final_evaluation(model, splits, normalizer, cfg, amp_dtype, channels_last, run_dir: Path) -> dict:
    """Evaluate the final weights on every split (eval mode, no augmentation) and save predictions."""
    out = {}
    pred_dir = run_dir / "predictions"
    pred_dir.mkdir(exist_ok=True)
    for split_name in ("train", "val", "test"):
        ds = getattr(splits, split_name)
        if ds is None or len(ds) == 0:
            out[f"{split_name}_loss"] = out[f"{split_name}_acc"] = None
            continue
        res = evaluate(model, ds.images, ds.labels, normalizer, cfg.eval_batch_size, amp_dtype, channels_last)
        out[f"{split_name}_loss"], out[f"{split_name}_acc"] = res.loss, res.accuracy
        if split_name != "train" or res.logits.numel() <= MAX_SAVED_PROBS:
            _save_predictions(pred_dir / f"{split_name}.npz", probabilities(res.logits).numpy(), ds)
    if cfg.tta and splits.test is not None:
        from cnnlab.evaluate.tta import flip_tta_probabilities

        probs = flip_tta_probabilities(model, splits.test.images, normalizer, cfg.eval_batch_size, amp_dtype,
                                       channels_last)
        labels = splits.test.labels.numpy()
        pred = (probs[:, 0] > 0.5).astype(np.int64) if probs.shape[1] == 1 else probs.argmax(1)
        out["test_tta_acc"] = float((pred == labels).mean())
        _save_predictions(pred_dir / "test_tta.npz", probs, splits.test)
    return out


def _write_figures_and_report(run_dir: Path, history: list[dict], splits, log, report: bool) -> None:
    """Figures and report pages; a failure here is reported but never loses the finished run."""
    from cnnlab.report.curves import plot_curves

    try:
        plot_curves(history, run_dir / "curves.png", title=run_dir.name)
    except Exception as err:  # the run's numbers are already saved; say what failed
        log(f"warning: could not draw curves.png: {err}")
    if not report:
        return
    try:
        from cnnlab.report import write_run_report
    except ImportError:
        return
    try:
        images = {name: getattr(splits, name).images.numpy() for name in ("train", "val", "test")
                  if getattr(splits, name) is not None}
        write_run_report(run_dir, images=images)
    except Exception as err:
        log(f"warning: could not write the report: {err}; retry with: cnnlab report {run_dir}")


def summary_of(run_dir: Path) -> dict:
    return read_json(Path(run_dir) / "summary.json")


__all__ = ["train", "RunResult", "TrainingDiverged", "summary_of"]
