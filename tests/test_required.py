"""Required sizes by bisection (``method/required.py``, docs/method.md §5) against brute force: the
search over synthetic curves against the one-condition-at-a-time version and every count, and whole
traces on tiny models against masked passes at every edge count of the root's graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from density_nb import trace
from density_nb.config import TraceConfig
from density_nb.method import required
from density_nb.method.measures import NUCLEUS_SIZES
from density_nb.method.metrics import distribution_metrics
from density_nb.method.pipeline import _masked, setup
from density_nb.method.stratify import expand, stratum_sizes


@dataclass
class Curve:
    tv: np.ndarray
    top1: np.ndarray
    nu: np.ndarray

    def at(self, counts: np.ndarray) -> Curve:
        return Curve(self.tv[counts], self.top1[counts], self.nu[counts])


def _brute_force_answer(cond: required.Condition, curve: Curve, n_grid: np.ndarray, input_edges: int, rtol: float) -> int:
    """The search, one condition at a time, asking the table of every count."""
    lo, hi = required.bracket(n_grid, required.holds(cond, curve.at(n_grid)), input_edges)
    return required.search(lambda n: bool(required.holds(cond, curve.at(np.array([n])))[0]), lo, hi, rtol)


def _check_against_every_count(found: int, cond: required.Condition, curve: Curve, n_grid: np.ndarray, input_edges: int) -> None:
    """With rtol = 0: the answer holds, the count below it does not (or is short of the input), it lies in
    the grid's bracket, and where the condition changes once in the bracket it is the smallest count there."""
    ok = required.holds(cond, curve)  # [|E| + 1] at every count
    lo, hi = required.bracket(n_grid, ok[n_grid], input_edges)
    assert lo < found <= hi and ok[found]
    assert found - 1 < input_edges or not ok[found - 1]
    inside = ok[lo + 1 : hi + 1]
    if np.all(inside[:-1] <= inside[1:]):  # monotone in the bracket: the first count that holds
        assert found == lo + 1 + int(np.argmax(inside))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.integers(2, 400),  # |E|
    st.integers(0, 10_000),
    st.floats(0.0, 0.3),  # rtol
    st.integers(1, 4),  # roots
)
def test_search_equals_one_condition_at_a_time_and_brute_force(total, seed, rtol, n_roots):
    """Random, non-monotone curves over every count 0..|E| (the full graph last: TV 0, top-1, ν = 99):
    every root and condition bisected at once equals each searched alone, asks only inside its bracket,
    and (rtol = 0) lands on an up-crossing."""
    rng = np.random.default_rng(seed)
    grid = np.unique(np.append(np.sort(rng.uniform(0.0, 1.0, rng.integers(1, 8))), 1.0))
    conds = required.conditions((0.1, 0.5))
    curves, grids, inputs = [], [], []
    for _ in range(n_roots):
        tv = np.clip(np.cumsum(rng.normal(-1.0 / total, 0.05, total + 1)) + rng.uniform(0.3, 1.0), 0, 1)
        top1 = rng.random(total + 1) < np.linspace(0.1, 0.9, total + 1)
        nu = np.where(top1, rng.choice([0, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99], total + 1), 0.0)
        tv[-1], top1[-1], nu[-1] = 0.0, True, 99.0
        curves.append(Curve(tv, top1, nu))
        grids.append(stratum_sizes(grid, total))
        inputs.append(int(rng.integers(1, total + 1)))
    asked: list[tuple[int, np.ndarray]] = []

    def evaluate(requests):
        asked.extend(requests)
        return [curves[r].at(counts) for r, counts in requests]

    found = required.required_edges(grids, [c.at(g) for c, g in zip(curves, grids)], inputs, conds, rtol, evaluate)
    for r in range(n_roots):
        for c, cond in enumerate(conds):
            assert found[r, c] == _brute_force_answer(cond, curves[r], grids[r], inputs[r], rtol)
            if rtol == 0:
                _check_against_every_count(int(found[r, c]), cond, curves[r], grids[r], inputs[r])
    for r, counts in asked:
        assert np.all(np.diff(counts) > 0) and counts.min() >= inputs[r] and counts.max() < total


