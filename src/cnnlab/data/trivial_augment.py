"""TrivialAugment (Müller & Hutter, ICCV 2021), wide search space, as batched tensor ops.

Each image gets one operation drawn uniformly from OPS and one magnitude drawn uniformly from 31
bins (signed operations also a random sign); there is nothing to tune. The images are float pixel
values in 0..255 (N x C x H x W); every operation runs once per batch on the images that drew it,
and the five geometric ones share one grid_sample. The definitions are PIL's (ImageOps and
ImageEnhance, what the paper's code calls), so tests/test_augment_pixels.py checks each against
PIL on small images. Where a definition is PIL's, the formula names it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import DataError

OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color",
       "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize")
GEOMETRIC = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
SIGNED = GEOMETRIC + ("brightness", "color", "contrast", "sharpness")
BINS = 31


def magnitude(op: str, level: torch.Tensor, size: int = 32) -> torch.Tensor:
    """The wide space's magnitude for integer levels 0..30 (float tensor): shear as a slope up to
    0.99, translation in px up to 32 (for 32 px images; scaled with the image side otherwise),
    rotation up to 135 degrees, the enhance factors' offset from 1 up to 0.99, posterize's bits
    8 down to 2, solarize's threshold 255 down to 0."""
    frac = level.to(torch.float32) / (BINS - 1)
    if op in ("shear_x", "shear_y"):
        return frac * 0.99
    if op in ("translate_x", "translate_y"):
        return frac * 32.0 * size / 32
    if op == "rotate":
        return frac * 135.0
    if op in ("brightness", "color", "contrast", "sharpness"):
        return frac * 0.99
    if op == "posterize":
        return 8 - torch.round(level.to(torch.float32) / ((BINS - 1) / 6))
    if op == "solarize":
        return 255.0 * (1 - frac)
    return torch.zeros_like(frac)


def grey(x: torch.Tensor) -> torch.Tensor:
    """PIL's "L" conversion (ITU-R 601-2 luma in PIL's 16-bit fixed point, rounded to a level),
    N x 1 x H x W; a grey image is itself."""
    if x.shape[1] == 1:
        return x
    r, g, b = torch.round(x).unbind(1)
    return torch.floor((r * 19595 + g * 38470 + b * 7471 + 32768) / 65536).unsqueeze(1)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ImageEnhance: degenerate + factor * (x - degenerate), clipped to 0..255 and truncated
    to a level as PIL's Image.blend stores it."""
    return torch.floor((degenerate + factor.view(-1, 1, 1, 1) * (x - degenerate)).clamp(0, 255))


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(torch.zeros_like(x), x, factor)


