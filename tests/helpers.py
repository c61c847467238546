"""Central test helpers (import them: ``from helpers import ...``): a sample text and its token ids,
a tiny WikiText-style corpus, and synthetic ``DensityResult`` objects for widget tests."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from density_nb.models import hf_tokenizer
from density_nb.result import DensityResult

CHROMIUM = os.environ.get("DENSITY_NB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def sync_playwright_or_skip() -> Any:
    """playwright's ``sync_playwright`` for a browser test module; skips the module, saying what to install,
    when python playwright or Chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover
        pytest.skip("python playwright is not installed (pip install playwright)", allow_module_level=True)
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set DENSITY_NB_CHROMIUM)", allow_module_level=True)
    return sync_playwright


TEXT = "Paris is the capital of France, and Berlin is the capital of Germany. The river runs"


def token_ids(bridge, text: str = TEXT) -> torch.Tensor:
    """The model's own tokenization (HF defaults) as a [T] tensor."""
    return torch.tensor(hf_tokenizer(bridge)(text)["input_ids"])


# A tiny WikiText-style corpus (tokenized, with a heading) written for the corpus and Ray tests.
SAMPLE_LINES = [
    " = Notes = ",
    " The small boat drifted past the old mill , and the miller waved . ",
    " Rain fell on the city for three days , and the river rose slowly . ",
    " She opened the letter , read it twice , and put it in the drawer . ",
    " The train to the coast left at noon , half empty as usual . ",
    " A cat slept in the window while the radio played old songs . ",
    " The old map showed a road that no longer ran through the hills . ",
    " Two boys sold lemonade on the corner until the sun went down . ",
    " The museum opened a new wing for paintings from the north . ",
]


# ---- synthetic but plausible results for widget tests (no model, no torch needed by them) ----------
EVIL_TOKENS = ["Say", " <img src=x onerror=alert(1)>", " and", " </script>", "<script>alert(2)</script>", " &amp;", "\n", "\tdone", "."]
EVIL_TEXT = 'Say <img src=x onerror=alert(1)> and </script><script>alert(2)</script> & "quotes"\n\tdone.'

_WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "while",
    "the",
    "model",
    "predicts",
    "which",
    "token",
    "comes",
    "next",
    "and",
    "why",
    "computation",
    "density",
    "measures",
    "how",
    "much",
    "of",
    "the",
    "graph",
    "is",
    "needed",
]


def _split_tokens(text: str) -> list[str]:
    """Crude word-piece split keeping leading spaces, newlines and tabs on tokens."""
    return re.findall(r"\s*[A-Za-z]+|\s*\d|\s*[^\sA-Za-z\d]|\s+", text)


