"""Atomic, durable file writes: a reader never sees a half-written file, even after a power loss.

The new content goes to a temporary file beside the target, is flushed to the disk (fsync),
renamed over the target (atomic on one file system), and the folder entry is flushed too, so
after a crash at any instant the target holds either the old or the new content.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterator, Optional

# Temporary names: ".<name>.<pid>.<random>.tmp" beside the target (see stale_temp_files).
TMP_SUFFIX = ".tmp"


class DiskFullError(OSError):
    """No space left while writing a file; the previous version of the file is kept."""

    def __str__(self) -> str:   # the message alone, one line, without "[Errno 28]"
        return str(self.strerror)


class UnwritableError(OSError):
    """A file or folder could not be written: its folder is on a read-only file system or not
    writable by this user. The message names the path the user gave (never a temporary file) and
    the fix; ``errno`` is the original one (EROFS, EACCES or EPERM)."""

    def __str__(self) -> str:
        return str(self.strerror)


# The command-line flag that chose where output goes ("--out", "--runs-dir"), for the fix in
# UnwritableError's message; the CLI sets it around a command (output_option).
_OUTPUT_OPTION: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar("cnnlab_output_option", default=None)
UNWRITABLE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


@contextlib.contextmanager
def output_option(flag: Optional[str]) -> Iterator[None]:
    """Within this block an UnwritableError says "choose another <flag>" as its first fix."""
    token = _OUTPUT_OPTION.set(flag)
    try:
        yield
    finally:
        _OUTPUT_OPTION.reset(token)


def _existing_folder(path: Path) -> Path:
    """``path`` or its nearest existing parent: the folder that refused the write."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return path


def unwritable_error(target: Path, err: BaseException, what: Optional[str] = None) -> Optional[UnwritableError]:
    """An UnwritableError "cannot write <what, default target>: <why>; <fix>" when ``err`` is a
    read-only file system or a permission error, else None."""
    if not isinstance(err, OSError) or err.errno not in UNWRITABLE_ERRNOS:
        return None
    folder = _existing_folder(Path(target))
    if err.errno == errno.EROFS:
        why, fix = f"{folder} is on a read-only file system", "remount it read-write"
    else:
        why, fix = f"no permission to write in {folder}", "fix the folder's permissions"
    option = _OUTPUT_OPTION.get()
    return UnwritableError(err.errno, f"cannot write {what or target}: {why}; "
                                      f"{f'choose another {option} or {fix}' if option else fix}")


def make_folder(path: Path, parents: bool = True, exist_ok: bool = True) -> Path:
    """``Path(path).mkdir(...)``, with a read-only or permission error as an UnwritableError naming ``path``."""
    path = Path(path)
    try:
        path.mkdir(parents=parents, exist_ok=exist_ok)
    except OSError as err:
        unwritable = unwritable_error(path, err)
        if unwritable is None:
            raise
        raise unwritable from err
    return path


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # e.g. a folder that cannot be opened on this platform: nothing more to flush
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):  # fs without fsync (some tmpfs, pipes)
            raise
    finally:
        os.close(fd)


def _looks_like_disk_full(err: BaseException, folder: Path) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch.save ("unexpected pos") and safetensors report a full disk in their own words.
    text = str(err).lower()
    if "no space left" in text or "unexpected pos" in text:
        return True
    try:
        return shutil.disk_usage(folder).free < 1 << 20   # under 1 MiB free: the write could not have fit
    except OSError:
        return False


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then make it ``path`` durably.

    The temporary file is created empty first, so it gets the umask's mode like any new file; a
    writer that replaces the file (safetensors writes 0600) gets that mode back before the rename.
    A failure removes the temporary file and leaves ``path`` as it was; a full disk raises
    DiskFullError and a read-only or unwritable folder UnwritableError, both naming ``path`` (not
    the temporary file) and the fix.
    """
    path = Path(path)
    make_folder(path.parent)
    tmp_path = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
    try:
        tmp_path.open("xb").close()
        mode = tmp_path.stat().st_mode & 0o777
        write(tmp_path)
        if tmp_path.stat().st_mode & 0o777 != mode:
            os.chmod(tmp_path, mode)
        _fsync_path(tmp_path)
        os.replace(tmp_path, path)
        _fsync_path(path.parent, directory=True)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)   # on a read-only file system there is nothing to remove
        unwritable = unwritable_error(path, err)
        if unwritable is not None:
            raise unwritable from err
        if isinstance(err, Exception) and _looks_like_disk_full(err, path.parent):
            raise DiskFullError(errno.ENOSPC, f"the disk is full: could not write {path} (the previous version, "
                                f"if any, is kept); free some space on {path.parent} and run again") from err
        raise
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomically(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))


def stale_temp_files(folder: Path) -> list[Path]:
    """Temporary files left under ``folder`` by a writer that was killed mid-write."""
    return sorted(p for p in Path(folder).rglob(f".*{TMP_SUFFIX}") if p.is_file())


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete what ``stale_temp_files`` finds; call it only while no other process writes there."""
    removed = stale_temp_files(folder)
    for p in removed:
        p.unlink(missing_ok=True)
    return removed
