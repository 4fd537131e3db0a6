"""The AutoKeras best network of report 003-b (27 convs, ResNet-like, no pooling)."""
from __future__ import annotations

import torch
from torch import nn

from ..base import ClassifierModel
from ..blocks.keras import keras_bn
from ..registry import register_model


class AutoKerasResBlock(nn.Module):
    """One residual unit as AutoKeras printed it (all convs with bias, "same" padding).

    main: conv3x3(in->mid), BN, ReLU, [conv1x1(mid->mid)], conv3x3(mid->out);
    shortcut: ReLU, conv1x1(in->out); output = main + shortcut, then (unless last) BN, ReLU.
    """

    def __init__(self, in_chans: int, mid: int, out_chans: int, extra_1x1: bool = False, post: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_chans, mid, 3, padding=1), keras_bn(mid), nn.ReLU()]
        if extra_1x1:
            layers.append(nn.Conv2d(mid, mid, 1))
        layers.append(nn.Conv2d(mid, out_chans, 3, padding=1))
        self.main = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(nn.ReLU(), nn.Conv2d(in_chans, out_chans, 1))
        self.post = nn.Sequential(keras_bn(out_chans), nn.ReLU()) if post else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.main(x) + self.shortcut(x))


# (mid, out) channels of the eight residual units, read off the printed table.
_UNITS = ((64, 64), (64, 64), (128, 2048), (128, 128), (256, 256), (256, 256), (512, 512), (512, 512))


class AutoKeras003b(ClassifierModel):
    """Stem conv3x3 64 + BN + BN + ReLU + conv1x1 64 + ReLU, eight residual units at full
    32x32 resolution (no pooling), global average pool, dense ``num_classes``."""

    def __init__(self, num_classes: int = 200, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        # The printed table really has two batch norms in a row after the first conv.
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 64, 3, padding=1), keras_bn(64), keras_bn(64), nn.ReLU(),
                                  nn.Conv2d(64, 64, 1), nn.ReLU())
        units = []
        chans = 64
        for i, (mid, out) in enumerate(_UNITS):
            units.append(AutoKerasResBlock(chans, mid, out, extra_1x1=(i == 0), post=(i < len(_UNITS) - 1)))
            chans = out
        self.units = nn.Sequential(*units)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(chans, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.units(self.stem(x))), 1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.classifier(features)


@register_model(input_size=32, num_classes=200,
                description="003-b AutoKeras best net: 27 convs, ResNet-like; 16,445,896 params at 200 classes")
def autokeras003b(num_classes: int = 200, in_chans: int = 3) -> AutoKeras003b:
    """Report 003-b AutoKeras network, layer for layer from its printed summary:
    16,445,896 params for 200 classes (16,435,144 trainable, 10,752 BN moving stats).
    Heavy: 16.7 GMACs per 32x32 image (a 2048-channel map at full 32x32 resolution)."""
    return AutoKeras003b(num_classes, in_chans)
