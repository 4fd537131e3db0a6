"""Features saved beside the run: ``<run>/features/<layer>/<split>.npz``, computed once and reused.

Each file holds ``features`` (float32 N x D, flattened), ``labels`` (int64 N), ``indices`` (int64
N: each image's position in its source split, as in predictions/) and ``key``: what the features
were computed from. The file is reused while the key still matches: the same layer and split, the
weights file's modification time (ns) and size, and the bytes of config.yaml and
normalization.json (data and input statistics). Retraining or re-saving the weights changes the
key, so the next call recomputes. Files are written atomically: a killed extraction leaves the
previous file or none.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.atomic import write_atomically
from cnnlab.features.extract import extract_features

FOLDER = "features"
FORMAT = 1  # bump when the file layout changes: old files are then recomputed
_LAYER_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")  # module names; never a path


@dataclass
class FeatureSet:
    """One split's features of one layer, as saved."""

    features: np.ndarray  # float32 N x D
    labels: np.ndarray    # int64 N
    indices: np.ndarray   # int64 N
    path: Path
    computed: bool        # True: extracted by this call; False: read from the cache

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def features_path(run_dir: str | Path, layer: str, split: str) -> Path:
    """Where the features of ``layer`` on ``split`` live in the run folder."""
    if not _LAYER_NAME.match(layer):
        raise ValueError(f"layer name {layer!r} is not a module name (letters, digits, _ - and dots); "
                         "list the names with: cnnlab layers RUN")
    return Path(run_dir) / FOLDER / layer / f"{split}.npz"


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes() if path.is_file() else b"<absent>")
    return h.hexdigest()


def cache_key(run_dir: Path, weights: Path, layer: str, split: str) -> dict[str, Any]:
    """What a features file depends on (compared as a whole: any difference means recompute)."""
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: the run did not finish. Continue it with: "
                                f"cnnlab train --resume {run_dir}")
    stat = weights.stat()
    return {"format": FORMAT, "layer": layer, "split": split, "weights": weights.name,
            "weights_mtime_ns": stat.st_mtime_ns, "weights_size": stat.st_size,
            "config_sha256": _digest(run_dir / "config.yaml", run_dir / "normalization.json")}


def _read(path: Path, key: dict[str, Any]) -> FeatureSet | None:
    """The cached set when ``path`` exists, is readable and was made under ``key``; else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as archive:
            if json.loads(str(archive["key"])) != key:
                return None
            return FeatureSet(archive["features"], archive["labels"], archive["indices"], path, computed=False)
    except (OSError, ValueError, KeyError, EOFError):
        return None  # unreadable or foreign: recompute and replace it


def _write(path: Path, key: dict[str, Any], features: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a bare name
            np.savez(fh, features=features, labels=labels, indices=indices,
                     key=np.array(json.dumps(key, sort_keys=True)))

    write_atomically(path, write)


def cached_features(run: Any, layer: str, split: str, recompute: bool = False,
                    batch_size: int | None = None, device: str | None = None,
                    folder: str | Path | None = None) -> FeatureSet:
    """Features of ``layer`` on ``split`` of a loaded run (``cnnlab.runs.load_run``), from the cache
    when it is current, else extracted with the run's model and normalizer and saved.

    The model and the data are touched only on a cache miss (a lazy handle loads nothing else).
    ``batch_size`` defaults to the run's eval_batch_size; ``device`` moves the model there first.
    ``folder`` (``--out``): features are saved under ``folder/<layer>/<split>.npz`` instead of the
    run's ``features/``, which is then only read (a current file there is used, never written).
    """
    run_dir = Path(run.run_dir)
    path = features_path(run_dir, layer, split)
    key = json.loads(json.dumps(cache_key(run_dir, Path(run.weights_path), layer, split), sort_keys=True))
    if folder is not None:
        own = path
        path = Path(folder) / layer / f"{split}.npz"
        if not recompute:
            for candidate in (path, own):
                found = _read(candidate, key)
                if found is not None:
                    return found
    elif not recompute:
        found = _read(path, key)
        if found is not None:
            return found
    dataset = run.split(split)
    model = run.model if device is None else run.model.to(device)
    features = extract_features(model, dataset.images, run.normalizer, layer,
                                batch_size or run.config.eval_batch_size)
    labels = dataset.labels.numpy().astype(np.int64)
    indices = dataset.indices.numpy().astype(np.int64)
    _write(path, key, features, labels, indices)
    return FeatureSet(features, labels, indices, path, computed=True)


__all__ = ["FOLDER", "FeatureSet", "cache_key", "cached_features", "features_path"]
