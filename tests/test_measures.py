"""The measures a careful reviewer needs: where the root first reaches the input, the uniform
plateau before it, the plateau-free density, nucleus sizes and each subgraph's top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from density_nb import trace
from density_nb.method import reference
from density_nb.method.ablation import RankBatch, masked_logits
from density_nb.method.arch import Arch
from density_nb.method.importance import edge_weights
from density_nb.method.measures import smallest_at_least, tv_between, tv_post_input, tv_post_input_over_empty
from density_nb.method.metrics import shared_nucleus, tv_empty_graph
from density_nb.method.stratify import expand, first_input_edge
from helpers import TEXT, token_ids


def test_tv_post_input_and_tv_mid_by_hand():
    sizes = np.array([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    tv = np.array([0.8, 0.8, 0.4, 0.2, 0.0])
    # from 1e-2 on: 0.4, 0.2, 0 over two decades: (0.3 + 0.1) / 2
    assert tv_post_input(sizes, tv, 5e-3) == pytest.approx(0.2)
    assert tv_post_input(sizes, tv, 5e-3) * 1 / 0.8 == pytest.approx(tv_post_input_over_empty(sizes, tv, 0.8, 5e-3))
    assert np.isnan(tv_post_input(sizes, tv, 0.5))
    # mean over [1e-2, 1e-1] on grid points: (0.4 + 0.2) / 2; over [10^-1.5, 10^-0.5]: linear in log10 s between the points
    assert tv_between(sizes, tv, 1e-2, 1e-1) == pytest.approx(0.3)
    assert tv_between(sizes, tv, 10**-1.5, 10**-0.5) == pytest.approx(((0.3 + 0.2) / 2 * 0.5 + (0.2 + 0.1) / 2 * 0.5) / 1.0)
    assert tv_between(sizes, tv, 1e-6, 1e-5) == pytest.approx(0.8), "held at its first value below the grid"


def test_tv_post_input_over_empty_by_hand():
    sizes = np.array([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    tv = np.array([0.8, 0.8, 0.4, 0.2, 0.0])
    # s_input = 5e-3: from 1e-2 on; normalised by 0.8: 0.5, 0.25, 0 over two decades,
    # trapezoids (0.5 + 0.25) / 2 + (0.25 + 0) / 2 = 0.5, mean over 2 decades = 0.25
    assert tv_post_input_over_empty(sizes, tv, 0.8, 5e-3) == pytest.approx(0.25)
    # s_input exactly on a grid size starts there: 1.0, 0.5, 0.25, 0 over 3 decades -> (0.75 + 0.375 + 0.125) / 3
    assert tv_post_input_over_empty(sizes, tv, 0.8, 1e-3) == pytest.approx(1.25 / 3)
    # worse than the empty graph past the plateau: 1.8, 1.8, 0 -> (1.8 + 0.9) / 2 decades, above 1, not clipped
    assert tv_post_input_over_empty(sizes, np.array([0.5, 0.5, 0.9, 0.9, 0.0]), 0.5, 5e-3) == pytest.approx((1.8 + 0.9) / 2)
    assert np.isnan(tv_post_input_over_empty(sizes, tv, 0.8, 0.5)), "only the full graph reaches the input"


def test_smallest_at_least_by_hand():
    sizes = np.array([1e-3, 1e-2, 0.1, 1.0])
    assert smallest_at_least(sizes, np.array([0, 10, 5, 99]), 10) == 1e-2
    assert smallest_at_least(sizes, np.array([0, 10, 5, 99]), 90) == 1.0
    assert np.isnan(smallest_at_least(sizes, np.array([0, 0, 0, 0]), 1))


def test_nucleus_is_not_capped():
    """A flat full distribution over a large vocabulary: its 99 % nucleus holds ~49k tokens, and
    the full graph still shares it (ν = 99); a one-token change at the top shrinks ν."""
    gen = torch.Generator().manual_seed(0)
    p_full = torch.softmax(0.05 * torch.randn(49152, generator=gen), -1)
    nudged = p_full.clone()
    top2 = torch.topk(p_full, 2).indices
    nudged[top2[0]], nudged[top2[1]] = p_full[top2[1]], p_full[top2[0]]  # swap the top two
    nu = shared_nucleus(p_full, torch.stack([p_full, nudged, torch.full_like(p_full, 1 / 49152)]))
    assert nu.tolist() == [99.0, 0.0, 0.0]
    # by hand: cumulative .52 .79 .91 .96 1 (full) and .52 .79 .91 .95 1 (the last two swapped): the
    # 99 % nuclei (5 tokens each) differ in order, the 90 % nuclei (3 tokens each) are the same
    full = torch.tensor([0.52, 0.27, 0.12, 0.05, 0.04])
    swapped = torch.tensor([0.52, 0.27, 0.12, 0.04, 0.05])
    assert shared_nucleus(full, swapped[None]).tolist() == [90.0]


def test_input_edges_and_the_uniform_plateau(tiny):
    """Strata smaller than input_edges output exactly the uniform distribution; the stratum of
    exactly input_edges edges does not; input_edges matches the oracle."""
    ids = token_ids(tiny)
    arch = Arch.of(tiny.original_model)
    weights = edge_weights(tiny, ids)
    root = len(ids) - 1
    ranks = expand(weights, root)
    first = first_input_edge(ranks)
    assert first is not None
    assert first + 1 == reference.input_edges(reference.edge_weights(tiny, ids.tolist()), arch.n_layers, arch.n_heads, root)
    batch = RankBatch.stack([ranks], root + 1)
    sizes = torch.tensor([0, first, first + 1])
    logits = masked_logits(arch, ids, batch, torch.zeros(3, dtype=torch.long), sizes)  # [3, V]
    for row in logits[:2]:
        p = row.softmax(-1)
        assert (p - 1 / p.numel()).abs().max() <= 1e-7, "no path from the input: the uniform distribution"
    assert (logits[2].softmax(-1) - 1 / logits.shape[-1]).abs().max() > 1e-4
    full = torch.as_tensor(weights.final[[root]])
    empty = arch.logits(torch.zeros(arch.d_model))  # [V] the empty graph's logits: all zero under RMSNorm
    assert tv_empty_graph(arch.logits(full), empty) == pytest.approx(
        0.5 * (arch.logits(full)[0].softmax(-1) - 1 / logits.shape[-1]).abs().sum().item()
    )


def test_trace_reports_the_measures(tiny_llama):
    r = trace(tiny_llama, TEXT, roots="all", grid="paper", progress=False)
    plateau = r.n_edges < r.input_edges[:, None]
    assert plateau.any() and (~plateau).any()
    np.testing.assert_allclose(r.tv[plateau], np.broadcast_to(r.tv_empty[:, None], r.tv.shape)[plateau], atol=1e-6)
    assert ((r.s_input > 0) & (r.s_input < 1)).all()
    assert (r.nu[:, -1] == 99).all(), "the full graph always shares the 99 % nucleus"
    s = r.summary()
    for column in (
        "input_edges",
        "s_input",
        "tv_empty",
        "tv_post_input",
        "tv_post_input_over_empty",
        "tv_mid",
        "n_tokens",
        "s_nu1",
        "s_nu5",
        "s_nu10",
        "s_nu20",
        "s_nu40",
        "s_nu60",
        "s_nu80",
        "s_nu90",
    ):
        assert column in s, column
    assert (s["s_nu1"] <= s["s_nu90"]).all() or (s["s_nu1"] <= 1).all()
    np.testing.assert_array_equal(s.tv_post_input_over_empty, r.tv_post_input_over_empty)
    np.testing.assert_allclose(s.tv_post_input_over_empty, s.tv_post_input / s.tv_empty, rtol=1e-12)
    with pytest.warns(DeprecationWarning, match="tv_post_input_over_empty"):
        np.testing.assert_array_equal(r.density_plateau_free, r.tv_post_input_over_empty)
    np.testing.assert_array_equal(s.n_tokens, r.roots + 1)
    c = r.curves()
    np.testing.assert_array_equal(c.reaches_input, (r.n_edges >= r.input_edges[:, None]).ravel())
    assert not c.reaches_input[c.stratum == 0].any() and c.reaches_input[c.s == 1].all()
    assert r.topk_token.shape == (*r.tv.shape, 5) and r.topk_prob_full.shape == (len(r.roots), 5)
    np.testing.assert_array_equal(r.topk_token[:, -1], r.topk_token_full)  # the full graph predicts what the model does
    np.testing.assert_array_equal(r.topk_token[:, :, 0], r.top_token)
    assert (np.diff(r.topk_prob, axis=-1) <= 0).all()


def test_older_results_say_what_is_missing(tiny_llama):
    r = trace(tiny_llama, TEXT, roots="last", progress=False)
    r.input_edges = None
    with pytest.raises(Exception, match=r"no input_edges.*Trace the text again"):
        r.s_input  # noqa: B018
    assert "s_input" not in r.summary()


def _stratum_tv(a: torch.Tensor, b: torch.Tensor) -> float:
    return 0.5 * (a.softmax(-1) - b.softmax(-1)).abs().sum().item()


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.2, 0.7])
def test_baseline_passes_match_the_oracle(tiny, fraction):
    """Inverse and residual-kept passes equal reference.py's on the sets it builds itself."""
    from density_nb.method.stratify import edge_order

    ids = token_ids(tiny)
    arch = Arch.of(tiny.original_model)
    root = len(ids) - 1
    ranks = expand(edge_weights(tiny, ids), root)
    order = edge_order(ranks)
    n = int(fraction * ranks.total_edges)
    batch = RankBatch.stack([ranks], root + 1)
    one, n_keep = torch.zeros(1, dtype=torch.long), torch.tensor([n])
    yes = torch.tensor([True])
    inverse = masked_logits(arch, ids, batch, one, n_keep, invert=yes, keep_residual=yes)[0]
    with_residual = masked_logits(arch, ids, batch, one, n_keep, keep_residual=yes)[0]
    L, H, tokens = arch.n_layers, arch.n_heads, ids.tolist()
    ref_inverse = reference.masked_logits(tiny, tokens, root, reference.inverse_kept(order, n, L, H, root)).float()
    ref_residual = reference.masked_logits(tiny, tokens, root, set(order[:n]) | reference.residual_keys(L, H, root)).float()
    assert _stratum_tv(inverse, ref_inverse) <= 1e-5
    assert _stratum_tv(with_residual, ref_residual) <= 1e-5


