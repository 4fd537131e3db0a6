"""cnnlab's Dropout: nn.Dropout's behaviour (drop rate, scaling, gradient, eval, seeding) with a
mask drawn from 64-bit words on the CPU."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.models.blocks import Dropout

MODELS_DIR = Path(__file__).resolve().parents[1] / "src" / "cnnlab" / "models"


def test_drop_rate_and_scale_match_p():
    torch.manual_seed(0)
    layer = Dropout(0.25).train()
    out = layer(torch.ones(1000, 1000))
    dropped = (out == 0).float().mean().item()
    # binomial std over 1e6 draws: 4.3e-4; 0.003 is 7 of them
    assert abs(dropped - 0.25) < 0.003
    assert torch.allclose(out[out != 0], torch.full_like(out[out != 0], 1 / 0.75))
    assert abs(out.mean().item() - 1.0) < 0.005   # the expectation is kept


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_other_rates(p):
    torch.manual_seed(1)
    out = Dropout(p).train()(torch.ones(500, 1000))
    assert abs((out == 0).float().mean().item() - p) < 0.005


def test_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(0)
    x = torch.randn(8, 16, 6, 6, requires_grad=True)
    out = Dropout(0.5).train()(x)
    out.sum().backward()
    expected = (out.detach() != 0).float() * 2.0
    assert torch.equal(x.grad, expected)


def test_eval_mode_and_p_zero_pass_the_input_through():
    x = torch.randn(4, 3, 5, 5)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.count_nonzero(Dropout(1.0).train()(x)) == 0


def test_seeded_masks_repeat_and_successive_masks_differ():
    layer = Dropout(0.3).train()
    x = torch.ones(64, 32, 7, 7)
    torch.manual_seed(5)
    a, b = layer(x), layer(x)
    torch.manual_seed(5)
    assert torch.equal(layer(x), a)
    assert not torch.equal(a, b)


def test_channels_last_input_keeps_its_layout_and_rate():
    torch.manual_seed(0)
    x = torch.ones(32, 16, 20, 20).contiguous(memory_format=torch.channels_last)
    out = Dropout(0.25).train()(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert abs((out == 0).float().mean().item() - 0.25) < 0.01
    # no channel or position is spared: every channel loses about a quarter
    per_channel = (out == 0).float().mean(dim=(0, 2, 3))
    assert per_channel.min() > 0.2 and per_channel.max() < 0.3


def test_a_strided_view_and_inplace_still_drop():
    torch.manual_seed(0)
    x = torch.ones(200, 400)[:, ::2]          # not dense: nn.Dropout's own path
    assert abs((Dropout(0.25).train()(x) == 0).float().mean().item() - 0.25) < 0.01
    y = torch.ones(300, 300)
    out = Dropout(0.25, inplace=True).train()(y)
    assert out.data_ptr() == y.data_ptr() and abs((y == 0).float().mean().item() - 0.25) < 0.01


def test_is_an_nn_dropout_with_the_same_repr():
    layer = Dropout(0.25)
    assert isinstance(layer, nn.Dropout) and repr(layer) == repr(nn.Dropout(0.25))
    assert layer.state_dict() == {}


def test_model_files_use_cnnlab_dropout():
    """A model written with torch's nn.Dropout would train slower on the CPU without anyone noticing."""
    offenders = [str(p.relative_to(MODELS_DIR)) for p in MODELS_DIR.rglob("*.py")
                 if p.name != "dropout.py" and "nn.Dropout(" in p.read_text()]
    assert offenders == [], f"use cnnlab.models.blocks.Dropout in {offenders}"
