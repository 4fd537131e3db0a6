"""Input normalization, fitted on the train split only and applied batched on the device."""
from __future__ import annotations

import torch

from .config import NORMALIZE_KINDS
from .errors import DataError

# Published ImageNet statistics on 0..1 values (RGB), as used with ImageNet-pretrained weights.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def channel_moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact per-channel sum and sum of squares (float64, C each) of a uint8 N x C x H x W tensor,
    via a 256-bin histogram per channel: no float accumulation error, no big float copy."""
    values = torch.arange(256, dtype=torch.float64)
    sums, squares = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        sums.append((hist * values).sum())
        squares.append((hist * values * values).sum())
    return torch.stack(sums), torch.stack(squares)


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population std (ddof 0) of uint8 images, in 0..255 units (float64)."""
    count = images.numel() // images.shape[1]
    sums, squares = channel_moments(images)
    mean = sums / count
    return mean, (squares / count - mean * mean).clamp_min(0).sqrt()


class Normalizer:
    """Maps uint8 batches to float32: (x - mean) / std, with mean/std in 0..255 units.

    kinds: "none" (raw 0..255 floats), "unit" (/255), "center" (train mean per channel subtracted,
    values kept in 0..255 units: the cs231n-style preprocessing of report 002's course code, whose
    1e-3 init needs inputs of that scale), "zscore" (one global mean/std over all
    train pixels, report 004-b), "per_channel" (train mean/std per channel), "imagenet"
    (published ImageNet mean/std on /255 values).
    """

    def __init__(self, kind: str, mean: torch.Tensor, std: torch.Tensor) -> None:
        if kind not in NORMALIZE_KINDS:
            raise DataError(f"normalize kind {kind!r} unknown; use one of {', '.join(NORMALIZE_KINDS)}")
        self.kind = kind
        self.mean = torch.as_tensor(mean, dtype=torch.float32).flatten().cpu()
        self.std = torch.as_tensor(std, dtype=torch.float32).flatten().cpu()
        if self.mean.shape != self.std.shape or bool((self.std <= 0).any()):
            raise DataError(f"normalizer {kind!r}: mean {self.mean.tolist()} / std {self.std.tolist()} are unusable "
                            "(shapes differ or std <= 0: is the train split constant?)")
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def fit(cls, kind: str, train_images: torch.Tensor) -> "Normalizer":
        """Statistics from the train images (uint8 N x C x H x W); never pass val/test here."""
        if kind == "source":
            raise DataError("normalize: source is not fitted on images: it is the statistics of the source network "
                            "(model.pretrained), which the training loop reads from the source run "
                            "(cnnlab.train.sources.source_normalizer)")
        channels = train_images.shape[1]
        if kind == "none":
            return cls(kind, torch.zeros(1), torch.ones(1))
        if kind == "unit":
            return cls(kind, torch.zeros(1), torch.full((1,), 255.0))
        if kind == "imagenet":
            if channels != 3:
                raise DataError(f"normalize: imagenet needs RGB images (3 channels), got {channels}; use per_channel")
            return cls(kind, 255 * torch.tensor(IMAGENET_MEAN), 255 * torch.tensor(IMAGENET_STD))
        if train_images.dtype != torch.uint8 or train_images.numel() == 0:
            raise DataError(f"normalize {kind}: needs a non-empty uint8 train tensor, got {train_images.dtype} "
                            f"{tuple(train_images.shape)}")
        if kind == "per_channel":
            mean, std = channel_stats(train_images)
            return cls(kind, mean, std)
        if kind == "center":
            mean, _ = channel_stats(train_images)
            return cls(kind, mean, torch.ones_like(mean))
        # zscore: one mean/std over every value of every channel
        sums, squares = channel_moments(train_images)
        count = train_images.numel()
        mean = sums.sum() / count
        std = (squares.sum() / count - mean * mean).clamp_min(0).sqrt()
        return cls(kind, mean.reshape(1), std.reshape(1))

    def _stats_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._cache:
            scale = (1.0 / self.std).view(1, -1, 1, 1)
            shift = (-self.mean / self.std).view(1, -1, 1, 1)
            self._cache[device] = (scale.to(device), shift.to(device))
        return self._cache[device]

    def __call__(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        """float32 N x C x H x W on the batch's device."""
        if batch_uint8.dim() != 4:
            raise DataError(f"normalizer expects N x C x H x W, got shape {tuple(batch_uint8.shape)}")
        scale, shift = self._stats_on(batch_uint8.device)
        if scale.shape[1] not in (1, batch_uint8.shape[1]):
            raise DataError(f"normalizer fitted on {scale.shape[1]} channels, batch has {batch_uint8.shape[1]}")
        return torch.addcmul(shift, batch_uint8.float(), scale)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of a call: normalized float batch -> float pixel values (0..255 units)."""
        scale, shift = self._stats_on(x.device)
        return (x - shift) / scale

    def state_dict(self) -> dict:
        """Plain tensors and str only (loadable with torch.load(weights_only=True))."""
        return {"kind": self.kind, "mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def from_state_dict(cls, d: dict) -> "Normalizer":
        """Rebuild a fitted normalizer from state_dict() output."""
        try:
            return cls(str(d["kind"]), d["mean"], d["std"])
        except KeyError as e:
            raise DataError(f"normalizer state is missing {e}; expected keys kind, mean, std") from None

    def __repr__(self) -> str:
        return f"Normalizer({self.kind!r}, mean={[round(v, 4) for v in self.mean.tolist()]}, std={[round(v, 4) for v in self.std.tolist()]})"
