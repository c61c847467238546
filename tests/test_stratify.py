"""Strata: nested, connected to the root, exact size; edge count formula (property tests)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from density_nb.config import FAST_GRID, PAPER_GRID, make_grid
from density_nb.method.importance import random_weights
from density_nb.method.stratify import edge_count, edge_order, expand, stratum_sizes


def _count_reachable(n_layers: int, n_heads: int, root: int) -> int:
    """Count edges that can reach the output node (2L, root) by walking the graph plainly."""
    seen, stack, edges = {(2 * n_layers, root)}, [(2 * n_layers, root)], 0
    while stack:
        g, t = stack.pop()
        if g == 0:
            continue
        l = (g - 1) // 2
        sources = [(2 * l, s) for s in range(t + 1) for _ in range(n_heads)] + [(2 * l, t)] if g % 2 else [(g - 1, t)] * 2
        edges += len(sources)
        for node in set(sources):
            if node not in seen:
                seen.add(node)
                stack.append(node)
    return edges


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 9))
def test_edge_count_formula_matches_graph(n_layers, n_heads, n_pos):
    assert edge_count(n_layers, n_heads, n_pos) == _count_reachable(n_layers, n_heads, n_pos - 1)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 8), st.integers(0, 10_000), st.booleans())
def test_strata_nested_connected_exact(n_layers, n_heads, n_pos, seed, ties):
    w = random_weights(n_layers, n_heads, n_pos, seed)
    if ties:  # heavy ties: weights quantised to a few levels
        for arr in (w.attn, w.res_attn, w.mlp, w.res_mlp):
            arr[...] = np.round(arr * 2) / 2
    ranks = expand(w, n_pos - 1)
    total = edge_count(n_layers, n_heads, n_pos)
    order = edge_order(ranks)
    assert len(order) == total == ranks.total_edges, "the full expansion takes every edge once"
    assert len(set(order)) == total
    # connected: every edge's target is the root or the source of an earlier edge
    reached = {(2 * n_layers, n_pos - 1)}
    for kind, l, t, _h, s in order:
        target = (2 * l + 1, t) if kind in (0, 1) else (2 * l + 2, t)
        assert target in reached
        reached.add((2 * l, s) if kind == 0 else (2 * l, t) if kind == 1 else (2 * l + 1, t))
    # exact sizes, nested by construction of ranks
    grid = make_grid([1e-3, 0.05, 0.3, 0.7])
    sizes = stratum_sizes(grid, total)
    assert sizes.tolist() == [int(np.floor(s * total)) for s in grid]
    for n in sizes:
        kept = sum(int(((r >= 0) & (r < n)).sum()) for r in (ranks.attn, ranks.res_attn, ranks.mlp, ranks.res_mlp))
        assert kept == n


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 7), st.integers(0, 10_000))
def test_order_is_best_first_with_key_ties(n_layers, n_heads, n_pos, seed):
    """Compare with a plain heapq expansion under the same (weight, key) order."""
    import heapq

    w = random_weights(n_layers, n_heads, n_pos, seed)
    for arr in (w.attn, w.res_attn, w.mlp, w.res_mlp):
        arr[...] = np.round(arr * 3) / 3  # many ties

    def in_edges(g, t):
        if g == 0:
            return []
        l = (g - 1) // 2
        if g % 2:
            out = [(float(w.attn[l, h, t, s]), (0, l, t, h, s), (2 * l, s)) for h in range(n_heads) for s in range(t + 1)]
            return [*out, (float(w.res_attn[l, t]), (1, l, t, 0, t), (2 * l, t))]
        return [(float(w.mlp[l, t]), (2, l, t, 0, t), (g - 1, t)), (float(w.res_mlp[l, t]), (3, l, t, 0, t), (g - 1, t))]

    heap = [(-wt, key, src) for wt, key, src in in_edges(2 * n_layers, n_pos - 1)]
    heapq.heapify(heap)
    reached, order = {(2 * n_layers, n_pos - 1)}, []
    while heap:
        _, key, src = heapq.heappop(heap)
        order.append(key)
        if src not in reached:
            reached.add(src)
            for item in in_edges(*src):
                heapq.heappush(heap, (-item[0], item[1], item[2]))
    assert edge_order(expand(w, n_pos - 1)) == order


def test_named_grids():
    assert len(make_grid("paper")) == 27 and make_grid("paper")[-1] == 1.0
    assert list(make_grid("paper")[:-1]) == list(PAPER_GRID[:-1])
    fast = make_grid("fast")
    assert 8 <= len(fast) - 1 <= 9 and fast[-1] == 1.0 and fast[0] == 1e-5
    assert np.allclose(np.diff(np.log10(fast[:-1])), 4.5 / 7, atol=0.02), "log-spaced"
    assert list(fast) == list(FAST_GRID)
    assert make_grid([0.5, 0.01]).tolist() == [0.01, 0.5, 1.0]


@pytest.mark.parametrize("bad", [[0.0], [-0.1], [1.5], [], "medium"])
def test_bad_grids_explain(bad):
    with pytest.raises(ValueError, match=r"\(0, 1\]|grid"):
        make_grid(bad)
