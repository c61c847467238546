"""Corpus: passage loader, unigram counts, corpus runs (local backend): shards, resume, crashes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from density_nb.analysis.frequency import token_frequency
from density_nb.corpus import passages as corpus_passages
from density_nb.corpus import runner
from density_nb.corpus import runs as corpus_runs
from density_nb.corpus import sources as corpus_data
from density_nb.corpus import store as run_store
from density_nb.corpus.sources import DataError, detokenize, find_data, passages, unigram_counts
from helpers import SAMPLE_LINES, resume_killed_mid_shard

NO_DATA = (
    "No WikiText-2 data: set DENSITY_NB_DATA to a folder with wikitext-2/{test,valid}.txt, put ../shared/data "
    "beside the repo, or pip install datasets and run online."
)
needs_data = pytest.mark.skipif(find_data() is None, reason=NO_DATA)


# ---- detokenisation and passages --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (" a guest @-@ starring role , in 2000 . ", "a guest-starring role, in 2000."),
        (" 1 @,@ 000 people and 3 @.@ 5 km ", "1,000 people and 3.5 km"),
        (' in the episode " Teddy \'s Story " of ', 'in the episode "Teddy\'s Story" of'),
        (" ( born 1970 ) ; he said : yes ! ", "(born 1970); he said: yes!"),
        (" it was $ 5 , or 10 % ", "it was $5, or 10%"),
        (" they don 't know ", "they don't know"),
        (' " a " and " b " ', '"a" and "b"'),
    ],
)
def test_detokenize(raw, clean):
    assert detokenize(raw) == clean


def write_corpus(folder, lines):
    (folder / "wikitext-2").mkdir(parents=True)
    (folder / "wikitext-2" / "test.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


SYNTH = [
    " ",
    " = Title = ",
    " ",
    " one two three four five six , seven eight . ",
    " = = Section = = ",
    " a b c d e f g h i j k <unk> m ",
    " short para . ",
    " alpha beta gamma delta @-@ epsilon zeta eta theta iota kappa ",
]


def test_passages_synthetic(tmp_path):
    data = write_corpus(tmp_path, SYNTH)
    df = passages(words=5, data=data)
    assert list(df.columns) == ["passage_id", "prompt", "next_word", "continuation", "text"]
    assert (df.continuation == " " + df.next_word).all()  # cut at a space: the next word follows one
    assert df["passage_id"].tolist() == [3, 7]  # line numbers: heading, <unk> and short lines dropped
    assert df["prompt"].iloc[0] == "one two three four five"
    assert df["next_word"].iloc[0] == "six,"
    assert df["text"].iloc[1] == "alpha beta gamma delta-epsilon zeta eta theta iota kappa"
    assert df["next_word"].iloc[1] == "eta"  # delta-epsilon is one word after detokenising
    assert len(passages(1, words=5, data=data)) == 1
    # passage-level <unk> filter keeps the paragraph whose first 6 words are clean
    assert passages(words=5, data=data, drop_unk="passage")["passage_id"].tolist() == [3, 5, 7]
    # a file path works too, and the env var
    assert len(passages(words=5, data=data / "wikitext-2" / "test.txt")) == 2


def test_find_data_env_and_errors(tmp_path, monkeypatch):
    data = write_corpus(tmp_path / "d", SYNTH)
    monkeypatch.setenv("DENSITY_NB_DATA", str(data))
    assert find_data() == data
    assert passages(words=5)["passage_id"].tolist() == [3, 7]
    monkeypatch.setenv("DENSITY_NB_DATA", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="DENSITY_NB_DATA"):
        find_data()
    with pytest.raises(DataError, match="does not exist"):
        passages(data=tmp_path / "missing")
    with pytest.raises(DataError, match="valid"):
        passages(split="valid", data=data)
    with pytest.raises(ValueError, match="split"):
        passages(split="train", data=data)


def test_no_data_offline_error(monkeypatch):
    monkeypatch.delenv("DENSITY_NB_DATA", raising=False)
    monkeypatch.setattr(corpus_data, "find_data", lambda data=None: None)
    monkeypatch.setattr(corpus_data, "_hf_lines", lambda split: (_ for _ in ()).throw(DataError("no data: " + corpus_data._HOW_TO)))
    with pytest.raises(DataError, match="DENSITY_NB_DATA"):
        passages()


@needs_data
@pytest.mark.parametrize("split", ["test", "valid"])
def test_wikitext_passages(split):
    df = passages(words=40, split=split)
    assert len(df) > 30
    assert df["passage_id"].is_unique and df["passage_id"].is_monotonic_increasing
    for row in df.itertuples():
        assert "<unk>" not in row.text and "@" not in row.text
        assert not row.text.startswith("=")
        assert len(row.prompt.split()) == 40
        assert row.text.startswith(row.prompt + " " + row.next_word)
        assert " ," not in row.text and " ." not in row.text and " 's" not in row.text
    again = passages(5, words=40, split=split)
    pd.testing.assert_frame_equal(again, df.head(5))
    # the same paragraph cut shorter keeps its id
    short = passages(words=10, split=split)
    assert set(df["passage_id"]) <= set(short["passage_id"])
    assert len(passages(words=40, split=split, drop_unk="passage")) > len(df)


# ---- unigram counts -------------------------------------------------------------------------------
def test_unigram_counts(tiny_llama):
    from density_nb.models import hf_tokenizer

    tok = hf_tokenizer(tiny_llama)
    texts = ["the cat sat", "the cat", "a dog"]
    counts = unigram_counts(tiny_llama, texts)
    ids = [i for t in texts for i in tok(t, add_special_tokens=False)["input_ids"]]
    assert counts.sum() == len(ids)
    the = tok("the", add_special_tokens=False)["input_ids"][0]
    assert counts[the] == ids.count(the)
    freq = token_frequency(counts, [the, 10**6])
    assert freq[0] == pytest.approx(ids.count(the) / len(ids)) and freq[1] == 0.0
    assert token_frequency(counts, np.array([[the]])).shape == (1, 1)
    assert unigram_counts(tok, []).empty


# ---- corpus runs (local backend) ------------------------------------------------------------------
RUN_LINES = SAMPLE_LINES[:6]
RUN = {"words": 6, "grid": "fast", "progress": False}


@pytest.fixture
def run_data(tmp_path):
    return write_corpus(tmp_path / "data", RUN_LINES)


@pytest.fixture
def count_traces(monkeypatch):
    """Counts the passages corpus traces (``calls``); a batch reaching passage ``fail_at`` raises."""
    state = {"calls": 0, "fail_at": None}
    real = corpus_passages.trace_many

    def wrapped(bridge, texts, *args, **kwargs):
        state["calls"] += len(texts)
        if state["fail_at"] is not None and state["calls"] >= state["fail_at"]:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return real(bridge, texts, *args, **kwargs)

    monkeypatch.setattr(corpus_passages, "trace_many", wrapped)
    return state


def piece_ids(out):
    """The passage ids of each counted piece of a run, read from its summary file."""
    return [pd.read_parquet(out / p.summary, columns=["passage_id"])["passage_id"].tolist() for p in run_store.scan(out)[0]]


def check_complete(out, n):
    """Only counted pieces on disk (no temp or stray file), each passage in exactly one, all read back once."""
    pieces, strays = run_store.scan(out)
    assert not strays and json.loads((out / "manifest.json").read_text())["format"] == run_store.RUN_FORMAT
    assert {f"shards/{p.name}" for p in (out / "shards").iterdir()} == {f for p in pieces for f in (p.summary, p.curves)}
    summary, curves = corpus_runs.load_runs(out)
    ids = [i for piece in piece_ids(out) for i in piece]
    assert len(ids) == len(set(ids)) == n == len(summary)
    assert sorted(ids) == summary["passage_id"].tolist()
    assert len(curves) == n * 9 and not curves.duplicated(["passage_id", "stratum"]).any()
    return summary, curves


def test_run_corpus_shards_and_manifest(tiny_llama, run_data, tmp_path):
    from density_nb.method.inputs import tokenize
    from density_nb.tracing import trace

    out = tmp_path / "run"
    summary = runner.run_corpus(tiny_llama, out, data=run_data, n_passages=3, **RUN)
    again, curves = check_complete(out, 3)
    pd.testing.assert_frame_equal(summary, again)
    manifest = corpus_runs.load_runs(out).manifest
    assert manifest["settings"]["model"] == "tiny-llama" and manifest["settings"]["words"] == 6
    assert len(manifest["grid_sizes"]) == 9 and len(manifest["shards"]) == 3
    assert summary["aligned"].all() and summary["loss_full"].notna().all()
    assert {"density", "auc_tv", "auc_kl", "s_top1", "entropy_full", "model", "words", "next_word"} <= set(summary.columns)
    # the numbers are exactly those of trace() on prompt + next word at the prompt's last token
    row = summary.iloc[0]
    n = len(tokenize(tiny_llama, row["prompt"])[0])
    direct = trace(tiny_llama, row["prompt"] + " " + row["next_word"], roots=[n - 1], grid="fast", progress=False)
    assert row["position"] == n - 1 and row["density"] == direct.density[0] and row["loss_full"] == direct.loss_full[0]
    assert row["next_token"] == direct.next_token[0]
    np.testing.assert_array_equal(curves[curves.passage_id == row["passage_id"]]["tv"], direct.tv[0])
    # an existing run is not overwritten without resume
    with pytest.raises(run_store.CorpusError, match="resume"):
        runner.run_corpus(tiny_llama, out, data=run_data, n_passages=3, **RUN)


def test_resume_skips_done(tiny_llama, run_data, tmp_path, count_traces):
    out = tmp_path / "run"
    runner.run_corpus(tiny_llama, out, data=run_data, n_passages=2, **RUN)
    assert count_traces["calls"] == 2
    runner.run_corpus(tiny_llama, out, data=run_data, n_passages=4, resume=True, workers=2, **RUN)
    assert count_traces["calls"] == 4
    runner.run_corpus(tiny_llama, out, data=run_data, n_passages=4, resume=True, **RUN)
    assert count_traces["calls"] == 4  # nothing left to do
    check_complete(out, 4)


def test_crash_then_resume(tiny_llama, run_data, tmp_path, count_traces):
    out = tmp_path / "run"
    count_traces["fail_at"] = 3
    with pytest.raises(KeyboardInterrupt):  # in the second batch of two
        runner.run_corpus(tiny_llama, out, data=run_data, n_passages=5, batch=2, workers=1, **RUN)
    check_complete(out, 2)  # the first batch's passages are safe, nothing half-written
    count_traces["fail_at"] = None
    summary = runner.run_corpus(tiny_llama, out, data=run_data, n_passages=5, resume=True, batch=2, workers=1, **RUN)
    assert count_traces["calls"] == 4 + 3
    check_complete(out, 5)
    assert len(summary) == 5


def test_kill_before_a_shard_counts(tiny_llama, run_data, tmp_path, monkeypatch):
    """A kill after a shard's curves file is written but before its summary file: the shard is not counted."""
    out = tmp_path / "run"
    runner.run_corpus(tiny_llama, out, data=run_data, n_passages=1, **RUN)
    resume_killed_mid_shard(tiny_llama, out, monkeypatch, data=run_data, n_passages=2, **RUN)
    assert len(list((out / "shards").iterdir())) == 3  # a shard pair and an orphan curves file
    assert len(corpus_runs.load_runs(out).summary) == 1  # ... that does not count
    runner.run_corpus(tiny_llama, out, data=run_data, n_passages=3, resume=True, **RUN)
    check_complete(out, 3)


