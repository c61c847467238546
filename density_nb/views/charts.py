"""Altair charts used by the tutorial notebooks.

Every chart takes a tidy pandas DataFrame and returns an ``alt.Chart`` (or a layered chart); nothing
here imports torch or touches a model. Curves over the stratum size ``s`` use a log axis from 1e-5 to
1, and the phase charts shade the papers' construction (1e-4–1e-2) and refinement (> 1e-2) ranges.

Importing this module selects the ``density_nb`` Altair renderer: every chart is displayed as
Vega-Lite's own mimetype (JupyterLab, Notebook 7 and VS Code draw it, interactive and offline) plus a
static PNG made by ``vl-convert-python`` (what GitHub, nbviewer and any reader without a live
front end show). No HTML, so no script is ever loaded from a CDN.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from density_nb.analysis import stats
from density_nb.analysis.aggregate import CONSTRUCTION, REFINEMENT
from density_nb.views.theme import CHARTS, LABELS

S_MIN, S_MAX = 1e-5, 1.0
TRACED_COLOR, RANDOM_COLOR = CHARTS["series"]["traced"], CHARTS["series"]["random"]
PALETTE: list[str] = CHARTS["palette"]  # Okabe–Ito: colour-blind safe

VEGALITE_MIME = f"application/vnd.vegalite.v{alt.SCHEMA_VERSION.lstrip('v').split('.')[0]}+json"
PNG_SCALE = 1.0  # pixels per Vega pixel in the static image (1: ~40 kB a chart)


def _vl_version() -> str | None:
    """The Vega-Lite version Altair writes, as vl-convert names it (``"5.20"``), if vl-convert has it."""
    import vl_convert  # optional (the notebooks extra): only for static images

    want = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return want if want in vl_convert.get_vegalite_versions() else None


def static_png(spec: dict[str, Any], scale: float = PNG_SCALE) -> bytes:
    """A Vega-Lite spec drawn as PNG by vl-convert (bundled Vega and fonts: no network, no browser)."""
    import vl_convert  # optional (the notebooks extra): only for static images

    return bytes(vl_convert.vegalite_to_png(spec, vl_version=_vl_version(), scale=scale))


def renderer(spec: dict[str, Any], **metadata: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Altair renderer: the Vega-Lite mimetype (interactive where a front end draws it) and a static PNG."""
    bundle: dict[str, Any] = {VEGALITE_MIME: spec, "text/plain": "<chart: the image, or the interactive version in JupyterLab>"}
    with contextlib.suppress(ImportError):  # vl-convert-python is in the notebooks extra; without it, the mimetype alone
        bundle["image/png"] = base64.b64encode(static_png(spec)).decode("ascii")
    return bundle, {}


alt.renderers.register("density_nb", renderer)
alt.renderers.enable("density_nb")

_S_AXIS = alt.Axis(title="relative subgraph size s (share of edges, log scale)", format="~e", values=[1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1])


def _s_scale() -> alt.Scale:
    return alt.Scale(type="log", domain=[S_MIN, S_MAX], nice=False)


# ---- curves ----------------------------------------------------------------------------------------
def band_table(curves: pd.DataFrame, value: str, by: str = "s", group: str | None = None) -> pd.DataFrame:
    """Median and 25–75 % band of ``value`` per ``by`` (and ``group``) across inputs."""
    keys = [by] + ([group] if group else [])
    g = curves.groupby(keys)[value]
    out = pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75), "n": g.count()}).reset_index()
    return out


def phase_shading(y_title: str | None = None, labels: bool = True) -> alt.LayerChart | alt.Chart:
    """Grey bands for the construction (1e-4–1e-2) and refinement (> 1e-2) ranges, with labels."""
    phases = pd.DataFrame(
        {
            "start": [CONSTRUCTION[0], REFINEMENT[0]],
            "end": [CONSTRUCTION[1], REFINEMENT[1]],
            "phase": ["construction", "refinement"],
            "mid": [1e-3, 1e-1],
        }
    )
    rect = (
        alt.Chart(phases)
        .mark_rect(opacity=0.12)
        .encode(
            x=alt.X("start:Q", scale=_s_scale(), axis=_S_AXIS),
            x2="end:Q",
            color=alt.Color(
                "phase:N",
                scale=alt.Scale(
                    domain=["construction", "refinement"], range=[CHARTS["phases"]["construction"], CHARTS["phases"]["refinement"]]
                ),
                legend=alt.Legend(title="phase (papers)"),
            ),
        )
    )
    if not labels:
        return rect
    text = (
        alt.Chart(phases)
        .mark_text(baseline="top", dy=4, fontSize=11, color=CHARTS["annotation"])
        .encode(x=alt.X("mid:Q", scale=_s_scale()), y=alt.value(0), text="phase:N")
    )
    return rect + text


