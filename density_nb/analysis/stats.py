"""Statistics in one tested module: rank correlations, paired differences and proportions for the notebooks.

Every function returns a small frozen dataclass whose ``str()`` is the line a notebook prints and whose
``as_dict()`` holds the numbers a notebook puts into a table. Conventions, the same everywhere:

* Pairs (or rows) with a NaN or ±inf anywhere are dropped first; ``n`` counts what is left.
* Confidence intervals are bootstrap **percentile** intervals of the *same* statistic that is reported
  and tested, drawn with :func:`scipy.stats.bootstrap` (``paired=True`` for correlations: whole pairs or
  rows are resampled) — one bootstrap for every CI here (:func:`bootstrap_ci` of a median, IQR, CV or any
  statistic included); every CI says its number of resamples (``n_boot``, printed with it). Percentile rather than BCa because BCa's acceleration comes from a jackknife,
  which is inconsistent for the median, and BCa returns NaN when the bootstrap distribution is
  degenerate (e.g. ρ = 1 in every resample). Resamples in which the statistic is undefined (a
  resample with a constant variable has no rank correlation) are left out of the quantiles.
* p-values are two-sided. Monte-Carlo permutation p-values are ``(1 + #as-extreme) / (1 + n_resamples)``;
  when no resample is as extreme, the p-value is only known to be below that floor, so results carry
  ``p_at_floor`` and print ``p < 1/(n_resamples + 1)``. When every permutation can be enumerated
  (``2**n`` sign flips, ``n!`` pairings ≤ ``n_resamples``) scipy does so and the p-value is exact.
* :func:`format_p` is the one rule for printing a p-value.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as sps

__all__ = [
    "Correlation",
    "Estimate",
    "PairedDifference",
    "Proportion",
    "bootstrap_ci",
    "cv",
    "cv_ci",
    "format_p",
    "iqr",
    "iqr_ci",
    "median_ci",
    "paired_difference",
    "partial_spearman",
    "permutation_correlation",
    "proportion",
    "spearman",
]

FloatArray = npt.NDArray[np.float64]
NAN = float("nan")

# scipy >= 1.15 calls the generator argument `rng`; older releases call it `random_state`.
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"
_BATCH_ELEMENTS = 2**21  # bound on the resampled values held at once (per variable)


# ---- printing --------------------------------------------------------------------------------------
def format_p(p: float, floor: bool = False) -> str:
    """``p = 0.041`` (2 significant digits), ``p < 0.0001`` when ``p`` is a Monte-Carlo floor, ``p < 1e-300`` for 0."""
    if not math.isfinite(p):
        return "p = n/a"
    if floor:
        return f"p < {p:.2g}"
    if p <= 0.0:
        return "p < 1e-300"
    return f"p = {p:.2g}"


# ---- results ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Correlation:
    """A rank correlation ``rho`` with its bootstrap CI ``[lo, hi]`` (level ``ci``), two-sided ``p`` and ``n`` pairs.

    ``test`` names where ``p`` comes from; ``p_at_floor`` is true when ``p`` is a Monte-Carlo floor.
    """

    rho: float
    lo: float
    hi: float
    p: float
    n: int
    test: str
    p_at_floor: bool = False
    ci: float = 0.95
    n_boot: int = 0  # bootstrap resamples behind [lo, hi] (0: no CI)

    @property
    def p_text(self) -> str:
        """``p`` formatted by :func:`format_p`, honouring the floor."""
        return format_p(self.p, self.p_at_floor)

    def as_dict(self) -> dict[str, float]:
        """``rho``, ``lo``, ``hi``, ``p``, ``n``: the keys of the old ``charts.spearman`` dicts (numbers only)."""
        return {"rho": self.rho, "lo": self.lo, "hi": self.hi, "p": self.p, "n": self.n}

    def __str__(self) -> str:
        return f"ρ = {self.rho:.2f} [{self.lo:.2f}, {self.hi:.2f}]{_resamples(self.n_boot)}, {self.p_text}, N = {self.n}"


def _resamples(n_boot: int) -> str:
    return f" ({n_boot} bootstrap resamples)" if n_boot else ""


@dataclass(frozen=True)
class Estimate:
    """A ``statistic`` of ``n`` values with its bootstrap percentile CI ``[lo, hi]`` (level ``ci``, from
    ``n_boot`` resamples). Reads as the triple ``(estimate, lo, hi)`` (what the verdict rules take)."""

    statistic: str
    estimate: float
    lo: float
    hi: float
    n: int
    n_boot: int
    ci: float = 0.95

    def __iter__(self) -> Iterator[float]:
        yield from (self.estimate, self.lo, self.hi)

    def __getitem__(self, index: int) -> float:
        return (self.estimate, self.lo, self.hi)[index]

    def __len__(self) -> int:
        return 3

    def as_dict(self) -> dict[str, float]:
        """``estimate``, ``lo``, ``hi``, ``n``, ``n_boot``."""
        return {"estimate": self.estimate, "lo": self.lo, "hi": self.hi, "n": self.n, "n_boot": self.n_boot}

    def __str__(self) -> str:
        return f"{self.statistic} = {self.estimate:.3g} [{self.lo:.3g}, {self.hi:.3g}]{_resamples(self.n_boot)}, N = {self.n}"


@dataclass(frozen=True)
class Proportion:
    """``successes`` of ``n``: ``share`` with a Wilson score interval ``[lo, hi]`` at level ``ci``."""

    successes: int
    n: int
    share: float
    lo: float
    hi: float
    ci: float = 0.95

    def as_dict(self) -> dict[str, float]:
        """``share``, ``lo``, ``hi``, ``successes``, ``n``."""
        return {"share": self.share, "lo": self.lo, "hi": self.hi, "successes": self.successes, "n": self.n}

    def __str__(self) -> str:
        return f"{self.share:.0%} [{self.lo:.0%}, {self.hi:.0%}] ({self.successes}/{self.n})"


@dataclass(frozen=True)
class PairedDifference:
    """Paired differences ``b − a``: ``estimate`` (their mean or median, per ``statistic``), a bootstrap CI
    ``[lo, hi]`` and a sign-flip permutation ``p`` — all three of that same statistic.

    ``mean`` and ``median`` are both given for description; ``positive`` is the share of strictly
    positive differences as a :class:`Proportion`. ``exact`` is true when all ``2**n`` sign flips were
    enumerated; ``p_at_floor`` when no random flip was as extreme (then ``p = 1/(n_resamples + 1)``).
    """

    statistic: Literal["mean", "median"]
    estimate: float
    lo: float
    hi: float
    p: float
    n: int
    mean: float
    median: float
    positive: Proportion
    exact: bool = False
    p_at_floor: bool = False
    ci: float = 0.95
    n_boot: int = 0  # bootstrap resamples behind [lo, hi]
    n_perm: int = 0  # random sign flips behind p (0: none, or every flip enumerated when ``exact``)

    @property
    def share_positive(self) -> float:
        """Share of strictly positive differences (``positive.share``)."""
        return self.positive.share

    @property
    def p_text(self) -> str:
        """``p`` formatted by :func:`format_p`, honouring the floor, with the sign flips behind it."""
        flips = " (all sign flips)" if self.exact else f" ({self.n_perm} sign flips)" if self.n_perm else ""
        return format_p(self.p, self.p_at_floor) + flips

    def as_dict(self) -> dict[str, float]:
        """The old ``charts.paired_summary`` keys plus ``estimate``; ``lo``/``hi``/``p`` refer to ``statistic``."""
        return {
            "estimate": self.estimate,
            "lo": self.lo,
            "hi": self.hi,
            "p": self.p,
            "mean": self.mean,
            "median": self.median,
            "share_positive": self.share_positive,
            "n": self.n,
        }

    def __str__(self) -> str:
        return (
            f"{self.statistic} difference = {self.estimate:.3g} [{self.lo:.3g}, {self.hi:.3g}]{_resamples(self.n_boot)}, "
            f"sign-flip {self.p_text}, positive in {self.positive}, N = {self.n}"
        )


# ---- vectorised statistics (last axis = observations) ----------------------------------------------
def _pearson(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pearson r along the last axis; NaN where either variable is constant."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=-1) / den
    return np.where(den > 0, np.clip(r, -1.0, 1.0), np.nan)


def _ranks(x: FloatArray) -> FloatArray:
    return np.asarray(sps.rankdata(x, axis=-1), dtype=np.float64)


def _spearman_stat(x: FloatArray, y: FloatArray, axis: int = -1) -> FloatArray:
    """Spearman ρ along the last axis (average ranks for ties)."""
    return _pearson(_ranks(x), _ranks(y))


def _partial_spearman_stat(x: FloatArray, y: FloatArray, *controls: FloatArray, axis: int = -1) -> FloatArray:
    """Pearson r of the ranks of x and y after least-squares removal of [1, ranks of controls] from both."""
    r = np.stack([_ranks(x), _ranks(y)], axis=-1)  # (..., n, 2)
    z = np.stack([np.ones_like(x), *(_ranks(c) for c in controls)], axis=-1)  # (..., n, 1 + k)
    res = r - z @ (np.linalg.pinv(z) @ r)
    ss_res = (res * res).sum(axis=-2)
    # a rank vector (numerically) inside the span of the controls leaves rounding noise, not a residual
    degenerate = (ss_res <= 1e-10 * (r * r).sum(axis=-2)).any(axis=-1)
    return np.where(degenerate, np.nan, _pearson(res[..., 0], res[..., 1]))


# ---- shared machinery ------------------------------------------------------------------------------
def _finite_columns(*arrays: npt.ArrayLike) -> list[FloatArray]:
    cols = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    if len({len(c) for c in cols}) > 1:
        raise ValueError(f"inputs differ in length: {[len(c) for c in cols]}")
    ok = np.logical_and.reduce([np.isfinite(c) for c in cols])
    return [c[ok] for c in cols]


def _rng(seed: int) -> dict[str, Any]:
    return {_RNG_KEYWORD: np.random.default_rng(seed)}


def _batch(n: int, n_resamples: int) -> int:
    return max(1, min(n_resamples, _BATCH_ELEMENTS // max(n, 1)))


def _bootstrap_ci(
    data: Sequence[FloatArray], statistic: Callable[..., FloatArray], *, paired: bool, n_boot: int, seed: int, ci: float
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic``; resamples where it is NaN are left out. NaNs if none remain."""
    n = len(data[0])
    if n_boot < 1 or n < 2:
        return NAN, NAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's DegenerateDataWarning when some resample is undefined
        res = sps.bootstrap(
            tuple(data),
            statistic,
            n_resamples=n_boot,
            batch=_batch(n, n_boot),
            vectorized=True,
            paired=paired,
            confidence_level=ci,
            method="percentile",
            **_rng(seed),
        )
    boots = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    boots = boots[np.isfinite(boots)]
    if len(boots) == 0:
        return NAN, NAN
    lo, hi = np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(lo), float(hi)