def test_worker_threads(tiny_gemma3, run_data, tmp_path, monkeypatch):
    """Two threads share the model: the same numbers as one (same torch threads); a failing
    passage stops the run with every other completed passage recorded, and resume finishes it."""
    one = runner.run_corpus(tiny_gemma3, tmp_path / "one", data=run_data, n_passages=5, workers=1, threads=1, **RUN)
    two = runner.run_corpus(tiny_gemma3, tmp_path / "two", data=run_data, n_passages=5, workers=2, threads=1, **RUN)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    real = corpus_passages.trace_many
    bad = one["prompt"].iloc[2]

    def failing(bridge, texts, *args, **kwargs):
        if any(t.startswith(bad) for t in texts):
            raise RuntimeError("simulated failure")
        return real(bridge, texts, *args, **kwargs)

    monkeypatch.setattr(corpus_passages, "trace_many", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        runner.run_corpus(tiny_gemma3, tmp_path / "fail", data=run_data, n_passages=5, workers=2, threads=1, **RUN)
    done = corpus_runs.load_runs(tmp_path / "fail").summary["passage_id"].tolist()
    assert one["passage_id"].iloc[2] not in done and len(done) == len(set(done)) >= 1
    monkeypatch.setattr(corpus_passages, "trace_many", real)
    resumed = runner.run_corpus(tiny_gemma3, tmp_path / "fail", data=run_data, n_passages=5, workers=2, threads=1, resume=True, **RUN)
    pd.testing.assert_frame_equal(one, resumed, check_exact=True)
    check_complete(tmp_path / "fail", 5)


def test_batch_does_not_change_results(tiny_gemma3, run_data, tmp_path):
    one = runner.run_corpus(tiny_gemma3, tmp_path / "one", data=run_data, n_passages=5, batch=1, **RUN)
    three = runner.run_corpus(tiny_gemma3, tmp_path / "three", data=run_data, n_passages=5, batch=3, **RUN)
    assert one["passage_id"].tolist() == three["passage_id"].tolist() and one["n_tokens"].nunique() > 1
    for col in ("density", "auc_kl", "entropy_full", "loss_full"):
        np.testing.assert_allclose(one[col], three[col], rtol=1e-5, atol=1e-6)
    a, b = corpus_runs.load_runs(tmp_path / "one").curves, corpus_runs.load_runs(tmp_path / "three").curves
    np.testing.assert_allclose(a["tv"], b["tv"], rtol=1e-5, atol=1e-6)
    with pytest.raises(run_store.CorpusError, match="batch must be a positive integer"):
        runner.run_corpus(tiny_gemma3, tmp_path / "x", data=run_data, batch=0, **RUN)


def test_shard_size(tiny_llama, run_data, tmp_path):
    out = tmp_path / "run"
    runner.run_corpus(tiny_llama, out, data=run_data, n_passages=5, shard_size=2, **RUN)
    assert [len(ids) for ids in piece_ids(out)] == [2, 2, 1]
    check_complete(out, 5)


def test_resume_settings_mismatch(tiny_llama, run_data, tmp_path):
    out = tmp_path / "run"
    runner.run_corpus(tiny_llama, out, data=run_data, n_passages=1, **RUN)
    with pytest.raises(run_store.CorpusError, match="words: recorded 6, now 5"):
        runner.run_corpus(tiny_llama, out, data=run_data, n_passages=1, resume=True, **{**RUN, "words": 5})
    with pytest.raises(run_store.CorpusError, match="grid"):
        runner.run_corpus(tiny_llama, out, data=run_data, n_passages=1, resume=True, **{**RUN, "grid": "paper"})
    with pytest.raises(run_store.CorpusError, match=r"no manifest\.json"):
        corpus_runs.load_runs(tmp_path / "empty")
    with pytest.raises(run_store.CorpusError, match="backend"):
        runner.run_corpus(tiny_llama, tmp_path / "x", data=run_data, backend="spark", **RUN)
    with pytest.raises(ValueError, match="Grid sizes must lie in"):
        runner.run_corpus(tiny_llama, tmp_path / "x", data=run_data, **{**RUN, "grid": [2.0]})


def test_fallback_when_not_a_prefix(tiny_llama, monkeypatch):
    import torch

    real = corpus_passages.tokenize

    def shifted(bridge, text, prepend_bos=None):
        ids, pieces = real(bridge, text)
        if text.endswith(" river"):  # pretend the joined text tokenizes differently
            ids = torch.cat([ids[:1] + 1, ids[1:]])
        return ids, pieces

    monkeypatch.setattr(corpus_passages, "tokenize", shifted)
    summary, curves = corpus_passages.trace_passage(tiny_llama, 7, "The boat went down the", "river", words=5, grid="fast")
    assert not summary["aligned"].iloc[0] and np.isnan(summary["loss_full"].iloc[0])
    assert summary["position"].iloc[0] == len(real(tiny_llama, "The boat went down the")[0]) - 1
    assert len(curves) == 9 and (curves["passage_id"] == 7).all()


def test_run_lock(tiny_llama, run_data, tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    out.mkdir()
    (out / "run.lock").write_text(str(os.getppid()))  # a live process holds the directory
    with pytest.raises(run_store.CorpusError, match="Another run"):
        runner.run_corpus(tiny_llama, out, data=run_data, n_passages=1, **RUN)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / "run.lock").write_text(str(dead.pid))  # a killed run's stale lock is taken over
    runner.run_corpus(tiny_llama, out, data=run_data, n_passages=1, **RUN)
    assert not (out / "run.lock").exists()
    check_complete(out, 1)


def test_read_prompts_formats(tmp_path):
    published = tmp_path / "wikitext_40.txt"  # the published TSV: no header, 6 columns
    published.write_text('He said "yes" to the\tthe\tDT\tboat\tNN\t boat\nNA is not a\ta\tDT\tnull\tNN\t null\n')
    df = corpus_data.read_prompts(published)
    assert df["prompt"].tolist() == ['He said "yes" to the', "NA is not a"] and df["next_word"].tolist() == ["boat", "null"]
    assert df["passage_id"].tolist() == [0, 1] and df["text"].iloc[0] == 'He said "yes" to the boat'
    assert corpus_data.prompt_table(published) == published and corpus_data.prompt_table(tmp_path) is None
    table = pd.DataFrame({"passage_id": [7, 3], "prompt": ["The cat sat on the", "Rain fell on the"], "next_word": ["mat", "roof"]})
    table.to_csv(tmp_path / "p.csv", index=False)
    table.to_parquet(tmp_path / "p.parquet")
    for name in ("p.csv", "p.parquet"):
        got = corpus_data.read_prompts(tmp_path / name)
        assert got["passage_id"].tolist() == [7, 3] and got["next_word"].tolist() == ["mat", "roof"]
    (tmp_path / "bad.csv").write_text("text,word\na,b\n")
    with pytest.raises(DataError, match="no column 'prompt' or 'next_word'"):
        corpus_data.read_prompts(tmp_path / "bad.csv")
    (tmp_path / "dup.csv").write_text("passage_id,prompt,next_word\n1,a b,c\n1,d e,f\n")
    with pytest.raises(DataError, match="repeat"):
        corpus_data.read_prompts(tmp_path / "dup.csv")
    (tmp_path / "empty.csv").write_text("prompt,next_word\na b,\n")
    with pytest.raises(DataError, match="empty"):
        corpus_data.read_prompts(tmp_path / "empty.csv")


ATTACHED = [  # prompt, next word, what follows the prompt (the published files' sixth column)
    ("The experiment did not last long", ",", ","),
    ("The soldiers were rescued by Luttrell", "'s", "'s"),
    ("The station was closed (see the map", ")", ")"),
    ("The storm petrel was first described by Linnaeus in", "his", " his"),
]


def test_read_prompts_knows_what_attaches(tmp_path):
    published = tmp_path / "wikitext_40.txt"
    published.write_text("".join(f"{p}\tlast\tX\t{w}\tX\t{c}\n" for p, w, c in ATTACHED))
    df = corpus_data.read_prompts(published)
    assert df.continuation.tolist() == [c for *_, c in ATTACHED] and df.text.tolist() == [p + c for p, _, c in ATTACHED]
    flagged = tmp_path / "flags.csv"
    pd.DataFrame(
        {"prompt": [p for p, *_ in ATTACHED], "next_word": [w for _, w, _ in ATTACHED], "attaches": ["true", "TRUE", "1", "no"]}
    ).to_csv(flagged, index=False)
    assert corpus_data.read_prompts(flagged).continuation.tolist() == df.continuation.tolist()
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"prompt": ["a b"], "next_word": ["c"], "next_word_spaced": [" d"]}).to_csv(bad, index=False)
    with pytest.raises(DataError, match="next_word_spaced"):
        corpus_data.read_prompts(bad)


