"""`cnnlab data info NAME`: a dataset's sizes, layout, class balance, statistics, sample grid."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch

from cnnlab.atomic import write_atomically
from .config import DATASET_NAMES, DataConfig
from .dataset import ArrayDataset
from .errors import DataError
from .loader import load_splits
from .normalize import channel_stats


def _class_table(splits: list[tuple[str, ArrayDataset]], classes: list[str]) -> list[str]:
    width = max(len("class"), *(len(c) for c in classes))
    head = f"  {'class':<{width}}" + "".join(f" {name:>8}" for name, _ in splits)
    counts = [ds.class_counts() for _, ds in splits]
    rows = [f"  {c:<{width}}" + "".join(f" {col[i]:>8}" for col in counts) for i, c in enumerate(classes)]
    return [head, *rows]


def write_sample_grid(ds: ArrayDataset, out_png: Path, samples_per_class: int, max_classes: int) -> int:
    """PNG grid: one row per class (first `max_classes`), the first `samples_per_class` images of
    each. Written atomically (temporary name, then rename). Returns the number of classes shown."""
    # A bare Figure (no pyplot, no matplotlib.use): drawing the grid never switches the
    # backend of a notebook or script that imported cnnlab; savefig renders PNG with Agg itself.
    from matplotlib.figure import Figure

    shown = min(len(ds.classes), max_classes)
    fig = Figure(figsize=(1.0 * samples_per_class + 1.5, 1.0 * shown + 0.3))
    axes = fig.subplots(shown, samples_per_class, squeeze=False)
    for c in range(shown):
        idx = torch.nonzero(ds.labels == c).flatten()[:samples_per_class]
        for j in range(samples_per_class):
            ax = axes[c][j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(idx):
                img = ds.images[idx[j]].permute(1, 2, 0).numpy()
                ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None)
        axes[c][0].set_ylabel(ds.classes[c], rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    write_atomically(Path(out_png), lambda tmp: fig.savefig(tmp, format="png", dpi=80))
    return shown


def dataset_info(name: str, data_dir: Optional[str], out_png: Optional[Path] = None, cfg: Optional[DataConfig] = None,
                 samples_per_class: int = 8, max_classes: int = 20, seed: int = 0) -> str:
    """Inspect dataset `name` (cifar10 | cifar100 | folder, or an image folder's path): sizes per split, values per image and
    channel layout, class counts, pixel range, train per-channel mean/std; with `out_png`, writes a PNG grid of
    `samples_per_class` train images per class there; returns the printable text."""
    if name not in DATASET_NAMES and Path(name).is_dir():  # `cnnlab data info path/to/images`
        name, data_dir = "folder", name
    if name not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}: use {', '.join(DATASET_NAMES[:2])}, or the path of an image "
                        "folder root/<class>/*.jpg|png")
    cfg = replace(cfg, name=name) if cfg is not None else DataConfig(name=name)
    splits = load_splits(cfg, seed, data_dir)
    train = splits.train
    if len(train) == 0:
        raise DataError(f"{name}: the train split is empty; nothing to describe")
    n, c, h, w = train.images.shape
    items = splits.items()
    lines = [f"dataset {name}: {len(splits.classes)} classes"]
    lines.append("split sizes: " + ", ".join(f"{k} {len(d):,}" for k, d in items))
    lines.append(f"image: {c} x {h} x {w} = {c * h * w:,} values per image, uint8 0..255, "
                 f"channels first ({'R, G, B planes' if c == 3 else f'{c} channels'}, each row-major)")
    lo = min(int(d.images.min()) for _, d in items if len(d))
    hi = max(int(d.images.max()) for _, d in items if len(d))
    lines.append(f"pixel range (all splits): min {lo}, max {hi}")
    mean, std = channel_stats(train.images)
    names = ["R", "G", "B"] if c == 3 else [str(i) for i in range(c)]
    lines.append("train per-channel mean (0..1): " + " ".join(f"{k} {v:.4f}" for k, v in zip(names, (mean / 255).tolist())))
    lines.append("train per-channel std  (0..1): " + " ".join(f"{k} {v:.4f}" for k, v in zip(names, (std / 255).tolist())))
    lines.append("class counts:")
    lines.extend(_class_table(items, splits.classes))
    if out_png is None:
        lines.append("sample grid: not written (add --out samples.png)")
        return "\n".join(lines)
    shown = write_sample_grid(train, out_png, samples_per_class, max_classes)
    more = f" (first {shown} of {len(splits.classes)} classes)" if shown < len(splits.classes) else ""
    lines.append(f"sample grid: {out_png} ({samples_per_class} train images per class{more})")
    return "\n".join(lines)
