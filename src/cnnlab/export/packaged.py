"""A run's network packaged for use outside cnnlab: uint8 pixels in, class probabilities (or the
logits, ``output="logits"``) out.

The normalization the run trained with is part of the packaged module, so an exported file
needs nothing but the pixels: x = images * scale + shift with scale = 1 / std and shift =
-mean / std (mean, std in 0..255 pixel units), the same fused multiply-add as
``cnnlab.data.Normalizer``; then the network; then softmax (sigmoid for a one-logit head,
returned as [1 - p, p] so every model gives N x K probabilities, K = number of classes). With
``output="logits"`` the network's raw scores come out instead (N x K, or N x 1 for a one-logit
head): for calibration, temperature scaling or an ensemble that averages logits.
"""
from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from cnnlab.version import __version__

INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
OUTPUTS = ("probabilities", "logits")   # what an export can return; also the output's name in the file


class PackagedModel(nn.Module):
    """uint8 N x C x H x W -> float32 N x K probabilities (normalization and softmax inside), or
    the logits with ``output="logits"``."""

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor, sigmoid_head: bool,
                 output: str = "probabilities") -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"export output {output!r} unknown; use one of {', '.join(OUTPUTS)}")
        self.model = model
        self.output = output
        mean = torch.as_tensor(mean, dtype=torch.float32).flatten().cpu()
        std = torch.as_tensor(std, dtype=torch.float32).flatten().cpu()
        # Same arithmetic as Normalizer (addcmul with 1/std and -mean/std), so results match bit for bit.
        self.register_buffer("scale", (1.0 / std).view(1, -1, 1, 1))
        self.register_buffer("shift", (-mean / std).view(1, -1, 1, 1))
        self.sigmoid_head = sigmoid_head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(self.shift, images.float(), self.scale)
        logits = self.model(x).float()
        if self.output == "logits":
            return logits
        if self.sigmoid_head:
            p = torch.sigmoid(logits)
            return torch.cat([1 - p, p], dim=1)
        return torch.softmax(logits, dim=1)


def package(run: Any, output: str = "probabilities") -> PackagedModel:
    """The packaged model of a loaded run (``cnnlab.load_run``), on CPU, eval mode, returning
    ``output`` (one of OUTPUTS).

    The run's own model object is wrapped, not copied; it is moved to the CPU if it is elsewhere.
    """
    model = run.model.cpu().eval()
    n_out = _output_count(model, run.in_chans, run.input_size)
    if n_out not in (1, len(run.classes)):
        raise ValueError(f"{run.run_dir}: the model gives {n_out} outputs for {len(run.classes)} classes; "
                         "is summary.json from another run?")
    norm = run.normalizer
    return PackagedModel(model, norm.mean, norm.std, sigmoid_head=n_out == 1, output=output).eval()


@torch.no_grad()
def _output_count(model: nn.Module, channels: int, size: int) -> int:
    return int(model(torch.zeros(1, channels, size, size)).shape[1])


def output_description(run: Any, output: str) -> str:
    k = len(run.classes)
    if output == "logits":
        n_out = _output_count(run.model.cpu().eval(), run.in_chans, run.input_size)
        if n_out == 1:
            return (f"float32 N x 1 logit of class {run.classes[1]!r} (sigmoid gives its probability, "
                    f"1 - sigmoid that of {run.classes[0]!r})")
        return f"float32 N x {k} logits (softmax gives the class probabilities), columns in class_names order"
    return f"float32 N x {k} class probabilities (rows sum to 1), columns in class_names order"


def input_contract(run: Any, output: str = "probabilities") -> dict[str, str]:
    """What the exported file expects and returns, as string key/value pairs (ONNX metadata_props,
    the TorchScript/pt2 extra file cnnlab.json): enough to call it without cnnlab."""
    norm = run.normalizer
    size = run.input_size
    return {
        "cnnlab.version": __version__,
        "cnnlab.run": run.run_dir.name,
        "cnnlab.model": run.config.model.name,
        "class_names": json.dumps(list(run.classes)),
        "input.name": INPUT_NAME,
        "input.shape": f"N x {run.in_chans} x {size} x {size}",
        "input.dtype": "uint8",
        "input.channels": "RGB" if run.in_chans == 3 else f"{run.in_chans}",
        "input.layout": "NCHW",
        "input.size": str(size),
        "input.preprocessing": (f"decode with Pillow, convert('RGB'), resize to {size}x{size} with "
                                "Image.BILINEAR when the size differs (as cnnlab decodes image folders)"),
        "normalization": json.dumps({"kind": norm.kind, "mean": [round(v, 6) for v in norm.mean.tolist()],
                                     "std": [round(v, 6) for v in norm.std.tolist()], "units": "pixel values 0..255",
                                     "applied_inside": "x = (images - mean) / std per channel"}),
        "output.name": output,
        "output": output_description(run, output),
    }


__all__ = ["INPUT_NAME", "OUTPUTS", "OUTPUT_NAME", "PackagedModel", "input_contract", "package"]
