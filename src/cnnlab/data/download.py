"""Verified downloads and safe archive extraction."""
from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath
from typing import Optional, Sequence

from tqdm import tqdm

from .errors import DataError

CHUNK_BYTES = 1 << 20  # 1 MiB per read
TIMEOUT_S = 30.0  # socket timeout of each connect/read


def download_url(url: str, dest: Path, md5: Optional[str], progress: bool = True) -> Path:
    """Stream `url` into `dest` (via `dest` + ".part"), check its MD5, then os.replace into place.

    The ".part" name is fixed, so a download killed with SIGKILL leaves at most one stale file,
    which the next attempt overwrites; the finished file is flushed to disk before the rename.

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
            out.flush()
            os.fsync(out.fileno())   # the rename below must never publish a file still in the page cache
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


def _is_damage(exc: BaseException) -> bool:
    """True for the errors of a truncated or corrupt archive (not of a full disk or a permission).

    gzip raises EOFError (truncated), zlib.error and gzip.BadGzipFile (corrupt), lzma LZMAError;
    bz2 raises a plain OSError without an errno ("Invalid data stream")."""
    if isinstance(exc, (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)):
        return True
    return isinstance(exc, OSError) and exc.errno is None


def _damaged(archive: Path, exc: BaseException) -> DataError:
    return DataError(f"archive {archive} is truncated or damaged ({type(exc).__name__}: {exc}); delete it and "
                     "download it again (an interrupted copy or download leaves such a file)")


def _read_to_end(tar: tarfile.TarFile, archive: Path) -> None:
    """Decompress the rest of the stream: a file cut after its last member, a bad CRC or a
    corrupt block that made tar stop early shows only there (DataError naming `archive`)."""
    try:
        while tar.fileobj.read(CHUNK_BYTES):
            pass
    except Exception as e:
        if _is_damage(e):
            raise _damaged(archive, e) from None
        raise


def _check_contents(members: list[tarfile.TarInfo], archive: Path, top: str, required: Sequence[str]) -> None:
    """Every member must lie in folder `top` and every name of `required` be a file there."""
    names = [PurePosixPath(m.name) for m in members]
    outside = sorted({m.name for m, p in zip(members, names) if not p.parts or p.parts[0] != top})
    files = {p.relative_to(top).as_posix() for m, p in zip(members, names)
             if m.isfile() and p.parts and p.parts[0] == top and len(p.parts) > 1}
    missing = [f for f in required if f not in files]
    if outside or missing:
        found = ", ".join(m.name for m in members[:5]) + (", ..." if len(members) > 5 else "") or "nothing"
        raise DataError(f"archive {archive} is not the expected dataset archive: expected only {top}/ holding "
                        f"{', '.join(required)}; it holds {found}. Nothing was extracted; delete or rename "
                        "that file and put the right archive (or the unpacked folder) there")


def safe_extract(archive: Path, dest: Path, top: Optional[str] = None, required: Sequence[str] = ()) -> None:
    """Extract a tar (optionally gz/bz2/xz) archive into `dest`.

    Every member is checked before anything is written: absolute paths, '..' and links that
    point outside `dest` raise DataError naming the member. With `top`, every member must lie in
    folder `top` and each name of `required` must be a file in it (else DataError, nothing
    extracted). Extraction goes to a temporary folder inside `dest` and its top-level entries
    are then moved into place, so an interrupted extraction or a truncated/corrupt archive
    (DataError naming it) never leaves a half-written dataset folder.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    try:
        tar = tarfile.open(archive, "r:*")
    except FileNotFoundError:
        raise DataError(f"archive {archive} does not exist") from None
    except Exception as e:
        if _is_damage(e):
            raise _damaged(archive, e) from None
        raise
    with tar:
        try:
            members = tar.getmembers()
        except Exception as e:
            if _is_damage(e):
                raise _damaged(archive, e) from None
            raise
        for member in members:
            _check_member(member, dest, archive)
        if top is not None:
            try:
                _check_contents(members, archive, top, required)
            except DataError:
                _read_to_end(tar, archive)  # a corrupt stream can end the member list early: say so
                raise
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            extract_kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **extract_kwargs)
            _read_to_end(tar, archive)
            entries = sorted(staging.iterdir())
            for entry in entries:
                if (dest / entry.name).exists():
                    raise DataError(f"{dest / entry.name} already exists; move it away (or delete it) "
                                    f"and extract {archive} again")
            for entry in entries:
                os.replace(entry, dest / entry.name)
        except DataError:
            raise
        except Exception as e:
            if _is_damage(e):
                raise _damaged(archive, e) from None
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
