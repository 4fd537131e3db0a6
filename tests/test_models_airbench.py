"""The airbench-style nets: the fixed whitening layer, its fit from data, and the engine's data init."""
import torch
from safetensors.torch import load_file

from cnnlab.models import count_params, create_model
from cnnlab.models.blocks import PatchWhitening
from cnnlab.train.experiment import load_experiment
from cnnlab.train.loop import train
from cnnlab.train.runtime import use_channels_last
from engine_helpers import REPO, tiny_overrides


def correlated_images(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 16, 16, generator=g)
    smooth = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(base, (1, 1, 1, 1), mode="replicate"), 3, 1)
    noise = 0.3 * torch.randn(n, 3, 16, 16, generator=g)
    return smooth.repeat(1, 3, 1, 1) + noise   # neighbouring pixels and channels strongly correlated


def test_fitted_whitening_decorrelates_patches():
    x = correlated_images()
    layer = PatchWhitening(3, 2, eps=0.0)
    before = layer(x)[:, :12].transpose(0, 1).reshape(12, -1)
    assert torch.corrcoef(before).abs().fill_diagonal_(0).max() > 0.5
    layer.fit(x)
    out = layer(x)[:, :12].transpose(0, 1).reshape(12, -1)    # the first half; the second is its negation
    cov = torch.cov(out)
    assert torch.allclose(cov, torch.eye(12), atol=2e-2), cov
    assert torch.equal(layer(x)[:, 12:], -layer(x)[:, :12])


def test_whitening_filters_are_a_buffer_not_a_parameter():
    model = create_model("airbench_cpu")
    names = dict(model.named_parameters())
    assert "whiten.weight" not in names and "whiten.bias" in names
    assert "whiten.weight" in model.state_dict()   # saved with the weights, so a loaded model is fitted
    # the airbench94 net has airbench's published size (1.97M), the CPU variant the reference (295K)
    assert count_params(create_model("airbench94"))["trainable"] == 1_972_504
    assert count_params(create_model("airbench_cpu"))["trainable"] == 294_808


def test_wrong_image_shape_is_a_clear_error():
    import pytest

    with pytest.raises(ValueError, match="N x 3 x H x W"):
        PatchWhitening(3).fit(torch.zeros(4, 1, 8, 8))


def test_engine_fits_whitening_from_data_and_training_leaves_it_fixed(tiny_cifar, tmp_path):
    cfg = load_experiment(REPO / "recipes" / "fast-cpu.yaml", tiny_overrides(**{"data.val_size": 0}))
    result = train(cfg, runs_dir=tmp_path, data_dir=str(tiny_cifar), quiet=True, log=lambda s: None)
    assert result.status == "completed"
    weights = load_file(str(result.run_dir / "model.safetensors"))
    fitted = weights["whiten.weight"]
    unfitted = create_model("airbench_cpu").state_dict()["whiten.weight"]
    assert not torch.allclose(fitted, unfitted)
    # what the engine fitted is the whitening of the first normalized training images, unchanged by training
    from cnnlab.data.loader import load_splits
    from cnnlab.data.normalize import Normalizer

    splits = load_splits(cfg.data, seed=cfg.seed, data_dir=str(tiny_cifar))
    normalizer = Normalizer.fit(cfg.data.normalize, splits.train.images)
    expected = PatchWhitening(3, 2)
    expected.fit(normalizer(splits.train.images[:5000]))
    assert torch.allclose(fitted, expected.weight, atol=1e-5)


def test_channels_last_auto_is_on_for_cpu_and_cuda():
    assert use_channels_last(None, torch.device("cpu")) and use_channels_last(None, torch.device("cuda"))
    assert not use_channels_last(False, torch.device("cpu"))


def test_separable_groups_cost_depthwise_plus_pointwise_weights():
    full = create_model("airbench_cpu", widths=[16, 32, 40])
    sep = create_model("airbench_cpu", widths=[16, 32, 40], separable=True)
    conv = sep.group3.conv2
    assert conv.depthwise.groups == 40 and conv.depthwise.weight.shape == (40, 1, 3, 3)
    assert conv.pointwise.weight.shape == (40, 40, 1, 1)
    # 3x3 conv weights 24*16 + 16*16 + 16*32 + 32*32 + 32*40 + 40*40 = 5,056 channel pairs at 9 each
    # (45,504); separable: those 5,056 pointwise weights plus one 3x3 filter per input channel
    # (24 + 16 + 16 + 32 + 32 + 40 = 160 channels, 1,440 weights)
    assert count_params(full)["trainable"] - count_params(sep)["trainable"] == 45_504 - (5_056 + 1_440)
    x = torch.randn(2, 3, 32, 32)
    assert sep(x).shape == (2, 10)


def test_separable_dirac_init_makes_every_depthwise_filter_an_identity():
    model = create_model("airbench_cpu", widths=[16, 32, 40], separable=True)
    x = torch.randn(3, 32, 7, 7)
    # the pointwise conv is random past its first in-channels, the depthwise one is a pure identity
    assert torch.allclose(model.group2.conv2.depthwise(x), x)
    pw = model.group3.conv1.pointwise.weight[:, :, 0, 0]          # 40 x 32, identity on its top block
    assert torch.equal(pw[:32], torch.eye(32))
