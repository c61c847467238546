"""The inverse's random-removal control (method/controls.py): a random set of the same composition,
drawn from the root's graph, and its masked pass equal to the float64 oracle's on the same set."""

from __future__ import annotations

import numpy as np
import pytest

from density_nb.method import reference
from density_nb.method.arch import Arch
from density_nb.method.controls import KINDS, kind_counts, random_removal, removal_control, removal_logits
from density_nb.method.importance import edge_weights
from density_nb.method.stratify import edge_order, expand
from helpers import TEXT, token_ids


def _chosen(ranks, m: int) -> set[tuple[int, int, int, int, int]]:
    """The edge keys (kind, layer, target, head, source) of ranks < m."""
    keys = set()
    for layer, h, t, s in zip(*np.nonzero((ranks.attn >= 0) & (ranks.attn < m))):
        keys.add((reference.ATTN, int(layer), int(t), int(h), int(s)))
    for layer, t in zip(*np.nonzero((ranks.mlp >= 0) & (ranks.mlp < m))):
        keys.add((reference.MLP, int(layer), int(t), 0, int(t)))
    return keys


@pytest.mark.parametrize("match", ["kind", "position"])
@pytest.mark.parametrize("fraction", [0.002, 0.05, 0.3])
def test_random_removal_has_the_stratum_composition_and_matches_the_oracle(tiny_llama, match, fraction):
    ids = token_ids(tiny_llama)
    arch = Arch.of(tiny_llama.original_model)
    L, H, root = arch.n_layers, arch.n_heads, len(ids) - 1
    ranks = expand(edge_weights(tiny_llama, ids), root)
    n = max(int(fraction * ranks.total_edges), 1)
    rand, m = random_removal(ranks, n, np.random.default_rng(1), match)
    stratum = set(edge_order(ranks)[:n])
    chosen = _chosen(rand, m)
    graph = reference.graph_keys(L, H, root)
    assert len(chosen) == m and chosen <= graph, "distinct edges of the root's graph"
    assert kind_counts(rand, m)[:2].tolist() == kind_counts(ranks, n)[:2].tolist() and kind_counts(rand, m)[2] == 0
    assert sum(1 for k in stratum if k[0] in (reference.ATTN, reference.MLP)) == m
    if match == "position":  # the same count of each kind at each target position
        for kind in (reference.ATTN, reference.MLP):
            assert sorted(k[2] for k in chosen if k[0] == kind) == sorted(k[2] for k in stratum if k[0] == kind)
    logits = removal_logits(arch, ids, [ranks, rand], [n, m])  # [2, V]
    tokens = ids.tolist()
    residual = reference.residual_keys(L, H, root)
    oracle = [reference.masked_logits(tiny_llama, tokens, root, reference.inverse_kept(edge_order(ranks), n, L, H, root)).float(),
              reference.masked_logits(tiny_llama, tokens, root, (graph - chosen) | residual).float()]  # fmt: skip
    for got, want in zip(logits, oracle):
        assert 0.5 * (got.softmax(-1) - want.softmax(-1)).abs().sum().item() <= 1e-5


def test_removal_control_table(tiny_llama):
    ids = token_ids(tiny_llama)
    root = len(ids) - 1
    table = removal_control(tiny_llama, [TEXT], [root], sizes=(0.01, 0.1), draws=3, seed=0)
    assert set(table.removal) == {"inverse", "random, same kind", "random, same position"}
    assert len(table) == 2 * (1 + 2 * 3)
    for _, g in table.groupby("s"):
        inv = g[g.removal == "inverse"].iloc[0]
        assert inv[list(KINDS)].sum() == inv.n_edges and (g.removed == inv.attention + inv.MLP).all()
        assert g.tv.between(0, 1).all()
    # the same seed gives the same draws
    again = removal_control(tiny_llama, [TEXT], [root], sizes=(0.01, 0.1), draws=3, seed=0)
    assert np.allclose(table.tv, again.tv)
