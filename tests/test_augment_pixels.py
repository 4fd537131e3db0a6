"""The pixel-value augmentations of issue 40: batched JPEG against Pillow's codec, every
TrivialAugment op against PIL's definition, and their place in the Augmenter (reproducible,
data-parallel slices, normalization undone and redone)."""
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from cnnlab.data import AugmentConfig, Augmenter, DataError
from cnnlab.data import trivial_augment as ta
from cnnlab.data.jpeg_augment import CHROMA_TABLE, LUMA_TABLE, jpeg_batch, quality_tables
from cnnlab.data.normalize import Normalizer


def photos(n=12, h=32, w=32, seed=0) -> np.ndarray:
    """Photo-like uint8 images (N x 3 x H x W): smooth colour fields, an edge, mild noise."""
    rng = np.random.default_rng(seed)
    coarse = torch.tensor(rng.uniform(0, 255, (n, 3, 4, 4)), dtype=torch.float32)
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).numpy()
    edge = (np.arange(w) > rng.integers(w // 4, 3 * w // 4, (n, 1, 1, 1))) * rng.uniform(-60, 60, (n, 3, 1, 1))
    return np.clip(smooth + edge + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)


def pillow_jpeg(img: np.ndarray, quality: int, subsampling: int = 2):
    buf = io.BytesIO()
    Image.fromarray(img.transpose(1, 2, 0).squeeze()).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    buf.seek(0)
    decoded = Image.open(buf)
    pixels = np.asarray(decoded, dtype=np.float64)
    return (pixels.transpose(2, 0, 1) if pixels.ndim == 3 else pixels[None]), decoded.quantization


@pytest.mark.parametrize("quality", [5, 30, 50, 75, 95, 100])
def test_quantization_tables_are_the_ones_pillow_writes(quality):
    _, written = pillow_jpeg(photos(1)[0], quality)
    q = torch.tensor([quality])
    assert quality_tables(q, LUMA_TABLE)[0].flatten().tolist() == list(written[0])
    assert quality_tables(q, CHROMA_TABLE)[0].flatten().tolist() == list(written[1])


@pytest.mark.parametrize("quality,subsampling", [(95, 2), (75, 2), (50, 2), (20, 2), (75, 0)])
def test_batched_jpeg_is_close_to_pillows_codec(quality, subsampling):
    images = photos()
    ours = jpeg_batch(torch.tensor(images).float(), torch.full((len(images),), quality), subsampling=bool(subsampling))
    ref = np.stack([pillow_jpeg(img, quality, subsampling)[0] for img in images])
    codec_change = np.abs(images - ref).mean()
    ours_off = np.abs(ours.numpy() - ref).mean()
    # libjpeg's integer DCTs round differently from float ones: a fraction of one level on average,
    # against the several levels the compression itself changes.
    assert ours_off < 1.0 and ours_off < 0.3 * codec_change, (ours_off, codec_change)
    assert ours.min() >= 0 and ours.max() <= 255 and torch.equal(ours, torch.round(ours))


def test_jpeg_odd_sizes_grey_images_and_per_image_quality():
    images = photos(4, h=20, w=28)
    x = torch.tensor(images).float()
    ours = jpeg_batch(x, torch.full((4,), 60))
    ref = np.stack([pillow_jpeg(img, 60)[0] for img in images])
    assert ours.shape == x.shape and np.abs(ours.numpy() - ref).mean() < 1.0
    grey = x[:, :1]
    ours_grey = jpeg_batch(grey, torch.full((4,), 60))
    ref_grey = np.stack([pillow_jpeg(img.astype(np.uint8), 60)[0] for img in grey.numpy()])
    assert np.abs(ours_grey.numpy() - ref_grey).mean() < 1.0
    mixed = jpeg_batch(x, torch.tensor([95, 10, 95, 10]))
    assert torch.equal(mixed[0::2], jpeg_batch(x[0::2], torch.full((2,), 95)))
    assert torch.equal(mixed[1::2], jpeg_batch(x[1::2], torch.full((2,), 10)))
    assert (mixed[1::2] - x[1::2]).abs().mean() > 2 * (mixed[0::2] - x[0::2]).abs().mean()
    with pytest.raises(DataError, match="1 or 3 channels"):
        jpeg_batch(torch.zeros(1, 2, 8, 8), torch.tensor([50]))
    with pytest.raises(DataError, match="one quality per image"):
        jpeg_batch(x, torch.tensor([50]))


def _pil(images, i):
    return Image.fromarray(images[i].transpose(1, 2, 0))


def _back(img):
    return np.asarray(img, dtype=np.float64).transpose(2, 0, 1)


PIL_REFERENCE = {
    "brightness": (lambda x: ta.brightness(x, torch.full((len(x),), 1.6)), lambda im: ImageEnhance.Brightness(im).enhance(1.6)),
    "color": (lambda x: ta.color(x, torch.full((len(x),), 0.3)), lambda im: ImageEnhance.Color(im).enhance(0.3)),
    "contrast": (lambda x: ta.contrast(x, torch.full((len(x),), 1.7)), lambda im: ImageEnhance.Contrast(im).enhance(1.7)),
    "sharpness": (lambda x: ta.sharpness(x, torch.full((len(x),), 1.9)), lambda im: ImageEnhance.Sharpness(im).enhance(1.9)),
    "posterize": (lambda x: ta.posterize(x, torch.full((len(x),), 3.0)), lambda im: ImageOps.posterize(im, 3)),
    "solarize": (lambda x: ta.solarize(x, torch.full((len(x),), 100.0)), lambda im: ImageOps.solarize(im, 100)),
    "autocontrast": (ta.autocontrast, ImageOps.autocontrast),
    "equalize": (ta.equalize, ImageOps.equalize),
    "shear_x": (lambda x: ta.geometric(x, torch.full((len(x),), 0), torch.full((len(x),), 0.3)),
                lambda im: im.transform(im.size, Image.AFFINE, (1, 0.3, 0, 0, 1, 0))),
    "shear_y": (lambda x: ta.geometric(x, torch.full((len(x),), 1), torch.full((len(x),), -0.4)),
                lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0, -0.4, 1, 0))),
    "translate_x": (lambda x: ta.geometric(x, torch.full((len(x),), 2), torch.full((len(x),), 3.0)),
                    lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 3, 0, 1, 0))),
    "translate_y": (lambda x: ta.geometric(x, torch.full((len(x),), 3), torch.full((len(x),), -5.0)),
                    lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, -5))),
    "rotate": (lambda x: ta.geometric(x, torch.full((len(x),), 4), torch.full((len(x),), 30.0)), lambda im: im.rotate(30)),
}


