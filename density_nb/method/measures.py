"""Per-root numbers read off a curve over the size grid (numpy only, no torch: results are read and
summarised without it): the area under TV over log10 s, the sizes where a condition first holds on the
grid, the mean TV past the input (plain, and over the empty graph's TV) and over a fixed range of sizes."""

from __future__ import annotations

import numpy as np

NUCLEUS_SIZES = (1, 5, 10, 20, 40, 60, 80, 90)  # percent: the published "required size for nucleus k"
LOG_S_MIN = -5.0  # the area runs over log10 s from 1e-5 to 1


def auc_log(sizes: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area of ``values`` over log10(sizes), from 1e-5 to 1 (the full graph, value 0).

    sizes: nominal grid sizes, increasing, last == 1. Sizes below 1e-5 are clipped to it; a grid
    that starts above 1e-5 is extended down to it with its first value held constant.
    """
    x = np.log10(np.clip(np.asarray(sizes, dtype=np.float64), 10**LOG_S_MIN, 1.0))
    y = np.asarray(values, dtype=np.float64)
    if x[0] > LOG_S_MIN:
        x, y = np.concatenate([[LOG_S_MIN], x]), np.concatenate([y[:1], y])
    return float(np.trapezoid(y, x))


def smallest_agreeing(sizes: np.ndarray, top1: np.ndarray) -> tuple[float, float]:
    """``s_top1`` (first size agreeing with the full top-1) and ``s_top1_stable`` (agreement from
    there on for every larger size). NaN when no size agrees (never the case with the full graph last)."""
    top1 = np.asarray(top1, dtype=bool)
    first = np.flatnonzero(top1)
    s_first = float(sizes[first[0]]) if first.size else float("nan")
    disagree = np.flatnonzero(~top1)
    stable_idx = disagree[-1] + 1 if disagree.size else 0
    s_stable = float(sizes[stable_idx]) if stable_idx < len(sizes) else float("nan")
    return s_first, s_stable


def smallest_at_least(sizes: np.ndarray, values: np.ndarray, level: float) -> float:
    """The smallest grid size whose value is ≥ ``level`` (e.g. the size required for nucleus
    ``level``); NaN when none is."""
    hits = np.flatnonzero(np.asarray(values) >= level)
    return float(sizes[hits[0]]) if hits.size else float("nan")


def _past_input(sizes: np.ndarray, tv: np.ndarray, s_input: float) -> tuple[np.ndarray, np.ndarray]:
    """log10 of the grid sizes from the first one that reaches the input (``s ≥ s_input``) on, and their TV."""
    sizes, tv = np.asarray(sizes, dtype=np.float64), np.asarray(tv, dtype=np.float64)
    past = sizes >= s_input
    return np.log10(sizes[past]), tv[past]


def tv_post_input(sizes: np.ndarray, tv: np.ndarray, s_input: float) -> float:
    """Mean TV over log10 s, from the first grid size that reaches the input (``s ≥ s_input``) to 1, by the
    trapezoid rule (docs/method.md §5): the density without the uniform plateau, in TV units [0, 1]. NaN
    when only the full graph reaches the input."""
    x, y = _past_input(sizes, tv, s_input)
    if len(x) < 2:
        return float("nan")
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def tv_post_input_over_empty(sizes: np.ndarray, tv: np.ndarray, tv_empty: float, s_input: float) -> float:
    """Mean of TV / TV(empty graph) over the range of :func:`tv_post_input` (formerly
    ``density_plateau_free``). 0: every such subgraph gives the full distribution; 1: as far from it as
    the uniform output; above 1: further (mid-size subgraphs can be). ``tv_empty`` is a function of the
    full distribution, so the ratio re-couples to it (docs/method.md, the measure card). NaN when only
    the full graph reaches the input."""
    x, y = _past_input(sizes, tv, s_input)
    if len(x) < 2 or not tv_empty > 0:
        return float("nan")
    return float(np.trapezoid(y / tv_empty, x) / (x[-1] - x[0]))


def tv_between(sizes: np.ndarray, tv: np.ndarray, low: float, high: float) -> float:
    """Mean TV over log10 s from ``low`` to ``high``: the curve is linear in log10 s between grid sizes and
    holds its first value below the grid (as in :func:`auc_log`); ``low`` and ``high`` need not be grid
    sizes. The range is the same for every prediction whatever its prompt's length."""
    x = np.log10(np.clip(np.asarray(sizes, dtype=np.float64), 10**LOG_S_MIN, 1.0))
    y = np.asarray(tv, dtype=np.float64)
    lo, hi = np.log10(low), np.log10(high)
    xs = np.concatenate([[lo], x[(x > lo) & (x < hi)], [hi]])
    return float(np.trapezoid(np.interp(xs, x, y), xs) / (hi - lo))
