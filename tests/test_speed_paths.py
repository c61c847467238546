"""The fast paths of issue 13 against the plain ones: one shared in-edge sort vs a sort per root,
rows laid out root by root vs any layout, two passes at a time vs one, a cancelled live trace (what
was shown stays, the passes in flight stop within a layer)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from density_nb.method import reference
from density_nb.method.ablation import RankBatch, masked_logits
from density_nb.method.arch import Arch
from density_nb.method.importance import edge_weights, random_weights
from density_nb.method.stratify import expand, sort_in_edges
from density_nb.tracing import trace, trace_steps
from helpers import TEXT, token_ids
from test_vs_reference import kept_set


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 9), st.integers(0, 10_000), st.booleans(), st.booleans())
def test_one_sort_serves_every_root(n_layers, n_heads, n_pos, seed, ties, parallel):
    w = random_weights(n_layers, n_heads, n_pos, seed, parallel=parallel)
    if ties:
        for arr in (w.attn, w.res_attn, w.mlp, w.res_mlp):
            arr[...] = np.round(arr * 2) / 2
    shared = sort_in_edges(w)
    for root in range(n_pos):
        alone, together = expand(w, root), expand(w, root, in_edges=shared)
        for a, b in zip(
            (alone.attn, alone.res_attn, alone.mlp, alone.res_mlp), (together.attn, together.res_attn, together.mlp, together.res_mlp)
        ):
            assert np.array_equal(a, b)


def test_any_row_layout_equals_the_grouped_one_and_the_reference(tiny):
    """Rows root by root (each root's ranks compared once) and the same rows shuffled, with
    inverted and residual-keeping rows mixed in, give the same logits; a few rows match reference.py."""
    ids = token_ids(tiny)
    arch = Arch.of(tiny.original_model)
    w = edge_weights(tiny, ids)
    roots = [1, 4, len(ids) - 1]
    ranks = [expand(w, r) for r in roots]
    batch = RankBatch.stack(ranks, len(ids))
    fractions = (0.0, 0.002, 0.03, 0.3, 0.9)
    rows = torch.arange(len(roots)).repeat_interleave(len(fractions))
    sizes = torch.tensor([int(f * r.total_edges) for r in ranks for f in fractions])
    invert = torch.arange(len(rows)) % 3 == 2
    keep_residual = invert | (torch.arange(len(rows)) % 3 == 1)
    grouped = masked_logits(arch, ids, batch, rows, sizes, invert=invert, keep_residual=keep_residual)
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    shuffled = masked_logits(arch, ids, batch, rows[order], sizes[order], invert=invert[order], keep_residual=keep_residual[order])
    assert torch.equal(grouped[order], shuffled)
    plain = masked_logits(arch, ids, batch, rows, sizes)
    for j in (0, 3, 8, 13):
        root = roots[int(rows[j])]
        ref = reference.masked_logits(
            tiny, ids[: root + 1].tolist(), root, kept_set(RankBatch.stack([ranks[int(rows[j])]], root + 1), int(sizes[j]))
        ).float()
        assert (plain[j] - ref).abs().max() <= 1e-4


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="needs two torch threads")
def test_two_passes_at_a_time_equal_one_at_a_time(tiny_llama):
    threads = torch.get_num_threads()
    together = trace(tiny_llama, TEXT, grid="fast", max_rows=300, baselines=["random", "inverse"], progress=False)
    assert torch.get_num_threads() == threads, "the torch threads are given back"
    torch.set_num_threads(1)
    try:
        alone = trace(tiny_llama, TEXT, grid="fast", max_rows=300, baselines=["random", "inverse"], progress=False)
    finally:
        torch.set_num_threads(threads)
    for name in ("tv", "kl", "top_token", "n_edges", "head_share", "tv_random", "tv_inverse"):
        assert np.array_equal(getattr(together, name), getattr(alone, name)), name


def test_a_cancelled_live_trace_keeps_what_was_shown(tiny_llama):
    threads = torch.get_num_threads()
    steps = trace_steps(tiny_llama, TEXT, grid="fast", max_rows=200)
    shown = [next(steps) for _ in range(3)]
    steps.close()
    assert torch.get_num_threads() == threads
    assert len(shown[0].roots) == 1 and len(shown[2].roots) > len(shown[1].roots) > 1
    full = trace(tiny_llama, TEXT, grid="fast", max_rows=200, progress=False)
    n = len(shown[2].roots)
    assert np.array_equal(shown[2].roots, full.roots[:n])
    np.testing.assert_allclose(shown[2].tv, full.tv[:n], atol=1e-6)  # its own first pass holds one root: batching rounds differently


@pytest.fixture(scope="module")
def deep_llama():
    """A tiny Llama with 12 layers: a pass stopped between layers is told from one run to its end."""
    from density_nb.models import load_model, tiny_model

    model, tok = tiny_model("llama", num_hidden_layers=12)
    return load_model(model, tokenizer=tok)


def counted_layers(monkeypatch):
    """Count the MLPs the masked passes run (one per layer), each made slow enough that passes are in
    flight when the test stops them."""
    calls = [0]
    mlp = Arch.mlp

    def slow_mlp(self, layer, h):
        calls[0] += 1
        time.sleep(0.002)
        return mlp(self, layer, h)

    monkeypatch.setattr(Arch, "mlp", slow_mlp)
    return calls


def test_closing_a_live_trace_stops_its_passes_within_a_layer(deep_llama, monkeypatch):
    threads = torch.get_num_threads()
    steps = trace_steps(deep_llama, TEXT, grid="fast", max_rows=100)
    shown = [next(steps) for _ in range(2)]
    calls = counted_layers(monkeypatch)
    steps.close()  # at most the layer each running pass is in finishes
    assert calls[0] <= 2, f"{calls[0]} layers ran after the close"
    assert torch.get_num_threads() == threads
    assert len(shown[1].roots) > len(shown[0].roots) == 1


def test_a_stop_event_ends_a_live_trace_from_another_thread(deep_llama, monkeypatch):
    full = trace(deep_llama, TEXT, grid="fast", max_rows=100, progress=False)
    stop = threading.Event()
    counted_layers(monkeypatch)
    shown = []
    for partial in trace_steps(deep_llama, TEXT, grid="fast", max_rows=100, stop=stop):
        shown.append(partial)
        if len(shown) == 2:
            threading.Timer(0.01, stop.set).start()  # set while the consumer waits for the next result
    kept = shown[-1]
    assert len(shown) >= 2 and np.array_equal(kept.roots, full.roots[: len(kept.roots)])
    np.testing.assert_allclose(kept.tv, full.tv[: len(kept.roots)], atol=1e-6)
    assert not list(trace_steps(deep_llama, TEXT, grid="fast", stop=stop)), "a stop set before the first pass yields nothing"


def test_cancelling_trace_live_keeps_a_prefix(deep_llama, monkeypatch):
    from density_nb.generation import trace_live

    full = trace(deep_llama, TEXT, grid="fast", max_rows=100, progress=False)
    counted_layers(monkeypatch)
    view = trace_live(deep_llama, TEXT, grid="fast", max_rows=100)
    view.cancel()
    result = view.wait()
    assert view.status["state"] == "cancelled"
    if result is not None:  # the first pass may have finished before the cancel
        assert np.array_equal(result.roots, full.roots[: len(result.roots)])
