"""Inception block of report 001-e: three parallel branches concatenated on channels."""
from __future__ import annotations

import torch
from torch import nn

from .activation import make_activation


def _conv(cin: int, cout: int, act: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), make_activation(act))


class InceptionBlock(nn.Module):
    """Branches (all "same" padding, ReLU): 3x3 conv; 3x3 conv -> 3x3 conv;
    3x3 conv -> 3x3 max pool stride 1. Output: ``3 * width`` channels, same H x W.
    """

    def __init__(self, in_chans: int, width: int = 64, act: str = "relu"):
        super().__init__()
        self.branch1 = _conv(in_chans, width, act)
        self.branch2 = nn.Sequential(_conv(in_chans, width, act), _conv(width, width, act))
        self.branch3 = nn.Sequential(_conv(in_chans, width, act), nn.MaxPool2d(3, stride=1, padding=1))
        self.out_chans = 3 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)
