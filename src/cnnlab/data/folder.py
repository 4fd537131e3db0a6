"""Image-folder datasets (cats vs dogs and the like), in one of two layouts:

* a root of class folders, root/<class>/**/*.jpg|jpeg|png, split per class by data.folder_split;
* a pre-split root, root/train/<class>/..., root/val/ (or valid/, validation/) and root/test/,
  each holding class folders; its splits are used as given (the classes are train's).

A root whose sub-folders are named like splits but hold images directly (classes "train" and
"test") is refused: read as classes it would train a meaningless classifier without a word.
Images are decoded through the decode cache (decode_cache.py).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .dataset import ArrayDataset
from .decode_cache import decode_folder, decode_image  # decode_image: public here too (prediction uses it)
from .errors import DataError
from .stratify import derived_generator, largest_remainder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# Folder name (case-insensitive) -> split it holds in a pre-split root.
SPLIT_ROLES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}

__all__ = ["IMAGE_SUFFIXES", "SPLIT_ROLES", "FolderData", "FolderLayout", "class_listing", "decode_checked",
           "decode_image", "detect_layout", "list_images", "load_folder", "load_image_folder", "split_counts"]


def _subdirs(folder: Path) -> list[str]:
    """Sorted names of the visible sub-folders of `folder`."""
    return sorted(e.name for e in os.scandir(folder) if not e.name.startswith(".") and e.is_dir())


def _images_under(folder: Path) -> list[str]:
    """Image files anywhere under `folder`, as sorted relative POSIX paths (hidden files and folders skipped)."""
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(here, folder)
        prefix = "" if rel == "." else Path(rel).as_posix() + "/"
        found += [prefix + f for f in files
                  if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES]
    return sorted(found)


def _loose_images(folder: Path) -> int:
    """Number of image files directly in `folder` (not in sub-folders)."""
    return sum(1 for e in os.scandir(folder) if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)


def class_listing(root: Path) -> tuple[list[str], list[list[str]]]:
    """Sorted class names (sub-folders of root) and each class's sorted image files (recursive), as
    POSIX paths relative to root ("cat/img_001.png"): strings, not Paths, which cost seconds at 100,000."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; set data.root (or --data-dir) to a folder "
                        "with one sub-folder of images per class")
    classes = _subdirs(root)
    files = [[f"{c}/{rel}" for rel in _images_under(root / c)] for c in classes]
    empty = [c for c, f in zip(classes, files) if not f]
    if not classes or empty:
        raise DataError(f"image folder {root} needs one sub-folder of .jpg/.jpeg/.png images per class; "
                        f"{'no class folders found' if not classes else 'empty: ' + ', '.join(empty)}")
    return classes, files


def list_images(root: Path) -> tuple[list[str], list[list[Path]]]:
    """Sorted class names (sub-folders of root) and each class's sorted image files (recursive)."""
    classes, files = class_listing(root)
    return classes, [[Path(root) / rel for rel in fs] for fs in files]


@dataclass
class FolderLayout:
    """kind "classes" (root/<class>/...) or "presplit" (splits: role -> folder, roles train/val/test)."""

    kind: str
    root: Path
    splits: dict[str, Path] = field(default_factory=dict)