BASELINE_LABELS: dict[str, str] = LABELS["series"]
SERIES_COLORS = {"traced subgraph": TRACED_COLOR, **{label: CHARTS["series"][name] for name, label in BASELINE_LABELS.items()}}


def _no_legend(color: alt.Color) -> alt.Color:
    """The same colour encoding without its legend (a band beside its line needs one legend, not two)."""
    return color.legend(None)


def curve_chart(
    curves: pd.DataFrame,
    value: str = "tv",
    baseline: str | Sequence[str] | None = None,
    title: str = "",
    y_title: str | None = None,
    shade_phases: bool = False,
    width: int = 520,
    height: int = 300,
    reference: float | None = None,
    reference_label: str = "empty graph (uniform output), median",
) -> alt.LayerChart:
    """Median curve of ``value`` over s with its 25–75 % band across inputs; optionally baseline columns
    (``"tv_random"``, ``"tv_random_residual"``, ``"tv_inverse"``; or a list) drawn the same way in other
    colours, and a dashed horizontal ``reference`` line (e.g. the median ``tv_empty``). ``curves``: long
    format with columns ``s`` and ``value`` (corpus-run curves, or ``DensityResult.curves()``)."""
    parts: list[Any] = []
    baselines = [baseline] if isinstance(baseline, str) else list(baseline or [])
    series = [(value, "traced subgraph")] + [(b, BASELINE_LABELS.get(b.split("_", 1)[1], b) if "_" in b else b) for b in baselines]
    frames = []
    for col, label in series:
        t = band_table(curves.dropna(subset=[col]), col)
        t["series"] = label
        frames.append(t)
    table = pd.concat(frames, ignore_index=True)
    domain = [label for _, label in series]
    color = alt.Color(
        "series:N",
        scale=alt.Scale(domain=domain, range=[SERIES_COLORS.get(d, PALETTE[i % len(PALETTE)]) for i, d in enumerate(domain)]),
        legend=alt.Legend(title=None, orient="bottom", columns=2, labelLimit=400),
    )
    base = alt.Chart(table).encode(x=alt.X("s:Q", scale=_s_scale(), axis=_S_AXIS), color=color)
    band = base.mark_area(opacity=0.18).encode(y=alt.Y("q25:Q", title=y_title or value), y2="q75:Q", color=_no_legend(color))
    line = base.mark_line(point=True).encode(
        y=alt.Y("median:Q", title=y_title or value),
        tooltip=[
            alt.Tooltip("series:N"),
            alt.Tooltip("s:Q", format=".1e"),
            alt.Tooltip("median:Q", format=".3f"),
            alt.Tooltip("q25:Q", format=".3f"),
            alt.Tooltip("q75:Q", format=".3f"),
            "n:Q",
        ],
    )
    if shade_phases:
        parts.append(phase_shading(labels=False))
    parts += [band, line]
    if reference is not None:
        ref = pd.DataFrame({"y": [reference], "label": [reference_label]})
        parts.append(
            alt.Chart(ref)
            .mark_rule(strokeDash=[5, 4], color=CHARTS["annotation"])
            .encode(y="y:Q", tooltip=["label:N", alt.Tooltip("y:Q", format=".3f")])
        )
    return alt.layer(*parts).resolve_scale(color="independent").properties(title=title, width=width, height=height)


