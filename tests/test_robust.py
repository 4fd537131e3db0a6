"""JPEG and the CIFAR-10-C corruptions (cnnlab.data.corrupt) against their definitions on tiny
images, and `cnnlab robust` end to end on a tiny run."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import corrupt as C


def _gray(value: int, n: int = 2, size: int = 8) -> np.ndarray:
    return np.full((n, size, size, 3), value, dtype=np.uint8)


def _noise(n: int = 2, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# ---------------------------------------------------------------- JPEG

def test_jpeg_is_pillow_420_round_trip_and_keeps_layout():
    x = _noise(2, 16)
    for q in C.JPEG_QUALITIES:
        buf = io.BytesIO()
        Image.fromarray(x[1]).save(buf, format="JPEG", quality=q, subsampling=2)
        expected = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        assert np.array_equal(C.jpeg(x, q)[1], expected)
    chw = x.transpose(0, 3, 1, 2)
    assert np.array_equal(C.jpeg(chw, 75), C.jpeg(x, 75).transpose(0, 3, 1, 2))


def test_jpeg_flat_gray_is_exact_and_error_grows_as_quality_falls():
    assert np.array_equal(C.jpeg(_gray(128), 95), _gray(128))
    x = _noise(4, 32)
    err = [np.abs(C.jpeg(x, q).astype(int) - x).mean() for q in (95, 75, 50)]
    assert err[0] < err[1] < err[2]
    with pytest.raises(ValueError, match="quality"):
        C.jpeg(x, 0)


# ---------------------------------------------------------------- each corruption against its formula

def test_every_corruption_keeps_shape_dtype_and_is_seeded():
    x = _noise(2, 32).transpose(0, 3, 1, 2)
    for name in C.ALL:
        for s in (1, 5):
            y = C.corrupt(x, name, s, seed=3)
            assert y.shape == x.shape and y.dtype == np.uint8, name
            assert np.array_equal(y, C.corrupt(x, name, s, seed=3)), name
    assert len(C.BENCHMARK) == 15 and len(C.ALL) == 19
    with pytest.raises(ValueError, match="unknown corruption"):
        C.corrupt(x, "rain", 1)
    with pytest.raises(ValueError, match="severity"):
        C.corrupt(x, "fog", 6)


def test_gaussian_noise_std_and_speckle_scale():
    x = _gray(128, 4, 32)
    y = C.corrupt(x, "gaussian_noise", 5, seed=0).astype(float) / 255
    assert abs(y.std() - 0.10) < 0.005            # c = 0.10 at severity 5
    assert abs(y.mean() - 128 / 255) < 0.01
    y = C.corrupt(x, "speckle_noise", 5, seed=0).astype(float) / 255
    assert abs(y.std() - 0.2 * 128 / 255) < 0.006   # x + x * N(0, 0.2)


def test_shot_noise_is_poisson_over_c():
    x = _gray(128, 4, 32)
    y = C.corrupt(x, "shot_noise", 5, seed=0).astype(float) / 255   # Poisson(x * 50) / 50
    lam = 128 / 255 * 50
    assert abs(y.mean() * 50 - lam) < 0.5
    assert abs((y * 50).var() - lam) < 3
    # the values are multiples of 1/50 (before the uint8 truncation)
    assert np.allclose(np.unique(np.floor(np.arange(60) / 50 * 255)).size, 60)


def test_impulse_noise_flips_the_published_fraction():
    x = _gray(128, 8, 32)
    y = C.corrupt(x, "impulse_noise", 5, seed=0)     # amount 0.07, salt and pepper in equal parts
    salt, pepper = (y == 255).mean(), (y == 0).mean()
    assert abs(salt + pepper - 0.07) < 0.01 and abs(salt - pepper) < 0.01
    assert set(np.unique(y)) == {0, 128, 255}


def test_contrast_formula_on_a_known_image():
    x = np.zeros((1, 2, 2, 3), np.uint8)
    x[0, 0, 0] = 200                                  # one bright pixel, mean 50
    y = C.corrupt(x, "contrast", 1, seed=0)           # (x - mean) * 0.75 + mean
    assert y[0, 0, 0, 0] == int((200 / 255 - 50 / 255) * 0.75 * 255 + 50)
    assert y[0, 1, 1, 0] == int((0 - 50 / 255) * 0.75 * 255 + 50)


def test_brightness_and_saturate_in_hsv():
    y = C.corrupt(_gray(100), "brightness", 5, seed=0)   # grey: V + 0.3
    assert np.all(y == int(np.clip(100 / 255 + 0.3, 0, 1) * 255))
    red = np.zeros((1, 4, 4, 3), np.uint8)
    red[..., 0], red[..., 1], red[..., 2] = 200, 100, 100   # S = 0.5, V = 200/255
    y = C.corrupt(red, "saturate", 2, seed=0)[0, 0, 0]      # S * 0.1 = 0.05
    v = 200 / 255
    assert y[0] == int(v * 255) and y[1] == int(v * (1 - 0.05) * 255)


def test_blurs_keep_flat_images_and_spread_an_impulse_as_defined():
    for name in ("gaussian_blur", "defocus_blur", "zoom_blur", "motion_blur", "glass_blur", "pixelate"):
        assert np.array_equal(C.corrupt(_gray(90, 1, 32), name, 3, seed=0), _gray(90, 1, 32)), name
    x = np.zeros((1, 9, 9, 3), np.uint8)
    x[0, 4, 4] = 255
    y = C.corrupt(x, "gaussian_blur", 5, seed=0)          # sigma 1, truncate 4
    g = np.exp(-np.arange(-4, 5) ** 2 / 2)
    g /= g.sum()
    assert y[0, 4, 4, 0] == int(g[4] ** 2 * 255)
    assert y[0, 4, 5, 0] == int(g[4] * g[5] * 255)
    k = C.disk(0.3, 0.4)                                   # defocus severity 1: radius 0.3 -> one pixel, blurred
    assert abs(k.sum() - 1) < 1e-6 and k.shape == (17, 17) and k[8, 8] == k.max()


def test_motion_blur_kernel_is_one_sided_along_the_angle():
    x = np.zeros((9, 9, 1))
    x[4, 4] = 1.0
    out = C.motion_kernel_blur(x, radius=2, sigma=1, angle=0)   # width 5, Gaussian weights exp(-i^2 / 2)
    w = np.exp(-np.arange(5) ** 2 / 2)
    w /= w.sum()
    assert np.allclose(out[4, 0:5, 0], w[::-1]) and np.allclose(out[4, 5:, 0], 0)
    assert np.allclose(out[:4, :, 0], 0) and np.allclose(out[5:, :, 0], 0)


def test_pixelate_is_box_down_and_up():
    x = _noise(1, 32)
    img = Image.fromarray(x[0]).resize((int(32 * 0.65), int(32 * 0.65)), Image.BOX).resize((32, 32), Image.BOX)
    assert np.array_equal(C.corrupt(x, "pixelate", 5, seed=0)[0], np.asarray(img))


def test_jpeg_compression_corruption_uses_its_quality():
    x = _noise(1, 32)
    buf = io.BytesIO()
    Image.fromarray(x[0]).save(buf, format="JPEG", quality=40)
    assert np.array_equal(C.corrupt(x, "jpeg_compression", 5, seed=0)[0], np.asarray(Image.open(buf)))


def test_fog_frost_snow_spatter_elastic_definitions():
    f = C.plasma_fractal(np.random.default_rng(0), 32, 3)
    assert f.shape == (32, 32) and f.min() == 0 and f.max() == 1
    black = _gray(0, 1, 32)
    assert np.all(C.corrupt(black, "fog", 5, seed=0) == 0)      # x * max / (max + c): max 0 keeps black
    # frost severity 1: x + 0.2 * texture, texture from the first five pictures
    y = C.corrupt(black, "frost", 1, seed=0).astype(float)
    assert 0 < y.mean() < 0.2 * 255 + 1
    white = _gray(255, 1, 32)
    assert np.all(C.corrupt(white, "snow", 5, seed=0) == 255)  # snow only brightens
    assert np.all(C.corrupt(white, "spatter", 4, seed=0) <= 255)
    # elastic severity 1 is an affine warp only (no displacement field): a flat image stays flat
    assert np.array_equal(C.corrupt(_gray(77, 1, 32), "elastic_transform", 1, seed=0), _gray(77, 1, 32))
    assert len(C.frost_textures()) == 6 and all(t.shape[0] > 32 and t.shape[1] > 32 for t in C.frost_textures())


def test_glass_blur_copies_like_the_generator():
    x = _noise(1, 32)
    y = C.corrupt(x, "glass_blur", 1, seed=0)   # sigma 0.05: no blur to speak of, only the local shuffle
    assert not np.array_equal(y, x)
    assert np.abs(y.astype(int) - x).mean() < 128


# ---------------------------------------------------------------- cnnlab robust

@pytest.fixture(scope="module")
def tiny_run(tiny_cifar, tmp_path_factory):
    from engine_helpers import REPO, run_cli, tiny_overrides

    runs = tmp_path_factory.mktemp("robust_runs")
    overrides = [a for o in tiny_overrides() for a in ("-o", o)]
    r = run_cli("train", str(REPO / "recipes" / "004-a.yaml"), "--runs-dir", str(runs), "--data-dir",
                str(tiny_cifar), *overrides, "--no-report", timeout=300)
    assert r.returncode == 0, r.stderr
    return next(p for p in runs.iterdir() if (p / "model.safetensors").is_file())


def test_cli_robust_writes_page_json_and_report_section(tiny_run, tiny_cifar, tmp_path):
    from engine_helpers import run_cli

    out = tmp_path / "rb"
    r = run_cli("robust", str(tiny_run), "--data-dir", str(tiny_cifar), "--test-subset", "20",
                "--corruptions", "gaussian_noise,fog", "--severity", "1", "--severity", "5", "--jpeg", "75",
                "--out", str(out), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1].endswith("robust.html")
    result = json.loads((out / "robust.json").read_text())
    assert result["images"] == 20 and result["subset_of"] == 100 and len(result["indices"]) == 20
    assert set(result["corruptions"]) == {"gaussian_noise", "fog"}
    assert set(result["corruptions"]["fog"]) == {"1", "5"} and set(result["jpeg"]) == {"75"}
    assert result["mean_corruption_accuracy"] is None       # not the 15 x 5 of the benchmark
    assert (out / "figures" / "robustness.png").is_file()
    md = (out / "robust.md").read_text()
    assert "| fog | weather |" in md and "JPEG q75" in md and "20 of 100 test images" in md
    assert not (tiny_run / "robust").exists()                # --out: the run folder is left alone

    from cnnlab.report import write_run_report
    (tiny_run / "robust").mkdir()
    (tiny_run / "robust" / "robust.json").write_text((out / "robust.json").read_text())
    _, md_path = write_run_report(tiny_run)
    assert "## Robustness (JPEG and common corruptions)" in md_path.read_text()


def test_cli_robust_rejects_unknown_corruption(tiny_run):
    from engine_helpers import run_cli

    r = run_cli("robust", str(tiny_run), "--corruptions", "rain")
    assert r.returncode == 2 and "not a corruption" in r.stderr
