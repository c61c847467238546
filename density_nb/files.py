"""``atomic_write``: write a file so that a reader never sees it half-written, and a failed write
(a full disk, a killed process) leaves the old file as it was and nothing partial beside it."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from density_nb.errors import DensityNBError


class WriteError(DensityNBError):
    """An output file could not be written (disk full, no permission, ...); nothing partial was left."""


def _read_umask() -> int:
    """The process's umask: from /proc on Linux, else by setting and restoring it (once, at import)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = os.umask(0)
        os.umask(umask)
        return umask


_UMASK = _read_umask()
_FIXES = {
    errno.ENOSPC: "free some space on that disk, or write to another one",
    errno.EDQUOT: "free some of your disk quota, or write to another disk",
    errno.EACCES: "write to a folder you may write to",
    errno.EPERM: "write to a folder you may write to",
    errno.EROFS: "write to a disk that is not read-only",
}


def _write_error(path: Path, existed: bool, err: OSError) -> WriteError:
    kept = "the file there is unchanged" if existed else "no file was created"
    fix = _FIXES.get(err.errno or 0, "fix the cause, or write it elsewhere")
    return WriteError(f"Could not write {str(path)!r} ({err.strerror or err}): nothing partial was left ({kept}). To fix: {fix}.")


def _flush(path: Path) -> None:
    """Flush the file ``path`` to the disk (a write error a network disk defers to here surfaces here)."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flush_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename) to the disk; best effort: not every system can open a folder."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, flush it to the disk, then rename it over ``path``.

    The file gets the permissions of the one it replaces, or a new file's (0666 less the umask), not
    the temp file's owner-only 0600. On any error (or Ctrl-C) the temp file is removed and ``path``
    is left as it was; an ``OSError`` (disk full, no permission) is raised as ``WriteError``, naming
    the path, with the original as its ``__cause__``."""
    path = Path(path)
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(path.stat().st_mode) if existed else 0o666 & ~_UMASK
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise _write_error(path, existed, err) from err
    tmp = Path(name)
    try:
        write(tmp)
        _flush(tmp)  # the data is on the disk before the name points at it: a crash leaves no empty file
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as err:
        raise _write_error(path, existed, err) from err
    finally:
        with contextlib.suppress(OSError):  # keep the write's own error, not a failed clean-up's
            tmp.unlink(missing_ok=True)
    _flush_folder(path.parent)
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """``text`` as a UTF-8 file at ``path``, written atomically (``atomic_write``)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """``data`` as a file at ``path``, written atomically (``atomic_write``)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))
