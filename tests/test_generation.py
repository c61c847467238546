"""``generate`` and ``trace_live``: deterministic for a seed, equal to tracing the final text, the
written tokens marked, cancel keeps what is done, bad input refused before any model work."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from density_nb import DensityResult, TraceInputError, trace
from density_nb.generation import _nucleus, generate, trace_live
from density_nb.method.inputs import tokenize
from helpers import TEXT

ROOT_FIELDS = DensityResult.fields_of("root", "root_vector", "stratum", "nested")
PROMPT = "The small boat drifted past"
STEPS = 6


def assert_same_as_trace(result: DensityResult, model) -> None:
    """``result`` equals ``trace`` of its own text at its roots (floats up to rounding: trace batches roots)."""
    expect = trace(model, result.text, roots=result.roots.tolist(), progress=False)
    assert result.tokens == expect.tokens and np.array_equal(result.token_ids, expect.token_ids)
    for name in ROOT_FIELDS:
        got, want = getattr(result, name), getattr(expect, name)
        if want is None:
            assert got is None, name
        elif want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4, err_msg=name)
        else:
            assert np.array_equal(got, want), name
    assert result.top_text_full == expect.top_text_full


@pytest.fixture(scope="module")
def greedy(tiny_llama):
    return generate(tiny_llama, PROMPT, max_new_tokens=STEPS, progress=False)


def test_every_result_field_is_per_root_or_about_the_text():
    """from_roots() stacks every field with a per-root layout; a field without one must be about the text."""
    text_level = {"model", "text", "token_ids", "tokens", "grid", "n_layers", "n_heads", "top_text_full", "settings", "generated"}
    assert {f.name for f in dataclasses.fields(DensityResult)} == text_level | set(ROOT_FIELDS)


def test_greedy_generation_marks_written_tokens_and_equals_trace(greedy, tiny_llama):
    g = greedy
    assert g.text.startswith(PROMPT) and len(g.text) > len(PROMPT)
    ids, pieces = tokenize(tiny_llama, g.text)
    assert pieces == g.tokens and np.array_equal(ids.numpy(), g.token_ids)
    # the written tokens are the ones holding a character after the prompt; every step predicting one is traced
    ends = np.cumsum([len(p) for p in g.tokens])
    assert np.array_equal(g.generated, ends > len(PROMPT))
    assert g.roots.tolist() == [i - 1 for i in np.flatnonzero(g.generated)]
    assert (g.next_token == g.token_ids[g.roots + 1]).all()
    gen = g.settings["generation"]
    assert gen["steps"] == STEPS and gen["stopped"] == "max_new_tokens" and gen["prompt_chars"] == len(PROMPT)
    assert gen["sample"] is False and gen["top_p"] == 0.6
    assert_same_as_trace(g, tiny_llama)


def test_generated_survives_parquet(greedy, tmp_path):
    back = DensityResult.from_parquet(greedy.to_parquet(tmp_path / "g.parquet"))
    assert back.equals(greedy) and back.generated.dtype == bool
    assert DensityResult.from_parquet(dataclasses.replace(greedy, generated=None).to_parquet(tmp_path / "t.parquet")).generated is None


def test_sampling_is_deterministic_for_a_seed(tiny_llama):
    a = generate(tiny_llama, PROMPT, max_new_tokens=STEPS, sample=True, seed=7, progress=False)
    b = generate(tiny_llama, PROMPT, max_new_tokens=STEPS, sample=True, seed=7, progress=False)
    assert a.equals(b)
    assert a.settings["generation"]["sample"] is True and a.settings["generation"]["seed"] == 7
    assert_same_as_trace(a, tiny_llama)


def test_nucleus():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    rng = torch.Generator().manual_seed(0)
    assert {_nucleus(logits, 0.4, 1.0, rng) for _ in range(50)} == {0}  # the top token alone reaches 0.4
    assert {_nucleus(logits, 0.6, 1.0, rng) for _ in range(200)} == {0, 1}  # p = 0.6: the two first
    assert {_nucleus(logits, 1.0, 1.0, rng) for _ in range(400)} == {0, 1, 2, 3}
    draws = [_nucleus(logits, 0.6, 1.0, torch.Generator().manual_seed(s)) for s in range(400)]
    assert 0.5 < draws.count(0) / len(draws) < 0.75  # renormalised: 0.5 / 0.8
    assert draws == [_nucleus(logits, 0.6, 1.0, torch.Generator().manual_seed(s)) for s in range(400)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt": "  "}, "empty"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"top_p": 0}, "top_p"),
        ({"temperature": 0}, "temperature"),
        ({"grid": "dense"}, "grid"),
        ({"max_tokens": 8}, "max_tokens"),
    ],
)
def test_bad_input_is_refused(kwargs, match, monkeypatch):
    import density_nb.generation as generation

    loads = []
    real = generation._bridge
    monkeypatch.setattr(generation, "_bridge", lambda m: loads.append(m) or real(m))
    args = {"prompt": PROMPT, **kwargs}
    with pytest.raises(TraceInputError, match=match):
        generate("tiny-llama", args.pop("prompt"), progress=False, **args)
    assert loads == [] or match == "max_tokens"  # checked before the model is loaded (max_tokens needs the tokens)


def test_live_generation_cancel_keeps_what_is_done(tiny_llama):
    view = generate(tiny_llama, PROMPT, max_new_tokens=40, live=True)
    deadline = time.time() + 120
    while view.status["done"] < 2 and not view.done and time.time() < deadline:
        time.sleep(0.05)
    view.cancel()
    g = view.wait(120)
    assert view.status["state"] == "cancelled" and 2 <= g.settings["generation"]["steps"] < 40
    assert g.settings["generation"]["stopped"] == "cancelled" and view.result is g
    assert view.data["roots"] == g.roots.tolist() and view.data["generated"] == "".join("1" if x else "0" for x in g.generated)
    assert view.data["topk"]["vocab"] and all(isinstance(t, str) for t in view.data["topk"]["vocab"])  # named by the model's tokenizer
    assert_same_as_trace(g, tiny_llama)


def test_trace_live_equals_trace(tiny_llama):
    view = trace_live(tiny_llama, TEXT, roots=[0, 3, 4, 9, 12], max_rows=60)  # several masked passes
    result = view.wait(120)
    assert view.status == {"state": "done", "done": 5, "total": 5, "unit": "roots", "note": ""}
    assert result.roots.tolist() == [0, 3, 4, 9, 12] and result.generated is None
    assert result.equals(trace(tiny_llama, TEXT, roots=[0, 3, 4, 9, 12], max_rows=60, progress=False))
    with pytest.raises(TraceInputError, match="empty"):
        trace_live(tiny_llama, " ")
    with pytest.raises(TraceInputError, match="outside"):
        trace_live(tiny_llama, TEXT, roots=[10_000])


@pytest.mark.real
def test_smollm2_generation_equals_trace_of_its_text(smollm2):
    g = generate(smollm2, "The capital of France is", max_new_tokens=5, progress=False)
    assert g.text.startswith("The capital of France is") and g.generated[-1] and not g.generated[0]
    assert len(g.roots) == g.generated.sum()
    assert g.top_token_full[0] == g.next_token[0]  # greedy: the first written token is the full model's top-1
    # (later ones need not be: writing on can re-tokenize what came before, e.g. "\n\n" then "\n", "\n2")
    assert_same_as_trace(g, smollm2)
