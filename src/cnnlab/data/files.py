"""Image files for prediction: any file Pillow opens, turned into the pixels a run trained on.

A run's images were decoded by ``folder.decode_image`` (image folders, Tiny-ImageNet: Pillow,
``convert("RGB")``, antialiased bilinear resize to data.image_size when the size differs) or
came as 32 x 32 RGB (CIFAR). Files are decoded here by that same function, so a PNG holding a
training image's pixels gives back exactly those pixels; grey, RGBA and palette images are
converted the way training converted them (no EXIF rotation: training applies none either).
Files that cannot be decoded are reported with the reason, never fatal (``decode_files``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from .config import DataConfig
from .decode_cache import CHANNELS, decode_many
from .errors import DataError
from .folder import IMAGE_SUFFIXES, decode_image

# Side of the images of the datasets that are not resized (CIFAR-10/100 come as 32 x 32 pixels).
NATIVE_SIDE = {"cifar10": 32, "cifar100": 32}
# Files taken from a folder: what training reads, plus the other formats Pillow opens.
# (A file named on the command line is always tried, whatever its suffix.)
PREDICT_SUFFIXES = IMAGE_SUFFIXES + (".bmp", ".gif", ".webp", ".tif", ".tiff")

__all__ = ["CHANNELS", "DecodedFiles", "ImageListing", "NATIVE_SIDE", "PREDICT_SUFFIXES", "UnreadableImageError",
           "decode_files", "find_image_files", "image_side", "pil_to_pixels"]


class UnreadableImageError(DataError, OSError):
    """An image that cannot be decoded (the message names the file and Pillow's reason)."""


def image_side(cfg: DataConfig) -> int:
    """Side in pixels of the square images the run's data layer produced (the model's input)."""
    return NATIVE_SIDE.get(cfg.name, cfg.image_size)


def pil_to_pixels(img: Image.Image, size: int) -> np.ndarray:
    """size x size x 3 uint8 of an opened PIL image: the conversion of ``folder.decode_image``
    (which takes a path), applied to an image already in memory."""
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _reason(path: str, size: int) -> Optional[str]:
    """Why ``path`` cannot be decoded (None when it can)."""
    try:
        decode_image(Path(path), size)
    except Exception as err:  # Pillow raises many kinds (OSError, SyntaxError, DecompressionBombError...)
        text = str(err).strip() or type(err).__name__
        return f"{type(err).__name__}: {text}" if not isinstance(err, OSError) else text
    return None


@dataclass
class DecodedFiles:
    """images: N x 3 x size x size uint8 (zeros where a file failed); ok: N bool; reasons: path -> why."""

    images: np.ndarray
    ok: np.ndarray
    reasons: dict[str, str] = field(default_factory=dict)


def decode_files(paths: Sequence[str | Path], size: int, workers: Optional[int] = None) -> DecodedFiles:
    """Decode ``paths`` as training decoded its images (one worker per core for many files);
    a file that cannot be read gets ok False and its reason, and the others go on."""
    paths = [str(p) for p in paths]
    images, ok = decode_many(paths, size, workers) if paths else (np.zeros((0, size, size, CHANNELS), np.uint8),
                                                                   np.zeros(0, bool))
    reasons = {}
    for i in np.flatnonzero(~ok):   # decode once more, alone, for the reason (failures are few)
        why = _reason(paths[i], size)
        if why is None:             # read now (e.g. a worker died): take it
            images[i], ok[i] = decode_image(Path(paths[i]), size), True
        else:
            reasons[paths[i]] = why
    return DecodedFiles(np.ascontiguousarray(images.transpose(0, 3, 1, 2)), ok, reasons)


@dataclass
class ImageListing:
    """Files to predict, in order; group: the class sub-folder each came from (None: no class folder);
    missing: paths that do not exist, with the reason."""

    files: list[str]
    groups: list[Optional[str]]
    missing: dict[str, str] = field(default_factory=dict)


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _images_in(folder: Path) -> list[str]:
    """Image files anywhere under ``folder`` (hidden ones skipped), sorted by relative POSIX path."""
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if _visible(d)]
        found += [os.path.join(here, f) for f in files
                  if _visible(f) and os.path.splitext(f)[1].lower() in PREDICT_SUFFIXES]
    return sorted(found, key=lambda p: Path(p).relative_to(folder).as_posix())


def _split_folders(folder: Path) -> Optional[list[str]]:
    """The split folders (train/, val/, valid/, validation/, test/) of a pre-split root whose every
    sub-folder is one and holds class folders, in train/val/test order; else None."""
    from cnnlab.data.folder import SPLIT_ROLES

    names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and _visible(e.name))
    if not names or any(n.lower() not in SPLIT_ROLES for n in names):
        return None
    if not all(_class_folders(folder / n) for n in names):
        return None
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(names, key=lambda n: order[SPLIT_ROLES[n.lower()]])


def _class_folders(folder: Path) -> Optional[list[str]]:
    """Sorted names of the class sub-folders when ``folder`` is a folder of class folders (no loose
    images, at least one visible sub-folder holding images), else None."""
    entries = list(os.scandir(folder))
    if any(e.is_file() and os.path.splitext(e.name)[1].lower() in PREDICT_SUFFIXES for e in entries):
        return None
    names = sorted(e.name for e in entries if e.is_dir() and _visible(e.name))
    return names if any(_images_in(folder / n) for n in names) else None


def find_image_files(paths: Sequence[str | Path]) -> ImageListing:
    """The image files named by ``paths``: files as given, folders expanded (recursively, sorted).

    A folder of class folders (folder/<class>/*.png and nothing loose) labels each image with its
    sub-folder's name, so the caller can score the predictions; a pre-split root (train/, val/,
    test/ of class folders, as training reads it) labels each image with its class folder too. DataError when nothing is found.
    """
    listing = ImageListing([], [])
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            listing.files.append(str(path))
            listing.groups.append(None)
        elif path.is_dir():
            classes = _class_folders(path)
            split_roots = _split_folders(path) if classes is not None else None
            if split_roots:   # a pre-split root (train/, val/, test/ of class folders), as training reads it
                for split in split_roots:
                    for name in _class_folders(path / split) or []:
                        found = _images_in(path / split / name)
                        listing.files += found
                        listing.groups += [name] * len(found)
            elif classes is None:
                found = _images_in(path)
                listing.files += found
                listing.groups += [None] * len(found)
            else:
                for name in classes:
                    found = _images_in(path / name)
                    listing.files += found
                    listing.groups += [name] * len(found)
        else:
            listing.missing[str(path)] = "no such file or folder"
    if not listing.files:
        where = ", ".join(str(p) for p in paths) or "(no paths given)"
        raise DataError(f"no image files found in {where}; give image files or folders holding "
                        f"{'/'.join(s.lstrip('.') for s in PREDICT_SUFFIXES)} files")
    return listing
