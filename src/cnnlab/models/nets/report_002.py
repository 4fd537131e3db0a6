"""ConvNet of report 002 (TensorFlow CIFAR-10 tutorial network)."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..base import ClassifierModel
from ..blocks.dropout import Dropout
from ..blocks.lrn import LocalResponseNorm
from ..registry import register_model
from ..shapes import flat_features


class ConvNet002(ClassifierModel):
    """Two 5x5 conv64 (+ReLU, 3x3/2 max pool, local response norm), fc1 384, fc2 192, fc3.

    ``fc1``, ``fc2``, ``fc3`` are named submodules (Linear) so their outputs can be
    hooked for the t-SNE / SVM feature studies of 002-b; ``forward_features`` gives the
    flatten features, ``forward_head(f, pre_logits=True)`` the fc2 features.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, input_size: int = 32, lrn: bool = True,
                 dropout1: float = 0.0, dropout2: float = 0.0):
        super().__init__()
        self.num_classes = num_classes

        def norm() -> nn.Module:
            # TF tutorial: depth_radius 4 (window 9), alpha 0.001/9; torch divides alpha by the window.
            # cnnlab's LRN block: torch's layer and formula, its window sum a band matmul (4x faster).
            return LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0) if lrn else nn.Identity()

        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_chans, 64, 5, padding=2)), ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(3, 2, padding=1)), ("norm1", norm()),
            ("conv2", nn.Conv2d(64, 64, 5, padding=2)), ("relu2", nn.ReLU()), ("norm2", norm()),
            ("pool2", nn.MaxPool2d(3, 2, padding=1)), ("flatten", nn.Flatten()),
        ]))
        dim = flat_features(self.features, in_chans, input_size)
        self.fc1, self.drop1 = nn.Linear(dim, 384), Dropout(dropout1)
        self.fc2, self.drop2 = nn.Linear(384, 192), Dropout(dropout2)
        self.fc3 = nn.Linear(192, num_classes)
        self.relu = nn.ReLU()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop1(self.relu(self.fc1(features)))
        x = self.drop2(self.relu(self.fc2(x)))
        return x if pre_logits else self.fc3(x)


@register_model(input_size=32, description="002-a ConvNet: 2x 5x5 conv64, fc1 384, fc2 192, fc3 (1,756,426 params)")
def convnet002(num_classes: int = 10, in_chans: int = 3, input_size: int = 32, lrn: bool = True,
               dropout1: float = 0.0, dropout2: float = 0.0) -> ConvNet002:
    """Report 002-a ConvNet; pooling "same" (3x3 stride 2) as in the TF tutorial, 32x32
    input (no 24x24 crop): 1,756,426 params. Use ``init_weights(m, "normal", std=0.001)``
    for the report's initialisation; dropout1/dropout2 act after fc1/fc2 (the 0.5/0.2 study)."""
    return ConvNet002(num_classes, in_chans, input_size, lrn, dropout1, dropout2)