def color(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(grey(x).expand_as(x), x, factor)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # PIL: the degenerate image is the mean of the grey image, rounded to an integer level.
    mean = torch.floor(torch.round(grey(x)).mean(dim=(1, 2, 3), keepdim=True) + 0.5)
    return _blend(mean.expand_as(x), x, factor)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    # PIL's SMOOTH filter (3 x 3, centre 5, others 1, /13) inside, the border pixels unchanged.
    c = x.shape[1]
    kernel = torch.ones(3, 3, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5
    kernel = (kernel / 13).expand(c, 1, 3, 3)
    smooth = x.clone()
    smooth[:, :, 1:-1, 1:-1] = torch.round(F.conv2d(x, kernel, groups=c))
    return _blend(smooth, x, factor)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Keep the top `bits` bits of each 8-bit value."""
    step = torch.pow(2.0, 8 - bits).view(-1, 1, 1, 1)
    return torch.floor(torch.round(x) / step) * step


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert every value at or above the threshold."""
    return torch.where(x >= threshold.view(-1, 1, 1, 1), 255.0 - x, x)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel to 0..255 (PIL ImageOps.autocontrast, cutoff 0); a flat channel stays."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    flat = hi <= lo
    # PIL's LUT, in double precision as PIL's Python computes it: int(v * scale - lo * scale).
    # (tensor / tensor: a Python scalar over a tensor is computed as a reciprocal product, 1 ulp off.)
    span = torch.where(flat, torch.ones_like(hi), hi - lo).double()
    scale = torch.full_like(span, 255.0) / span
    stretched = torch.floor(x.double() * scale - lo.double() * scale).clamp(0, 255).to(x.dtype)
    return torch.where(flat, x, stretched)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalization per channel, PIL ImageOps.equalize's integer lookup table."""
    n, c, h, w = x.shape
    levels = torch.round(x).clamp(0, 255).to(torch.long).reshape(n * c, h * w)
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, levels, torch.ones_like(levels))
    # PIL: step = (pixels - count of the highest level present) // 255; lut[i] = (n_below_i + step // 2) // step.
    highest = 255 - torch.argmax((hist.flip(1) > 0).to(torch.uint8), dim=1)
    last = hist.gather(1, highest.view(-1, 1)).squeeze(1)
    step = torch.div(h * w - last, 255, rounding_mode="floor")
    below = torch.cumsum(hist, dim=1) - hist
    safe = step.clamp_min(1).view(-1, 1)
    lut = torch.div(below + torch.div(safe, 2, rounding_mode="floor"), safe, rounding_mode="floor").clamp(0, 255)
    lut = torch.where(step.view(-1, 1) > 0, lut, torch.arange(256, device=x.device).expand(n * c, 256))
    return lut.gather(1, levels).reshape(n, c, h, w).to(x.dtype)


def geometric(x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
    """Shear, translate or rotate each image by its op index (into GEOMETRIC) and signed magnitude,
    nearest-neighbour, black outside (PIL's Image.transform with the paper's matrices: shears and
    translations about the top-left corner, rotation about the centre)."""
    n, _, h, w = x.shape
    one, zero = torch.ones_like(mag), torch.zeros_like(mag)
    theta = torch.deg2rad(-mag)   # a positive angle turns the content counter-clockwise, as PIL's rotate
    cos, sin = torch.cos(theta), torch.sin(theta)
    cx, cy = w / 2, h / 2
    # Rows of the map from an output pixel (u, v, 1) to the input pixel it samples, in px.
    rotate_x = torch.stack([cos, sin, cx - cos * cx - sin * cy], 1)
    rotate_y = torch.stack([-sin, cos, cy + sin * cx - cos * cy], 1)
    rows_x = torch.stack([
        torch.stack([one, mag, zero], 1),    # shear_x
        torch.stack([one, zero, zero], 1),   # shear_y
        torch.stack([one, zero, mag], 1),    # translate_x
        torch.stack([one, zero, zero], 1),   # translate_y
        rotate_x,
    ], 1)
    rows_y = torch.stack([
        torch.stack([zero, one, zero], 1),
        torch.stack([mag, one, zero], 1),
        torch.stack([zero, one, zero], 1),
        torch.stack([zero, one, mag], 1),
        rotate_y,
    ], 1)
    pick = op.view(n, 1, 1).expand(n, 1, 3)
    mx = rows_x.gather(1, pick).squeeze(1)
    my = rows_y.gather(1, pick).squeeze(1)
    v, u = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype) + 0.5,
                          torch.arange(w, device=x.device, dtype=x.dtype) + 0.5, indexing="ij")
    src_x = mx[:, 0, None, None] * u + mx[:, 1, None, None] * v + mx[:, 2, None, None]
    src_y = my[:, 0, None, None] * u + my[:, 1, None, None] * v + my[:, 2, None, None]
    grid = torch.stack([2 * src_x / w - 1, 2 * src_y / h - 1], dim=-1)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


_PIXEL_OPS = {
    "brightness": lambda x, m: brightness(x, 1 + m),
    "color": lambda x, m: color(x, 1 + m),
    "contrast": lambda x, m: contrast(x, 1 + m),
    "sharpness": lambda x, m: sharpness(x, 1 + m),
    "posterize": posterize,
    "solarize": solarize,
    "autocontrast": lambda x, m: autocontrast(x),
    "equalize": lambda x, m: equalize(x),
}


def trivial_augment(x: torch.Tensor, op: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Apply OPS[op[i]] at magnitude bin level[i] (0..30), negated where sign[i] is true for the
    signed ops, to image i of x (float 0..255). Returns a new tensor; x is not changed."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"TrivialAugment needs N x C x H x W images with 1 or 3 channels, got {tuple(x.shape)}")
    out = x.clone()
    size = min(x.shape[2], x.shape[3])
    geo = (op >= 1) & (op <= len(GEOMETRIC))
    if bool(geo.any()):
        idx = geo.nonzero().squeeze(1)
        geo_op = op[idx] - 1
        mags = torch.zeros(len(idx), dtype=x.dtype, device=x.device)
        for k, name in enumerate(GEOMETRIC):
            chosen = geo_op == k
            mags = torch.where(chosen, magnitude(name, level[idx], size).to(x.dtype), mags)
        mags = torch.where(sign[idx], -mags, mags)
        out[idx] = geometric(x[idx], geo_op, mags)
    for k, name in enumerate(OPS):
        if name not in _PIXEL_OPS:
            continue
        chosen = op == k
        if not bool(chosen.any()):
            continue
        idx = chosen.nonzero().squeeze(1)
        mags = magnitude(name, level[idx], size).to(x.dtype)
        if name in SIGNED:
            mags = torch.where(sign[idx], -mags, mags)
        out[idx] = _PIXEL_OPS[name](x[idx], mags)
    return out
