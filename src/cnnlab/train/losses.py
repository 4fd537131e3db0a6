"""Loss and accuracy for multi-class (softmax) and binary (one sigmoid logit) heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    logits = logits.float()
    if logits.shape[1] == 1:  # binary head: one logit per image, as Keras' Dense(1, sigmoid)
        target = labels.float()
        if label_smoothing:
            target = target * (1 - label_smoothing) + 0.5 * label_smoothing
        return F.binary_cross_entropy_with_logits(logits[:, 0], target)
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def correct_count(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if logits.shape[1] == 1:
        return ((logits[:, 0] > 0).long() == labels).sum()
    return (logits.argmax(1) == labels).sum()


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def _two_logits(logits: torch.Tensor) -> torch.Tensor:
    """A one-logit sigmoid head as two softmax logits: softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]."""
    return torch.cat([torch.zeros_like(logits), logits], dim=1) if logits.shape[1] == 1 else logits


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """(1 - alpha) * the labels' loss + alpha * T**2 * KL(softmax(teacher / T) || softmax(student / T)),
    averaged over the batch (Hinton et al. 2015). The T**2 keeps the soft term's gradients the size of
    the hard term's whatever T is; the teacher's logits carry no gradient."""
    hard = classification_loss(student_logits, labels, label_smoothing)
    if alpha == 0:
        return hard
    student = F.log_softmax(_two_logits(student_logits.float()) / temperature, dim=1)
    teacher = F.log_softmax(_two_logits(teacher_logits.detach().float()) / temperature, dim=1)
    soft = F.kl_div(student, teacher, reduction="batchmean", log_target=True) * temperature ** 2
    return (1 - alpha) * hard + alpha * soft