def make_text(n_tokens: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    words = []
    for i in range(n_tokens):
        w = str(rng.choice(_WORDS))
        words.append(("\n" if i and i % 17 == 0 else " ") + w if i else w)
    return "".join(words)


def make_result(
    text: str | None = None,
    *,
    tokens: list[str] | None = None,
    n_tokens: int = 24,
    n_strata: int = 12,
    n_layers: int = 4,
    n_heads: int = 4,
    random_baseline: bool = True,
    seed: int = 0,
) -> DensityResult:
    """A ``DensityResult`` with R = T roots (all positions), K strata on a log grid 1e-5 … 1."""
    rng = np.random.default_rng(seed)
    if tokens is not None:
        tokens = list(tokens)
    elif text is None:
        tokens = _split_tokens(make_text(n_tokens, seed))[:n_tokens]
    else:
        tokens = _split_tokens(text)
    text = "".join(tokens)
    t_count = len(tokens)
    r_count, k_count, l_count, h_count = t_count, n_strata, n_layers, n_heads
    roots = np.arange(r_count, dtype=np.int64)
    grid = np.logspace(-5, 0, k_count)
    log_s = np.log10(grid)

    total_edges = (l_count * (h_count + 2) * (roots + 1) * rng.integers(8, 20, r_count)).astype(np.int64)
    n_edges = np.maximum(1, np.round(grid[None, :] * total_edges[:, None])).astype(np.int64)
    n_edges[:, -1] = total_edges

    centre = rng.uniform(-4.5, -0.5, r_count)[:, None]
    width = rng.uniform(0.2, 0.8, r_count)[:, None]
    tv = 1.0 / (1.0 + np.exp((log_s[None, :] - centre) / width))
    tv = np.clip(tv + rng.normal(0, 0.02, tv.shape), 0, 1)
    tv = np.minimum.accumulate(tv, axis=1)
    tv[:, -1] = 0.0
    kl = -np.log1p(-0.995 * tv) * rng.uniform(1, 3, (r_count, 1))
    top1 = (tv + rng.normal(0, 0.1, tv.shape)) < 0.5
    top1[:, -1] = True
    nu = np.where(tv < 0.2, 50.0, np.where(tv < 0.5, 10.0, 0.0))
    entropy_full = rng.uniform(0.5, 6.0, r_count)
    entropy = entropy_full[:, None] + tv * 2
    next_token = np.append(rng.integers(0, 1000, r_count - 1), -1).astype(np.int64)
    loss_full = np.where(next_token >= 0, rng.uniform(0.5, 8, r_count), np.nan)
    loss = loss_full[:, None] + kl

    alpha = rng.uniform(0.15, 1.2, (r_count, 1, l_count, h_count)).astype(np.float32)
    head_share = np.clip(grid[None, :, None, None] ** alpha * rng.uniform(0.6, 1.0, alpha.shape), 0, 1).astype(np.float32)
    head_share[:, -1] = 1.0
    beta = rng.uniform(0.1, 0.9, (r_count, 1, l_count)).astype(np.float32)
    mlp_share = np.clip(grid[None, :, None] ** beta, 0, 1).astype(np.float32)
    mlp_share[:, -1] = 1.0
    attn_e = np.round(n_edges * 0.6).astype(np.int64)
    mlp_e = np.round(n_edges * 0.25).astype(np.int64)
    component_edges = np.stack([attn_e, mlp_e, n_edges - attn_e - mlp_e], axis=-1)
    layer_edges = np.round(n_edges[..., None] * np.full(l_count, 1.0 / l_count)).astype(np.int64)

    if random_baseline:
        tv_random = np.clip(np.maximum(tv, 1.0 / (1.0 + np.exp((log_s[None, :] + 0.3) / 0.3))), 0, 1)
        tv_random[:, -1] = 0.0
        kl_random = -np.log1p(-0.995 * tv_random) * 2
        top1_random = tv_random < 0.3
    else:
        tv_random = kl_random = top1_random = None

    return DensityResult(
        model="synthetic",
        text=text,
        token_ids=rng.integers(0, 1000, t_count).astype(np.int64),
        tokens=tokens,
        grid=grid,
        n_layers=l_count,
        n_heads=h_count,
        roots=roots,
        total_edges=total_edges,
        entropy_full=entropy_full,
        top_token_full=rng.integers(0, 1000, r_count).astype(np.int64),
        top_prob_full=rng.uniform(0.05, 0.95, r_count),
        loss_full=loss_full,
        next_token=next_token,
        n_edges=n_edges,
        tv=tv,
        kl=kl,
        top1=top1,
        nu=nu,
        entropy=entropy,
        loss=loss,
        head_share=head_share,
        mlp_share=mlp_share,
        component_edges=component_edges,
        layer_edges=layer_edges,
        tv_random=tv_random,
        kl_random=kl_random,
        top1_random=top1_random,
        top_text_full=[" " + str(rng.choice(_WORDS)) for _ in range(r_count)],
        settings={"synthetic": True, "seed": seed},
    )


def smollm2_sized(seed: int = 0) -> DensityResult:
    """128 tokens × 27 strata on SmolLM2-135M's shape (30 layers × 9 heads)."""
    return make_result(n_tokens=128, n_strata=27, n_layers=30, n_heads=9, seed=seed)


def with_measures(result: DensityResult, k: int = 5, seed: int = 0) -> DensityResult:
    """A copy of a synthetic result with the newer measures: where each root first reaches the input
    (strata below output the uniform distribution: flat TV, tokens 0..k-1), top-k per stratum and
    of the full model (the text's next token among them for most roots), and all three baselines."""
    import dataclasses

    rng = np.random.default_rng(seed)
    r_count, k_count = result.tv.shape
    vocab = 1000
    input_edges = np.maximum(1, np.round(result.total_edges * 10 ** rng.uniform(-3.5, -2.0, r_count))).astype(np.int64)
    plateau = result.n_edges < input_edges[:, None]  # [R, K]
    tv_empty = rng.uniform(0.4, 0.95, r_count)
    tv = np.where(plateau, tv_empty[:, None], result.tv)
    full = np.stack([rng.choice(vocab, k, replace=False) for _ in range(r_count)])  # [R, k]
    full[:, 0] = result.top_token_full
    has_next = result.next_token >= 0
    pick = has_next & (rng.uniform(size=r_count) < 0.7) & (k > 1)
    full[pick, min(1, k - 1)] = result.next_token[pick]
    probs_full = np.sort(rng.dirichlet(np.ones(k + 1), r_count)[:, :k], axis=1)[:, ::-1]
    sub = np.where(rng.uniform(size=(r_count, k_count, k)) < 0.5, full[:, None, :], rng.integers(0, vocab, (r_count, k_count, k)))
    sub[plateau] = np.arange(k)
    probs = np.sort(rng.dirichlet(np.ones(k + 1), (r_count, k_count))[..., :k], axis=-1)[..., ::-1]
    probs[plateau] = 1.0 / vocab
    log_s = np.log10(result.grid)
    residual = np.clip(tv * 0.9 + 0.05 * (log_s[None, :] < -1), 0, 1)
    residual[:, -1] = 0.0
    inverse = np.clip(1 - tv, 0, 1) * 0.8
    inverse[:, 0] = 0.0
    return dataclasses.replace(
        result,
        tv=tv,
        input_edges=input_edges,
        tv_empty=tv_empty,
        topk_token=sub.astype(np.int64),
        topk_prob=probs,
        topk_token_full=full.astype(np.int64),
        topk_prob_full=probs_full,
        tv_random_residual=residual,
        kl_random_residual=-np.log1p(-0.995 * residual),
        top1_random_residual=residual < 0.3,
        tv_inverse=inverse,
        kl_inverse=-np.log1p(-0.995 * inverse),
        top1_inverse=inverse < 0.3,
    )


def resume_killed_mid_shard(model: Any, out: Path, monkeypatch: Any, **run: Any) -> None:
    """Resume the corpus run in ``out`` and kill it after it writes its next shard's curves file, before the
    summary file that makes the shard count (``run`` goes to ``run_corpus``)."""
    from density_nb.corpus import runner
    from density_nb.corpus import store as run_store

    real = run_store.write_parquet

    def killed(df: Any, path: Path) -> None:
        if path.name.endswith(".summary.parquet"):
            raise SystemExit("killed")
        real(df, path)

    with monkeypatch.context() as patch:
        patch.setattr(run_store, "write_parquet", killed)
        with pytest.raises(SystemExit):
            runner.run_corpus(model, out, resume=True, **run)
