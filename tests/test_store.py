"""The run store (format 2): shards that count by their own files, merges, what a kill leaves, format 1 runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from density_nb.corpus import runner
from density_nb.corpus import store as run_store
from density_nb.corpus.runs import load_runs
from density_nb.corpus.store import CorpusError, ShardWriter, new_manifest, scan
from helpers import SAMPLE_LINES

K = 3  # strata per synthetic passage


def passage(pid: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One synthetic passage's rows; every third has no loss (NaN)."""
    rng = np.random.default_rng(pid)
    summary = pd.DataFrame(
        {"passage_id": [pid], "density": [rng.random()], "loss": [np.nan if pid % 3 == 0 else 1.0], "prompt": [f"t{pid}"]}
    )
    curves = pd.DataFrame(
        {
            "passage_id": pid,
            "stratum": np.arange(K),
            "tv": rng.random(K),
            "layer_edges": [rng.integers(0, 9, 4) for _ in range(K)],
        }
    )
    return summary, curves


def write(out: Path, ids: list[int], shard_size: int = 1, manifest: dict | None = None) -> ShardWriter:
    writer = ShardWriter(out, manifest or new_manifest({"model": "synthetic"}, {}, [0.1, 0.5, 1.0]), shard_size)
    for pid in ids:
        writer.add(pid, *passage(pid))
    writer.flush()
    return writer


def assert_same(out: Path, ids: list[int]) -> None:
    """``out`` reads back as the passages ``ids`` written one shard each, never merged."""
    unmerged = out.parent / f"{out.name}-unmerged"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_store, "FANOUT", 10**9)
        write(unmerged, ids)
    run, want = load_runs(out), load_runs(unmerged)
    pd.testing.assert_frame_equal(run.summary, want.summary, check_exact=True)
    assert run.curves["layer_edges"].map(list).tolist() == want.curves["layer_edges"].map(list).tolist()
    pd.testing.assert_frame_equal(run.curves.drop(columns="layer_edges"), want.curves.drop(columns="layer_edges"), check_exact=True)
    assert run.summary["passage_id"].tolist() == sorted(ids) and run.summary["loss"].isna().sum() == sum(i % 3 == 0 for i in ids)


def test_merged_pieces_hold_every_row(tmp_path, monkeypatch):
    """Shards merge FANOUT at a time into pieces of growing span; what is read back is every row as written."""
    monkeypatch.setattr(run_store, "FANOUT", 3)
    ids = [int(i) for i in np.random.default_rng(0).permutation(40)]
    writer = write(tmp_path, ids)
    spans = [p.span for p in scan(tmp_path)[0]]
    assert spans == [27, 9, 3, 1] and [p.span for p in writer.pieces] == spans  # 40 = 27 + 9 + 3 + 1: a base-3 counter
    assert not scan(tmp_path)[1] and len(list((tmp_path / "shards").iterdir())) == 8
    assert_same(tmp_path, ids)
    again = ShardWriter(tmp_path, json.loads((tmp_path / "manifest.json").read_text()))  # resume: what is recorded
    assert again.done == set(ids) and again.next_shard == 40 and [p.passages for p in again.pieces] == [27, 9, 3, 1]


def test_a_merge_stops_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(run_store, "FANOUT", 2)
    monkeypatch.setattr(run_store, "MERGE_LIMIT", 4)
    writer = write(tmp_path, list(range(9)))
    assert [p.passages for p in writer.pieces] == [4, 4, 1] and [p.span for p in scan(tmp_path)[0]] == [4, 4, 1]


