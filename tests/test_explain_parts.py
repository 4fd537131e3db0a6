"""The explain package's parts: conv layers by name or position, activations against a manual
forward pass, filters by gradient ascent, images from a file."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnlab.data import Normalizer
from cnnlab.explain import AscentSettings, capture_outputs, conv_layers, default_layers, resolve_layer
from cnnlab.explain import from_file, visualize_filters
from cnnlab.models import create_model

CNN004_CONVS = ["features.conv1", "features.conv2", "features.conv3", "features.conv4"]


@pytest.fixture(scope="module")
def cnn004():
    torch.manual_seed(0)
    return create_model("cnn004").eval()


def test_conv_layers_in_forward_order_and_resolved_by_name_or_position(cnn004):
    layers = conv_layers(cnn004, (3, 32, 32))
    assert layers == CNN004_CONVS
    assert resolve_layer("1", layers) == "features.conv1" and resolve_layer("4", layers) == "features.conv4"
    assert resolve_layer("-1", layers) == "features.conv4"
    assert resolve_layer("features.conv2", layers) == "features.conv2"
    assert default_layers(layers) == ["features.conv1", "features.conv4"]  # report 001-b: layers 1 and 4
    assert default_layers(layers[:2]) == ["features.conv1", "features.conv2"]


@pytest.mark.parametrize("name", ["conv9", "0", "5", "features.pool1"])
def test_unknown_layer_lists_the_conv_layers(cnn004, name):
    listing = r"unknown conv layer .*1 features\.conv1, 2 features\.conv2.*4 features\.conv4"
    with pytest.raises(ValueError, match=listing):
        resolve_layer(name, conv_layers(cnn004, (3, 32, 32)))


def test_resnet_last_conv_is_the_last_one_run():
    # torchvision-style blocks register the downsample conv after conv2; the forward order decides
    layers = conv_layers(create_model("resnet18"), (3, 32, 32))
    assert layers[-1] == "layer4.1.conv2" and len(layers) == 20


def test_activations_equal_a_manual_forward(cnn004):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    logits, kept = capture_outputs(cnn004, x, ["features.conv1", "features.conv4"])
    conv1 = cnn004.features.conv1
    by_hand = F.conv2d(x, conv1.weight, conv1.bias, conv1.stride, conv1.padding)
    torch.testing.assert_close(kept["features.conv1"], by_hand)
    manual = x  # the feature stack run layer by layer up to conv4
    for name, module in cnn004.features.named_children():
        manual = module(manual)
        if name == "conv4":
            break
    torch.testing.assert_close(kept["features.conv4"], manual)
    torch.testing.assert_close(logits, cnn004(x))
    _, early = capture_outputs(cnn004, x, ["features.conv4"], stop_early=True)
    torch.testing.assert_close(early["features.conv4"], manual)


def test_inplace_relu_after_the_layer_does_not_overwrite_the_activation():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).eval()
    x = torch.randn(1, 3, 8, 8)
    _, kept = capture_outputs(net, x, ["0"])
    expected = F.conv2d(x, net[0].weight, net[0].bias)
    assert expected.min() < 0
    torch.testing.assert_close(kept["0"], expected)


UNIT = Normalizer("unit", torch.zeros(1), torch.full((1,), 255.0))


@pytest.mark.parametrize("layer", ["features.conv1", "features.conv4"])
def test_gradient_ascent_raises_each_filters_mean_activation(cnn004, layer):
    settings = AscentSettings(steps=12, seed=3)
    result = visualize_filters(cnn004, layer, UNIT, (3, 32, 32), count=4, settings=settings)
    assert result.filters == [0, 1, 2, 3] and result.images.shape == (4, 3, 32, 32)
    assert result.images.dtype == np.uint8
    assert np.all(result.end > result.start + 1e-3), (result.start, result.end)
    # the start is what the filter gives on the seeded noise: recompute it independently
    g = torch.Generator().manual_seed(3)
    noise = (0.5 + 0.1 * torch.randn(4, 3, 32, 32, generator=g)).clamp(0, 1)
    with torch.no_grad():
        _, kept = capture_outputs(cnn004, UNIT(noise * 255), [layer])
    np.testing.assert_allclose(result.start, kept[layer][torch.arange(4), torch.arange(4)].mean(dim=(1, 2)).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_gradient_ascent_is_seeded(cnn004):
    run = lambda seed: visualize_filters(cnn004, "features.conv2", UNIT, (3, 32, 32), filters=[5, 7],  # noqa: E731
                                         settings=AscentSettings(steps=4, seed=seed))
    a, b, c = run(0), run(0), run(1)
    assert a.filters == [5, 7]
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


def test_gradient_ascent_errors(cnn004):
    with pytest.raises(ValueError, match="filter 40 does not exist: features.conv1 has filters 0..31"):
        visualize_filters(cnn004, "features.conv1", UNIT, (3, 32, 32), filters=[40])
    with pytest.raises(ValueError, match="at least 1 step"):
        visualize_filters(cnn004, "features.conv1", UNIT, (3, 32, 32), settings=AscentSettings(steps=0))
    with pytest.raises(ValueError, match="not a conv layer"):
        visualize_filters(cnn004, "features.pool1", UNIT, (3, 32, 32))


class _Config:
    class data:  # noqa: N801 (stands for the run's config.data)
        name, image_size = "folder", 20


def test_image_file_is_decoded_like_the_runs_data(tmp_path):
    path = tmp_path / "my cat.png"
    Image.fromarray(np.full((40, 50), 200, dtype=np.uint8), mode="L").save(path)  # grey, another size
    source = from_file(path, _Config)
    assert source.image.shape == (3, 20, 20) and source.image.dtype == np.uint8
    assert np.all(source.image == 200) and source.slug == "image-my_cat" and source.label is None
    with pytest.raises(ValueError, match="no such file"):
        from_file(tmp_path / "absent.png", _Config)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="Pillow cannot read it"):
        from_file(tmp_path / "bad.png", _Config)
