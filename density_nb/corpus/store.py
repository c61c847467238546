"""The run store: a corpus run's directory of parquet shards, its manifest, and its lock.

    out_dir/manifest.json                       settings, versions, shards, completed passage ids
    out_dir/shards/NNNNNN.{summary,curves}.parquet
    out_dir/run.lock                            the writing process's pid while a run is active

Every file is written to a temp name and renamed; a shard counts only once the manifest lists it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from density_nb.errors import DensityNBError
from density_nb.files import atomic_write

RUN_FORMAT = 1
MANIFEST = "manifest.json"
SHARDS = "shards"


class CorpusError(DensityNBError):
    """A corpus run cannot start or continue (e.g. resume with other settings); the message says why."""


@dataclass
class CorpusRun:
    """What ``load_runs`` returns: unpacks as ``summary, curves = load_runs(out_dir)``.

    ``summary``: one row per passage (``passage_id``, ``model``, ``words``, ``prompt``,
    ``next_word``, ``aligned``, ``n_tokens`` and the columns of
    ``DensityResult.summary()``: ``density``, ``auc_tv``, ``auc_kl``, ``s_top1``, ``entropy``,
    ``loss``, ...), sorted by ``passage_id``.
    ``curves``: one row per (passage, stratum): ``passage_id``, ``model``, ``words`` and the columns of
    ``DensityResult.curves()`` (``s``, ``s_actual``, ``tv``, ``kl``, ``top1``, ``nu``, ...), plus
    ``edges_attn``, ``edges_mlp``, ``edges_res`` and ``layer_edges`` (edges per layer, a list).
    ``manifest``: the run's settings and completed shards.
    """

    summary: pd.DataFrame
    curves: pd.DataFrame
    manifest: dict[str, Any]

    def __iter__(self) -> Iterator[pd.DataFrame]:
        yield self.summary
        yield self.curves

    def passage(self, passage_id: int, model: Any = None) -> Any:
        """One passage's ``DensityResult``, re-traced with the run's settings (the run stores only its
        tables): the same numbers as its rows. ``model``: the loaded model (default: the recorded name)."""
        from density_nb.corpus.runner import trace_recorded

        return trace_recorded(self, passage_id, model)

    def widget(self, compare: CorpusRun | None = None, **kwargs: Any) -> Any:
        """The corpus dashboard (``density_nb.views.CorpusDashboard``); ``compare``: a run of another
        model on the same prompts. ``model=`` (the loaded model) re-traces clicked passages without loading it again."""
        from density_nb.views import CorpusDashboard

        return CorpusDashboard(self, compare, **kwargs)

    def to_html(self, path: str | os.PathLike[str], compare: CorpusRun | None = None, **kwargs: Any) -> Path:
        """A standalone HTML page with the dashboard that works offline from disk (no kernel: a click
        on a passage shows its numbers, not its explorer)."""
        return Path(self.widget(compare, **kwargs).to_html(path))


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """``df`` as a parquet file, written atomically."""
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_json(obj: Any, path: Path) -> None:
    """``obj`` as a JSON file, written atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1)))


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
        (out_dir / SHARDS).mkdir(parents=True, exist_ok=True)
        self._clean_orphans()

    def _clean_orphans(self) -> None:
        """Remove shard files a killed run wrote but never recorded (and stray temp files)."""
        listed = {f for shard in self.manifest["shards"] for f in (shard["summary"], shard["curves"])}
        for path in (self.out_dir / SHARDS).iterdir():
            if f"{SHARDS}/{path.name}" not in listed:
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


class RunLock:
    """``out_dir/run.lock`` holding the writer's pid: two runs never write one directory at once.

    A lock left by a process that no longer exists (killed) is taken over.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / "run.lock"

    def __enter__(self) -> RunLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _alive(pid):
                    raise CorpusError(
                        f"Another run (pid {pid}) is writing {str(self.path.parent)!r}; wait for it, or stop it and use --resume."
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its writer is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise CorpusError(f"Could not lock {str(self.path)!r}; remove it if no run is writing that directory.")

    def __exit__(self, *exc: Any) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_shard(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:  # missing, truncated or not parquet (pyarrow's errors are both)
        raise CorpusError(
            f"Shard {str(path)!r} of this run cannot be read ({err}): the run is damaged. Move its folder aside and run it again."
        ) from None


def load_runs(out_dir: str | os.PathLike[str]) -> CorpusRun:
    """Read a corpus run directory: ``CorpusRun(summary, curves, manifest)`` (unpacks as a pair).

    Only shards recorded in the manifest are read; rows are sorted by ``passage_id`` and each
    passage appears once.
    """
    out = Path(out_dir)
    manifest = read_manifest(out)
    if manifest is None:
        raise CorpusError(f"{str(out)!r} holds no corpus run (no {MANIFEST}); run `run_corpus` or `density-nb corpus` first.")
    summaries = [_read_shard(out / shard["summary"]) for shard in manifest["shards"]]
    curves = [_read_shard(out / shard["curves"]) for shard in manifest["shards"]]
    if not summaries:
        return CorpusRun(pd.DataFrame(), pd.DataFrame(), manifest)
    summary = pd.concat(summaries, ignore_index=True).drop_duplicates("passage_id", keep="first")
    summary = summary.sort_values("passage_id", kind="stable").reset_index(drop=True)
    curve = pd.concat(curves, ignore_index=True).drop_duplicates(["passage_id", "stratum"], keep="first")
    curve = curve.sort_values(["passage_id", "stratum"], kind="stable").reset_index(drop=True)
    return CorpusRun(summary, curve, manifest)
