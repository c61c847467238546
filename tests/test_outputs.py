"""Every file density_nb writes goes through ``files.atomic_write``: when the disk fills in the middle of a
write (the library writing it wrote part of the file, then got ENOSPC), the old file stays as it was, no
partial or temp file is left, and the error is a ``WriteError`` naming the path (the ``OSError`` its
``__cause__``); the CLI and the quickstart report it in one line."""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib

import networkx
import pandas as pd
import pyarrow.parquet
import pytest
from test_cli import assert_clean_error, run_main

from density_nb import quickstart
from density_nb.corpus import runner
from density_nb.corpus.runs import load_runs
from density_nb.corpus.store import write_json
from density_nb.exports import write_tables
from density_nb.files import WriteError
from density_nb.tracing import trace
from density_nb.views import TokenStrip
from helpers import SAMPLE_LINES, make_result

# Where each library writes a file, and which argument is its path.
WRITERS = {
    "text": (pathlib.Path, "write_text", 0),
    "bytes": (pathlib.Path, "write_bytes", 0),
    "parquet": (pyarrow.parquet, "write_table", 1),
    "table parquet": (pd.DataFrame, "to_parquet", 1),
    "csv": (pd.DataFrame, "to_csv", 1),
    "graphml": (networkx, "write_graphml", 1),
}
OLD = b"the old file\n"


@contextlib.contextmanager
def disk_fills(monkeypatch, kind):
    """While in the block, the ``kind`` writer writes its file, cuts it to half and raises ENOSPC."""
    owner, name, position = WRITERS[kind]
    real = getattr(owner, name)

    def half_written(*args, **kwargs):
        real(*args, **kwargs)
        target = args[position]
        os.truncate(target, os.path.getsize(target) // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    with monkeypatch.context() as patch:
        patch.setattr(owner, name, half_written)
        yield


def assert_nothing_partial(path, err, old=OLD):
    """``path`` holds ``old`` (or does not exist when ``old`` is None), no temp file beside it, and the error says so."""
    assert isinstance(err, WriteError) and str(path) in str(err) and "nothing partial was left" in str(err)
    assert isinstance(err.__cause__, OSError) and err.__cause__.errno == errno.ENOSPC
    assert path.read_bytes() == old if old is not None else not path.exists()
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def traced(tiny_llama):
    return trace(tiny_llama, "The cat sat on the mat", roots=[2, 4], grid="fast", progress=False)


@pytest.fixture(scope="module")
def made(traced, tiny_llama):
    """One of each thing density_nb saves."""
    return {"result": traced, "view": TokenStrip(make_result(n_tokens=6)), "subgraph": traced.subgraph(tiny_llama, 4, 6)}


OUTPUTS = {  # name: (the library writer it uses, the file, how it is written)
    "result parquet": ("parquet", "r.parquet", lambda path, made: made["result"].to_parquet(path)),
    "result html": ("text", "r.html", lambda path, made: made["result"].to_html(path)),
    "view svg": ("text", "v.svg", lambda path, made: made["view"].save(path)),
    "view png": ("bytes", "v.png", lambda path, made: made["view"].save(path)),
    "export csv": ("csv", "summary.csv", lambda path, made: write_tables({"summary": made["result"].summary()}, path.parent, "csv")[0]),
    "export parquet": ("table parquet", "summary.parquet", lambda path, made: write_tables({"summary": made["result"].summary()}, path.parent, "parquet")[0]),
    "subgraph json": ("text", "g.json", lambda path, made: made["subgraph"].to_json(path)),
    "subgraph graphml": ("graphml", "g.graphml", lambda path, made: made["subgraph"].to_graphml(path)),
    "run manifest": ("text", "manifest.json", lambda path, made: write_json({"format": 1}, path)),
}  # fmt: skip


@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("existing", [True, False], ids=["replacing", "new"])
def test_a_full_disk_leaves_the_old_file(name, existing, tmp_path, monkeypatch, made):
    kind, filename, write = OUTPUTS[name]
    path = tmp_path / filename
    if existing:
        path.write_bytes(OLD)
    with disk_fills(monkeypatch, kind), pytest.raises(WriteError) as err:
        write(path, made)
    assert_nothing_partial(path, err.value, OLD if existing else None)
    write(path, made)  # with space again, it is written
    assert path.read_bytes() != OLD


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Where a tiny WikiText lives, and the settings of a tiny corpus run on it."""
    data = tmp_path_factory.mktemp("data")
    (data / "wikitext-2").mkdir()
    (data / "wikitext-2" / "test.txt").write_text("\n".join(SAMPLE_LINES) + "\n", encoding="utf-8")
    return {"data": data, "words": 6, "grid": "fast", "progress": False}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_llama, corpus):
    out = tmp_path_factory.mktemp("runs") / "run"
    runner.run_corpus(tiny_llama, out, n_passages=2, **corpus)
    return out


def test_a_full_disk_during_a_shard_keeps_the_run(tiny_llama, tmp_path, monkeypatch, corpus):
    """The run holds every passage written before the disk filled; the failed shard is not counted."""
    out, settings = tmp_path / "run", corpus
    runner.run_corpus(tiny_llama, out, n_passages=2, **settings)
    manifest = (out / "manifest.json").read_bytes()
    with disk_fills(monkeypatch, "table parquet"), pytest.raises(WriteError, match="shards"):
        runner.run_corpus(tiny_llama, out, n_passages=3, resume=True, **settings)
    assert (out / "manifest.json").read_bytes() == manifest and len(load_runs(out).summary) == 2
    assert not list(out.rglob("*.tmp"))
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["00000000.curves.parquet", "00000000.summary.parquet",
                                                                   "00000001.curves.parquet", "00000001.summary.parquet"]  # fmt: skip
    assert len(runner.run_corpus(tiny_llama, out, n_passages=3, resume=True, **settings)) == 3


@pytest.mark.parametrize(
    ("command", "kind", "target"),
    [
        (["trace", "The cat sat on the mat", "--model", "tiny-llama", "--roots", "last", "--quiet", "--out"], "text", "r.html"),
        (["trace", "The cat sat on the mat", "--model", "tiny-llama", "--roots", "last", "--quiet", "--out"], "parquet", "r.parquet"),
        (["export", "{result}", "--out"], "csv", "tables"),
        (["view", "{run}", "--out"], "text", "page.html"),
    ],
    ids=["trace html", "trace parquet", "export", "view"],
)
def test_the_cli_says_the_disk_is_full_in_one_line(command, kind, target, tmp_path, monkeypatch, capsys, traced, run_dir):
    result = traced.to_parquet(tmp_path / "result.parquet")
    args = [a.format(result=result, run=run_dir) for a in command] + [str(tmp_path / target)]
    with disk_fills(monkeypatch, kind):
        proc = run_main(capsys, *args)
    assert_clean_error(proc, "Could not write", target, "nothing partial was left", "free some space")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [result]


def test_the_quickstart_says_the_disk_is_full(tmp_path, monkeypatch, capsys):
    out, page = tmp_path / "q.parquet", tmp_path / "q.html"
    page.write_bytes(OLD)
    with disk_fills(monkeypatch, "text"):
        code = quickstart.main(["--model", "tiny-llama", "--grid", "fast", "--out", str(out), "--html", str(page)])
    err = capsys.readouterr().err
    assert code == 2 and "Could not write" in err and str(page) in err
    assert page.read_bytes() == OLD and out.is_file()  # the parquet was written before the disk filled
    assert not list(tmp_path.glob(".*.tmp"))