def detect_layout(root: Path) -> FolderLayout:
    """Which layout `root` has (see the module doc); DataError for the ambiguous ones, naming the fix."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; set data.root (or --data-dir) to a folder "
                        "with one sub-folder of images per class (or train/ and test/ folders of class folders)")
    dirs = _subdirs(root)
    split_like = [d for d in dirs if d.lower() in SPLIT_ROLES]
    if not split_like:
        return FolderLayout("classes", root)
    if (root / "wnids.txt").is_file():
        raise DataError(f"{root} looks like Tiny-ImageNet-200 (it has wnids.txt): set data.name: tiny_imagenet, "
                        "which reads its train/<wnid>/images and val/val_annotations.txt")
    with_classes = [d for d in split_like if _subdirs(root / d)]
    if not with_classes:
        names = ", ".join(repr(d) for d in split_like)
        raise DataError(
            f"image folder {root}: its sub-folder(s) {names} are named like dataset splits but hold images, not "
            f"class folders. A pre-split root needs one folder per class inside each split ({root}/train/<class>/"
            f"*.jpg, {root}/test/<class>/*.jpg); if {names} really are class names, rename those folders")
    flat = [d for d in split_like if d not in with_classes]
    if flat:
        d = flat[0]
        held = _loose_images(root / d)
        raise DataError(
            f"pre-split image folder {root}: {root / d} holds {held} image(s) but no class folders, so its "
            f"images have no labels; sort them into {root / d}/<class>/ folders, or move {d}/ out of {root}")
    others = [d for d in dirs if d not in split_like]
    if others:
        raise DataError(
            f"image folder {root} mixes split folders ({', '.join(split_like)}) with other folders "
            f"({', '.join(others)}); a pre-split root holds only train/, val/ (or valid/, validation/) and test/, "
            f"each with one folder per class: move {', '.join(others)} out of {root}")
    splits: dict[str, Path] = {}
    for d in split_like:
        role = SPLIT_ROLES[d.lower()]
        if role in splits:
            raise DataError(f"pre-split image folder {root} has two {role} folders ({splits[role].name}/ and {d}/); "
                            "keep one")
        splits[role] = root / d
    if "train" not in splits:
        raise DataError(f"pre-split image folder {root} has {', '.join(d + '/' for d in split_like)} but no train/ "
                        f"folder; add {root}/train/<class>/ folders of training images")
    return FolderLayout("presplit", root, splits)


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


def decode_checked(root: Path, rel_paths: list[str], image_size: int,
                   bad_images: str) -> tuple[np.ndarray, np.ndarray]:
    """(images N x S x S x 3 uint8, ok N bool) of root/rel for each relative POSIX path (one cache
    file for root). Unreadable files stop with their paths (bad_images "stop") or warn and get ok False."""
    images, ok, _ = decode_folder(Path(root), rel_paths, image_size)
    bad = [os.path.join(str(root), rel) for rel, good in zip(rel_paths, ok.tolist()) if not good]
    if bad:
        listing = "\n  ".join(bad)
        if bad_images == "stop":
            raise DataError(f"{len(bad)} unreadable image(s) in {root}:\n  {listing}\n"
                            "delete or replace them, or set data.bad_images: skip")
        warnings.warn(f"skipping {len(bad)} unreadable image(s) in {root}:\n  {listing}", stacklevel=3)
    if not ok.any():
        raise DataError(f"no readable images in {root}; check the files (Pillow must open them)")
    return images, ok


def _take(images: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """images[keep] without a copy when `keep` is a run of consecutive positions (no bad images):
    the permute to N x C x H x W copies anyway, and a 100,000-image array is 1.2 GB at 64 px."""
    if len(keep) and keep[-1] - keep[0] + 1 == len(keep):
        return images[keep[0]:keep[-1] + 1]
    return images[keep]


def _dataset(images: np.ndarray, labels: list[int], paths: list[str], classes: list[str]) -> ArrayDataset:
    """An ArrayDataset of N x H x W x 3 `images`; indices = positions 0..N-1 (the sorted usable files)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return ArrayDataset(x, torch.tensor(labels, dtype=torch.int64), list(classes), torch.arange(len(labels)),
                        list(paths))


def _need_two_classes(classes: list[str], where: Path) -> None:
    if len(classes) < 2:
        raise DataError(f"image folder {where} has one class folder ({classes[0]!r}); a classifier needs at least "
                        "two: give the folder that holds the class folders")


@dataclass
class FolderData:
    """What an image folder gave: its splits (val/test None when absent or empty) and its layout."""

    train: ArrayDataset
    val: Optional[ArrayDataset]
    test: Optional[ArrayDataset]
    layout: FolderLayout


