"""MobileNetV2 inverted residual with linear bottleneck (Sandler et al. 2018)."""
from __future__ import annotations

import torch
from torch import nn

from .activation import make_activation


class ConvNormAct(nn.Sequential):
    """conv (no bias) + BN + activation, indexed 0/1/2 like torchvision's Conv2dNormActivation."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 act: str | None = "relu6"):
        super().__init__(
            nn.Conv2d(in_chans, out_chans, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_chans),
            make_activation(act),
        )
        self.out_chans = out_chans


class InvertedResidual(nn.Module):
    """1x1 expand to ``in_chans * expand_ratio`` (ReLU6), 3x3 depthwise (stride, ReLU6),
    1x1 linear projection + BN (no activation: the linear bottleneck). Adds the input
    when stride is 1 and channels match. Names match torchvision's ``conv.0..3``.
    """

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1, expand_ratio: int = 6, act: str = "relu6"):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"inverted residual stride must be 1 or 2, got {stride}")
        hidden = int(round(in_chans * expand_ratio))
        self.use_res_connect = stride == 1 and in_chans == out_chans
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_chans, hidden, 1, act=act))
        layers += [
            ConvNormAct(hidden, hidden, 3, stride, groups=hidden, act=act),
            nn.Conv2d(hidden, out_chans, 1, bias=False),
            nn.BatchNorm2d(out_chans),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_chans = out_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out
