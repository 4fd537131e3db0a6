"""One image explained on one page (report 001-b): what the network predicts, where it looked
(Grad-CAM for the predicted and the true class, Grad-CAM++, saliency, integrated gradients), the
activations of chosen conv layers and their filters by gradient ascent.

Written to <run>/explain/<image>/explain.html (self-contained) and explain.md with PNGs in figures/.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from cnnlab.atomic import write_text_atomically
from cnnlab.explain.ascent import AscentSettings, visualize_filters
from cnnlab.explain.attributions import IG_STEPS, integrated_gradients, saliency
from cnnlab.explain.cam import grad_cam
from cnnlab.explain.capture import capture_outputs, class_scores, eval_mode
from cnnlab.explain.figures import channel_grid_figure, filter_grid_figure, heatmaps_figure
from cnnlab.explain.layers import conv_layers, default_layers, resolve_layer
from cnnlab.explain.source import ExplainInput
from cnnlab.models.receptive import trace_geometry
from cnnlab.report._figures import figure_to_png_bytes
from cnnlab.report.blocks import (Figure, Paragraph, Section, Table, figures_of, render_html, render_markdown,
                                  write_figures)
from cnnlab.train.losses import probabilities

PAGE = "explain.html"
TOP_CLASSES = 5


@dataclass
class ExplainOptions:
    layers: Optional[list[str]] = None      # conv layers (names or 1-based positions); default 1 and 4 (001-b)
    cam_layer: Optional[str] = None         # Grad-CAM layer; default the last conv layer
    filters: int = 16                       # filters per layer visualized by gradient ascent
    channels: int = 64                      # activation channels shown per layer (the first ones)
    ig_steps: int = IG_STEPS
    ascent: AscentSettings = field(default_factory=AscentSettings)


def _figure(name: str, fig: Any, caption: str) -> Figure:
    return Figure(name=name, png=figure_to_png_bytes(fig), caption=caption)


def _safe(layer: str) -> str:
    return layer.replace(".", "_").replace(":", "_")


def _prediction(model: nn.Module, x: torch.Tensor, classes: Sequence[str]) -> tuple[np.ndarray, int]:
    """(probability of each class, predicted class); a one-logit head gives [1 - p, p]."""
    with eval_mode(model), torch.no_grad():
        logits = model(x).float()
    probs = probabilities(logits)[0].cpu().numpy()
    if probs.shape[0] == 1:
        probs = np.array([1 - probs[0], probs[0]])
    if len(classes) != len(probs):
        raise ValueError(f"the model scores {len(probs)} classes but the run names {len(classes)}")
    return probs, int(class_scores(logits)[0].argmax())


def _image_section(source: ExplainInput, probs: np.ndarray, predicted: int, classes: Sequence[str]) -> Section:
    top = np.argsort(-probs)[:TOP_CLASSES]
    rows = [[classes[k], f"{probs[k]:.4f}", "predicted" if k == predicted else "",
             "true" if k == source.label else ""] for k in top]
    true = classes[source.label] if source.label is not None else "unknown"
    verdict = "" if source.label is None else (" (right)" if predicted == source.label else " (wrong)")
    return Section("Image and prediction", [
        Paragraph(f"Image: {source.description}. True class: {true}; predicted: {classes[predicted]}{verdict}."),
        Table(headers=["class", "probability", "", ""], rows=rows)])


def _heatmap_section(model, x, baseline, source, predicted, classes, layer, ig_steps) -> Section:
    targets = [predicted] + ([source.label] if source.label is not None else [])
    cams = grad_cam(model, x.expand(len(targets), -1, -1, -1), layer, targets)
    plus = grad_cam(model, x, layer, [predicted], plus=True)
    sal = saliency(model, x, [predicted])
    ig = integrated_gradients(model, x, [predicted], baseline, steps=ig_steps)
    name = classes[predicted]
    panels = [(f"Grad-CAM: {name}\n(predicted)", cams.maps[0])]
    if source.label is not None:
        panels.append((f"Grad-CAM: {classes[source.label]}\n(true)", cams.maps[1]))
    panels += [(f"Grad-CAM++: {name}", plus.maps[0]), (f"saliency: {name}", sal.maps[0]),
               (f"integrated gradients:\n{name}", ig.maps[0])]
    figure = _figure("heatmaps.png", heatmaps_figure(source.image, panels),
                     "where the network looked: heatmaps over the image (red = most)")
    h, w = cams.raw.shape[1:]
    return Section("Where the network looked", [figure, Paragraph(
        f"Grad-CAM and Grad-CAM++ at conv layer {layer} ({h}x{w} map, upsampled to the image): the layer's "
        "channels weighted by the gradient of the class score. Saliency: the largest absolute gradient of the "
        f"score over the colour channels per pixel. Integrated gradients: {ig_steps} steps from a black image; "
        f"convergence delta {float(ig.delta[0]):.3g} (attributions minus score difference; near 0 = enough steps). "
        "Each map is scaled to its own maximum. For a one-logit binary head the score of class 0 is the "
        "negated logit.")])


def _activation_section(model, x, layer: str, position: int, channels: int) -> Section:
    with eval_mode(model), torch.no_grad():
        _, kept = capture_outputs(model, x, [layer], stop_early=True)
    acts = kept[layer][0].float().cpu().numpy()
    shown = acts[:channels]
    note = "all channels" if len(shown) == len(acts) else f"the first {len(shown)} of {len(acts)} channels (--channels)"
    fig = channel_grid_figure(shown, f"conv layer {position} ({layer}): {acts.shape[1]}x{acts.shape[2]}")
    return Section(f"Activations of conv layer {position} ({layer})", [
        _figure(f"activations_{_safe(layer)}.png", fig, f"activations of {layer}, {note}"),
        Paragraph(f"{len(acts)} channels of {acts.shape[1]}x{acts.shape[2]} (the conv output, before batch norm "
                  f"or activation), {note}; each panel scaled to its own range, its maximum above it.")])


def _filter_section(model, normalize, layer: str, position: int, input_shape, count: int,
                    settings: AscentSettings) -> Section:
    result = visualize_filters(model, layer, normalize, input_shape, count=count, settings=settings)
    raised = int((result.end > result.start).sum())
    fig = filter_grid_figure(result.images, result.filters, result.start, result.end,
                             f"conv layer {position} ({layer}): filters by gradient ascent")
    return Section(f"Filters of conv layer {position} ({layer}) by gradient ascent", [
        _figure(f"filters_{_safe(layer)}.png", fig, f"images that excite filters {result.filters[0]}.."
                f"{result.filters[-1]} of {layer}"),
        Paragraph(f"Each image starts as noise and is changed to raise one filter's mean activation: "
                  f"{settings.describe()}. Captions: filter: mean activation on the noise -> on the image; "
                  f"it rose for {raised} of {len(result.filters)} filters.")])


def _layers_section(model: nn.Module, input_shape, layers: list[str], shown: list[str], cam_layer: str) -> Section:
    trace = trace_geometry(model, tuple(input_shape[1:]), in_chans=input_shape[0])
    geometry = {row.name: row for row in trace.layers if row.kind == "conv" and row.out is not None}

    def size_and_field(name: str) -> list[str]:
        row = geometry.get(name)
        return [f"{row.size[0]}x{row.size[1]}", f"{row.out[0].rf:g}"] if row else ["?", "?"]

    rows = [[str(i), name, *size_and_field(name), ", ".join((["activations, filters"] if name in shown else [])
                                                           + (["Grad-CAM"] if name == cam_layer else []))]
            for i, name in enumerate(layers, 1)]
    return Section("Conv layers", [
        Paragraph("Pick others with --layer (activations and filters) and --cam-layer, by name or position. "
                  "Receptive field: input pixels one output of the layer sees (cnnlab shapes MODEL)."),
        Table(headers=["position", "layer", "output", "receptive field (px)", "shown here"], rows=rows)])


def explain_sections(model: nn.Module, normalize: Callable[[torch.Tensor], torch.Tensor], source: ExplainInput,
                     classes: Sequence[str], options: ExplainOptions = ExplainOptions()) -> list[Section]:
    """Every section of the page for ``source.image`` (uint8 C x H x W); ``normalize`` maps uint8 or
    float 0..255 batches to the model's input (the run's normalizer)."""
    param = next(model.parameters())
    image = torch.as_tensor(source.image)
    input_shape = tuple(image.shape)
    layers = conv_layers(model, input_shape)
    chosen = [resolve_layer(name, layers) for name in options.layers] if options.layers else default_layers(layers)
    cam_layer = resolve_layer(options.cam_layer, layers) if options.cam_layer else layers[-1]
    x = normalize(image[None].to(param.device)).to(param.dtype)
    baseline = normalize(torch.zeros_like(image)[None].to(param.device)).to(param.dtype)  # black image
    probs, predicted = _prediction(model, x, classes)
    sections = [_image_section(source, probs, predicted, classes),
                _heatmap_section(model, x, baseline, source, predicted, classes, cam_layer, options.ig_steps)]
    for layer in chosen:
        sections.append(_activation_section(model, x, layer, layers.index(layer) + 1, options.channels))
    for layer in chosen:
        sections.append(_filter_section(model, normalize, layer, layers.index(layer) + 1, input_shape,
                                        options.filters, options.ascent))
    sections.append(_layers_section(model, input_shape, layers, chosen, cam_layer))
    return sections


def write_page(out_dir: Path, title: str, sections: list[Section]) -> Path:
    """explain.html (self-contained), explain.md and figures/*.png in ``out_dir``, each written
    atomically; PNGs of an earlier page that this one lacks are removed. Returns the HTML path."""
    out_dir = Path(out_dir)
    write_figures(out_dir / "figures", figures_of(sections))
    write_text_atomically(out_dir / "explain.md", render_markdown(title, sections))
    return write_text_atomically(out_dir / PAGE, render_html(title, sections))


def explain_run(run: Any, source: ExplainInput, options: ExplainOptions = ExplainOptions(),
                out_dir: Optional[Path] = None) -> Path:
    """Explain ``source`` with a loaded run (``cnnlab.runs.load_run``): the page at
    <run>/explain/<source.slug>/explain.html unless ``out_dir`` says otherwise. Returns its path."""
    if hasattr(run, "require"):   # a run whose task has no class scores says so in one line
        run.require("explain")
    run_dir = Path(run.run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "explain" / source.slug
    sections = explain_sections(run.model, run.normalizer, source, list(run.classes), options)
    return write_page(out_dir, f"cnnlab explain: {run_dir.name}, {source.slug}", sections)


__all__ = ["ExplainOptions", "PAGE", "explain_run", "explain_sections", "write_page"]