def _load_classes_root(root: Path, image_size: int, parts: list[float], seed: int,
                       bad_images: str) -> tuple[ArrayDataset, Optional[ArrayDataset], Optional[ArrayDataset]]:
    classes, files = class_listing(root)
    _need_two_classes(classes, root)
    flat = [rel for fs in files for rel in fs]
    images, ok = decode_checked(root, flat, image_size, bad_images)
    flat_labels = [c for c, fs in enumerate(files) for _ in fs]
    keep = np.flatnonzero(ok)
    # Usable images in sorted order; an image's position here is its "idx" in reports.
    full = _dataset(_take(images, keep), [flat_labels[i] for i in keep],
                    [os.path.join(str(root), flat[i]) for i in keep], classes)
    labels = full.labels
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
    out = []
    for part in chosen:
        idx = torch.sort(torch.cat(part)).values
        out.append(full.subset(idx) if len(idx) else None)
    return out[0], out[1], out[2]


def _load_presplit(layout: FolderLayout, image_size: int,
                   bad_images: str) -> tuple[ArrayDataset, Optional[ArrayDataset], Optional[ArrayDataset]]:
    root = layout.root
    train_dir = layout.splits["train"]
    classes, train_files = class_listing(train_dir)
    _need_two_classes(classes, train_dir)
    # role -> (paths relative to root, labels)
    parts: dict[str, tuple[list[str], list[int]]] = {
        "train": ([f"{train_dir.name}/{rel}" for fs in train_files for rel in fs],
                  [c for c, fs in enumerate(train_files) for _ in fs])}
    for role in ("val", "test"):
        if role not in layout.splits:
            continue
        folder = layout.splits[role]
        names, files = class_listing(folder)
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise DataError(f"pre-split image folder {root}: {folder}/ has class folder(s) {', '.join(unknown)} that "
                            f"{train_dir}/ does not have (its classes: {', '.join(classes)}); "
                            "rename or remove them, or add them to train/")
        label_of = {name: c for c, name in enumerate(classes)}
        parts[role] = ([f"{folder.name}/{rel}" for fs in files for rel in fs],
                       [label_of[n] for n, fs in zip(names, files) for _ in fs])
    flat = [rel for rels, _ in parts.values() for rel in rels]
    images, ok = decode_checked(root, flat, image_size, bad_images)
    out: dict[str, Optional[ArrayDataset]] = {}
    start = 0
    for role, (rels, labels) in parts.items():
        keep = start + np.flatnonzero(ok[start:start + len(rels)])
        pos = keep - start
        paths = [os.path.join(str(root), rels[i]) for i in pos]
        out[role] = _dataset(_take(images, keep), [labels[i] for i in pos], paths, classes) if len(keep) else None
        start += len(rels)
    if out["train"] is None:
        raise DataError(f"no readable training images in {layout.splits['train']}; check the files")
    return out["train"], out.get("val"), out.get("test")


def load_image_folder(root: Path, image_size: int, parts: list[float], seed: int,
                      bad_images: str = "stop") -> FolderData:
    """The splits of image folder `root`, in either layout (module doc).

    A root of class folders is split per class by `parts` (data.folder_split), deterministic given
    the seed: files sorted by name, then a seeded permutation per class. A pre-split root keeps its
    splits (`parts` is not used); its val is None when it has no val folder (the caller may carve
    one from train). indices = position of each image among the usable files of its source
    (the whole root, or the split's folder).
    """
    layout = detect_layout(Path(root))
    if layout.kind == "presplit":
        train, val, test = _load_presplit(layout, image_size, bad_images)
    else:
        train, val, test = _load_classes_root(layout.root, image_size, parts, seed, bad_images)
    return FolderData(train, val, test, layout)


def load_folder(root: Path, image_size: int, parts: list[float], seed: int,
                bad_images: str = "stop") -> tuple[ArrayDataset, Optional[ArrayDataset], Optional[ArrayDataset]]:
    """(train, val, test) of an image folder (either layout); val/test are None when empty."""
    data = load_image_folder(root, image_size, parts, seed, bad_images)
    return data.train, data.val, data.test
