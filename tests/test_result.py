"""DensityResult owns its fields: a per-root field declared once (with its layout) reaches the summary,
the curves, the parquet file, results stitched from roots (generation) and a corpus run's tables."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from density_nb.result import ROOT, STRATUM, DensityResult
from helpers import make_result


@dataclass(eq=False)
class WithExtra(DensityResult):
    """A result with two fields a future version might add: one number per root, one per stratum."""

    prompt_chars: np.ndarray | None = field(default=None, metadata=ROOT)  # [R]
    tv_doubled: np.ndarray | None = field(default=None, metadata=STRATUM)  # [R, K]


def extended(result: DensityResult) -> WithExtra:
    base = {f.name: getattr(result, f.name) for f in fields(result)}
    chars = np.array([len("".join(result.tokens[: r + 1])) for r in result.roots], dtype=np.int64)
    return WithExtra(**base, prompt_chars=chars, tv_doubled=2 * result.tv)


def test_an_added_per_root_field_reaches_every_table_and_file(tmp_path):
    result = extended(make_result(n_tokens=9, n_strata=5, seed=3))
    assert "prompt_chars" in WithExtra.fields_of("root") and "tv_doubled" in WithExtra.fields_of("stratum")
    summary = result.summary()
    assert np.array_equal(summary["prompt_chars"], result.prompt_chars)
    assert np.array_equal(result.curves()["tv_doubled"], result.tv_doubled.ravel())

    back = WithExtra.from_parquet(result.to_parquet(tmp_path / "r.parquet"))
    assert back.equals(result)

    picks = [(result, 4), (result, 1)]  # as generation stitches steps traced separately
    stitched = WithExtra.from_roots(picks, result.text, result.token_ids, result.tokens)
    assert stitched.prompt_chars.tolist() == [result.prompt_chars[4], result.prompt_chars[1]]
    assert stitched.equals(result.take([4, 1]))

    corpus_summary, corpus_curves = result.corpus_tables(7, 40, prompt="p", next_word="w", aligned=True, n_tokens=np.int64(9))
    assert np.array_equal(corpus_summary["prompt_chars"], result.prompt_chars)
    assert np.array_equal(corpus_curves["tv_doubled"], result.tv_doubled.ravel())
    assert list(corpus_summary.columns[:7]) == ["passage_id", "model", "words", "prompt", "next_word", "aligned", "n_tokens"]


def test_take_keeps_the_chosen_roots_in_order():
    result = make_result(n_tokens=6, n_strata=4, seed=1)
    part = result.take([3, 0])
    assert part.roots.tolist() == [3, 0] and part.top_text_full == [result.top_text_full[3], result.top_text_full[0]]
    assert np.array_equal(part.head_share, result.head_share[[3, 0]])
    assert len(result.take([]).roots) == 0


def test_every_field_has_a_layout_or_is_about_the_text():
    text_level = {"model", "text", "token_ids", "tokens", "grid", "n_layers", "n_heads", "generated", "settings"}
    assert {f.name for f in fields(DensityResult)} == text_level | set(DensityResult.fields_of())
