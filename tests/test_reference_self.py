"""Self-tests of density_nb/reference.py, the slow oracle: it must agree with Hugging Face and with
the method's own invariants before anything else is compared against it."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import torch

from density_nb.method import reference as R
from density_nb.models import hf_tokenizer, load_model, tiny_model

FAMILIES = (
    "llama",
    "gemma3_text",
    "mistral",
    "qwen2",
    "qwen3",
    "llama3",
    "phi3",
    "olmo2",
    "gemma2",
    "gpt2",
    "gpt_neox",
)  # tiny_model types ("llama": tiny-llama's weights)
# Long enough (> 8 tokens, the tiny Gemma sliding window) for the window to matter.
TEXT = "A small lamp on the desk lit the map of the harbour."


def _load(model_type: str):
    model, tok = tiny_model(model_type)
    return load_model(model, tokenizer=tok)


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request):
    bridge = _load(request.param)
    ids = hf_tokenizer(bridge)(TEXT)["input_ids"][:24]
    assert len(ids) > 12
    return bridge, ids


def _hf(bridge, ids):
    with torch.no_grad():
        return bridge.original_model(torch.tensor([ids]), output_hidden_states=True)


def _dims(bridge):
    """Layers, heads, and whether blocks are parallel (one node per layer: no slots 2l+1)."""
    cfg = bridge.original_model.config
    return cfg.num_hidden_layers, cfg.num_attention_heads, bool(getattr(cfg, "use_parallel_residual", False))


def _slots(L: int, par: bool) -> range:
    """The non-embedding node slots g of the graph."""
    return range(2, 2 * L + 1, 2) if par else range(1, 2 * L + 1)


# ---------------------------------------------------------------------------- unmasked forward


def test_unmasked_forward_matches_hf(tiny):
    bridge, ids = tiny
    out = _hf(bridge, ids)
    C = R.forward(bridge, ids)
    assert (C["logits"] - out.logits[0].double()).abs().max() < 1e-4
    L, _, _ = _dims(bridge)
    for l in range(L):  # residual stream before every layer
        assert (C["x"][l] - out.hidden_states[l][0].double()).abs().max() < 1e-4
    assert (C["normed_final"] - out.hidden_states[L][0].double()).abs().max() < 1e-4


def test_sliding_window_is_active():
    bridge = load_model("tiny-gemma3")
    cfg = bridge.original_model.config
    assert "sliding_attention" in cfg.layer_types and cfg.sliding_window == 8
    ids = hf_tokenizer(bridge)(TEXT)["input_ids"][:20]
    C = R.forward(bridge, ids)
    for l, kind in enumerate(cfg.layer_types):
        A = C["A"][l]  # [H, T, T]
        far = A[:, 15, : 15 - 8 + 1]  # sources with t - s >= window
        if kind == "sliding_attention":
            assert far.abs().max() == 0
        else:
            assert far.abs().max() > 0


def test_mistral_window_covers_every_layer():
    bridge = _load("mistral")
    assert bridge.original_model.config.sliding_window == 4
    ids = hf_tokenizer(bridge)(TEXT)["input_ids"][:12]
    C = R.forward(bridge, ids)
    for A in C["A"]:  # [H, T, T]
        assert A[:, 11, :8].abs().max() == 0 and A[:, 11, 8:].min() > 0


@pytest.mark.real
def test_smollm2_matches_hf():
    bridge = load_model("smollm2-135m")
    ids = hf_tokenizer(bridge)("The capital of France is Paris, and the capital of Italy is")["input_ids"]
    out = _hf(bridge, ids)
    lg = R.unmasked_logits(bridge, ids)  # [T, V]
    assert (lg - out.logits[0].double()).abs().max() < 1e-4
    full = R.masked_logits(bridge, ids, len(ids) - 1, None)
    assert (full - out.logits[0, -1].double()).abs().max() < 1e-4


# ---------------------------------------------------------------------------- graph and vectors


@pytest.mark.parametrize("L,H,T", [(1, 1, 1), (1, 2, 3), (2, 3, 4), (3, 2, 6), (4, 4, 5)])
def test_edge_count_formula(L, H, T):
    """Independent count: reverse search from the output over explicitly listed in-edges."""

    def in_edges(g, t):
        if g == 0:
            return []
        if g % 2:
            l = (g - 1) // 2
            return [(2 * l, s) for _h in range(H) for s in range(t + 1)] + [(2 * l, t)]
        return [(g - 1, t), (g - 1, t)]

    seen, stack, count = {(2 * L, T - 1)}, [(2 * L, T - 1)], 0
    while stack:
        node = stack.pop()
        for src in in_edges(*node):
            count += 1
            if src not in seen:
                seen.add(src)
                stack.append(src)
    assert count == R.edge_count(L, H, T)
    weights = {k: 1.0 for g in range(1, 2 * L + 1) for t in range(T) for k, _ in R._in_edges(g, t, H)}
    G = R.build_graph(weights, L, H, T - 1)
    assert G.number_of_edges() == count
    assert G.number_of_nodes() == T + 2 * L * T - 2 * (T - 1)


@pytest.mark.parametrize("L,H,T", [(1, 1, 1), (1, 2, 3), (2, 3, 4), (3, 2, 6)])
def test_edge_count_formula_parallel(L, H, T):
    """Parallel blocks: one node per layer with H(t+1) attention, a residual and an MLP in-edge."""

    def in_edges(g, t):
        return [] if g == 0 else [(g - 2, s) for _h in range(H) for s in range(t + 1)] + [(g - 2, t), (g - 2, t)]

    seen, stack, count = {(2 * L, T - 1)}, [(2 * L, T - 1)], 0
    while stack:
        for src in in_edges(*stack.pop()):
            count += 1
            if src not in seen:
                seen.add(src)
                stack.append(src)
    assert count == R.edge_count(L, H, T, parallel=True)
    G = R.build_graph(R._AnyWeight(), L, H, T - 1, parallel=True)
    assert G.number_of_edges() == count and G.number_of_nodes() == T + L * T - (T - 1)


def test_decomposition_sums_back(tiny):
    bridge, ids = tiny
    out = _hf(bridge, ids)
    L, H, par = _dims(bridge)
    T = len(ids)
    C = R.forward(bridge, ids)
    ev = R.edge_vectors(bridge, ids)
    beta = R._Params(bridge).final_norm_b
    assert set(ev) == {(g, t) for g in _slots(L, par) for t in range(T)}
    for (g, t), (keys, vecs, state) in ev.items():
        assert keys == [k for k, _ in R._in_edges(g, t, H, par)]
        assert vecs.shape == (len(keys), C["x"][0].shape[1])
        assert (vecs.sum(0) - state).abs().max() < 1e-4, (g, t)
        # the node state is the real residual state
        if g % 2 == 1:
            real = C["h"][(g - 1) // 2][t]
        elif g < 2 * L:
            real = out.hidden_states[g // 2][0, t].double()
        else:  # the final-normed state, less the final norm's bias (on no edge)
            real = out.hidden_states[L][0, t].double() - (0.0 if beta is None else beta)
        assert (vecs.sum(0) - real).abs().max() < 1e-4, (g, t)


@pytest.mark.parametrize("weighting", ["l1", "ifr"])
def test_weights_normalised_per_node(tiny, weighting):
    bridge, ids = tiny
    L, H, par = _dims(bridge)
    w = R.edge_weights(bridge, ids, weighting)
    assert len(w) == sum(len(R._in_edges(g, t, H, par)) for g in _slots(L, par) for t in range(len(ids)))
    for g in _slots(L, par):
        for t in range(len(ids)):
            vals = [w[k] for k, _ in R._in_edges(g, t, H, par)]
            assert min(vals) >= 0
            assert math.isclose(sum(vals), 1.0, abs_tol=1e-9)


# ---------------------------------------------------------------------------- stratification


def _naive_order(G, out):
    """O(n^2) best-first expansion with an explicit frontier list (no heap)."""
    frontier = [(k, s, w) for s, _d, k, w in G.in_edges(out, keys=True, data="weight")]
    reached, order = {out}, []
    while frontier:
        best = min(frontier, key=lambda e: (-float(np.float32(e[2])), e[0]))
        frontier.remove(best)
        order.append(best[0])
        if best[1] not in reached:
            reached.add(best[1])
            frontier += [(k, s, w) for s, _d, k, w in G.in_edges(best[1], keys=True, data="weight")]
    return order


def test_strata_nested_exact_connected(tiny):
    bridge, ids = tiny
    L, H, par = _dims(bridge)
    weights = R.edge_weights(bridge, ids, "l1")
    root = 6
    sizes = [0.001, 0.01, 0.05, 0.1, 0.3, 0.5, 1.0]
    order, n_edges = R.stratify_weights(weights, L, H, root, sizes, par)
    total = R.edge_count(L, H, root + 1, par)
    assert n_edges == [math.floor(s * total) for s in sizes]
    assert n_edges[0] == 0 and n_edges[-1] == total  # an empty stratum and the full graph
    assert len(order) == total and len(set(order)) == total
    G = R.build_graph(weights, L, H, root, par)
    assert set(order) == {k for _s, _d, k in G.edges(keys=True)}
    out = (2 * L, root)
    assert order == _naive_order(G, out)
    # weights restricted to the prefix graph's own edges give the same order; missing ones are an error
    own = {k: weights[k] for k in order}
    assert R.stratify_weights(own, L, H, root, sizes, par) == (order, n_edges)
    with pytest.raises(KeyError):
        R.stratify_weights({k: own[k] for k in order[1:]}, L, H, root, sizes, par)
    # connected to the root: every edge's target is the output or the source of an earlier edge
    src_of = {k: s for s, _d, k in G.edges(keys=True)}
    dst_of = {k: d for _s, d, k in G.edges(keys=True)}
    reached = {out}
    for k in order:
        assert dst_of[k] in reached
        reached.add(src_of[k])
    prev = set()
    for n in n_edges:
        stratum = set(order[:n])
        assert len(stratum) == n and prev <= stratum
        prev = stratum
        sub = nx.MultiDiGraph()
        sub.add_edges_from((src_of[k], dst_of[k], k) for k in stratum)
        for k in stratum:
            assert dst_of[k] == out or nx.has_path(sub, dst_of[k], out)


# ---------------------------------------------------------------------------- masked evaluation


def test_masked_full_graph_reproduces_hf(tiny):
    bridge, ids = tiny
    L, H, par = _dims(bridge)
    out = _hf(bridge, ids)
    root = len(ids) - 2
    weights = R.edge_weights(bridge, ids)
    full_set = {k for _s, _d, k in R.build_graph(weights, L, H, root, par).edges(keys=True)}
    ref = out.logits[0, root].double()
    for norms in ("live", "frozen"):
        assert (R.masked_logits(bridge, ids, root, None, norms) - ref).abs().max() < 1e-4
        assert (R.masked_logits(bridge, ids, root, full_set, norms) - ref).abs().max() < 1e-4
    # attention edges outside the sliding window carry weight 0 and removing them changes nothing
    outside = {k for k in full_set if k[0] == 0 and weights[k] == 0.0}
    if bridge.original_model.config.model_type == "gemma3_text":
        assert outside
    lg = R.masked_logits(bridge, ids, root, full_set - outside)
    assert (lg - R.masked_logits(bridge, ids, root, full_set)).abs().max() < 1e-12


def test_removing_heaviest_last_layer_attention_edge_changes_logits(tiny):
    bridge, ids = tiny
    L, H, par = _dims(bridge)
    root = len(ids) - 1
    weights = R.edge_weights(bridge, ids)
    full_set = {k for _s, _d, k in R.build_graph(weights, L, H, root, par).edges(keys=True)}
    into_root = [k for k in full_set if k[0] == 0 and k[1] == L - 1 and k[2] == root]
    heaviest = max(into_root, key=lambda k: (weights[k], [-x for x in k]))
    full = R.masked_logits(bridge, ids, root, full_set)
    less = R.masked_logits(bridge, ids, root, full_set - {heaviest})
    assert (full - less).abs().max() > 1e-4


def test_frozen_differs_from_live_on_post_norm_models_only():
    for name in FAMILIES:
        bridge = _load(name)
        ids = hf_tokenizer(bridge)(TEXT)["input_ids"][:12]
        L, H, par = _dims(bridge)
        weights = R.edge_weights(bridge, ids)
        order, (n,) = R.stratify_weights(weights, L, H, len(ids) - 1, [0.2], par)
        kept = set(order[:n])
        live = R.masked_logits(bridge, ids, len(ids) - 1, kept, "live")
        frozen = R.masked_logits(bridge, ids, len(ids) - 1, kept, "frozen")
        diff = (live - frozen).abs().max()
        if name in ("gemma3_text", "olmo2", "gemma2"):
            assert diff > 1e-4
        else:
            assert diff == 0


def test_trace_root_shapes_and_full_graph(tiny):
    bridge, ids = tiny
    L, H, par = _dims(bridge)
    root = len(ids) - 1
    sizes = [1e-3, 0.01, 0.1, 0.5, 1.0]
    res = R.trace_root(bridge, ids, root, sizes)
    total = R.edge_count(L, H, root + 1, par)
    assert res["total_edges"] == total
    assert res["n_edges"] == [math.floor(s * total) for s in sizes]
    assert len(res["order"]) == total
    V = bridge.original_model.config.vocab_size
    assert res["logits"].shape == (len(sizes), V)
    assert len(res["tv"]) == len(res["kl"]) == len(res["top1"]) == len(sizes)
    assert res["tv"][-1] < 1e-5 and abs(res["kl"][-1]) < 1e-5 and res["top1"][-1]
    assert all(0 <= tv <= 1 for tv in res["tv"])
    out = _hf(bridge, ids)
    assert (res["logits"][-1] - out.logits[0, root]).abs().max() < 1e-4
    with pytest.raises(ValueError):
        R.trace_root(bridge, ids, root, [0.5, 0.1])