def test_corpus_runs_trace_prompt_and_continuation_exactly(tiny_llama, tmp_path):
    """Rows ending before ',', "'s" and ')' trace the prompt and the next word with no space between: the
    target token is the continuation's first token, as the joined text tokenizes."""
    from density_nb.method.inputs import tokenize

    table = tmp_path / "prompts.csv"
    pd.DataFrame({"prompt": [p for p, *_ in ATTACHED], "next_word": [w for _, w, _ in ATTACHED],
                  "next_word_spaced": [c for *_, c in ATTACHED]}).to_csv(table, index=False)  # fmt: skip
    out = tmp_path / "run"
    runner.run_corpus(tiny_llama, out, data=table, n_passages=None, grid="fast", progress=False)
    run = corpus_runs.load_runs(out)
    assert run.summary.continuation.tolist() == [c for *_, c in ATTACHED] and run.summary.aligned.all()
    tok = tiny_llama.tokenizer
    for (prompt, _, continuation), row in zip(ATTACHED, run.summary.itertuples()):
        ids = tokenize(tiny_llama, prompt + continuation)[0]
        n = len(tokenize(tiny_llama, prompt)[0])
        assert row.n_tokens == n and row.next_token == int(ids[n])
        assert tok.decode([row.next_token]) == tok.decode(ids[n:].tolist())[: len(tok.decode([row.next_token]))]
        assert tok.decode([row.next_token]).startswith(" ") == continuation.startswith(" ")  # "," not " ,"
    assert run.manifest["settings"]["continuation"] == "exact"
    # re-traced as recorded: the same numbers
    again = run.passage(int(run.summary.passage_id[0]), model=tiny_llama)
    assert again.next_token[0] == run.summary.next_token[0] and again.density[0] == pytest.approx(run.summary.density[0], rel=1e-6)


