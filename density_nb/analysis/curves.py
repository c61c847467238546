"""Per-passage numbers for the findings, from any set of results: a list of ``DensityResult``s, a corpus
run, or its ``(summary, curves)`` tables (``analysis.tables``; one row per prediction, ``passage_id``
first): the required size for a condition (by bisection where traced so, else on the grid), strata past
the input, the plateau's part, composition per stratum and per phase against the base rate, the
baselines where they are informative, what the first stratum past the input predicts, and token
frequency. Functions that take a ``source`` accept all of these; the others take one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from density_nb.analysis import stats
from density_nb.analysis.aggregate import CONSTRUCTION, composition_counts
from density_nb.analysis.frequency import log10_frequency
from density_nb.analysis.tables import Source, tables
from density_nb.errors import DensityNBError

ALL_BASELINES = ("random", "random_residual", "inverse")


def smallest_s(curves: pd.DataFrame, column: str = "tv", threshold: float = 0.1, stable: bool = False) -> pd.Series:
    """Per passage: the smallest grid size with ``column <= threshold`` (``stable``: from which on it holds
    for every larger size). The full graph always qualifies (TV = 0 there)."""

    def one(group: pd.DataFrame) -> float:
        ok = (group[column] <= threshold).to_numpy()
        s = group.s.to_numpy()
        if stable:
            bad = np.flatnonzero(~ok)
            return float(s[bad[-1] + 1]) if bad.size else float(s[0])
        return float(s[np.argmax(ok)])

    return curves.sort_values(["passage_id", "stratum"]).groupby("passage_id")[["s", column]].apply(one)


def share_by_size(curves: pd.DataFrame, column: str, label: str | None = None) -> pd.DataFrame:
    """Per grid size: the share of passages whose boolean ``column`` is true, with a Wilson 95 % interval
    (a proportion, not a median of booleans)."""
    rows = []
    for s, group in curves.groupby("s"):
        values = group[column].dropna().astype(bool)
        p = stats.proportion(int(values.sum()), len(values))
        rows.append({"s": s, "share": p.share, "lo": p.lo, "hi": p.hi, "n": p.n, "series": label or column})
    return pd.DataFrame(rows)


def reaches_input(source: Source) -> pd.Series:
    """Per curves row: True for the strata that reach an input embedding (``n_edges >= input_edges``, the
    curves' ``reaches_input``): only these compute anything; smaller ones output the uniform distribution
    (docs/method.md §8), whose "top-1" is token 0."""
    summary, curves = tables(source)
    if "reaches_input" in curves:
        return curves["reaches_input"].astype(bool)
    need = curves.passage_id.map(summary.set_index("passage_id").input_edges)
    return (curves.n_edges >= need).rename("reaches_input")


def _condition(curves: pd.DataFrame, condition: str) -> pd.Series:
    """Per curves row: whether ``condition`` (``"tv10"``: TV ≤ 0.10, ``"top1"``, ``"nu20"``: ν ≥ 20 %) holds."""
    if condition == "top1":
        return curves["top1"].astype(bool)
    for prefix, column in (("tv", "tv"), ("nu", "nu")):
        if condition.startswith(prefix) and condition[len(prefix) :].isdigit():
            level = int(condition[len(prefix) :])
            return curves[column] <= level / 100 if column == "tv" else curves[column] >= level
    raise DensityNBError(f"Unknown condition {condition!r}: use 'tv10' (TV ≤ 0.10; any whole percent), 'top1' or 'nu20' (ν ≥ 20 %).")


def required_size(source: Source, condition: str = "tv10", exact: bool = True) -> pd.Series:
    """Per passage: the smallest size (edges / |E|) at which ``condition`` holds past the input
    (``"tv10"``: TV ≤ 0.10, ``"tv50"``, ``"top1"``, ``"nu20"``: ν ≥ 20 %; docs/method.md §5 defines "first").
    ``exact``: found by bisection over the edge ranking (the summary's ``s_tv10``, ``s_top1_exact``,
    ``s_nu20_exact``: runs traced with ``refine=True``, corpus runs by default) where the run has it; else
    (or ``exact=False``) the nominal grid size of the first stratum past the input where it holds, which
    can only take grid values (a lattice)."""
    summary, curves = tables(source)
    column = {"top1": "s_top1_exact"}.get(condition, f"s_{condition}_exact" if condition.startswith("nu") else f"s_{condition}")
    if exact and column in summary:
        return summary.set_index("passage_id")[column].rename(condition)
    ok = _condition(curves, condition) & reaches_input((summary, curves))
    first = curves[ok].sort_values(["passage_id", "stratum"]).groupby("passage_id").s.first()
    return first.reindex(summary.passage_id).rename(condition)


def tv_at(curves: pd.DataFrame, s: float, column: str = "tv") -> pd.Series:
    """Per passage: ``column`` at the grid size nearest ``s`` (in log10)."""
    sizes = np.sort(curves.s.unique())
    nearest = sizes[np.argmin(np.abs(np.log10(sizes) - np.log10(s)))]
    return curves[curves.s == nearest].set_index("passage_id")[column]


def plateau_share(summary: pd.DataFrame, grid: Sequence[float]) -> pd.Series:
    """Per passage: the part of ``auc_tv`` that the uniform plateau contributes (its height ``tv_empty`` times
    its width, from 1e-5 to the last grid size short of the input), as a share of ``auc_tv``."""
    sizes = np.asarray(sorted(grid), dtype=np.float64)

    def one(row: Any) -> float:
        last = sizes[sizes < row.s_input]
        if not last.size:
            return 0.0
        width = np.log10(last[-1]) + 5.0
        return float(row.tv_empty * width / row.auc_tv) if row.auc_tv > 0 else float("nan")

    return pd.Series([one(r) for r in summary.itertuples()], index=summary.passage_id)


def plateau_area(summary: pd.DataFrame, grid: Sequence[float]) -> pd.Series:
    """Per passage: the area (TV × decades) the uniform plateau adds to ``auc_tv`` (docs/method.md §8)."""
    share = plateau_share(summary, grid)
    return share * summary.set_index("passage_id").auc_tv


COMPONENTS = ("attention", "MLP", "residual")
QUARTILES = ("Q1 (first layers)", "Q2", "Q3", "Q4 (last layers)")


def stratum_composition(curves: pd.DataFrame, random: bool = False, added: bool = False) -> pd.DataFrame:
    """Shares of each stratum's edges by component and by layer quartile, one row per (passage, stratum):
    columns ``passage_id``, ``stratum``, ``s``, ``n`` and one per part of :data:`COMPONENTS` and
    :data:`QUARTILES`. ``random``: of the random baseline's strata (same sizes); ``added``: of the edges
    each stratum adds to the previous one (what joins as s grows)."""
    c = curves.sort_values(["passage_id", "stratum"]).reset_index(drop=True)
    counts = pd.DataFrame(composition_counts(c, random), columns=[*COMPONENTS, *QUARTILES])  # [rows, 7]
    if added:
        counts = counts.groupby(c.passage_id).diff()
    n_comp = counts[list(COMPONENTS)].sum(axis=1)
    n_layer = counts[list(QUARTILES)].sum(axis=1)
    out = pd.DataFrame({"passage_id": c.passage_id, "stratum": c.stratum, "s": c.s, "n": n_comp})
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in COMPONENTS:
            out[name] = counts[name] / n_comp.where(n_comp > 0)
        for name in QUARTILES:
            out[name] = counts[name] / n_layer.where(n_layer > 0)
    return out.dropna(subset=["attention"]).reset_index(drop=True)


def long_shares(shares: pd.DataFrame, parts: Sequence[str]) -> pd.DataFrame:
    """:func:`stratum_composition` in long format (``passage_id``, ``s``, ``part``, ``share``) for charts."""
    return shares.melt(id_vars=["passage_id", "s"], value_vars=list(parts), var_name="part", value_name="share").dropna()


def baseline_by_size(source: Source) -> pd.DataFrame:
    """Per grid size: the median TV of the traced strata, of each baseline and of the uniform output, and
    whether each random baseline is *informative* there (its median TV below the uniform output's: a
    baseline that does worse than the empty graph makes "traced beats random" true by construction)."""
    summary, curves = tables(source)
    c = curves.merge(summary[["passage_id", "tv_empty"]], on="passage_id")
    cols = ["tv"] + [f"tv_{b}" for b in ALL_BASELINES if f"tv_{b}" in c]
    table = c[c.s < 1].groupby("s")[[*cols, "tv_empty"]].median()
    for b in ("random", "random_residual"):  # the inverse answers another question (what removing the stratum does)
        if f"tv_{b}" in table:
            table[f"{b} informative"] = table[f"tv_{b}"] < table["tv_empty"]
    return table


def versus_baseline(source: Source, baseline: str, informative_only: bool = True) -> tuple[Any, list[float]]:
    """Per passage, the mean over sizes of TV(baseline) − TV(traced), over the sizes where the baseline is
    informative (better than the uniform output, :func:`baseline_by_size`) or over all sizes < 1; returns
    the paired comparison (``stats.paired_difference``, mean) and the sizes used (empty: nothing to compare)."""
    summary, curves = tables(source)
    table = baseline_by_size((summary, curves))
    sizes = list(table.index[table[f"{baseline} informative"]]) if informative_only else list(table.index)
    c = curves[curves.s.isin(sizes)]
    gap = (c[f"tv_{baseline}"] - c.tv).groupby(c.passage_id).mean()
    if not sizes:
        return None, []
    return stats.paired_difference(np.zeros(len(gap)), gap.to_numpy(), statistic="mean"), sizes


def mean_tv_from(source: Source, s_from: pd.Series, over_empty: bool = False) -> pd.Series:
    """Per passage: the mean TV over log10 s from the first grid size ≥ ``s_from[passage]`` to 1 (trapezoid
    rule): ``tv_post_input`` over a range chosen by the caller, so that predictions whose plateaus end at
    different sizes (the same prediction after prompts of different lengths) are compared over the same
    range (the length-fair variant). ``over_empty``: of TV / ``tv_empty`` (``tv_post_input_over_empty``'s
    ratio, which re-couples to the full distribution)."""
    summary, curves = tables(source)
    empty = summary.set_index("passage_id").tv_empty

    def one(g: pd.DataFrame) -> float:
        pid = int(g.passage_id.iloc[0])
        g = g[g.s >= s_from.get(pid, np.nan)]
        x = np.log10(g.s.to_numpy())
        if len(x) < 2:
            return float("nan")
        y = g.tv.to_numpy() / empty[pid] if over_empty else g.tv.to_numpy()
        return float(np.trapezoid(y, x) / (x[-1] - x[0]))

    return curves.sort_values(["passage_id", "stratum"]).groupby("passage_id")[["passage_id", "s", "tv"]].apply(one)


def phase_of(s: Any) -> Any:
    """``"below"`` (s < 1e-4), ``"construction"`` (1e-4 ≤ s ≤ 1e-2) or ``"refinement"`` (s > 1e-2)."""
    s = np.asarray(s)
    return np.where(s < CONSTRUCTION[0], "below", np.where(s <= CONSTRUCTION[1], "construction", "refinement"))


def phase_means(shares: pd.DataFrame, parts: Sequence[str], include_full: bool = False) -> pd.DataFrame:
    """Per passage and phase, the mean share of each part over the phase's grid sizes (the full graph, s = 1,
    left out unless ``include_full``)."""
    d = shares if include_full else shares[shares.s < 1]
    return d.assign(phase=phase_of(d.s)).groupby(["passage_id", "phase"])[list(parts)].mean().reset_index()


def phase_compare(source: Source, part: str, added: bool = False, only_past_input: bool = False) -> pd.DataFrame:
    """Per passage, the mean share of ``part`` (a component or a layer quartile) in the construction and in
    the refinement phase, for the traced strata and for the random strata of the same sizes (columns
    ``traced_construction``, ``random_construction``, ``traced_refinement``, ``random_refinement``), and the
    full graph's share (``base``). ``added``: shares of the edges each stratum adds; ``only_past_input``:
    strata that reach the input only (both sides keep the traced strata's selection)."""
    summary, curves = tables(source)
    traced, rand = stratum_composition(curves, added=added), stratum_composition(curves, random=True, added=added)
    keys = ["passage_id", "stratum"]
    both = traced[[*keys, "s", part]].merge(rand[[*keys, part]], on=keys, suffixes=("_traced", "_random"))
    if only_past_input:
        ok = curves.assign(ok=reaches_input((summary, curves)))[[*keys, "ok"]]
        both = both.merge(ok, on=keys)
        both = both[both.ok]
    base = stratum_composition(curves).query("s == 1.0").set_index("passage_id")[part]
    means = phase_means(both, [f"{part}_traced", f"{part}_random"])
    wide = means.pivot(index="passage_id", columns="phase")
    wide.columns = [f"{kind.removeprefix(part + '_')}_{phase}" for kind, phase in wide.columns]
    return wide.assign(base=base).reset_index()


def per_passage_spearman(curves: pd.DataFrame, x: str, y: str) -> pd.Series:
    """Spearman ρ of ``x`` and ``y`` over each passage's strata (one value per passage): strata of one
    passage are nested and not independent, so a trend over strata is summarised per passage first and
    then compared across passages."""
    return curves.groupby("passage_id")[[x, y]].apply(lambda g: stats.spearman(g[x], g[y], n_boot=0).rho)


def first_past_input(source: Source) -> pd.DataFrame:
    """Per passage, the first stratum that reaches the input (the smallest that computes anything), with its
    size, top-1 token and the full model's top-1."""
    summary, curves = tables(source)
    c = curves[reaches_input((summary, curves))].sort_values(["passage_id", "stratum"])
    first = c.groupby("passage_id").head(1).set_index("passage_id")
    full = summary.set_index("passage_id")
    return pd.DataFrame({"s": first.s, "n_edges": first.n_edges, "top_token": first.top_token, "top_token_full": full.top_token_full,
                         "agrees": first.top1}).reset_index()  # fmt: skip


def rarity(source: Source, counts: pd.Series) -> pd.DataFrame:
    """The run's summary with the log10 unigram frequency of the full model's top-1 token
    (``log10_freq_top``), of the text's next token (``log10_freq_next``), the mean over the full model's
    top-5 (``log10_freq_top5``: close to the published measure, which averages the top-5 of the 60 %
    nucleus), ``log10_s_top1`` (grid) and ``log10_s_top1_exact`` (by bisection, where traced so).
    ``counts``: unigram counts, token id -> count (``corpus.sources.unigram_counts`` of your corpus)."""
    summary, curves = tables(source)
    s = summary.copy()
    full = curves[curves.s == 1.0].set_index("passage_id").topk_token
    top5 = np.stack(full.reindex(s.passage_id).to_numpy())  # [passages, 5]
    s["log10_freq_top"] = log10_frequency(counts, s.top_token_full)
    s["log10_freq_next"] = log10_frequency(counts, s.next_token)
    s["log10_freq_top5"] = log10_frequency(counts, top5).mean(axis=1)
    s["log10_s_top1"] = np.log10(s.s_top1)
    if "s_top1_exact" in s:
        s["log10_s_top1_exact"] = np.log10(s.s_top1_exact)
    return s
