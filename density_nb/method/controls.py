"""The published inverse (docs/method.md §6) and its random-removal control: what removing a traced
stratum's attention and MLP edges does, beside removing as many *random* edges of the same kinds.

The inverse of stratum k removes the stratum's attention and MLP edges and keeps every other edge and
every residual edge. Its control removes the same number of attention edges and of MLP edges, drawn at
random from the root's graph (``match="kind"``), or drawn at random among the edges of the same kind
*and the same target position* (``match="position"``: e.g. the root's own column when the stratum's
MLP edges all lie there), and keeps everything else, residual edges included. A random set is given as
edge ranks (the chosen edges ranked 0..m−1, every other edge −1), so the masked pass is the inverse's
own (``ablation.masked_logits`` with ``invert`` and ``keep_residual``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from density_nb.config import TraceConfig
from density_nb.method.ablation import RankBatch, masked_logits
from density_nb.method.metrics import distribution_metrics
from density_nb.method.pipeline import setup
from density_nb.method.stratify import Ranks, edge_count, expand, stratum_sizes

Match = Literal["kind", "position"]
KINDS = ("attention", "MLP", "residual")


def kind_counts(ranks: Ranks, n: int) -> np.ndarray:
    """[3] the edges of the stratum of ``n`` edges (rank < n) by kind: attention, MLP, residual (both
    residual kinds)."""

    def kept(r: np.ndarray) -> int:
        return int(((r >= 0) & (r < n)).sum())

    return np.array([kept(ranks.attn), kept(ranks.mlp), kept(ranks.res_attn) + kept(ranks.res_mlp)], dtype=np.int64)


def _attention_pool(n_layers: int, n_heads: int, root: int) -> np.ndarray:
    """[N, 4] (layer, head, target, source) of every attention edge of the root's graph: every target
    up to the root in layers 0..L−2, only the root in the last layer (nothing else there reaches it)."""
    t, s = np.tril_indices(root + 1)  # source <= target
    rows = []
    for layer in range(n_layers):
        keep = slice(None) if layer < n_layers - 1 else t == root
        tt, ss = t[keep], s[keep]
        for h in range(n_heads):
            rows.append(np.stack([np.full_like(tt, layer), np.full_like(tt, h), tt, ss], axis=1))
    return np.concatenate(rows)


def _mlp_pool(n_layers: int, root: int) -> np.ndarray:
    """[N, 2] (layer, position) of every MLP edge of the root's graph."""
    rows = [(layer, t) for layer in range(n_layers) for t in range(root + 1) if layer < n_layers - 1 or t == root]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def random_removal(ranks: Ranks, n: int, rng: np.random.Generator, match: Match = "kind") -> tuple[Ranks, int]:
    """A random set of the root's graph's edges with as many attention and MLP edges as the stratum of
    ``n`` edges (``match="kind"``), or as many of each kind at each target position (``"position"``),
    as ranks (the chosen edges 0..m−1 in random order, all else −1) and its size m. Residual edges are
    never chosen: the inverse keeps them all. Parallel blocks are not supported (their MLP edge leaves
    the block's input)."""
    if ranks.parallel:
        raise ValueError("random_removal supports sequential blocks only.")
    if match not in ("kind", "position"):
        raise ValueError(f"match must be 'kind' or 'position', got {match!r}.")
    n_layers, n_heads, n_pos = ranks.attn.shape[0], ranks.attn.shape[1], ranks.attn.shape[-1]
    root = n_pos - 1
    in_attn = (ranks.attn >= 0) & (ranks.attn < n)  # [L, H, P, P]
    in_mlp = (ranks.mlp >= 0) & (ranks.mlp < n)  # [L, P]
    attn_pool, mlp_pool = _attention_pool(n_layers, n_heads, root), _mlp_pool(n_layers, root)
    if match == "kind":
        attn_pick = attn_pool[rng.choice(len(attn_pool), int(in_attn.sum()), replace=False)]
        mlp_pick = mlp_pool[rng.choice(len(mlp_pool), int(in_mlp.sum()), replace=False)]
    else:  # the same count of each kind at each target position
        attn_per_t, mlp_per_t = in_attn.sum(axis=(0, 1, 3)), in_mlp.sum(axis=0)  # [P] each
        attn_pick = np.concatenate(
            [np.zeros((0, 4), np.int64)]
            + [(p := attn_pool[attn_pool[:, 2] == t])[rng.choice(len(p), int(c), replace=False)] for t, c in enumerate(attn_per_t) if c]
        )
        mlp_pick = np.concatenate(
            [np.zeros((0, 2), np.int64)]
            + [(p := mlp_pool[mlp_pool[:, 1] == t])[rng.choice(len(p), int(c), replace=False)] for t, c in enumerate(mlp_per_t) if c]
        )
    m = len(attn_pick) + len(mlp_pick)
    order = rng.permutation(m).astype(np.int32)
    attn = np.full_like(ranks.attn, -1)
    mlp = np.full_like(ranks.mlp, -1)
    attn[attn_pick[:, 0], attn_pick[:, 1], attn_pick[:, 2], attn_pick[:, 3]] = order[: len(attn_pick)]
    mlp[mlp_pick[:, 0], mlp_pick[:, 1]] = order[len(attn_pick) :]
    none = np.full_like(ranks.res_attn, -1)
    return Ranks(attn, none, mlp, none.copy(), ranks.total_edges, ranks.parallel), m