def test_inverse_at_both_ends(tiny):
    """The inverse of the empty stratum is the full model; of the full graph, the residual stream alone."""
    r = trace(tiny, TEXT, roots="last", grid=[1e-9, 0.5], baselines=["inverse", "random_residual"], progress=False)
    ids = token_ids(tiny)
    root, arch = len(ids) - 1, Arch.of(tiny.original_model)
    assert r.n_edges[0, 0] == 0 and r.tv_inverse[0, 0] <= 1e-5
    residual_only = reference.masked_logits(tiny, ids.tolist(), root, reference.residual_keys(arch.n_layers, arch.n_heads, root)).float()
    full = reference.masked_logits(tiny, ids.tolist(), root, None).float()
    assert r.tv_inverse[0, -1] == pytest.approx(_stratum_tv(full, residual_only), abs=1e-5)
    assert r.tv_random_residual[0, -1] == 0 and r.tv[0, -1] == 0
    s = r.summary()
    assert {"density_inverse", "density_random_residual"} <= set(s.columns) and "density_random" not in s


def test_composition_has_its_base_rate_and_null(tiny_llama):
    r = trace(tiny_llama, TEXT, roots=[5, 12], grid="fast", baselines=["random"], progress=False)
    share, base = r.component_share(), r.component_share()[:, -1]
    np.testing.assert_allclose(share.sum(-1)[r.n_edges > 0], 1.0)
    np.testing.assert_allclose(base, r.component_edges[:, -1] / r.total_edges[:, None])
    q = r.quartile_share(random=True)
    assert q.shape == (2, len(r.grid), 4)
    np.testing.assert_allclose(q[:, -1], r.quartile_share()[:, -1])  # the full graph is the same for both
    np.testing.assert_array_equal(r.component_edges_random.sum(-1), r.n_edges)


