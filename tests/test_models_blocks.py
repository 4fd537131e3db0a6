"""The public building blocks: shapes, parameter counts and the structural promises they make."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.models import count_params
from cnnlab.models.blocks import (
    BasicBlock,
    ConcatResidual,
    ConvBNAct,
    DenseBlock,
    DenseLayer,
    InceptionBlock,
    InvertedResidual,
    PadShortcut,
    Transition,
    VGGStage,
    make_activation,
)


@pytest.mark.parametrize(("name", "cls"), [("relu", nn.ReLU), ("relu6", nn.ReLU6), ("gelu", nn.GELU), ("silu", nn.SiLU)])
def test_activation_choice(name: str, cls: type) -> None:
    assert isinstance(make_activation(name), cls)


def test_unknown_activation() -> None:
    with pytest.raises(ValueError, match="unknown activation 'relu7'.*relu6"):
        make_activation("relu7")


def test_conv_bn_act_orders_and_bias() -> None:
    pt = ConvBNAct(3, 8, 3, act="relu6")
    assert list(dict(pt.named_children())) == ["conv", "bn", "act"] and pt.conv.bias is None
    keras = ConvBNAct(3, 8, 3, padding="valid", order="conv-act-bn")
    assert list(dict(keras.named_children())) == ["conv", "act", "bn"] and keras.conv.bias is not None
    assert count_params(keras)["total"] == 3 * 9 * 8 + 8 + 4 * 8  # Keras: conv 224 + BN 32
    assert keras(torch.randn(2, 3, 10, 10)).shape == (2, 8, 8, 8)
    assert ConvBNAct(3, 8, 3, stride=2)(torch.randn(2, 3, 10, 10)).shape == (2, 8, 5, 5)
    with pytest.raises(ValueError, match="padding"):
        ConvBNAct(3, 8, 3, padding="full")


def test_basic_block_projection_and_pad() -> None:
    x = torch.randn(2, 16, 8, 8)
    proj = BasicBlock(16, 32, stride=2)
    assert isinstance(proj.downsample, nn.Sequential) and proj(x).shape == (2, 32, 4, 4)
    pad = BasicBlock(16, 32, stride=2, shortcut="pad")
    assert isinstance(pad.downsample, PadShortcut) and pad(x).shape == (2, 32, 4, 4)
    assert BasicBlock(16, 16).downsample is None
    shortcut = PadShortcut(16, 32, 2)(x)
    assert torch.equal(shortcut[:, :16], x[:, :, ::2, ::2]) and shortcut[:, 16:].abs().sum() == 0


def test_identity_block_adds_input() -> None:
    block = BasicBlock(8, 8).eval()
    for p in block.parameters():
        nn.init.zeros_(p)  # the residual branch now outputs 0
    x = torch.rand(2, 8, 6, 6)
    assert torch.allclose(block(x), torch.relu(x))


def test_concat_residual_keeps_input() -> None:
    block = ConcatResidual(64, 128, 64, pool=False)
    x = torch.randn(2, 64, 6, 6)
    out = block(x)
    assert out.shape == (2, 128, 6, 6) and torch.equal(out[:, :64], x)
    assert ConcatResidual(64, 128, 64)(x).shape == (2, 128, 3, 3)


def test_inception_block() -> None:
    block = InceptionBlock(64, 64)
    assert block(torch.randn(2, 64, 6, 6)).shape == (2, 192, 6, 6)
    assert count_params(block)["total"] == 4 * (9 * 64 * 64 + 64)


def test_dense_layer_block_transition() -> None:
    layer = DenseLayer(24, growth=12)
    x = torch.randn(2, 24, 8, 8)
    out = layer(x)
    assert out.shape == (2, 36, 8, 8) and torch.equal(out[:, :24], x)
    block = DenseBlock(24, num_layers=3, growth=12)
    assert block.out_chans == 60 and block(x).shape == (2, 60, 8, 8)
    trans = Transition(60, 30)
    assert trans(block(x)).shape == (2, 30, 4, 4)


def test_inverted_residual_linear_bottleneck() -> None:
    block = InvertedResidual(16, 16, stride=1, expand_ratio=6)
    assert block.use_res_connect
    assert isinstance(block.conv[-1], nn.BatchNorm2d)  # no activation after the projection
    assert isinstance(block.conv[0][2], nn.ReLU6) and block.conv[0][0].out_channels == 96
    assert block.conv[1][0].groups == 96  # depthwise
    down = InvertedResidual(16, 24, stride=2)
    assert not down.use_res_connect and down(torch.randn(2, 16, 8, 8)).shape == (2, 24, 4, 4)
    with pytest.raises(ValueError, match="stride"):
        InvertedResidual(16, 16, stride=3)


def test_vgg_stage() -> None:
    stage = VGGStage(3, 64, num_convs=2, batch_norm=True)
    assert stage(torch.randn(2, 3, 32, 32)).shape == (2, 64, 16, 16)
    assert count_params(stage)["total"] == (3 * 9 * 64 + 64) + (64 * 9 * 64 + 64) + 2 * 4 * 64


def test_mobilenetv2_width_and_hidden_head() -> None:
    from cnnlab.models import create_model

    half = create_model("mobilenetv2", width_mult=0.5)
    full = create_model("mobilenetv2")
    assert count_params(half)["trainable"] < count_params(full)["trainable"] / 2
    assert half.features[0][0].out_channels == 16
    head = create_model("mobilenetv2", hidden=[64, 32], num_classes=3)
    x = torch.randn(2, 3, 8, 8)
    assert head(x).shape == (2, 3)
    assert head.forward_head(head.forward_features(x), pre_logits=True).shape == (2, 32)
