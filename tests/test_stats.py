"""density_nb.analysis.stats against numbers computed by hand (no models)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from density_nb.analysis import stats


def t3_two_sided_p(t: float) -> float:
    """Two-sided p of Student's t with 3 df, closed form: F(t) = 1/2 + (1/π)[t/(√3(1 + t²/3)) + atan(t/√3)]."""
    t = abs(t)
    return 1 - (2 / math.pi) * (t / (math.sqrt(3) * (1 + t * t / 3)) + math.atan(t / math.sqrt(3)))


# ---- format_p --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("p", "floor", "text"),
    [
        (0.0412, False, "p = 0.041"),
        (0.5, False, "p = 0.5"),
        (1.0, False, "p = 1"),
        (3.2e-9, False, "p = 3.2e-09"),
        (1 / 5001, False, "p = 0.0002"),
        (1 / 10000, True, "p < 0.0001"),
        (1 / 1000, True, "p < 0.001"),
        (1 / 5001, True, "p < 0.0002"),
        (0.0, False, "p < 1e-300"),
        (float("nan"), False, "p = n/a"),
    ],
)
def test_format_p(p: float, floor: bool, text: str) -> None:
    assert stats.format_p(p, floor) == text


# ---- spearman --------------------------------------------------------------------------------------
def test_spearman_by_hand() -> None:
    # ranks x = 1 2 3 4 5; y = 5 6 7 8 7 -> ranks 1 2 3.5 5 3.5. Centred: dx = -2 -1 0 1 2, dy = -2 -1 .5 2 .5
    # Σdx·dy = 4 + 1 + 0 + 2 + 1 = 8, Σdx² = 10, Σdy² = 4 + 1 + .25 + 4 + .25 = 9.5  ->  ρ = 8 / √95
    # t = ρ √(3 / (1 − ρ²)) = 8 √(3/31) on 3 df
    r = stats.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])
    rho = 8 / math.sqrt(95)
    assert r.rho == pytest.approx(rho, abs=1e-12)
    assert r.p == pytest.approx(t3_two_sided_p(8 * math.sqrt(3 / 31)), rel=1e-9)
    assert r.n == 5
    assert r.lo <= r.rho <= r.hi
    assert not r.p_at_floor
    assert str(r) == f"ρ = 0.82 [{r.lo:.2f}, {r.hi:.2f}] (2000 bootstrap resamples), p = {r.p:.2g}, N = 5"


def test_spearman_perfect_monotone() -> None:
    x = np.arange(1.0, 21.0)
    up = stats.spearman(x, np.exp(x))
    assert (up.rho, up.lo, up.hi, up.p) == (1.0, 1.0, 1.0, 0.0)
    assert "p < 1e-300" in str(up)
    down = stats.spearman(x, -(x**3))
    assert down.rho == -1.0
    assert down.hi == -1.0


def test_spearman_drops_non_finite_pairs() -> None:
    x = [1, 2, np.nan, 4, 5, 6, 7]
    y = [2, 1, 3, np.inf, 5, 7, 6]
    r = stats.spearman(x, y)
    kept = stats.spearman([1, 2, 5, 6, 7], [2, 1, 5, 7, 6])
    assert r.n == 5
    assert (r.rho, r.lo, r.hi, r.p) == (kept.rho, kept.lo, kept.hi, kept.p)


def test_spearman_degenerate_inputs_are_nan() -> None:
    assert math.isnan(stats.spearman([1, 2], [3, 4]).rho)
    constant = stats.spearman([1, 1, 1, 1], [1, 2, 3, 4])
    assert math.isnan(constant.rho)
    assert constant.n == 4
    with pytest.raises(ValueError, match="length"):
        stats.spearman([1, 2, 3], [1, 2])