def removal_logits(arch: Any, ids: torch.Tensor, ranks: Sequence[Ranks], n_remove: Sequence[int]) -> torch.Tensor:
    """[B, V] logits at the root with, in row b, the edges of rank < ``n_remove[b]`` of ``ranks[b]``
    removed (their attention and MLP edges; every residual edge and every other edge kept, norms live):
    the published inverse's pass, for traced and random ranks alike (all of one root)."""
    n_pos = ranks[0].attn.shape[-1]
    batch = RankBatch.stack(list(ranks), n_pos)
    rows = torch.arange(len(ranks))
    yes = torch.ones(len(ranks), dtype=torch.bool)
    return masked_logits(arch, ids[:n_pos], batch, rows, torch.tensor([int(k) for k in n_remove]), invert=yes, keep_residual=yes)


def removal_control(
    model: Any,
    texts: Sequence[str],
    roots: Sequence[int],
    sizes: Sequence[float] = (2e-4,),
    *,
    draws: int = 10,
    match: Sequence[Match] = ("kind", "position"),
    seed: int = 0,
) -> pd.DataFrame:
    """For each text's root and each size s: the traced stratum of ⌊s·|E|⌋ edges (as ``trace`` ranks
    them), its edges by kind, the TV of its inverse (attention and MLP edges removed), and the TV after
    removing ``draws`` random sets of the same composition (:func:`random_removal`, per ``match``).
    One row per (text, size, kind of removal, draw): columns ``text``, ``root``, ``s``, ``n_edges``,
    ``attention``, ``MLP``, ``residual`` (the stratum's counts), ``removal`` (``"inverse"`` or
    ``"random, same <match>"``), ``draw``, ``removed`` and ``tv``. Norms live (the published convention)."""
    config = TraceConfig(grid=tuple(sorted({*map(float, sizes), 1.0})))
    _, arch, prepared = setup(model, list(texts), [[int(r)] for r in roots], config)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for index, (text, root) in enumerate(zip(prepared, roots)):
        counts = stratum_sizes(np.asarray(sizes, dtype=np.float64), edge_count(arch.n_layers, arch.n_heads, int(root) + 1, arch.parallel))
        ranks = expand(text.weights, int(root), int(counts.max()), text.in_edges)
        sets: list[tuple[str, int, float, Ranks, int]] = []
        for s, n in zip(sizes, counts):
            sets.append(("inverse", 0, float(s), ranks, int(n)))
            for how in match:
                for d in range(draws):
                    sets.append((f"random, same {how}", d, float(s), *random_removal(ranks, int(n), rng, how)))
        logits = removal_logits(arch, text.ids, [r for *_, r, _ in sets], [k for *_, k in sets])
        tv = distribution_metrics(text.full[0], logits, None, 1).tv
        by_size = {float(s): (int(n), kind_counts(ranks, int(n))) for s, n in zip(sizes, counts)}
        for (removal, d, s, r, k), value in zip(sets, tv):
            n, kinds = by_size[s]
            removed = kind_counts(r, k)[:2].sum() if removal != "inverse" else kinds[:2].sum()
            rows.append({"text": index, "root": int(root), "s": s, "n_edges": n, **dict(zip(KINDS, kinds.tolist())), "removal": removal,
                         "draw": d, "removed": int(removed), "tv": float(value)})  # fmt: skip
    return pd.DataFrame(rows)