def share_curve(table: pd.DataFrame, title: str = "", y_title: str = "share of passages", shade_phases: bool = True) -> alt.LayerChart:
    """Proportions over s with their Wilson 95 % band (``tutorial.share_by_size``: columns s, share, lo,
    hi, n, series); several series are drawn in different colours."""
    domain = list(dict.fromkeys(table.series))
    color = alt.Color(
        "series:N",
        scale=alt.Scale(domain=domain, range=[SERIES_COLORS.get(d, PALETTE[i % len(PALETTE)]) for i, d in enumerate(domain)]),
        legend=alt.Legend(title=None, orient="bottom", columns=2, labelLimit=400),
    )
    base = alt.Chart(table).encode(x=alt.X("s:Q", scale=_s_scale(), axis=_S_AXIS), color=color)
    band = base.mark_area(opacity=0.18).encode(
        y=alt.Y("lo:Q", title=y_title, scale=alt.Scale(domain=[0, 1])), y2="hi:Q", color=_no_legend(color)
    )
    line = base.mark_line(point=True).encode(
        y=alt.Y("share:Q", title=y_title),
        tooltip=[
            "series:N",
            alt.Tooltip("s:Q", format=".1e"),
            alt.Tooltip("share:Q", format=".2f"),
            alt.Tooltip("lo:Q", format=".2f"),
            alt.Tooltip("hi:Q", format=".2f"),
            "n:Q",
        ],
    )
    parts: list[Any] = [phase_shading(labels=False)] if shade_phases else []
    return alt.layer(*parts, band, line).resolve_scale(color="independent").properties(title=title, width=520, height=280)


def plateau_chart(curve: pd.DataFrame, tv_empty: float, s_input: float, title: str = "", value: str = "tv") -> alt.LayerChart:
    """One prediction's TV curve with its uniform plateau: the strata short of ``s_input`` (grey band)
    output the uniform distribution and score exactly ``tv_empty`` (dashed line)."""
    d = curve[["s", value]].copy()
    d["where"] = np.where(d.s < s_input, "plateau: uniform output", "reaches the input")
    band = pd.DataFrame({"start": [S_MIN], "end": [s_input], "label": ["plateau (no input reached)"]})
    rect = (
        alt.Chart(band)
        .mark_rect(opacity=0.12, color=CHARTS["faint"])
        .encode(x=alt.X("start:Q", scale=_s_scale(), axis=_S_AXIS), x2="end:Q")
    )
    rule = (
        alt.Chart(pd.DataFrame({"y": [tv_empty]}))
        .mark_rule(strokeDash=[5, 4], color=CHARTS["annotation"])
        .encode(y=alt.Y("y:Q", title="TV(full, subgraph)", scale=alt.Scale(domain=[0, 1])))
    )
    s_rule = alt.Chart(pd.DataFrame({"x": [s_input]})).mark_rule(color=CHARTS["marker"]).encode(x=alt.X("x:Q", scale=_s_scale()))
    line = (
        alt.Chart(d)
        .mark_line(point=True, color=TRACED_COLOR)
        .encode(
            x=alt.X("s:Q", scale=_s_scale(), axis=_S_AXIS),
            y=alt.Y(f"{value}:Q", title="TV(full, subgraph)", scale=alt.Scale(domain=[0, 1])),
            tooltip=[alt.Tooltip("s:Q", format=".1e"), alt.Tooltip(f"{value}:Q", format=".4f"), "where:N"],
        )
    )
    subtitle = f"dashed: TV of the uniform output = {tv_empty:.3f}; orange: s_input = {s_input:.2g} (first edge from an input embedding)"
    return alt.layer(rect, rule, s_rule, line).properties(title=alt.TitleParams(title, subtitle=subtitle), width=520, height=280)


def example_curves(curves: pd.DataFrame, value: str = "tv", label: str = "label", title: str = "", y_title: str | None = None) -> alt.Chart:
    """One line per example input (``label`` column), e.g. the sparsest and densest passages."""
    return (
        alt.Chart(curves[["s", value, label]])  # only what is drawn: the chart's data is embedded in the notebook
        .mark_line(point=True)
        .encode(
            x=alt.X("s:Q", scale=_s_scale(), axis=_S_AXIS),
            y=alt.Y(f"{value}:Q", title=y_title or value),
            color=alt.Color(
                f"{label}:N", scale=alt.Scale(range=PALETTE), legend=alt.Legend(title=None, orient="bottom", columns=1, labelLimit=600)
            ),
            tooltip=[f"{label}:N", alt.Tooltip("s:Q", format=".1e"), alt.Tooltip(f"{value}:Q", format=".3f")],
        )
        .properties(title=title, width=520, height=300)
    )