@pytest.mark.parametrize("name", sorted(PIL_REFERENCE))
def test_trivial_augment_ops_equal_pil(name):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 3, 12, 10), dtype=np.uint8)
    images[1] //= 3        # a low-contrast image: autocontrast and equalize have work to do
    images[2, 0] = 77      # a flat channel: autocontrast leaves it as it is
    ours_fn, pil_fn = PIL_REFERENCE[name]
    ours = ours_fn(torch.tensor(images).float()).numpy()
    ref = np.stack([_back(pil_fn(_pil(images, i))) for i in range(len(images))])
    assert np.array_equal(ours, ref), f"{name}: {int((ours != ref).sum())} values differ"


def test_trivial_augment_dispatch_signs_and_magnitudes():
    x = torch.tensor(photos(len(ta.OPS), h=16, w=16)).float()
    n = len(ta.OPS)
    op = torch.arange(n)
    level = torch.full((n,), 30)
    sign = torch.zeros(n, dtype=torch.bool)
    out = ta.trivial_augment(x, op, level, sign)
    assert torch.equal(out[0], x[0])                                        # identity
    assert torch.equal(out[ta.OPS.index("solarize")], 255 - x[ta.OPS.index("solarize")])   # threshold 0 at level 30
    k = ta.OPS.index("posterize")
    assert torch.equal(out[k], ta.posterize(x[k:k + 1], torch.tensor([2.0]))[0])     # 2 bits at level 30
    k = ta.OPS.index("brightness")
    top = ta.magnitude("brightness", torch.tensor([30]))   # 0.99
    assert torch.equal(out[k], ta.brightness(x[k:k + 1], 1 + top)[0])
    flipped = ta.trivial_augment(x, op, level, ~sign)
    assert torch.equal(flipped[k], ta.brightness(x[k:k + 1], 1 - top)[0])   # signed
    assert torch.equal(flipped[ta.OPS.index("equalize")], out[ta.OPS.index("equalize")])       # unsigned
    zero = ta.trivial_augment(x, op, torch.zeros(n, dtype=torch.long), sign)
    for name in ta.GEOMETRIC + ("brightness", "color", "contrast", "sharpness"):
        k = ta.OPS.index(name)   # magnitude 0 leaves the image as it is (factor 1, no move)
        assert torch.equal(zero[k], x[k]), name
    assert ta.magnitude("translate_x", torch.tensor([30]), size=64).item() == 64.0


