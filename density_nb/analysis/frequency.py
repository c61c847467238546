"""Token frequency from unigram counts (``corpus.sources.unigram_counts``), for the rarity findings."""

from __future__ import annotations

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
