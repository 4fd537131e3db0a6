"""Layers of a model and their features: names, shapes, values equal to a manual forward, errors."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from cnnlab.data import Normalizer
from cnnlab.features.extract import extract_features
from cnnlab.features.layers import UnknownLayerError, find_layer, format_layers, model_layers
from cnnlab.models import create_model


def _images(n: int = 10, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _zscore(images: torch.Tensor) -> Normalizer:
    return Normalizer.fit("zscore", images)


def _trained_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Give batch norms non-trivial running statistics, so eval mode and train mode differ."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def test_layers_are_in_forward_order_with_the_interface_names_and_shapes():
    model = create_model("cnn004")
    layers = model_layers(model, (3, 32, 32))
    names = [layer.name for layer in layers]
    assert names[:3] == ["features.conv1", "features.conv2", "features.pool1"]
    assert names.index("features") < names.index("pre_logits") < names.index("classifier")
    by_name = {layer.name: layer for layer in layers}
    assert by_name["features.pool2"].shape == (64, 5, 5) and by_name["features.pool2"].dim == 1600
    assert by_name["classifier"].shape == (10,)
    assert "features.relu1" not in names  # activations only with include_all
    everything = [layer.name for layer in model_layers(model, (3, 32, 32), include_all=True)]
    assert "features.relu1" in everything and "features.bn1" in everything
    table = format_layers(layers)
    assert "features.pool2" in table and "64 x 5 x 5" in table and "1,600" in table


def test_a_module_called_twice_is_not_a_layer():
    """convnet002 applies one ReLU module after fc1 and after fc2: it has no single output."""
    names = [layer.name for layer in model_layers(create_model("convnet002"), (3, 32, 32), include_all=True)]
    assert "relu" not in names
    assert {"fc1", "drop1", "fc2", "features.flatten", "pre_logits"} <= set(names)
    with pytest.raises(UnknownLayerError, match="unknown layer 'relu'"):
        extract_features(create_model("convnet002"), _images(2), _zscore(_images(2)), "relu")


@pytest.mark.parametrize("layer", ["features.conv2", "features.pool1", "features.flatten"])
def test_a_module_layers_features_equal_a_manual_forward_to_it(layer):
    model = _trained_bn(create_model("cnn004")).train()  # extraction must switch to eval itself
    images = _images(13)
    norm = _zscore(images)
    got = extract_features(model, images, norm, layer, batch_size=4)  # 4 batches, the last of one image
    assert model.training, "the model's mode is restored"
    model.eval()
    children = list(model.features.named_children())
    upto = [name for name, _ in children].index(layer.split(".")[1]) + 1
    with torch.no_grad():
        want = model.features[:upto](norm(images)).reshape(len(images), -1).numpy()
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_interface_layers_equal_forward_features_and_pre_logits():
    model = _trained_bn(create_model("convnet002", dropout1=0.5, dropout2=0.5)).eval()
    images = _images(6)
    norm = _zscore(images)
    x = norm(images)
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        fc1 = model.fc1(feats)
        drop1 = torch.relu(fc1)  # eval-mode dropout after the ReLU: the post-activation fc1
    for layer, want in (("features", feats), ("pre_logits", pre), ("fc1", fc1), ("drop1", drop1)):
        np.testing.assert_allclose(extract_features(model, images, norm, layer), want.numpy(), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # pre_logits is what the last layer sees: fc3(pre_logits) is the model's output
        np.testing.assert_allclose(model.fc3(torch.from_numpy(extract_features(model, images, norm, "pre_logits"))),
                                   model(x), rtol=1e-5, atol=1e-5)


def test_a_block_of_a_residual_network_equals_a_manual_forward():
    model = _trained_bn(create_model("resnet20")).eval()
    images = _images(5)
    norm = _zscore(images)
    with torch.no_grad():
        x = model.relu(model.bn1(model.conv1(norm(images))))
        want = model.layer2(model.layer1(x)).reshape(5, -1).numpy()
    np.testing.assert_allclose(extract_features(model, images, norm, "layer2"), want, rtol=1e-5, atol=1e-5)


def test_an_unknown_layer_names_the_layers():
    model = create_model("cnn004")
    with pytest.raises(ValueError) as err:
        extract_features(model, _images(2), _zscore(_images(2)), "features.conv9")
    message = str(err.value)
    assert "unknown layer 'features.conv9'" in message
    for name in ("features.conv1", "features.pool2", "features", "pre_logits", "classifier"):
        assert name in message
    assert "cnnlab layers RUN" in message
    with pytest.raises(UnknownLayerError):
        find_layer(model_layers(model, (3, 32, 32)), "nope")


def test_an_input_the_model_cannot_take_is_a_clear_error():
    with pytest.raises(ValueError, match="does not fit this model"):
        model_layers(create_model("cnn004"), (3, 4, 4))
