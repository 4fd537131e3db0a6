"""The run report's "where the network looked" section: Grad-CAM over the most confident wrong
test images (report 004-a's error analysis), for the predicted and for the true class.

Built by the pipeline (which has the trained model and the images) and handed to
``write_run_report(extra_sections=...)``: the report layer never imports this package.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from cnnlab.evaluate.examples import example_groups
from cnnlab.explain.cam import grad_cam
from cnnlab.explain.figures import cam_examples_figure
from cnnlab.explain.layers import conv_layers, resolve_layer
from cnnlab.report._figures import figure_to_png_bytes
from cnnlab.report.blocks import Figure, Paragraph, Section, Table

TITLE = "Where the network looked: most confident mistakes"
WRONG_SHOWN = 8  # images; Grad-CAM of 8 images costs two batched backward passes


def gradcam_section(model: nn.Module, normalize: Callable[[torch.Tensor], torch.Tensor], images: Any,
                    probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                    indices: Optional[np.ndarray] = None, count: int = WRONG_SHOWN,
                    layer: Optional[str] = None) -> Section:
    """Grad-CAM of the ``count`` wrong images with the highest predicted probability.

    ``images`` (uint8 N x C x H x W, numpy or torch) are aligned with ``probs`` / ``labels`` (the
    rows of predictions/<split>.npz); ``layer`` defaults to the last conv layer.
    """
    images = torch.as_tensor(np.asarray(images.cpu() if hasattr(images, "cpu") else images))
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images for {len(labels)} predictions: pass one image per prediction row")
    wrong = example_groups(probs, labels, list(class_names), indices, count)["wrong_highest"]
    if not wrong:
        return Section(TITLE, [Paragraph("No wrong predictions: every image was classified right.")])
    param = next(model.parameters())
    layers = conv_layers(model, tuple(images.shape[1:]))
    layer = resolve_layer(layer, layers) if layer else layers[-1]
    rows = [int(r["row"]) for r in wrong]
    x = normalize(images[rows].to(param.device)).to(param.dtype)
    predicted = grad_cam(model, x, layer, [int(r["pred"]) for r in wrong])
    true = grad_cam(model, x, layer, [int(r["y"]) for r in wrong])
    examples = [(images[row].numpy(), f"true {r['y_cat']}\npred {r['pred_cat']} ({r['pred_prob']:.3f})",
                 predicted.maps[i], true.maps[i]) for i, (row, r) in enumerate(zip(rows, wrong))]
    png = figure_to_png_bytes(cam_examples_figure(examples))
    h, w = predicted.raw.shape[1:]
    return Section(TITLE, [
        Paragraph(f"The {len(wrong)} wrong test images the network was surest of, each with Grad-CAM at conv "
                  f"layer {layer} ({h}x{w}, upsampled) for the class it predicted and for the true class: "
                  "red is where that class's evidence is. More: cnnlab explain RUN --index IDX."),
        Figure(name="gradcam_wrong.png", png=png, caption="Grad-CAM of the most confident mistakes"),
        Table(headers=["idx", "true", "predicted", "pred_prob"],
              rows=[[str(r["idx"]), r["y_cat"], r["pred_cat"], f"{r['pred_prob']:.4f}"] for r in wrong])])


__all__ = ["TITLE", "WRONG_SHOWN", "gradcam_section"]
