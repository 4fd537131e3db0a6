"""cnnlab's LocalResponseNorm: nn.LocalResponseNorm's values and gradients (every window size, both
memory layouts, bf16 autocast), its window sum taken as a band matmul."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.models import create_model
from cnnlab.models.blocks import LocalResponseNorm
from cnnlab.models.blocks.lrn import channel_band

MODELS_DIR = Path(__file__).resolve().parents[1] / "src" / "cnnlab" / "models"


def _input(channels_last: bool, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 13, 5, 4, generator=g, dtype=torch.float64) * 3
    return x.to(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("size", [1, 2, 4, 5, 9, 13, 20])
@pytest.mark.parametrize("channels_last", [False, True])
def test_values_and_gradients_equal_torch(size, channels_last):
    """In float64 the two must agree to rounding: a wrong window edge (an off-by-one in the band)
    or a wrong constant moves values by far more than 1e-10; float32 input agrees to float32."""
    x_ref = _input(channels_last).requires_grad_()
    x_new = _input(channels_last).requires_grad_()
    args = dict(alpha=0.05, beta=0.75, k=2.0)
    ref = nn.LocalResponseNorm(size, **args)(x_ref)
    out = LocalResponseNorm(size, **args)(x_new)
    x32 = _input(channels_last).float().requires_grad_()
    out32 = LocalResponseNorm(size, **args)(x32)
    grad = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (g_ref,) = torch.autograd.grad(ref, x_ref, grad)
    (g_new,) = torch.autograd.grad(out, x_new, grad)
    (g32,) = torch.autograd.grad(out32, x32, grad.float())
    assert out.dtype == torch.float64 and out32.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_new, g_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out32.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g32.double(), g_ref, rtol=1e-5, atol=1e-6)


def test_band_marks_the_window_torch_pads():
    """size 4: torch pads 2 channels before and 1 after, so channel c sums c-2 .. c+1."""
    band = channel_band(6, 4)
    assert band[3].tolist() == [0, 1, 1, 1, 1, 0]
    assert band[0].tolist() == [1, 1, 0, 0, 0, 0]
    assert band[5].tolist() == [0, 0, 0, 1, 1, 1]


def test_bf16_autocast_keeps_the_input_type_and_sums_in_float32():
    x = torch.rand(2, 16, 6, 6) * 4
    ref = nn.LocalResponseNorm(9, 0.001, 0.75, 1.0)(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = LocalResponseNorm(9, 0.001, 0.75, 1.0)(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)


def test_channels_last_output_stays_channels_last():
    x = torch.rand(2, 8, 5, 5).to(memory_format=torch.channels_last)
    out = LocalResponseNorm(5)(x)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_not_4d_input_uses_torch_and_matches():
    x = torch.rand(2, 8, 7)
    torch.testing.assert_close(LocalResponseNorm(5)(x), nn.LocalResponseNorm(5)(x))


def test_meta_tensors_give_the_shape():
    """Shape inference builds models on the meta device (tests, summaries): it must not fail."""
    with torch.device("meta"):
        out = LocalResponseNorm(9)(torch.empty(2, 16, 5, 5))
        model = create_model("convnet002")
        logits = model(torch.empty(2, 3, 32, 32))
    assert out.shape == (2, 16, 5, 5) and out.device.type == "meta"
    assert logits.shape == (2, 10)


def test_is_an_nn_lrn_with_the_same_repr_and_no_state():
    layer = LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0)
    assert isinstance(layer, nn.LocalResponseNorm)
    assert repr(layer) == repr(nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0))
    assert layer.state_dict() == {}


def test_convnet002_uses_it_and_matches_torch_lrn():
    """The 002 ConvNet gives the same logits as with torch's own LRN layers put back."""
    torch.manual_seed(0)
    model = create_model("convnet002").eval()
    assert isinstance(model.features.norm1, LocalResponseNorm)
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        ours = model(x)
        model.features.norm1 = nn.LocalResponseNorm(9, 0.001, 0.75, 1.0)
        model.features.norm2 = nn.LocalResponseNorm(9, 0.001, 0.75, 1.0)
        theirs = model(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_model_files_use_cnnlab_lrn():
    """A model written with torch's nn.LocalResponseNorm would train about 2x slower on the CPU
    (benchmarks/lrn_step.py: 1.96x the 002 ConvNet's step)."""
    offenders = [str(p.relative_to(MODELS_DIR)) for p in MODELS_DIR.rglob("*.py")
                 if p.name != "lrn.py" and "nn.LocalResponseNorm(" in p.read_text()]
    assert offenders == [], f"use cnnlab.models.blocks.LocalResponseNorm in {offenders}"
