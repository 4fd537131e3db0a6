"""Residual blocks: the added form (He et al. 2016) and the concatenated form of report 001-e."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activation import make_activation

SHORTCUTS = ("projection", "pad")


class PadShortcut(nn.Module):
    """Parameter-free shortcut ("option A" of He et al.): subsample by ``stride``, zero-pad channels."""

    def __init__(self, in_chans: int, out_chans: int, stride: int):
        super().__init__()
        if out_chans < in_chans:
            raise ValueError(f"pad shortcut cannot reduce channels ({in_chans} -> {out_chans}); use 'projection'")
        self.stride, self.extra = stride, out_chans - in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # Pad zeros on the channel dimension only: (W left, W right, H top, H bottom, C front, C back).
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers added to the input (ResNet basic block).

    When the shape changes (stride > 1 or new channel count) the input goes
    through a 1x1 conv + BN projection (``shortcut="projection"``, torchvision's
    ``downsample``) or the parameter-free zero-padding shortcut (``"pad"``, the
    CIFAR ResNets of the paper). Submodule names match torchvision's ResNet so
    ImageNet checkpoints load: conv1, bn1, conv2, bn2, downsample.0/1.
    """

    expansion = 1

    def __init__(self, in_chans: int, out_chans: int, stride: int = 1, shortcut: str = "projection", act: str = "relu"):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut {shortcut!r}; choose one of {', '.join(SHORTCUTS)}")
        self.conv1 = nn.Conv2d(in_chans, out_chans, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chans)
        self.relu = make_activation(act)
        self.conv2 = nn.Conv2d(out_chans, out_chans, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chans)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_chans != out_chans:
            if shortcut == "projection":
                self.downsample = nn.Sequential(
                    nn.Conv2d(in_chans, out_chans, 1, stride, bias=False), nn.BatchNorm2d(out_chans)
                )
            else:
                self.downsample = PadShortcut(in_chans, out_chans, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ConcatResidual(nn.Module):
    """Residual block of report 001-e: the block output is *concatenated* with its input.

    ``convs`` 3x3 "same" conv layers of ``width`` channels (ReLU), then a 1x1 conv
    down to ``out_chans`` ("to match the size with the input"), then
    ``cat([x, out])`` on channels, then an optional 2x2 max pool. Output channels:
    ``in_chans + out_chans``.
    """

    def __init__(self, in_chans: int, width: int = 128, out_chans: int | None = None, convs: int = 2,
                 act: str = "relu", pool: bool = True):
        super().__init__()
        out_chans = in_chans if out_chans is None else out_chans
        layers: list[nn.Module] = []
        chans = in_chans
        for _ in range(convs):
            layers += [nn.Conv2d(chans, width, 3, padding=1), make_activation(act)]
            chans = width
        layers += [nn.Conv2d(chans, out_chans, 1), make_activation(act)]
        self.body = nn.Sequential(*layers)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.out_chans = in_chans + out_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.cat([x, self.body(x)], dim=1))
