"""The corpus dashboard as one static Altair chart, drawn in Python from the run's tables: what the page
shows for the current measure, column, head size and selection (``CorpusDashboard.to_svg`` / ``save``)."""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from density_nb.analysis import aggregate
from density_nb.analysis.stats import spearman
from density_nb.views.charts import PALETTE, phase_shading
from density_nb.views.dashboard_state import COLUMNS, GRID, MEASURES, PARTS
from density_nb.views.theme import CHARTS, LABELS, palette

ALL, SELECTION = CHARTS["run"], CHARTS["selection"]
PART_COLOURS = {part: palette("light")[part] for part in PARTS}
PART_LABELS = LABELS["parts"]
S_SCALE = alt.Scale(type="log", domain=[1e-5, 1.0], nice=False)
S_AXIS = alt.Axis(title="subgraph size s (log)", format="~e", values=[1e-5, 1e-3, 1e-1])
TV_AXIS = alt.Axis(
    title="relative subgraph size s (share of edges, log scale)", format="~e", values=[1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1]
)  # phase_shading's


def _rho_text(x: Any, y: Any) -> str:
    corr = spearman(np.asarray(x, np.float64), np.asarray(y, np.float64), n_boot=0)
    return f"ρ = {corr.rho:.3f} (n = {corr.n})" if np.isfinite(corr.rho) else f"ρ undefined (n = {corr.n})"


def _distribution(frame: pd.DataFrame, chosen: np.ndarray | None, measure: str) -> alt.LayerChart:
    lo, hi = float(frame[measure].min()), float(frame[measure].max())
    step = (hi - lo) / 30 or 0.01
    binning = alt.Bin(extent=[lo, hi + step / 2], step=step)
    x = alt.X(f"{measure}:Q", bin=binning, title=MEASURES[measure])
    base = (
        alt.Chart(frame)
        .mark_bar(color=ALL, opacity=0.35 if chosen is not None else 0.7)
        .encode(x=x, y=alt.Y("count():Q", title="passages"))
    )
    layers = [base]
    if chosen is not None:
        layers.append(alt.Chart(frame[chosen]).mark_bar(color=SELECTION).encode(x=x, y="count():Q"))
    return alt.layer(*layers).properties(width=320, height=180, title="Density distribution")


def _scatter(frame: pd.DataFrame, chosen: np.ndarray | None, measure: str, column: str) -> alt.Chart:
    data = frame.assign(selected=chosen if chosen is not None else False)
    title = [f"Density against {COLUMNS[column]}", f"whole run: {_rho_text(frame[column], frame[measure])}"]
    if chosen is not None:
        title.append(f"selection: {_rho_text(frame[column][chosen], frame[measure][chosen])}")
    colour = alt.Color("selected:N", scale=alt.Scale(domain=[False, True], range=[ALL, SELECTION]), legend=None)
    return (
        alt.Chart(data)
        .mark_circle(size=18, opacity=0.7)
        .encode(
            x=alt.X(f"{column}:Q", title=COLUMNS[column], scale=alt.Scale(zero=False)),
            y=alt.Y(f"{measure}:Q", title=MEASURES[measure], scale=alt.Scale(zero=False)),
            color=colour,
        )
        .properties(width=320, height=180, title=alt.TitleParams(title, fontSize=11))
    )


def _curve(widget: Any, ids: list[int] | None) -> alt.LayerChart:
    c = widget.data["curve"]
    rows = [pd.DataFrame({"s": GRID, "mean": c["mean"], "q25": c["q25"], "q75": c["q75"], "group": f"whole run ({c['n']})"})]
    if ids is not None:
        sel = aggregate.mean_curve(widget.run.curves, grid=GRID, passages=ids)
        rows.append(sel[["s", "mean", "q25", "q75"]].assign(group=f"selection ({len(ids)})"))
    table = pd.concat(rows, ignore_index=True)
    groups = table["group"].unique().tolist()
    colour = alt.Color("group:N", scale=alt.Scale(domain=groups, range=[ALL, SELECTION][: len(groups)]), title=None)
    band = (
        alt.Chart(table)
        .mark_area(opacity=0.2)
        .encode(x=alt.X("s:Q", scale=S_SCALE, axis=TV_AXIS), y="q25:Q", y2="q75:Q", color=colour.legend(None))
    )
    line = (
        alt.Chart(table)
        .mark_line()
        .encode(
            x=alt.X("s:Q", scale=S_SCALE, axis=TV_AXIS),
            y=alt.Y("mean:Q", title="TV to the full model", scale=alt.Scale(domain=[0, 1])),
            color=colour,
        )
    )
    return (
        alt.layer(phase_shading(labels=False), band, line)
        .resolve_scale(color="independent")
        .properties(width=320, height=180, title="Mean TV, 25–75 % band")
    )


