"""Freezing parts of a model for transfer learning (000-c, 001-c, 003-e)."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def freeze(model: nn.Module, keep_trainable: Sequence[str] = ()) -> int:
    """Set ``requires_grad=False`` on every parameter except those whose name starts
    with one of ``keep_trainable`` (module prefixes such as ``"classifier"`` or
    ``"features.24"``). Returns the number of parameters left trainable.

    Unknown prefixes raise ``ValueError`` (a typo would silently freeze everything).
    Batch-norm moving statistics still update in ``train()`` mode; put frozen BN
    layers in eval mode yourself if you want them fixed, as Keras does.
    """
    names = [n for n, _ in model.named_parameters()]
    for prefix in keep_trainable:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            roots = sorted({n.split(".")[0] for n in names})
            raise ValueError(f"no parameter under {prefix!r}; top-level modules with parameters: {', '.join(roots)}")
    trainable = 0
    for name, param in model.named_parameters():
        keep = any(name == p or name.startswith(p + ".") for p in keep_trainable)
        param.requires_grad_(keep)
        trainable += param.numel() if keep else 0
    return trainable


def unfreeze(model: nn.Module, prefixes: Sequence[str] | None = None) -> int:
    """Make parameters trainable again (all, or those under ``prefixes``); returns the
    number of trainable parameters afterwards."""
    for name, param in model.named_parameters():
        if prefixes is None or any(name == p or name.startswith(p + ".") for p in prefixes):
            param.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
