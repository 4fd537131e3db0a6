"""Batched inference over a device-resident uint8 dataset: logits, loss, accuracy, test-time augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from cnnlab.train.losses import classification_loss, correct_count, probabilities
from cnnlab.train.runtime import autocast


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    logits: torch.Tensor  # float32, CPU, N x K


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
                   batch_size: int, amp_dtype: torch.dtype | None = None, channels_last: bool = False,
                   world=None) -> torch.Tensor:
    """Logits for every image (eval mode is the caller's job, so EMA or train-mode BN can be chosen).

    With a `world` of several ranks (train/distributed.py) each rank predicts its part of the
    images and every rank gets all the logits, in order."""
    if world is not None and world.enabled:
        start, stop = world.rows(images.shape[0])
        return world.gather_rows(predict_logits(model, images[start:stop], normalize, batch_size, amp_dtype,
                                                channels_last))
    device = next(model.parameters()).device
    outs = []
    for start in range(0, images.shape[0], batch_size):
        x = normalize(images[start:start + batch_size].to(device, non_blocking=True))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp_dtype):
            outs.append(model(x).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0, 0)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             normalize: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
             amp_dtype: torch.dtype | None = None, channels_last: bool = False, world=None) -> EvalResult:
    was_training = model.training
    model.eval()
    try:
        logits = predict_logits(model, images, normalize, batch_size, amp_dtype, channels_last, world)
    finally:
        model.train(was_training)
    labels = labels.cpu()
    loss = classification_loss(logits, labels).item()
    acc = correct_count(logits, labels).item() / max(1, labels.shape[0])
    return EvalResult(loss=loss, accuracy=acc, logits=logits)


# Test-time augmentation: each view is a shift in pixels (dy, dx), scored as is and mirrored.
# "flip+translate" is airbench's 6 views (Jordan 2024): the image and its 1-px up-left and
# down-right shifts (reflect-padded), each with its mirror, their probabilities averaged alike.
# "airbench" scores the same 6 views as airbench94 does: logits averaged, the unshifted pair
# weighing 1/2 and each shifted pair 1/4.
_SIX_VIEW_SHIFTS = ((0, 0), (-1, -1), (1, 1))
TTA_SHIFTS = {"flip": ((0, 0),), "flip+translate": _SIX_VIEW_SHIFTS, "airbench": _SIX_VIEW_SHIFTS}
# Share of each shift's pair (in TTA_SHIFTS order) for the modes that do not weigh their views alike.
TTA_WEIGHTS = {"airbench": (0.5, 0.25, 0.25)}
# Modes that average logits and take the softmax (or sigmoid) once, instead of averaging probabilities.
TTA_AVERAGES_LOGITS = frozenset({"airbench"})
TTA_MODES = tuple(TTA_SHIFTS)


def tta_name(tta: bool | str) -> str | None:
    """The views a config's or caller's `tta` means: None (off), "flip" (true) or a TTA_SHIFTS name."""
    if tta is False or tta is None:
        return None
    name = "flip" if tta is True else tta
    if name not in TTA_SHIFTS:
        raise ValueError(f"tta={tta!r}: use true, false or one of {', '.join(TTA_SHIFTS)}")
    return name


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x moved by (dy, dx) pixels, the border filled by reflection (as the training crops pad)."""
    if dy == 0 and dx == 0:
        return x
    pad = max(abs(dy), abs(dx))
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    return padded[..., pad - dy:pad - dy + h, pad - dx:pad - dx + w]


@torch.no_grad()
def tta_probabilities(model: nn.Module, images: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
                      batch_size: int, views: bool | str = "flip", amp_dtype: torch.dtype | None = None,
                      channels_last: bool = False, world=None) -> np.ndarray:
    """Class probabilities of ``images`` from their TTA views, float32 N x K: the views' mean
    probabilities, or for "airbench" the probabilities of their weighted mean logits.

    ``images`` are uint8 N x C x H x W (on any device) as the trainer keeps them; ``normalize``
    turns a batch into model input. ``views`` is "flip" (true: the image and its left-right
    mirror), "flip+translate" (those two, and both shifted 1 px up-left and down-right) or "airbench"
    (those six, their logits averaged with weight 1/2 on the unshifted pair). Shifts
    and mirrors are taken after normalization, which is the same as before it for per-channel
    normalization. The model runs in eval mode; its mode is restored. The trainer saves the result
    as predictions/test_tta.npz; the run report shows it as a second test row.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
    name = tta_name(views)
    if name is None:
        raise ValueError("views=False scores no TTA views; call predict_logits for plain predictions")
    shifts = TTA_SHIFTS[name]
    weights = TTA_WEIGHTS.get(name)
    on_logits = name in TTA_AVERAGES_LOGITS
    was_training = model.training
    model.eval()
    total = None
    try:
        for i, (dy, dx) in enumerate(shifts):
            for mirror in (False, True):
                def view(x, dy=dy, dx=dx, mirror=mirror):
                    x = _shifted(normalize(x), dy, dx)
                    return torch.flip(x, dims=[-1]) if mirror else x
                out = predict_logits(model, images, view, batch_size, amp_dtype, channels_last, world)
                out = out if on_logits else probabilities(out)
                # A pair's share is split between its plain and mirrored view; alike weights divide at the end.
                out = out * (weights[i] / 2) if weights else out
                total = out if total is None else total + out
    finally:
        model.train(was_training)
    if not weights:
        total = total / (2 * len(shifts))
    return (probabilities(total) if on_logits else total).numpy().astype(np.float32)
