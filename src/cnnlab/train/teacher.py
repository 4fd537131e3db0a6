"""The teacher of knowledge distillation (`distill.teacher`): a finished classification run's network,
predicting on the student's augmented batches.

The teacher sees exactly the images the student sees: the student's normalized batch is mapped
to the teacher's own normalization (both are per-channel affine maps of the 0..255 pixels, so the
conversion is exact, crop padding included). Nothing of the teacher trains or is checkpointed:
resuming a student rebuilds the same teacher from the run folder its config.yaml names.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cnnlab.data import Normalizer
from cnnlab.data.files import image_side
from cnnlab.runfolder import RunFolderError, read_config_dict, read_summary
from cnnlab.train.checkpoint import CheckpointError, load_weights
from cnnlab.train.experiment import experiment_from_dict
from cnnlab.train.rundir import saved_normalizer
from cnnlab.train.setup import build_model


class TeacherError(ValueError):
    """The teacher run cannot teach this student (missing, unfinished, other classes or inputs)."""


class Teacher:
    """Logits of a frozen network for batches normalized the student's way."""

    def __init__(self, model: torch.nn.Module, scale: torch.Tensor, shift: torch.Tensor, run_dir: Path,
                 channels_last: bool = False) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.run_dir = run_dir
        # x_teacher = x_student * scale + shift, per channel (None: the two normalizations agree)
        self.scale, self.shift = scale, shift
        self.channels_last = channels_last

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            x = torch.addcmul(self.shift, x, self.scale)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)


def _normalizer_of(run_dir: Path) -> Normalizer:
    try:
        saved = saved_normalizer(run_dir)
    except (RunFolderError, CheckpointError) as err:
        raise TeacherError(f"distill.teacher={str(run_dir)!r}: {err}; retrain the teacher") from None
    if saved is None:
        raise TeacherError(f"distill.teacher={str(run_dir)!r} has no normalization.json, so the inputs it was "
                           f"trained on are unknown; retrain the teacher with this cnnlab version")
    return saved


def _input_map(student: Normalizer, teacher: Normalizer, device: torch.device):
    """(scale, shift) taking the student's normalized values to the teacher's, or (None, None) when equal.
    pixel = x_s * std_s + mean_s, so x_t = (pixel - mean_t) / std_t = x_s * std_s / std_t + (mean_s - mean_t) / std_t."""
    if torch.equal(student.mean, teacher.mean) and torch.equal(student.std, teacher.std):
        return None, None
    scale = (student.std / teacher.std).view(1, -1, 1, 1).to(device)
    shift = ((student.mean - teacher.mean) / teacher.std).view(1, -1, 1, 1).to(device)
    return scale, shift


def load_teacher(run_dir: str | Path, classes: list[str], in_chans: int, input_size: int, device: torch.device,
                 student_normalizer: Normalizer, channels_last: bool = False) -> Teacher:
    """The network of the finished run `run_dir`, checked against the student's classes and input size."""
    run_dir = Path(run_dir)
    key = f"distill.teacher={str(run_dir)!r}"
    if not run_dir.is_dir():
        raise TeacherError(f"{key}: no such run folder; give a finished run folder or {{recipe: recipes/<id>.yaml}}")
    try:
        cfg = experiment_from_dict(read_config_dict(run_dir))
        summary = read_summary(run_dir) or {}
    except (RunFolderError, ValueError) as err:
        raise TeacherError(f"{key}: cannot read the run ({err})") from None
    task = (cfg.task or {}).get("name", "classification")
    if task != "classification":
        raise TeacherError(f"{key} trained the task {task!r}; a teacher must be a classification run")
    teacher_classes = summary.get("classes")
    if teacher_classes is not None and list(teacher_classes) != list(classes):
        raise TeacherError(f"{key} predicts the classes {list(teacher_classes)[:5]}... ({len(teacher_classes)}), "
                           f"this run has {list(classes)[:5]}... ({len(classes)}): a teacher must be trained on "
                           f"the same classes in the same order")
    side = image_side(cfg.data)
    if side != input_size:
        raise TeacherError(f"{key} takes {side}x{side} images, this run's are {input_size}x{input_size}; train "
                           f"the teacher on the same image size (data.image_size)")
    model_cfg = cfg.model
    model_cfg.pretrained = None   # its own weights replace any starting point it had
    try:
        model = build_model(model_cfg, num_classes=len(classes), in_chans=in_chans, input_size=input_size)
        model.load_state_dict(load_weights(run_dir / "model.safetensors"))
    except CheckpointError as err:
        raise TeacherError(f"{key}: {err}; the teacher run must have finished (cnnlab train --resume "
                           f"{run_dir} finishes it)") from None
    except RuntimeError as err:
        raise TeacherError(f"{key}: its weights do not fit the model its config.yaml builds for "
                           f"{len(classes)} classes ({str(err).splitlines()[0]})") from None
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    scale, shift = _input_map(student_normalizer, _normalizer_of(run_dir), device)
    return Teacher(model, scale, shift, run_dir, channels_last)
