"""Keras-style L2 penalty on chosen layers' kernels, added to the loss."""

from __future__ import annotations

import torch
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def l2_kernels(model: nn.Module, layers: list[str]) -> list[torch.nn.Parameter]:
    """Kernels (weights, not biases) selected by kind ("conv", "dense", "all") or module-name prefix."""
    chosen: list[torch.nn.Parameter] = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.nn.Parameter) or not weight.requires_grad:
            continue
        is_conv = isinstance(module, _CONV)
        is_dense = isinstance(module, nn.Linear)
        if not (is_conv or is_dense):
            continue  # batch-norm scales and embeddings are not kernels
        for sel in layers:
            if (sel == "all" or (sel == "conv" and is_conv) or (sel == "dense" and is_dense)
                    or (sel not in ("all", "conv", "dense") and (name == sel or name.startswith(sel + ".")))):
                chosen.append(weight)
                break
    return chosen


def matching_kernels(kernels: list[torch.nn.Parameter], model: nn.Module, copy: nn.Module) -> list[torch.nn.Parameter]:
    """The parameters of ``copy`` (a module with ``model``'s names, e.g. its EMA) that sit where
    ``kernels`` sit in ``model``: the L2 penalty of the weights that are evaluated."""
    names = {id(param): name for name, param in model.named_parameters()}
    params = dict(copy.named_parameters())
    return [params[names[id(kernel)]] for kernel in kernels]


def check_l2_selectors(model: nn.Module, layers: list[str]) -> None:
    """A selector that matches nothing is a typo: say which names exist."""
    names = [n for n, m in model.named_modules() if isinstance(m, (*_CONV, nn.Linear))]
    for sel in layers:
        if sel in ("all", "conv", "dense"):
            continue
        if not any(n == sel or n.startswith(sel + ".") for n in names):
            raise ValueError(
                f"regularization.l2_layers: {sel!r} matches no conv/dense layer; "
                f"use conv, dense, all or one of: {', '.join(names)}"
            )


def l2_penalty(kernels: list[torch.nn.Parameter], l2: float) -> torch.Tensor | None:
    """l2 * sum(w**2), as keras.regularizers.l2(l2) (no factor 1/2)."""
    if l2 <= 0 or not kernels:
        return None
    return l2 * sum(w.float().pow(2).sum() for w in kernels)
