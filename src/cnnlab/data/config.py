"""Config dataclasses of the data layer (checked by cnnlab.config's typed loader, then here)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Optional, Union

DATASET_NAMES = ("cifar10", "cifar100", "folder", "tiny_imagenet")
LABEL_MODES = ("fine", "coarse")
BAD_IMAGE_MODES = ("stop", "skip")
NORMALIZE_KINDS = ("none", "unit", "center", "zscore", "per_channel", "imagenet")
# What data.normalize accepts: a kind fitted here, or "source": the statistics the source network
# (model.pretrained) was trained with, which the training loop reads from the source run (or
# ImageNet's for pretrained: imagenet), so a transferred body sees the inputs it learned on.
NORMALIZE_CHOICES = NORMALIZE_KINDS + ("source",)
CROP_PAD_MODES = ("reflect", "zero")
FLIP_MODES = ("random", "alternating")


def _check_choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{key}: {value!r} is not allowed; use one of {', '.join(allowed)}")


def count_or_fraction_error(key: str, value: object, zero_ok: bool) -> Optional[str]:
    """The one rule of a count-or-fraction setting (data.val_size, data.train_subset,
    data.test_subset): an int is a count of images, a float a fraction in (0, 1). So 1.0 is not
    "all" and 5000.0 is not a count. Returns the error message, or None when `value` is fine."""
    usage = ("use 0 (none), a count of images (5000) or a fraction in (0, 1) (0.1)" if zero_ok else
             "use a count of images >= 1 (5000), a fraction in (0, 1) (0.1), or null for all")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{key}: {value!r} is not allowed; {usage}"
    if isinstance(value, int):
        return None if value >= (0 if zero_ok else 1) else f"{key}: {value!r} is not allowed; {usage}"
    if zero_ok and value == 0:
        return None
    if not math.isfinite(value) or value <= 0:
        return f"{key}: {value!r} is not allowed; {usage}"
    if value >= 1:
        return (f"{key}: {value!r} is not allowed: a fraction must be below 1; write an integer count such as 5000"
                + ("" if zero_ok else ", or null for all images"))
    return None


def _check_count_or_fraction(key: str, value: object, zero_ok: bool) -> None:
    error = count_or_fraction_error(key, value, zero_ok)
    if error:
        raise ValueError(error)


def _check_min(key: str, value: float, low: float, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise ValueError(f"{key}: {value!r} is not allowed; {what}")


@dataclass
class AugmentConfig:
    """On-device, batched training-time augmentation. All zero/False = off."""

    hflip: bool = False  # horizontal flip with p = 0.5
    # "alternating" (airbench's alternating flip): each image gets a random flip fixed for the run
    # (from the seed), and the whole set is mirrored in every odd epoch, so every image is seen both
    # ways in any two consecutive epochs instead of by chance. Needs hflip: true; the training loop
    # supplies each image's index and the epoch.
    flip_mode: str = "random"
    crop_padding: int = 0  # px; pad then random-crop back to the original size (0 = off)
    crop_pad_mode: str = "reflect"  # how the crop padding is filled: "reflect" | "zero"
    width_shift: float = 0.0  # fraction of width; uniform shift in [-w, w] (Keras width_shift_range)
    height_shift: float = 0.0  # fraction of height
    rotation: float = 0.0  # degrees; uniform in [-r, r] (Keras rotation_range)
    cutout: int = 0  # side in px of one square zeroed per image (0 = off)
    # Robustness to real-world inputs (issue 40), both on pixel values before normalization:
    trivial_augment: bool = False  # TrivialAugment (wide): one random op at a random magnitude per image
    jpeg_quality: list[int] = field(default_factory=list)  # [low, high]: JPEG 4:2:0 at a random quality in low..high ([] = off)
    jpeg_p: float = 0.5  # the share of images that jpeg_quality re-encodes

    _aliases: ClassVar[dict[str, str]] = {
        "rotation_range": "rotation",
        "width_shift_range": "width_shift",
        "height_shift_range": "height_shift",
        "horizontal_flip": "hflip",
    }

    def __post_init__(self) -> None:
        _check_min("augment.crop_padding", self.crop_padding, 0, "use a whole number of pixels >= 0")
        if not isinstance(self.crop_padding, int):
            raise ValueError(f"augment.crop_padding: {self.crop_padding!r} is not allowed; use a whole number of pixels >= 0")
        _check_choice("augment.crop_pad_mode", self.crop_pad_mode, CROP_PAD_MODES)
        _check_choice("augment.flip_mode", self.flip_mode, FLIP_MODES)
        if self.flip_mode != "random" and not self.hflip:
            raise ValueError(f"augment.flip_mode: {self.flip_mode!r} sets how images are flipped; add hflip: true, "
                             "or drop flip_mode")
        for key in ("width_shift", "height_shift"):
            value = getattr(self, key)
            _check_min(f"augment.{key}", value, 0, "use a fraction of the image size in [0, 1)")
            if value >= 1:
                raise ValueError(f"augment.{key}: {value!r} is not allowed; use a fraction of the image size in [0, 1)")
        _check_min("augment.rotation", self.rotation, 0, "use degrees in [0, 180]")
        if self.rotation > 180:
            raise ValueError(f"augment.rotation: {self.rotation!r} is not allowed; use degrees in [0, 180]")
        _check_min("augment.cutout", self.cutout, 0, "use a whole number of pixels >= 0")
        if not isinstance(self.cutout, int):
            raise ValueError(f"augment.cutout: {self.cutout!r} is not allowed; use a whole number of pixels >= 0")
        quality = self.jpeg_quality
        if quality and (len(quality) != 2 or not all(isinstance(q, int) and not isinstance(q, bool) and 1 <= q <= 100
                                                      for q in quality) or quality[0] > quality[1]):
            raise ValueError(f"augment.jpeg_quality: {quality!r} is not allowed; use [low, high] with whole numbers "
                             "1 <= low <= high <= 100 (e.g. [30, 95]), or [] for off")
        _check_min("augment.jpeg_p", self.jpeg_p, 0, "use a probability in [0, 1]")
        if self.jpeg_p > 1:
            raise ValueError(f"augment.jpeg_p: {self.jpeg_p!r} is not allowed; use a probability in [0, 1]")


@dataclass
class DataConfig:
    """Which dataset, how it is split, subset and normalized."""

    name: str = "cifar10"  # "cifar10" | "cifar100" | "folder" | "tiny_imagenet"
    # folder: root/<class>/**/*.jpg|jpeg|png, or a pre-split root/{train,val,test}/<class>/...;
    # cifar: a folder holding cifar-10-batches-py/ (checked first); tiny_imagenet: tiny-imagenet-200/ or its parent
    root: Optional[str] = None
    label_mode: str = "fine"  # cifar100: "fine" (100 classes) | "coarse" (20)
    image_size: int = 32  # folder, tiny_imagenet: images resized to image_size x image_size px (RGB)
    # Counts or fractions: an int is a number of images (5000), a float a fraction in (0, 1) (0.1);
    # 1.0 or 5000.0 is an error, not "all" or a count (one rule: count_or_fraction_error).
    # carved from train, stratified & seeded; 0 = no validation split. Not with a folder of class
    # folders (folder_split has the validation part) nor a pre-split root that has val/ (checked on load).
    val_size: Union[int, float] = 0
    train_subset: Optional[Union[int, float]] = None  # stratified, seeded subset of train (after the val carve)
    test_subset: Optional[Union[int, float]] = None  # stratified, seeded subset of test; null = all
    # folder of class folders: per-class train/val/test, counts ([1200, 400, 400]) or fractions
    # ([0.6, 0.2, 0.2]); a pre-split root (train/ val/ test/) keeps its own splits and ignores this
    folder_split: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])
    bad_images: str = "stop"  # folder, tiny_imagenet: "stop" (raise, listing paths) | "skip" (warn with paths, go on)
    normalize: str = "per_channel"  # "none" | "unit" | "center" | "zscore" | "per_channel" | "imagenet" | "source"
    download: bool = True  # cifar: fetch from the publisher when no local copy is found

    def __post_init__(self) -> None:
        _check_choice("data.name", self.name, DATASET_NAMES)
        _check_choice("data.label_mode", self.label_mode, LABEL_MODES)
        _check_choice("data.bad_images", self.bad_images, BAD_IMAGE_MODES)
        _check_choice("data.normalize", self.normalize, NORMALIZE_CHOICES)
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or not 4 <= self.image_size <= 1024:
            raise ValueError(f"data.image_size: {self.image_size!r} is not allowed; use whole pixels in [4, 1024]")
        _check_count_or_fraction("data.val_size", self.val_size, zero_ok=True)
        for key in ("train_subset", "test_subset"):
            if getattr(self, key) is not None:
                _check_count_or_fraction(f"data.{key}", getattr(self, key), zero_ok=False)
        # val_size with name: folder depends on the folder's layout, so load_splits checks it.
        self._check_folder_split()

    def _check_folder_split(self) -> None:
        parts = self.folder_split
        bad = (not isinstance(parts, list) or len(parts) != 3
               or any(isinstance(p, bool) or not isinstance(p, (int, float)) or p < 0 for p in parts))
        if not bad:
            if all(p <= 1 for p in parts):
                bad = sum(parts) > 1 + 1e-9 or parts[0] == 0
            else:
                bad = any(float(p) != int(p) for p in parts) or parts[0] == 0
        if bad:
            raise ValueError(
                f"data.folder_split: {parts!r} is not allowed; use three per-class parts [train, val, test]: "
                "fractions summing to at most 1 ([0.6, 0.2, 0.2]) or whole counts ([1200, 400, 400]), train > 0")
