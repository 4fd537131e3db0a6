"""Decoding image files to one uint8 array, in parallel, with an on-disk cache of the result.

Decoding a big folder takes long on a small machine (110,000 64x64 JPEGs: 28 s on 2 cores;
photo-sized ones, minutes); from the cache the same folder loads in 2-3 s. One cache file per (image folder, decode settings), in
``$XDG_CACHE_HOME/cnnlab/decoded/`` (``~/.cache/cnnlab/decoded/``) or ``$CNNLAB_DECODE_CACHE``
(a folder; ``off`` disables the cache). The user cache, not a file beside the data: dataset
folders are often read-only or shared, and a cache never pollutes them.

A cache file is used only when its key matches: the decode settings (image size, channels,
resize method, Pillow version, cache format version) and the folder's listing (relative path,
size in bytes and mtime in ns of every file). A changed folder re-decodes only the files that
are new or changed; the others come from the old cache file, which is then replaced. The file
is written atomically (cnnlab.atomic), so a killed run leaves the old cache or the new one; a
cache file that cannot be read is ignored with a warning and rebuilt; a cache that cannot be
written (read-only, full disk) costs only the speed-up, with a warning.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
import multiprocessing
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import PIL
from PIL import Image

from cnnlab.atomic import write_atomically

from .locate import cache_dir

CACHE_FORMAT_VERSION = 1   # bump when the file layout or the decoding changes meaning
RESIZE_METHOD = "bilinear"  # Pillow's antialiased bilinear filter
CHANNELS = 3               # RGB; grey and RGBA images are converted
CACHE_ENV = "CNNLAB_DECODE_CACHE"
# Below this many images to decode a run is quick anyway: no "decoding ..." line on stderr.
ANNOUNCE_FROM = 2000
# Files per task given to a worker: large enough to amortize the hand-off, small enough to
# balance 2-16 workers on a few thousand images.
CHUNK = 64


def decode_image(path: Path, size: int) -> np.ndarray:
    """size x size x 3 uint8 RGB, resized bilinearly when needed. Raises on unreadable files."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def worker_count() -> int:
    """The cores this process may run on (affinity / taskset aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _decode_chunk(paths: Sequence[Path], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images, ok) of a few files, in one worker; an unreadable file gets ok False and zeros."""
    images = np.zeros((len(paths), size, size, CHANNELS), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        try:
            images[i] = decode_image(path, size)
            ok[i] = True
        except Exception:  # Pillow raises many kinds (OSError, SyntaxError, DecompressionBomb...)
            pass
    return images, ok


def _pool(workers: int) -> Executor:
    """Worker processes started by fork where the platform has it (Linux), else threads.

    Measured on this project's 2-core VM (medians, other users' load about 1 core): 2,000 64x64
    JPEGs -> 32 px took 373 ms in one process, 626 ms in 2 threads (slower: the per-image Python
    work holds the GIL longer than Pillow's decode releases it) and 326 ms in 2 processes; 400
    500x375 JPEGs -> 150 px, 968 / 588 / 615 ms. Fork starts in milliseconds and re-imports
    nothing; where there is no fork (macOS, Windows: spawn would re-import torch in every
    worker), threads, which are as fast as processes on photo-sized images."""
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
    return ThreadPoolExecutor(max_workers=workers)


def decode_many(paths: Sequence[Path], size: int, workers: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """(images N x size x size x 3 uint8, ok N bool) of `paths`, on `workers` processes (default:
    one per core; see _pool for why processes); a file Pillow cannot read gets ok False and zeros."""
    n = len(paths)
    workers = min(workers or worker_count(), -(-n // CHUNK))
    if workers <= 1:
        return _decode_chunk(paths, size)
    images = np.zeros((n, size, size, CHANNELS), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    starts = range(0, n, CHUNK)
    try:
        with _pool(workers) as pool:
            for start, (part, part_ok) in zip(starts, pool.map(_decode_chunk, [paths[s:s + CHUNK] for s in starts],
                                                              [size] * len(starts))):
                images[start:start + len(part)], ok[start:start + len(part)] = part, part_ok
    except BrokenExecutor as err:  # a worker died (out of memory, a crash in a codec): finish here, slower
        warnings.warn(f"a decoding worker died ({err}); decoding the {n} images in this process", stacklevel=2)
        return _decode_chunk(paths, size)
    return images, ok


@dataclass
class DecodeInfo:
    """What decode_folder did: the cache file (None when off), files decoded now, files from the cache."""

    cache_file: Optional[Path]
    decoded: int
    reused: int


def cache_root() -> Optional[Path]:
    """The cache folder: $CNNLAB_DECODE_CACHE, else <user cache>/decoded; None when set to off/0/false."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() in ("off", "0", "false", "no", "none"):
        return None
    return Path(env).expanduser() if env else cache_dir() / "decoded"


def decode_settings(size: int) -> dict:
    return {"format": CACHE_FORMAT_VERSION, "image_size": size, "channels": CHANNELS, "resize": RESIZE_METHOD,
            "pillow": PIL.__version__}


def cache_file_for(root: Path, size: int, folder: Optional[Path] = None) -> Optional[Path]:
    """The cache file of image folder `root` at these settings: one per (folder, settings), so a
    changed folder overwrites its own file instead of leaving old ones behind."""
    folder = folder if folder is not None else cache_root()
    if folder is None:
        return None
    where = str(Path(root).resolve())
    digest = hashlib.sha256(json.dumps([where, decode_settings(size)], sort_keys=True).encode()).hexdigest()[:20]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(where).name)[:40] or "root"
    return folder / f"{name}-{size}px-{digest}.npz"


def listing(root: Path, rel_paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(sizes in bytes, mtimes in ns) of root/rel for each relative path."""
    sizes = np.empty(len(rel_paths), dtype=np.int64)
    mtimes = np.empty(len(rel_paths), dtype=np.int64)
    base = str(root) + os.sep
    for i, rel in enumerate(rel_paths):
        st = os.stat(base + rel)
        sizes[i], mtimes[i] = st.st_size, st.st_mtime_ns
    return sizes, mtimes


def listing_key(size: int, rel_paths: Sequence[str], sizes: np.ndarray, mtimes: np.ndarray) -> str:
    h = hashlib.sha256(json.dumps(decode_settings(size), sort_keys=True).encode())
    for rel, s, m in zip(rel_paths, sizes.tolist(), mtimes.tolist()):
        h.update(f"{rel}\0{s}\0{m}\n".encode())
    return h.hexdigest()


def _read_cache(path: Path, size: int) -> Optional[dict]:
    """The arrays of a cache file, or None (absent). A file that is not a valid cache warns and
    gives None: it is rebuilt, never trusted and never fatal."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            got = {k: z[k] for k in ("key", "rel", "size", "mtime", "images", "ok")}
        n = len(got["rel"])
        if (got["images"].dtype != np.uint8 or got["images"].shape != (n, size, size, CHANNELS)
                or got["ok"].shape != (n,) or got["size"].shape != (n,) or got["mtime"].shape != (n,)
                or got["key"].shape != ()):
            raise ValueError("arrays of the wrong shape or type")
        return got
    except Exception as err:  # truncated, foreign or hand-edited files fail in many ways (BadZipFile, ValueError...)
        warnings.warn(f"ignoring the unreadable decode cache {path} ({type(err).__name__}: {err}); "
                      "decoding the images again and rewriting it", stacklevel=3)
        return None


def _write_cache(path: Path, arrays: dict) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)
    try:
        write_atomically(path, write)
    except OSError as err:  # read-only cache folder, full disk (DiskFullError is an OSError)
        warnings.warn(f"could not write the decode cache {path} ({err}); the next run decodes the images "
                      f"again. Set {CACHE_ENV} to a writable folder, or to off", stacklevel=3)


def decode_folder(root: Path, rel_paths: Sequence[str], size: int,
                  workers: Optional[int] = None) -> tuple[np.ndarray, np.ndarray, DecodeInfo]:
    """(images N x size x size x 3 uint8, ok N bool, info) of the files root/rel_paths, from the
    cache when the folder and settings are unchanged (see the module doc)."""
    root = Path(root)
    rel_paths = list(rel_paths)
    n = len(rel_paths)
    sizes, mtimes = listing(root, rel_paths)
    key = listing_key(size, rel_paths, sizes, mtimes)
    path = cache_file_for(root, size)
    old = _read_cache(path, size) if path is not None else None
    if old is not None and str(old["key"]) == key:
        return old["images"], old["ok"], DecodeInfo(path, 0, n)

    images = np.zeros((n, size, size, CHANNELS), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    todo = list(range(n))
    if old is not None:  # the folder changed: keep the decodes of files whose path, size and mtime match
        where = {(r, s, m): i for i, (r, s, m) in enumerate(zip(old["rel"].tolist(), old["size"].tolist(),
                                                                    old["mtime"].tolist()))}
        todo = []
        for i, item in enumerate(zip(rel_paths, sizes.tolist(), mtimes.tolist())):
            j = where.get(item)
            if j is None:
                todo.append(i)
            else:
                images[i], ok[i] = old["images"][j], old["ok"][j]
        del old
    if len(todo) >= ANNOUNCE_FROM:
        print(f"cnnlab: decoding {len(todo):,} images of {root} to {size}x{size} px on {workers or worker_count()} "
              f"cores{f' (cached in {path})' if path else ''}", file=sys.stderr, flush=True)
    if todo:
        part, part_ok = decode_many([os.path.join(str(root), rel_paths[i]) for i in todo], size, workers)
        images[todo], ok[todo] = part, part_ok
    if path is not None:
        _write_cache(path, {"key": np.array(key), "rel": np.array(rel_paths, dtype=str), "size": sizes,
                            "mtime": mtimes, "images": images, "ok": ok})
    return images, ok, DecodeInfo(path, len(todo), n - len(todo))
