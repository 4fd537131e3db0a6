"""The teacher of knowledge distillation (`distill.teacher`): a frozen network predicting on the
student's augmented batches. Built from a finished run by cnnlab.transfer.teacher (through the
run handle), held by the classification task, bound to the student's inputs when training starts.

The teacher sees exactly the images the student sees: the student's normalized batch is mapped
to the teacher's own normalization (both are per-channel affine maps of the 0..255 pixels, so the
conversion is exact, crop padding included). Nothing of the teacher trains or is checkpointed:
resuming a student rebuilds the same teacher from the run folder its config.yaml names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from cnnlab.data import Normalizer


class TeacherError(ValueError):
    """The teacher run cannot teach this student (missing, unfinished, other classes or inputs)."""


class Teacher:
    """Logits of a frozen network for batches normalized the student's way."""

    def __init__(self, model: torch.nn.Module, normalizer: Normalizer, run_dir: Path,
                 classes: Optional[list[str]] = None, input_size: Optional[int] = None) -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.normalizer, self.run_dir = normalizer, Path(run_dir)
        self.classes, self.input_size = classes, input_size
        # x_teacher = x_student * scale + shift, per channel (None: the two normalizations agree)
        self.scale: Optional[torch.Tensor] = None
        self.shift: Optional[torch.Tensor] = None
        self.channels_last = False

    def bind(self, student: Normalizer, device: torch.device, channels_last: bool, classes: list[str],
             input_size: int) -> None:
        """Check the teacher fits the student (classes, image size), move it to the student's device
        and map the student's normalized inputs to its own."""
        key = f"distill.teacher={str(self.run_dir)!r}"
        if self.classes is not None and list(self.classes) != list(classes):
            raise TeacherError(f"{key} predicts the classes {list(self.classes)[:5]}... ({len(self.classes)}), this "
                               f"run has {list(classes)[:5]}... ({len(classes)}): a teacher must be trained on the "
                               f"same classes in the same order")
        if self.input_size is not None and self.input_size != input_size:
            raise TeacherError(f"{key} takes {self.input_size}x{self.input_size} images, this run's are "
                               f"{input_size}x{input_size}; train the teacher on the same image size (data.image_size)")
        self.model = self.model.to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.channels_last = channels_last
        self.scale, self.shift = _input_map(student, self.normalizer, device)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            x = torch.addcmul(self.shift, x, self.scale)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)


def _input_map(student: Normalizer, teacher: Normalizer, device: torch.device):
    """(scale, shift) taking the student's normalized values to the teacher's, or (None, None) when equal.
    pixel = x_s * std_s + mean_s, so x_t = (pixel - mean_t) / std_t = x_s * std_s / std_t + (mean_s - mean_t) / std_t."""
    if torch.equal(student.mean, teacher.mean) and torch.equal(student.std, teacher.std):
        return None, None
    scale = (student.std / teacher.std).view(1, -1, 1, 1).to(device)
    shift = ((student.mean - teacher.mean) / teacher.std).view(1, -1, 1, 1).to(device)
    return scale, shift


__all__ = ["Teacher", "TeacherError"]