def _normalizer():
    return Normalizer("per_channel", torch.tensor([120.0, 110.0, 100.0]), torch.tensor([60.0, 55.0, 65.0]))


def _normalized(n=16, seed=0):
    norm = _normalizer()
    return norm, norm(torch.tensor(photos(n, seed=seed)))


def test_augmenter_pixel_stage_is_reproducible_sliceable_and_on_levels():
    norm, x = _normalized()
    aug = Augmenter(AugmentConfig(hflip=True, trivial_augment=True, jpeg_quality=[20, 80], jpeg_p=0.5), norm)
    y = aug(x, torch.Generator().manual_seed(5))
    assert y.shape == x.shape and not torch.equal(y, x)
    assert torch.equal(aug(x, torch.Generator().manual_seed(5)), y)
    assert not torch.equal(aug(x, torch.Generator().manual_seed(6)), y)
    pixels = norm.to_pixels(y)
    assert torch.allclose(pixels, torch.round(pixels), atol=1e-3)   # 8-bit levels, as a decoded image
    # One rank's rows of a data-parallel batch get what one process gives them.
    rows = aug(x[4:12], torch.Generator().manual_seed(5), part=(4, 16))
    assert torch.allclose(rows, y[4:12], atol=1e-5)


def test_jpeg_share_and_quality_range_are_honoured():
    norm, x = _normalized(n=64)
    none = Augmenter(AugmentConfig(jpeg_quality=[50, 50], jpeg_p=0.0), norm)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(none, x, atol=1e-5)
    every = Augmenter(AugmentConfig(jpeg_quality=[50, 50], jpeg_p=1.0), norm)(x, torch.Generator().manual_seed(0))
    expected = norm(jpeg_batch(torch.round(norm.to_pixels(x)), torch.full((64,), 50)))
    assert torch.allclose(every, expected, atol=1e-4)
    half = Augmenter(AugmentConfig(jpeg_quality=[50, 50], jpeg_p=0.5), norm)(x, torch.Generator().manual_seed(0))
    changed = (half - x).abs().flatten(1).amax(1) > 1e-3
    assert 16 < int(changed.sum()) < 48


def test_pixel_ops_need_the_normalizer_and_valid_settings():
    with pytest.raises(DataError, match="normalizer"):
        Augmenter(AugmentConfig(trivial_augment=True))
    for bad in ([95, 30], [0, 50], [50], [50, 101], [True, 50]):
        with pytest.raises(ValueError, match="augment.jpeg_quality"):
            AugmentConfig(jpeg_quality=bad)
    with pytest.raises(ValueError, match="augment.jpeg_p"):
        AugmentConfig(jpeg_quality=[30, 90], jpeg_p=1.5)
