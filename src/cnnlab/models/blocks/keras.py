"""Keras layer defaults, so replicas of the reports' Keras models behave like them."""
from __future__ import annotations

from torch import nn

# Keras BatchNormalization: epsilon=1e-3, momentum=0.99 on the moving average,
# which is PyTorch momentum 1 - 0.99 = 0.01 (PyTorch weighs the new batch).
KERAS_BN_EPS = 1e-3
KERAS_BN_MOMENTUM = 0.01


def keras_bn(channels: int, dims: int = 2) -> nn.Module:
    """BatchNorm with Keras' default epsilon and momentum (2d for conv maps, 1d for dense)."""
    cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    return cls(channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)


def keras_conv(in_chans: int, out_chans: int, kernel_size: int = 3, padding: str = "valid", stride: int = 1) -> nn.Conv2d:
    """Conv2D with bias (Keras default use_bias=True) and "same"/"valid" padding."""
    from .conv import resolve_padding

    return nn.Conv2d(in_chans, out_chans, kernel_size, stride, resolve_padding(padding, kernel_size, stride))
