"""Common corruptions of the CIFAR-10-C benchmark, and JPEG round trips, on uint8 image batches.

    corrupt(images, "fog", severity=3, seed=0)     # uint8 N x H x W x C in, the same shape out
    jpeg(images, quality=75)                        # Pillow JPEG at 4:2:0, decoded again

The corruptions are those of Hendrycks & Dietterich (2019), "Benchmarking neural network
robustness to common corruptions and perturbations" (ICLR), with the CIFAR-10-C parameters of
the authors' generator (``make_cifar_c.py`` in github.com/hendrycks/robustness): 15 benchmark
corruptions in four groups (noise, blur, weather, digital) and the four extra ones they published
(speckle noise, Gaussian blur, spatter, saturate), five severities each.

The published code needs OpenCV, scikit-image and ImageMagick (Wand); the packaged
reimplementation (``imagecorruptions`` 1.1.2) uses the ImageNet-C parameters and no longer runs
on NumPy 2 (``np.float_``) and SciPy >= 1.14. So the formulas are written here on NumPy, SciPy
and Pillow alone, each one the published one with the same parameters:

- skimage ``gaussian`` = ``scipy.ndimage.gaussian_filter`` (mode nearest, truncate 4), per channel;
- OpenCV ``filter2D`` / ``GaussianBlur`` / ``warpAffine`` borders (BORDER_REFLECT_101) = SciPy's
  mode "mirror";
- ImageMagick's motion blur (Wand ``MagickMotionBlurImage``): a one-sided Gaussian kernel of width
  2 * radius + 1 along the angle, edge pixels repeated (as ImageMagick's MotionBlurImage);
- spatter's water drops (OpenCV Canny + distance transform) are replaced by the drop mask itself
  blurred, tinted pale turquoise with the published strength; its mud (severities 4-5) is exact;
- the frost textures are the authors' six pictures, scaled by 0.2 as their CIFAR generator does
  (``cnnlab/data/frost/``, Apache-2.0, from github.com/hendrycks/robustness via imagecorruptions).

Values are truncated to uint8 as the generator's ``np.uint8(...)`` does. The parameters are
CIFAR's, for 32 x 32 images; other sizes work (sizes scale with the image) but are not a benchmark.
"""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from scipy import ndimage

SEVERITIES = (1, 2, 3, 4, 5)
JPEG_QUALITIES = (95, 75, 50)

# group -> corruptions; the 15 of the benchmark (its mean corruption accuracy) come first
GROUPS = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
}
BENCHMARK = tuple(c for names in GROUPS.values() for c in names)
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
EXTRA_GROUPS = {"speckle_noise": "noise", "gaussian_blur": "blur", "spatter": "weather", "saturate": "digital"}
ALL = BENCHMARK + EXTRA


def group_of(name: str) -> str:
    for group, names in GROUPS.items():
        if name in names:
            return group
    return EXTRA_GROUPS[name]


# ---------------------------------------------------------------- helpers (float images in [0, 1], H x W x C)

def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """skimage.filters.gaussian(x, sigma, multichannel=True): per channel, mode nearest, truncate 4."""
    sig = (sigma, sigma, 0) if x.ndim == 3 else sigma
    return ndimage.gaussian_filter(x, sig, mode="nearest", truncate=4.0)


