"""VGG (Simonyan & Zisserman 2015) with torchvision's parameter names, and the 004-e heads."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..base import ClassifierModel
from ..blocks.dropout import Dropout
from ..blocks.keras import keras_bn
from ..blocks.vgg import vgg_stage_layers
from ..registry import register_model
from ..shapes import flat_features

# (channels, convs) per stage.
VGG_CFGS: dict[str, tuple[tuple[int, int], ...]] = {
    "vgg11": ((64, 1), (128, 1), (256, 2), (512, 2), (512, 2)),
    "vgg16": ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)),
}


def vgg_features(cfg: str, in_chans: int = 3, batch_norm: bool = False, stages: int = 5) -> nn.Sequential:
    """Flat conv trunk; with ``stages=5`` its ``features.N`` names equal torchvision's."""
    if cfg not in VGG_CFGS:
        raise ValueError(f"unknown VGG config {cfg!r}; choose one of {', '.join(VGG_CFGS)}")
    if not 1 <= stages <= 5:
        raise ValueError(f"VGG stages must be 1..5, got {stages}")
    layers: list[nn.Module] = []
    chans = in_chans
    for width, n in VGG_CFGS[cfg][:stages]:
        layers += vgg_stage_layers(chans, width, n, batch_norm)
        chans = width
    return nn.Sequential(*layers)


class VGG(ClassifierModel):
    """VGG with ``features`` / ``avgpool`` / ``classifier`` as torchvision names them.

    ``head="imagenet"``: 7x7 adaptive pool, 25088-4096-4096-classes (loads ImageNet
    checkpoints whole). ``head="cifar"`` (default, for 32x32): 1x1 pool, 512-512-512-classes;
    the classifier keeps indices 0/3/6, so the conv trunk loads from an ImageNet checkpoint
    and the head shapes are skipped.
    """

    def __init__(self, cfg: str, num_classes: int = 10, in_chans: int = 3, batch_norm: bool = False,
                 head: str = "cifar", dropout: float = 0.5):
        super().__init__()
        if head not in ("cifar", "imagenet"):
            raise ValueError(f"VGG head must be 'cifar' or 'imagenet', got {head!r}")
        self.num_classes = num_classes
        self.features = vgg_features(cfg, in_chans, batch_norm)
        pool, hidden = (7, 4096) if head == "imagenet" else (1, 512)
        self.avgpool = nn.AdaptiveAvgPool2d(pool)
        self.classifier = nn.Sequential(
            nn.Linear(512 * pool * pool, hidden), nn.ReLU(), Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.classifier[:-1](features) if pre_logits else self.classifier(features)


def _register_vgg(cfg: str, batch_norm: bool) -> None:
    name = cfg + ("_bn" if batch_norm else "")

    def factory(num_classes: int = 10, in_chans: int = 3, head: str = "cifar", dropout: float = 0.5) -> VGG:
        return VGG(cfg, num_classes, in_chans, batch_norm, head, dropout)

    factory.__name__ = name
    factory.__doc__ = f"{cfg.upper()}{' with batch norm' if batch_norm else ''}; torchvision parameter names."
    desc = f"{cfg.upper()}{' + BN' if batch_norm else ''} (torchvision names; cifar or imagenet head)"
    register_model(name, input_size=32, description=desc)(factory)


for _cfg in VGG_CFGS:
    for _bn in (False, True):
        _register_vgg(_cfg, _bn)


class VGGTransferHead(ClassifierModel):
    """004-e: first ``stages`` VGG16 blocks (torchvision names, so ImageNet weights load),
    flatten, dense 256 + ReLU, BN, dropout, dense ``num_classes``."""

    def __init__(self, stages: int, num_classes: int = 10, in_chans: int = 3, input_size: int = 32,
                 dropout: float = 0.5, hidden: int = 256):
        super().__init__()
        self.num_classes = num_classes
        self.features = vgg_features("vgg16", in_chans, stages=stages)
        self.flatten = nn.Flatten()
        dim = flat_features(nn.Sequential(self.features, self.flatten), in_chans, input_size)
        self.head = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(dim, hidden)), ("relu", nn.ReLU()), ("bn", keras_bn(hidden, dims=1)),
            ("drop", Dropout(dropout)),
        ]))
        self.classifier = nn.Linear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.features(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head(features)
        return x if pre_logits else self.classifier(x)


@register_model(input_size=32, description="004-e VGG16 blocks 1-3 + dense 256 + BN + dropout; 2,787,914 params")
def vgg16_3block(num_classes: int = 10, in_chans: int = 3, input_size: int = 32, dropout: float = 0.5) -> VGGTransferHead:
    """Report 004-e: VGG16 blocks 1-3 (ImageNet-loadable), flatten (4096 at 32x32), dense 256
    (ReLU), BN, dropout 0.5, dense 10: 2,787,914 params (2,787,402 trainable, 512 BN stats)."""
    return VGGTransferHead(3, num_classes, in_chans, input_size, dropout)


@register_model(input_size=32, description="004-e VGG16 all five blocks + dense 256 + BN + dropout; 14,849,610 params")
def vgg16_5block(num_classes: int = 10, in_chans: int = 3, input_size: int = 32, dropout: float = 0.5) -> VGGTransferHead:
    """Report 004-e five-block variant: the same head on the whole VGG16 trunk (512 features
    at 32x32): 14,849,610 params (14,849,098 trainable)."""
    return VGGTransferHead(5, num_classes, in_chans, input_size, dropout)
