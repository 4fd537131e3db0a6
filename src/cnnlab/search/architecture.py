"""An architecture of the search space as a declared model: choices -> `layers:` list.

The network is a stem (3x3 conv-BN-ReLU of `width` channels), then `stages` stages of `depth`
blocks of one type, the channels growing by `width_factor` and the feature map halving from one
stage to the next, then the head (global average pool or flatten, dropout, the classifier):

    plain      conv-BN-ReLU blocks of `kernel` x `kernel`; 2x2 max pool between stages
    residual   ResNet basic blocks (two 3x3 convs + shortcut); a stage's first block has stride 2
    inception  3x3 / 3x3->3x3 / 3x3->pool branches of width/3 channels each; 2x2 max pool between stages
    dense      a DenseNet block of `depth` layers, growth width/4; a transition (1x1 conv, 2x2 avg pool,
               half the channels) between stages

The result is `model: {name: sequential, kwargs: {layers: ...}}` (cnnlab.models.declared), so a
trial's config.yaml and the best-trial recipe show the whole network as plain data.
"""
from __future__ import annotations

import difflib
from typing import Any

BLOCKS = ("plain", "residual", "inception", "dense")
HEADS = ("global_avg", "flatten")
# Every key of an `architecture:` section and its value when the space does not give one.
DEFAULTS: dict[str, Any] = {"block": "plain", "stages": 3, "depth": 1, "width": 32, "width_factor": 2.0,
                            "kernel": 3, "dropout": 0.0, "head": "global_avg"}
ONLY_FOR = {"kernel": ("plain",)}   # keys that shape only some block types (sampled only for those)


def check_keys(section: dict, where: str) -> None:
    unknown = [k for k in section if k not in DEFAULTS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), list(DEFAULTS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{where}: unknown key {unknown[0]!r}.{hint} Allowed keys: {', '.join(DEFAULTS)}")


def _check(choices: dict) -> None:
    if choices["block"] not in BLOCKS:
        raise ValueError(f"architecture.block {choices['block']!r}: use one of {', '.join(BLOCKS)}")
    if choices["head"] not in HEADS:
        raise ValueError(f"architecture.head {choices['head']!r}: use one of {', '.join(HEADS)}")
    for key in ("stages", "depth", "width", "kernel"):
        if not isinstance(choices[key], int) or choices[key] < 1:
            raise ValueError(f"architecture.{key} must be an integer >= 1, got {choices[key]!r}")
    if not choices["width_factor"] > 0:
        raise ValueError(f"architecture.width_factor must be > 0, got {choices['width_factor']!r}")
    if not 0 <= choices["dropout"] < 1:
        raise ValueError(f"architecture.dropout must be in [0, 1), got {choices['dropout']!r}")


def stage_widths(choices: dict) -> list[int]:
    return [max(1, round(choices["width"] * choices["width_factor"] ** s)) for s in range(choices["stages"])]


def _stage(block: str, width: int, depth: int, kernel: int, first: bool) -> list[Any]:
    if block == "plain":
        layers = [] if first else [{"pool": 2}]
        return layers + [{"conv_bn_act": {"filters": width, "kernel_size": kernel}, "repeat": depth}]
    if block == "residual":
        head = {"residual": {"filters": width}} if first else {"residual": {"filters": width, "stride": 2}}
        return [head] + ([{"residual": {"filters": width}, "repeat": depth - 1}] if depth > 1 else [])
    if block == "inception":
        layers = [] if first else [{"pool": 2}]
        return layers + [{"inception": {"width": max(1, round(width / 3))}, "repeat": depth}]
    layers = [] if first else [{"transition": {"compression": 0.5}}]
    return layers + [{"dense_block": {"num_layers": depth, "growth": max(1, round(width / 4))}}]


def layers_for(choices: dict) -> list[Any]:
    """The declared layers of one architecture (`choices` holds every key of DEFAULTS)."""
    choices = {**DEFAULTS, **choices}
    _check(choices)
    widths = stage_widths(choices)
    layers: list[Any] = [{"conv_bn_act": {"filters": widths[0], "kernel_size": 3}}]
    for s, width in enumerate(widths):
        layers += _stage(choices["block"], width, choices["depth"], choices["kernel"], first=s == 0)
    if choices["block"] == "dense":
        layers += ["bn", "relu"]   # DenseNet's blocks end un-normalized (pre-activation layers)
    layers.append({"pool": {"kind": "global_avg"}} if choices["head"] == "global_avg" else "flatten")
    if choices["dropout"] > 0:
        layers.append({"dropout": round(float(choices["dropout"]), 6)})
    layers.append("dense")
    return layers


__all__ = ["layers_for", "stage_widths", "check_keys", "DEFAULTS", "BLOCKS", "HEADS", "ONLY_FOR"]
