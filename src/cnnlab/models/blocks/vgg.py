"""VGG stage: ``n`` 3x3 "same" convs (+ optional BN) with activation, then 2x2 max pool."""
from __future__ import annotations

from torch import nn

from .activation import make_activation


def vgg_stage_layers(in_chans: int, out_chans: int, num_convs: int, batch_norm: bool = False,
                     act: str = "relu", pool: bool = True) -> list[nn.Module]:
    """Flat list of layers of one stage, in torchvision's order (conv, [bn], act, ..., pool),
    so a flat ``nn.Sequential`` of stages has torchvision's ``features.N`` indices."""
    layers: list[nn.Module] = []
    chans = in_chans
    for _ in range(num_convs):
        layers.append(nn.Conv2d(chans, out_chans, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_chans))
        layers.append(make_activation(act))
        chans = out_chans
    if pool:
        layers.append(nn.MaxPool2d(2, 2))
    return layers


class VGGStage(nn.Sequential):
    """One VGG stage as a module (for composing and declaring models)."""

    def __init__(self, in_chans: int, out_chans: int, num_convs: int = 2, batch_norm: bool = False,
                 act: str = "relu", pool: bool = True):
        super().__init__(*vgg_stage_layers(in_chans, out_chans, num_convs, batch_norm, act, pool))
        self.out_chans = out_chans
