"""Tiny generated datasets and a local HTTP server for the data-layer tests."""
from __future__ import annotations

import contextlib
import functools
import http.server
import pickle
import tarfile
import threading
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _dump(obj: dict, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def random_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """n x 3072 uint8 rows in the publisher's layout."""
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def make_cifar10(base: Path, per_batch: int = 20, test: int = 20, seed: int = 0) -> Path:
    """base/cifar-10-batches-py with 5 train batches of `per_batch` images and a test batch.
    Labels cycle 0..9, so every class has the same count."""
    rng = np.random.default_rng(seed)
    out = Path(base) / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    for b in range(1, 6):
        _dump({b"batch_label": b"training batch", b"data": random_images(per_batch, rng),
               b"labels": [i % 10 for i in range(per_batch)]}, out / f"data_batch_{b}")
    _dump({b"batch_label": b"testing batch", b"data": random_images(test, rng),
           b"labels": [i % 10 for i in range(test)]}, out / "test_batch")
    _dump({b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}, out / "batches.meta")
    return out


def make_cifar100(base: Path, train: int = 200, test: int = 100, seed: int = 0) -> Path:
    """base/cifar-100-python; fine label i belongs to coarse class i // 5."""
    rng = np.random.default_rng(seed)
    out = Path(base) / "cifar-100-python"
    out.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train), ("test", test)):
        fine = [i % 100 for i in range(n)]
        _dump({b"data": random_images(n, rng), b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine]},
              out / name)
    _dump({b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
           b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}, out / "meta")
    return out


def make_archive(folder: Path, archive: Path) -> Path:
    """A publisher-style .tar.gz holding `folder` under its own name."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def make_image_folder(root: Path, counts: dict[str, int], size: tuple[int, int] = (20, 12),
                      bad: Optional[dict[str, int]] = None) -> Path:
    """root/<class>/img_XXX.png with `counts` images per class (each a flat colour whose red value
    encodes class and number), plus `bad[class]` unreadable .jpg files."""
    for c, (name, n) in enumerate(sorted(counts.items())):
        d = Path(root) / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", size, (c * 10, i % 256, 200)).save(d / f"img_{i:03d}.png")
        for i in range((bad or {}).get(name, 0)):
            (d / f"broken_{i}.jpg").write_bytes(b"this is not a jpeg")
    return Path(root)


@contextlib.contextmanager
def http_server(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 (free port) in a thread; yields the base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
