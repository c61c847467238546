"""Bad input a newcomer gives a corpus run or a result file: each a ``DensityNBError`` that names the file,
row or setting and the fix (one line in the CLI), refused before a run folder is made; a run that fails
before any passage is done leaves nothing that blocks running it again. (A full disk: test_outputs.py.)"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from test_cli import assert_clean_error, run_main

from density_nb.corpus import runner
from density_nb.corpus.runs import load_runs
from density_nb.corpus.sources import DataError, read_prompts
from density_nb.corpus.store import LOCK, CorpusError
from density_nb.errors import DensityNBError
from density_nb.result import DensityResult, ResultFileError
from helpers import SAMPLE_LINES, make_result

RUN = {"grid": "fast", "progress": False, "n_passages": 2}
ROWS = "prompt,next_word\nThe boat drifted past the,mill\nRain fell on the,city\n"


def corpus_cli(capsys, table, out):
    return run_main(
        capsys, "corpus", "--data", str(table), "--model", "tiny-llama", "--grid", "fast", "--passages", "2", "--out", str(out), "--quiet"
    )


def test_a_table_with_a_header_and_no_rows(tmp_path, capsys):
    table = tmp_path / "prompts.csv"
    table.write_text("prompt,next_word\n")
    with pytest.raises(DataError, match=r"prompts\.csv' has no rows \(only a header\): add a row per prompt"):
        runner.run_corpus("tiny-llama", tmp_path / "run", data=table, **RUN)
    assert_clean_error(corpus_cli(capsys, table, tmp_path / "run"), "prompts.csv", "has no rows")
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_a_passage_id_that_is_not_a_whole_number(tmp_path, capsys):
    table = tmp_path / "prompts.csv"
    table.write_text("passage_id,prompt,next_word\n7,The boat drifted past the,mill\nabc,Rain fell on the,city\n2.5,A cat,slept\n")
    with pytest.raises(DataError, match=r"column passage_id must hold whole numbers, but row 1 holds 'abc', row 2 holds '2.5'"):
        read_prompts(table)
    assert_clean_error(corpus_cli(capsys, table, tmp_path / "run"), "prompts.csv", "row 1 holds 'abc'", "drop the column")
    assert not (tmp_path / "run").exists()
    table.write_text("passage_id,prompt,next_word\n 7 ,The boat drifted past the,mill\n8.0,Rain fell on the,city\n")
    assert read_prompts(table)["passage_id"].tolist() == [7, 8]


@pytest.mark.parametrize("name", ["prompts.csv", "prompts.tsv", "prompts.parquet"])
def test_a_prompt_table_that_does_not_exist(tmp_path, capsys, name):
    missing = tmp_path / name
    with pytest.raises(DataError, match=rf"Prompt table '{missing}' does not exist: check the path") as err:
        runner.run_corpus("tiny-llama", tmp_path / "run", data=missing, **RUN)
    assert "WikiText" not in str(err.value)
    assert_clean_error(corpus_cli(capsys, missing, tmp_path / "run"), name, "does not exist")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda meta: b"{not json", "not a JSON object"),
        (lambda meta: b"\xff\xfe", "not a JSON object"),
        (lambda meta: b"[1, 2]", "not a JSON object"),
        (lambda meta: json.dumps({k: v for k, v in meta.items() if k != "grid"}).encode(), "no grid"),
    ],
    ids=["not json", "not utf-8", "a list", "no grid"],
)
def test_damaged_metadata_in_a_result_file(tmp_path, capsys, damage, says):
    path = make_result(n_tokens=5, n_strata=4).to_parquet(tmp_path / "r.parquet")
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"density_nb"])
    pq.write_table(table.replace_schema_metadata({b"density_nb": damage(meta)}), path)
    with pytest.raises(ResultFileError, match=rf"r\.parquet': its density_nb metadata is damaged \({says}.*Write it again"):
        DensityResult.from_parquet(path)
    assert_clean_error(run_main(capsys, "export", str(path), "--out", str(tmp_path / "t")), "r.parquet", "metadata is damaged")


def test_a_run_that_fails_before_any_passage_leaves_nothing_behind(tmp_path, monkeypatch):
    table = tmp_path / "prompts.csv"
    table.write_text(ROWS)
    out = tmp_path / "run"

    def cannot_load(*args, **kwargs):
        raise DensityNBError("no such model")

    with monkeypatch.context() as patch:
        patch.setattr(runner, "load_model", cannot_load)
        with pytest.raises(DensityNBError, match="no such model"):
            runner.run_corpus("tiny-llama", out, data=table, **RUN)
    assert not out.exists()  # this call made the folder, and removed it
    out.mkdir()
    with monkeypatch.context() as patch:
        patch.setattr(runner, "load_model", cannot_load)
        with pytest.raises(DensityNBError, match="no such model"):
            runner.run_corpus("tiny-llama", out, data=table, **RUN)
    assert list(out.iterdir()) == []  # a folder that was there stays, empty
    assert len(runner.run_corpus("tiny-llama", out, data=table, **RUN)) == 2  # a plain run again: not refused


def test_a_run_recorded_with_no_passage_does_not_block(tmp_path):
    """Older versions wrote the manifest first: a run killed before its first passage left one with none."""
    table = tmp_path / "prompts.csv"
    table.write_text(ROWS)
    out = tmp_path / "run"
    out.mkdir()
    manifest = {"format": 1, "settings": {"model": "tiny-llama", "grid": "paper"}, "shards": [], "passage_ids": [], "next_shard": 0}
    (out / "manifest.json").write_text(json.dumps(manifest))
    runner.run_corpus("tiny-llama", out, data=table, **RUN)
    assert load_runs(out).manifest["settings"]["grid"] == "fast" and len(load_runs(out).summary) == 2


def test_the_cli_reports_a_lock_of_another_host_in_one_line(tmp_path, capsys):
    table = tmp_path / "prompts.csv"
    table.write_text(ROWS)
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"host": "node-7.cluster", "pid": 4242, "started": "2025-03-01T09:00:00+0000"}))
    with pytest.raises(CorpusError, match="another host"):
        runner.run_corpus("tiny-llama", out, data=table, **RUN)
    assert_clean_error(corpus_cli(capsys, table, out), "node-7.cluster", f"delete '{out / LOCK}'")
    assert sorted(p.name for p in out.iterdir()) == [LOCK]


def test_an_output_folder_that_is_a_file(tmp_path, capsys):
    table = tmp_path / "prompts.csv"
    table.write_text(ROWS)
    with pytest.raises(CorpusError, match=r"Cannot make the run folder '.*prompts\.csv' \(File exists\): choose another"):
        runner.run_corpus("tiny-llama", table, data=table, **RUN)
    assert_clean_error(corpus_cli(capsys, table, table), "Cannot make the run folder")
    assert table.read_text() == ROWS


def test_no_passage_to_run(tmp_path):
    (tmp_path / "wikitext-2").mkdir()
    (tmp_path / "wikitext-2" / "test.txt").write_text("\n".join(SAMPLE_LINES) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="No passage of more than 500 words in the 'test' split: ask for fewer words"):
        runner.run_corpus("tiny-llama", tmp_path / "run", data=tmp_path, words=500, **RUN)
    with pytest.raises(DataError, match="n_passages must be at least 1"):
        runner.run_corpus("tiny-llama", tmp_path / "run", data=tmp_path, **{**RUN, "n_passages": 0})
    assert not (tmp_path / "run").exists()
