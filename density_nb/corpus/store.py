"""The run store: a corpus run's directory of parquet shards, its manifest, and its lock.

    out_dir/manifest.json                                  settings, versions, grid sizes (written once, with the first shard)
    out_dir/shards/SSSSSSSS.curves.parquet                 one shard: passages completed together (written first)
    out_dir/shards/SSSSSSSS.summary.parquet                ... (written second: the shard counts from here on)
    out_dir/shards/AAAAAAAA-BBBBBBBB.{curves,summary}.parquet   shards A..B merged into one piece
    out_dir/run.lock                                       held (an OS file lock) by the writing process; names it

Every file is written to a temp name and renamed. The folder is its own record: a piece counts once its
summary file exists, and a piece whose range lies inside another counted piece's is superseded (left by a
merge that was stopped before it removed its inputs). So a shard costs the same however long the run is:
nothing lists every passage. Every ``FANOUT`` pieces of one span are merged into one (up to ``MERGE_LIMIT``
passages a piece), so a run of N passages is read from O(FANOUT · log N) files. Format 1 runs (a manifest
listing every shard and passage id) are read as they are, and moved to format 2 when resumed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import lock_descriptor

from density_nb.errors import DensityNBError
from density_nb.files import atomic_write, write_text

RUN_FORMAT = 2
FORMATS = (1, 2)  # read; format 1 is moved to 2 when a run is resumed
MANIFEST = "manifest.json"
SHARDS = "shards"
FANOUT = 16  # pieces of one span merged into one
MERGE_LIMIT = 65_536  # passages: a merge that would make a larger piece is not done
FLUSH_S = 30.0  # a partly filled shard is written once its first passage has waited this long
_PIECE = re.compile(r"^(\d+)(?:-(\d+))?\.(summary|curves)\.parquet$")
_T = TypeVar("_T")


class CorpusError(DensityNBError):
    """A corpus run cannot start or continue (e.g. resume with other settings); the message says why."""


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """``df`` as a parquet file, written atomically."""
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_json(obj: Any, path: Path) -> None:
    """``obj`` as a JSON file, written atomically."""
    write_text(path, json.dumps(obj, indent=1))


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The run's manifest (format 1 or 2), or None when the folder holds none."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CorpusError(f"{path} is not valid JSON ({err}); it was not written by density_nb.") from err
    if not isinstance(manifest, dict) or manifest.get("format") not in FORMATS:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise CorpusError(f"{path} has run format {found}; this density_nb reads formats {FORMATS} (upgrade density_nb to read it).")
    return manifest


def new_manifest(settings: dict[str, Any], versions: dict[str, str], grid_sizes: list[float]) -> dict[str, Any]:
    """A format 2 manifest: what a run is (its settings), not what it holds (the shards say that)."""
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return {"format": RUN_FORMAT, "settings": settings, "versions": versions, "grid_sizes": grid_sizes, "created": created}


@dataclass(frozen=True)
class Piece:
    """One counted piece of a run: shards ``first``..``last`` (one shard, or a merge of several)."""

    first: int
    last: int
    summary: str  # paths relative to the run folder
    curves: str
    passages: int = -1  # rows of its summary; -1: not read

    @classmethod
    def named(cls, first: int, last: int, passages: int = -1) -> Piece:
        stem = f"{first:08d}" if first == last else f"{first:08d}-{last:08d}"
        return cls(first, last, f"{SHARDS}/{stem}.summary.parquet", f"{SHARDS}/{stem}.curves.parquet", passages)

    @property
    def span(self) -> int:
        return self.last - self.first + 1

    def record(self) -> dict[str, Any]:
        """What ``CorpusRun.manifest["shards"]`` shows of it."""
        return {"name": Path(self.summary).name.removesuffix(".summary.parquet"), "summary": self.summary, "curves": self.curves}


def scan(out_dir: Path) -> tuple[list[Piece], list[Path]]:
    """A format 2 run's counted pieces (in shard order) and every other file in its shards folder (strays:
    superseded pieces, a curves file whose summary was never written, temp files of interrupted writes)."""
    folder = out_dir / SHARDS
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return [], []
    summaries: dict[tuple[int, int], Piece] = {}
    for name in names:
        match = _PIECE.match(name)
        if match is not None and match[3] == "summary":  # a piece counts once its summary is written (its curves come first)
            first = int(match[1])
            stem = name.removesuffix(".summary.parquet")
            key = (first, int(match[2]) if match[2] else first)
            summaries[key] = Piece(*key, f"{SHARDS}/{stem}.summary.parquet", f"{SHARDS}/{stem}.curves.parquet")
    pieces, reach = [], -1
    for key in sorted(summaries, key=lambda k: (k[0], -k[1])):  # nested or disjoint: keep the outermost
        if key[0] > reach:
            pieces.append(summaries[key])
            reach = key[1]
    keep = {name for p in pieces for name in (Path(p.summary).name, Path(p.curves).name)}
    return pieces, [folder / name for name in names if name not in keep]


def pieces_of(out_dir: Path, manifest: dict[str, Any]) -> list[Piece]:
    """The pieces a run's passages are read from: listed in a format 1 manifest, the folder's own in format 2."""
    if manifest["format"] == 1:
        return [Piece(i, i, shard["summary"], shard["curves"]) for i, shard in enumerate(manifest["shards"])]
    return scan(out_dir)[0]


def _read(path: Path, read: Callable[[Path], _T], vanish_ok: bool = False) -> _T:
    """``read(path)``; a file that cannot be read is a ``CorpusError`` (``vanish_ok``: a missing one is
    raised as ``FileNotFoundError``, for a reader that looks again)."""
    try:
        return read(path)
    except FileNotFoundError:
        if vanish_ok:
            raise
        raise CorpusError(
            f"Shard {str(path)!r} of this run is missing: the run is damaged. Move its folder aside and run it again."
        ) from None
    except (OSError, ValueError, pa.ArrowException) as err:  # truncated or not parquet (pyarrow's errors are both)
        raise CorpusError(
            f"Shard {str(path)!r} of this run cannot be read ({err}): the run is damaged. Move its folder aside and run it again."
        ) from None


def read_tables(out_dir: Path, manifest: dict[str, Any], attempts: int = 5) -> tuple[list[Piece], list[pd.DataFrame], list[pd.DataFrame]]:
    """Every piece's summary and curves tables. A piece that vanishes while it is read (a running merge
    removed it: the merged piece holds its passages) makes the folder be read again."""
    for attempt in range(attempts):
        pieces = pieces_of(out_dir, manifest)
        retry = manifest["format"] == 2 and attempt < attempts - 1
        try:
            summaries = [_read(out_dir / p.summary, pd.read_parquet, retry) for p in pieces]
            curves = [_read(out_dir / p.curves, pd.read_parquet, retry) for p in pieces]
        except FileNotFoundError:
            continue
        return pieces, summaries, curves
    raise AssertionError("unreachable: the last attempt raises")


def recorded_ids(out_dir: Path, manifest: dict[str, Any]) -> set[int]:
    """The passage ids a run has recorded (reading only its pieces' ``passage_id`` columns)."""
    if manifest["format"] == 1:
        return {int(p) for p in manifest["passage_ids"]}
    return {int(p) for _, ids in _piece_ids(out_dir, scan(out_dir)[0]) for p in ids}


def _piece_ids(out_dir: Path, pieces: list[Piece]) -> list[tuple[Piece, list[int]]]:
    def ids(path: Path) -> list[int]:
        return [int(p) for p in pq.read_table(path, columns=["passage_id"]).column("passage_id").to_pylist()]

    return [(p, _read(out_dir / p.summary, ids)) for p in pieces]


def _concat(sources: list[Path], dest: Path) -> None:
    """The parquet files ``sources`` as one file ``dest`` (atomically), one source in memory at a time."""
    schema = pa.unify_schemas([pq.read_schema(s) for s in sources], promote_options="permissive")

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, schema) as out:
            for source in sources:
                table = pq.read_table(source)
                columns = [
                    table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type) for f in schema
                ]
                out.write_table(pa.Table.from_arrays(columns, schema=schema))

    atomic_write(dest, write)


