"""Reader of the publisher's CIFAR-10/100 Python-pickle folders, checked by structure."""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .dataset import ArrayDataset
from .errors import DataError

PUBLISHER_BASE_URL = "https://www.cs.toronto.edu/~kriz/"
VALUES_PER_IMAGE = 3 * 32 * 32  # 1024 red, then 1024 green, then 1024 blue values, row-major


@dataclass(frozen=True)
class CifarSpec:
    """Where one CIFAR variant lives on disk and on the publisher's server."""

    name: str
    folder: str
    archive: str
    md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)


CIFAR_SPECS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec("cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
                         "c58f30108f718f92721af3b95e74349a",
                         tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta"),
    "cifar100": CifarSpec("cifar100", "cifar-100-python", "cifar-100-python.tar.gz",
                          "eb9058c3a382ffc7106e4002c42a8d85", ("train",), ("test",), "meta"),
}

# The only globals a CIFAR pickle needs (NumPy arrays); anything else is refused, so a
# tampered file cannot run code. numpy.core was renamed numpy._core in NumPy 2.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3's protocol-2 pickler writes bytes (re-saved copies)
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file")
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = module.replace("numpy.core", "numpy._core", 1)  # avoids NumPy 2's deprecation shim
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict:
    """A publisher (Python 2) pickle as a dict with str keys; DataError naming the file if broken."""
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path} is missing; the CIFAR folder is incomplete: delete {path.parent} and "
                        "download/unpack it again") from None
    except Exception as e:  # any unpickling failure means a damaged or foreign file
        raise DataError(f"{path} is not a readable CIFAR pickle ({type(e).__name__}: {e}); replace the file "
                        f"(delete {path.parent} and download/unpack it again)") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, not the CIFAR dict; replace the file")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _names(meta: dict, key: str, path: Path) -> list[str]:
    if key not in meta:
        raise DataError(f"{path} has no '{key}' entry (keys: {sorted(meta)}); replace the file")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in meta[key]]


def read_batch(path: Path, label_key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file -> (uint8 N x 3 x 32 x 32, int64 N), checked: shapes, dtype, label range."""
    d = read_pickle(path)
    for key in ("data", label_key):
        if key not in d:
            raise DataError(f"{path} has no '{key}' entry (keys: {sorted(d)}); replace the file")
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != VALUES_PER_IMAGE:
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' must be N x {VALUES_PER_IMAGE} uint8, got {type(data).__name__} "
                        f"{getattr(data, 'dtype', '')} {shape}; replace the file")
    labels = np.asarray(d[label_key])
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{path}: '{label_key}' has {labels.size} entries for {len(data)} images; replace the file")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)] if np.issubdtype(labels.dtype, np.integer) else labels[:3]
        raise DataError(f"{path}: '{label_key}' has values outside 0..{num_classes - 1} (e.g. {bad[:3].tolist()}); "
                        "replace the file")
    images = torch.from_numpy(np.array(data, copy=True).reshape(-1, 3, 32, 32))
    return images, torch.from_numpy(labels.astype(np.int64))


def missing_files(folder: Path, spec: CifarSpec) -> list[str]:
    """Names of the spec's files absent from folder (empty when complete)."""
    return [f for f in spec.files if not (folder / f).is_file()]


def load_cifar(folder: Path, name: str, label_mode: str = "fine") -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of a CIFAR folder in the publisher's layout; indices = position in split."""
    spec = CIFAR_SPECS[name]
    folder = Path(folder)
    meta_path = folder / spec.meta_file
    meta = read_pickle(meta_path)
    if name == "cifar10":
        classes, label_key = _names(meta, "label_names", meta_path), "labels"
    else:
        classes = _names(meta, f"{label_mode}_label_names", meta_path)
        label_key = f"{label_mode}_labels"
    splits = []
    for files in (spec.train_files, spec.test_files):
        parts = [read_batch(folder / f, label_key, len(classes)) for f in files]
        images = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        labels = torch.cat([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        splits.append(ArrayDataset(images, labels, classes, torch.arange(len(labels))))
    return splits[0], splits[1]
