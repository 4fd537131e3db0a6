"""The reports' networks: parameter counts (the reports' where printed, ours pinned), printed exactly by summary()."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnlab.models import count_params, create_model, model_info
from cnnlab.models.summary import count_macs, summarize, summary

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"  # the reports' text (SPEC.md)

# name -> (num_classes, total, trainable, non-trainable, report id): all three counts are
# printed in that report's Keras summary ("Total params: ... Trainable params: ...").
FROM_REPORTS = {
    "cnn000a": (10, 49_268, 49_268, 0, "000-a"),
    "densenet000b": (10, 45_634, 44_410, 1_224, "000-b"),
    "autokeras003b": (200, 16_445_896, 16_435_144, 10_752, "003-b"),
    "cnn004": (10, 82_346, 81_962, 384, "004-a"),
    "vgg16_3block": (10, 2_787_914, 2_787_402, 512, "004-e"),
}

# name -> (num_classes, total, trainable, non-trainable): counts of our own implementation,
# printed in no report; pinned to catch regressions, not checked against a source.
PINNED_FROM_OUR_CODE = {
    # 000-c prints only the total, in its text ("5130 out of 15,001,418 parameters"; see
    # test_frozen_layers_move_to_non_trainable); the trainable/BN split is ours.
    "vgg16_cifar000c": (10, 15_001_418, 14_991_946, 9_472),
    # 001 prints no summary table: our reading of its layer descriptions.
    "cnn001d1": (10, 1_250_858, 1_250_858, 0),
    "cnn001d2": (10, 1_250_858, 1_250_858, 0),
    "cnn001e_inception": (10, 3_757_866, 3_757_866, 0),
    "cnn001e_residual": (10, 890_730, 890_730, 0),
    "cnn001a": (1, 3_485_633, 3_485_569, 64),
    # 002 prints no parameter count (TensorFlow, no summary).
    "convnet002": (10, 1_756_426, 1_756_426, 0),
    # 004-e's five-block variant: the report gives its accuracy, not its size.
    "vgg16_5block": (10, 14_849_610, 14_849_098, 512),
}

# name -> (num_classes, total, trainable, non-trainable), both tables.
ALL_COUNTS = {**{k: v[:4] for k, v in FROM_REPORTS.items()}, **PINNED_FROM_OUR_CODE}


@pytest.mark.parametrize("name", sorted(ALL_COUNTS))
def test_keras_counts(name: str) -> None:
    num_classes, total, trainable, non_trainable = ALL_COUNTS[name]
    counts = count_params(create_model(name, num_classes=num_classes))
    assert (counts["total"], counts["trainable"], counts["non_trainable"]) == (total, trainable, non_trainable)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the reports' text (../shared/seeds) is not here")
@pytest.mark.parametrize("name", sorted(FROM_REPORTS))
def test_from_reports_counts_are_printed_in_the_report(name: str) -> None:
    _, total, trainable, non_trainable, report = FROM_REPORTS[name]
    (path,) = SEEDS.glob(f"{report[:3]}_*.txt")
    text = path.read_text(encoding="utf-8")
    for line in (f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                 f"Non-trainable params: {non_trainable:,}"):
        assert line in text, f"{line!r} not in report {report} ({path.name})"


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the reports' text (../shared/seeds) is not here")
def test_pinned_counts_are_not_in_the_reports() -> None:
    # Keeps the two tables honest: a pinned count that a report does print belongs in FROM_REPORTS.
    text = "\n".join(p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt"))
    for name, (_, total, trainable, _) in PINNED_FROM_OUR_CODE.items():
        assert f"{trainable:,}" not in text, name
        if name != "vgg16_cifar000c":  # its total is in 000-c's text, see above
            assert f"{total:,}" not in text, name
    assert "5130 out of 15,001,418" in text


@pytest.mark.parametrize("name", ["cnn000a", "densenet000b", "cnn004", "vgg16_3block", "cnn001e_residual"])
def test_summary_prints_exact_counts(name: str) -> None:
    num_classes, total, trainable, non_trainable = ALL_COUNTS[name]
    text = summary(create_model(name, num_classes=num_classes), input_size=model_info(name).input_size)
    assert f"Total params: {total:,}\n" in text
    assert f"Trainable params: {trainable:,}\n" in text
    assert f"Non-trainable params: {non_trainable:,}\n" in text
    assert f"PyTorch parameters (model.parameters()): {trainable:,}" in text


def test_summary_rows_add_up_and_shapes_match_keras() -> None:
    info = summarize(create_model("cnn004"))
    assert sum(r.params for r in info.rows) == 82_346  # printed: 004-a
    shapes = {r.name: r.output_shape for r in info.rows}
    assert shapes["features.conv1"] == (32, 30, 30)  # Keras: (None, 30, 30, 32)
    assert shapes["features.pool2"] == (64, 5, 5)  # 004-a table: (None, 5, 5, 64)
    assert shapes["features.flatten"] == (1600,)  # 004-a table: (None, 1600)
    assert not info.branching


def test_summary_connected_to_for_branching_nets() -> None:
    text = summary(create_model("densenet000b"))
    assert "Connected to" in text
    info = summarize(create_model("densenet000b"))
    cats = [r for r in info.rows if r.type == "Concatenate"]
    assert len(cats) == 6 and all(len(r.inputs) == 2 for r in cats)
    assert [r.output_shape[0] for r in cats] == [36, 48, 36, 48, 36, 48]  # printed: 000-b table, concatenate_1..6


def test_frozen_layers_move_to_non_trainable() -> None:
    model = create_model("vgg16_cifar000c")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.classifier.parameters():
        p.requires_grad_(True)
    text = summary(model)
    assert "Trainable params: 5,130\n" in text  # report 000-c's text: "5130 out of 15,001,418"
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