class ShardWriter:
    """Writes completed passages as parquet shards and merges them; the runner holds the run lock.

    ``manifest``: the run's manifest as read from ``out_dir`` (a resumed run: a format 1 run is moved to
    format 2, and what an interrupted run left is removed), or a new one (written with the first shard;
    anything in ``shards/`` is then a stray of an earlier attempt). A shard is written once ``shard_size``
    passages are queued, or once the first of them has waited ``flush_s`` seconds."""

    def __init__(self, out_dir: Path, manifest: dict[str, Any], shard_size: int = 1, flush_s: float = FLUSH_S) -> None:
        self.out_dir, self.shard_size, self.flush_s = out_dir, max(1, int(shard_size)), flush_s
        self.buffer: list[tuple[int, pd.DataFrame, pd.DataFrame]] = []
        self._since = 0.0
        resumed = read_manifest(out_dir) == manifest
        self.manifest = self._migrate(manifest) if resumed and manifest["format"] == 1 else manifest
        self._written = resumed
        pieces, strays = scan(out_dir)
        if not resumed:
            strays = sorted((out_dir / SHARDS).iterdir()) if (out_dir / SHARDS).is_dir() else []
            pieces = []
        for path in [*strays, *out_dir.glob(f".{MANIFEST}.*.tmp")]:
            path.unlink(missing_ok=True)
        read = _piece_ids(out_dir, pieces)
        self.pieces = [Piece(p.first, p.last, p.summary, p.curves, len(ids)) for p, ids in read]
        self.done: set[int] = {p for _, ids in read for p in ids}
        self.next_shard = max((p.last for p in self.pieces), default=-1) + 1

    def _migrate(self, old: dict[str, Any]) -> dict[str, Any]:
        """A format 1 run as format 2: its unlisted shard files (a kill's leftovers) removed, then the manifest
        rewritten without its lists (the folder now says what the run holds). A kill between the two leaves
        a format 1 run that is migrated again."""
        listed = {Path(f).name for shard in old["shards"] for f in (shard["summary"], shard["curves"])}
        folder = self.out_dir / SHARDS
        for path in folder.iterdir() if folder.is_dir() else ():
            if path.name not in listed:
                path.unlink()
        manifest = {k: v for k, v in old.items() if k not in ("shards", "passage_ids", "next_shard", "updated")}
        manifest.update(format=RUN_FORMAT, migrated={"from": 1, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        write_json(manifest, self.out_dir / MANIFEST)
        return manifest

    def add(self, passage_id: int, summary: pd.DataFrame, curves: pd.DataFrame) -> bool:
        """Queue one passage's rows; False (and nothing written) if it is already recorded or queued."""
        pid = int(passage_id)
        if pid in self.done or any(p == pid for p, _, _ in self.buffer):
            return False
        if not self.buffer:
            self._since = time.monotonic()
        self.buffer.append((pid, summary, curves))
        if len(self.buffer) >= self.shard_size or time.monotonic() - self._since >= self.flush_s:
            self.flush()
        return True

    def flush(self) -> None:
        """Write the queued passages as one shard."""
        if not self.buffer:
            return
        summary = pd.concat([s for _, s, _ in self.buffer], ignore_index=True)
        curves = pd.concat([c for _, _, c in self.buffer], ignore_index=True)
        self.write([p for p, _, _ in self.buffer], summary, curves)
        self.buffer.clear()

    def write(self, ids: list[int], summary: pd.DataFrame, curves: pd.DataFrame) -> None:
        """One shard of the passages ``ids`` (their rows in ``summary`` and ``curves``): the manifest first if
        the run has none yet, then the curves file, then the summary file (from here on the shard counts),
        then any merge it completes. Its cost does not depend on how many passages the run holds."""
        if not self._written:
            write_json(self.manifest, self.out_dir / MANIFEST)
            self._written = True
        piece = Piece.named(self.next_shard, self.next_shard, len(ids))
        write_parquet(curves, self.out_dir / piece.curves)
        write_parquet(summary, self.out_dir / piece.summary)
        self.next_shard += 1
        self.pieces.append(piece)
        self.done.update(ids)
        self._merge()

    def _merge(self) -> None:
        """While the last ``FANOUT`` pieces have one span (and hold at most ``MERGE_LIMIT`` passages), merge them:
        curves, then summary (the merged piece counts, its inputs are superseded), then remove the inputs."""
        while len(self.pieces) >= FANOUT:
            group = self.pieces[-FANOUT:]
            passages = sum(p.passages for p in group)
            if len({p.span for p in group}) > 1 or passages > MERGE_LIMIT:
                return
            merged = Piece.named(group[0].first, group[-1].last, passages)
            _concat([self.out_dir / p.curves for p in group], self.out_dir / merged.curves)
            _concat([self.out_dir / p.summary for p in group], self.out_dir / merged.summary)
            for p in group:
                for name in (p.summary, p.curves):
                    with contextlib.suppress(FileNotFoundError):
                        (self.out_dir / name).unlink()
            self.pieces[-FANOUT:] = [merged]


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