def _permutation_p(
    data: Sequence[FloatArray],
    statistic: Callable[..., FloatArray],
    *,
    permutation_type: Literal["samples", "pairings"],
    n_max: int,
    n_resamples: int,
    seed: int,
) -> tuple[float, bool, bool]:
    """Two-sided permutation p of ``statistic`` (compared by absolute value): ``(p, exact, at_floor)``."""

    def absolute(*args: FloatArray, axis: int = -1) -> FloatArray:
        return np.abs(statistic(*args, axis=axis))

    n = len(data[0])
    res = sps.permutation_test(
        tuple(data),
        absolute,
        permutation_type=permutation_type,
        vectorized=True,
        n_resamples=n_resamples,
        batch=_batch(n, min(n_resamples, n_max)),
        alternative="greater",
        **_rng(seed),
    )
    p = float(res.pvalue)
    exact = n_resamples >= n_max  # scipy's own rule for enumerating every permutation
    at_floor = not exact and math.isclose(p, 1 / (n_resamples + 1), rel_tol=1e-9)
    return p, exact, at_floor


def _t_p(rho: float, df: int) -> float:
    """Two-sided p of a correlation from t = ρ·√(df / (1 − ρ²)) on ``df`` degrees of freedom."""
    if not math.isfinite(rho) or df < 1:
        return NAN
    if abs(rho) >= 1.0:
        return 0.0
    t = rho * math.sqrt(df / (1.0 - rho * rho))
    return float(2.0 * sps.t.sf(abs(t), df))


