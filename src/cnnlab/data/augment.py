"""Training-time augmentation as batched tensor ops on the training device.

Order per batch: horizontal flip -> pad + random crop -> rotation/shift (one affine grid) ->
[on pixel values: TrivialAugment -> JPEG re-encoding] -> cutout. The pixel-value stage undoes the
normalization, rounds to 8-bit levels (as a decoded image has), applies its ops and normalizes again. Every random draw comes from the caller's torch.Generator (on the batch's device), so a
run is reproducible and resumable bitwise from the generator's state.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import AugmentConfig
from .errors import DataError
from .jpeg_augment import jpeg_batch
from .trivial_augment import BINS, OPS, trivial_augment


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) * (high - low) + low


def hflip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the images where the bool mask `flip` (N) is true."""
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def alternating_flip(phase: torch.Tensor, epoch: int) -> torch.Tensor:
    """airbench's alternating flip: mirror an image when its fixed random `phase` (bool, one per
    image) differs from the epoch's parity, so each image is seen both ways in any two
    consecutive epochs. `phase` is drawn once per run (flip_phase)."""
    return phase ^ bool(epoch % 2)


def flip_phase(n_images: int, seed: int) -> torch.Tensor:
    """Each training image's flip in epoch 0, a fixed draw from `seed` (bool, N)."""
    return torch.randint(0, 2, (n_images,), generator=torch.Generator().manual_seed(seed)).bool()


