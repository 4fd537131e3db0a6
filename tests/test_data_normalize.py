"""Normalizer: statistics from train only, every kind, state round trip."""
import io

import pytest
import torch

from cnnlab.data import DataError, Normalizer


def uint8_images(n, low, high, seed=0):
    return torch.randint(low, high, (n, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_per_channel_matches_float64_reference_and_standardizes_train():
    train = uint8_images(50, 0, 256)
    train[:, 2] //= 2  # a channel with different statistics
    norm = Normalizer.fit("per_channel", train)
    ref = train.double()
    assert torch.allclose(norm.mean.double(), ref.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.allclose(norm.std.double(), ref.std(dim=(0, 2, 3), unbiased=False), atol=1e-4)
    out = norm(train)
    assert out.dtype == torch.float32 and out.device == train.device
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(out.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)


def test_statistics_come_from_train_only():
    train, test = uint8_images(40, 0, 100, seed=1), uint8_images(40, 150, 256, seed=2)
    fitted = Normalizer.fit("per_channel", train)
    on_test = Normalizer.fit("per_channel", test)
    assert not torch.allclose(fitted.mean, on_test.mean, atol=1.0)  # test stats differ...
    out = fitted(test)  # ...and are not used: test comes out far from zero mean
    assert float(out.mean()) > 2.0
    assert torch.allclose(out, (test.float() - fitted.mean.view(1, 3, 1, 1)) / fitted.std.view(1, 3, 1, 1), atol=1e-5)


def test_zscore_uses_one_global_mean_and_std():
    train = uint8_images(30, 0, 256)
    train[:, 0] //= 4
    norm = Normalizer.fit("zscore", train)
    assert norm.mean.shape == (1,) and norm.std.shape == (1,)
    assert abs(float(norm.mean) - float(train.double().mean())) < 1e-3
    assert abs(float(norm.std) - float(train.double().std(unbiased=False))) < 1e-3
    out = norm(train)
    assert abs(float(out.mean())) < 1e-4 and abs(float(out.std(unbiased=False)) - 1) < 1e-4


def test_center_subtracts_the_train_mean_per_channel_and_keeps_pixel_units():
    train, test = uint8_images(30, 0, 256, seed=3), uint8_images(10, 0, 256, seed=4)
    train[:, 0] //= 4   # channel means far apart: one global mean would not center channel 0
    norm = Normalizer.fit("center", train)
    means = train.double().mean(dim=(0, 2, 3))
    assert torch.allclose(norm.mean.double(), means, atol=1e-3) and torch.equal(norm.std, torch.ones(3))
    assert torch.allclose(norm(train).double().mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-3)
    # 0..255 units, not divided by a std: the spread of the values is the pixels' own
    assert torch.equal(norm(test), test.float() - norm.mean.view(1, 3, 1, 1))
    assert float(norm(train).std()) > 30


def test_fixed_kinds():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(1, 3, 1, 3).contiguous()
    assert torch.equal(Normalizer.fit("none", x)(x), x.float())
    assert torch.allclose(Normalizer.fit("unit", x)(x), x.float() / 255)
    imnet = Normalizer.fit("imagenet", x)(x)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(imnet, (x.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1), atol=1e-5)


def test_state_dict_round_trip_with_weights_only_load():
    norm = Normalizer.fit("per_channel", uint8_images(10, 0, 256))
    buf = io.BytesIO()
    torch.save(norm.state_dict(), buf)
    buf.seek(0)
    back = Normalizer.from_state_dict(torch.load(buf, weights_only=True))
    x = uint8_images(4, 0, 256, seed=9)
    assert back.kind == "per_channel" and torch.equal(back(x), norm(x))


def test_constant_train_split_is_an_error():
    with pytest.raises(DataError, match="std"):
        Normalizer.fit("per_channel", torch.full((4, 3, 2, 2), 7, dtype=torch.uint8))


def test_unknown_kind_and_bad_state():
    with pytest.raises(DataError, match="minmax"):
        Normalizer.fit("minmax", uint8_images(2, 0, 256))
    with pytest.raises(DataError, match="mean"):
        Normalizer.from_state_dict({"kind": "unit", "std": torch.ones(1)})
