"""Masked passes: the full graph reproduces the model; masks act; batching changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from density_nb.method.ablation import RankBatch, full_ranks, masked_logits
from density_nb.method.arch import Arch
from density_nb.method.importance import edge_weights
from density_nb.method.stratify import expand
from helpers import token_ids


def _tv(a: torch.Tensor, b: torch.Tensor) -> float:
    return 0.5 * (a.softmax(-1) - b.softmax(-1)).abs().sum().item()


@pytest.mark.parametrize("root", [0, 3, -1])
def test_full_graph_reproduces_logits(tiny, root):
    ids = token_ids(tiny)
    arch = Arch.of(tiny.original_model)
    root = root % len(ids)
    with torch.no_grad():
        hf = tiny.original_model(ids[None]).logits[0, root]
    out = masked_logits(arch, ids, full_ranks(arch.n_layers, arch.n_heads, root + 1), torch.tensor([0]), torch.tensor([1]))
    assert _tv(out[0], hf) <= 1e-6


def test_frozen_norms_equal_live_on_the_full_graph(tiny_gemma3):
    ids = token_ids(tiny_gemma3)
    arch = Arch.of(tiny_gemma3.original_model)
    w = edge_weights(tiny_gemma3, ids)
    ranks = full_ranks(arch.n_layers, arch.n_heads, len(ids))
    live = masked_logits(arch, ids, ranks, torch.tensor([0]), torch.tensor([1]))
    frozen = masked_logits(arch, ids, ranks, torch.tensor([0]), torch.tensor([1]), w.attn_inv_rms, w.mlp_inv_rms)
    assert (live - frozen).abs().max() <= 1e-4


def test_frozen_norms_differ_on_small_strata(tiny_gemma3):
    ids = token_ids(tiny_gemma3)
    arch = Arch.of(tiny_gemma3.original_model)
    w = edge_weights(tiny_gemma3, ids)
    ranks = expand(w, len(ids) - 1)
    batch = RankBatch.stack([ranks], len(ids))
    n = torch.tensor([ranks.total_edges // 20])
    live = masked_logits(arch, ids, batch, torch.tensor([0]), n)
    frozen = masked_logits(arch, ids, batch, torch.tensor([0]), n, w.attn_inv_rms, w.mlp_inv_rms)
    assert (live - frozen).abs().max() > 1e-3


def test_removing_one_heavy_attention_edge_changes_output(tiny):
    """The published code's attention masks did nothing; ours must act edge by edge."""
    ids = token_ids(tiny)
    arch = Arch.of(tiny.original_model)
    n_pos = len(ids)
    ranks = full_ranks(arch.n_layers, arch.n_heads, n_pos)
    w = edge_weights(tiny, ids)
    last = arch.n_layers - 1
    h, s = np.unravel_index(np.argmax(w.attn[last, :, n_pos - 1, :]), w.attn[last, :, n_pos - 1, :].shape)
    cut = RankBatch(ranks.attn.clone(), ranks.res_attn, ranks.mlp, ranks.res_mlp, ranks.roots)
    cut.attn[0, last, h, n_pos - 1, s] = -1
    full = masked_logits(arch, ids, ranks, torch.tensor([0]), torch.tensor([1]))
    without = masked_logits(arch, ids, cut, torch.tensor([0]), torch.tensor([1]))
    assert (full - without).abs().max() > 1e-3
    # and it is exactly that edge's contribution that is gone: the change equals removing c_{h,s->t}
    assert _tv(full[0], without[0]) > 1e-4


def test_batching_changes_nothing(tiny):
    """Rows evaluated together (several roots, several sizes) equal rows evaluated one at a time."""
    ids = token_ids(tiny)
    arch = Arch.of(tiny.original_model)
    w = edge_weights(tiny, ids)
    roots = [2, 7, len(ids) - 1]
    ranks = [expand(w, r) for r in roots]
    batch = RankBatch.stack(ranks, len(ids))
    rows, sizes = [], []
    for i, r in enumerate(ranks):
        for frac in (0.0, 0.01, 0.2, 0.9):
            rows.append(i)
            sizes.append(int(frac * r.total_edges))
    together = masked_logits(arch, ids, batch, torch.tensor(rows), torch.tensor(sizes))
    for j, (i, n) in enumerate(zip(rows, sizes)):
        alone = masked_logits(arch, ids[: roots[i] + 1], RankBatch.stack([ranks[i]], roots[i] + 1), torch.tensor([0]), torch.tensor([n]))
        assert (together[j] - alone[0]).abs().max() <= 1e-4


def test_empty_subgraph_gives_the_zero_state_distribution(tiny_llama):
    ids = token_ids(tiny_llama)
    arch = Arch.of(tiny_llama.original_model)
    w = edge_weights(tiny_llama, ids)
    ranks = expand(w, len(ids) - 1)
    out = masked_logits(arch, ids, RankBatch.stack([ranks], len(ids)), torch.tensor([0]), torch.tensor([0]))
    assert torch.allclose(out, arch.logits(torch.zeros(1, arch.d_model)))