def test_spearman_seed_reproducible_and_ci_contains_estimate() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=80)
    y = x + rng.normal(size=80)
    a, b = stats.spearman(x, y, seed=3), stats.spearman(x, y, seed=3)
    assert (a.lo, a.hi) == (b.lo, b.hi)
    assert (stats.spearman(x, y, seed=4).lo, stats.spearman(x, y, seed=4).hi) != (a.lo, a.hi)
    assert a.lo < a.rho < a.hi
    assert stats.spearman(x, y, ci=0.5).hi - stats.spearman(x, y, ci=0.5).lo < a.hi - a.lo
    no_ci = stats.spearman(x, y, n_boot=0)
    assert math.isnan(no_ci.lo) and no_ci.rho == a.rho


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-40, 40), st.integers(-40, 40)), min_size=3, max_size=40))
def test_spearman_invariant_under_increasing_transform(pairs: list[tuple[int, int]]) -> None:
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    r = stats.spearman(x, y, n_boot=0)
    r_exp = stats.spearman(np.exp(x / 10), y, n_boot=0)
    r_cube = stats.spearman(x**3 + x, y, n_boot=0)
    for other in (r_exp, r_cube):
        assert other.n == r.n
        if math.isnan(r.rho):
            assert math.isnan(other.rho)
        else:
            assert other.rho == pytest.approx(r.rho, abs=1e-12)


# ---- partial_spearman ------------------------------------------------------------------------------
def test_partial_spearman_control_held_fixed() -> None:
    # y = x + control exactly, x = 1..8 crossed with control = 0, 10, ..., 50 (6 groups, balanced).
    # rank(x) = 6(x − 1) + 3.5, rank(control) = 8·group + 4.5, rank(y) = 8·group + x: y's ranks are an
    # exact linear function of the other two ranks, so with the control held fixed ρ = 1 (t = ∞, p = 0),
    # while the raw Spearman ρ(x, y) is far below 1.
    g = np.repeat(np.arange(6), 8)
    x = np.tile(np.arange(1, 9), 6)
    df = pd.DataFrame({"x": x, "c": 10 * g, "y": x + 10 * g})
    r = stats.partial_spearman(df, "x", "y", ["c"])
    assert r.rho == pytest.approx(1.0, abs=1e-9)
    assert r.p == 0.0
    assert r.n == 48
    assert r.test == "t, df = 45"
    assert 0.5 < r.lo <= r.hi <= 1.0  # resamples are unbalanced, so below 1: a percentile CI at the boundary
    assert stats.spearman(df.x, df.y).rho < 0.5


def test_partial_spearman_removes_a_common_cause() -> None:
    rng = np.random.default_rng(0)
    c = rng.normal(size=400)
    df = pd.DataFrame({"c": c, "x": c + 0.3 * rng.normal(size=400), "y": c + 0.3 * rng.normal(size=400)})
    raw = stats.spearman(df.x, df.y)
    part = stats.partial_spearman(df, "x", "y", ["c"])
    assert raw.rho > 0.8
    assert abs(part.rho) < 0.15
    assert part.lo < part.rho < part.hi
    # p from t on n − 2 − k = 397 df
    t = part.rho * math.sqrt(397 / (1 - part.rho**2))
    from scipy.stats import t as t_dist

    assert part.p == pytest.approx(2 * t_dist.sf(abs(t), 397), rel=1e-12)


def test_partial_spearman_without_controls_is_spearman() -> None:
    df = pd.DataFrame({"x": [1, 2, 3, 4, 5, np.nan], "y": [5, 6, 7, 8, 7, 1]})
    r = stats.partial_spearman(df, "x", "y", [], n_boot=200)
    plain = stats.spearman(df.x, df.y, n_boot=200)
    assert r.n == 5
    assert r.rho == pytest.approx(8 / math.sqrt(95), abs=1e-12)
    assert r.p == pytest.approx(plain.p, rel=1e-9)
    assert (r.lo, r.hi) == pytest.approx((plain.lo, plain.hi))


def test_partial_spearman_too_few_rows() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 3.0, 2.0], "c": [0.0, 1.0, 0.0]})
    r = stats.partial_spearman(df, "x", "y", ["c"])
    assert math.isnan(r.rho) and r.n == 3


