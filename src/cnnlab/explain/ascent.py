"""Filters made visible by gradient ascent (report 001-b): start from seeded noise and change the
image, step by step, so that one filter's mean activation grows.

Raw gradient ascent gives high-frequency noise that excites the filter but shows little; three
standard regularizers make the patterns readable (Yosinski et al. 2015, "Understanding neural
networks through deep visualization"):
  * jitter: the image is shifted by a random few pixels before each step, so the pattern must
    work wherever it sits instead of exploiting exact pixel positions;
  * blur: a 3x3 Gaussian blur every few steps removes the high frequencies;
  * L2 decay: each step pulls every pixel a little back to mid-grey, so only pixels the filter
    needs stay away from it.
The gradient is divided by its root mean square, so the step size is in pixel units whatever the
layer's scale. All filters of a call are optimized together as one batch: in eval mode the images
do not interact (batch norm uses its running statistics).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.explain.capture import capture_outputs, eval_mode


@dataclass(frozen=True)
class AscentSettings:
    steps: int = 64          # gradient steps per filter
    lr: float = 0.04         # step, in fractions of the pixel range [0, 1] (the gradient is RMS-normalized)
    jitter: int = 2          # largest random shift per step, pixels
    blur_every: int = 4      # steps between two 3x3 Gaussian blurs (sigma 0.5 px); 0 = never
    decay: float = 0.01      # L2 decay: share of the distance to mid-grey removed per step
    init_std: float = 0.1    # standard deviation of the starting noise around mid-grey, pixel range [0, 1]
    seed: int = 0

    def describe(self) -> str:
        blur = f"3x3 Gaussian blur (sigma 0.5 px) every {self.blur_every} steps" if self.blur_every else "no blur"
        return (f"{self.steps} steps of {self.lr:g} (pixel range 0..1, gradient divided by its RMS) from grey + "
                f"N(0, {self.init_std:g}) noise (seed {self.seed}); jitter up to {self.jitter} px per step; "
                f"{blur}; L2 decay {self.decay:g} toward grey per step")


@dataclass
class FilterImages:
    """The images that excite ``filters`` of ``layer``: uint8 F x C x H x W, and each filter's mean
    activation (the conv output, before any activation function) on the starting noise and on the result."""

    layer: str
    filters: list[int]
    images: np.ndarray
    start: np.ndarray
    end: np.ndarray
    settings: AscentSettings


_GAUSS = torch.tensor([0.1070, 0.7860, 0.1070])  # 3 taps of a sigma-0.5 px Gaussian, summing to 1


def _blur(images: torch.Tensor) -> torch.Tensor:
    kernel = (_GAUSS[:, None] * _GAUSS[None, :]).to(images)
    channels = images.shape[1]
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernel.expand(channels, 1, 3, 3), groups=channels)


def _mean_activation(model: nn.Module, normalize: Callable[[torch.Tensor], torch.Tensor], layer: str,
                     pixels: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """Image i's mean activation of filter filters[i]; ``pixels`` in [0, 1]."""
    _, kept = capture_outputs(model, normalize(pixels * 255.0), [layer], stop_early=True)
    acts = kept[layer]
    return acts[torch.arange(len(filters), device=acts.device), filters].float().mean(dim=(1, 2))


def visualize_filters(model: nn.Module, layer: str, normalize: Callable[[torch.Tensor], torch.Tensor],
                      input_shape: tuple[int, int, int], filters: Optional[Sequence[int]] = None,
                      count: int = 16, settings: AscentSettings = AscentSettings()) -> FilterImages:
    """Gradient-ascent images of ``filters`` (default: the first ``count``) of conv layer ``layer``.

    ``normalize`` maps float pixels in 0..255 (N x C x H x W) to the model's input, as the run's
    normalizer does; ``input_shape`` is (C, H, W).
    """
    module = dict(model.named_modules()).get(layer)
    if not isinstance(module, nn.Conv2d):
        raise ValueError(f"{layer!r} is not a conv layer of this model")
    channels = module.out_channels
    chosen = list(range(min(count, channels))) if filters is None else [int(f) for f in filters]
    bad = [f for f in chosen if not 0 <= f < channels]
    if bad or not chosen:
        raise ValueError(f"filter {bad[0] if bad else '(none)'} does not exist: {layer} has filters 0..{channels - 1}")
    if settings.steps < 1:
        raise ValueError(f"gradient ascent needs at least 1 step, got {settings.steps}")
    param = next(model.parameters())
    generator = torch.Generator().manual_seed(settings.seed)
    pixels = (0.5 + settings.init_std * torch.randn(len(chosen), *input_shape, generator=generator)).clamp(0, 1)
    shifts = torch.randint(-settings.jitter, settings.jitter + 1, (settings.steps, 2), generator=generator)
    pixels = pixels.to(param.device)
    index = torch.tensor(chosen, device=param.device)
    with eval_mode(model):
        with torch.no_grad():
            start = _mean_activation(model, normalize, layer, pixels, index)
        for step in range(settings.steps):
            pixels.requires_grad_(True)
            with torch.enable_grad():
                shifted = torch.roll(pixels, shifts=tuple(int(s) for s in shifts[step]), dims=(2, 3))
                objective = _mean_activation(model, normalize, layer, shifted, index).sum()
                (grad,) = torch.autograd.grad(objective, pixels)
            with torch.no_grad():
                grad = grad / (grad.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-8)
                pixels = pixels.detach() + settings.lr * grad
                pixels = 0.5 + (pixels - 0.5) * (1 - settings.decay)
                if settings.blur_every and (step + 1) % settings.blur_every == 0:
                    pixels = _blur(pixels)
                pixels = pixels.clamp(0, 1)
        with torch.no_grad():
            end = _mean_activation(model, normalize, layer, pixels, index)
    images = (pixels.detach() * 255).round().to(torch.uint8).cpu().numpy()
    return FilterImages(layer, chosen, images, start.cpu().numpy(), end.cpu().numpy(), settings)


__all__ = ["AscentSettings", "FilterImages", "visualize_filters"]
