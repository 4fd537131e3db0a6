"""Verified downloads and safe archive extraction."""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath
from typing import Optional

from tqdm import tqdm

from .errors import DataError

CHUNK_BYTES = 1 << 20  # 1 MiB per read
TIMEOUT_S = 30.0  # socket timeout of each connect/read


def download_url(url: str, dest: Path, md5: Optional[str], progress: bool = True) -> Path:
    """Stream `url` into `dest` (via `dest` + ".part"), check its MD5, then os.replace into place.

    Network errors propagate as urllib.error.URLError / OSError (callers word the advice); an
    MD5 mismatch deletes the partial file and raises DataError with expected vs got.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    got = digest.hexdigest()
    if md5 is not None and got != md5.lower():
        part.unlink(missing_ok=True)
        raise DataError(f"download of {url} is corrupt: MD5 expected {md5}, got {got}; the partial file was "
                        "deleted, try again (or check the mirror set in CNNLAB_DOWNLOAD_MIRROR)")
    os.replace(part, dest)
    return dest


def is_network_error(exc: BaseException) -> bool:
    """True for the errors of an unreachable host (no internet, closed port, timeout)."""
    return isinstance(exc, (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError))


def _check_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    name = member.name
    where = f"archive {archive} member {name!r}"
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith(("/", "\\")) or ".." in pure.parts or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{where} would be written outside {dest} (absolute path or '..'); refusing to extract "
                        "this archive: delete it and download it again from a trusted source")
    target = (dest / name).resolve()
    if not target.is_relative_to(dest):
        raise DataError(f"{where} would be written outside {dest}; refusing to extract this archive")
    if member.issym() or member.islnk():
        link = PurePosixPath(member.linkname)
        base = target.parent if member.issym() else dest
        pointed = (base / member.linkname).resolve()
        if link.is_absolute() or not pointed.is_relative_to(dest):
            raise DataError(f"{where} is a link to {member.linkname!r}, outside {dest}; refusing to extract "
                            "this archive: delete it and download it again from a trusted source")
    elif not (member.isfile() or member.isdir()):
        raise DataError(f"{where} is a device, FIFO or other special file; refusing to extract this archive")


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar (optionally gz/bz2/xz) archive into `dest`.

    Every member is checked before anything is written: absolute paths, '..' and links that
    point outside `dest` raise DataError naming the member. Extraction goes to a temporary
    folder inside `dest` and its top-level entries are then moved into place, so an interrupted
    extraction never leaves a half-written dataset folder.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"archive {archive} cannot be opened as tar ({e}); delete it and download it again") from None
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise DataError(f"archive {archive} is damaged ({e}); delete it and download it again") from None
        for member in members:
            _check_member(member, dest, archive)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            extract_kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **extract_kwargs)
            entries = sorted(staging.iterdir())
            for entry in entries:
                if (dest / entry.name).exists():
                    raise DataError(f"{dest / entry.name} already exists; move it away (or delete it) "
                                    f"and extract {archive} again")
            for entry in entries:
                os.replace(entry, dest / entry.name)
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise DataError(f"archive {archive} is damaged ({e}); delete it and download it again") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
