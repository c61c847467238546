"""The playground (issue 25) from Python: ``pg.run()`` equals ``trace(...)`` bitwise, a cancelled trace keeps a
valid prefix, one trace at a time, errors in the view and never raised, the history kept and not re-traced, the
comparison of two entries (texts aligned where they agree, the per-token difference of their numbers), the
messages the view sends, and the snapshot. Most tests drive the view with a fake tracer (no torch, no model);
those that trace use tiny-llama, and SmolLM2 where the model matters (``real``).

The browser side (typing, Ctrl+Enter, the strip filling, the colours of the difference) is in
tests/test_playground_browser.py."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from density_nb.errors import TraceInputError
from density_nb.views import Playground, compare
from density_nb.views.compare import CompareError, char_spans, token_density
from density_nb.views.difference import align, difference, difference_data, difference_table
from density_nb.views.theme import difference_position, difference_range, map_colours
from helpers import _split_tokens, make_result

TEXT = "The cat sat on the mat and looked at the dog."
CHANGED = "The cat sat on the rug and looked at the dog."


# ---- a tracer without a model: synthetic results, one root per step, each step let through on demand ----------
class FakeTracer:
    models = ("fake", "other", "broken")
    grids = ("fast", "paper")
    max_tokens = 40

    def __init__(self, gated: bool = False) -> None:
        self.gated = gated
        self.go = threading.Semaphore(0)
        self.calls: list[tuple[str, str, str, tuple[str, ...]]] = []
        self.started = threading.Event()

    def count(self, model: str, text: str) -> int | None:
        return len(_split_tokens(text))

    def start(self, model: str, text: str) -> tuple[list[str], int]:
        if model == "broken":
            raise ValueError("the tracer broke")
        tokens = _split_tokens(text)
        if len(tokens) > self.max_tokens:
            raise TraceInputError(f"The text has {len(tokens)} tokens, over max_tokens={self.max_tokens}.")
        return tokens, len(tokens) - 1

    def steps(self, model, text, grid, baselines, stop):
        self.calls.append((model, text, grid, tuple(baselines)))
        full = result_of(text, model)
        self.started.set()
        for n in range(1, len(full.tokens)):
            while self.gated and not stop.is_set() and not self.go.acquire(timeout=0.01):
                pass
            if stop.is_set():
                return
            yield full.take(range(n))

    def tokenizer(self, model: str):
        return None


def result_of(text: str, model: str = "fake"):
    import dataclasses

    res = make_result(tokens=_split_tokens(text), n_strata=5, n_layers=2, n_heads=2, seed=len(text) + len(model))
    return dataclasses.replace(res, model=model)


def until(condition, timeout: float = 20.0) -> None:
    """Wait for ``condition()`` (a thread of the playground makes it true)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def fake_playground(gated: bool = False, **kwargs) -> tuple[Playground, FakeTracer]:
    tracer = FakeTracer(gated)
    return Playground(tracer, **kwargs), tracer


# ---- the view's logic, with the fake tracer -----------------------------------------------------------------
def test_run_traces_in_a_thread_fills_the_strip_and_files_the_history():
    pg, tracer = fake_playground(gated=True, text=TEXT)
    assert pg.run() is pg and not pg.done  # returns at once: the kernel stays free
    until(lambda: tracer.started.is_set())
    tokens = _split_tokens(TEXT)
    assert pg.data["tokens"] == tokens and pg.data["roots"] == [] and pg.status["state"] == "running"
    for n in (1, 2, 3):
        tracer.go.release()
        until(lambda n=n: pg.status.get("done") == n)
        assert pg.data["roots"] == list(range(n)) and pg.result is not None and len(pg.result.roots) == n
    for _ in range(len(tokens)):
        tracer.go.release()
    result = pg.wait(20)
    assert pg.done and pg.status["state"] == "done" and pg.status["done"] == pg.status["total"] == len(tokens) - 1
    assert pg.history == [result] and pg.current == 0 and pg.entries[0]["text"] == TEXT and pg.entries[0]["state"] == "done"
    assert result.equals(result_of(TEXT).take(range(len(tokens) - 1)))
    assert tracer.calls == [("fake", TEXT, "fast", ())]


