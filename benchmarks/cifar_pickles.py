"""Load the first N CIFAR-10 training images from the publisher's pickle folder.

Shared by every benchmark script, so all frameworks train on byte-identical inputs. Uses only
the standard library and numpy at import, because it must import inside the separate Keras venv too.

`--data-dir` means what it means to `cnnlab train --data-dir` and data.root: the folder that
HOLDS cifar-10-batches-py/ (e.g. the Makefile's $CNNLAB_DATA); the cifar-10-batches-py folder
itself is accepted too, as cnnlab accepts it. find_cifar10_folder resolves it with cnnlab's own
cnnlab.data.locate.find_data_dir wherever cnnlab imports (the project venv).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

DATASET_FOLDER = "cifar-10-batches-py"
# Default --data-dir: <repo>/data, the Makefile's default $CNNLAB_DATA (it holds cifar-10-batches-py/).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1] / "data"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
IMAGES_PER_BATCH_FILE = 10_000
NUM_CLASSES = 10
UNPACK_HINT = "python ../shared/datasets/unpack.py cifar10 DEST  (then pass --data-dir DEST)"


class CifarDataError(ValueError):
    """The CIFAR-10 folder is missing, incomplete or malformed; the message says how to fix it."""


def find_cifar10_folder(data_dir: Path | str) -> Path:
    """The cifar-10-batches-py folder that `data_dir` holds (or `data_dir` itself when it is that folder).

    Resolved by cnnlab's find_data_dir (which also checks the folder's files and extracts an
    archive lying there), but strictly: where cnnlab would fall back to $CNNLAB_DATA or its cache
    because `data_dir` lacks the dataset, this raises CifarDataError instead, so a benchmark never
    silently reads other data than the folder it was given. Where cnnlab cannot be imported (the
    Keras venv; the driver always hands the scripts the resolved folder) the same folder rule is
    applied without cnnlab (no archive extraction).
    """
    given = Path(data_dir).expanduser()
    not_held = (f"--data-dir {given} does not hold {DATASET_FOLDER}/: pass the folder that contains it "
                f"(as for `cnnlab train --data-dir` and the Makefile's CNNLAB_DATA)")
    try:
        from cnnlab.data.errors import DataError
        from cnnlab.data.locate import find_data_dir
    except ImportError:  # the Keras venv has no cnnlab
        if given.name == DATASET_FOLDER and given.is_dir():
            return given
        if (given / DATASET_FOLDER).is_dir():
            return given / DATASET_FOLDER
        raise CifarDataError(f"{not_held}; create it with: {UNPACK_HINT}") from None
    try:
        found = find_data_dir("cifar10", str(given), download=False, progress=False)
    except DataError as err:
        raise CifarDataError(f"{not_held}. cnnlab: {err}") from None
    if found.resolve() not in (given.resolve(), (given / DATASET_FOLDER).resolve()):
        raise CifarDataError(f"{not_held}; cnnlab would fall back to {found} ($CNNLAB_DATA or its cache): "
                             f"pass --data-dir {found.parent} to use that, or create it with: {UNPACK_HINT}")
    return found


def load_cifar10_train(data_dir: Path | str, num_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (images, labels) for the first `num_images` training images, in file order.

    data_dir: the folder holding cifar-10-batches-py/ (or that folder), see find_cifar10_folder.

    images: float32, shape (N, 32, 32, 3), channels last, values in [0, 1] (pixel / 255).
    labels: int64, shape (N,), class ids 0..9.
    Raises CifarDataError naming the problem when the folder is absent or a file is malformed.
    """
    max_images = IMAGES_PER_BATCH_FILE * len(TRAIN_BATCHES)
    if not 1 <= num_images <= max_images:
        raise CifarDataError(f"num_images must be between 1 and {max_images}, got {num_images}")
    data_dir = find_cifar10_folder(data_dir)

    pixel_rows: list[np.ndarray] = []
    label_rows: list[np.ndarray] = []
    loaded = 0
    for name in TRAIN_BATCHES:
        if loaded >= num_images:
            break
        data, labels = _read_batch(data_dir / name)
        take = min(num_images - loaded, len(labels))
        pixel_rows.append(data[:take])
        label_rows.append(labels[:take])
        loaded += take

    pixels = np.concatenate(pixel_rows)
    # Publisher layout: each row is 1024 red, 1024 green, 1024 blue values, row-major 32x32.
    images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    return np.ascontiguousarray(images), np.concatenate(label_rows).astype(np.int64)


def load_cifar10_test(data_dir: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Return (images, labels) of the whole test_batch, in file order; same layout and scaling as
    load_cifar10_train (float32 (N, 32, 32, 3) in [0, 1], int64 labels)."""
    data, labels = _read_batch(find_cifar10_folder(data_dir) / TEST_BATCH)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
    return np.ascontiguousarray(images), labels


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one data_batch_i (or test_batch) pickle and check its structure (not its checksum; see datasets README)."""
    if not path.is_file():
        raise CifarDataError(f"{path} is missing; the folder is incomplete. Re-create it with: {UNPACK_HINT}")
    with open(path, "rb") as fh:
        try:
            entry = pickle.load(fh, encoding="bytes")
        except Exception as err:  # a truncated or foreign file raises many different types
            raise CifarDataError(f"{path} is not a readable CIFAR pickle ({err}); re-create it with: {UNPACK_HINT}") from None
    if not isinstance(entry, dict) or b"data" not in entry or b"labels" not in entry:
        raise CifarDataError(f"{path} lacks the 'data'/'labels' entries of a CIFAR-10 batch; is it CIFAR-100?")
    data = np.asarray(entry[b"data"], dtype=np.uint8)
    labels = np.asarray(entry[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise CifarDataError(f"{path}: expected data of shape (N, 3072) with N labels, got {data.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise CifarDataError(f"{path}: labels outside 0..{NUM_CLASSES - 1}")
    return data, labels
