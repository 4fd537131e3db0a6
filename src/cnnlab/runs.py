"""The run handle: a finished run folder, used (model, classes, normalizer, data, predict, evaluate).

    run = load_run("runs/20261122-101500-004-a")
    run.model, run.classes, run.task, run.predict(images), run.evaluate("test"), run.split("test")

The one handle every consumer of a finished run goes through: eval, probe, explain, predict,
export, report pages, a transfer source and a distillation teacher. Reading the files is
``cnnlab.runfolder``'s job; this module rebuilds the run's model with its task (every task of
``cnnlab.tasks``), and its data only when asked.
"""

from __future__ import annotations

import copy
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from cnnlab.runfolder import (WEIGHTS, RunFolderError, find_runs, read_config_dict, read_summary,
                              weights_path as run_weights_path)
from cnnlab.tasks import create_task, task_name
from cnnlab.train.experiment import ExperimentConfig, experiment_from_dict
from cnnlab.train.task import EvalContext, NotMeaningful, Task

__all__ = ["LoadedRun", "NotMeaningful", "RunFolderError", "evaluate_run", "find_runs", "load_run", "read_config",
           "runs_table"]

SPLITS = ("train", "val", "test")


def read_config(run_dir: Path) -> ExperimentConfig:
    """The run's saved experiment, validated (RunFolderError when config.yaml is absent or not YAML)."""
    return experiment_from_dict(read_config_dict(run_dir))


