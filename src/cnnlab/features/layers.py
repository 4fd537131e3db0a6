"""The layers of a model whose outputs can be extracted as features, with their output shapes.

A layer is named by its module name in ``model.named_modules()`` ("features.conv1", "fc1",
"layer2.0") or by one of two names for the model's own interface:

* ``features``: ``model.forward_features(x)``, the vector fed to the head;
* ``pre_logits``: ``model.forward_head(forward_features(x), pre_logits=True)``, the input of the
  last layer (the 512 features of 000-d, the 256 of 004-f).

These two names win over a module of the same name (a SequentialClassifier's ``features``
module gives the same values as ``forward_features`` anyway). A module is extractable when the
forward pass (``forward_head(forward_features(x))``) calls it exactly once with a tensor result:
a module called twice (convnet002's shared ``relu``) has no single output to name.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
from torch import nn

FEATURES = "features"
PRE_LOGITS = "pre_logits"
INTERFACE_LAYERS = (FEATURES, PRE_LOGITS)

# Leaf modules listed by default: the ones whose outputs are worth probing. Activations, batch
# norm and dropout are left out of the default list (``include_all=True`` lists them) but any
# extractable module can be asked for by name; e.g. in eval mode a dropout after an activation
# outputs that activation, which is how convnet002's post-ReLU fc1 is reached ("drop1").
_PROBED_LEAVES = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                  nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd, nn.Flatten,
                  nn.Linear)


class UnknownLayerError(ValueError):
    """A layer name the model does not have (or whose output is not one tensor); the message lists the names."""


@dataclass(frozen=True)
class LayerInfo:
    """One extractable layer: its name, module type and output shape for one image (no batch axis)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    listed: bool  # in the default list (conv/pool/flatten/linear/blocks and the interface layers)

    @property
    def dim(self) -> int:
        """Number of values per image once flattened: the D of the N x D feature matrix."""
        return prod(self.shape)


def _is_probed(module: nn.Module) -> bool:
    has_children = next(module.children(), None) is not None
    return has_children or isinstance(module, _PROBED_LEAVES)


@dataclass
class _Calls:
    """Modules a pass called: first-call order, call counts and output shapes (None: not a tensor)."""

    order: list[str]
    counts: dict[str, int]
    shapes: dict[str, tuple[int, ...] | None]


def _record(modules: dict[str, nn.Module], run) -> tuple[_Calls, torch.Tensor]:
    calls = _Calls([], {}, {})

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            calls.counts[name] = calls.counts.get(name, 0) + 1
            if calls.counts[name] == 1:
                calls.order.append(name)
            calls.shapes[name] = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else None
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in modules.items()]
    try:
        return calls, run()
    finally:
        for handle in handles:
            handle.remove()


def candidate_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Named submodules that may be layers (the root and the interface names excluded)."""
    return {name: module for name, module in model.named_modules() if name and name not in INTERFACE_LAYERS}


@torch.no_grad()
def model_layers(model: nn.Module, input_shape: tuple[int, ...], include_all: bool = False) -> list[LayerInfo]:
    """Extractable layers of ``model`` for (C, H, W) inputs, in the order the forward pass reaches them.

    Three passes over one zero image in eval mode (the model's mode is restored), each with a
    hook on every module: forward_features, forward_head(pre_logits=True), forward_head.
    ``include_all`` adds the extractable modules left out of the default list.
    """
    modules = candidate_modules(model)
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, *input_shape, device=device_of(model))
        body, feats = _record(modules, lambda: model.forward_features(x))
        before_logits, pre = _record(modules, lambda: model.forward_head(feats, pre_logits=True))
        head, _ = _record(modules, lambda: model.forward_head(feats))
    except RuntimeError as err:
        raise ValueError(f"input shape {tuple(input_shape)} does not fit this model "
                         f"({str(err).splitlines()[0]}); check the run's data.image_size") from err
    finally:
        model.train(was_training)

    def info(name: str, calls: _Calls) -> LayerInfo | None:
        # Called by both parts (a shared module) or twice in one: no single output to name.
        once = body.counts.get(name, 0) + head.counts.get(name, 0) == 1
        if not once or calls.shapes[name] is None:
            return None
        listed = _is_probed(modules[name])
        return LayerInfo(name, type(modules[name]).__name__, calls.shapes[name], listed) \
            if listed or include_all else None

    layers = [layer for name in body.order if (layer := info(name, body)) is not None]
    layers.append(LayerInfo(FEATURES, "forward_features", tuple(feats.shape[1:]), True))
    head_layers = [layer for name in head.order if (layer := info(name, head)) is not None]
    # pre_logits goes after the last head layer its own pass reaches (before the classifier).
    at = max((i + 1 for i, layer in enumerate(head_layers) if layer.name in before_logits.counts), default=0)
    head_layers.insert(at, LayerInfo(PRE_LOGITS, "forward_head(pre_logits=True)", tuple(pre.shape[1:]), True))
    return layers + head_layers


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def find_layer(layers: list[LayerInfo], name: str) -> LayerInfo:
    """The layer called ``name``; UnknownLayerError listing the default names otherwise."""
    for layer in layers:
        if layer.name == name:
            return layer
    listed = ", ".join(layer.name for layer in layers if layer.listed)
    raise UnknownLayerError(f"unknown layer {name!r}; this model's layers are: {listed} "
                            f"(`cnnlab layers RUN` shows their shapes, `--all` every extractable module)")


def format_layers(layers: list[LayerInfo]) -> str:
    """Plain-text table: layer name, module type, output shape, flattened size D."""
    rows = [[layer.name, layer.kind, " x ".join(str(d) for d in layer.shape), f"{layer.dim:,}"] for layer in layers]
    header = ["layer", "type", "output shape", "D"]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    def line(r: list[str]) -> str:  # names left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


__all__ = ["FEATURES", "INTERFACE_LAYERS", "LayerInfo", "PRE_LOGITS", "UnknownLayerError", "candidate_modules",
           "device_of", "find_layer", "format_layers", "model_layers"]