def _composition(widget: Any, ids: list[int] | None) -> alt.HConcatChart:
    comp = aggregate.composition(widget.run.curves, passages=ids)
    long = comp.melt(id_vars="s", value_vars=PARTS, var_name="part", value_name="share")
    long["label"] = long["part"].map(PART_LABELS)
    base = comp.iloc[[-1]].melt(value_vars=PARTS, var_name="part", value_name="share").assign(label=lambda f: f["part"].map(PART_LABELS))
    charts = []
    for title, parts in (("by kind", PARTS[:3]), ("by depth", PARTS[3:])):
        labels = [PART_LABELS[p] for p in parts]
        colour = alt.Color("label:N", scale=alt.Scale(domain=labels, range=[PART_COLOURS[p] for p in parts]), title=None)
        lines = (
            alt.Chart(long[long["part"].isin(parts)])
            .mark_line()
            .encode(
                x=alt.X("s:Q", scale=S_SCALE, axis=S_AXIS),
                y=alt.Y("share:Q", title=f"share {title}", scale=alt.Scale(domain=[0, 1])),
                color=colour,
            )
        )
        rules = alt.Chart(base[base["part"].isin(parts)]).mark_rule(strokeDash=[1, 3]).encode(y="share:Q", color=colour)
        charts.append(alt.layer(lines, rules).properties(width=190, height=180))
    who = f"selection ({len(ids)})" if ids is not None else "whole run"
    return (
        alt.hconcat(*charts)
        .properties(title=f"Composition against s, {who}; dotted: the full graph's base rate")
        .resolve_scale(color="independent")
    )


def _heads(widget: Any, ids: list[int] | None) -> alt.Chart | None:
    heads = widget.data["heads"]
    if "missing" in heads:
        return None
    size = heads["sizes"][min(widget.head_size, len(heads["sizes"]) - 1)]
    freq = aggregate.head_frequency(widget.run.curves, size, heads["L"], heads["H"], passages=ids)  # [L, H]
    table = pd.DataFrame(
        [(layer, head, float(freq[layer, head])) for layer in range(heads["L"]) for head in range(heads["H"])],
        columns=["layer", "head", "share"],
    )
    return (
        alt.Chart(table)
        .mark_rect()
        .encode(x=alt.X("head:O"), y=alt.Y("layer:O"), color=alt.Color("share:Q", scale=alt.Scale(scheme="viridis"), title="share kept"))
        .properties(width=12 * heads["H"], height=10 * heads["L"], title=f"Heads' edges kept at s = {size:g}")
    )


def _compare(widget: Any, chosen_ids: set[int] | None, measure: str) -> alt.Chart | None:
    if widget.compare is None or measure not in widget.compare.summary:
        return None
    keep = ["passage_id", measure]
    both, corr = aggregate.join_runs(widget._summary[keep], widget.compare.summary[keep], value=measure)
    a, b = widget.data["compare"]["a"], widget.data["compare"]["b"]
    both["selected"] = both["passage_id"].isin(chosen_ids) if chosen_ids is not None else False
    colour = alt.Color("selected:N", scale=alt.Scale(domain=[False, True], range=[ALL, SELECTION]), legend=None)
    return (
        alt.Chart(both)
        .mark_circle(size=18, opacity=0.7)
        .encode(
            x=alt.X(f"{measure}_a:Q", title=a, scale=alt.Scale(zero=False)),
            y=alt.Y(f"{measure}_b:Q", title=b, scale=alt.Scale(zero=False)),
            color=colour,
        )
        .properties(
            width=220,
            height=180,
            title=alt.TitleParams([f"Per prompt: {MEASURES[measure]}", f"ρ = {corr.rho:.3f} (n = {corr.n})"], fontSize=11),
        )
    )


def dashboard_chart(widget: Any) -> alt.VConcatChart:
    """The dashboard's views for its current measure, column, head size and brush, as one chart."""
    measure, column = widget.measure, widget.column
    frame = widget._summary[[c for c in ("passage_id", measure, column) if c in widget._summary]]  # only what is drawn
    picked = widget.selected() if widget.brush else None
    title = widget.data["title"]
    if picked is not None and not len(picked):
        picked, title = None, f"{title}; the brush selects no passage: the whole run"
    chosen = frame["passage_id"].isin(picked["passage_id"]).to_numpy() if picked is not None else None
    ids = picked["passage_id"].tolist() if picked is not None else None
    top: list[Any] = [_distribution(frame, chosen, measure)]
    if column in frame:
        top.append(_scatter(frame, chosen, measure, column))
    bottom = [c for c in (_heads(widget, ids), _compare(widget, set(ids) if ids is not None else None, measure)) if c is not None]
    rows = [alt.hconcat(*top), alt.hconcat(_curve(widget, ids), _composition(widget, ids)).resolve_scale(color="independent")]
    if bottom:
        rows.append(alt.hconcat(*bottom).resolve_scale(color="independent"))
    return (
        alt.vconcat(*rows)
        .resolve_scale(color="independent")
        .properties(title=title)
        .configure_range(category=PALETTE)
        .configure_view(stroke=None)
    )
