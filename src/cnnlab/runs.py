"""Finished run folders, used: a handle on one run (model, classes, predict, evaluate) and the table of runs.

Reading the files of a run folder is ``cnnlab.runfolder``'s job (one reader for every layer);
this module rebuilds a run's model and, only when asked, its data on top of it.
"""

from __future__ import annotations

import copy
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from cnnlab.train.experiment import ExperimentConfig, experiment_from_dict
from cnnlab.runfolder import RunFolderError, find_runs, read_config_dict, read_summary

__all__ = ["LoadedRun", "RunFolderError", "evaluate_run", "find_runs", "load_run", "read_config", "runs_table"]

SPLITS = ("train", "val", "test")


def read_config(run_dir: Path) -> ExperimentConfig:
    """The run's saved experiment, validated (RunFolderError when config.yaml is absent or not YAML)."""
    return experiment_from_dict(read_config_dict(run_dir))


class LoadedRun:
    """A trained run, ready to use: ``run.model``, ``run.config``, ``run.classes``, ``run.normalizer``,
    ``run.predict(images)``, ``run.evaluate(split)``; ``run.splits`` (train/val/test) for the data.

    Everything past config.yaml is loaded on first use: the model from the weights file, the
    normalizer from normalization.json, the class names from summary.json, and the dataset only
    when ``splits`` or ``evaluate`` asks for it, so predicting needs neither the training data
    nor the time to load it. Build it with ``load_run``.
    """

    def __init__(self, run_dir: Path, config: ExperimentConfig, weights_path: Path,
                 data_dir: Optional[str] = None, device: str = "cpu") -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.weights_path = Path(weights_path)
        self.data_dir = data_dir
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return f"LoadedRun({str(self.run_dir)!r}, model={self.config.model.name!r})"

    @property
    def input_size(self) -> int:
        """Side in pixels of the square images the model takes (what the run's data layer produced)."""
        from cnnlab.data.files import image_side

        return image_side(self.config.data)

    @property
    def in_chans(self) -> int:
        """Channels of the model's input images (RGB: training converts every image to RGB)."""
        from cnnlab.data.files import CHANNELS

        return CHANNELS

    @property
    def task(self) -> str:
        """The run's training task (classification unless its config names another)."""
        return str((self.config.task or {}).get("name", "classification"))

    @cached_property
    def splits(self):
        """The run's train / val / test data (DataSplits), loaded as it trained: same seed, same split."""
        from cnnlab.data import load_splits

        return load_splits(self.config.data, seed=self.config.seed, data_dir=self.data_dir)

    @cached_property
    def classes(self) -> list[str]:
        """Class names in label order: summary.json's, else the dataset's (which loads the data)."""
        summary = read_summary(self.run_dir) or {}
        if summary.get("classes"):
            return [str(c) for c in summary["classes"]]
        return list(self.splits.classes)

    @cached_property
    def normalizer(self):
        """The input statistics the run trained with (normalization.json; older runs: the checkpoint,
        else refitted on the same train split)."""
        from cnnlab.data import Normalizer

        from cnnlab.train.rundir import saved_normalizer

        saved = saved_normalizer(self.run_dir)
        return saved if saved is not None else Normalizer.fit(self.config.data.normalize, self.splits.train.images)

    @cached_property
    def model(self) -> torch.nn.Module:
        """The network built from config.yaml with the run's weights, in eval mode, on ``device``."""
        from cnnlab.train.checkpoint import load_weights
        from cnnlab.train.setup import build_model
        from cnnlab.train.task import create_task

        model_cfg = copy.copy(self.config.model)
        model_cfg.pretrained = None  # the run's own weights replace any starting point
        n = len(self.classes)
        model = build_model(model_cfg, num_classes=n, in_chans=self.in_chans, input_size=self.input_size)
        model = create_task(self.config.task).build_model(model, n, self.in_chans, self.input_size)
        try:
            model.load_state_dict(load_weights(self.weights_path))
        except RuntimeError as err:
            raise RunFolderError(f"{self.weights_path} does not fit the model that config.yaml of {self.run_dir} "
                                 f"builds ({str(err).splitlines()[0]}); was the config edited after training?") from None
        return model.to(self.device).eval()

    def predict(self, images: Any, batch_size: Optional[int] = None, tta: bool | str = False) -> np.ndarray:
        """Class probabilities, float32 N x K (K = len(classes), rows sum to 1; a one-logit sigmoid
        head gives [1 - p, p]).

        ``images``: uint8 N x C x H x W (torch tensor or numpy array; C x H x W for one image) of
        the run's input size, as training saw them before normalization; or a list of PIL images
        and/or image paths (one of either alone works too), decoded and resized exactly as the run's
        image folders were. ``tta``: true or "flip" averages each image with its left-right mirror;
        "flip+translate" adds both shifted 1 px up-left and down-right (6 views).
        """
        from cnnlab.train.losses import probabilities
        from cnnlab.train.predict import predict_logits, tta_name, tta_probabilities

        if self.task != "classification":
            raise ValueError(f"{self.run_dir} was trained with task {self.task!r}; predict gives class "
                             "probabilities of classification runs only")
        batch = _image_batch(images, self.in_chans, self.input_size)
        size = batch_size or self.config.eval_batch_size
        if tta_name(tta):
            probs = torch.from_numpy(tta_probabilities(self.model, batch, self.normalizer, size, tta))
        else:
            probs = probabilities(predict_logits(self.model, batch, self.normalizer, size))
        if probs.shape[1] == 1:  # sigmoid head: the probability of class 1
            probs = torch.cat([1 - probs, probs], dim=1)
        return probs.numpy().astype(np.float32)

    def evaluate(self, split: str = "test") -> dict:
        """Loss (cross-entropy, nats) and accuracy of the run's weights on one of its data splits."""
        from cnnlab.train.predict import evaluate

        ds = getattr(self.splits, split, None) if split in SPLITS else None
        if ds is None:
            have = ", ".join(k for k in SPLITS if getattr(self.splits, k) is not None)
            raise ValueError(f"split {split!r} does not exist in this run; choose one of {have}")
        res = evaluate(self.model, ds.images, ds.labels, self.normalizer, self.config.eval_batch_size)
        return {"run": str(self.run_dir), "split": split, "images": len(ds), "loss": res.loss,
                "accuracy": res.accuracy}