# ---- permutation_correlation -----------------------------------------------------------------------
def test_permutation_correlation_exact_small_n() -> None:
    # n = 5 monotone: of the 5! = 120 pairings only the identity (ρ = 1) and the reversal (ρ = −1) reach |ρ| = 1
    r = stats.permutation_correlation([1, 2, 3, 4, 5], [2, 4, 8, 16, 32])
    assert r.rho == 1.0
    assert r.p == pytest.approx(2 / 120)
    assert not r.p_at_floor
    assert r.test == "permutation, exact over 120 pairings"


def test_permutation_correlation_floor() -> None:
    x = np.arange(30.0)
    r = stats.permutation_correlation(x, x**2, n_resamples=999)
    assert r.p == pytest.approx(1 / 1000)
    assert r.p_at_floor
    assert "p < 0.001," in str(r)


# ---- paired_difference -----------------------------------------------------------------------------
def test_paired_difference_exact_sign_flip_mean() -> None:
    # d = 1..6, all positive: |mean| of a sign flip reaches 3.5 only with all signs equal -> 2 of 2^6 = 64
    r = stats.paired_difference(np.zeros(6), np.arange(1.0, 7.0), statistic="mean")
    assert r.estimate == r.mean == 3.5
    assert r.p == pytest.approx(2 / 64)
    assert r.exact and not r.p_at_floor
    assert "p = 0.031" in str(r)
    assert r.lo <= 3.5 <= r.hi


def test_paired_difference_exact_sign_flip_median() -> None:
    # median of d = 1..6 is (3 + 4)/2 = 3.5. Flipping 1, 2 or both leaves the 3rd and 4th values at 3 and 4,
    # flipping anything from 3 up lowers the median: 4 patterns with median ≥ 3.5, 4 mirrored with ≤ −3.5 -> 8/64
    r = stats.paired_difference(np.zeros(6), np.arange(1.0, 7.0), statistic="median")
    assert r.estimate == r.median == 3.5
    assert r.p == pytest.approx(8 / 64)
    assert r.exact and not r.p_at_floor and r.p_text.endswith("(all sign flips)")


def test_paired_difference_floor_n30() -> None:
    r = stats.paired_difference(np.zeros(30), np.arange(1.0, 31.0), n_resamples=999)
    assert r.p == pytest.approx(1 / 1000)
    assert r.p_at_floor and not r.exact
    assert r.p_text == "p < 0.001 (999 sign flips)"  # every p says its permutation count
    assert "sign-flip p < 0.001 (999 sign flips)" in str(r)
    assert r.positive.successes == 30 and r.share_positive == 1.0


def test_paired_difference_drops_nan_pairs_and_counts_share() -> None:
    a = [0.0, 0.0, np.nan, 0.0, 0.0, 0.0, 0.0, 1.0]
    b = [1.0, -2.0, 5.0, np.nan, 3.0, 0.0, 4.0, 2.0]  # kept differences: 1, −2, 3, 0, 4, 1
    r = stats.paired_difference(a, b)
    assert r.n == 6
    assert r.median == 1.0 and r.mean == pytest.approx(7 / 6)
    assert r.positive.successes == 4  # strictly positive: 1, 3, 4, 1 (the 0 is not)
    assert r.share_positive == pytest.approx(4 / 6)
    assert r.lo <= r.estimate <= r.hi


def test_paired_difference_ci_is_of_the_tested_statistic_and_reproducible() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=60)
    b = a + rng.exponential(size=60)  # skewed: mean and median differ
    med = stats.paired_difference(a, b, statistic="median", seed=5)
    mean = stats.paired_difference(a, b, statistic="mean", seed=5)
    assert med.lo <= med.median <= med.hi
    assert mean.lo <= mean.mean <= mean.hi
    assert (med.lo, med.hi) != (mean.lo, mean.hi)
    again = stats.paired_difference(a, b, statistic="median", seed=5)
    assert (again.lo, again.hi, again.p) == (med.lo, med.hi, med.p)


