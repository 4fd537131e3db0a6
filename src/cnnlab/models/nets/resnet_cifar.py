"""CIFAR ResNets (He et al. 2016, section 4.2): 6n+2 layers, stages of 16/32/64 channels."""
from __future__ import annotations

import torch
from torch import nn

from ..base import ClassifierModel
from ..blocks.residual import BasicBlock
from ..registry import register_model


class CifarResNet(ClassifierModel):
    """3x3 conv16 stem, three stages of ``n`` basic blocks (16, 32, 64 channels,
    stride 1, 2, 2), global average pool, linear head. ``shortcut="pad"`` is the
    paper's option A (parameter-free), ``"projection"`` its option B.
    """

    def __init__(self, depth: int, num_classes: int = 10, in_chans: int = 3, shortcut: str = "pad", width: int = 16):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110...), got {depth}")
        n = (depth - 2) // 6
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        chans = width
        stages = []
        for i, out in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(chans, out, stride, shortcut=shortcut))
                chans = out
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans, num_classes)
        self.num_features = chans
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(self.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.fc(features)


@register_model(input_size=32, description="CIFAR ResNet-20 (He et al. 2016), 16/32/64 channels, ~0.27M params")
def resnet20(num_classes: int = 10, in_chans: int = 3, shortcut: str = "pad") -> CifarResNet:
    """CIFAR ResNet-20: 3 stages x 3 basic blocks; 269,722 trainable params with the pad shortcut (271,098 in Keras counting)."""
    return CifarResNet(20, num_classes, in_chans, shortcut)


@register_model(input_size=32, description="CIFAR ResNet-32 (He et al. 2016), ~0.46M params")
def resnet32(num_classes: int = 10, in_chans: int = 3, shortcut: str = "pad") -> CifarResNet:
    """CIFAR ResNet-32: 3 stages x 5 basic blocks."""
    return CifarResNet(32, num_classes, in_chans, shortcut)


@register_model(input_size=32, description="CIFAR ResNet-56 (He et al. 2016), ~0.85M params")
def resnet56(num_classes: int = 10, in_chans: int = 3, shortcut: str = "pad") -> CifarResNet:
    """CIFAR ResNet-56: 3 stages x 9 basic blocks."""
    return CifarResNet(56, num_classes, in_chans, shortcut)
