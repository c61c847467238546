"""Frequency ranks and rank bins (analysis.frequency): absent tokens are their own group, not a floor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from density_nb.analysis.frequency import ABSENT, coverage, frequency_rank, rank_bin, rank_bin_labels


def test_frequency_rank_counts_from_the_most_frequent_and_leaves_absent_tokens_nan():
    counts = pd.Series({7: 50, 3: 20, 9: 20, 4: 1, 5: 0})
    ranks = frequency_rank(counts, [7, 3, 9, 4, 5, 123])
    assert list(ranks[:4]) == [1.0, 2.0, 2.0, 4.0]  # equal counts share the best rank
    assert np.isnan(ranks[4]) and np.isnan(ranks[5])  # a zero count is absent, as is an id never counted
    assert frequency_rank(counts, np.array([[7, 3]])).shape == (1, 2)


def test_rank_bins_by_decade_with_absent_last():
    assert rank_bin_labels() == ["1–10", "11–100", "101–1000", ">1000", ABSENT]
    counts = pd.Series(np.arange(2000, 0, -1), index=np.arange(2000))  # token i has rank i + 1
    bins = rank_bin(counts, [0, 9, 10, 99, 100, 999, 1000, 1999, 5000])
    assert list(bins) == ["1–10", "1–10", "11–100", "11–100", "101–1000", "101–1000", ">1000", ">1000", ABSENT]
    assert list(bins.categories) == rank_bin_labels() and bins.ordered
    assert list(rank_bin(counts, [0, 3, 7], edges=(3,))) == ["1–3", ">3", ">3"]


def test_coverage_is_the_share_of_running_tokens():
    counts = pd.Series({1: 6, 2: 3, 3: 1})
    assert coverage(counts, 1) == pytest.approx(0.6) and coverage(counts, 2) == pytest.approx(0.9)
    assert coverage(counts, 10) == pytest.approx(1.0)
