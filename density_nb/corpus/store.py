"""The run store: a corpus run's directory of parquet shards, its manifest, and its lock.

    out_dir/manifest.json                       settings, versions, shards, completed passage ids
    out_dir/shards/NNNNNN.{summary,curves}.parquet
    out_dir/run.lock                            held (an OS file lock) by the writing process; names it

Every file is written to a temp name and renamed; a shard counts only once the manifest lists it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import lock_descriptor

from density_nb.errors import DensityNBError
from density_nb.files import atomic_write, write_text

RUN_FORMAT = 1
MANIFEST = "manifest.json"
SHARDS = "shards"


class CorpusError(DensityNBError):
    """A corpus run cannot start or continue (e.g. resume with other settings); the message says why."""


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """``df`` as a parquet file, written atomically."""
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_json(obj: Any, path: Path) -> None:
    """``obj`` as a JSON file, written atomically."""
    write_text(path, json.dumps(obj, indent=1))


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CorpusError(f"{path} is not valid JSON ({err}); it was not written by density_nb.") from err
    if manifest.get("format") != RUN_FORMAT:
        raise CorpusError(f"{path} has run format {manifest.get('format')}; this density_nb writes {RUN_FORMAT}.")
    return manifest


class ShardWriter:
    """Appends completed passages as parquet shards and records them in the manifest (atomically)."""

    def __init__(self, out_dir: Path, manifest: dict[str, Any], shard_size: int) -> None:
        self.out_dir, self.manifest, self.shard_size = out_dir, manifest, max(1, int(shard_size))
        self.done: set[int] = {int(p) for p in manifest["passage_ids"]}
        self.buffer: list[tuple[int, pd.DataFrame, pd.DataFrame]] = []
        self._clean_orphans()

    def _clean_orphans(self) -> None:
        """Remove shard files a killed run wrote but never recorded, and the temp files of writes it was killed in."""
        listed = {f for shard in self.manifest["shards"] for f in (shard["summary"], shard["curves"])}
        folder = self.out_dir / SHARDS
        for path in folder.iterdir() if folder.is_dir() else ():
            if f"{SHARDS}/{path.name}" not in listed:
                path.unlink()
        for path in self.out_dir.glob(f".{MANIFEST}.*.tmp"):
            path.unlink()

    def add(self, passage_id: int, summary: pd.DataFrame, curves: pd.DataFrame) -> bool:
        """Queue one passage's rows; False (and nothing written) if it is already recorded."""
        pid = int(passage_id)
        if pid in self.done or any(p == pid for p, _, _ in self.buffer):
            return False
        self.buffer.append((pid, summary, curves))
        if len(self.buffer) >= self.shard_size:
            self.flush()
        return True

    def flush(self) -> None:
        if not self.buffer:
            return
        seq = self.manifest["next_shard"]
        name = f"{seq:06d}"
        summary = pd.concat([s for _, s, _ in self.buffer], ignore_index=True)
        curves = pd.concat([c for _, _, c in self.buffer], ignore_index=True)
        ids = [p for p, _, _ in self.buffer]
        summary_file, curves_file = f"{SHARDS}/{name}.summary.parquet", f"{SHARDS}/{name}.curves.parquet"
        shard: dict[str, Any] = {"name": name, "summary": summary_file, "curves": curves_file, "passage_ids": ids}
        write_parquet(curves, self.out_dir / curves_file)
        write_parquet(summary, self.out_dir / summary_file)
        manifest = {
            **self.manifest,
            "shards": [*self.manifest["shards"], shard],
            "passage_ids": sorted(self.done | set(ids)),
            "next_shard": seq + 1,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json(manifest, self.out_dir / MANIFEST)  # the shard counts only from here on
        self.manifest = manifest
        self.done.update(ids)
        self.buffer.clear()


LOCK = "run.lock"
HOST = socket.gethostname()


class RunLock:
    """``out_dir/run.lock``, held with an OS file lock while a run writes ``out_dir``: two runs never
    write one directory at once, even when they start at the same instant, and a holder that dies
    (even by ``kill -9``) releases it. The file names its holder (host, pid, start time) for messages.

    A record left by a process on another host (the folder is on a shared network disk) is never
    taken over, since whether that process still runs cannot be checked from here: the message says
    which host and process it names, and to delete the file once no run is writing the folder.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        fd = self._lock()
        try:
            self._refuse_a_live_record(_read_holder(fd))
            self._write_record(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _lock(self) -> int:
        """An open descriptor of ``run.lock`` holding its OS lock, or ``CorpusError`` if a running process holds it."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as err:
                raise CorpusError(
                    f"Cannot create {str(self.path)!r} ({err.strerror or err}): choose an output folder you may write to."
                ) from err
            try:
                if not self._try_lock(fd):
                    raise CorpusError(self._busy(_read_holder(fd)))
                if _same_file(fd, self.path):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # its holder removed it between our open and lock: lock the file now there

    def _try_lock(self, fd: int) -> bool:
        try:
            return lock_descriptor(fd, blocking=False)
        except OSError as err:
            raise CorpusError(
                f"Cannot lock {str(self.path)!r} ({err.strerror or err}): its disk does not support file locks. Write the run to a local disk."
            ) from err

    def _write_record(self, fd: int) -> None:
        record = {"host": HOST, "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        except OSError as err:
            raise CorpusError(
                f"Cannot write {str(self.path)!r} ({err.strerror or err}): free some space on its disk, or write elsewhere."
            ) from err

    def _busy(self, holder: dict[str, Any] | None) -> str:
        who = f" ({_describe(holder)})" if holder else ""
        return f"Another run{who} is writing {str(self.path.parent)!r}; wait for it to finish, or stop it and continue it with resume=True (--resume)."

    def _refuse_a_live_record(self, holder: dict[str, Any] | None) -> None:
        """The OS lock is ours; refuse if the file still names a holder that may be running (see the class)."""
        if holder is None or (holder["pid"] == os.getpid() and holder.get("host") == HOST):
            return
        delete = f"If no run is writing {str(self.path.parent)!r}, delete {str(self.path)!r} and run again (resume=True / --resume)."
        if holder.get("host") != HOST:
            raise CorpusError(
                f"{str(self.path)!r} names a run on another host ({_describe(holder)}), which may still be writing this folder "
                f"(a shared disk): this host cannot tell whether it still runs, so its lock is not taken over. {delete}"
            )
        if _alive(holder["pid"]):  # a writer without the OS lock (an older density_nb), or a reused pid
            raise CorpusError(f"Another run ({_describe(holder)}) is writing {str(self.path.parent)!r}. {delete}")

    def __exit__(self, *exc: Any) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):  # removed while still locked: a waiter retries on a new file
                self.path.unlink()
        finally:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_holder(fd: int) -> dict[str, Any] | None:
    """The holder a lock file names: ``{"host", "pid", "started"}``; a bare pid (older density_nb) is
    a process on this host; None when empty or unreadable (its writer died while writing it)."""
    try:
        text = os.pread(fd, 4096, 0).decode()
        record = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    if isinstance(record, int):
        return {"host": HOST, "pid": record}
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def _describe(holder: dict[str, Any]) -> str:
    since = f", started {holder['started']}" if holder.get("started") else ""
    return f"pid {holder.get('pid')} on host {holder.get('host')}{since}"


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