def run_without_setting(model, run_data, out, key: str) -> None:
    """A one-passage run whose manifest lacks ``key``, as a run made before that setting was recorded."""
    runner.run_corpus(model, out, data=run_data, n_passages=1, **RUN)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["settings"][key]
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_runs_from_before_the_continuation_are_flagged(tiny_llama, run_data, tmp_path):
    out = tmp_path / "old"
    run_without_setting(tiny_llama, run_data, out, "continuation")
    with pytest.warns(UserWarning, match="continuation exactly"):
        corpus_runs.load_runs(out)
    with pytest.raises(run_store.CorpusError, match="continuation exactly"):
        runner.run_corpus(tiny_llama, out, data=run_data, n_passages=2, resume=True, **RUN)


def test_run_corpus_on_a_prompt_table(tiny_gemma3, tmp_path):
    from density_nb.method.inputs import tokenize
    from density_nb.tracing import trace

    table = tmp_path / "prompts.csv"
    pd.DataFrame({"prompt": ["The boat went down the", "She opened the old wooden"], "next_word": ["river", "door"]}).to_csv(
        table, index=False
    )
    out = tmp_path / "run"
    summary = runner.run_corpus(tiny_gemma3, out, data=table, n_passages=None, grid="fast", norms="frozen", progress=False)
    assert summary["words"].tolist() == [5, 5] and summary["next_word"].tolist() == ["river", "door"]
    settings = corpus_runs.load_runs(out).manifest["settings"]
    assert settings["words"] is None and settings["norms"] == "frozen" and settings["data"].startswith("sha256:")
    n = len(tokenize(tiny_gemma3, "The boat went down the")[0])
    direct = trace(tiny_gemma3, "The boat went down the river", roots=[n - 1], grid="fast", norms="frozen", progress=False)
    np.testing.assert_allclose(summary["density"].iloc[0], direct.density[0], rtol=1e-6)
    with pytest.raises(run_store.CorpusError, match="norms: recorded 'frozen', now 'live'"):
        runner.run_corpus(tiny_gemma3, out, data=table, grid="fast", resume=True, progress=False)


