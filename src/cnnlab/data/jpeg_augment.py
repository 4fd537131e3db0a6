"""JPEG compression as one batched tensor op: a baseline JPEG encode + decode of every image of a
batch at its own quality, with no per-image Python and no codec call.

The steps are those of libjpeg (what Pillow encodes and decodes with), at its defaults:
RGB -> YCbCr (JFIF, full range, rounded to 8 bits), 4:2:0 chroma subsampling (2 x 2 means),
8 x 8 DCT-II, quantization by the standard tables of ITU-T T.81 Annex K scaled to the quality as
libjpeg's ``jpeg_quality_scaling``, then the inverse: dequantize, inverse DCT, chroma upsampling
by the triangle filter (libjpeg's "fancy upsampling", which is bilinear interpolation) and back to
RGB. The entropy coding is lossless and skipped. Floating-point DCTs stand in for libjpeg's integer
ones; tests/test_augment_pixels.py measures how close the result is to Pillow's decoded file.

Images are float pixel values in 0..255 (N x C x H x W, C = 3 or 1: a grey image is its luma).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import DataError

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), in row-major (not zig-zag) order.
LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
)


def quality_tables(quality: torch.Tensor, base: tuple[int, ...]) -> torch.Tensor:
    """Quantization tables (N x 8 x 8, integers 1..255 as float) for integer qualities 1..100,
    scaled as libjpeg's jpeg_quality_scaling with force_baseline (what Pillow writes)."""
    q = quality.to(torch.long).clamp(1, 100)
    scale = torch.where(q < 50, torch.div(5000, q, rounding_mode="floor"), 200 - 2 * q)   # percent
    table = torch.tensor(base, dtype=torch.long, device=q.device).view(1, 8, 8)
    scaled = torch.div(table * scale.view(-1, 1, 1) + 50, 100, rounding_mode="floor")
    return scaled.clamp(1, 255).to(torch.float32)


def dct_matrix(device: torch.device) -> torch.Tensor:
    """The orthonormal 8-point DCT-II matrix D (D @ x transforms a column); the 2-D DCT of a block
    B is D @ B @ D.T, which is T.81's FDCT exactly (its 1/4 C(u) C(v) factors are the normalization)."""
    k = torch.arange(8, dtype=torch.float64).view(8, 1)
    n = torch.arange(8, dtype=torch.float64).view(1, 8)
    d = torch.cos((2 * n + 1) * k * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(device=device, dtype=torch.float32)


def _blocks(plane: torch.Tensor) -> torch.Tensor:
    """N x H x W (multiples of 8) -> N x H/8 x W/8 x 8 x 8."""
    n, h, w = plane.shape
    return plane.reshape(n, h // 8, 8, w // 8, 8).transpose(2, 3)


def _unblocks(blocks: torch.Tensor) -> torch.Tensor:
    n, bh, bw, _, _ = blocks.shape
    return blocks.transpose(2, 3).reshape(n, bh * 8, bw * 8)


def _code_plane(plane: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Quantize and restore one 8-bit plane (N x H x W) with per-image tables (N x 8 x 8): what the
    decoder sees, in 0..255, rounded. A partial block is filled by repeating the last row and
    column, as libjpeg's encoder does."""
    h, w = plane.shape[-2:]
    padded = F.pad(plane.unsqueeze(1), (0, -w % 8, 0, -h % 8), mode="replicate").squeeze(1)
    blocks = _blocks(padded - 128.0)
    coeffs = d @ blocks @ d.T
    q = table.view(-1, 1, 1, 8, 8)
    restored = d.T @ (torch.round(coeffs / q) * q) @ d
    return torch.round(_unblocks(restored) + 128.0).clamp(0, 255)[:, :h, :w]


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """JFIF full-range conversion (N x 3 x H x W, 0..255), as libjpeg's jccolor.c."""
    r, g, b = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0
    return torch.stack([y, cb, cr], dim=1)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    y, cb, cr = x.unbind(1)
    r = y + 1.402 * (cr - 128.0)
    g = y - 0.344136286 * (cb - 128.0) - 0.714136286 * (cr - 128.0)
    b = y + 1.772 * (cb - 128.0)
    return torch.stack([r, g, b], dim=1)


def jpeg_batch(x: torch.Tensor, quality: torch.Tensor, subsampling: bool = True) -> torch.Tensor:
    """Each image of x (float N x C x H x W in 0..255, C = 1 or 3) JPEG-encoded and decoded at its
    own integer quality (N, 1..100); 4:2:0 chroma subsampling unless ``subsampling`` is False.
    Returns rounded float pixel values in 0..255, same shape."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"JPEG augmentation needs N x C x H x W images with 1 or 3 channels, got {tuple(x.shape)}")
    n, c, h, w = x.shape
    if quality.shape != (n,):
        raise DataError(f"JPEG augmentation: one quality per image, got {tuple(quality.shape)} for {n} images")
    if n == 0:
        return x
    d = dct_matrix(x.device)
    pixels = x.float().clamp(0, 255)
    luma_q = quality_tables(quality, LUMA_TABLE).to(x.device)
    if c == 1:
        return _code_plane(torch.round(pixels[:, 0]), luma_q, d).unsqueeze(1).to(x.dtype)
    chroma_q = quality_tables(quality, CHROMA_TABLE).to(x.device)
    if subsampling:
        # libjpeg repeats the last column out to the chroma blocks' width (16 px) and the last row
        # to an even count before the 2 x 2 means; the chroma planes' own partial blocks are then
        # filled from their last row (in _code_plane).
        pixels = F.pad(pixels, (0, -w % 16, 0, h % 2), mode="replicate")
    ycc = torch.round(rgb_to_ycbcr(pixels)).clamp(0, 255)
    y = _code_plane(ycc[:, 0, :h, :w], luma_q, d)
    chroma = ycc[:, 1:]
    if subsampling:
        # libjpeg's h2v2 downsampling: (sum of the 2 x 2 block + bias) // 4, the bias alternating
        # 1, 2 along a row so that halves round down and up in turn.
        sums = F.avg_pool2d(chroma, 2) * 4
        bias = 1.0 + (torch.arange(sums.shape[-1], device=x.device) % 2)
        chroma = torch.floor((torch.round(sums) + bias) / 4)
    coded = torch.stack([_code_plane(chroma[:, i], chroma_q, d) for i in range(2)], dim=1)
    if subsampling:
        # The decoder upsamples the ceil(H/2) x ceil(W/2) real chroma samples, edges repeated.
        ch, cw = (h + 1) // 2, (w + 1) // 2
        # (libjpeg's triangle filter weighs 9/16, 3/16, 3/16, 1/16 and stores 8-bit samples.)
        coded = torch.round(F.interpolate(coded[..., :ch, :cw], size=(2 * ch, 2 * cw), mode="bilinear",
                                          align_corners=False))
    rgb = ycbcr_to_rgb(torch.cat([y.unsqueeze(1), coded[..., :h, :w]], dim=1))
    return torch.round(rgb).clamp(0, 255).to(x.dtype)