def test_paired_difference_edge_cases() -> None:
    empty = stats.paired_difference([np.nan], [1.0])
    assert empty.n == 0 and math.isnan(empty.estimate) and math.isnan(empty.share_positive)
    zeros = stats.paired_difference(np.ones(5), np.ones(5))
    assert zeros.estimate == 0.0 and zeros.p == 1.0
    with pytest.raises(ValueError, match="statistic"):
        stats.paired_difference([1, 2], [3, 4], statistic="mode")  # type: ignore[arg-type]


# ---- proportion ------------------------------------------------------------------------------------
def test_proportion_wilson_by_hand() -> None:
    # Wilson: centre = (p̂ + z²/2n) / (1 + z²/n), half = z √(p̂(1 − p̂)/n + z²/4n²) / (1 + z²/n), p̂ = 0.7, n = 10
    z = 1.959963984540054
    k, n = 7, 10
    ph = k / n
    denom = 1 + z * z / n
    centre = (ph + z * z / (2 * n)) / denom
    half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / denom
    r = stats.proportion(7, 10)
    assert r.share == 0.7
    assert (r.lo, r.hi) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert (r.lo, r.hi) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert str(r) == "70% [40%, 89%] (7/10)"


def test_proportion_edges() -> None:
    assert stats.proportion(10, 10).hi == pytest.approx(1.0)
    assert stats.proportion(0, 10).lo == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(stats.proportion(0, 0).share)
    with pytest.raises(ValueError):
        stats.proportion(11, 10)


# ---- results as notebook values --------------------------------------------------------------------
def test_results_are_frozen_and_tabulate() -> None:
    r = stats.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7], n_boot=100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.rho = 0.0  # type: ignore[misc]
    table = pd.DataFrame({"a": r.as_dict(), "b": r.as_dict()}).T
    assert list(table.columns) == ["rho", "lo", "hi", "p", "n"]
    assert all(dtype.kind == "f" for dtype in table.dtypes)
    d = stats.paired_difference([0.0, 0.0, 0.0], [1.0, 2.0, 3.0]).as_dict()
    assert {"median", "lo", "hi", "p", "n", "share_positive", "mean", "estimate"} == set(d)


def test_one_bootstrap_for_every_ci():
    """bootstrap_ci, median_ci, iqr_ci and cv_ci are scipy's percentile bootstrap of the same statistic
    (what spearman and paired_difference use): the same CI as scipy.stats.bootstrap with that seed, for a
    numpy statistic and for a plain function of one array alike, and each says its resamples."""
    from scipy import stats as sps

    x = np.random.default_rng(3).lognormal(size=80)
    for est, fn in ((stats.median_ci(x), np.median), (stats.iqr_ci(x), stats.iqr), (stats.cv_ci(x), stats.cv)):
        ref = sps.bootstrap(
            (x,), lambda v, axis=-1, fn=fn: fn(v, axis=axis), n_resamples=2000, method="percentile", rng=np.random.default_rng(0)
        )
        assert est.estimate == pytest.approx(float(fn(x)))
        assert (est.lo, est.hi) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), rel=1e-12)
        assert est.n == 80 and est.n_boot == 2000 and "(2000 bootstrap resamples)" in str(est)
    span = stats.bootstrap_ci(x, lambda v: np.quantile(v, 0.9) - np.quantile(v, 0.1), n_boot=500)  # no axis: row by row
    vectorised = stats.bootstrap_ci(x, lambda v, axis=-1: np.quantile(v, 0.9, axis=axis) - np.quantile(v, 0.1, axis=axis), n_boot=500)
    assert tuple(span) == pytest.approx(tuple(vectorised), rel=1e-12)
    estimate, lo, hi = stats.bootstrap_ci([1.0, np.nan, 2.0, 3.0, np.inf])  # unpacks; non-finite values dropped
    assert estimate == 2.0 and lo <= estimate <= hi
    assert np.isnan(stats.median_ci([1.0]).lo)
    assert stats.cv([1.0, 3.0]) == pytest.approx(np.std([1.0, 3.0], ddof=1) / 2)
