"""Every verdict rule of the finding notebooks on synthetic cases: the margin before the sign, the
threshold rule, the two-split replication and a finding's declared primary measure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from density_nb.analysis import stats
from density_nb.teaching import verdicts as v


@pytest.mark.parametrize(
    ("lo", "hi", "expected", "margin", "verdict"),
    [
        (0.1, 0.3, +1, 0.02, v.REPRODUCED),  # on the claimed side, beyond the margin
        (-0.3, -0.1, +1, 0.02, v.OPPOSITE),
        (-0.3, -0.1, -1, 0.02, v.REPRODUCED),  # a claimed decrease
        (0.1, 0.3, -1, 0.02, v.OPPOSITE),
        (-0.01, 0.01, +1, 0.02, v.NOT_REPRODUCED),  # inside ±margin
        (0.005, 0.017, +1, 0.02, v.NOT_REPRODUCED),  # 05's case: excludes 0 but inside the margin -> margin first
        (-0.017, -0.005, +1, 0.02, v.NOT_REPRODUCED),  # the same on the other side: not "opposite"
        (0.005, 0.03, +1, 0.02, v.REPRODUCED),  # excludes 0, reaches past the margin
        (-0.1, 0.3, +1, 0.02, v.INCONCLUSIVE),  # straddles 0, wider than the margin
        (-0.1, 0.01, +1, 0.0, v.INCONCLUSIVE),  # margin 0: only a CI of one side decides
        (0.0, 0.2, +1, 0.02, v.INCONCLUSIVE),  # touches 0: not strictly on the claimed side
        (math.nan, 0.2, +1, 0.02, v.INCONCLUSIVE),
        (0.2, 0.1, +1, 0.02, v.INCONCLUSIVE),  # not an interval
    ],
)
def test_direction_tests_the_margin_first(lo, hi, expected, margin, verdict) -> None:
    assert v.direction(lo, hi, expected, margin) == verdict


@pytest.mark.parametrize(
    ("ci", "threshold", "verdict"),
    [((0.6, 0.55, 0.65), 0.5, v.REPRODUCED), ((0.4, 0.35, 0.45), 0.5, v.NOT_REPRODUCED), ((0.5, 0.45, 0.55), 0.5, v.INCONCLUSIVE),
     ((0.5, math.nan, 0.55), 0.5, v.INCONCLUSIVE)],
)  # fmt: skip
def test_above(ci, threshold, verdict) -> None:
    assert v.above(ci, threshold) == verdict


def test_replicated_needs_both_splits() -> None:
    for verdict in v.VERDICTS:
        assert v.replicated(verdict, verdict) == verdict
    mixed = v.replicated(v.REPRODUCED, v.INCONCLUSIVE)
    assert mixed.startswith(v.INCONCLUSIVE) and "valid: reproduced" in mixed and "test: inconclusive" in mixed
    assert v.replicated(v.REPRODUCED, v.OPPOSITE).startswith(v.INCONCLUSIVE)


def test_primary_row_takes_the_verdict_of_the_primary_on_both_splits() -> None:
    p = v.Primary("F2", "density varies", "IQR of density", rule="above", threshold=0.05)
    assert p.verdict((0.1, 0.08, 0.12)) == v.REPRODUCED
    row = p.row((0.1, 0.08, 0.12), (0.07, 0.06, 0.09), secondary={"CV": "0.2 [0.1, 0.3]"}, model="m")
    assert set(row) == set(v.VERDICT_COLUMNS)
    assert row["verdict"] == v.REPRODUCED and row["valid split"].endswith("→ reproduced")
    assert row["secondary checks (exploratory)"] == "CV: 0.2 [0.1, 0.3]"  # secondaries never move the verdict
    row = p.row((0.1, 0.08, 0.12), (0.05, 0.02, 0.09))
    assert row["verdict"].startswith(v.INCONCLUSIVE) and "test: inconclusive" in row["verdict"]
    assert p.row((0.1, 0.08, 0.12), None)["test split"] == "not computed"
    assert "above 0.05" in p.describe()
    assert v.Primary("F", "c", "ρ", expected=-1, margin=0.2).describe().endswith("inside ±0.2, else reproduced when it lies below 0")


def test_primary_reads_stats_results_and_says_their_counts() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    corr = stats.spearman(x, x + rng.normal(size=60), n_boot=500)
    diff = stats.paired_difference(np.zeros(60), 0.5 + rng.normal(size=60), n_boot=500, n_resamples=999)
    p = v.Primary("F", "claim", "ρ", expected=+1, margin=0.1)
    assert v.triple(corr) == (corr.rho, corr.lo, corr.hi) and v.triple(diff) == (diff.estimate, diff.lo, diff.hi)
    share = stats.proportion(45, 60)
    assert v.triple(share) == (share.share, share.lo, share.hi) and "N = 60" in p.row(share, None)["valid split"]
    row = p.row(corr, diff)
    assert "N = 60, 500 bootstrap resamples" in row["valid split"] and "N = 60, 500 bootstrap resamples" in row["test split"]
    assert row["verdict"] == v.REPRODUCED
    with pytest.raises(ValueError, match="rule"):
        v.Primary("F", "c", "m", rule="below")  # type: ignore[arg-type]
