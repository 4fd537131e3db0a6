"""Finding (and, if allowed, downloading) the CIFAR folders.

Lookup order: the explicit folder (--data-dir / data.root), then $CNNLAB_DATA, then the user
cache ($XDG_CACHE_HOME/cnnlab or ~/.cache/cnnlab). Each may hold the dataset folder
(cifar-10-batches-py/ or cifar-100-python/), be that folder itself, or hold the publisher's
archive (extracted on first use). Downloads go into the cache
folder, from the publisher or from $CNNLAB_DOWNLOAD_MIRROR (a base URL serving the same archive
names, e.g. an internal mirror or a test server).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

from .cifar import CIFAR_SPECS, PUBLISHER_BASE_URL, CifarSpec, missing_files
from .download import download_url, is_network_error, safe_extract
from .errors import DataError

MIRROR_ENV = "CNNLAB_DOWNLOAD_MIRROR"
DATA_ENV = "CNNLAB_DATA"


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/cnnlab, else ~/.cache/cnnlab."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnlab"


def candidate_dirs(data_dir: Optional[str] = None) -> list[tuple[str, Path]]:
    """(label, folder) pairs in lookup order; unset places are left out."""
    found: list[tuple[str, Path]] = []
    if data_dir:
        found.append(("--data-dir / data.root", Path(data_dir).expanduser()))
    if os.environ.get(DATA_ENV):
        found.append((f"${DATA_ENV}", Path(os.environ[DATA_ENV]).expanduser()))
    found.append(("user cache", cache_dir()))
    return found


def archive_url(spec: CifarSpec) -> str:
    """The archive's URL: $CNNLAB_DOWNLOAD_MIRROR + archive name, else the publisher's."""
    base = os.environ.get(MIRROR_ENV) or PUBLISHER_BASE_URL
    return base.rstrip("/") + "/" + spec.archive


def _spec(name: str) -> CifarSpec:
    if name not in CIFAR_SPECS:
        raise DataError(f"no download/lookup for dataset {name!r}; known: {', '.join(CIFAR_SPECS)} "
                        "(image folders are given by data.root)")
    return CIFAR_SPECS[name]


def _complete(folder: Path, spec: CifarSpec) -> Path:
    missing = missing_files(folder, spec)
    if missing:
        raise DataError(f"{folder} is incomplete: {', '.join(str(folder / m) for m in missing)} missing; "
                        f"delete {folder} and download or unpack {spec.name} again")
    return folder


def _not_found(spec: CifarSpec, places: list[tuple[str, Path]], reason: str) -> DataError:
    looked = "; ".join(f"{label}: {path / spec.folder}" for label, path in places)
    return DataError(
        f"{spec.name} not found ({reason}). Looked in {looked}. Fix: put {spec.folder}/ in one of these "
        f"folders, or set {DATA_ENV} / --data-dir to a folder holding it. This project's bundled copy: "
        f"python ../shared/datasets/unpack.py {spec.name} DIR  (then --data-dir DIR).")


def find_data_dir(name: str, data_dir: Optional[str] = None, download: bool = False,
                  progress: bool = True) -> Path:
    """The folder holding the files of CIFAR dataset `name` (e.g. .../cifar-10-batches-py).

    Checks the places of the lookup order; an existing folder is checked for its files (not by
    MD5). A place holding the archive (cifar-10-python.tar.gz) instead gets it extracted there
    (members checked: only <folder>/ with the dataset's files; not MD5: the bundled copy's archive differs). If none has it and `download` is true, downloads the archive into the cache folder,
    verifies its MD5 and extracts it safely. Raises DataError saying where it looked otherwise.
    """
    spec = _spec(name)
    places = candidate_dirs(data_dir)
    for _, base in places:
        if base.name == spec.folder and base.is_dir():
            return _complete(base, spec)
        if (base / spec.folder).is_dir():
            return _complete(base / spec.folder, spec)
    for _, base in places:  # an archive someone put there (e.g. unpack.py --archive): extract in place
        if (base / spec.archive).is_file():
            safe_extract(base / spec.archive, base, spec.folder, spec.files)
            if (base / spec.folder).is_dir():
                return _complete(base / spec.folder, spec)
    if not download:
        raise _not_found(spec, places, "download is off: data.download is false")
    target = cache_dir()
    url = archive_url(spec)
    archive = target / spec.archive
    if progress:
        print(f"cnnlab: {spec.name} not found locally; downloading {url} into {target}", file=sys.stderr)
    try:
        download_url(url, archive, spec.md5, progress=progress)
    except DataError:
        raise
    except Exception as e:
        if is_network_error(e) or isinstance(e, OSError):
            raise _not_found(spec, places, f"download from {url} failed: {e}") from None
        raise
    try:
        safe_extract(archive, target, spec.folder, spec.files)
    finally:
        archive.unlink(missing_ok=True)  # 170 MB we no longer need (the folder is what we read)
    if not (target / spec.folder).is_dir():
        raise DataError(f"archive {url} did not contain {spec.folder}/; check {MIRROR_ENV} or the publisher's URL")
    return _complete(target / spec.folder, spec)