def _cv_gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    """OpenCV's getGaussianKernel (ksize taps, sum 1)."""
    i = np.arange(ksize) - (ksize - 1) / 2
    k = np.exp(-(i ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def disk(radius: float, alias_blur: float = 0.1) -> np.ndarray:
    """The defocus kernel: a disk of ``radius`` (sum 1), blurred by OpenCV's 3 x 3 (5 x 5 past radius 8)
    Gaussian of sigma ``alias_blur`` (border reflect-101)."""
    if radius <= 8:
        L, ksize = np.arange(-8, 8 + 1), 3
    else:
        L, ksize = np.arange(-radius, radius + 1), 5
    X, Y = np.meshgrid(L, L)
    aliased = np.array((X ** 2 + Y ** 2) <= radius ** 2, dtype=np.float32)
    aliased /= aliased.sum()
    g = _cv_gaussian_kernel(ksize, alias_blur)
    out = ndimage.correlate1d(aliased, g, axis=0, mode="mirror")
    return ndimage.correlate1d(out, g, axis=1, mode="mirror").astype(np.float32)


def plasma_fractal(rng: np.random.Generator, mapsize: int = 32, wibbledecay: float = 3) -> np.ndarray:
    """Diamond-square height map, mapsize x mapsize (a power of two), values 0..1 (the fog layer)."""
    assert mapsize & (mapsize - 1) == 0
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100.0

    def wibbledmean(array):
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(squareaccum)
        drgrid = maparray[stepsize // 2:mapsize:stepsize, stepsize // 2:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        maparray[0:mapsize:stepsize, stepsize // 2:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        maparray[stepsize // 2:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def clipped_zoom(img: np.ndarray, zoom_factor: float) -> np.ndarray:
    """Zoom the centre of a square H x W x C image by ``zoom_factor`` (bilinear), cropped back to H x W."""
    h = img.shape[0]
    ch = int(np.ceil(h / zoom_factor))
    top = (h - ch) // 2
    img = ndimage.zoom(img[top:top + ch, top:top + ch], (zoom_factor, zoom_factor, 1), order=1)
    trim = (img.shape[0] - h) // 2
    return img[trim:trim + h, trim:trim + h]


def motion_kernel_blur(x: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick's MotionBlurImage on an H x W x C float image: sum over i < 2r+1 of a Gaussian
    weight exp(-i^2 / 2 sigma^2) (normalized) times the image shifted i pixels along ``angle``
    degrees, edge pixels repeated."""
    width = int(2 * np.ceil(radius) + 1)
    k = np.exp(-(np.arange(width) ** 2) / (2 * sigma ** 2))
    k /= k.sum()
    a = np.deg2rad(angle)
    point = (width * np.sin(a), width * np.cos(a))
    hyp = float(np.hypot(*point))
    h, w = x.shape[:2]
    pad = width
    padded = np.pad(x, ((pad, pad), (pad, pad)) + ((0, 0),) * (x.ndim - 2), mode="edge")
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(width):
        dy = int(np.ceil(i * point[0] / hyp - 0.5))
        dx = int(np.ceil(i * point[1] / hyp - 0.5))
        out += k[i] * padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w]
    return out


def rgb_to_hsv(x: np.ndarray) -> np.ndarray:
    """skimage.color.rgb2hsv on floats in [0, 1]."""
    from matplotlib.colors import rgb_to_hsv as mpl
    return mpl(np.clip(x, 0, 1))


def hsv_to_rgb(x: np.ndarray) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb as mpl
    return mpl(np.clip(x, 0, 1))


@lru_cache(maxsize=1)
def frost_textures() -> tuple[np.ndarray, ...]:
    """The six frost pictures (RGB uint8), already scaled by 0.2 as the CIFAR-10-C generator does."""
    from PIL import Image

    folder = Path(__file__).with_name("frost")
    return tuple(np.asarray(Image.open(folder / f"frost{i}.png").convert("RGB")) for i in range(1, 7))


# ---------------------------------------------------------------- the corruptions: one image, H x W x 3 uint8

def gaussian_noise(x, severity, rng):
    c = [0.04, 0.06, .08, .09, .10][severity - 1]
    x = x / 255.
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x, severity, rng):
    c = [500, 250, 100, 75, 50][severity - 1]
    x = x / 255.
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def impulse_noise(x, severity, rng):
    """skimage.util.random_noise(mode="s&p", amount=c): each value flipped with probability c, half to 1."""
    c = [.01, .02, .03, .05, .07][severity - 1]
    x = x / 255.
    flipped = rng.random(x.shape) < c
    salted = rng.random(x.shape) < 0.5
    out = x.copy()
    out[flipped & salted] = 1
    out[flipped & ~salted] = 0
    return np.clip(out, 0, 1) * 255


def speckle_noise(x, severity, rng):
    c = [.06, .1, .12, .16, .2][severity - 1]
    x = x / 255.
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255


def gaussian_blur(x, severity, rng):
    c = [.4, .6, 0.7, .8, 1][severity - 1]
    return np.clip(_gaussian(x / 255., c), 0, 1) * 255


def glass_blur(x, severity, rng):
    c = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]
    x = np.uint8(_gaussian(x / 255., c[0]) * 255)
    h_size, w_size = x.shape[:2]
    rows, cols = range(h_size - c[1], c[1], -1), range(w_size - c[1], c[1], -1)
    for _ in range(c[2]):   # locally shuffle pixels
        shifts = rng.integers(-c[1], c[1], size=(len(rows), len(cols), 2))   # dx, dy per pixel, drawn in order
        for i, h in enumerate(rows):
            for j, w in enumerate(cols):
                dx, dy = shifts[i, j]
                # The generator's "swap" x[h, w], x[h', w'] = x[h', w'], x[h, w] on NumPy views copies
                # x[h', w'] into x[h, w] and leaves x[h', w'] as it was; the benchmark was made so.
                x[h, w] = x[h + dy, w + dx]
    return np.clip(_gaussian(x / 255., c[0]), 0, 1) * 255


def defocus_blur(x, severity, rng):
    c = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    kernel = disk(radius=c[0], alias_blur=c[1])
    x = x / 255.
    out = np.stack([ndimage.correlate(x[..., d], kernel, mode="mirror") for d in range(x.shape[2])], axis=2)
    return np.clip(out, 0, 1) * 255


def motion_blur(x, severity, rng):
    c = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    out = motion_kernel_blur(x.astype(np.float64), c[0], c[1], rng.uniform(-45, 45))
    return np.clip(np.round(out), 0, 255)   # ImageMagick writes 8-bit pixels (rounded)


def zoom_blur(x, severity, rng):
    c = [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
         np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)][severity - 1]
    x = (x / 255.).astype(np.float32)
    out = np.zeros_like(x)
    for zoom_factor in c:
        out += clipped_zoom(x, zoom_factor)
    return np.clip((x + out) / (len(c) + 1), 0, 1) * 255


def fog(x, severity, rng):
    c = [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    h, w = x.shape[:2]
    size = 1 << int(np.ceil(np.log2(max(h, w, 2))))
    x = x / 255.
    max_val = x.max()
    x = x + c[0] * plasma_fractal(rng, mapsize=size, wibbledecay=c[1])[:h, :w][..., np.newaxis]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def frost(x, severity, rng):
    c = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][severity - 1]
    texture = frost_textures()[rng.integers(5)]   # the generator draws from the first five
    h, w = x.shape[:2]
    if texture.shape[0] <= h or texture.shape[1] <= w:   # larger images than CIFAR's: tile the texture
        reps = (h // texture.shape[0] + 2, w // texture.shape[1] + 2, 1)
        texture = np.tile(texture, reps)
    y0, x0 = rng.integers(0, texture.shape[0] - h), rng.integers(0, texture.shape[1] - w)
    return np.clip(c[0] * x + c[1] * texture[y0:y0 + h, x0:x0 + w], 0, 255)


def snow(x, severity, rng):
    c = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95),
         (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
         (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
         (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
         (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][severity - 1]
    x = x.astype(np.float32) / 255.
    layer = rng.normal(size=x.shape[:2], loc=c[0], scale=c[1])
    layer = clipped_zoom(layer[..., np.newaxis], c[2])
    layer[layer < c[3]] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8).astype(np.float64)   # the 8-bit PNG Wand reads
    layer = np.clip(np.round(motion_kernel_blur(layer, c[4], c[5], rng.uniform(-135, -45))), 0, 255) / 255.
    gray = (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., np.newaxis]   # cv2 RGB2GRAY
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2), 0, 1) * 255


def spatter(x, severity, rng):
    c = [(0.62, 0.1, 0.7, 0.7, 0.5, 0),
         (0.65, 0.1, 0.8, 0.7, 0.5, 0),
         (0.65, 0.3, 1, 0.69, 0.5, 0),
         (0.65, 0.1, 0.7, 0.69, 0.6, 1),
         (0.65, 0.1, 0.5, 0.68, 0.6, 1)][severity - 1]
    x = x.astype(np.float32) / 255.
    liquid = _gaussian(rng.normal(size=x.shape[:2], loc=c[0], scale=c[1]), c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:   # water: the drops, softened, tinted pale turquoise (no Canny here: see the module doc)
        m = ndimage.uniform_filter(liquid, 3, mode="mirror")
        m = m / m.max() * c[4] if m.max() > 0 else m
        color = np.array([238, 238, 175], dtype=np.float32) / 255.   # RGB of the generator's BGR (175, 238, 238)
        return np.clip(x + m[..., np.newaxis] * color, 0, 1) * 255
    m = _gaussian(np.where(liquid > c[3], 1, 0).astype(np.float32), c[4])
    m[m < 0.8] = 0
    color = np.array([63, 42, 20], dtype=np.float32) / 255. * m[..., np.newaxis]   # mud brown
    return np.clip(x * (1 - m[..., np.newaxis]) + color, 0, 1) * 255


def contrast(x, severity, rng):
    c = [.75, .5, .4, .3, 0.15][severity - 1]
    x = x / 255.
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def brightness(x, severity, rng):
    c = [.05, .1, .15, .2, .3][severity - 1]
    x = rgb_to_hsv(x / 255.)
    x[..., 2] = np.clip(x[..., 2] + c, 0, 1)
    return np.clip(hsv_to_rgb(x), 0, 1) * 255


def saturate(x, severity, rng):
    c = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)][severity - 1]
    x = rgb_to_hsv(x / 255.)
    x[..., 1] = np.clip(x[..., 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv_to_rgb(x), 0, 1) * 255


def jpeg_compression(x, severity, rng):
    c = [80, 65, 58, 50, 40][severity - 1]
    return _jpeg_one(x.astype(np.uint8), c, subsampling=-1)   # Pillow's default subsampling, as the generator


def pixelate(x, severity, rng):
    from PIL import Image

    c = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    h, w = x.shape[:2]
    img = Image.fromarray(x.astype(np.uint8))
    img = img.resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX)
    return np.asarray(img)


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """cv2.getAffineTransform: the 2 x 3 matrix taking three (x, y) points src to dst."""
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T


def elastic_transform(x, severity, rng):
    size = x.shape[0]
    c = [(size * 0, size * 0, size * 0.08),
         (size * 0.05, size * 0.2, size * 0.07),
         (size * 0.08, size * 0.06, size * 0.06),
         (size * 0.1, size * 0.04, size * 0.05),
         (size * 0.1, size * 0.03, size * 0.03)][severity - 1]
    image = x.astype(np.float32) / 255.
    shape = image.shape
    center = np.float32(shape[:2]) // 2
    square = min(shape[:2]) // 3
    pts1 = np.float32([center + square, [center[0] + square, center[1] - square], center - square])
    pts2 = pts1 + rng.uniform(-c[2], c[2], size=pts1.shape).astype(np.float32)
    m = _affine_from_points(pts1.astype(np.float64), pts2.astype(np.float64))   # (x, y) -> (x', y')
    # cv2.warpAffine: dst(p) = src(M^-1 p), bilinear, BORDER_REFLECT_101; SciPy works in (row, col)
    full = np.vstack([m, [0, 0, 1]])
    inv = np.linalg.inv(full)
    rc = np.array([[inv[1, 1], inv[1, 0]], [inv[0, 1], inv[0, 0]]])
    offset = np.array([inv[1, 2], inv[0, 2]])
    image = np.stack([ndimage.affine_transform(image[..., d], rc, offset=offset, order=1, mode="mirror")
                      for d in range(shape[2])], axis=2)
    dx = (_gaussian_2d(rng.uniform(-1, 1, size=shape[:2]), c[1]) * c[0]).astype(np.float32)[..., np.newaxis]
    dy = (_gaussian_2d(rng.uniform(-1, 1, size=shape[:2]), c[1]) * c[0]).astype(np.float32)[..., np.newaxis]
    gx, gy, gz = np.meshgrid(np.arange(shape[1]), np.arange(shape[0]), np.arange(shape[2]))
    indices = np.reshape(gy + dy, (-1, 1)), np.reshape(gx + dx, (-1, 1)), np.reshape(gz, (-1, 1))
    out = ndimage.map_coordinates(image, indices, order=1, mode="reflect").reshape(shape)
    return np.clip(out, 0, 1) * 255


def _gaussian_2d(x: np.ndarray, sigma: float) -> np.ndarray:
    """skimage gaussian(x, sigma, mode="reflect", truncate=3) of a 2-D array (sigma 0: unchanged)."""
    if sigma == 0:
        return x
    return ndimage.gaussian_filter(x, sigma, mode="reflect", truncate=3)


CORRUPTIONS: dict[str, Callable] = {name: globals()[name] for name in ALL}


# ---------------------------------------------------------------- batches

def _hwc(images: np.ndarray) -> tuple[np.ndarray, bool]:
    """uint8 N x H x W x 3 from N x 3 x H x W or N x H x W x 3 (and whether it was channels-first)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 N x C x H x W or N x H x W x C, got {images.dtype} {images.shape}")
    if images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        return images.transpose(0, 2, 3, 1), True
    return images, False


def _back(out: np.ndarray, chw: bool) -> np.ndarray:
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2) if chw else out)


def corrupt(images: np.ndarray, name: str, severity: int, seed: Optional[int] = 0) -> np.ndarray:
    """``images`` (uint8 N x 3 x H x W or N x H x W x 3) with corruption ``name`` at ``severity``
    (1..5), in the same layout. ``seed`` makes the random draws repeatable (None: fresh)."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {', '.join(ALL)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity}: give 1 to 5")
    x, chw = _hwc(images)
    if x.shape[-1] == 1:   # grey images: corrupt as RGB, return the first channel
        return _back(corrupt(np.repeat(x, 3, axis=-1), name, severity, seed)[..., :1], chw)
    rng = np.random.default_rng(seed)
    fn = CORRUPTIONS[name]
    out = np.empty_like(x)
    for i, img in enumerate(x):
        out[i] = np.uint8(np.clip(fn(img.astype(np.float64) if name not in ("pixelate", "jpeg_compression")
                                     else img, severity, rng), 0, 255))
    return _back(out, chw)


def _jpeg_one(img: np.ndarray, quality: int, subsampling: int = 2) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def jpeg(images: np.ndarray, quality: int, subsampling: int = 2) -> np.ndarray:
    """``images`` (uint8, N x 3 x H x W or N x H x W x 3) encoded as JPEG at ``quality`` (Pillow;
    subsampling 2 = 4:2:0) and decoded again, in the same layout."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality {quality}: give 1 to 100")
    x, chw = _hwc(images)
    if x.shape[-1] == 1:
        return _back(jpeg(np.repeat(x, 3, axis=-1), quality, subsampling)[..., :1], chw)
    return _back(np.stack([_jpeg_one(img, quality, subsampling) for img in x]), chw)


__all__ = ["ALL", "BENCHMARK", "CORRUPTIONS", "EXTRA", "GROUPS", "JPEG_QUALITIES", "SEVERITIES", "corrupt", "disk",
           "group_of", "jpeg", "plasma_fractal"]
