"""DenseNet-BC pieces (Huang et al. 2017): dense layer, dense block, transition."""
from __future__ import annotations

import torch
from torch import nn

from .activation import make_activation
from .dropout import Dropout


def _bn(chans: int, eps: float, momentum: float) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(chans, eps=eps, momentum=momentum)


class DenseLayer(nn.Module):
    """BN-act-conv1x1(``bottleneck`` ch)-BN-act-conv3x3(``growth`` ch), output concatenated
    with the input: ``in_chans + growth`` channels out. Convs have no bias.
    Names follow torchvision (norm1, relu1, conv1, norm2, relu2, conv2).
    """

    def __init__(self, in_chans: int, growth: int, bottleneck: int | None = None, act: str = "relu",
                 drop_rate: float = 0.0, bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        bottleneck = 4 * growth if bottleneck is None else bottleneck
        self.norm1, self.relu1 = _bn(in_chans, bn_eps, bn_momentum), make_activation(act)
        self.conv1 = nn.Conv2d(in_chans, bottleneck, 1, bias=False)
        self.norm2, self.relu2 = _bn(bottleneck, bn_eps, bn_momentum), make_activation(act)
        self.conv2 = nn.Conv2d(bottleneck, growth, 3, padding=1, bias=False)
        self.drop = Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.out_chans = in_chans + growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.conv1(self.relu1(self.norm1(x)))
        new = self.drop(self.conv2(self.relu2(self.norm2(new))))
        return torch.cat([x, new], dim=1)


class DenseBlock(nn.Sequential):
    """``num_layers`` dense layers; output ``in_chans + num_layers * growth`` channels."""

    def __init__(self, in_chans: int, num_layers: int, growth: int, bottleneck: int | None = None,
                 act: str = "relu", drop_rate: float = 0.0, bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        layers = []
        chans = in_chans
        for _ in range(num_layers):
            layers.append(DenseLayer(chans, growth, bottleneck, act, drop_rate, bn_eps, bn_momentum))
            chans += growth
        super().__init__(*layers)
        self.out_chans = chans


class Transition(nn.Sequential):
    """BN-act-conv1x1 to ``out_chans`` (no bias)-2x2 average pool: halves H and W."""

    def __init__(self, in_chans: int, out_chans: int, act: str = "relu", bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        self.add_module("norm", _bn(in_chans, bn_eps, bn_momentum))
        self.add_module("relu", make_activation(act))
        self.add_module("conv", nn.Conv2d(in_chans, out_chans, 1, bias=False))
        self.add_module("pool", nn.AvgPool2d(2))
        self.out_chans = out_chans
