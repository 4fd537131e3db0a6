"""ResNet-18 (torchvision names) and Wide ResNet (Zagoruyko & Komodakis 2016)."""
from __future__ import annotations

import torch
from torch import nn

from ..base import ClassifierModel
from ..blocks.dropout import Dropout
from ..blocks.residual import BasicBlock
from ..registry import register_model


class ResNet(ClassifierModel):
    """ImageNet-style ResNet with basic blocks; ``stem="cifar"`` (3x3 stride-1 conv1, no
    max pool) for 32x32, ``"imagenet"`` the published 7x7/2 conv1 + 3x3/2 max pool."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 10, in_chans: int = 3,
                 stem: str = "cifar"):
        super().__init__()
        if stem not in ("cifar", "imagenet"):
            raise ValueError(f"ResNet stem must be 'cifar' or 'imagenet', got {stem!r}")
        self.num_classes = num_classes
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        chans = 64
        for i, (width, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(chans, width, 2 if (i > 1 and j == 0) else 1))
                chans = width
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.fc(features)


@register_model(input_size=32, description="ResNet-18 (torchvision names; cifar 3x3 stem or imagenet stem)")
def resnet18(num_classes: int = 10, in_chans: int = 3, stem: str = "cifar") -> ResNet:
    """ResNet-18: 4 stages x 2 basic blocks, 64-512 channels (11.2M params)."""
    return ResNet((2, 2, 2, 2), num_classes, in_chans, stem)


class WideBlock(nn.Module):
    """Pre-activation wide block: BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3 + shortcut
    (1x1 conv when the shape changes)."""

    def __init__(self, in_chans: int, out_chans: int, stride: int, dropout: float):
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(in_chans), nn.ReLU()
        self.conv1 = nn.Conv2d(in_chans, out_chans, 3, stride, 1, bias=False)
        self.drop = Dropout(dropout)
        self.bn2, self.relu2 = nn.BatchNorm2d(out_chans), nn.ReLU()
        self.conv2 = nn.Conv2d(out_chans, out_chans, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(in_chans, out_chans, 1, stride, bias=False)
                         if stride != 1 or in_chans != out_chans else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.drop(self.conv1(pre)))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(ClassifierModel):
    """WRN-depth-k: 3 stages of (depth-4)/6 wide blocks, widths 16k/32k/64k."""

    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10, in_chans: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"WideResNet depth must be 6n+4 (16, 22, 28, 40), got {depth}")
        n = (depth - 4) // 6
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        chans, blocks = 16, []
        for i, width in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor)):
            for j in range(n):
                blocks.append(WideBlock(chans, width, 2 if (i > 0 and j == 0) else 1, dropout))
                chans = width
        self.blocks = nn.Sequential(*blocks)
        self.bn, self.relu = nn.BatchNorm2d(chans), nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.blocks(self.conv1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.fc(features)


@register_model(input_size=32, description="Wide ResNet 16-4 (2.7M params); depth/widen_factor knobs")
def wrn16_4(num_classes: int = 10, in_chans: int = 3, depth: int = 16, widen_factor: int = 4,
            dropout: float = 0.0) -> WideResNet:
    """WideResNet, default WRN-16-4."""
    return WideResNet(depth, widen_factor, num_classes, in_chans, dropout)


@register_model(input_size=32, description="Wide ResNet 28-10 (36.5M params)")
def wrn28_10(num_classes: int = 10, in_chans: int = 3, dropout: float = 0.3) -> WideResNet:
    """WRN-28-10 with dropout 0.3, the paper's best CIFAR setting."""
    return WideResNet(28, 10, num_classes, in_chans, dropout)
