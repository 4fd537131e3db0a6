"""Tiny-ImageNet-200 in its publisher's layout (data.name: tiny_imagenet).

    tiny-imagenet-200/
      wnids.txt                    the 200 class ids (WordNet ids, one a line)
      words.txt                    wnid <TAB> synonyms, comma-separated (every ImageNet wnid)
      train/<wnid>/images/*.JPEG   500 per class, 64x64
      val/images/*.JPEG            10,000 images, labelled by
      val/val_annotations.txt      file <TAB> wnid <TAB> x0 <TAB> y0 <TAB> x1 <TAB> y1
      test/images/*.JPEG           unlabelled: not used

The labelled val images are our test split (the dataset has no labelled test set); a validation
split is carved from train by data.val_size. Classes are the wnids in sorted order, named by the
first synonym of words.txt ('goldfish' for n01443537). Not bundled and not downloaded: the
archive is at TINY_IMAGENET_URL.
"""
from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from .dataset import ArrayDataset
from .errors import DataError
from .folder import IMAGE_SUFFIXES, _dataset, _images_under, _take, decode_checked
from .locate import candidate_dirs

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
FOLDER = "tiny-imagenet-200"


def find_tiny_imagenet(data_dir: Optional[str] = None) -> Path:
    """The tiny-imagenet-200 folder: data.root / --data-dir (the folder itself or one holding it),
    then $CNNLAB_DATA, then the user cache, as for CIFAR."""
    places = candidate_dirs(data_dir)
    for _, base in places:
        for folder in (base, base / FOLDER):
            if (folder / "wnids.txt").is_file():
                return folder
    looked = "; ".join(f"{label}: {path}" for label, path in places)
    raise DataError(f"Tiny-ImageNet-200 not found (no wnids.txt). Looked in {looked}. Fix: download "
                    f"{TINY_IMAGENET_URL} (237 MB), unzip it, and set data.root (or --data-dir) to the "
                    f"{FOLDER}/ folder or the folder holding it")


def read_wnids(folder: Path) -> list[str]:
    """The class ids of wnids.txt, sorted (the class order); DataError on duplicates or none."""
    path = folder / "wnids.txt"
    wnids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not wnids:
        raise DataError(f"{path} lists no class ids; restore it from {TINY_IMAGENET_URL}")
    dup = sorted(w for w, k in Counter(wnids).items() if k > 1)
    if dup:
        raise DataError(f"{path} lists {', '.join(dup)} more than once; restore it from {TINY_IMAGENET_URL}")
    return sorted(wnids)


def class_names(folder: Path, wnids: list[str]) -> list[str]:
    """Each wnid's first synonym in words.txt ('goldfish'); the wnid itself when words.txt lacks it.
    Names two classes share get their wnid appended, so that report labels stay unique."""
    path = folder / "words.txt"
    words: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            wnid, _, synonyms = line.partition("\t")
            if synonyms.strip():
                words[wnid.strip()] = synonyms.split(",")[0].strip()
    else:
        warnings.warn(f"{path} is missing: classes are named by their wnids", stacklevel=3)
    names = [words.get(w, w) for w in wnids]
    seen = Counter(names)
    return [f"{n} ({w})" if seen[n] > 1 else n for n, w in zip(names, wnids)]


def read_val_annotations(folder: Path, wnids: list[str]) -> dict[str, str]:
    """val image file name -> wnid, from val/val_annotations.txt."""
    path = folder / "val" / "val_annotations.txt"
    if not path.is_file():
        raise DataError(f"{path} is missing: the val images have no labels; restore val/ from {TINY_IMAGENET_URL}")
    known = set(wnids)
    labels: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in known:
            raise DataError(f"{path} line {n}: expected 'file<TAB>wnid<TAB>...' with a wnid of wnids.txt, got "
                            f"{line[:80]!r}; restore the file from {TINY_IMAGENET_URL}")
        labels[fields[0].strip()] = fields[1].strip()
    return labels


def load_tiny_imagenet(folder: Path, image_size: int,
                       bad_images: str = "stop") -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of a tiny-imagenet-200 folder, resized to image_size; test = the labelled val images.
    indices: position among the usable train images (class by class, files sorted) / val files (sorted)."""
    folder = Path(folder)
    wnids = read_wnids(folder)
    classes = class_names(folder, wnids)
    train_dir = folder / "train"
    if not train_dir.is_dir():
        raise DataError(f"{train_dir} is missing; restore it from {TINY_IMAGENET_URL}")
    extra = sorted(set(p.name for p in train_dir.iterdir() if p.is_dir()) - set(wnids))
    if extra:
        raise DataError(f"{train_dir} has folder(s) {', '.join(extra[:5])} that wnids.txt does not list; "
                        "remove them or restore wnids.txt")
    train_files: list[str] = []   # paths relative to the folder: strings are cheap at 100,000 files
    train_labels: list[int] = []
    for c, wnid in enumerate(wnids):
        d = train_dir / wnid
        files = _images_under(d) if d.is_dir() else []
        if not files:
            raise DataError(f"{d} has no images (expected {d}/images/*.JPEG); restore it from {TINY_IMAGENET_URL}")
        train_files += [f"train/{wnid}/{rel}" for rel in files]
        train_labels += [c] * len(files)

    annotations = read_val_annotations(folder, wnids)
    val_images = folder / "val" / "images"
    on_disk = sorted(e.name for e in os.scandir(val_images) if e.is_file() and not e.name.startswith(".")
                     and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES) if val_images.is_dir() else []
    missing = sorted(set(annotations) - set(on_disk))
    if missing:
        raise DataError(f"{len(missing)} image(s) of val_annotations.txt are missing from {val_images}, e.g. "
                        f"{val_images / missing[0]}; restore val/ from {TINY_IMAGENET_URL}")
    unlabelled = [f for f in on_disk if f not in annotations]
    if unlabelled:
        raise DataError(f"{val_images / unlabelled[0]} (and {len(unlabelled) - 1} more) has no line in "
                        f"{folder / 'val' / 'val_annotations.txt'}; remove it or restore the file")
    index = {w: c for c, w in enumerate(wnids)}
    test_files = [f"val/images/{f}" for f in on_disk]
    test_labels = [index[annotations[f]] for f in on_disk]

    # One decode (and one cache file) for both splits.
    images, ok = decode_checked(folder, train_files + test_files, image_size, bad_images)
    out = []
    for start, files, labels in ((0, train_files, train_labels), (len(train_files), test_files, test_labels)):
        keep = start + np.flatnonzero(ok[start:start + len(files)])
        rel = keep - start
        if not len(keep):
            raise DataError(f"no readable images in {train_dir if start == 0 else val_images}")
        out.append(_dataset(_take(images, keep), [labels[i] for i in rel], [os.path.join(str(folder), files[i]) for i in rel],
                            classes))
    return out[0], out[1]