# ---- public functions ------------------------------------------------------------------------------
def spearman(x: npt.ArrayLike, y: npt.ArrayLike, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> Correlation:
    """Spearman ρ of ``x`` and ``y`` (non-finite pairs dropped), its paired-bootstrap percentile CI and the
    two-sided p-value of :func:`scipy.stats.spearmanr` (t distribution, n − 2 df; for small n prefer
    :func:`permutation_correlation`). ``n_boot=0`` skips the CI."""
    xs, ys = _finite_columns(x, y)
    n = len(xs)
    test = f"t, df = {n - 2}"
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(NAN, NAN, NAN, NAN, n, test, ci=ci)
    res = sps.spearmanr(xs, ys)
    rho, p = float(res[0]), float(res[1])
    lo, hi = _bootstrap_ci((xs, ys), _spearman_stat, paired=True, n_boot=n_boot, seed=seed, ci=ci)
    return Correlation(rho, lo, hi, p, n, test, ci=ci, n_boot=n_boot)


def partial_spearman(
    df: pd.DataFrame, x: str, y: str, controls: Sequence[str], *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> Correlation:
    """Partial Spearman ρ of columns ``x`` and ``y`` given ``controls``: all columns are ranked, the ranks of
    the controls (and a constant) are regressed out of the ranks of x and y by least squares, and ρ is the
    Pearson r of the two residuals. Rows with a non-finite value are dropped. The CI bootstraps whole rows
    and recomputes everything (ranks included); p is two-sided from the t distribution with
    n − 2 − len(controls) degrees of freedom, as for a partial correlation of normal scores."""
    controls = list(controls)
    cols = _finite_columns(*(df[c].to_numpy(dtype=np.float64) for c in [x, y, *controls]))
    n, k = len(cols[0]), len(controls)
    dof = n - 2 - k
    test = f"t, df = {dof}"
    if dof < 1:
        return Correlation(NAN, NAN, NAN, NAN, n, test, ci=ci)
    rho = float(_partial_spearman_stat(*cols))
    if not math.isfinite(rho):
        return Correlation(NAN, NAN, NAN, NAN, n, test, ci=ci)
    lo, hi = _bootstrap_ci(cols, _partial_spearman_stat, paired=True, n_boot=n_boot, seed=seed, ci=ci)
    return Correlation(rho, lo, hi, _t_p(rho, dof), n, test, ci=ci, n_boot=n_boot)


def permutation_correlation(
    x: npt.ArrayLike, y: npt.ArrayLike, *, n_resamples: int = 9999, n_boot: int = 2000, seed: int = 0, ci: float = 0.95
) -> Correlation:
    """Spearman ρ with a two-sided permutation p-value (|ρ| of re-paired data ≥ |ρ| observed), for small
    samples where the t approximation is doubtful. Exact over all n! pairings when n! ≤ ``n_resamples``;
    otherwise Monte-Carlo with the floor rule (``p_at_floor``). CI as in :func:`spearman`."""
    xs, ys = _finite_columns(x, y)
    n = len(xs)
    if n < 3 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Correlation(NAN, NAN, NAN, NAN, n, "permutation", ci=ci)
    rx, ry = _ranks(xs), _ranks(ys)  # re-pairing permutes ranks, so rank once
    rho = float(_pearson(rx, ry))

    def rho_repaired(rx_perm: FloatArray, axis: int = -1) -> FloatArray:
        return _pearson(rx_perm, ry)

    n_max = math.factorial(n)
    p, exact, at_floor = _permutation_p((rx,), rho_repaired, permutation_type="pairings", n_max=n_max, n_resamples=n_resamples, seed=seed)
    test = f"permutation, exact over {n_max} pairings" if exact else f"permutation, {n_resamples} resamples"
    lo, hi = _bootstrap_ci((xs, ys), _spearman_stat, paired=True, n_boot=n_boot, seed=seed, ci=ci)
    return Correlation(rho, lo, hi, p, n, test, p_at_floor=at_floor, ci=ci, n_boot=n_boot)


def paired_difference(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    statistic: Literal["mean", "median"] = "median",
    n_boot: int = 2000,
    n_resamples: int = 9999,
    seed: int = 0,
    ci: float = 0.95,
) -> PairedDifference:
    """Differences ``b − a`` (non-finite pairs dropped): their mean or median, its bootstrap percentile CI,
    and a sign-flip test of that same statistic.

    The sign-flip test (:func:`scipy.stats.permutation_test`, one sample, ``permutation_type="samples"``)
    assumes under H0 that each difference is as likely positive as negative (symmetric about 0); p is
    two-sided, counting flips with |statistic| ≥ |observed|. It enumerates all 2**n flips when
    2**n ≤ ``n_resamples`` (exact), else draws ``n_resamples`` and applies the floor rule. Wilcoxon's
    signed-rank test is not used: it tests the Hodges–Lehmann pseudo-median, not the mean or median
    reported, which is the mismatch this function exists to avoid.
    """
    if statistic not in ("mean", "median"):
        raise ValueError(f"statistic must be 'mean' or 'median', not {statistic!r}")
    av, bv = _finite_columns(a, b)
    d = bv - av
    n = len(d)
    stat: Callable[..., FloatArray] = np.mean if statistic == "mean" else np.median

    def center(values: FloatArray, axis: int = -1) -> FloatArray:
        return np.asarray(stat(values, axis=axis), dtype=np.float64)

    positive = proportion(int((d > 0).sum()), n, ci=ci)
    if n == 0:
        return PairedDifference(statistic, NAN, NAN, NAN, NAN, 0, NAN, NAN, positive, ci=ci)
    estimate = float(center(d))
    if n < 2:
        p, exact, at_floor = NAN, False, False
    else:
        p, exact, at_floor = _permutation_p((d,), center, permutation_type="samples", n_max=2**n, n_resamples=n_resamples, seed=seed)
    lo, hi = _bootstrap_ci((d,), center, paired=False, n_boot=n_boot, seed=seed, ci=ci)
    return PairedDifference(
        statistic,
        estimate,
        lo,
        hi,
        p,
        n,
        mean=float(d.mean()),
        median=float(np.median(d)),
        positive=positive,
        exact=exact,
        p_at_floor=at_floor,
        ci=ci,
        n_boot=n_boot,
        n_perm=0 if exact or n < 2 else n_resamples,
    )


def proportion(successes: int, n: int, *, ci: float = 0.95) -> Proportion:
    """``successes / n`` with a Wilson score interval (no continuity correction), e.g. for "top-1 agrees"."""
    successes, n = int(successes), int(n)
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return Proportion(0, 0, NAN, NAN, NAN, ci)
    interval = sps.binomtest(successes, n).proportion_ci(confidence_level=ci, method="wilson")
    return Proportion(successes, n, successes / n, float(interval.low), float(interval.high), ci)


def _vectorised(statistic: Callable[..., Any]) -> Callable[..., FloatArray]:
    """``statistic`` along the last axis: as it is when it takes ``axis`` (numpy's), else row by row."""
    try:
        takes_axis = "axis" in inspect.signature(statistic).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        takes_axis = False
    if takes_axis:
        return lambda x, axis=-1: np.asarray(statistic(x, axis=axis), dtype=np.float64)
    return lambda x, axis=-1: np.apply_along_axis(lambda row: float(statistic(row)), axis, x)


def bootstrap_ci(
    values: npt.ArrayLike,
    statistic: Callable[..., Any] = np.median,
    n_boot: int = 2000,
    seed: int = 0,
    *,
    ci: float = 0.95,
    name: str | None = None,
) -> Estimate:
    """``statistic`` of the finite ``values`` with its percentile bootstrap CI (the module's one bootstrap,
    :func:`scipy.stats.bootstrap`, ``n_boot`` resamples): an :class:`Estimate`, which unpacks as
    ``(estimate, lo, hi)``. ``statistic``: a function of a 1-d array (with ``axis``, it is vectorised)."""
    (x,) = _finite_columns(values)
    label = str(name or getattr(statistic, "__name__", None) or "statistic")
    if len(x) < 2:
        return Estimate(label, NAN, NAN, NAN, len(x), n_boot, ci)
    stat = _vectorised(statistic)
    lo, hi = _bootstrap_ci((x,), stat, paired=False, n_boot=n_boot, seed=seed, ci=ci)
    return Estimate(label, float(stat(x)), lo, hi, len(x), n_boot, ci)


def iqr(x: npt.ArrayLike, axis: int = -1) -> Any:
    """Interquartile range (along ``axis``)."""
    q25, q75 = np.quantile(np.asarray(x, dtype=np.float64), [0.25, 0.75], axis=axis)
    return q75 - q25


def cv(x: npt.ArrayLike, axis: int = -1) -> Any:
    """Coefficient of variation, standard deviation over mean (along ``axis``; NaN where the mean is 0)."""
    a = np.asarray(x, dtype=np.float64)
    mean = a.mean(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean != 0, a.std(axis=axis, ddof=1) / np.where(mean != 0, mean, 1.0), np.nan)


def median_ci(values: npt.ArrayLike, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> Estimate:
    """The median with its bootstrap CI (:func:`bootstrap_ci`)."""
    return bootstrap_ci(values, np.median, n_boot, seed, ci=ci, name="median")


def iqr_ci(values: npt.ArrayLike, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> Estimate:
    """The interquartile range with its bootstrap CI: how much the values spread (finding 2)."""
    return bootstrap_ci(values, iqr, n_boot, seed, ci=ci, name="IQR")


def cv_ci(values: npt.ArrayLike, *, n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> Estimate:
    """The coefficient of variation (sd / mean) with its bootstrap CI: spread relative to the level."""
    return bootstrap_ci(values, cv, n_boot, seed, ci=ci, name="CV")


def correlation_table(df: pd.DataFrame, x: str, measures: Sequence[str], controls: Sequence[str] = ()) -> pd.DataFrame:
    """Spearman ρ of ``x`` with each measure (bootstrap CI, N, its resamples), and the partial ρ with ``controls`` held fixed."""
    rows = {}
    for m in measures:
        raw = spearman(df[x], df[m])
        row = {"rho": raw.rho, "lo": raw.lo, "hi": raw.hi, "p": raw.p_text, "N": raw.n, "resamples": raw.n_boot}
        if controls:
            part = partial_spearman(df, x, m, list(controls))
            row |= {
                "partial rho": part.rho,
                "partial lo": part.lo,
                "partial hi": part.hi,
                "partial N": part.n,
                "partial resamples": part.n_boot,
            }
        rows[m] = row
    return pd.DataFrame(rows).T


def residual_spread(df: pd.DataFrame, y: str, controls: Sequence[str]) -> Estimate:
    """IQR of ``y`` once ``controls`` are regressed out (least squares, intercept kept), with a bootstrap CI:
    the spread across inputs that the controls do not explain."""
    d = df[[y, *controls]].replace([np.inf, -np.inf], np.nan).dropna()
    x = np.column_stack([np.ones(len(d)), d[list(controls)].to_numpy(dtype=np.float64)])
    beta, *_ = np.linalg.lstsq(x, d[y].to_numpy(dtype=np.float64), rcond=None)
    resid = d[y].to_numpy(dtype=np.float64) - x @ beta
    return bootstrap_ci(resid, iqr, name="IQR of the residuals")
