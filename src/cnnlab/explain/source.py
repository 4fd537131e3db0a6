"""The image to explain: one image of a run's split (by the "idx" the reports show) or an image file.

A run handle (cnnlab.runs.load_run) gives the split (``run.split(name)``) and the class names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np


CIFAR_SIZE = 32  # CIFAR images are 32 x 32 whatever data.image_size says


@dataclass
class ExplainInput:
    image: np.ndarray        # uint8 C x H x W, as the run's data holds it
    label: Optional[int]     # the true class, when known
    description: str         # where the image comes from, for the page
    slug: str                # folder name under <run>/explain/


def image_size_of(config: Any) -> int:
    """The side, in pixels, of the run's images (what an image file is resized to)."""
    data = config.data
    return CIFAR_SIZE if str(data.name).startswith("cifar") else int(data.image_size)


def from_split(run: Any, split: str, index: int) -> ExplainInput:
    """The image of ``split`` whose source index (the reports' "idx" column) is ``index``."""
    dataset = run.split(split)
    positions = (dataset.indices == int(index)).nonzero().flatten().tolist()
    if not positions:
        known = dataset.indices
        raise ValueError(f"no {split} image has idx {index}; this run's {split} split holds {len(dataset)} images "
                         f"with idx {int(known.min())}..{int(known.max())} (the idx column of the report's tables)")
    row = positions[0]
    where = f"{split} image idx {index} (row {row} of predictions/{split}.npz)"
    paths = getattr(dataset, "paths", None)
    if paths:
        where += f", {paths[row]}"
    return ExplainInput(dataset.images[row].numpy(), int(dataset.labels[row]), where, f"{split}-{index}")


def from_file(path: str | Path, config: Any, label: Optional[int] = None) -> ExplainInput:
    """An image file decoded like the run's data: RGB, resized bilinearly to the run's image size."""
    from cnnlab.data.folder import decode_image

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--image {path}: no such file; give a .jpg or .png file")
    size = image_size_of(config)
    try:
        pixels = decode_image(path, size)
    except Exception as err:  # noqa: BLE001 (Pillow raises OSError, SyntaxError, DecompressionBombError...)
        raise ValueError(f"--image {path}: Pillow cannot read it ({err}); give a .jpg or .png file") from None
    slug = "image-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem) or "file")
    return ExplainInput(pixels.transpose(2, 0, 1).copy(), label, f"{path} (resized to {size}x{size})", slug)


__all__ = ["ExplainInput", "from_file", "from_split", "image_size_of"]
