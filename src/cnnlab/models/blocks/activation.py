"""Activation choice by name."""
from __future__ import annotations

from torch import nn

ACTIVATIONS = ("relu", "relu6", "elu", "gelu", "silu", "sigmoid", "tanh", "identity")


def make_activation(name: str | None) -> nn.Module:
    """Return a fresh activation module for ``name`` (``None`` or "identity" -> ``nn.Identity``)."""
    key = "identity" if name in (None, "none", "linear") else str(name).lower()
    if key == "relu":
        return nn.ReLU(inplace=False)
    if key == "relu6":
        return nn.ReLU6()
    if key == "elu":   # Keras' "elu" (alpha 1.0), used by report 003-a's network
        return nn.ELU(alpha=1.0)
    if key == "gelu":
        return nn.GELU()
    if key in ("silu", "swish"):
        return nn.SiLU()
    if key == "sigmoid":
        return nn.Sigmoid()
    if key == "tanh":
        return nn.Tanh()
    if key == "identity":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
