"""Conv arithmetic (report 001-t): output size, receptive field, jump and start of every conv and
pooling layer of a model, from the layer's numbers alone.

Per spatial axis, a layer with kernel k, stride s, padding p (p_l before, p_r after) and
dilation d (effective kernel k_e = d(k - 1) + 1) maps an input of w pixels to

    w_out  = floor((w + p_l + p_r - k_e) / s) + 1     the report's (w - k + 2p)/s + 1
    jump   = jump_in * s                               input pixels between adjacent outputs
    rf     = rf_in + (k_e - 1) * jump_in               input pixels one output sees
    start  = start_in + ((k_e - 1) / 2 - p_l) * jump_in

where ``start`` is the centre of the first output's receptive field in input pixels (pixel i
spans [i, i + 1), so the input itself has start 0.5, jump 1, rf 1). Pooling in ceil mode rounds
up, as PyTorch does (a last window starting in the right padding is dropped).

Which layer feeds which is read from one dry forward pass: every tensor carries the geometry of
the layer that made it, element-wise ops and concatenations pass it on (the larger receptive
field wins when two branches meet), so inception branches, residual shortcuts and dense blocks
are followed as the network wires them rather than in module order. The sizes are still computed
by the formula; each row also keeps the size the forward pass really produced (``actual``), and
``check_geometry`` compares them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

INPUT_START = 0.5  # centre of the first input pixel, in pixels


def conv_output_size(w: int, k: int, s: int = 1, p: int = 0, d: int = 1, p_right: Optional[int] = None,
                     ceil_mode: bool = False) -> int:
    """Output size along one axis: floor((w + p + p_right - d(k-1) - 1) / s) + 1.

    ``p`` pads before, ``p_right`` after (default: the same as ``p``, the report's 2p). With
    ``ceil_mode`` (pooling) the division rounds up, but a window that would start inside the right
    padding is dropped. ValueError when the window does not fit the padded input.
    """
    p_right = p if p_right is None else p_right
    for name, value, low in (("w", w, 1), ("k", k, 1), ("s", s, 1), ("p", p, 0), ("d", d, 1), ("p_right", p_right, 0)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} = {value!r}: must be an int >= {low}")
    span = w + p + p_right - d * (k - 1) - 1
    if span < 0:
        raise ValueError(f"a {k}x{k} window (dilation {d}) does not fit {w} pixels padded by {p}+{p_right}; "
                         "pad more or use a smaller kernel")
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= w + p:
        out -= 1
    return out


@dataclass(frozen=True)
class Axis:
    """Geometry of one spatial axis of a feature map: size (pixels of the map), jump, rf, start (input pixels)."""

    size: int
    jump: float
    rf: float
    start: float


Geometry = tuple[Axis, Axis]  # (height axis, width axis)


def input_geometry(height: int, width: int) -> Geometry:
    return Axis(height, 1, 1, INPUT_START), Axis(width, 1, 1, INPUT_START)


def _through(axis: Axis, k: int, s: int, p_l: int, p_r: int, d: int = 1, ceil_mode: bool = False) -> Axis:
    k_e = d * (k - 1) + 1
    size = conv_output_size(axis.size, k, s, p_l, d, p_right=p_r, ceil_mode=ceil_mode)
    return Axis(size, axis.jump * s, axis.rf + (k_e - 1) * axis.jump, axis.start + ((k_e - 1) / 2 - p_l) * axis.jump)


@dataclass
class LayerGeometry:
    """One conv / pooling / padding call of the forward pass."""

    name: str                 # module name ("features.0"), "<module>:<function>" for functional calls
    kind: str                 # conv, max_pool, avg_pool, adaptive_avg_pool, adaptive_max_pool, pad, subsample
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]  # before, per axis (after may differ: see padding_after)
    padding_after: tuple[int, int]
    dilation: tuple[int, int]
    out: Optional[Geometry]   # None: the input's geometry was unknown (see Trace.notes)
    actual: tuple[int, int]   # the output size the forward pass produced
    approximate: bool = False  # adaptive pooling with uneven windows: rf/start/jump are approximate

    @property
    def size(self) -> Optional[tuple[int, int]]:
        return None if self.out is None else (self.out[0].size, self.out[1].size)


@dataclass
class Trace:
    """Every conv/pool layer of one forward pass, in call order, plus what could not be followed."""

    input_size: tuple[int, int]
    layers: list[LayerGeometry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_LAYER_MODULES = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                  nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
                  nn.modules.padding._ReflectionPadNd, nn.modules.padding._ReplicationPadNd,
                  nn.modules.padding._ConstantPadNd, nn.ZeroPad2d, nn.CircularPad2d)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1])) if value else (0, 0)
    return int(value), int(value)


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _spatial(t: Any) -> Optional[tuple[int, int]]:
    return (int(t.shape[-2]), int(t.shape[-1])) if isinstance(t, torch.Tensor) and t.dim() >= 3 else None


class _Tracer(TorchFunctionMode):
    """Carries a Geometry along with each tensor of the forward pass (keyed by id; the tensors are
    held until the trace ends so no id is reused)."""

    def __init__(self, trace: Trace, names: list[tuple[str, nn.Module]]):
        super().__init__()
        self.trace, self.names = trace, names
        self.geometry: dict[int, tuple[torch.Tensor, Geometry]] = {}

    def tag(self, t: torch.Tensor, g: Geometry) -> None:
        self.geometry[id(t)] = (t, g)

    def geometry_of(self, t: Any) -> Optional[Geometry]:
        entry = self.geometry.get(id(t)) if isinstance(t, torch.Tensor) else None
        return entry[1] if entry is not None and entry[0] is t else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        first = args[0] if args else kwargs.get("input")
        layer = self._layer(name, first, args, kwargs, result) if isinstance(first, torch.Tensor) else None
        if layer is not None:
            self.trace.layers.append(layer)
            for out in tree_flatten(result)[0][:1]:  # the values (max_pool2d_with_indices: not the indices)
                if layer.out is not None and layer.size == _spatial(out):
                    self.tag(out, layer.out)
        else:
            self._pass_on(args, kwargs, result)
        return result

    def _pass_on(self, args, kwargs, result) -> None:
        """Element-wise ops, concatenation, activations, batch norm: the output keeps the geometry
        of an input of the same spatial size (the one with the largest receptive field)."""
        inputs = [g for t in tree_flatten((args, kwargs))[0] if (g := self.geometry_of(t)) is not None]
        if not inputs:
            return
        for out in tree_flatten(result)[0]:
            size = _spatial(out)
            if size is None or self.geometry_of(out) is not None:
                continue
            same = [g for g in inputs if (g[0].size, g[1].size) == size]
            if same:
                self.tag(out, max(same, key=lambda g: g[0].rf * g[1].rf))

    def _name(self, function: str) -> str:
        """The module making the call: its own name for a conv / pool / pad module, else
        "<module>:<function>" (a functional call inside a block's forward)."""
        name, module = self.names[-1] if self.names else ("", None)
        if isinstance(module, _LAYER_MODULES):
            return name
        return f"{name or '(model)'}:{function}"

    def _layer(self, name: str, x: torch.Tensor, args, kwargs, result) -> Optional[LayerGeometry]:
        g = self.geometry_of(x)
        ones = (1, 1)
        if name == "conv2d":
            weight = _arg(args, kwargs, 1, "weight", None)
            k = (int(weight.shape[-2]), int(weight.shape[-1]))
            s, d = _pair(_arg(args, kwargs, 3, "stride", 1)), _pair(_arg(args, kwargs, 5, "dilation", 1))
            padding = _arg(args, kwargs, 4, "padding", 0)
            if padding == "valid":
                p_l = p_r = (0, 0)
            elif padding == "same":  # PyTorch puts the odd pixel after
                total = tuple(d[i] * (k[i] - 1) for i in range(2))
                p_l = (total[0] // 2, total[1] // 2)
                p_r = (total[0] - p_l[0], total[1] - p_l[1])
            else:
                p_l = p_r = _pair(padding)
            return self._row("conv", g, k, s, p_l, p_r, d, False, result)
        if name in ("max_pool2d", "max_pool2d_with_indices"):
            k = _pair(_arg(args, kwargs, 1, "kernel_size", 1))
            stride = _arg(args, kwargs, 2, "stride", None)
            s = k if stride is None or stride == [] or stride == () else _pair(stride)
            p = _pair(_arg(args, kwargs, 3, "padding", 0))
            d = _pair(_arg(args, kwargs, 4, "dilation", 1))
            return self._row("max_pool", g, k, s, p, p, d, bool(_arg(args, kwargs, 5, "ceil_mode", False)), result)
        if name == "avg_pool2d":
            k = _pair(_arg(args, kwargs, 1, "kernel_size", 1))
            stride = _arg(args, kwargs, 2, "stride", None)
            s = k if stride is None or stride == [] or stride == () else _pair(stride)
            p = _pair(_arg(args, kwargs, 3, "padding", 0))
            return self._row("avg_pool", g, k, s, p, p, ones, bool(_arg(args, kwargs, 4, "ceil_mode", False)), result)
        if name.startswith(("adaptive_avg_pool2d", "adaptive_max_pool2d")):
            return self._adaptive("adaptive_avg_pool" if "avg" in name else "adaptive_max_pool", g,
                                  _arg(args, kwargs, 1, "output_size", 1), x, result)
        if name == "pad" and x.dim() == 4:
            pad = list(_arg(args, kwargs, 1, "pad", ())) + [0, 0, 0, 0]
            p_l, p_r = (int(pad[2]), int(pad[0])), (int(pad[3]), int(pad[1]))  # F.pad lists the last axis first
            if p_l == p_r == (0, 0):
                return None  # channel padding only (the ResNet "option A" shortcut): the map is unchanged
            return self._row("pad", g, ones, ones, p_l, p_r, ones, False, result)
        if name == "__getitem__" and x.dim() == 4:
            return self._subsample(g, args[1] if len(args) > 1 else None, result)
        return None

    def _subsample(self, g, index, result) -> Optional[LayerGeometry]:
        """x[:, :, a::s, b::s]: a 1x1 window with stride s starting at pixel a (ResNet's option-A
        shortcut). Other indexing that keeps the map (channels, batch) passes the geometry on."""
        if not isinstance(index, tuple) or len(index) != 4 or not all(isinstance(i, slice) for i in index):
            return None
        spatial = index[2:]
        if all(sl == slice(None) or sl == slice(None, None, 1) for sl in spatial):
            return None
        out = None
        if g is not None:
            axes = []
            for axis, sl in zip(g, spatial):
                first, stop, step = sl.indices(axis.size)
                if stop != axis.size or step < 1:
                    return None  # a crop, not a subsample: leave it to the notes
                axes.append(Axis(len(range(first, stop, step)), axis.jump * step, axis.rf,
                                 axis.start + first * axis.jump))
            out = tuple(axes)
        else:
            self._unknown("subsample")
        steps = tuple(int(sl.step or 1) for sl in spatial)
        return LayerGeometry(self._name("subsample"), "subsample", (1, 1), steps, (0, 0), (0, 0), (1, 1), out,
                             _spatial(result))

    def _row(self, kind, g, k, s, p_l, p_r, d, ceil_mode, result, approximate=False) -> LayerGeometry:
        out = None
        if g is not None:
            out = tuple(_through(g[i], k[i], s[i], p_l[i], p_r[i], d[i], ceil_mode) for i in range(2))
        else:
            self._unknown(kind)
        actual = _spatial(tree_flatten(result)[0][0])
        return LayerGeometry(self._name(kind), kind, k, s, p_l, p_r, d, out, actual, approximate)

    def _adaptive(self, kind, g, output_size, x, result) -> LayerGeometry:
        target = list(_pair(output_size) if output_size is not None else (None, None))
        sizes = _spatial(x)
        target = [sizes[i] if target[i] is None else target[i] for i in range(2)]
        if g is None:
            return self._row(kind, None, (1, 1), (1, 1), (0, 0), (0, 0), (1, 1), False, result)
        axes, approximate = [], False
        for i in range(2):
            w, n = g[i].size, target[i]
            if w % n == 0:  # equal windows: a plain pooling of k = s = w / n
                axes.append(_through(g[i], w // n, w // n, 0, 0))
            else:  # PyTorch's windows [floor(j w / n), ceil((j + 1) w / n)): widest one, mean stride
                approximate = True
                k = math.ceil(w / n) + 1
                a = g[i]
                axes.append(Axis(n, a.jump * w / n, a.rf + (k - 1) * a.jump, a.start + (k - 1) / 2 * a.jump))
        k = tuple(g[i].size // target[i] for i in range(2))
        return LayerGeometry(self._name(kind), kind, k, k, (0, 0), (0, 0), (1, 1), tuple(axes),
                             _spatial(tree_flatten(result)[0][0]), approximate)

    def _unknown(self, kind: str) -> None:
        note = (f"{self._name(kind)}: its input came through an operation that changes the spatial size "
                "and is not a conv or pooling (interpolation, slicing, reshaping?): no geometry from here on")
        if not any(n.startswith(note.split(":")[0] + ":") for n in self.trace.notes):
            self.trace.notes.append(note)


@torch.no_grad()
def trace_geometry(model: nn.Module, input_size: int | tuple[int, int], in_chans: int = 3) -> Trace:
    """Every conv, pooling and padding call of ``model`` on one zero image of ``input_size`` pixels,
    with its output size by the formula, receptive field, jump and start (eval mode, mode restored).

    ValueError when the input is too small for the network.
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    trace = Trace((h, w))
    names: list[tuple[str, nn.Module]] = []  # the modules being called, innermost last
    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, _a, name=name: names.append((name, m)) and None))
        handles.append(module.register_forward_hook(lambda _m, _a, _o: names.pop() and None))  # None: keep the output
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    x = torch.zeros(1, in_chans, h, w, device=param.device if param is not None else None)
    tracer = _Tracer(trace, names)
    tracer.tag(x, input_geometry(h, w))
    try:
        with tracer:
            model(x)
    except RuntimeError as err:
        raise ValueError(f"input size {h}x{w} does not fit this network ({str(err).splitlines()[0]}); "
                         "use a larger --input-size") from err
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return trace


def check_geometry(trace: Trace) -> list[str]:
    """Rows whose formula size differs from the forward pass's, or that have no geometry: [] when all agree."""
    problems = [f"{row.name} ({row.kind}): formula {row.size}, forward {row.actual}"
                for row in trace.layers if row.size != row.actual]
    return problems + list(trace.notes)


def _fmt_pair(values: tuple, fmt: str = "{:g}") -> str:
    a, b = (fmt.format(v) for v in values)
    return a if a == b else f"{a}x{b}"


def format_geometry(trace: Trace) -> str:
    """Plain-text table: layer, kind, k/s/p/d, output size, receptive field, jump, start (input pixels)."""
    header = ["layer", "kind", "k", "s", "p", "d", "out", "rf", "jump", "start"]
    rows = [["input", "", "", "", "", "", _fmt_pair(trace.input_size), "1", "1", f"{INPUT_START:g}"]]
    for r in trace.layers:
        p = _fmt_pair(r.padding)
        if r.padding != r.padding_after:  # before/after, e.g. 'same' padding of an even kernel
            p = f"{p}/{_fmt_pair(r.padding_after)}"
        geo = ([_fmt_pair(r.size), _fmt_pair((r.out[0].rf, r.out[1].rf)), _fmt_pair((r.out[0].jump, r.out[1].jump)),
                _fmt_pair((r.out[0].start, r.out[1].start))] if r.out is not None else ["?", "?", "?", "?"])
        kind = r.kind + (" ~" if r.approximate else "")
        rows.append([r.name, kind, _fmt_pair(r.kernel), _fmt_pair(r.stride), p, _fmt_pair(r.dilation)] + geo)
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    text = [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    text.append("out = floor((w + 2p - d(k-1) - 1)/s) + 1; rf, jump and start in input pixels "
                "(start: centre of the first output's field; pixel i spans [i, i+1)).")
    if any(r.approximate for r in trace.layers):
        text.append("~ adaptive pooling with uneven windows: rf, jump and start are approximate (widest window).")
    text += [f"note: {n}" for n in trace.notes]
    return "\n".join(text)


__all__ = ["Axis", "INPUT_START", "LayerGeometry", "Trace", "check_geometry", "conv_output_size", "format_geometry",
           "input_geometry", "trace_geometry"]
