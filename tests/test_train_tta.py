"""Test-time augmentation (flip, flip + translate) on tiny real networks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.train.predict import tta_probabilities


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 - 0.5


def _images(n: int = 6) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _shifted_bases(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 x 8 batch as is, moved 1 px up-left and 1 px down-right, reflect-padded (written out by hand)."""
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left = padded[..., 2:10, 2:10]      # content moved 1 px up and left: pixel (i, j) shows (i+1, j+1)
    down_right = padded[..., 0:8, 0:8]
    assert torch.equal(up_left[..., 0, 0], x[..., 1, 1]) and torch.equal(down_right[..., 1, 1], x[..., 0, 0])
    return [x, up_left, down_right]


def test_flip_tta_is_the_mean_of_plain_and_mirrored_probabilities() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))  # position-dependent: a flip changes its output
    model.train()
    images = _images()
    probs = tta_probabilities(model, images, _normalize, batch_size=4)
    with torch.no_grad():
        plain = torch.softmax(model(_normalize(images)), dim=1)
        mirrored = torch.softmax(model(_normalize(images.flip(-1))), dim=1)
    np.testing.assert_allclose(probs, ((plain + mirrored) / 2).numpy(), atol=1e-6)
    assert not np.allclose(probs, plain.numpy(), atol=1e-3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.training  # mode restored


def test_flip_invariant_model_is_unchanged_and_sigmoid_output_stays_one_column() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 1))  # mirror-invariant
    images = _images()
    probs = tta_probabilities(model, images, _normalize, batch_size=5)
    with torch.no_grad():
        expected = torch.sigmoid(model(_normalize(images))).numpy()
    assert probs.shape == (6, 1)
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_flip_translate_averages_six_views_shifted_one_pixel_with_reflection() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    images = _images()
    probs = tta_probabilities(model, images, _normalize, batch_size=4, views="flip+translate")
    views = [v for base in _shifted_bases(_normalize(images)) for v in (base, base.flip(-1))]
    with torch.no_grad():
        expected = sum(torch.softmax(model(v), dim=1) for v in views) / 6
    np.testing.assert_allclose(probs, expected.numpy(), atol=1e-6)
    flip_only = tta_probabilities(model, images, _normalize, batch_size=4, views=True)
    assert not np.allclose(probs, flip_only, atol=1e-3)


def test_unknown_tta_views_name_the_choices() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    with pytest.raises(ValueError, match="flip\\+translate"):
        tta_probabilities(model, _images(), _normalize, batch_size=4, views="rotate")


def test_airbench_tta_weighs_the_unshifted_pair_half_and_averages_logits() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    images = _images()
    probs = tta_probabilities(model, images, _normalize, batch_size=4, views="airbench")
    pairs = [(v, v.flip(-1)) for v in _shifted_bases(_normalize(images))]
    with torch.no_grad():
        mean_logits = sum(w * (model(a) + model(b)) / 2 for w, (a, b) in zip((0.5, 0.25, 0.25), pairs))
        alike_logits = sum((model(a) + model(b)) / 6 for a, b in pairs)
    np.testing.assert_allclose(probs, torch.softmax(mean_logits, dim=1).numpy(), atol=1e-6)
    # Neither the equal-weight logit mean nor flip+translate's probability mean: the weights and the logits both count.
    assert not np.allclose(probs, torch.softmax(alike_logits, dim=1).numpy(), atol=1e-4)
    assert not np.allclose(probs, tta_probabilities(model, images, _normalize, 4, "flip+translate"), atol=1e-4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_airbench_tta_of_a_sigmoid_head_is_the_sigmoid_of_the_weighted_logit() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1))
    images = _images()
    probs = tta_probabilities(model, images, _normalize, batch_size=4, views="airbench")
    with torch.no_grad():
        logit = sum(w * (model(v) + model(v.flip(-1))) / 2
                    for w, v in zip((0.5, 0.25, 0.25), _shifted_bases(_normalize(images))))
    assert probs.shape == (6, 1)
    np.testing.assert_allclose(probs, torch.sigmoid(logit).numpy(), atol=1e-6)


def test_the_command_line_offers_every_tta_mode() -> None:
    from cnnlab.cli.common import TTA_CHOICES
    from cnnlab.train.predict import TTA_MODES, TTA_SHIFTS, TTA_WEIGHTS

    assert TTA_CHOICES == TTA_MODES
    for name, weights in TTA_WEIGHTS.items():
        assert len(weights) == len(TTA_SHIFTS[name]) and sum(weights) == pytest.approx(1.0)


def test_the_run_report_names_airbench_tta_views() -> None:
    from cnnlab.report.run_report import _split_label

    assert _split_label("test_tta", {"tta": "airbench"}) == "test (flip + translate TTA, airbench's weights)"
    assert _split_label("test_tta", {"tta": "flip+translate"}) == "test (flip + translate TTA)"
