"""Seeing inside a network (report 001-b): activations of conv layers, filters by gradient ascent,
Grad-CAM / Grad-CAM++ / saliency / integrated-gradient heatmaps, one page per image; the
report's Grad-CAM section; convolution and pooling by hand (001-t).

    from cnnlab.runs import load_run
    from cnnlab.explain import explain_run, from_split
    run = load_run("runs/<run>")
    explain_run(run, from_split(run, "test", 12))   # -> runs/<run>/explain/test-12/explain.html
"""
from cnnlab.explain.ascent import AscentSettings, FilterImages, visualize_filters
from cnnlab.explain.attributions import Attribution, integrated_gradients, saliency
from cnnlab.explain.by_hand import convolve, max_pool
from cnnlab.explain.cam import CamMaps, grad_cam
from cnnlab.explain.capture import capture_outputs, class_scores
from cnnlab.explain.layers import conv_layers, default_layers, resolve_layer
from cnnlab.explain.page import ExplainOptions, explain_run, explain_sections, write_page
from cnnlab.explain.report_section import gradcam_section
from cnnlab.explain.source import ExplainInput, from_file, from_split

__all__ = ["AscentSettings", "Attribution", "CamMaps", "ExplainInput", "ExplainOptions", "FilterImages",
           "capture_outputs", "class_scores", "conv_layers", "convolve", "default_layers", "explain_run",
           "explain_sections", "from_file", "from_split", "gradcam_section", "grad_cam", "integrated_gradients",
           "max_pool", "resolve_layer", "saliency", "visualize_filters", "write_page"]