def test_areas_and_sizes_by_hand():
    from density_nb.method.measures import auc_log, smallest_agreeing

    sizes = np.array([1e-3, 1e-2, 1e-1, 1.0])
    tv = np.array([0.6, 0.4, 0.2, 0.0])
    # held at 0.6 from 1e-5 to 1e-3 (2 decades: 1.2), then trapezoids 0.5 + 0.3 + 0.1
    assert auc_log(sizes, tv) == pytest.approx(2.1)
    assert auc_log(np.array([1e-6, 1.0]), np.array([1.0, 0.0])) == pytest.approx(2.5), "clipped at 1e-5"
    top1 = np.array([False, True, False, True])
    assert smallest_agreeing(sizes, top1) == (1e-2, 1.0)  # agrees first at 1e-2, for good only at 1
    assert smallest_agreeing(sizes, np.array([False, True, True, True])) == (1e-2, 1e-2)


@pytest.mark.real
def test_input_edges_on_smollm2_match_the_oracle(smollm2):
    text = "The lighthouse keeper climbed"
    ids = token_ids(smollm2, text)
    arch = Arch.of(smollm2.original_model)
    r = trace(smollm2, text, roots="all", grid="paper", progress=False)
    ref_weights = reference.edge_weights(smollm2, ids.tolist())
    for i, root in enumerate(r.roots):
        assert r.input_edges[i] == reference.input_edges(ref_weights, arch.n_layers, arch.n_heads, int(root))
    empty = RankBatch.stack([expand(edge_weights(smollm2, ids), len(ids) - 1)], len(ids))
    p = masked_logits(arch, ids, empty, torch.zeros(1, dtype=torch.long), torch.tensor([0]))[0].softmax(-1)
    assert (p - 1 / p.numel()).abs().max() <= 1e-9, "the empty stratum outputs the uniform distribution"
    assert (r.nu[:, -1] == 99).all()


