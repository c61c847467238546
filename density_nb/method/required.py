"""Required sizes without a grid lattice (docs/method.md §5): for each root and condition (TV ≤ τ, top-1
agreement, shared nucleus ν ≥ c), the number of edges at which the condition first holds, found by
bisection over the edge ranking inside the bracket that the size grid gives. Numpy only: the masked
passes are the caller's (``evaluate``), so the search is tested against brute force on its own.

"First", exactly (TV is not monotone in the size):

1. Past the input only: grid strata with ``n_k ≥ input_edges``; smaller ones output the uniform
   distribution (the plateau) and are never asked.
2. The bracket: ``hi`` = the edge count of the first grid stratum past the input where the condition
   holds (the full graph always qualifies); ``lo`` = the largest count known not to, the previous grid
   stratum when it is past the input, else ``input_edges − 1``.
3. Bisection: while ``hi − lo > max(1, ⌊rtol · hi⌋)``, evaluate ``mid = lo + (hi − lo) // 2`` and move
   ``hi`` to it if the condition holds there, else ``lo``.
4. The required size is the final ``hi``: a count where the condition holds while it fails at ``lo``
   (or ``lo`` is short of the input), so an up-crossing lies in ``(lo, hi]``. Where the condition
   changes only once inside the bracket (with ``rtol = 0``) this is the smallest count in the bracket
   at which it holds; where it flips several times, it is the crossing the bisection lands on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import numpy as np

from density_nb.method.measures import NUCLEUS_SIZES

Kind = Literal["tv", "top1", "nu"]
Condition = tuple[Kind, float]  # ("tv", τ): TV ≤ τ; ("top1", 0): top-1 agrees; ("nu", c): ν ≥ c percent


class Curve(Protocol):
    """What a condition reads at some sizes: per size, TV, top-1 agreement and ν (``metrics.Metrics`` is one)."""

    tv: np.ndarray
    top1: np.ndarray
    nu: np.ndarray


def conditions(tv_levels: Sequence[float]) -> list[Condition]:
    """Every condition a trace refines: TV ≤ each level, top-1 agreement, then ν ≥ each nucleus size."""
    return [("tv", float(t)) for t in tv_levels] + [("top1", 0.0)] + [("nu", float(c)) for c in NUCLEUS_SIZES]


def holds(condition: Condition, curve: Curve) -> np.ndarray:
    """[K] whether ``condition`` holds at each of the curve's sizes."""
    kind, level = condition
    if kind == "tv":
        return np.asarray(curve.tv) <= level
    if kind == "top1":
        return np.asarray(curve.top1, dtype=bool)
    return np.asarray(curve.nu) >= level


def bracket(n_edges: np.ndarray, ok: np.ndarray, input_edges: int) -> tuple[int, int]:
    """``(lo, hi)`` of step 2: ``hi`` the first grid count past the input where ``ok``, ``lo`` the largest
    count below it known not to qualify (``input_edges − 1`` when no grid stratum between them is past
    the input). ``n_edges``: [K] increasing, the full graph last (where ``ok`` must hold)."""
    n_edges, ok = np.asarray(n_edges, dtype=np.int64), np.asarray(ok, dtype=bool)
    past = n_edges >= input_edges
    hits = np.flatnonzero(past & ok)
    if not hits.size:
        raise ValueError("the condition must hold at the full graph (the last stratum)")
    k = int(hits[0])
    hi = int(n_edges[k])
    lo = int(n_edges[k - 1]) if k > 0 and past[k - 1] else int(input_edges) - 1
    return min(lo, hi - 1), hi


def settled(lo: int, hi: int, rtol: float) -> bool:
    """True when the bracket is one edge wide, or at most ``rtol`` of its upper end."""
    return hi - lo <= max(1, int(rtol * hi))


def midpoint(lo: int, hi: int) -> int:
    return lo + (hi - lo) // 2


def search(ok_at: Callable[[int], bool], lo: int, hi: int, rtol: float) -> int:
    """Steps 3–4 for one condition, asking ``ok_at(n)`` one count at a time (the slow obvious version of
    :func:`required_edges`, for tests)."""
    while not settled(lo, hi, rtol):
        mid = midpoint(lo, hi)
        if ok_at(mid):
            hi = mid
        else:
            lo = mid
    return hi


Evaluate = Callable[[list[tuple[int, np.ndarray]]], list[Curve]]


def required_edges(
    n_edges: Sequence[np.ndarray],
    curves: Sequence[Curve],
    input_edges: Sequence[int],
    conds: Sequence[Condition],
    rtol: float,
    evaluate: Evaluate,
) -> np.ndarray:
    """[R, C] the required edge count of each root (its grid counts ``n_edges[r]``, its grid curve
    ``curves[r]``, its ``input_edges[r]``) for each condition, every root and condition bisected at once:
    each round asks ``evaluate`` for the distinct midpoints of every unsettled bracket, as a list of
    ``(root, counts)`` (each root once, counts increasing), and gets back each root's curve at them."""
    n_roots, n_conds = len(n_edges), len(conds)
    lo = np.zeros((n_roots, n_conds), dtype=np.int64)
    hi = np.zeros((n_roots, n_conds), dtype=np.int64)
    for r in range(n_roots):
        for c, cond in enumerate(conds):
            lo[r, c], hi[r, c] = bracket(n_edges[r], holds(cond, curves[r]), int(input_edges[r]))
    while True:
        active = [(r, c) for r in range(n_roots) for c in range(n_conds) if not settled(int(lo[r, c]), int(hi[r, c]), rtol)]
        if not active:
            return hi
        asked: dict[int, set[int]] = {}
        for r, c in active:
            asked.setdefault(r, set()).add(midpoint(int(lo[r, c]), int(hi[r, c])))
        requests = [(r, np.array(sorted(mids), dtype=np.int64)) for r, mids in sorted(asked.items())]
        answers = dict(zip((r for r, _ in requests), evaluate(requests)))
        at = {r: {int(n): i for i, n in enumerate(counts)} for r, counts in requests}
        for r, c in active:
            mid = midpoint(int(lo[r, c]), int(hi[r, c]))
            if holds(conds[c], answers[r])[at[r][mid]]:
                hi[r, c] = mid
            else:
                lo[r, c] = mid