def test_a_new_trace_cancels_the_running_one_and_says_so():
    pg, tracer = fake_playground(gated=True, text=TEXT)
    pg.run()
    until(lambda: tracer.started.is_set())
    tracer.go.release()
    tracer.go.release()
    until(lambda: pg.status.get("done") == 2)
    pg.text = CHANGED
    pg.run()  # the first trace stops; its two roots go to the history
    assert "was cancelled for this one" in pg.status["note"]
    until(lambda: len(pg.entries) == 1)
    assert pg.entries[0]["state"] == "cancelled" and pg.entries[0]["roots"] == 2 and pg.history[0].text == TEXT
    tracer.gated = False
    tracer.go.release()
    result = pg.wait(20)
    assert result.text == CHANGED and pg.current == 1 and [e["state"] for e in pg.entries] == ["cancelled", "done"]


def test_cancel_keeps_what_was_shown():
    pg, tracer = fake_playground(gated=True, text=TEXT)
    pg._on_message(pg, {"type": "trace"}, [])  # what the Trace button (and Ctrl+Enter) sends
    until(lambda: tracer.started.is_set())
    for _ in range(3):
        tracer.go.release()
    until(lambda: pg.status.get("done") == 3)
    pg._on_message(pg, {"type": "cancel"}, [])  # the Cancel button
    result = pg.wait(20)
    assert pg.status["state"] == "cancelled" and len(result.roots) == 3 and pg.data["roots"] == [0, 1, 2]
    assert pg.history == [result] and pg.entries[0]["state"] == "cancelled"


def test_trace_message_carries_the_typed_text():
    """The view sends the text with "trace": ipywidgets may hold back the text's own update until an earlier one is
    answered, and the request must not run on the text before it (CI saw "The text is empty" with a text typed)."""
    pg, _ = fake_playground(text="")
    pg._on_message(pg, {"type": "trace", "text": TEXT}, [])
    result = pg.wait(20)
    assert pg.error == "" and pg.text == TEXT and result.text == TEXT


@pytest.mark.parametrize(
    ("text", "model", "message"),
    [
        ("", "fake", "The text is empty"),
        ("  \n ", "fake", "The text is empty"),
        (TEXT, "no-such-model", "Unknown model 'no-such-model'"),
        (" ".join(["word"] * 50), "fake", "over max_tokens=40"),
        (TEXT, "broken", "did not expect (ValueError: the tracer broke); please report it"),
    ],
)
def test_errors_show_in_the_view_and_are_never_raised(text, model, message):
    pg, _ = fake_playground(text=text)
    pg.model = model
    pg.run()  # never raises
    assert pg.wait(20) is None
    assert message in pg.error and pg.history == []
    pg.model, pg.text = "fake", TEXT
    pg.run()
    pg.wait(20)
    assert pg.error == "" and len(pg.history) == 1


def test_the_history_goes_back_without_tracing_again():
    pg, tracer = fake_playground(text=TEXT)
    pg.run().wait(20)
    pg.text = CHANGED
    pg.grid = "paper"
    pg.run().wait(20)
    assert len(tracer.calls) == 2 and pg.model == "fake"
    pg._on_message(pg, {"type": "select", "index": 0}, [])
    assert pg.result is pg.history[0] and pg.text == TEXT and pg.grid == "fast" and pg.current == 0
    assert pg.data["tokens"] == _split_tokens(TEXT) and "#1 from the history" in pg.status["note"]
    pg.run()  # the same text and settings: shown again, not traced again
    assert len(tracer.calls) == 2 and "not re-traced" in pg.status["note"] and len(pg.history) == 2
    pg.select(5)
    assert "no entry 5" in pg.error and pg.current == 0


