"""Token frequency from unigram counts (``corpus.sources.unigram_counts``), for the rarity findings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def token_frequency(counts: pd.Series, ids: Any) -> np.ndarray:
    """Normalised frequency (count / total count) of each token id in ``ids``; 0 for unseen ids."""
    ids_arr = np.asarray(ids, dtype=np.int64)
    total = float(counts.sum())
    if total == 0:
        return np.zeros(ids_arr.shape)
    freq = counts.reindex(ids_arr.ravel(), fill_value=0).to_numpy(dtype=np.float64) / total
    return freq.reshape(ids_arr.shape)


def log10_frequency(counts: pd.Series, ids: Any) -> np.ndarray:
    """log10 of each token's unigram frequency; a token never seen gets half a count."""
    floor = 0.5 / float(counts.sum())
    return np.log10(np.maximum(token_frequency(counts, ids), floor))


RANK_EDGES = (10, 100, 1000)  # frequency-rank bins by decade: 1–10, 11–100, 101–1000, >1000, and "absent"
ABSENT = "absent"


def frequency_rank(counts: pd.Series, ids: Any) -> np.ndarray:
    """Each token's rank by unigram count (1 = the most frequent; equal counts share the best rank); NaN for
    a token the corpus never contains (no floor: absent tokens are their own group, not "very rare")."""
    seen = counts[counts > 0]
    ranks = seen.rank(ascending=False, method="min")
    ids_arr = np.asarray(ids, dtype=np.int64)
    return ranks.reindex(ids_arr.ravel()).to_numpy(dtype=np.float64).reshape(ids_arr.shape)


def rank_bin_labels(edges: Sequence[int] = RANK_EDGES) -> list[str]:
    """The bins' labels, most frequent first, then ``"absent"``: ``['1–10', '11–100', '101–1000', '>1000', 'absent']``."""
    lows = [1, *(e + 1 for e in edges[:-1])]
    return [f"{lo}–{hi}" for lo, hi in zip(lows, edges)] + [f">{edges[-1]}", ABSENT]


def rank_bin(counts: pd.Series, ids: Any, edges: Sequence[int] = RANK_EDGES) -> pd.Categorical:
    """Each token's frequency-rank bin (:func:`rank_bin_labels`; ``"absent"`` when the corpus never contains it)."""
    ranks = np.asarray(frequency_rank(counts, ids), dtype=np.float64).ravel()
    labels = rank_bin_labels(edges)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), ranks, side="left")  # rank ≤ edges[i] -> bin i
    index = np.where(np.isnan(ranks), len(labels) - 1, index)
    return pd.Categorical.from_codes(index.astype(np.int64), categories=labels, ordered=True)


def coverage(counts: pd.Series, top: int) -> float:
    """The share of the corpus's running tokens that its ``top`` most frequent tokens make up."""
    total = float(counts.sum())
    return float(counts.nlargest(top).sum() / total) if total else float("nan")
