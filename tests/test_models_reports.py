"""The reports' networks: exact Keras parameter counts, printed exactly by summary()."""
from __future__ import annotations

import pytest
import torch

from cnnlab.models import count_params, create_model, model_info
from cnnlab.models.summary import count_macs, summarize, summary

# name -> (num_classes, total, trainable, non-trainable) as the reports print them
# (001 prints no table: those rows pin our documented reading of its text).
REPORT_COUNTS = {
    "cnn000a": (10, 49_268, 49_268, 0),
    "densenet000b": (10, 45_634, 44_410, 1_224),
    "vgg16_cifar000c": (10, 15_001_418, 14_991_946, 9_472),
    "cnn001d1": (10, 1_250_858, 1_250_858, 0),
    "cnn001d2": (10, 1_250_858, 1_250_858, 0),
    "cnn001e_inception": (10, 3_757_866, 3_757_866, 0),
    "cnn001e_residual": (10, 890_730, 890_730, 0),
    "cnn001a": (1, 3_485_633, 3_485_569, 64),
    "convnet002": (10, 1_756_426, 1_756_426, 0),
    "autokeras003b": (200, 16_445_896, 16_435_144, 10_752),
    "cnn004": (10, 82_346, 81_962, 384),
    "vgg16_3block": (10, 2_787_914, 2_787_402, 512),
    "vgg16_5block": (10, 14_849_610, 14_849_098, 512),
}


@pytest.mark.parametrize("name", sorted(REPORT_COUNTS))
def test_keras_counts(name: str) -> None:
    num_classes, total, trainable, non_trainable = REPORT_COUNTS[name]
    counts = count_params(create_model(name, num_classes=num_classes))
    assert (counts["total"], counts["trainable"], counts["non_trainable"]) == (total, trainable, non_trainable)


@pytest.mark.parametrize("name", ["cnn000a", "densenet000b", "cnn004", "vgg16_3block", "cnn001e_residual"])
def test_summary_prints_exact_counts(name: str) -> None:
    num_classes, total, trainable, non_trainable = REPORT_COUNTS[name]
    text = summary(create_model(name, num_classes=num_classes), input_size=model_info(name).input_size)
    assert f"Total params: {total:,}\n" in text
    assert f"Trainable params: {trainable:,}\n" in text
    assert f"Non-trainable params: {non_trainable:,}\n" in text
    assert f"PyTorch parameters (model.parameters()): {trainable:,}" in text


def test_summary_rows_add_up_and_shapes_match_keras() -> None:
    info = summarize(create_model("cnn004"))
    assert sum(r.params for r in info.rows) == 82_346
    shapes = {r.name: r.output_shape for r in info.rows}
    assert shapes["features.conv1"] == (32, 30, 30)  # Keras: (None, 30, 30, 32)
    assert shapes["features.pool2"] == (64, 5, 5)
    assert shapes["features.flatten"] == (1600,)
    assert not info.branching


def test_summary_connected_to_for_branching_nets() -> None:
    text = summary(create_model("densenet000b"))
    assert "Connected to" in text
    info = summarize(create_model("densenet000b"))
    cats = [r for r in info.rows if r.type == "Concatenate"]
    assert len(cats) == 6 and all(len(r.inputs) == 2 for r in cats)
    assert [r.output_shape[0] for r in cats] == [36, 48, 36, 48, 36, 48]  # as the 000-b table


def test_frozen_layers_move_to_non_trainable() -> None:
    model = create_model("vgg16_cifar000c")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.classifier.parameters():
        p.requires_grad_(True)
    text = summary(model)
    assert "Trainable params: 5,130\n" in text  # report 000-c: 5,130 of 15,001,418
    assert "Total params: 15,001,418\n" in text


def test_macs_hand_computed() -> None:
    # conv1: 30*30*32 outputs x 27, conv2: 28*28*32 x 288, conv3: 12*12*64 x 288,
    # conv4: 10*10*64 x 576, dense: 10 x 1600
    expected = 30 * 30 * 32 * 27 + 28 * 28 * 32 * 288 + 12 * 12 * 64 * 288 + 10 * 10 * 64 * 576 + 10 * 1600
    assert count_macs(create_model("cnn004")) == expected
    assert abs(count_macs(create_model("resnet20")) - 41e6) < 1e6  # He et al.: ~41M


def test_summary_keeps_training_mode_and_stats() -> None:
    model = create_model("cnn004").train()
    before = model.features.bn1.running_mean.clone()
    summary(model)
    assert model.training
    assert torch.equal(model.features.bn1.running_mean, before)