def test_resume_a_run_from_before_norms_was_recorded(tiny_llama, run_data, tmp_path):
    out = tmp_path / "run"
    run_without_setting(tiny_llama, run_data, out, "norms")
    runner.run_corpus(tiny_llama, out, data=run_data, n_passages=2, resume=True, **RUN)
    check_complete(out, 2)


def test_corpus_runs_carry_the_measures(tiny_llama, run_data, tmp_path):
    """Baselines, plateau measures and top-k reach the run's tables."""
    runner.run_corpus(tiny_llama, tmp_path / "m", data=run_data, n_passages=2, baselines=["random", "inverse"], **RUN)
    run = corpus_runs.load_runs(tmp_path / "m")
    assert {
        "input_edges",
        "s_input",
        "tv_empty",
        "tv_post_input",
        "tv_mid",
        "tv_post_input_over_empty",
        "density_random",
        "density_inverse",
        "s_nu90",
        "s_tv10",
        "s_tv50",
        "s_top1_exact",
        "edges_top1",
        "s_nu90_exact",
        "n_tokens",
    } <= set(run.summary.columns)
    assert {"tv_inverse", "tv_random", "topk_token", "edges_attn_random", "layer_edges_random", "reaches_input"} <= set(run.curves.columns)
    assert run.manifest["settings"]["baselines"] == ["random", "inverse"]


def test_resume_a_run_recorded_before_baselines_were_selectable(tiny_llama, run_data, tmp_path):
    out = tmp_path / "old"
    runner.run_corpus(tiny_llama, out, data=run_data, n_passages=1, **RUN)
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("baselines", "topk", "max_rows", "seed", "prepend_bos", "max_tokens"):
        del manifest["settings"][name]
    manifest["settings"]["random_baseline"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    summary = runner.run_corpus(tiny_llama, out, data=run_data, n_passages=2, resume=True, **RUN)
    assert len(summary) == 2
    with pytest.raises(run_store.CorpusError, match="baselines"):
        runner.run_corpus(tiny_llama, out, data=run_data, n_passages=2, resume=True, baselines=["random"], **RUN)
