"""Models declared as data (YAML / dicts): a list of layers and blocks, shapes inferred.

Each entry is one of
  * a bare name: ``flatten``, ``bn``, ``relu`` (any activation name), ``dropout``;
  * ``{type: conv, filters: 32, kernel: 3}``;
  * a one-key mapping ``{conv: {filters: 32}}`` or ``{conv: 32}`` (the scalar fills the
    layer's main argument: conv/dense/... filters or units, dropout p, act name, pool size);
  * ``{repeat: 2, layers: [...]}`` or a ``repeat: N`` key inside any layer.
Batch norm uses Keras defaults (eps 1e-3, momentum 0.99) and conv/dense keep a bias,
as the reports' Keras layers do. The last entry must be a ``dense`` layer (the classifier);
its ``units`` default to ``num_classes``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import torch
from torch import nn

from .base import SequentialClassifier
from .blocks.activation import ACTIVATIONS, make_activation
from .blocks.conv import ConvBNAct, resolve_padding
from .blocks.dense import DenseBlock, Transition
from .blocks.dropout import Dropout
from .blocks.inception import InceptionBlock
from .blocks.inverted_residual import InvertedResidual
from .blocks.keras import KERAS_BN_EPS, KERAS_BN_MOMENTUM
from .blocks.residual import BasicBlock, ConcatResidual
from .blocks.vgg import VGGStage
from .registry import register_model

Shape = tuple[int, ...]


class DeclarationError(ValueError):
    """A declared model that cannot be built; the message names the layer index."""


def _need_map(shape: Shape, what: str) -> int:
    if len(shape) != 3:
        raise ValueError(f"{what} needs a (C, H, W) feature map, got shape {shape}")
    return shape[0]


def _conv(shape: Shape, filters: int, kernel: int = 3, stride: int = 1, padding: str | int = "same",
          act: str | None = None, bias: bool = True) -> nn.Module:
    conv = nn.Conv2d(_need_map(shape, "conv"), filters, kernel, stride, resolve_padding(padding, kernel, stride), bias=bias)
    return conv if act in (None, "linear", "identity") else nn.Sequential(OrderedDict([("conv", conv), ("act", make_activation(act))]))


def _dense(shape: Shape, units: int, act: str | None = None) -> nn.Module:
    if len(shape) != 1:
        raise ValueError(f"dense needs a flat input (add a flatten or global pool before it), got shape {shape}")
    lin = nn.Linear(shape[0], units)
    return lin if act in (None, "linear", "identity") else nn.Sequential(OrderedDict([("fc", lin), ("act", make_activation(act))]))


def _bn(shape: Shape, eps: float = KERAS_BN_EPS, momentum: float = KERAS_BN_MOMENTUM) -> nn.Module:
    if len(shape) == 3:
        return nn.BatchNorm2d(shape[0], eps=eps, momentum=momentum)
    if len(shape) == 1:
        return nn.BatchNorm1d(shape[0], eps=eps, momentum=momentum)
    raise ValueError(f"bn needs a (C, H, W) or flat input, got shape {shape}")


def _pool(shape: Shape, size: int = 2, kind: str = "max", stride: int | None = None, padding: int = 0) -> nn.Module:
    _need_map(shape, "pool")
    if kind == "max":
        return nn.MaxPool2d(size, stride, padding)
    if kind == "avg":
        return nn.AvgPool2d(size, stride, padding)
    if kind in ("global_avg", "global_max"):
        pool = nn.AdaptiveAvgPool2d(1) if kind == "global_avg" else nn.AdaptiveMaxPool2d(1)
        return nn.Sequential(pool, nn.Flatten())
    raise ValueError(f"pool kind must be max, avg, global_avg or global_max, got {kind!r}")


def _act(shape: Shape, name: str = "relu") -> nn.Module:
    return make_activation(name)


def _dropout(shape: Shape, p: float = 0.5) -> nn.Module:
    if not 0 <= p < 1:
        raise ValueError(f"dropout p must be in [0, 1), got {p}")
    return Dropout(p)


def _flatten(shape: Shape) -> nn.Module:
    return nn.Flatten()


def _transition(shape: Shape, filters: int | None = None, compression: float = 0.5, act: str = "relu") -> nn.Module:
    c = _need_map(shape, "transition")
    return Transition(c, filters if filters is not None else int(c * compression), act,
                      KERAS_BN_EPS, KERAS_BN_MOMENTUM)


# type -> (builder(shape, **args), name of the argument a scalar value fills)
_BUILDERS: dict[str, tuple[Callable[..., nn.Module], str | None]] = {
    "conv": (_conv, "filters"),
    "dense": (_dense, "units"),
    "bn": (_bn, None),
    "act": (_act, "name"),
    "pool": (_pool, "size"),
    "dropout": (_dropout, "p"),
    "flatten": (_flatten, None),
    "conv_bn_act": (lambda s, filters, **kw: ConvBNAct(_need_map(s, "conv_bn_act"), filters, **kw), "filters"),
    "residual": (lambda s, filters=None, **kw: BasicBlock(_need_map(s, "residual"), filters or s[0], **kw), "filters"),
    "concat_residual": (lambda s, **kw: ConcatResidual(_need_map(s, "concat_residual"), **kw), "width"),
    "inception": (lambda s, **kw: InceptionBlock(_need_map(s, "inception"), **kw), "width"),
    "dense_block": (lambda s, **kw: DenseBlock(_need_map(s, "dense_block"), bn_eps=KERAS_BN_EPS,
                                              bn_momentum=KERAS_BN_MOMENTUM, **kw), "num_layers"),
    "transition": (_transition, "filters"),
    "inverted_residual": (lambda s, filters, **kw: InvertedResidual(_need_map(s, "inverted_residual"), filters, **kw),
                          "filters"),
    "vgg_stage": (lambda s, filters, **kw: VGGStage(_need_map(s, "vgg_stage"), filters, **kw), "filters"),
}
LAYER_TYPES = tuple(sorted(_BUILDERS))


def _normalise(entry: Any, index: int) -> tuple[str, dict[str, Any]]:
    """One declared entry -> (type, arguments)."""
    if isinstance(entry, str):
        if entry in _BUILDERS:
            return entry, {}
        if entry in ACTIVATIONS:
            return "act", {"name": entry}
        _check_kind(entry, index)
    if not isinstance(entry, dict) or not entry:
        raise DeclarationError(f"layer {index}: expected a name or a mapping, got {entry!r}")
    entry = dict(entry)
    if "type" in entry:
        kind = entry.pop("type")
        args = entry
    else:
        keys = [k for k in entry if k != "repeat"]
        if len(keys) != 1:
            raise DeclarationError(f"layer {index}: give the layer as {{type: ..., ...}} or one key like "
                                   f"{{conv: {{filters: 32}}}}; got keys {sorted(entry)}")
        kind = keys[0]
        _check_kind(kind, index)
        value = entry[kind]
        if isinstance(value, dict):
            args = dict(value)
        elif value is None:
            args = {}
        else:
            main = _BUILDERS.get(kind, (None, None))[1] if kind in _BUILDERS else None
            if kind in ACTIVATIONS:
                raise DeclarationError(f"layer {index}: activation {kind!r} takes no value")
            if main is None:
                raise DeclarationError(f"layer {index}: {kind!r} takes no positional value, got {value!r}")
            args = {main: value}
        if "repeat" in entry:
            args["repeat"] = entry["repeat"]
    _check_kind(kind, index)
    if kind in ACTIVATIONS and kind not in _BUILDERS:
        return "act", {"name": kind, **args}
    return kind, args


def _check_kind(kind: Any, index: int) -> None:
    if kind in _BUILDERS or kind in ACTIVATIONS:
        return
    import difflib

    close = difflib.get_close_matches(str(kind), list(_BUILDERS) + list(ACTIVATIONS), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise DeclarationError(f"layer {index}: unknown layer type {kind!r}{hint}; use one of {', '.join(LAYER_TYPES)}")


def _expand(layers: list[Any]) -> list[tuple[str, dict[str, Any], str]]:
    """Flatten ``repeat`` groups; each item keeps its declared position for messages."""
    out: list[tuple[str, dict[str, Any], str]] = []
    for i, entry in enumerate(layers):
        if isinstance(entry, dict) and "layers" in entry:
            times = entry.get("repeat", 1)
            if not isinstance(times, int) or times < 1 or set(entry) - {"layers", "repeat"}:
                raise DeclarationError(f"layer {i}: a group is {{repeat: N, layers: [...]}} with N >= 1, got {entry!r}")
            for r in range(times):
                out += [(k, a, f"{i}.{r}.{pos}") for k, a, pos in _expand(entry["layers"])]
            continue
        kind, args = _normalise(entry, i)
        times = args.pop("repeat", 1)
        if not isinstance(times, int) or times < 1:
            raise DeclarationError(f"layer {i}: repeat must be an int >= 1, got {times!r}")
        out += [(kind, dict(args), str(i) if times == 1 else f"{i}.{r}") for r in range(times)]
    return out


@torch.no_grad()
def build_declared(layers: list[Any], num_classes: int = 10, in_chans: int = 3,
                   input_size: int = 32) -> SequentialClassifier:
    """Build a :class:`SequentialClassifier` from declared ``layers`` (see module doc).

    Shapes are inferred by a dry forward after each layer; a declaration that does not
    fit raises :class:`DeclarationError` naming the layer index, its type and the shape.
    """
    if not isinstance(layers, (list, tuple)) or not layers:
        raise DeclarationError("layers must be a non-empty list of layer declarations")
    items = _expand(list(layers))
    kind, args, pos = items[-1]
    if kind != "dense":
        raise DeclarationError(f"layer {pos}: the last layer must be `dense` (the classifier), got {kind!r}")
    units = args.setdefault("units", num_classes)
    if units != num_classes:
        raise DeclarationError(f"layer {pos}: the last dense has {units} units but num_classes is {num_classes}")
    if args.get("act") not in (None, "linear", "identity"):
        raise DeclarationError(f"layer {pos}: the classifier returns raw logits; drop its act {args['act']!r}")
    x = torch.zeros(1, in_chans, input_size, input_size)
    built: list[tuple[str, nn.Module]] = []
    for n, (kind, args, pos) in enumerate(items):
        shape = tuple(x.shape[1:])
        builder = _BUILDERS[kind][0]
        try:
            module = builder(shape, **args)
        except TypeError as err:
            raise DeclarationError(f"layer {pos} ({kind}): bad arguments {args}: {err}") from err
        except ValueError as err:
            raise DeclarationError(f"layer {pos} ({kind}): input shape {shape}: {err}") from err
        module.eval()
        try:
            x = module(x)
        except RuntimeError as err:
            raise DeclarationError(f"layer {pos} ({kind}): does not fit input shape {shape}: "
                                   f"{str(err).splitlines()[0]}") from err
        built.append((f"{kind}{n}", module))
    split = max((i for i, (_, m) in enumerate(built[:-1]) if _is_flattening(m)), default=-1)
    if split < 0:
        raise DeclarationError("the layers never flatten the feature map: add `flatten` or a global pool before dense")
    features = nn.Sequential(OrderedDict(built[: split + 1]))
    pre_head = nn.Sequential(OrderedDict(built[split + 1 : -1]))
    classifier = built[-1][1]
    return SequentialClassifier(features, pre_head, classifier, num_classes).train()


def _is_flattening(module: nn.Module) -> bool:
    return isinstance(module, nn.Flatten) or (isinstance(module, nn.Sequential) and isinstance(module[-1], nn.Flatten))


def layers_from_yaml(text: str) -> list[Any]:
    """Parse a YAML list of layers (or a mapping with a ``layers`` key)."""
    import yaml

    data = yaml.safe_load(text)
    if isinstance(data, dict) and "layers" in data:
        data = data["layers"]
    if not isinstance(data, list):
        raise DeclarationError("the YAML must be a list of layers or a mapping with a `layers:` list")
    return data


@register_model(input_size=32, description="a model declared as a list of layers/blocks (layers=[...])")
def sequential(num_classes: int = 10, in_chans: int = 3, layers: list[Any] | None = None,
               input_size: int = 32) -> SequentialClassifier:
    """Model from an experiment file's ``layers:`` list; see :mod:`cnnlab.models.declared`."""
    if layers is None:
        raise DeclarationError("model 'sequential' needs layers=[...] (the list of layers and blocks)")
    return build_declared(layers, num_classes, in_chans, input_size)