def test_compare_two_entries_and_the_text_on_another_model():
    pg, tracer = fake_playground(text=TEXT)
    pg.compare(0, 1)
    assert "needs two different entries" in pg.error and pg.comparison == {}
    pg.run().wait(20)
    pg.text = CHANGED
    pg.run().wait(20)
    pg._on_message(pg, {"type": "compare", "a": 0, "b": 1}, [])
    assert pg.error == "" and pg.compare_pair == [0, 1]
    assert [r["label"] for r in pg.comparison["rows"]] == ["#1 fake", "#2 fake"] and pg.comparison["diff"]["runs"]
    assert "aligned where they agree" in pg.comparison["heading"]
    pg._on_message(pg, {"type": "compare_model", "model": "other"}, [])  # the text shown (#2) on the other model
    pg.wait(20)
    assert tracer.calls[-1][:2] == ("other", CHANGED) and pg.compare_pair == [1, 2] and pg.model == "other"
    assert [r["label"] for r in pg.comparison["rows"]] == ["#2 fake", "#3 other"]
    assert pg.comparison["heading"].startswith("The same text")
    pg.select(1)
    pg.compare_model("other")  # traced already: compared at once
    assert len(tracer.calls) == 3 and pg.compare_pair == [1, 2]
    pg._on_message(pg, {"type": "close_comparison"}, [])
    assert pg.comparison == {} and pg.compare_pair == []


def test_token_counts_follow_the_text_and_the_model():
    pg, _ = fake_playground(text=TEXT)
    until(lambda: pg.counts.get("text") == TEXT)
    assert pg.counts == {"model": "fake", "text": TEXT, "tokens": len(_split_tokens(TEXT))}
    pg.text = "two words"
    until(lambda: pg.counts.get("text") == "two words")
    assert pg.counts["tokens"] == 2
    pg.model = "no-such-model"
    until(lambda: pg.counts.get("model") == "no-such-model")
    assert pg.counts["tokens"] is None  # a model the playground does not offer is not counted


def test_settings_are_checked():
    pg, _ = fake_playground()
    with pytest.raises(Exception, match="grid must be one of fast, paper"):
        pg.grid = "medium"
    with pytest.raises(Exception, match="baselines must be among"):
        pg.baselines = ["random", "nope"]
    pg.baselines = ["inverse", "random"]
    assert pg.baselines == ["random", "inverse"]  # in the order the result's columns take


def test_the_snapshot_is_the_last_result_and_wait_redraws_it():
    """A notebook keeps the SVG the playground was displayed with; ``wait()`` redraws it with the last result
    (the display id's update), so a committed notebook shows what was traced, not an empty box."""
    pg, _ = fake_playground(text=TEXT)

    class Handle:
        def __init__(self) -> None:
            self.updates: list[dict] = []

        def update(self, data, metadata=None, raw=False):
            self.updates.append(data)

    handle = Handle()
    pg._displays.append(handle)
    before = pg._repr_mimebundle_()[0]["image/svg+xml"]
    assert "Text: “The·cat" in before and "steps" not in before
    pg.run()
    pg.wait(20)
    pg.text = CHANGED
    pg.run().wait(20)
    pg.compare()
    pg.wait(20)
    svg = handle.updates[-1]["image/svg+xml"]
    assert "application/vnd.jupyter.widget-view+json" in handle.updates[-1]
    assert "fake · 12 tokens · 11 steps" in svg and "#2 fake — “The·cat·sat·on·the·rug" in svg
    assert 'class="dnb-dtok"' in svg and "Δ = B − A, density" in svg


# ---- the difference of two results ------------------------------------------------------------------------------
words = st.lists(st.sampled_from(["the", "cat", "sat", "on", "a", "mat", "rug", "dog", "ran", ",", ".", "\n"]), min_size=1, max_size=14)


def split_randomly(text: str, cuts: list[int]) -> list[str]:
    """``text`` in pieces cut at ``cuts`` (another tokenizer's split of the same text)."""
    at = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(at) if b > a]