def pad_crop(x: torch.Tensor, padding: int, top: torch.Tensor, left: torch.Tensor, mode: str = "reflect") -> torch.Tensor:
    """Pad by `padding` px each side ("reflect" mirrors the border, "zero" fills 0 = the mean
    after normalization), then take per-image H x W windows at (top, left) in [0, 2 * padding]."""
    n, c, h, w = x.shape
    if mode == "reflect" and (padding >= h or padding >= w):
        raise DataError(f"augment.crop_padding: {padding} px needs images larger than that for reflect padding, "
                        f"got {h} x {w}; use a smaller padding or crop_pad_mode: zero")
    padded = F.pad(x, (padding,) * 4, mode="reflect" if mode == "reflect" else "constant")
    rows = (top.view(-1, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * padding)
    x = torch.gather(padded, 2, rows)
    cols = (left.view(-1, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return torch.gather(x, 3, cols)


def affine(x: torch.Tensor, degrees: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor) -> torch.Tensor:
    """Rotate each image by `degrees` (counter-clockwise as displayed, row 0 on top) about its
    centre and move its content by (shift_x, shift_y) fractions of width/height (positive =
    right/down); bilinear, edges filled with the nearest border pixel (Keras fill_mode="nearest").
    All three are float tensors of length N."""
    n, _, h, w = x.shape
    theta = torch.deg2rad(degrees.to(torch.float32))
    cos, sin = torch.cos(theta), torch.sin(theta)
    # affine_grid maps output coords to input coords in [-1, 1] units; a pixel-space rotation R
    # becomes S R S^-1 with S = diag(2/W, 2/H), and the inverse map of a content shift of f is -2f.
    # Counter-clockwise on screen (y grows downwards) samples input at R(+theta) of the output.
    mat = torch.stack([
        torch.stack([cos, -sin * (h / w), -2 * shift_x.to(torch.float32)], dim=1),
        torch.stack([sin * (w / h), cos, -2 * shift_y.to(torch.float32)], dim=1),
    ], dim=1)
    grid = F.affine_grid(mat.to(x.dtype), [n, x.shape[1], h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def cutout(x: torch.Tensor, size: int, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """Zero one size x size square per image with its top-left corner at (top, left)."""
    n, _, h, w = x.shape
    ys = torch.arange(h, device=x.device).view(1, h)
    xs = torch.arange(w, device=x.device).view(1, w)
    in_rows = (ys >= top.view(-1, 1)) & (ys < top.view(-1, 1) + size)
    in_cols = (xs >= left.view(-1, 1)) & (xs < left.view(-1, 1) + size)
    mask = (in_rows.view(n, 1, h, 1) & in_cols.view(n, 1, 1, w))
    return x.masked_fill(mask, 0.0)


class Augmenter:
    """Applies an AugmentConfig to normalized float batches (N x C x H x W) on any device."""

    def __init__(self, cfg: AugmentConfig, normalizer=None) -> None:
        """``normalizer`` (data/normalize.py) maps pixel values to the batches' units and back; the
        pixel-value ops (trivial_augment, jpeg_quality) need it."""
        self.cfg = cfg
        self.normalizer = normalizer
        self.pixel_ops: bool = bool(cfg.trivial_augment or cfg.jpeg_quality)
        self.enabled: bool = bool(cfg.hflip or cfg.crop_padding or cfg.width_shift or cfg.height_shift
                                  or cfg.rotation or cfg.cutout or self.pixel_ops)
        if self.pixel_ops and normalizer is None:
            raise DataError("augment.trivial_augment / augment.jpeg_quality work on pixel values: build the "
                            "Augmenter with the run's normalizer, Augmenter(cfg, normalizer=...)")

    def __call__(self, x: torch.Tensor, generator: torch.Generator, part: tuple[int, int] | None = None,
                 flip: torch.Tensor | None = None) -> torch.Tensor:
        """An augmented copy of x; all randomness drawn from `generator` (on x's device).

        ``part=(start, total)``: x is rows start.. of a batch of ``total`` (one rank's share of a
        data-parallel batch). The draws are made for the whole batch and x takes its rows, so
        every rank's generator stays in step and each image gets what one process would give it.
        ``flip``: a bool mask (N) of the images to mirror, given by the caller instead of drawn
        (flip_mode "alternating", where the flip follows the image and the epoch: `alternating_flip`).
        """
        if not self.enabled:
            return x
        if x.dim() != 4 or not x.is_floating_point():
            raise DataError(f"augmenter expects a float N x C x H x W batch, got {x.dtype} {tuple(x.shape)}")
        if generator.device.type != x.device.type:
            raise DataError(f"augmenter generator is on {generator.device}, batch on {x.device}; "
                            "create the generator with torch.Generator(device=batch.device)")
        cfg, n, dev = self.cfg, x.shape[0], x.device
        _, _, h, w = x.shape
        start, total = part if part is not None else (0, n)

        # Draws for all `total` rows of the batch, of which x holds rows start..start+n.
        def rand() -> torch.Tensor:
            return torch.rand(total, generator=generator, device=dev)[start:start + n]

        def randint(high: int) -> torch.Tensor:
            return torch.randint(0, high, (total,), generator=generator, device=dev)[start:start + n]

        def uniform(low: float, high: float) -> torch.Tensor:
            return _uniform(total, low, high, generator, dev)[start:start + n]

        if cfg.hflip:
            if flip is None and cfg.flip_mode == "alternating":
                raise DataError("augment.flip_mode: alternating flips each image by its index and the epoch; "
                                "pass flip=alternating_flip(phase[ids], epoch) (the training loop does), or use "
                                "flip_mode: random")
            if flip is not None and flip.shape != (n,):
                raise DataError(f"augmenter flip mask has shape {tuple(flip.shape)}, the batch {n} images; "
                                "give one bool per image")
            x = hflip(x, flip.to(device=dev, dtype=torch.bool) if flip is not None else rand() < 0.5)
        if cfg.crop_padding:
            span = 2 * cfg.crop_padding + 1
            top = randint(span)
            left = randint(span)
            x = pad_crop(x, cfg.crop_padding, top, left, cfg.crop_pad_mode)
        if cfg.rotation or cfg.width_shift or cfg.height_shift:
            degrees = uniform(-cfg.rotation, cfg.rotation)
            sx = uniform(-cfg.width_shift, cfg.width_shift)
            sy = uniform(-cfg.height_shift, cfg.height_shift)
            x = affine(x, degrees, sx, sy)
        if self.pixel_ops:
            x = self._pixel_stage(x, rand, randint)
        if cfg.cutout:
            if cfg.cutout > min(h, w):
                raise DataError(f"augment.cutout: {cfg.cutout} px is larger than the {h} x {w} images; use a smaller side")
            top = randint(h - cfg.cutout + 1)
            left = randint(w - cfg.cutout + 1)
            x = cutout(x, cfg.cutout, top, left)
        return x

    def _pixel_stage(self, x: torch.Tensor, rand, randint) -> torch.Tensor:
        """TrivialAugment, then JPEG, on 8-bit pixel levels; the draws are made for every row
        whether or not its image is changed, so the generator's stream never depends on content."""
        cfg = self.cfg
        pixels = torch.round(self.normalizer.to_pixels(x)).clamp(0, 255)
        if cfg.trivial_augment:
            op, level, sign = randint(len(OPS)), randint(BINS), rand() < 0.5
            pixels = trivial_augment(pixels, op, level, sign)
        if cfg.jpeg_quality:
            low, high = cfg.jpeg_quality
            quality = low + randint(high - low + 1)
            chosen = (rand() < cfg.jpeg_p).nonzero().squeeze(1)
            if len(chosen):
                pixels = pixels.index_copy(0, chosen, jpeg_batch(pixels[chosen], quality[chosen]))
        return self.normalizer(pixels)

    def __repr__(self) -> str:
        return f"Augmenter({self.cfg})"
