"""A new classification head on any registered network's features (transfer learning).

    model = with_new_head(create_model("vgg16_cifar000c"), num_classes=10, hidden=[256],
                          batch_norm=True, dropout=0.5, input_size=32)

The result is a ClassifierModel whose parameters are named ``body.*`` (the network, its own
head unused) and ``head.*`` (the new layers), so "train the head" and "freeze the body" are
prefixes.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import ClassifierModel
from cnnlab.models.blocks.dropout import Dropout


class WithNewHead(ClassifierModel):
    def __init__(self, body: ClassifierModel, head: nn.Sequential, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.body = body
        self.head = head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head[:-1](features) if pre_logits else self.head(features)


@torch.no_grad()
def feature_width(model: ClassifierModel, in_chans: int, input_size: int) -> int:
    """Width of ``forward_features`` for one image (a dry forward in eval mode; no randomness used)."""
    was_training = model.training
    model.eval()
    try:
        return int(model.forward_features(torch.zeros(1, in_chans, input_size, input_size)).flatten(1).shape[1])
    finally:
        model.train(was_training)


def with_new_head(model: ClassifierModel, num_classes: int, hidden: list[int], batch_norm: bool, dropout: float,
                  input_size: int, in_chans: int = 3) -> WithNewHead:
    """``model``'s features followed by dense layers ``hidden`` (ReLU, optional BN, dropout) and the output."""
    width = feature_width(model, in_chans, input_size)
    layers: list[nn.Module] = [nn.Flatten()]
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU(inplace=True)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(units))
        if dropout:
            layers.append(Dropout(dropout))
        width = units
    if dropout and not hidden:
        layers.append(Dropout(dropout))
    layers.append(nn.Linear(width, num_classes))
    return WithNewHead(model, nn.Sequential(*layers), num_classes)


class ResizeInput(nn.Module):
    """Bilinear resize of the input batch to `size` x `size` pixels (on the batch's device)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)


def resize_inputs(model: nn.Module, size: int) -> nn.Module:
    """Make ``model(x)`` resize ``x`` to ``size`` first. A forward pre-hook, so the parameter names
    (pretrained weights, checkpoints) are unchanged and copies (EMA) keep it; a direct call of
    ``forward_features`` expects inputs of that size already."""
    resize = ResizeInput(size)
    model.register_forward_pre_hook(lambda module, args: (resize(args[0]), *args[1:]))
    return model