@settings(max_examples=150, deadline=None)
@given(words, words, st.lists(st.integers(0, 200), max_size=8), st.booleans())
def test_two_texts_are_aligned_where_they_agree(a_words, b_words, cuts, same):
    """Each text reads in order on the line, its tokens' characters together; a shared character is the same in
    both; a changed stretch holds one text's characters, then the other's; the same text aligns one to one."""
    a_text = " ".join(a_words)
    b_text = a_text if same else " ".join(b_words)
    a_tokens, b_tokens = _split_tokens(a_text), split_randomly(b_text, cuts)
    a_spans, b_spans = char_spans(a_tokens, a_text), char_spans(b_tokens, b_text)
    line, where_a, where_b, shared = align(a_text, a_spans, b_text, b_spans)
    for text, where in ((a_text, where_a), (b_text, where_b)):
        assert where == sorted(where) and len(set(where)) == len(text)
        assert "".join(line[c] for c in where) == text
    assert {*where_a, *where_b} == set(range(len(line)))
    assert [c in set(where_a) and c in set(where_b) for c in range(len(line))] == shared
    for spans, where in ((a_spans, where_a), (b_spans, where_b)):
        for s, e in spans:  # a token's characters stay together on the line
            assert [where[i] for i in range(s, e)] == list(range(where[s], where[s] + e - s)) if e > s else True
    if same:
        assert line == a_text and all(shared)


def test_difference_data_of_one_changed_word():
    """The rows read their own texts; the changed word has no difference; every other token's is its own numbers'."""
    before = result_of(TEXT)
    after = result_of(CHANGED)
    data = difference_data(before, after)
    line = "".join(data["chars"])
    assert line == "The cat sat on the mat rug and looked at the dog."
    a, b = data["rows"]
    assert [line[s:e] for s, e in zip(a["start"], a["end"])] == before.tokens
    assert [line[s:e] for s, e in zip(b["start"], b["end"])] == after.tokens
    runs = data["diff"]["runs"]
    changed = before.tokens.index(" mat")
    assert [(ia, ib) for _, _, ia, ib in runs] == [(i, i) for i in range(len(before.tokens)) if i != changed]
    da, db = token_density(before), token_density(after)
    rounded = lambda x: None if not np.isfinite(x) else float(f"{x:.4g}")  # what the data sends
    for _, _, ia, ib in runs:
        assert a["density"][ia] == rounded(da[ia]) and b["density"][ib] == rounded(db[ib])
    same = difference_data(before, result_of(TEXT, "other"))
    assert "".join(same["chars"]) == TEXT and same["heading"].startswith("The same text")
    assert [r["label"] for r in same["rows"]] == ["fake", "other"]
    view = difference(before, after, labels=["before", "after"])
    assert view.data["diff"] == data["diff"] and [r["label"] for r in view.data["rows"]] == ["before", "after"]
    table = difference_table(before, after)
    assert table.side.tolist() == ["before"] * changed + ["after"] * (len(before.tokens) - changed - 1)
    assert table.token_b.tolist() == [t for t in after.tokens if t != " rug"] and table.position_b.tolist() == [i for _, _, _, i in runs]
    np.testing.assert_array_equal(table.delta.to_numpy(), db[table.position_b] - da[table.position_a])
    with pytest.raises(CompareError, match=r"views\.difference"):
        compare([before, after])


def test_the_difference_scale():
    """Differences are second minus first (decades for a log measure); the diverging scale is symmetric around no
    change, fitted to the differences shown or the measure's whole range, and white-ish where nothing changed."""
    values = [0.0, 0.01, -0.02, 0.2, None]
    half = difference_range(values, "density")
    assert 0.02 < half <= 0.2 and difference_range(values, "density", "fixed") == 1.0
    assert difference_range([0.0, 0.0], "density") == 1.0  # nothing moved: the whole range, all at its middle
    assert difference_range([1.0], "s_top1", "fixed") == 5.0  # 1e-5 … 1: five decades
    assert difference_position(0.0, half) == 0.5 and difference_position(-9, half) == 0.0 and difference_position(9, half) == 1.0
    middle, low, high = (map_colours("difference", t)[0] for t in (0.5, 0.0, 1.0))
    assert middle == "rgb(247, 247, 247)" and low != high