class LoadedRun:
    """A trained run, ready to use: ``run.model``, ``run.config``, ``run.task``, ``run.classes``,
    ``run.normalizer``, ``run.predict(images)``, ``run.evaluate(split)``, ``run.split(name)``.

    Everything past config.yaml is loaded on first use: the model from the weights file, the
    normalizer from normalization.json, the class names from summary.json, and the dataset only
    when a split or ``evaluate`` asks for it, so predicting needs neither the training data nor
    the time to load it. Build it with ``load_run``.
    """

    def __init__(self, run_dir: Path, config: ExperimentConfig, weights_path: Path,
                 data_dir: Optional[str] = None, device: str = "auto", splits=None) -> None:
        from cnnlab.train.runtime import resolve_device

        self.run_dir = Path(run_dir)
        self.config = config
        self.weights_path = Path(weights_path)
        self.data_dir = data_dir
        self.device = resolve_device(device)   # auto: the GPU when there is one
        if splits is not None:   # the data the run trained on, when the caller has it (a callback's logs["data"])
            self.__dict__["splits"] = splits

    def __repr__(self) -> str:
        return f"LoadedRun({str(self.run_dir)!r}, model={self.config.model.name!r}, task={self.task_name!r})"

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
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model's input images."""
        return self.in_chans, self.input_size, self.input_size

    @property
    def task_name(self) -> str:
        """The name of the run's training task (cnnlab.tasks)."""
        return task_name(self.config.task)

    @cached_property
    def task(self) -> Task:
        """The run's task (cnnlab.tasks): how it scores, predicts, and which commands mean something."""
        return create_task(self.config.task)

    def require(self, command: str) -> None:
        """Raise NotMeaningful (one line, the task's words) when `command` means nothing for this run."""
        self.task.require(command)

    @cached_property
    def splits(self):
        """The run's train / val / test data (DataSplits), loaded as it trained: same seed, same split."""
        from cnnlab.data import load_splits

        return load_splits(self.config.data, seed=self.config.seed, data_dir=self.data_dir)

    def split(self, name: str):
        """The dataset of split `name` (images uint8 N x C x H x W, labels, indices); a ValueError
        names the splits the run has when it has no such split."""
        if name not in SPLITS:
            raise ValueError(f"split {name!r} does not exist in this run; choose one of {', '.join(SPLITS)}")
        ds = getattr(self.splits, name, None)
        if ds is None or len(ds) == 0:
            have = ", ".join(self.available_splits()) or "none"
            raise ValueError(f"this run has no {name} split; choose one of {have}")
        return ds

    def available_splits(self) -> list[str]:
        """The splits the run has, in train/val/test order."""
        return [s for s in SPLITS if getattr(self.splits, s, None) is not None and len(getattr(self.splits, s)) > 0]

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
        """The network built from config.yaml (through the run's task) with the run's weights, in eval
        mode, on ``device``."""
        from cnnlab.train.checkpoint import load_weights
        from cnnlab.train.setup import build_model

        model_cfg = copy.copy(self.config.model)
        model_cfg.pretrained = None  # the run's own weights replace any starting point
        n = len(self.classes)
        model = build_model(model_cfg, num_classes=n, in_chans=self.in_chans, input_size=self.input_size)
        model = self.task.build_model(model, n, self.in_chans, self.input_size)
        try:
            model.load_state_dict(load_weights(self.weights_path))
        except RuntimeError as err:
            raise RunFolderError(f"{self.weights_path} does not fit the model that config.yaml of {self.run_dir} "
                                 f"builds ({str(err).splitlines()[0]}); was the config edited after training?") from None
        return model.to(self.device).eval()

    def eval_context(self, batch_size: Optional[int] = None, with_train: bool = False) -> EvalContext:
        """What the task scores or predicts with: the run's normalizer, batch sizes and precision (and, for
        tasks that score against the training images, the train split)."""
        from cnnlab.train.runtime import autocast_dtype

        # The run's precision on this device, so a bf16 run scores as its final evaluation did.
        ctx = EvalContext(self.normalizer, eval_batch_size=batch_size or self.config.eval_batch_size,
                          batch_size=self.config.batch_size,
                          amp_dtype=autocast_dtype(self.config.precision, self.device))
        if with_train:
            ctx.train_x, ctx.train_y = self.splits.train.images, self.splits.train.labels
        return ctx

    def predict(self, images: Any, batch_size: Optional[int] = None, tta: bool | str = False) -> np.ndarray:
        """Class probabilities, float32 N x K (K = len(classes), rows sum to 1; a one-logit sigmoid
        head gives [1 - p, p]).

        ``images``: uint8 N x C x H x W (torch tensor or numpy array; C x H x W for one image) of
        the run's input size, as training saw them before normalization; or a list of PIL images
        and/or image paths (one of either alone works too), decoded and resized exactly as the run's
        image folders were. ``tta``: true or "flip" averages each image with its left-right mirror;
        "flip+translate" adds both shifted 1 px up-left and down-right (6 views); "airbench" scores
        those 6 views as airbench94 does (logits averaged, weights 1/2, 1/4, 1/4). A run whose task
        has no class probabilities (siamese) raises NotMeaningful.
        """
        from cnnlab.train.predict import tta_name

        self.require("predict")
        batch = _image_batch(images, self.in_chans, self.input_size)
        return self.task.predict(self.model, batch, self.eval_context(batch_size), tta=tta_name(tta) or False)

    def evaluate(self, split: str = "test", tta: bool | str = False) -> dict:
        """Loss (the task's, named in ``loss_name``) and accuracy of the run's weights on one split;
        with ``tta`` (as in ``predict``) also ``tta_accuracy``, scored on the test-time views."""
        from cnnlab.train.predict import tta_name

        self.require("eval")
        views = tta_name(tta)
        if views is not None:
            self.require("predict")
        ds = self.split(split)
        loss, accuracy = self.task.score(self.model, ds, self.eval_context(with_train=True))
        result = {"run": str(self.run_dir), "split": split, "images": len(ds), "loss": loss, "accuracy": accuracy,
                  "loss_name": self.task.loss_name}
        if views is not None:
            probs = self.task.predict(self.model, ds.images, self.eval_context(), tta=views)
            # A one-column (sigmoid) head's probabilities come back as [1 - p, p]: argmax is the class either way.
            predicted = probs.argmax(axis=1)
            result.update(tta=views, tta_accuracy=float((predicted == ds.labels.numpy()).mean()))
        return result


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
                if Path(item).is_dir():
                    raise ValueError(f"{item} is a folder; run.predict takes images or image files. For a folder "
                                     "use cnnlab.export.predict_files(run, [folder]) (class folders are scored too), "
                                     "or on the command line: cnnlab predict RUN FOLDER")
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


def load_run(run_dir: str | Path, data_dir: Optional[str] = None, weights: str = WEIGHTS,
             device: str = "auto", splits=None) -> LoadedRun:
    """A handle on a finished run (``LoadedRun``): reads config.yaml now, the rest on first use.

    ``weights``: the file inside the run folder (model.safetensors = final weights;
    checkpoints/best.safetensors = best validation accuracy). ``data_dir`` overrides where the
    dataset is looked up when the data is needed (evaluate, splits); ``splits`` gives the data
    itself (the splits the run trained on). ``device``: auto (the GPU when there is one), cpu, cuda.
    """
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    return LoadedRun(run_dir, cfg, run_weights_path(run_dir, weights), data_dir=data_dir, device=device,
                     splits=splits)


def evaluate_run(run_dir: str | Path, split: str = "test", data_dir: Optional[str] = None,
                 device: str = "auto", tta: bool | str = False) -> dict:
    """Re-evaluate a run's saved weights on one split: {run, split, images, loss, accuracy, loss_name},
    and with ``tta`` {tta, tta_accuracy}."""
    return load_run(run_dir, data_dir=data_dir, device=device).evaluate(split, tta=tta)


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
