"""The conv layers of a model in the order the forward pass calls them, and names or positions resolved to them.

A layer is given by its module name ("features.conv1", "layer4.1.conv2") or by its position among
the conv layers, 1-based as the reports count them ("1" = the first conv layer, "4" = the fourth,
"-1" = the last). Only ``nn.Conv2d`` modules that the forward pass calls exactly once count: a
conv shared by two calls has no single activation map to show.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain.capture import eval_mode


@torch.no_grad()
def conv_layers(model: nn.Module, input_shape: tuple[int, int, int]) -> list[str]:
    """Names of the conv layers of ``model`` in forward order, for (C, H, W) inputs (one dry pass, eval mode)."""
    calls: list[str] = []
    handles = [module.register_forward_hook(lambda _m, _i, _o, name=name: calls.append(name) and None)
               for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    param = next(model.parameters(), None)
    try:
        with eval_mode(model):
            model(torch.zeros(1, *input_shape, device=param.device if param is not None else None))
    finally:
        for handle in handles:
            handle.remove()
    once = [name for name in dict.fromkeys(calls) if calls.count(name) == 1]
    if not once:
        raise ValueError(f"{type(model).__name__} has no conv layer called once per forward pass: "
                         "activations, filters and Grad-CAM need one")
    return once


def resolve_layer(name: str, layers: list[str]) -> str:
    """The conv layer meant by ``name`` (a module name or a 1-based position, -1 = last) among ``layers``.

    ValueError listing the conv layers, numbered, when it names none of them.
    """
    text = str(name).strip()
    if text in layers:
        return text
    try:
        position = int(text)
    except ValueError:
        position = None
    if position is not None and 1 <= abs(position) <= len(layers):
        return layers[position - 1] if position > 0 else layers[position]
    listing = ", ".join(f"{i} {layer}" for i, layer in enumerate(layers, 1))
    raise ValueError(f"unknown conv layer {name!r}; give one of this model's conv layers by name or position "
                     f"(1 = first, -1 = last): {listing}")


def default_layers(layers: list[str]) -> list[str]:
    """Report 001-b's choice: conv layers 1 and 4 (the first and the last when there are fewer than 4)."""
    return list(dict.fromkeys([layers[0], layers[3] if len(layers) >= 4 else layers[-1]]))


__all__ = ["conv_layers", "default_layers", "resolve_layer"]
