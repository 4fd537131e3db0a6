"""Depthwise-separable convolution (Keras ``SeparableConv2D``, Chollet 2017): a k x k conv per
channel, then a 1 x 1 conv that mixes channels, with nothing between them.

It costs C*k*k + C*C' weights where a full conv costs C*C'*k*k: at 3 x 3 and 64 -> 64 channels,
4,672 against 36,864, which is what lets a net under a parameter budget be several times wider.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .conv import resolve_padding


class SeparableConv2d(nn.Sequential):
    """depthwise k x k (stride, padding: "same", "valid" or px) -> pointwise 1 x 1; submodules
    ``depthwise``, ``pointwise``."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 3, stride: int = 1,
                 padding: str | int = "same", bias: bool = False):
        pad = resolve_padding(padding, kernel_size, stride)
        super().__init__(OrderedDict([
            ("depthwise", nn.Conv2d(in_chans, in_chans, kernel_size, stride, pad, groups=in_chans, bias=False)),
            ("pointwise", nn.Conv2d(in_chans, out_chans, 1, bias=bias)),
        ]))
        self.in_chans, self.out_chans = in_chans, out_chans
