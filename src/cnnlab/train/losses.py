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
