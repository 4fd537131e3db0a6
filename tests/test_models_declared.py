"""Models declared in YAML / dicts, and the `cnnlab models` table."""
from __future__ import annotations

import pytest
import torch

from cnnlab.models import (
    DeclarationError,
    count_params,
    create_model,
    format_model_table,
    layers_from_yaml,
)

CNN004_YAML = """
layers:
  - {conv: {filters: 32, padding: valid, act: relu}}
  - bn
  - {conv: {filters: 32, padding: valid, act: relu}}
  - bn
  - {pool: 2}
  - {dropout: 0.25}
  - {repeat: 1, layers: [{type: conv, filters: 64, padding: valid, act: relu}, bn]}
  - {conv: {filters: 64, padding: valid, act: relu}}
  - bn
  - pool
  - {dropout: 0.25}
  - flatten
  - dense
"""

DENSENET000B_YAML = """
- {conv: {filters: 24, bias: false}}
- {dense_block: {num_layers: 2, growth: 12}}
- {transition: {compression: 0.5}}
- {dense_block: {num_layers: 2, growth: 12}}
- transition
- {dense_block: {num_layers: 2, growth: 12}}
- bn
- relu
- {pool: {kind: global_avg}}
- dense
"""


def test_yaml_cnn004_matches_python_twin() -> None:
    model = create_model("sequential", layers=layers_from_yaml(CNN004_YAML))
    assert count_params(model) == count_params(create_model("cnn004"))
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 1600)


def test_yaml_densenet000b_matches_python_twin() -> None:
    model = create_model("sequential", layers=layers_from_yaml(DENSENET000B_YAML))
    counts = count_params(model)
    assert (counts["total"], counts["trainable"], counts["non_trainable"]) == (45_634, 44_410, 1_224)


def test_repeat_and_blocks() -> None:
    layers = [
        {"conv_bn_act": {"filters": 16}},
        {"residual": {"filters": 16}, "repeat": 2},
        {"type": "inverted_residual", "filters": 24, "stride": 2, "expand_ratio": 6},
        {"inception": 8},
        {"concat_residual": {"width": 16, "out_chans": 8, "pool": False}},
        {"vgg_stage": {"filters": 32, "num_convs": 2, "batch_norm": True}},
        {"pool": {"kind": "global_max"}},
        {"dense": {"units": 16, "act": "gelu"}},
        {"dropout": 0.1},
        {"dense": 4},
    ]
    model = create_model("sequential", num_classes=4, layers=layers)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    assert model.forward_head(model.forward_features(torch.randn(2, 3, 32, 32)), pre_logits=True).shape == (2, 16)
    assert sum(1 for m in model.modules() if type(m).__name__ == "BasicBlock") == 2


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"conv": 8}, {"dense": 10}], r"layer 1 \(dense\): input shape \(8, 32, 32\).*flatten"),
        ([{"conv": {"filters": 8, "kernel": 5, "padding": "valid"}}, {"pool": 8}, {"conv": {"filters": 8, "kernel": 5,
          "padding": "valid"}}, "flatten", "dense"], r"layer 2 \(conv\): does not fit input shape \(8, 3, 3\)"),
        ([{"conv": 8}, "flatten", {"dense": 3}], r"layer 2: the last dense has 3 units but num_classes is 10"),
        ([{"conv": 8}, "flatten"], r"layer 1: the last layer must be `dense`"),
        ([{"convv": 8}, "flatten", "dense"], r"layer 0: unknown layer type 'convv'"),
        ([{"conv": {"filters": 8, "kernal": 3}}, "flatten", "dense"], r"layer 0 \(conv\): bad arguments.*kernal"),
        (["flatten", {"conv": 8}, "dense"], r"layer 1 \(conv\): input shape \(3072,\)"),
    ],
)
def test_wrong_declarations_name_layer_and_shape(layers: list, message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        create_model("sequential", layers=layers)


def test_sequential_needs_layers() -> None:
    with pytest.raises(ValueError, match="layers="):
        create_model("sequential")


def test_model_table_lists_every_model_first_column() -> None:
    table = format_model_table()
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["name", "params", "input"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["cnn004"][1] == "82,346" and rows["cnn004"][2] == "32x32"
    assert rows["densenet000b"][1] == "45,634"
    assert rows["cnn001a"][2] == "150x150" and rows["cnn001a"][3] == "1"
    assert rows["sequential"][1] == "-"
