"""Image-folder datasets: root/<class>/**/*.jpg|jpeg|png (cats vs dogs, Tiny-ImageNet)."""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from .dataset import ArrayDataset
from .errors import DataError
from .stratify import derived_generator, largest_remainder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def list_images(root: Path) -> tuple[list[str], list[list[Path]]]:
    """Sorted class names (sub-folders of root) and each class's sorted image files (recursive)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; set data.root (or --data-dir) to a folder "
                        "with one sub-folder of images per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [sorted((p for p in (root / c).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                    key=lambda p: p.relative_to(root).as_posix()) for c in classes]
    empty = [c for c, f in zip(classes, files) if not f]
    if not classes or empty:
        raise DataError(f"image folder {root} needs one sub-folder of .jpg/.jpeg/.png images per class; "
                        f"{'no class folders found' if not classes else 'empty: ' + ', '.join(empty)}")
    return classes, files


def decode_image(path: Path, size: int) -> np.ndarray:
    """size x size x 3 uint8 RGB, resized bilinearly when needed. Raises on unreadable files."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def _decode_all(paths: list[Path], size: int) -> list[Optional[np.ndarray]]:
    def one(p: Path) -> Optional[np.ndarray]:
        try:
            return decode_image(p, size)
        except Exception:  # Pillow raises many kinds (OSError, SyntaxError, DecompressionBomb...)
            return None

    # Pillow releases the GIL while decoding and resizing, so threads scale on a few cores.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, paths, chunksize=64))


def split_counts(n: int, parts: list[float], cls: str) -> list[int]:
    """Per-class [train, val, test] counts from fractions (all <= 1) or whole counts."""
    if all(p <= 1 for p in parts):
        counts = largest_remainder(int(round(n * sum(parts))), [int(round(p * 10**6)) for p in parts])
        if counts[0] == 0:
            raise DataError(f"class {cls!r} has {n} images: too few for data.folder_split {parts} (0 for training); "
                            "add images or change folder_split")
        return counts
    counts = [int(p) for p in parts]
    if sum(counts) > n:
        raise DataError(f"class {cls!r} has {n} usable images, fewer than data.folder_split {counts} needs "
                        f"({sum(counts)}); add images or lower the counts")
    return counts


def load_folder(root: Path, image_size: int, parts: list[float], seed: int,
                bad_images: str = "stop") -> tuple[ArrayDataset, Optional[ArrayDataset], Optional[ArrayDataset]]:
    """(train, val, test) of an image folder, split per class; val/test are None when empty.

    Deterministic given the seed: files sorted by name, then a seeded permutation per class.
    indices = position of each image in the sorted list of all usable files.
    """
    root = Path(root)
    classes, files = list_images(root)
    flat = [p for fs in files for p in fs]
    decoded = _decode_all(flat, image_size)
    bad = [str(p) for p, a in zip(flat, decoded) if a is None]
    if bad:
        listing = "\n  ".join(bad)
        if bad_images == "stop":
            raise DataError(f"{len(bad)} unreadable image(s) in {root}:\n  {listing}\n"
                            "delete or replace them, or set data.bad_images: skip")
        warnings.warn(f"skipping {len(bad)} unreadable image(s) in {root}:\n  {listing}", stacklevel=2)
    flat_labels = [c for c, fs in enumerate(files) for _ in fs]
    keep = [(p, a, c) for p, a, c in zip(flat, decoded, flat_labels) if a is not None]
    if not keep:
        raise DataError(f"no readable images in {root}; check the files (Pillow must open them)")
    # keep: (path, array, class) of usable images in sorted order; its position is the "idx".
    images = torch.from_numpy(np.stack([a for _, a, _ in keep])).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([c for _, _, c in keep], dtype=torch.int64)
    paths = [str(p) for p, _, _ in keep]
    g = derived_generator(seed, "folder_split")
    chosen: list[list[torch.Tensor]] = [[], [], []]
    for c, name in enumerate(classes):
        positions = torch.nonzero(labels == c).flatten()
        counts = split_counts(len(positions), parts, name)
        perm = positions[torch.randperm(len(positions), generator=g)]
        start = 0
        for part, k in enumerate(counts):
            chosen[part].append(perm[start:start + k])
            start += k
    full = ArrayDataset(images, labels, classes, torch.arange(len(labels)), paths)
    out = []
    for part in chosen:
        idx = torch.sort(torch.cat(part)).values
        out.append(full.subset(idx) if len(idx) else None)
    return out[0], out[1], out[2]
