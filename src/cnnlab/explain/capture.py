"""Outputs of chosen layers during a forward pass, and the model's class scores.

A hook keeps each chosen layer's output and hands the rest of the network a copy, so an in-place
activation after the layer (AlexNet's ReLU(inplace=True)) cannot overwrite what was kept, and
gradients with respect to the kept tensor still flow through the copy.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import nn


class _Enough(Exception):
    """Raised by the last hook when the rest of the forward pass is not needed."""


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (batch-norm running statistics, no dropout) for the block; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def capture_outputs(model: nn.Module, x: torch.Tensor, layers: list[str],
                    stop_early: bool = False) -> tuple[Optional[torch.Tensor], dict[str, torch.Tensor]]:
    """(logits, {layer: output}) of one forward pass of ``x`` (the model's mode is left as it is).

    With ``stop_early`` the pass stops once every layer has run and logits is None (the filters'
    gradient ascent needs no head).
    """
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        raise ValueError(f"the model has no module {missing[0]!r}")
    kept: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            kept[name] = output
            if stop_early and len(kept) == len(set(layers)):
                raise _Enough
            return output.clone()
        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in dict.fromkeys(layers)]
    try:
        logits = model(x)
    except _Enough:
        logits = None
    finally:
        for handle in handles:
            handle.remove()
    return logits, kept


def class_scores(logits: torch.Tensor) -> torch.Tensor:
    """Per-class scores N x K to take gradients of: the logits, or for a one-logit binary head
    [-z, z] (class 0's evidence is the negated logit), so class indices work the same for both."""
    return torch.cat([-logits, logits], dim=1) if logits.shape[1] == 1 else logits


__all__ = ["capture_outputs", "class_scores", "eval_mode"]
