"""Edge weights: decompositions sum back to TransformerLens's cache; weights are normalised."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from density_nb.method.importance import cached_layers, edge_weights, in_edge_sums
from helpers import token_ids


def _real_states(bridge, ids):
    _, cache = bridge.run_with_cache(ids[None])
    n_layers = bridge.original_model.config.num_hidden_layers
    mid = [cache[f"blocks.{l}.hook_resid_mid"][0] for l in range(n_layers)]
    post = [cache[f"blocks.{l}.hook_resid_post"][0] for l in range(n_layers - 1)] + [cache["ln_final.hook_out"][0]]
    return mid, post


def test_in_edges_sum_to_real_residual_states(tiny):
    ids = token_ids(tiny)
    mid, post = _real_states(tiny, ids)
    for layer, sums in enumerate(in_edge_sums(tiny, ids)):
        assert (sums["attn_node"] - mid[layer]).abs().max() <= 1e-4
        assert (sums["out_node"] - post[layer]).abs().max() <= 1e-4


@pytest.mark.real
def test_in_edges_sum_to_real_residual_states_smollm2(smollm2):
    # SmolLM2's residual stream reaches ~2e4 (a massive activation), where one fp32 ulp is 2e-3:
    # the bound is relative to each layer's scale.
    ids = token_ids(smollm2)
    mid, post = _real_states(smollm2, ids)
    for layer, sums in enumerate(in_edge_sums(smollm2, ids)):
        for got, real in ((sums["attn_node"], mid[layer]), (sums["out_node"], post[layer])):
            assert (got - real).abs().max() <= 1e-4 * max(1.0, real.abs().max().item())


def test_own_forward_reproduces_hf_logits(tiny):
    ids = token_ids(tiny)
    _, final, arch = cached_layers(tiny, ids)
    logits = arch.logits(final)
    with torch.no_grad():
        hf = tiny.original_model(ids[None]).logits[0]
    assert (logits - hf).abs().max() <= 1e-5


@pytest.mark.parametrize("weighting", ["l1", "ifr"])
def test_weights_normalised_per_node(tiny, weighting):
    ids = token_ids(tiny)
    w = edge_weights(tiny, ids, weighting)
    n = len(ids)
    attn_node = w.attn.sum(axis=(1, 3)) + w.res_attn  # [L, T]
    assert np.allclose(attn_node, 1.0, atol=1e-5)
    assert np.allclose(w.mlp + w.res_mlp, 1.0, atol=1e-5)
    assert (w.attn >= 0).all() and (w.res_attn >= 0).all()
    upper = np.triu(np.ones((n, n), bool), 1)
    assert (w.attn[:, :, upper] == 0).all(), "no edge from a later source"


def test_l1_weights_match_explicit_edge_vectors(tiny):
    """The factorised attention norms equal L1 norms of explicitly built edge vectors."""
    ids = token_ids(tiny)
    layers, _, _arch = cached_layers(tiny, ids)
    w = edge_weights(tiny, ids)
    layer = 1
    c = layers[layer]
    t = len(ids) - 1
    vec = c.pattern[:, t, :, None] * c.head_out * c.attn_inv[t]  # [H, T, d] explicit
    norms = vec.abs().sum(-1)  # [H, T]
    total = norms.sum() + c.x[t].abs().sum()
    np.testing.assert_allclose(w.attn[layer, :, t, :], (norms / total).numpy(), rtol=1e-5, atol=1e-7)


def test_sliding_window_edges_have_zero_weight(tiny_gemma3):
    ids = token_ids(tiny_gemma3)
    w = edge_weights(tiny_gemma3, ids)
    window = tiny_gemma3.original_model.config.sliding_window
    t = len(ids) - 1
    assert t >= window
    assert (w.attn[0, :, t, : t - window + 1] == 0).all()  # layer 0 slides
    assert (w.attn[1, :, t, : t - window + 1] > 0).any()  # layer 1 sees everything


def test_random_weights_are_seeded(tiny):
    ids = token_ids(tiny)
    a, b = edge_weights(tiny, ids, "random", seed=3), edge_weights(tiny, ids, "random", seed=3)
    assert np.array_equal(a.attn, b.attn)
    assert not np.array_equal(a.attn, edge_weights(tiny, ids, "random", seed=4).attn)
