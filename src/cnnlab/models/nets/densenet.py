"""DenseNet-BC for small images (Huang et al. 2017), also the 000-b network."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..base import ClassifierModel
from ..blocks.dense import DenseBlock, Transition
from ..blocks.keras import KERAS_BN_EPS, KERAS_BN_MOMENTUM
from ..registry import register_model


class DenseNet(ClassifierModel):
    """3x3 conv stem (no bias), dense blocks with transitions between them,
    final BN-ReLU, global average pool, linear head.

    ``keras_bn`` uses Keras' batch-norm epsilon/momentum (for the 000-b replica).
    """

    def __init__(self, growth: int = 12, block_config: tuple[int, ...] = (16, 16, 16), stem_chans: int | None = None,
                 compression: float = 0.5, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0,
                 keras_bn: bool = False):
        super().__init__()
        if not 0 < compression <= 1:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        eps, mom = (KERAS_BN_EPS, KERAS_BN_MOMENTUM) if keras_bn else (1e-5, 0.1)
        self.num_classes = num_classes
        chans = 2 * growth if stem_chans is None else stem_chans
        parts: list[tuple[str, nn.Module]] = [("conv0", nn.Conv2d(in_chans, chans, 3, padding=1, bias=False))]
        for i, n in enumerate(block_config, start=1):
            block = DenseBlock(chans, n, growth, 4 * growth, drop_rate=drop_rate, bn_eps=eps, bn_momentum=mom)
            parts.append((f"denseblock{i}", block))
            chans = block.out_chans
            if i < len(block_config):
                trans = Transition(chans, int(chans * compression), bn_eps=eps, bn_momentum=mom)
                parts.append((f"transition{i}", trans))
                chans = trans.out_chans
        parts += [("norm5", nn.BatchNorm2d(chans, eps=eps, momentum=mom)), ("relu5", nn.ReLU())]
        self.features = nn.Sequential(OrderedDict(parts))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(chans, num_classes)
        self.num_features = chans

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.classifier(features)


@register_model(input_size=32, description="DenseNet-BC (depth/growth knobs), default depth 100, growth 12 (~0.8M)")
def densenet_bc(num_classes: int = 10, in_chans: int = 3, depth: int = 100, growth: int = 12,
                compression: float = 0.5, drop_rate: float = 0.0) -> DenseNet:
    """DenseNet-BC with three dense blocks of (depth - 4) / 6 bottleneck layers each."""
    if (depth - 4) % 6 != 0 or depth < 10:
        raise ValueError(f"DenseNet-BC depth must be 6n+4 (40, 100, 190...), got {depth}")
    n = (depth - 4) // 6
    return DenseNet(growth, (n, n, n), 2 * growth, compression, num_classes, in_chans, drop_rate)