def _nu_by_sorting(p_full: torch.Tensor, p: torch.Tensor, levels: tuple[float, ...]) -> list[float]:
    """ν the obvious way: rank every distribution in full (ties by token id), compare the nuclei."""

    def nucleus(probs: torch.Tensor, q: float) -> list[int]:
        ranked = sorted(range(len(probs)), key=lambda v: (-float(probs[v]), v))
        mass = probs[ranked].cumsum(0).numpy()  # float32, as ν sums: a level on a rounding boundary falls the same way
        n = min(int((mass < q).sum()) + 1, len(probs))
        return ranked[:n]

    out = []
    for row in p:
        shared = [q for q in levels if nucleus(p_full, q) == nucleus(row, q)]
        out.append(100 * max(shared) if shared else 0.0)
    return out


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    vocab=st.integers(2, 300),
    temperature=st.sampled_from([0.3, 1.0, 3.0]),
    ties=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_nucleus_equals_sorting_everything(vocab, temperature, ties, seed):
    from density_nb.method.metrics import NU_LEVELS

    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(vocab, generator=gen) / temperature
    if ties:
        logits = logits.round()  # many equal probabilities
    rows = [
        logits,
        logits + 0.05 * torch.randn(vocab, generator=gen),
        torch.randn(vocab, generator=gen),
        torch.zeros(vocab),
        logits.flip(0),
    ]
    p_full, p = logits.softmax(-1), torch.stack(rows).softmax(-1)
    expected = _nu_by_sorting(p_full, p, NU_LEVELS)
    got = shared_nucleus(p_full, p).tolist()
    assert got[0] == 99.0
    assert got == expected


@pytest.mark.parametrize("max_rows", [4096, 60])  # one masked pass for every root, or several groups on two threads
def test_with_baselines_equals_tracing_with_them(tiny, max_rows):
    """``with_baselines`` runs only the baselines' passes, and gives bitwise what tracing with the
    baselines from the start gives; baselines added one at a time too."""
    kwargs = {"roots": "all", "grid": "fast", "max_rows": max_rows, "progress": False}
    both = trace(tiny, TEXT, baselines=["random", "random_residual", "inverse"], **kwargs)
    plain = trace(tiny, TEXT, **kwargs)
    assert plain.with_baselines(tiny, ["inverse", "random", "random_residual"]).equals(both)
    inverse = trace(tiny, TEXT, baselines=["inverse"], **kwargs)
    assert plain.with_baselines(tiny, ["inverse"]).equals(inverse)
    assert inverse.with_baselines(tiny, ["random_residual", "random"]).equals(both)
    assert both.with_baselines(tiny, ["inverse"]).equals(both)  # nothing to add
    with pytest.raises(Exception, match="each baseline"):
        plain.with_baselines(tiny, ["nope"])
