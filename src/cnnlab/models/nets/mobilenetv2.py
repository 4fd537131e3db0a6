"""MobileNetV2 (Sandler et al. 2018) with torchvision's parameter names and a width multiplier."""
from __future__ import annotations

import torch
from torch import nn

from ..base import ClassifierModel
from ..blocks.dropout import Dropout
from ..blocks.inverted_residual import ConvNormAct, InvertedResidual
from ..registry import register_model

# expansion t, channels c, repeats n, first stride s (the paper's table 2; 003-m).
MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10% (paper's rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class MobileNetV2(ClassifierModel):
    """``features`` (stem, 17 inverted residuals, 1x1 conv to 1280) + ``classifier``
    (dropout, linear) as in torchvision. ``stem_stride`` 1 suits 32x32 inputs, 2 is the
    published stem for 96/224."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width_mult: float = 1.0, stem_stride: int = 1,
                 dropout: float = 0.2, last_channel: int = 1280, hidden: tuple[int, ...] = ()):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        self.num_classes = num_classes
        chans = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(last_channel * max(1.0, width_mult))
        layers: list[nn.Module] = [ConvNormAct(in_chans, chans, 3, stem_stride)]
        for t, c, n, s in MBV2_SETTINGS:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(chans, out, s if i == 0 else 1, t))
                chans = out
        layers.append(ConvNormAct(chans, self.last_channel, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        head: list[nn.Module] = [Dropout(dropout)]
        width = self.last_channel
        for units in hidden:  # 003-d: dense 4096-4096 on top of the pooled features
            head += [nn.Linear(width, units), nn.ReLU()]
            width = units
        self.classifier = nn.Sequential(*head, nn.Linear(width, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.classifier[:-1](features) if pre_logits else self.classifier(features)


@register_model(input_size=32, description="MobileNetV2 (width multiplier; stride-1 stem for 32x32); torchvision names")
def mobilenetv2(num_classes: int = 10, in_chans: int = 3, width_mult: float = 1.0, stem_stride: int = 1,
                dropout: float = 0.2, hidden: list[int] | tuple[int, ...] = ()) -> MobileNetV2:
    """MobileNetV2; use ``stem_stride=2`` at 96x96 / 224x224 inputs (the published stem).
    ``hidden=[4096, 4096]`` adds the dense ReLU head of report 003-d before the output."""
    return MobileNetV2(num_classes, in_chans, width_mult, stem_stride, dropout, hidden=tuple(hidden))
