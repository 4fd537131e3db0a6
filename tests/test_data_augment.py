"""Every augmentation op: shapes, content, hand cases, reproducibility from the generator."""
import pytest
import torch

from cnnlab.data import AugmentConfig, Augmenter, DataError
from cnnlab.data.augment import affine, cutout, pad_crop


def batch(n=64, c=3, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) + 0.5  # no zeros


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_disabled_is_identity_and_draws_nothing():
    aug = Augmenter(AugmentConfig())
    assert not aug.enabled
    x, g = batch(), gen()
    state = g.get_state()
    assert aug(x, g) is x
    assert torch.equal(g.get_state(), state)


def test_flip_flips_about_half_exactly_mirrored_and_reproducible():
    x = batch(n=400)
    aug = Augmenter(AugmentConfig(hflip=True))
    y = aug(x, gen(1))
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(2)) for i in range(len(x))])
    kept = torch.tensor([torch.equal(y[i], x[i]) for i in range(len(x))])
    assert bool((flipped | kept).all()) and not bool((flipped & kept).any())
    assert 150 < int(flipped.sum()) < 250  # p = 0.5 of 400
    assert torch.equal(aug(x, gen(1)), y)
    assert not torch.equal(aug(x, gen(2)), y)


def test_crop_keeps_shape_and_is_a_shifted_window():
    x = batch(n=32, h=12, w=10)
    y = Augmenter(AugmentConfig(crop_padding=3, crop_pad_mode="zero"))(x, gen(3))
    assert y.shape == x.shape
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3))
    offsets = set()
    for i in range(len(x)):
        matches = [(t, l) for t in range(7) for l in range(7) if torch.equal(y[i], padded[i, :, t:t + 12, l:l + 10])]
        assert matches, f"image {i} is not a window of its padded original"
        offsets.add(matches[0])
    assert len(offsets) > 5  # offsets really vary across the batch


def test_pad_crop_hand_case_reflect():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = pad_crop(x, 1, torch.tensor([0]), torch.tensor([2]), "reflect")
    # reflect-padded row 0 is the original row 1; window starts at padded column 2 = original column 1
    expected = torch.tensor([[5.0, 6, 7, 6], [1, 2, 3, 2], [5, 6, 7, 6], [9, 10, 11, 10]])
    assert torch.equal(y[0, 0], expected)
    assert torch.equal(pad_crop(x, 1, torch.tensor([1]), torch.tensor([1])), x)  # centre window


def test_reflect_padding_too_large_is_an_error():
    with pytest.raises(DataError, match="crop_padding"):
        Augmenter(AugmentConfig(crop_padding=8))(batch(h=8, w=8), gen())


def test_rotation_by_fixed_angle_matches_hand_case():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    zero = torch.zeros(1)
    ccw = affine(x, torch.tensor([90.0]), zero, zero)
    assert torch.allclose(ccw, torch.rot90(x, 1, (2, 3)), atol=1e-4)  # counter-clockwise as displayed
    assert torch.allclose(affine(x, torch.tensor([-90.0]), zero, zero), torch.rot90(x, -1, (2, 3)), atol=1e-4)
    assert torch.allclose(affine(x, torch.tensor([180.0]), zero, zero), x.flip(2).flip(3), atol=1e-4)


def test_shift_by_one_pixel_fills_with_the_border():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    right = affine(x, torch.zeros(1), torch.tensor([0.25]), torch.zeros(1))  # 0.25 of 4 px = 1 px
    expected = torch.cat([x[..., :1], x[..., :3]], dim=3)  # nearest fill repeats column 0
    assert torch.allclose(right, expected, atol=1e-4)
    down = affine(x, torch.zeros(1), torch.zeros(1), torch.tensor([-0.25]))  # content moves up 1 px
    assert torch.allclose(down, torch.cat([x[..., 1:, :], x[..., 3:, :]], dim=2), atol=1e-4)


def test_zero_angle_and_shift_is_identity():
    x = batch(n=4)
    zero = torch.zeros(4)
    assert torch.allclose(affine(x, zero, zero, zero), x, atol=1e-5)


def test_rotation_and_shift_keep_shape_change_content_and_reproduce():
    x = batch(n=16)
    aug = Augmenter(AugmentConfig(rotation=15, width_shift=0.1, height_shift=0.1))
    y = aug(x, gen(5))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.allclose(y, x, atol=1e-3)
    assert torch.equal(aug(x, gen(5)), y)
    # bilinear + border fill: values stay within the input range
    assert float(y.min()) >= float(x.min()) - 1e-5 and float(y.max()) <= float(x.max()) + 1e-5


def test_cutout_zeroes_exactly_one_square():
    x = batch(n=20, h=16, w=12)
    y = Augmenter(AugmentConfig(cutout=5))(x, gen(7))
    corners = set()
    for i in range(len(x)):
        zero = (y[i] == 0)
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # same square in every channel
        rows, cols = torch.nonzero(zero[0], as_tuple=True)
        assert len(rows) == 25
        assert int(rows.max() - rows.min()) == 4 and int(cols.max() - cols.min()) == 4
        assert torch.equal(y[i][~zero], x[i][~zero])  # the rest is untouched
        corners.add((int(rows.min()), int(cols.min())))
    assert len(corners) > 5
    hand = cutout(torch.ones(1, 1, 4, 4), 2, torch.tensor([1]), torch.tensor([2]))
    assert torch.equal(hand[0, 0], torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]]))


def test_all_ops_together_resume_bitwise_from_generator_state():
    aug = Augmenter(AugmentConfig(hflip=True, crop_padding=2, rotation=10, width_shift=0.1, cutout=4))
    x1, x2 = batch(n=8, seed=1), batch(n=8, seed=2)
    g = gen(11)
    aug(x1, g)
    state = g.get_state()
    second = aug(x2, g)
    resumed = torch.Generator().manual_seed(0)
    resumed.set_state(state)
    assert torch.equal(aug(x2, resumed), second)


def test_generator_on_another_device_type_is_an_error():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA to build a generator on another device")
    with pytest.raises(DataError, match="generator"):
        Augmenter(AugmentConfig(hflip=True))(batch(), torch.Generator(device="cuda"))
