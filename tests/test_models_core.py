"""Registry, parameter counting and initialisation of cnnlab.models."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.models import (
    ClassifierModel,
    ModelArgumentError,
    count_params,
    create_model,
    init_weights,
    list_models,
    model_info,
    register_model,
)


def test_cnn004_keras_counts() -> None:
    counts = count_params(create_model("cnn004"))
    assert counts == {"total": 82_346, "trainable": 81_962, "non_trainable": 384, "torch_total": 81_962}


def test_resnet20_size_and_interface() -> None:
    model = create_model("resnet20", num_classes=7)
    assert isinstance(model, ClassifierModel) and model.num_classes == 7
    assert count_params(create_model("resnet20"))["trainable"] == 269_722  # He et al.: 0.27M
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, 64)
    assert torch.allclose(model.forward_head(feats), model(x))
    assert model.forward_head(feats, pre_logits=True).shape == (2, 64)


def test_unknown_model_lists_close_matches() -> None:
    with pytest.raises(ValueError, match=r"resnet20.*cnnlab models"):
        create_model("resnet21")


def test_unknown_kwarg_names_it_and_allowed_ones() -> None:
    with pytest.raises(ModelArgumentError, match=r"'dropot'.*allowed: dropout"):
        create_model("cnn004", dropot=0.5)
    with pytest.raises(TypeError):
        create_model("cnn004", dropot=0.5)


def test_kwargs_are_forwarded() -> None:
    model = create_model("cnn004", dropout=0.5, num_classes=3, in_chans=1)
    assert model.features.drop1.p == 0.5
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def test_bad_num_classes() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        create_model("cnn004", num_classes=0)


def test_list_and_info() -> None:
    names = list_models()
    assert names == sorted(names) and {"cnn004", "resnet20"} <= set(names)
    assert list_models("resnet*") and all(n.startswith("resnet") for n in list_models("resnet*"))
    info = model_info("cnn004")
    assert info.input_size == 32 and "82,346" in info.description
    assert "dropout" in info.allowed_kwargs()


def test_register_rejects_duplicates_and_bad_signature() -> None:
    def cnn004(num_classes: int = 10, in_chans: int = 3) -> nn.Module:  # same name, other function
        return nn.Linear(1, 1)

    with pytest.raises(ValueError, match="already registered"):
        register_model()(cnn004)

    def no_chans(num_classes: int = 10) -> nn.Module:
        return nn.Linear(1, 1)

    with pytest.raises(TypeError, match="in_chans"):
        register_model("_tmp_no_chans")(no_chans)


def test_count_params_frozen_and_buffers() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)  # 108 frozen
    counts = count_params(model)
    # conv 108 + 4, BN 4 + 4 (+ 8 stats, num_batches_tracked not counted), linear 10
    assert counts == {"total": 138, "trainable": 22, "non_trainable": 116, "torch_total": 130}


@pytest.mark.parametrize("scheme", ["default", "normal", "glorot", "he"])
def test_init_schemes_change_weights(scheme: str) -> None:
    torch.manual_seed(0)
    model = create_model("cnn004")
    before = model.classifier.weight.detach().clone()
    init_weights(model, scheme, std=0.001)
    after = model.classifier.weight.detach()
    assert not torch.equal(before, after)
    if scheme == "normal":
        assert abs(after.std().item() - 0.001) < 0.0002
        assert torch.count_nonzero(model.classifier.bias) == 0
    if scheme == "glorot":
        fan_in, fan_out = after.shape[1], after.shape[0]
        limit = (6 / (fan_in + fan_out)) ** 0.5
        assert after.abs().max().item() <= limit


def test_init_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="unknown init scheme 'xavier'.*glorot"):
        init_weights(create_model("cnn004"), "xavier")


def test_input_size_reaches_flatten_heads_only() -> None:
    model = create_model("cnn004", input_size=36)
    assert model.classifier.in_features == 64 * 6 * 6  # 36 -> 34 -> 32 -> 16 -> 14 -> 12 -> 6
    assert model(torch.randn(2, 3, 36, 36)).shape == (2, 10)
    resnet = create_model("resnet20", input_size=64)  # global pooling: any size
    assert resnet(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    with pytest.raises(ValueError, match="input_size"):
        create_model("cnn004", input_size=0)


def test_freeze_all_but_head_like_report_000c() -> None:
    from cnnlab.models import freeze, unfreeze

    model = create_model("vgg16_cifar000c")
    assert freeze(model, ["classifier"]) == 5_130
    counts = count_params(model)
    assert counts["trainable"] == 5_130 and counts["total"] == 15_001_418
    with pytest.raises(ValueError, match="no parameter under 'clasifier'"):
        freeze(model, ["clasifier"])
    unfreeze(model, ["features.block5_conv3"])
    assert count_params(model)["trainable"] == 5_130 + 512 * 9 * 512 + 512
    assert unfreeze(model) == 14_991_946


def test_too_small_input_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="input size 8 is too small"):
        create_model("cnn004", input_size=8)