# ---- distributions -----------------------------------------------------------------------------------
def density_histogram(
    df: pd.DataFrame, value: str = "density", color: str | None = None, bins: int = 30, title: str = "", x_title: str | None = None
) -> alt.Chart:
    """Histogram of a per-input density number (optionally overlaid by ``color`` groups)."""
    enc: dict[str, Any] = {
        "x": alt.X(f"{value}:Q", bin=alt.Bin(maxbins=bins), title=x_title or value),
        "y": alt.Y("count():Q", title="inputs", stack=None),
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", scale=alt.Scale(range=PALETTE), legend=alt.Legend(title=color))
    return (
        alt.Chart(df[[value] + ([color] if color else [])])
        .mark_bar(opacity=0.6 if color else 0.9)
        .encode(**enc)
        .properties(title=title, width=480, height=240)
    )


def strip_box(
    df: pd.DataFrame, value: str, group: str, order: Sequence[str] | None = None, title: str = "", y_title: str | None = None
) -> alt.LayerChart:
    """Box plot per group with the individual inputs jittered on top."""
    d = df[[value, group]].copy()
    sort = list(order) if order is not None else None
    box = (
        alt.Chart(d)
        .mark_boxplot(extent=1.5, opacity=0.5, size=40)
        .encode(
            x=alt.X(f"{group}:N", sort=sort, title=group),
            y=alt.Y(f"{value}:Q", title=y_title or value),
            color=alt.Color(f"{group}:N", sort=sort, scale=alt.Scale(range=PALETTE), legend=None),
        )
    )
    return box.properties(title=title, width=360, height=280)


# ---- relations -------------------------------------------------------------------------------------
def scatter_fit(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str | None = None,
    log_x: bool = False,
    log_y: bool = False,
    tooltip: Sequence[str] = (),
    title: str = "",
    x_title: str | None = None,
    y_title: str | None = None,
    fit: str = "loess",
    width: int = 380,
    height: int = 300,
) -> alt.LayerChart:
    """Scatter of y against x with a LOESS (or linear) fit; log axes optional; Spearman in the subtitle."""
    cols = list(dict.fromkeys([x, y, *([color] if color else []), *tooltip]))
    d = df[cols].replace([np.inf, -np.inf], np.nan).dropna(subset=[x, y])
    missing = len(df) - len(d)
    if log_x:
        d = d[d[x] > 0]
    if log_y:
        d = d[d[y] > 0]
    not_positive = len(df) - missing - len(d)
    r = stats.spearman(d[x], d[y], n_boot=500)
    xs = alt.Scale(type="log") if log_x else alt.Scale(zero=False)
    ys = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    enc: dict[str, Any] = {
        "x": alt.X(f"{x}:Q", scale=xs, title=x_title or x),
        "y": alt.Y(f"{y}:Q", scale=ys, title=y_title or y),
        "tooltip": [alt.Tooltip(f"{c}") for c in cols],
    }
    if color:
        enc["color"] = alt.Color(f"{color}:N", scale=alt.Scale(range=PALETTE))
    points = alt.Chart(d).mark_circle(size=28, opacity=0.55).encode(**enc)
    if log_x:  # fit on log x so the line follows the plotted shape
        d = d.assign(_lx=np.log10(d[x]))
        fx = "_lx"
    else:
        fx = x
    base = alt.Chart(d)
    trans = base.transform_loess(fx, y, bandwidth=0.5) if fit == "loess" else base.transform_regression(fx, y)
    if log_x:
        trans = trans.transform_calculate(**{x: "pow(10, datum._lx)"})
    line = trans.mark_line(color=CHARTS["fit"], strokeWidth=2).encode(x=alt.X(f"{x}:Q", scale=xs), y=alt.Y(f"{y}:Q", scale=ys))
    dropped = [f"{missing} without a value"] * bool(missing) + [f"{not_positive} ≤ 0 on a log axis"] * bool(not_positive)
    subtitle = f"Spearman {r}" + (f" (of {len(df)}; left out: {', '.join(dropped)})" if dropped else "")
    layered = alt.layer(points, line)
    assert isinstance(layered, alt.LayerChart)  # alt.layer facets only charts with facet encodings
    return layered.properties(title=alt.TitleParams(title or f"{y} vs {x}", subtitle=subtitle), width=width, height=height)


def binned_means(df: pd.DataFrame, x: str, y: str, bins: int = 5, log_x: bool = False) -> pd.DataFrame:
    """Quantile bins of x with the mean of y and its standard error per bin."""
    d = df[[x, y]].replace([np.inf, -np.inf], np.nan).dropna()
    if log_x:
        d = d[d[x] > 0]
    q = pd.qcut((np.log10(d[x]) if log_x else d[x]).rank(method="first"), bins)  # ranks: ties cannot empty a bin
    g = d.groupby(q, observed=True)
    out = pd.DataFrame(
        {"x_median": g[x].median(), "mean": g[y].mean(), "se": g[y].std() / np.sqrt(g[y].count()), "n": g[y].count()}
    ).reset_index(drop=True)
    out["lo"], out["hi"] = out["mean"] - 1.96 * out["se"], out["mean"] + 1.96 * out["se"]
    out["bin"] = np.arange(1, len(out) + 1)
    return out


# ---- paired comparisons ------------------------------------------------------------------------------
def paired_chart(
    df: pd.DataFrame,
    id_col: str,
    group: str,
    value: str,
    order: Sequence[str],
    title: str = "",
    y_title: str | None = None,
    max_lines: int = 80,
) -> alt.LayerChart:
    """Each input's value at each level of ``group`` joined by a thin line, plus medians (box)."""
    d = df[[id_col, group, value]].dropna()
    keep = d[id_col].drop_duplicates().sample(min(max_lines, d[id_col].nunique()), random_state=0)
    lines = (
        alt.Chart(d[d[id_col].isin(keep)])
        .mark_line(opacity=0.18, color=CHARTS["lines"])
        .encode(
            x=alt.X(f"{group}:N", sort=list(order), title=group, axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{value}:Q", title=y_title or value, scale=alt.Scale(zero=False)),
            detail=f"{id_col}:N",
        )
    )
    box = (
        alt.Chart(d)
        .mark_boxplot(size=36, opacity=0.7, extent=1.5)
        .encode(
            x=alt.X(f"{group}:N", sort=list(order)),
            y=alt.Y(f"{value}:Q", scale=alt.Scale(zero=False)),
            color=alt.Color(f"{group}:N", sort=list(order), scale=alt.Scale(range=PALETTE), legend=None),
        )
    )
    layered = alt.layer(lines, box)
    assert isinstance(layered, alt.LayerChart)  # alt.layer facets only charts with facet encodings
    return layered.properties(title=title, width=360, height=300)


# ---- composition (two phases) ------------------------------------------------------------------------
def share_chart(
    shares: pd.DataFrame,
    part: str = "part",
    value: str = "share",
    title: str = "",
    y_title: str = "share of the subgraph's edges",
    order: Sequence[str] | None = None,
) -> alt.LayerChart:
    """Median share of each part (component or layer quartile) of the stratum's edges over s,
    with the construction and refinement ranges shaded. ``shares``: columns s, part, share, one row
    per (input, s, part)."""
    t = band_table(shares, value, group=part)
    dom = list(order) if order is not None else sorted(t[part].unique())
    color = alt.Color(f"{part}:N", scale=alt.Scale(domain=dom, range=PALETTE[: len(dom)]), legend=alt.Legend(title=part))
    base = alt.Chart(t).encode(x=alt.X("s:Q", scale=_s_scale(), axis=_S_AXIS), color=color)
    band = base.mark_area(opacity=0.15).encode(
        y=alt.Y("q25:Q", title=y_title, scale=alt.Scale(domain=[0, 1])), y2="q75:Q", color=_no_legend(color)
    )
    line = base.mark_line(point=True).encode(
        y=alt.Y("median:Q", title=y_title), tooltip=[f"{part}:N", alt.Tooltip("s:Q", format=".1e"), alt.Tooltip("median:Q", format=".3f")]
    )
    return (
        alt.layer(phase_shading(labels=True), band, line).resolve_scale(color="independent").properties(title=title, width=520, height=300)
    )


# ---- claim table ------------------------------------------------------------------------------------
def claims_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The notebooks' closing table: published claim | our result | reproduced? (+ N, model, grid)."""
    cols = ["published claim", "our result", "reproduced?", "N", "model", "grid"]
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df:
            df[c] = ""
    return df[cols]


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-markdown table (no ``tabulate`` dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(str(row[c]).replace("|", "\\|").replace("\n", " ") for c in cols) + " |")
    return "\n".join(lines)


# ---- estimates with intervals ------------------------------------------------------------------------
def interval_chart(
    df: pd.DataFrame,
    value: str = "rho",
    label: str = "label",
    band: tuple[float, float] | None = None,
    band_mean: float | None = None,
    x_title: str = "estimate",
    title: str = "",
    domain: tuple[float, float] = (-0.3, 1.0),
) -> alt.LayerChart:
    """Point estimates (``value``) with their CIs (``lo``, ``hi``), one row per ``label``; optionally a grey
    ``band`` (e.g. a published range) with a dashed ``band_mean``."""
    x = alt.X(f"{value}:Q", title=x_title, scale=alt.Scale(domain=list(domain)))
    y = alt.Y(f"{label}:N", title=None, sort=list(df[label]))
    parts: list[Any] = []
    if band is not None:
        ref = pd.DataFrame({"lo": [band[0]], "hi": [band[1]], "mean": [band_mean if band_mean is not None else np.nan]})
        parts.append(
            alt.Chart(ref)
            .mark_rect(opacity=0.2, color=CHARTS["faint"])
            .encode(x=alt.X("lo:Q", scale=alt.Scale(domain=list(domain))), x2="hi:Q")
        )
        if band_mean is not None:
            parts.append(alt.Chart(ref).mark_rule(color=CHARTS["annotation"], strokeDash=[4, 3]).encode(x="mean:Q"))
    zero = alt.Chart(pd.DataFrame({"z": [0.0]})).mark_rule(color=CHARTS["zero"]).encode(x="z:Q")
    err = (
        alt.Chart(df)
        .mark_errorbar(thickness=2)
        .encode(x=alt.X("lo:Q", title=x_title, scale=alt.Scale(domain=list(domain))), x2="hi:Q", y=y)
    )
    pt = (
        alt.Chart(df)
        .mark_point(filled=True, size=80, color=TRACED_COLOR)
        .encode(
            x=x,
            y=y,
            tooltip=[
                f"{label}:N",
                alt.Tooltip(f"{value}:Q", format=".2f"),
                alt.Tooltip("lo:Q", format=".2f"),
                alt.Tooltip("hi:Q", format=".2f"),
            ],
        )
    )
    return alt.layer(*parts, zero, err, pt).properties(title=title, width=460, height=28 * len(df) + 20)


def binned_chart(bins: pd.DataFrame, x_title: str = "bin", y_title: str = "mean", title: str = "") -> alt.LayerChart:
    """Means per bin with their 95 % intervals (``binned_means``: columns bin, mean, lo, hi, n)."""
    pts = (
        alt.Chart(bins)
        .mark_point(filled=True, size=80, color=TRACED_COLOR)
        .encode(
            x=alt.X("bin:O", title=x_title),
            y=alt.Y("mean:Q", title=y_title, scale=alt.Scale(zero=False)),
            tooltip=["bin:O", "n:Q", alt.Tooltip("mean:Q", format=".3f")],
        )
    )
    errs = alt.Chart(bins).mark_errorbar().encode(x="bin:O", y="lo:Q", y2="hi:Q")
    return alt.layer(errs, pts).properties(width=320, height=240, title=title)


def diagonal_scatter(
    df: pd.DataFrame, x: str, y: str, x_title: str | None = None, y_title: str | None = None, title: str = ""
) -> alt.LayerChart:
    """Scatter of y against x on [0, 1] × [0, 1] with the diagonal y = x dashed (points above it: y > x)."""
    d = df[[x, y]].replace([np.inf, -np.inf], np.nan).dropna()
    diag = (
        alt.Chart(pd.DataFrame({"a": [0.0, 1.0], "b": [0.0, 1.0]}))
        .mark_line(strokeDash=[4, 4], color=CHARTS["faint"])
        .encode(x="a:Q", y="b:Q")
    )
    pts = (
        alt.Chart(d)
        .mark_circle(size=30, opacity=0.6, color=TRACED_COLOR)
        .encode(
            x=alt.X(f"{x}:Q", title=x_title or x, scale=alt.Scale(domain=[0, 1])),
            y=alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(domain=[0, 1])),
            tooltip=[alt.Tooltip(f"{x}:Q", format=".3f"), alt.Tooltip(f"{y}:Q", format=".3f")],
        )
    )
    above = int((d[y] > d[x]).sum())
    return alt.layer(diag, pts).properties(
        title=alt.TitleParams(title, subtitle=f"{above} of {len(d)} points above the diagonal"), width=320, height=300
    )