def test_bracket_and_search_by_hand():
    n_grid = np.array([0, 2, 5, 20, 100])
    assert required.bracket(n_grid, np.array([True, False, False, True, True]), input_edges=3) == (5, 20)  # a plateau hit is ignored
    assert required.bracket(n_grid, np.array([False, False, True, True, True]), input_edges=4) == (
        3,
        5,
    )  # previous stratum short of the input
    assert required.bracket(n_grid, np.array([False, False, False, False, True]), input_edges=1) == (20, 100)
    ok = np.zeros(101, bool)
    ok[[9, 10, 11, 14, 15, 16, 17, 18, 19, 20]] = True  # holds at 9–11, fails 12–13, holds again from 14
    assert required.search(lambda n: bool(ok[n]), 5, 20, 0.0) == 14  # mid 12 fails, 16 holds, 14 holds, 13 fails
    assert required.search(lambda n: bool(ok[n]), 5, 20, 0.5) == 20  # 15 wide > ⌊0.5 · 20⌋ = 10: mid 12 fails; (12, 20) is 8 ≤ 10 wide
    assert required.settled(99, 100, 0.0) and not required.settled(98, 100, 0.0) and required.settled(90, 100, 0.1)


def _every_count(model, text: str, root: int, config: TraceConfig) -> tuple[Curve, int]:
    """Metrics of the masked pass at every edge count 0..|E| of one root's graph (the full graph: the
    full run's), and its input edges."""
    _, arch, (prep,) = setup(model, [text], [[root]], config)
    ranks = expand(prep.weights, root, None, prep.in_edges)
    counts = np.arange(ranks.total_edges, dtype=np.int64)
    rows = [
        _masked(arch, [prep], [ranks], [(0, 0)], [part], config.norms == "frozen")
        for part in np.array_split(counts, max(1, len(counts) // 256))
    ]
    logits = torch.cat([*rows, prep.full[0][None]])
    m = distribution_metrics(prep.full[0], logits, None, 1)
    return Curve(m.tv, m.top1, m.nu), ranks.total_edges


WORDS = ("The", "small", "boat", "drifted", "past", "the", "old", "mill", "and", "the", "miller", "waved")


@settings(max_examples=10, deadline=None, derandomize=True)
@given(st.integers(2, 9), st.sampled_from(["fast", (1e-3, 1e-2, 0.05, 0.2, 0.5)]), st.sampled_from(["live", "frozen"]))
def test_trace_equals_brute_force_over_every_edge_count(tiny, n_words, grid, norms):
    """``trace(..., refine=True, refine_rtol=0)`` on a tiny model: each required size is what the search
    gives when asked the masked pass at every edge count (brute force), and is an up-crossing there."""
    text = " ".join(WORDS[:n_words])
    config = TraceConfig(grid=grid, norms=norms, refine=True, refine_rtol=0.0)
    result = trace(tiny, text, roots="last", config=config, progress=False)
    root = int(result.roots[0])
    curve, total = _every_count(tiny, text, root, config)
    assert total == result.total_edges[0]
    n_grid, input_edges = result.n_edges[0], int(result.input_edges[0])
    np.testing.assert_allclose(curve.tv[n_grid], result.tv[0], atol=1e-6)  # the grid's strata are the brute force's rows
    found = {**{f"tv{round(100 * t)}": result.required_edges(f"tv{round(100 * t)}")[0] for t in config.tv_levels}}
    found["top1"] = result.required_edges("top1")[0]
    found |= {f"nu{c}": result.required_edges(f"nu{c}")[0] for c in NUCLEUS_SIZES}
    for cond, name in zip(required.conditions(config.tv_levels), found):
        assert found[name] == _brute_force_answer(cond, curve, n_grid, input_edges, 0.0), name
        _check_against_every_count(int(found[name]), cond, curve, n_grid, input_edges)


def test_refined_sizes_in_the_summary(tiny_llama):
    text = "Paris is the capital of France, and Berlin is the capital of"
    plain = trace(tiny_llama, text, roots="all", grid="paper", progress=False)
    refined = trace(tiny_llama, text, roots="all", grid="paper", refine=True, tv_levels=(0.2, 0.5), progress=False)
    s = refined.summary()
    for column in ("s_tv20", "edges_tv20", "s_tv50", "s_top1_exact", "edges_top1", "s_nu20_exact", "edges_nu90"):
        assert column in s
    assert "s_tv10" not in s and "s_tv10" not in plain.summary()
    # the grid's numbers do not move: refinement only adds passes
    for name in ("tv", "kl", "nu", "top1", "topk_prob", "input_edges"):
        assert np.array_equal(getattr(plain, name), getattr(refined, name)), name
    # every refined size lies inside its grid bracket: above the previous grid size past the input, at most the grid's
    grid_top1 = np.array([n[np.flatnonzero(ok & (n >= i))[0]] for n, ok, i in zip(refined.n_edges, refined.top1, refined.input_edges)])
    assert np.all(refined.edges_top1 <= grid_top1) and np.all(refined.edges_top1 >= refined.input_edges)
    np.testing.assert_array_equal(s.s_top1_exact, refined.edges_top1 / refined.total_edges)
    with pytest.raises(Exception, match="refine=True"):
        plain.required("top1")
    with pytest.raises(Exception, match="Unknown condition"):
        refined.required("tv10")
