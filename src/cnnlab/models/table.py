"""The `cnnlab models` listing."""
from __future__ import annotations

import torch

from .params import count_params
from .registry import create_model, list_models, model_info


def model_param_count(name: str) -> int | None:
    """Keras-counted parameters of ``name`` at its default classes, or None when the model
    needs arguments to exist (``sequential``). Built on the meta device: no memory, no init."""
    info = model_info(name)
    try:
        with torch.device("meta"):
            model = create_model(name, num_classes=info.num_classes)
    except (TypeError, ValueError):
        return None
    return count_params(model)["total"]


def format_model_table(pattern: str | None = None) -> str:
    """Text table of registered models: name, params (Keras counting), input size, classes, description."""
    rows = [("name", "params", "input", "classes", "description")]
    for name in list_models(pattern):
        info = model_info(name)
        count = model_param_count(name)
        rows.append((name, "-" if count is None else f"{count:,}", f"{info.input_size}x{info.input_size}",
                     str(info.num_classes), info.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]), r[3].rjust(widths[3]), r[4]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
