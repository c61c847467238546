"""Corpus: passage loader, unigram counts, corpus runs (local backend): shards, resume, crashes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from density_nb import corpus
from density_nb.corpus import DataError, detokenize, find_data, passages, token_frequency, unigram_counts

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
    assert list(df.columns) == ["passage_id", "prompt", "next_word", "text"]
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
    monkeypatch.setattr(corpus, "find_data", lambda data=None: None)
    monkeypatch.setattr(corpus, "_hf_lines", lambda split: (_ for _ in ()).throw(DataError("no data: " + corpus._HOW_TO)))
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
