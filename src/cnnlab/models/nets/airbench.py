"""airbench-style nets (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds"): a fixed patch-whitening
layer, then three groups of conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU, a global max
pool and a bias-free linear head with scaled logits. Widths set the cost: (64, 256, 256) is
airbench94's net; narrower ones fit a 2-core CPU (see recipes/fast-cpu.yaml).
``separable=True`` makes every 3x3 conv depthwise-separable, which fits three times the width into
the same weights (recipes/000-b-ours-sep.yaml: 48/96/112 channels under 50K params).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..base import ClassifierModel
from ..blocks.separable import SeparableConv2d
from ..blocks.whiten import PatchWhitening
from ..registry import register_model


def _bn(chans: int, scale: bool = True) -> nn.BatchNorm2d:
    # momentum 0.4 (PyTorch's convention: weight of the new batch) : short runs need running
    # statistics that catch up within a few dozen steps.
    bn = nn.BatchNorm2d(chans, eps=1e-12, momentum=0.4)
    if not scale:
        # airbench's BN: the scale fixed at 1 (a buffer, so no stage or `trainable` can train it),
        # only the shift learns.
        del bn.weight
        bn.register_buffer("weight", torch.ones(chans))
    return bn


def _conv3x3(in_chans: int, out_chans: int, separable: bool) -> nn.Module:
    if separable:
        return SeparableConv2d(in_chans, out_chans, 3)
    return nn.Conv2d(in_chans, out_chans, 3, padding=1, bias=False)


class ConvGroup(nn.Sequential):
    """conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU: halves the resolution.

    ``separable``: each 3x3 conv is depthwise-separable (about 1/9 of the weights at equal width).
    """

    def __init__(self, in_chans: int, out_chans: int, separable: bool = False, bn_scale: bool = True):
        super().__init__(OrderedDict([
            ("conv1", _conv3x3(in_chans, out_chans, separable)),
            ("pool", nn.MaxPool2d(2)),
            ("bn1", _bn(out_chans, bn_scale)),
            ("act1", nn.GELU()),
            ("conv2", _conv3x3(out_chans, out_chans, separable)),
            ("bn2", _bn(out_chans, bn_scale)),
            ("act2", nn.GELU()),
        ]))
        self.in_chans, self.out_chans = in_chans, out_chans


class AirbenchNet(ClassifierModel):
    def __init__(self, widths: tuple[int, int, int] = (64, 256, 256), num_classes: int = 10, in_chans: int = 3,
                 whiten_kernel: int = 2, logit_scale: float = 1 / 9, dirac: bool = True, separable: bool = False,
                 bn_scale: bool = True):
        super().__init__()
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths must be three positive channel counts, got {widths!r}")
        self.num_classes = num_classes
        self.logit_scale = logit_scale
        self.whiten = PatchWhitening(in_chans, whiten_kernel)
        self.act = nn.GELU()
        chans = self.whiten.out_chans
        groups = []
        for width in widths:
            groups.append(ConvGroup(chans, width, separable, bn_scale))
            chans = width
        self.group1, self.group2, self.group3 = groups
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(chans, num_classes, bias=False)
        self.num_features = chans
        if dirac:   # each conv starts as identity on its first in-channels (plus the default noise elsewhere)
            for m in self.modules():
                if isinstance(m, nn.Conv2d) and m.groups > 1:   # depthwise: every filter a centred 1
                    torch.nn.init.dirac_(m.weight.data, groups=m.groups)
                elif isinstance(m, nn.Conv2d):
                    w = m.weight.data
                    torch.nn.init.dirac_(w[:w.size(1)])

    def init_from_data(self, images: torch.Tensor) -> None:
        """Fit the whitening filters to normalized training images (N x C x H x W)."""
        self.whiten.fit(images)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.whiten(x))
        x = self.group3(self.group2(self.group1(x)))
        return torch.flatten(self.pool(x), 1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        # Scaling the bias-free layer's input scales its output the same (W(s f) = s W f), and keeps fc the
        # layer that gives the logits, which pretrained loading and feature probes rely on.
        return features if pre_logits else self.fc(features * self.logit_scale)


@register_model(input_size=32, description="airbench94's net: whitening + conv groups 64/256/256, ~1.97M params")
def airbench94(num_classes: int = 10, in_chans: int = 3, widths: list[int] | None = None,
               dirac: bool = True, logit_scale: float = 1 / 9, bn_scale: bool = True) -> AirbenchNet:
    """airbench_cpu's options with airbench94's widths (``bn_scale=False``: airbench's fixed BN scales)."""
    return AirbenchNet(tuple(widths or (64, 256, 256)), num_classes, in_chans, logit_scale=logit_scale, dirac=dirac,
                       bn_scale=bn_scale)


@register_model(input_size=32, description="airbench-style net for a 2-core CPU: conv groups 32/64/128, ~0.29M params")
def airbench_cpu(num_classes: int = 10, in_chans: int = 3, widths: list[int] | None = None,
                 dirac: bool = True, logit_scale: float = 1 / 9, separable: bool = False,
                 bn_scale: bool = True) -> AirbenchNet:
    """``bn_scale=False``: the BN scales fixed at 1 (airbench's BN), only the shifts train."""
    return AirbenchNet(tuple(widths or (32, 64, 128)), num_classes, in_chans, logit_scale=logit_scale, dirac=dirac,
                       separable=separable, bn_scale=bn_scale)