# ---- tracing for real (tiny-llama; SmolLM2 where the model matters) -------------------------------------------------
@pytest.mark.parametrize("settings", [{}, {"grid": "paper", "baselines": ["random", "inverse"]}])
def test_run_equals_trace_bitwise(tiny_llama, settings):
    from density_nb import playground, trace

    pg = playground(tiny_llama, text=TEXT, **settings)
    result = pg.run().wait(120)
    assert pg.error == "" and pg.status["state"] == "done"
    assert result.equals(trace(tiny_llama, TEXT, progress=False, **settings))
    assert pg.history == [result]


def test_run_by_name_equals_trace_bitwise_and_counts_without_the_weights(monkeypatch):
    from density_nb import models, playground, trace

    monkeypatch.setattr(models, "_named", models.collections.OrderedDict())
    pg = playground(["tiny-llama", "tiny-gemma3"], text=TEXT)
    until(lambda: pg.counts.get("text") == TEXT)
    assert pg.counts["tokens"] == len(models.hf_tokenizer(models.load_model("tiny-llama"))(TEXT)["input_ids"])
    assert not models._named, "counting loaded a model"
    assert pg.run().wait(120).equals(trace("tiny-llama", TEXT, progress=False))
    pg.compare_model("tiny-gemma3")
    pg.wait(120)
    assert pg.history[1].equals(trace("tiny-gemma3", TEXT, progress=False)) and pg.compare_pair == [0, 1]
    assert pg.comparison["heading"].startswith("The same text")


@pytest.mark.real
def test_run_equals_trace_bitwise_smollm2(smollm2):
    from density_nb import playground, trace

    pg = playground(smollm2, text=CHANGED)
    assert pg.run().wait(600).equals(trace(smollm2, CHANGED, progress=False))


def test_cancel_keeps_a_valid_prefix(monkeypatch):
    """Cancelled mid-trace, the result holds the first roots, each bitwise as ``trace`` computes it (the
    playground traces on trace's own passes), and the view shows exactly those."""
    from density_nb import playground, trace
    from density_nb.method.arch import Arch
    from density_nb.models import load_model, tiny_model

    hf, tok = tiny_model("llama", num_hidden_layers=6)
    model = load_model(hf, tokenizer=tok)
    full = trace(model, TEXT, max_rows=100, progress=False)
    mlp = Arch.mlp
    monkeypatch.setattr(Arch, "mlp", lambda self, layer, h: (time.sleep(0.01), mlp(self, layer, h))[1])
    pg = playground(model, text=TEXT, max_rows=100)
    pg.run()
    until(lambda: pg.status.get("done", 0) >= 2, 120)
    pg.cancel()
    kept = pg.wait(120)
    n = len(kept.roots)
    assert pg.status["state"] == "cancelled" and 2 <= n < len(full.roots), n
    assert kept.equals(full.take(range(n))), "the roots kept are not trace's"
    assert pg.data["roots"] == list(range(n)) and pg.entries[0]["state"] == "cancelled"


def test_playground_arguments():
    from density_nb import BUILTIN_MODELS, DEFAULT_MODEL, playground

    pg = playground()  # the built-in names, loaded on first use
    assert pg.options["models"] == list(BUILTIN_MODELS) and pg.model == DEFAULT_MODEL
    assert [g["kind"] for g in pg.options["examples"]] == ["context", "certainty", "rarity"]
    assert sum(len(p["items"]) for g in pg.options["examples"] for p in g["pairs"]) == 18
    assert pg.options["max_tokens"] == 256 and playground("tiny-llama", max_tokens=32).options["max_tokens"] == 32
    with pytest.raises(TraceInputError, match="'fast' or 'paper'"):
        playground("tiny-llama", grid=[0.1, 0.5])
    assert playground("tiny-llama", baselines=["inverse"]).baselines == ["inverse"]
