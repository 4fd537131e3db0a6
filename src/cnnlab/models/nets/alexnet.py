"""AlexNet (Krizhevsky et al. 2012) with torchvision's parameter names, adaptable to 32x32."""
from __future__ import annotations

import torch
from torch import nn

from ..base import ClassifierModel
from ..blocks.dropout import Dropout
from ..registry import register_model


class AlexNet(ClassifierModel):
    """torchvision AlexNet layout (features.0/3/6/8/10, classifier.1/4/6).

    ``small_input=True`` (003-c, 32x32): first conv 3x3 stride 1 (instead of 11x11
    stride 4) and a 3x3 adaptive pool before the classifier; only ``features.0`` and
    ``classifier.1`` then differ in shape from an ImageNet checkpoint.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, small_input: bool = True, dropout: float = 0.5,
                 hidden: int = 4096):
        super().__init__()
        self.num_classes = num_classes
        first = nn.Conv2d(in_chans, 64, 3, 1, 1) if small_input else nn.Conv2d(in_chans, 64, 11, 4, 2)
        self.features = nn.Sequential(
            first, nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        )
        pool = 3 if small_input else 6
        self.avgpool = nn.AdaptiveAvgPool2d(pool)
        self.classifier = nn.Sequential(
            Dropout(dropout), nn.Linear(256 * pool * pool, hidden), nn.ReLU(inplace=True),
            Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.classifier[:-1](features) if pre_logits else self.classifier(features)


@register_model(input_size=32, description="AlexNet adapted to 32x32 (003-c): 3x3 stride-1 stem; torchvision names")
def alexnet(num_classes: int = 10, in_chans: int = 3, small_input: bool = True, dropout: float = 0.5,
            hidden: int = 4096) -> AlexNet:
    """AlexNet; ``small_input=False`` gives the published 224x224 network."""
    return AlexNet(num_classes, in_chans, small_input, dropout, hidden)
