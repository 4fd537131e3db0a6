"""Keras-style model summary: layers, output shapes, parameters, connections, MACs."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .params import count_params

# Tensor ops done in a module's forward between layers that Keras would show as layers.
_MERGE_OPS = {
    torch.cat: "Concatenate", torch.concat: "Concatenate", torch.add: "Add",
    torch.Tensor.__add__: "Add", torch.Tensor.__radd__: "Add", torch.Tensor.add: "Add",
    torch.flatten: "Flatten", torch.Tensor.flatten: "Flatten",
}


@dataclass
class LayerRow:
    """One line of the summary table."""

    name: str
    type: str
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int  # Keras counting: weights + batch-norm moving stats
    inputs: list[str] = field(default_factory=list)


@dataclass
class ModelSummary:
    """Everything :func:`summary` prints, as data."""

    rows: list[LayerRow]
    counts: dict[str, int]
    macs: int  # multiply-accumulates per image (conv + linear layers)
    input_shape: tuple[int, int, int]

    @property
    def branching(self) -> bool:
        """True when some layer does not simply take the previous layer's output."""
        prev = "input"
        for row in self.rows:
            if row.inputs != [prev]:
                return True
            prev = row.name
        return False


def _leaf_params(module: nn.Module) -> int:
    own = sum(p.numel() for p in module.parameters(recurse=False))
    stats = sum(b.numel() for n, b in module.named_buffers(recurse=False) if n in ("running_mean", "running_var"))
    return own + stats


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    per_image = out[0].numel() if out.dim() > 0 else 0
    if isinstance(module, nn.modules.conv._ConvNd):
        k = 1
        for s in module.kernel_size:
            k *= s
        return per_image * (module.in_channels // module.groups) * k
    if isinstance(module, nn.Linear):
        return per_image * module.in_features
    return 0


class _Tracer(TorchFunctionMode):
    """Records merge ops (cat/add/flatten) made outside leaf layers as table rows."""

    def __init__(self, producer: dict[int, str], rows: list[LayerRow]):
        super().__init__()
        self.producer, self.rows, self.depth = producer, rows, 0
        self.counter: dict[str, int] = {}
        self.keep: list[torch.Tensor] = []  # outputs stay alive so id() values stay unique

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kind = _MERGE_OPS.get(func)
        if kind and self.depth == 0 and isinstance(out, torch.Tensor):
            flat = list(args[0]) if isinstance(args[0], (list, tuple)) else list(args)
            inputs = [self.producer.get(id(t), "?") for t in flat if isinstance(t, torch.Tensor)]
            self.counter[kind] = self.counter.get(kind, 0) + 1
            name = f"{kind.lower()}_{self.counter[kind]}"
            self.rows.append(LayerRow(name, kind, tuple(out.shape[1:]), 0, inputs))
            self.producer[id(out)] = name
            self.keep.append(out)
        return out


@torch.no_grad()
def summarize(model: nn.Module, input_size: int | tuple[int, int] = 32, in_chans: int = 3) -> ModelSummary:
    """Run one dry forward (eval mode, batch 1) and collect the summary as data."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    x = torch.zeros(1, in_chans, h, w, device=device)
    rows: list[LayerRow] = []
    producer: dict[int, str] = {id(x): "input"}
    keep: list[torch.Tensor] = [x]  # keep outputs alive so their id() stays unique
    macs = 0
    tracer = _Tracer(producer, rows)
    handles = []

    def pre_hook(module: nn.Module, args: tuple) -> None:
        tracer.depth += 1

    def make_hook(name: str):
        def hook(module: nn.Module, args: tuple, out) -> None:
            nonlocal macs
            tracer.depth -= 1
            if not isinstance(out, torch.Tensor) or isinstance(module, nn.Identity):
                return  # placeholders (disabled dropout, empty head) are no layers
            inputs = [producer.get(id(a), "?") for a in args if isinstance(a, torch.Tensor)]
            macs += _macs(module, out)
            rows.append(LayerRow(name, type(module).__name__, tuple(out.shape[1:]), _leaf_params(module), inputs))
            producer[id(out)] = name
            keep.append(out)
        return hook

    for name, module in model.named_modules():
        if next(module.children(), None) is None and name:  # leaf layers only
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(make_hook(name)))
    was_training = model.training
    model.eval()
    try:
        with tracer:
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return ModelSummary(rows, count_params(model), macs, (in_chans, h, w))


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def summary(model: nn.Module, input_size: int | tuple[int, int] = 32, in_chans: int = 3) -> str:
    """Keras-style table: layer, type, output shape (C, H, W), params (Keras counting),
    and "connected to" for branching networks; then Total / Trainable / Non-trainable
    params as Keras counts them, the PyTorch count and multiply-accumulates per image."""
    info = summarize(model, input_size, in_chans)
    show_inputs = info.branching
    header = ["Layer", "Type", "Output shape", "Param #"] + (["Connected to"] if show_inputs else [])
    table = [header] + [
        [r.name, r.type, _fmt_shape(r.output_shape), f"{r.params:,}"] + ([", ".join(r.inputs)] if show_inputs else [])
        for r in info.rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    rule = "=" * (sum(widths) + 2 * (len(widths) - 1))

    def fmt(line: list[str]) -> str:
        cells = [c.rjust(wd) if i == 3 else c.ljust(wd) for i, (c, wd) in enumerate(zip(line, widths))]
        return "  ".join(cells).rstrip()

    c = info.counts
    lines = [f"Model: {type(model).__name__}   input {_fmt_shape(info.input_shape)}", rule, fmt(header), rule]
    lines += [fmt(line) for line in table[1:]]
    lines += [
        rule,
        f"Total params: {c['total']:,}",
        f"Trainable params: {c['trainable']:,}",
        f"Non-trainable params: {c['non_trainable']:,}",
        f"PyTorch parameters (model.parameters()): {c['torch_total']:,}",
        f"MACs per image: {info.macs:,} ({info.macs / 1e6:,.1f} M)",
        rule,
    ]
    return "\n".join(lines)


def count_macs(model: nn.Module, input_size: int | tuple[int, int] = 32, in_chans: int = 3) -> int:
    """Multiply-accumulates of conv and linear layers for one image."""
    return summarize(model, input_size, in_chans).macs