def test_the_manifest_is_written_once(tmp_path, monkeypatch):
    """A shard's cost does not grow with the run: the manifest (settings only) is written with the first shard, never again."""
    calls = []
    real = run_store.write_json
    monkeypatch.setattr(run_store, "write_json", lambda obj, path: (calls.append(path), real(obj, path)))
    write(tmp_path, list(range(60)))
    assert calls == [tmp_path / "manifest.json"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == 2 and not {"shards", "passage_ids", "next_shard"} & set(manifest)


def test_what_a_killed_merge_leaves_is_ignored_then_removed(tmp_path, monkeypatch):
    """Killed after a merged piece counts but before its inputs are removed, with an orphan curves file and a temp file
    beside them: each passage is read once, and a resumed writer removes the rest."""
    monkeypatch.setattr(run_store, "FANOUT", 2)
    writer = write(tmp_path, [5, 7])
    inputs = [Path(f) for f in ("shards/00000000.summary.parquet", "shards/00000000.curves.parquet")]
    for name in inputs:  # an input of the merge as a kill before its removal leaves it
        shutil.copy(tmp_path / "shards/00000000-00000001.summary.parquet", tmp_path / name)
    (tmp_path / "shards/00000002.curves.parquet").write_bytes(b"half")  # curves written, summary not
    (tmp_path / "shards/.00000003.summary.parquet.x1.tmp").write_bytes(b"half")
    pieces, strays = scan(tmp_path)
    assert [p.summary for p in pieces] == ["shards/00000000-00000001.summary.parquet"] and len(strays) == 4
    assert_same(tmp_path, [5, 7])
    again = ShardWriter(tmp_path, writer.manifest)
    assert again.done == {5, 7} and again.next_shard == 2 and scan(tmp_path)[1] == []


def test_a_reader_looks_again_when_a_merge_removes_a_piece(tmp_path, monkeypatch):
    write(tmp_path, [1, 2])
    real = run_store.pieces_of
    stale = run_store.Piece.named(9, 9)
    calls = []

    def listing(out, manifest):  # the first listing names a piece that is gone when it is read
        calls.append(1)
        return [stale] if len(calls) == 1 else real(out, manifest)

    monkeypatch.setattr(run_store, "pieces_of", listing)
    assert load_runs(tmp_path).summary["passage_id"].tolist() == [1, 2] and len(calls) == 2
    monkeypatch.setattr(run_store, "pieces_of", lambda out, manifest: [stale])
    with pytest.raises(CorpusError, match=r"00000009.summary.parquet.*missing.*damaged"):
        load_runs(tmp_path)


def test_a_partly_filled_shard_is_written_after_flush_s(tmp_path):
    writer = ShardWriter(tmp_path, new_manifest({}, {}, []), shard_size=100, flush_s=0.0)
    writer.add(1, *passage(1))
    writer.add(2, *passage(2))
    assert len(scan(tmp_path)[0]) == 2 and not writer.buffer


def test_an_unknown_format_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 3}))
    with pytest.raises(CorpusError, match=r"run format 3.*upgrade density_nb"):
        load_runs(tmp_path)


def as_format_1(out: Path) -> dict:
    """Rewrite a format 2 run of single shards as density_nb 0.1 wrote it: six-digit names, a manifest listing them all."""
    manifest = json.loads((out / "manifest.json").read_text())
    shards, ids = [], []
    for i, piece in enumerate(scan(out)[0]):
        assert piece.span == 1
        names = {kind: f"shards/{i:06d}.{kind}.parquet" for kind in ("summary", "curves")}
        (out / piece.summary).rename(out / names["summary"])
        (out / piece.curves).rename(out / names["curves"])
        piece_ids = pd.read_parquet(out / names["summary"])["passage_id"].tolist()
        shards.append({"name": f"{i:06d}", **names, "passage_ids": piece_ids})
        ids += piece_ids
    old = {**manifest, "format": 1, "shards": shards, "passage_ids": sorted(ids), "next_shard": len(shards)}
    (out / "manifest.json").write_text(json.dumps(old))
    return old


def test_a_format_1_run_is_read_as_it_is_and_moved_to_format_2_when_resumed(tiny_llama, tmp_path):
    data = tmp_path / "data" / "wikitext-2"
    data.mkdir(parents=True)
    (data / "test.txt").write_text("\n".join(SAMPLE_LINES) + "\n")
    run = {"data": data.parent, "words": 6, "grid": "fast", "progress": False}
    whole = runner.run_corpus(tiny_llama, tmp_path / "whole", n_passages=5, **run)
    out = tmp_path / "old"
    runner.run_corpus(tiny_llama, out, n_passages=3, **run)
    before = load_runs(out)
    as_format_1(out)
    for kind in ("summary", "curves"):  # a shard a killed format 1 run wrote but never listed: not counted
        shutil.copy(out / f"shards/000000.{kind}.parquet", out / f"shards/000007.{kind}.parquet")
    old = load_runs(out)
    pd.testing.assert_frame_equal(old.summary, before.summary, check_exact=True)
    pd.testing.assert_frame_equal(old.curves.drop(columns="layer_edges"), before.curves.drop(columns="layer_edges"), check_exact=True)
    assert old.manifest["format"] == 1 and len(old.manifest["shards"]) == 3
    resumed = runner.run_corpus(tiny_llama, out, n_passages=5, resume=True, **run)
    pd.testing.assert_frame_equal(resumed, whole, check_exact=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == 2 and manifest["migrated"]["from"] == 1 and "passage_ids" not in manifest
    assert not (out / "shards/000007.summary.parquet").exists() and not scan(out)[1]
    assert [p.summary for p in scan(out)[0]][:3] == [f"shards/00000{i}.summary.parquet" for i in range(3)]  # kept as they were