def _image_batch(images: Any, channels: int, size: int) -> torch.Tensor:
    """uint8 N x C x size x size tensor from what ``LoadedRun.predict`` accepts (its doc)."""
    from PIL import Image

    from cnnlab.data.files import UnreadableImageError, pil_to_pixels
    from cnnlab.data.folder import decode_image

    if isinstance(images, (str, Path, Image.Image)):
        images = [images]
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("no images given: pass a non-empty list of PIL images or paths, or an N x C x H x W array")
        pixels = []
        for item in images:
            if isinstance(item, Image.Image):
                pixels.append(pil_to_pixels(item, size))
            elif isinstance(item, (str, Path)):
                try:
                    pixels.append(decode_image(Path(item), size))
                except Exception as err:  # Pillow raises many kinds
                    raise UnreadableImageError(f"cannot read image {item} ({err}); "
                                               "replace the file or leave it out") from None
            else:
                raise TypeError(f"a list of images must hold PIL images or paths, got {type(item).__name__}")
        return torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    batch = torch.from_numpy(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if batch.dim() == 3:
        batch = batch.unsqueeze(0)
    if batch.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 pixel values 0..255, got {batch.dtype}; convert with "
                         "(x * 255).round().clip(0, 255).astype(uint8) if they are 0..1 floats")
    expected = (channels, size, size)
    if batch.dim() != 4 or tuple(batch.shape[1:]) != expected:
        hint = (" (that looks like N x H x W x C: use .permute(0, 3, 1, 2) or .transpose(0, 3, 1, 2))"
                if batch.dim() == 4 and batch.shape[-1] == channels else "")
        raise ValueError(f"images must be N x {channels} x {size} x {size} (the run's input), got "
                         f"{tuple(batch.shape)}{hint}; pass PIL images or paths to have them resized as in training")
    return batch.contiguous()


def load_run(run_dir: str | Path, data_dir: Optional[str] = None, weights: str = "model.safetensors",
             device: str = "cpu") -> LoadedRun:
    """A handle on a finished run (``LoadedRun``): reads config.yaml now, the rest on first use.

    ``weights``: the file inside the run folder (model.safetensors = final weights;
    checkpoints/best.safetensors = best validation accuracy). ``data_dir`` overrides where the
    dataset is looked up when the data is needed (evaluate, splits).
    """
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    weights_path = run_dir / weights
    if not weights_path.is_file():
        raise RunFolderError(f"{weights_path} is missing: the run did not finish. "
                             f"Continue it with: cnnlab train --resume {run_dir}")
    return LoadedRun(run_dir, cfg, weights_path, data_dir=data_dir, device=device)


def evaluate_run(run_dir: str | Path, split: str = "test", data_dir: Optional[str] = None) -> dict:
    """Re-evaluate a run's saved weights on one split: {run, split, images, loss, accuracy}."""
    return load_run(run_dir, data_dir=data_dir).evaluate(split)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _run_label(run: Path, root: Path) -> str:
    """The run's folder name, or its path below `root` when runs are nested (runs/sweep/<run>)."""
    try:
        relative = run.relative_to(root)
    except ValueError:
        return run.name
    return run.name if str(relative) == "." else relative.as_posix()


def runs_table(root: str | Path) -> str:
    """Plain-text table of the runs under `root` (any depth), oldest first.

    A run whose summary.json or config.yaml cannot be read is still listed, its status naming
    the unreadable file, so one damaged run never hides the others.
    """
    root = Path(root)
    rows = []
    for run in find_runs(root):
        problems = []
        try:
            s = read_summary(run) or {}
        except RunFolderError:
            s = {}
            problems.append("summary.json unreadable")
        model = s.get("model")
        if model is None:
            try:
                section = read_config_dict(run).get("model")
                model = section.get("name") if isinstance(section, dict) else None
            except RunFolderError:
                problems.append("config.yaml unreadable")
        final = s.get("final") or {}
        params = (s.get("params") or {}).get("total")
        rows.append([_run_label(run, root), model or "?", f"{params:,}" if params else "-",
                     f"{s.get('epochs_completed', 0)}/{s.get('epochs', '?')}", _pct(final.get("val_acc")),
                     _pct(final.get("test_acc")), f"{s['wall_seconds']:.0f}s" if s.get("wall_seconds") else "-",
                     ", ".join(problems) or s.get("status") or "running or killed"])
    if not rows:
        return f"no runs under {root}"
    header = ["run", "model", "params", "epochs", "val acc %", "test acc %", "time", "status"]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
