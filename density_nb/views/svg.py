"""A static SVG of a widget's current view (selected root, current s), drawn in Python from the same compact
data the browser draws, with the same colour maps: ``widget.save`` and the snapshot a notebook keeps for
readers without a kernel (GitHub, nbviewer). Text is measured as monospace (0.6 em a column), so the
strips line up wherever DejaVu Sans Mono, Menlo or Consolas draw them."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from density_nb.views.text import columns, show_char, show_text, shown, visible_parts
from density_nb.views.theme import (
    LABELS,
    LAYOUT,
    MEASURES,
    THEME,
    colour_range,
    count,
    difference,
    difference_position,
    difference_range,
    fmt,
    fmt_difference,
    fmt_int,
    fmt_measure,
    fmt_pct,
    fmt_s,
    interp,
    log_axis,
    map_colours,
    opaque,
    palette,
    rgb,
    scale_position,
    stops,
)

P = palette("light")  # save() and the notebook snapshot draw the light theme
FG, FG2, BG, BG2, NEUTRAL, BORDER, GRIDLINE = P["fg"], P["fg2"], P["bg"], P["bg2"], P["neutral"], P["border"], P["gridline"]
CURVE, ACCENT, MARKER, STOP1, GEN, ATTN, MLP, NEXT = (
    P["curve"],
    P["accent"],
    P["marker"],
    P["stop1"],
    P["gen"],
    P["attention"],
    P["mlp"],
    P["next"],
)
PLATEAU, BAND, NEXT_BG, CELL_BORDER = (opaque(P[name]) for name in ("plateau", "band", "next_bg", "cell_border"))  # (colour, opacity)
BASELINE_DASH = {"random": "5 3", "random_residual": "8 3 2 3", "inverse": "2 2"}  # as static/density.css draws them
SANS = "DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
SIZE, MONO_SIZE = 13, 13
COL = 0.6 * MONO_SIZE  # one monospace column
VIEWS = ("explorer", "strip", "slider", "preview", "grid", "live", "compare", "playground")
GAP = 24


def text_width(text: str, size: float = SIZE) -> float:
    """About how wide DejaVu Sans sets ``text`` (a little over; for wrapping and legends)."""
    return columns(text) * size * 0.58


def _xml_text(text: str) -> str:
    """Text as XML character data (characters XML 1.0 cannot hold become U+FFFD)."""
    return escape(re.sub(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]", "�", text))


# ---- drawing -------------------------------------------------------------------------------------------
def _attrs(attrs: dict[str, Any]) -> str:
    return "".join(
        f" {k.rstrip('_').replace('_', '-')}={quoteattr(v if isinstance(v, str) else f'{v:.6g}')}"
        for k, v in attrs.items()
        if v is not None
    )


def el(tag: str, **attrs: Any) -> str:
    return f"<{tag}{_attrs(attrs)}/>"


def text(x: float, y: float, body: str, *, size: float = SIZE, mono: bool = False, **attrs: Any) -> str:
    font = {"font_family": MONO} if mono else {}
    return f"<text{_attrs({'x': x, 'y': y, 'font_size': size, **font, **attrs})}>{_xml_text(body)}</text>"


def wrap(body: str, width: float, size: float = SIZE) -> list[str]:
    """``body`` broken at spaces into lines that fit ``width`` (a long word stays whole)."""
    lines: list[str] = []
    for word in body.split(" "):
        if lines and text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


@dataclass
class Part:
    """A block of SVG drawn from (0, 0): its size and body."""

    width: float
    height: float
    body: list[str]

    def at(self, x: float, y: float) -> str:
        return f'<g transform="translate({x:g},{y:g})">{"".join(self.body)}</g>'


class Flow:
    """Parts stacked top to bottom in a column ``width`` wide."""

    def __init__(self, width: float) -> None:
        self.width, self.y = width, 0.0
        self.body: list[str] = []

    def lines(self, body: str, *, size: float = SIZE, fill: str = FG, weight: str | None = None, gap: float = 4) -> None:
        for line in wrap(body, self.width, size):
            self.y += size * 1.3
            self.body.append(text(0, self.y - size * 0.3, line, size=size, fill=fill, font_weight=weight))
        self.y += gap

    def title(self, body: str) -> None:
        self.lines(body, weight="600", gap=6)

    def part(self, part: Part, gap: float = 6) -> None:
        self.body.append(part.at(0, self.y))
        self.y += part.height + gap

    def done(self) -> Part:
        return Part(self.width, self.y, self.body)


def legend_items(items: Sequence[tuple[str, str]], width: float, size: float = 11, glyph_width: float = 16) -> Part:
    """Key glyphs (SVG drawn in a ``glyph_width`` × 12 box) and their labels, wrapped to ``width``."""
    body, x, y = [], 0.0, 0.0
    for glyph, label in items:
        w = glyph_width + 4 + text_width(label, size) + 12
        if x and x + w > width:
            x, y = 0.0, y + size * 1.5
        body.append(f'<g transform="translate({x:g},{y:g})">{glyph}</g>')
        body.append(text(x + glyph_width + 4, y + 10, label, size=size, fill=FG2))
        x += w
    return Part(width, y + size * 1.5, body)


def gradient_bar(grad: str, label: str, lo: str, hi: str, width: float = 120) -> Part:
    """A colour-bar legend: label, low tick, the gradient ``grad`` (an id), high tick."""
    x = text_width(label, 11) + 6 if label else 0
    body = [text(0, 10, label, size=11, fill=FG2)] if label else []
    body.append(text(x, 10, lo, size=11, fill=FG2))
    x += text_width(lo, 11) + 4
    body.append(el("rect", x=x, y=1, width=width, height=10, rx=2, fill=f"url(#{grad})"))
    body.append(text(x + width + 4, 10, hi, size=11, fill=FG2))
    return Part(x + width + 4 + text_width(hi, 11), 14, body)


def gradient_def(gid: str, stops: Sequence[tuple[int, int, int]]) -> str:
    inner = "".join(el("stop", offset=f"{100 * i / (len(stops) - 1):.1f}%", stop_color=rgb(c)) for i, c in enumerate(stops))
    return f'<linearGradient id="{gid}">{inner}</linearGradient>'


# ---- the views -------------------------------------------------------------------------------------------
class View:
    """The selection and data of one widget, as the browser reads them."""

    def __init__(self, widget: Any) -> None:
        self.d: dict[str, Any] = widget.data or {}
        d = self.d
        self.tokens: list[str] = d.get("tokens", [])
        self.roots: list[int] = d.get("roots", [])
        self.grid: list[float] = d.get("grid", [])
        self.index = {r: i for i, r in enumerate(self.roots)}
        self.L, self.H = int(d.get("n_layers", 0)), int(d.get("n_heads", 0))
        self.ri = self.index.get(getattr(widget, "root", 0), 0 if self.roots else -1)
        self.k = min(max(0, int(getattr(widget, "stratum", 0))), max(0, len(self.grid) - 1))
        self.metric = getattr(widget, "metric", "tv")
        self.scale = getattr(widget, "scale", "log")
        self.measure = getattr(widget, "measure", "density")
        self.colour_scale = getattr(widget, "colour_scale", "fitted")
        shares = getattr(widget, "shares", b"")
        size = len(self.roots) * len(self.grid) * self.L * (self.H + 1)
        self.shares = np.frombuffer(shares, dtype=np.uint8) if shares and len(shares) == size else None

    def plateau(self, ri: int, k: int) -> bool:
        return "input_edges" in self.d and self.d["n_edges"][ri][k] < self.d["input_edges"][ri]

    def label(self, pos: int) -> str:
        return f"“{show_text(self.tokens[pos])}”" if 0 <= pos < len(self.tokens) else "(end of text)"


def _token_glyphs(piece: str, x: float, y: float, fill: str) -> str:
    """A token's text with its marks faded (as the strip shows it)."""
    inner = "".join(f'<tspan fill-opacity="0.45">{_xml_text(t)}</tspan>' if mark else _xml_text(t) for t, mark in visible_parts(piece))
    return f'<text x="{x:g}" y="{y:g}" font-family={quoteattr(MONO)} font-size="{MONO_SIZE}" fill="{fill}">{inner}</text>'


def strip_rows(widths: Sequence[int], pieces: Sequence[str], cols: float) -> list[int]:
    """The line of each token of the strip (as static/density.js lays it out): tokens fill a line up to ``cols``
    columns, each costing its shown columns (``widths``) and the theme's token overhead (its box); a token that
    starts with a newline starts a line, and its further newlines leave empty lines."""
    overhead = LAYOUT["token_overhead"]
    rows, row, used = [], 0, 0.0
    for i, (w, piece) in enumerate(zip(widths, pieces)):
        lead = bool(re.match(r"^[ \t\r]*\n", piece))
        if (lead and i > 0) or (used > 0 and used + w + overhead > cols):
            row, used = row + 1, 0.0
        rows.append(row)
        used += w + overhead
        extra = piece.count("\n") - lead
        if extra > 0:
            row, used = row + extra, 0.0
    return rows


def strip_colours(v: View) -> tuple[str, tuple[float, float], list[float | None]]:
    """The measure the strip colours by, its colour range (fitted or fixed, as the widget's ``colour_scale``;
    a range the data gives for it first) and each root's value."""
    d = v.d
    values = (d.get("measures") or {}).get(v.measure) or d.get("density", [])
    fit = (d.get("fit") or {}).get(v.measure)
    bounds = (float(fit[0]), float(fit[1])) if fit and v.colour_scale == "fitted" else colour_range(values, v.measure, v.colour_scale)
    return v.measure, bounds, values


def _strip_legend(v: View, flow: Flow, gid: str, bounds: tuple[float, float], n_gen: int) -> None:
    """The measure's colour bar with the numbers at its ends, the swatches, and how the scale was chosen."""
    spec = MEASURES.get(v.measure, {"label": v.measure})
    bar = gradient_bar(gid + "v", spec["label"], fmt_measure(bounds[0], v.measure), fmt_measure(bounds[1], v.measure))
    swatch = el("rect", x=0, y=0, width=26, height=13, rx=3, fill=NEUTRAL) + text(2, 10, "abc", size=10, fill=FG2, mono=True)
    keys = [(swatch, "no prediction")]
    if n_gen:
        written = el("rect", x=0, y=0, width=26, height=13, rx=3, fill=NEUTRAL) + el("rect", x=0, y=10, width=26, height=3, fill=GEN)
        keys.append((written, "written by the model"))
    items = legend_items(keys, flow.width - bar.width - 16, glyph_width=26)
    flow.body += [bar.at(0, flow.y), items.at(bar.width + 16, flow.y)]
    flow.y += max(bar.height, items.height) + 2
    flow.lines(f"· space  ↵ newline — colour: {scale_note(v)}", size=11, fill=FG2)


def scale_note(v: View) -> str:
    """How the strip's colour scale was chosen, as its legend says it."""
    return scale_note_of(v.colour_scale, bool((v.d.get("fit") or {}).get(v.measure)))


def scale_note_of(how: str, run: bool) -> str:
    """ "fixed scale", or what the scale was fitted to (``run``: a corpus run's values)."""
    if how == "fixed":
        return "fixed scale"
    low, high = THEME["fit"]["percentiles"]
    return f"fitted to {'the run' if run else 'the values shown'} (percentiles {low}–{high})"


def strip(v: View, width: float, gid: str) -> Part:
    """The text as tokens, each coloured by the chosen measure of the step that predicts it, and its legend."""
    d, tokens = v.d, v.tokens
    generated = d.get("generated", "")
    flow = Flow(width)
    n_gen = generated.count("1")
    counts = f"{count(len(tokens), 'token')} ({len(tokens) - n_gen} prompt + {n_gen} generated)" if n_gen else count(len(tokens), "token")
    finite = [x for x in d.get("density", []) if x is not None]
    mean = sum(finite) / len(finite) if finite else None
    flow.title(f"{d.get('model') or 'model'} · {counts} · {count(len(v.roots), 'step')} · mean density {fmt(mean)}")
    measure, bounds, values = strip_colours(v)
    sel = v.roots[v.ri] + 1 if v.ri >= 0 else -1
    # each token, coloured by the root before it; a root at the last position predicts past the text: "⋯"
    boxes = [(i, piece, v.index.get(i - 1, -1)) for i, piece in enumerate(tokens)]
    if len(tokens) - 1 in v.index:
        boxes.append((len(tokens), "⋯", v.index[len(tokens) - 1]))
    widths = [columns(shown(piece)) for _, piece, _ in boxes]
    rows = strip_rows(widths, [piece for _, piece, _ in boxes], LAYOUT["strip_columns"])
    body, x, line = [], 0.0, 25.0
    for n, ((i, piece, ri), w_cols, row) in enumerate(zip(boxes, widths, rows)):
        x = x if n and rows[n - 1] == row else 0.0
        y, w = 2.0 + row * line, w_cols * COL + 2
        colours = map_colours("strip", scale_position(values[ri], bounds, measure)) if ri >= 0 else None
        kind = "dnb-tok" if i < len(tokens) else "dnb-next"
        body.append(el("rect", x=x, y=y, width=w, height=19, rx=3, fill=colours[0] if colours else NEUTRAL, class_=kind, data_pos=str(i)))
        if generated[i : i + 1] == "1":
            body.append(el("rect", x=x, y=y + 16, width=w, height=3, fill=GEN))
        if i == sel:
            body.append(el("rect", x=x - 1, y=y - 1, width=w + 2, height=21, rx=3, fill="none", stroke=ACCENT, stroke_width=2))
        body.append(_token_glyphs(piece, x + 1, y + 14, colours[1] if colours else FG2))
        x += w + 1
    flow.part(Part(width, 2.0 + ((rows[-1] + 1) if rows else 1) * line, body), gap=2)
    _strip_legend(v, flow, gid, bounds, n_gen)
    return flow.done()


def _curve(values: Sequence[float | None], xs: Sequence[float], y_of: Any) -> str:
    out, pen = [], False
    for x, val in zip(xs, values):
        if val is None or not math.isfinite(val):
            pen = False
            continue
        out.append(f"{'L' if pen else 'M'}{x:.1f},{y_of(val):.1f}")
        pen = True
    return "".join(out)


@dataclass
class Chart:
    """The s-slider's chart box (as static/density.js lays it out): x is log10 s; y the metric, TV on [0, 1]
    or KL on a log axis from ``ylo`` to ``yhi`` (at its foot: 0 and whatever lies below ``ylo``)."""

    xmin: float  # log10 of the smallest size
    ticks: list[float]
    ylo: float | None = None  # a log axis (KL), else linear on [0, 1]
    yhi: float = 1.0
    W: float = 420
    Hh: float = 212
    ml: float = 44
    mr: float = 12
    mt: float = 22
    mb: float = 34

    @property
    def pw(self) -> float:
        return self.W - self.ml - self.mr

    @property
    def ph(self) -> float:
        return self.Hh - self.mt - self.mb

    def X(self, lx: float) -> float:
        return self.ml + (lx - self.xmin) / (0 - self.xmin) * self.pw

    def Y(self, val: float) -> float:
        if self.ylo is None:
            return self.mt + self.ph - min(max(val, 0), 1) * self.ph
        a, b = math.log10(self.ylo), math.log10(self.yhi)
        return self.mt + self.ph - (math.log10(min(max(val, self.ylo), self.yhi)) - a) / (b - a) * self.ph


def _chart(v: View, log_grid: list[float]) -> Chart:
    """The chart box of the selected root: TV on [0, 1]; KL on a log axis over the traced curve and the baselines."""
    xmin = min([*log_grid, -0.0001]) if log_grid else -5.0
    if v.metric != "kl":
        return Chart(xmin=xmin, ticks=[0, 0.5, 1])
    ri, baselines = v.ri, (v.d.get("baselines") or {}).values()
    lo, hi, ticks = log_axis([*v.d["kl"][ri], *(y for b in baselines for y in b["kl"][ri])])
    return Chart(xmin=xmin, ticks=ticks, ylo=lo, yhi=hi)


def _slider_marks(v: View, g: Chart, log_grid: list[float]) -> list[str]:
    """Behind the curves: the plateau (no path from the input), the top-1 agreement bands."""
    d, ri, K = v.d, v.ri, len(log_grid)
    marks = []
    flat = [kk for kk in range(K) if v.plateau(ri, kk)]
    if flat:
        s_input = d["input_edges"][ri] / d["total_edges"][ri]
        edge = min(0.0, math.log10(s_input)) if s_input > 0 else log_grid[flat[-1]]
        marks.append(
            el("rect", x=g.ml, y=g.mt, width=max(0.0, g.X(max(edge, g.xmin)) - g.ml), height=g.ph, fill=PLATEAU[0], fill_opacity=PLATEAU[1])
        )
    for kk, bit in enumerate(d["top1"][ri]):
        if bit == "1":
            x0 = g.X((log_grid[kk - 1] + log_grid[kk]) / 2 if kk else log_grid[0])
            x1 = g.X((log_grid[kk] + log_grid[kk + 1]) / 2 if kk < K - 1 else log_grid[-1])
            marks.append(el("rect", x=x0, y=g.mt, width=max(0.5, x1 - x0), height=g.ph, fill=BAND[0], fill_opacity=BAND[1]))
    return marks


def _slider_axes(g: Chart, metric: str) -> list[str]:
    """The x axis in decades of s, the y axis with its ticks and gridlines, both titles."""
    axes = [el("line", x1=g.ml, x2=g.ml + g.pw, y1=g.mt + g.ph, y2=g.mt + g.ph, stroke=FG2)]
    for e in range(math.ceil(g.xmin), 1):
        axes.append(el("line", x1=g.X(e), x2=g.X(e), y1=g.mt + g.ph, y2=g.mt + g.ph + 4, stroke=FG2))
        axes.append(text(g.X(e), g.mt + g.ph + 15, "1" if e == 0 else f"1e{e}", size=10, fill=FG2, text_anchor="middle"))
    axes.append(text(g.ml + g.pw / 2, g.Hh - 3, "subgraph size s (share of edges, log scale)", size=10, fill=FG2, text_anchor="middle"))
    axes.append(el("line", x1=g.ml, x2=g.ml, y1=g.mt, y2=g.mt + g.ph, stroke=FG2))
    title = "TV distance" if metric == "tv" else "KL (nats, log scale)"
    axes.append(text(11, g.mt + g.ph / 2, title, size=10, fill=FG2, text_anchor="middle", transform=f"rotate(-90 11 {g.mt + g.ph / 2:g})"))
    for i, val in enumerate(g.ticks):
        grid_line = {"stroke": FG2} if i == 0 else {"stroke": GRIDLINE, "stroke_dasharray": "2 3"}
        axes.append(el("line", x1=g.ml - 4, x2=g.ml + g.pw, y1=g.Y(val), y2=g.Y(val), **grid_line))
        axes.append(text(g.ml - 6, g.Y(val) + 3.5, fmt(val, 2), size=10, fill=FG2, text_anchor="end"))
    return axes


def _s_top1_mark(st: float | None, g: Chart) -> list[str]:
    """The dashed line at s_top1 and its label (right-aligned near the right edge)."""
    if st is None:
        return []
    x = g.X(math.log10(st))
    right = x > g.ml + g.pw - 70
    label = text(
        x - 3 if right else x + 3,
        g.mt - 6,
        f"s_top1 {fmt_s(st)}",
        size=10,
        fill=STOP1,
        font_weight="600",
        text_anchor="end" if right else "start",
    )
    return [el("line", x1=x, x2=x, y1=g.mt - 4, y2=g.mt + g.ph, stroke=STOP1, stroke_width=1.5, stroke_dasharray="3 2"), label]


def _slider_curves(v: View, g: Chart, xs: list[float]) -> list[str]:
    """Each baseline, the traced curve with its points, the marker at the current s."""
    d, ri, k, metric = v.d, v.ri, v.k, v.metric
    ys = d[metric][ri]
    curves = []
    for name, b in (d.get("baselines") or {}).items():
        colour, dash = P.get(name, P["random"]), BASELINE_DASH.get(name, BASELINE_DASH["random"])
        curves.append(
            el(
                "path",
                d=_curve(b[metric][ri], xs, g.Y),
                fill="none",
                stroke=colour,
                stroke_width=1.5,
                stroke_dasharray=dash,
                class_=f"dnb-base-{name}",
            )
        )
    curves.append(el("path", d=_curve(ys, xs, g.Y), fill="none", stroke=CURVE, stroke_width=2, class_="dnb-curve"))
    curves += [el("circle", cx=round(x, 1), cy=round(g.Y(y), 1), r=1.8, fill=CURVE) for x, y in zip(xs, ys) if y is not None]
    xk = xs[k] if xs else g.X(0)
    curves.append(el("line", x1=xk, x2=xk, y1=g.mt, y2=g.mt + g.ph, stroke=MARKER, stroke_width=2, class_="dnb-marker"))
    cy = g.Y(ys[k]) if xs and ys[k] is not None else g.mt + g.ph
    curves.append(el("circle", cx=xk, cy=cy, r=4.5, fill=MARKER, stroke=BG, stroke_width=1.5))
    return curves


def _slider_legend(v: View, width: float) -> Part:
    """The traced curve, each baseline, the agreement band, s_top1, the plateau (when there is one), current s."""
    line = lambda colour, dash="": el("line", x1=0, x2=16, y1=6, y2=6, stroke=colour, stroke_width=2, stroke_dasharray=dash or None)
    box = lambda paint: el("rect", x=0, y=1, width=16, height=10, fill=paint[0], fill_opacity=paint[1])
    vline = lambda colour, dash="": el("line", x1=8, x2=8, y1=0, y2=12, stroke=colour, stroke_width=2, stroke_dasharray=dash or None)
    keys = [(line(CURVE), "traced subgraph")]
    baselines = (v.d.get("baselines") or {}).items()
    keys += [(line(P.get(name, P["random"]), BASELINE_DASH.get(name, BASELINE_DASH["random"])), b["label"]) for name, b in baselines]
    keys += [(box(BAND), "top-1 agrees"), (vline(STOP1, "3 2"), "s_top1")]
    keys += [(box(PLATEAU), "no path from the input")] if any(v.plateau(v.ri, kk) for kk in range(len(v.grid))) else []
    keys.append((vline(MARKER), "current s"))
    if v.metric == "kl":
        keys.append(("", "KL on a log axis (0 and below 1e-3 at its foot)"))
    return legend_items(keys, width)


def _range_input(v: View, width: float) -> list[Part]:
    """The range input as drawn: its track, the thumb at the current stratum; the sizes at its ends."""
    K, t = len(v.grid), v.k / max(1, len(v.grid) - 1)
    track = [
        el("rect", x=0, y=6, width=width, height=4, rx=2, fill=BORDER),
        el("rect", x=0, y=6, width=width * t, height=4, rx=2, fill=MARKER),
        el("circle", cx=8 + (width - 16) * t, cy=8, r=7, fill=MARKER),
    ]
    ends = [
        text(0, 10, f"s = {fmt_s(v.grid[0]) if K else '–'}", size=10, fill=FG2),
        text(width, 10, "full graph (s = 1)", size=10, fill=FG2, text_anchor="end"),
    ]
    return [Part(width, 16, track), Part(width, 14, ends)]


def _readout(v: View) -> str:
    """The numbers at the current s (as the browser's readout line)."""
    d, ri, k, metric = v.d, v.ri, v.k, v.metric
    ok = d["top1"][ri][k] == "1"
    readout = (
        f"s = {fmt_s(v.grid[k])}, |S| = {fmt_int(d['n_edges'][ri][k])} of {fmt_int(d['total_edges'][ri])} edges, "
        f"TV = {fmt(d['tv'][ri][k])}, KL = {fmt(d['kl'][ri][k])}, top-1 {'✓' if ok else '✗'}"
    )
    if v.plateau(ri, k):
        readout += " — no path from the input yet"
    baselines = (d.get("baselines") or {}).values()
    if baselines:
        readout += f" · {metric.upper()} of " + ", ".join(f"{b['label']} {fmt(b[metric][ri][k])}" for b in baselines)
    return readout


def slider(v: View) -> Part:
    """The s-slider of the selected root: title, the TV/KL chart, its legend, the range input and the readout."""
    flow = Flow(420)
    if v.ri < 0:
        flow.title("no roots")
        return flow.done()
    d, ri, pos = v.d, v.ri, v.roots[v.ri]
    flow.title(f"Step {pos}: after {v.label(pos)} → predicts {v.label(pos + 1)}; full model's top: “{show_text(d['top_token'][ri] or '')}”")
    log_grid = [math.log10(max(g, 1e-12)) for g in v.grid]
    g = _chart(v, log_grid)
    xs = [g.X(x) for x in log_grid]
    body = _slider_marks(v, g, log_grid) + _slider_axes(g, v.metric) + _s_top1_mark(d["s_top1"][ri], g) + _slider_curves(v, g, xs)
    flow.part(Part(g.W, g.Hh, body))
    flow.part(_slider_legend(v, g.W))
    track, ends = _range_input(v, g.W)
    flow.part(track, gap=2)
    flow.part(ends)
    flow.lines(_readout(v), size=12)
    return flow.done()


def preview(v: View) -> Part:
    d, ri, kk, width = v.d, v.ri, v.k, 250
    flow = Flow(width)
    tk = d.get("topk")
    if not tk:
        flow.title("No top-k in this result: trace it again with this version of density_nb to see what each subgraph predicts.")
        return flow.done()
    if ri < 0:
        flow.title("no roots")
        return flow.done()
    k, nxt = tk["k"], tk["next"][ri]
    tok_text = lambda i: f"#{tk['vocab_id'][i]}" if tk["vocab"][i] is None else show_text(tk["vocab"][i])
    flow.title(f"What step {v.roots[ri]} predicts")

    def column(head: str, ids: Sequence[int], probs: Sequence[float | None]) -> bool:
        flow.lines(head, size=12, fill=FG2, gap=2)
        found = False
        for t, p in zip(ids, probs):
            is_next = t == nxt and nxt >= 0
            found |= is_next
            row = []
            if is_next:
                row += [
                    el("rect", x=0, y=0, width=width, height=17, rx=3, fill=NEXT_BG[0], fill_opacity=NEXT_BG[1]),
                    el("rect", x=0, y=0, width=3, height=17, fill=NEXT),
                ]
            shown, limit = tok_text(t), 12
            shown = shown if columns(shown) <= limit else shown[: limit - 1] + "…"
            chip = {"fill": BG2, "stroke": GRIDLINE}  # a chip: "," and "." are as easy to see as words
            row.append(el("rect", x=2, y=1, width=columns(shown) * COL + 6, height=15, rx=3, **chip))
            row.append(text(5, 13, shown, mono=True, fill=FG))
            row.append(el("rect", x=104, y=5, width=56, height=8, rx=2, fill=BG2))
            row.append(el("rect", x=104, y=5, width=56 * max(0.0, min(1.0, p or 0.0)), height=8, rx=2, fill=CURVE, fill_opacity=0.55))
            row.append(text(206, 13, fmt(p, 2), size=12, fill=FG, text_anchor="end"))
            if is_next:
                row.append(text(210, 13, "◂ next", size=11, fill=NEXT, font_weight="600"))
            flow.part(Part(width, 17, row), gap=1)
        flow.y += 6
        return found

    flat = v.plateau(ri, kk)
    in_sub = False
    head = f"subgraph at s = {fmt_s(v.grid[kk])} — top-{k}"
    if flat:
        flow.lines(head, size=12, fill=FG2, gap=2)
        note = Flow(width - 16)
        note.lines(
            f"No path from the input yet ({fmt_int(d['n_edges'][ri][kk])} of the {fmt_int(d['input_edges'][ri])} edges needed to reach it): the subgraph outputs the uniform distribution and predicts nothing.",
            size=12,
        )
        box = note.done()
        flow.body.append(el("rect", x=0, y=flow.y, width=width, height=box.height + 8, rx=3, fill=PLATEAU[0], fill_opacity=PLATEAU[1]))
        flow.body.append(box.at(8, flow.y + 2))
        flow.y += box.height + 14
    else:
        in_sub = column(head, tk["sub"][ri][kk], tk["sub_p"][ri][kk])
    in_full = column(f"full model — top-{k}", tk["full"][ri], tk["full_p"][ri])
    if nxt < 0:
        flow.lines("The text ends here: no next token to compare with.", size=12, fill=FG2)
    else:
        where = " nor ".join(w for w, miss in (("the subgraph's", not flat and not in_sub), ("the full model's", not in_full)) if miss)
        flow.lines(f"◂ the text's next token “{tok_text(nxt)}”" + (f" (not in {where} top-{k})" if where else ""), size=12, fill=FG2)
    return flow.done()


def head_grid(v: View, gid: str) -> Part:
    d, L, H, ri, k = v.d, v.L, v.H, v.ri, v.k
    cell, label_w, bars_w = 16, 34, 56
    grid_w = label_w + (H + 1) * (cell + 1) + 6 + 4 + bars_w
    width = max(grid_w, 280)
    flow = Flow(width)
    if v.shares is None or not L or ri < 0:
        flow.title("No head/MLP shares in this result.")
        return flow.done()
    floor = d.get("share_floor") or 1e-4
    lf = math.log10(floor)
    value = [0.0 if c == 0 else 1.0 if c == 255 else 10 ** (lf * (254 - c) / 253) for c in range(256)]
    logpos = [0.0 if c == 0 else min(1.0, (c - 1) / 253) for c in range(256)]
    scale = v.scale
    flow.title(f"Edges included per head and MLP — step {v.roots[ri]}, s = {fmt_s(v.grid[k])}")
    codes = v.shares.reshape(len(v.roots), len(v.grid), L, H + 1)[ri, k]
    body = [text(label_w - 4, 10, "layer", size=10, fill=FG2, text_anchor="end")]
    x_of = lambda j: label_w + j * (cell + 1) + (6 if j == H else 0)
    body += [text(x_of(j) + cell / 2, 10, str(j), size=10, fill=FG2, text_anchor="middle") for j in range(H)]
    body.append(text(x_of(H) + cell / 2, 10, "MLP", size=10, fill=FG2, text_anchor="middle"))
    bars_x = x_of(H) + cell + 8
    body.append(text(bars_x, 10, "attn / MLP", size=10, fill=FG2))
    cells: list[str] = []  # outlined alike: one group carries the stroke
    for layer in range(L):
        y = 14 + layer * (cell + 1)
        body.append(text(label_w - 4, y + 12, str(layer), size=10, fill=FG2, text_anchor="end"))
        for j in range(H + 1):
            c = int(codes[layer, j])
            t = value[c] if scale == "linear" else logpos[c]
            fill = rgb(interp(stops("shares"), t)) if c else "none"
            cells.append(el("rect", x=x_of(j), y=y, width=cell, height=cell, rx=2, fill=fill, class_="dnb-cell"))
        attn = sum(value[int(c)] for c in codes[layer, :H]) / H if H else 0.0
        mlp_code = int(codes[layer, H])
        pos = lambda x: min(1.0, max(0.0, (math.log10(x) - lf) / -lf)) if x > 0 else 0.0
        wa, wm = (pos(attn), logpos[mlp_code]) if scale == "log" else (attn, value[mlp_code])
        body.append(el("rect", x=bars_x, y=y + 2, width=max(1.0, wa * bars_w), height=5, rx=1, fill=ATTN))
        body.append(el("rect", x=bars_x, y=y + 9, width=max(1.0, wm * bars_w), height=5, rx=1, fill=MLP))
    body.append(f"<g{_attrs({'stroke': CELL_BORDER[0], 'stroke_opacity': CELL_BORDER[1]})}>{''.join(cells)}</g>")
    flow.part(Part(grid_w, 14 + L * (cell + 1), body))
    flow.lines(f"share of each head's (MLP's) edges in the subgraph, {scale} scale", size=11, fill=FG2, gap=2)
    flow.part(gradient_bar(gid + "c", "", fmt_pct(floor) if scale == "log" else "0 %", "100 %"), gap=4)
    key = lambda colour: el("rect", x=0, y=3, width=16, height=6, fill=colour)
    none = el("rect", x=3, y=1, width=10, height=10, rx=2, fill="none", stroke=CELL_BORDER[0], stroke_opacity=CELL_BORDER[1])
    flow.part(legend_items([(none, "none"), (key(ATTN), "attention (mean of heads)"), (key(MLP), "MLP")], width))
    return flow.done()


def status(widget: Any, width: float) -> Part:
    st = getattr(widget, "status", {}) or {}
    done, total = int(st.get("done") or 0), int(st.get("total") or 0)
    verb = {"running": "tracing", "done": "done", "cancelled": "cancelled, kept", "failed": "failed after"}.get(st.get("state", ""), "")
    note = f" — {st['note']}" if st.get("note") else ""
    frac = min(done, max(total, 1)) / max(total, 1)
    body = [
        el("rect", x=0, y=3, width=200, height=10, rx=3, fill=BG2),
        el("rect", x=0, y=3, width=200 * frac, height=10, rx=3, fill=ACCENT),
    ]
    body.append(text(210, 12, f"{verb} {done} of {total} {st.get('unit', 'steps')}{note}", fill=FG))
    return Part(width, 18, body)


def row(parts: Sequence[Part], width: float) -> Part:
    """Parts side by side, wrapping to a new row when the next one does not fit ``width``."""
    body, x, y, tall = [], 0.0, 0.0, 0.0
    for p in parts:
        if x and x + p.width > width:
            x, y, tall = 0.0, y + tall + 12, 0.0
        body.append(p.at(x, y))
        x += p.width + GAP
        tall = max(tall, p.height)
    return Part(width, y + tall, body)


def line_breaks(chars: Sequence[str], cw: Sequence[int], cols: int, breakable: str) -> list[tuple[int, int]]:
    """The comparison's lines as ``[first, end)`` characters (as static/density.js breaks them): at most ``cols``
    columns (``cw``: each character's), ending after a newline, else at the last boundary no token straddles
    (``breakable``: '1' per boundary; a newline right after it stays on the line), else (a token wider than a
    line) where the line is full."""
    lines, a, n = [], 0, len(chars)
    while a < n:
        w, last, c, end = 0, -1, a, n
        while c < n:
            if c > a and w + cw[c] > cols:
                end = last if last > a else c
                end += end < n and chars[end] == "\n"  # the newline's mark stays at the end of its line
                break
            w += cw[c]
            c += 1
            if chars[c - 1] == "\n":
                end = c
                break
            if breakable[c] == "1":
                last = c
        lines.append((a, end))
        a = end
    return lines or [(0, 0)]


def _compare_row(
    r: dict[str, Any], chars: Sequence[str], x0: dict[int, int], line: tuple[int, int], span: Sequence[int], width: float, colour: Any
) -> Part:
    """One result's tokens on one line of characters: each token's box in its colour (``colour(row, token)``:
    background and text colour, or None), its characters, and the outline of the selected characters."""
    a0, b0 = line
    gutter = 3 * COL
    body = [text(0, 15, r["tag"], size=12, fill=FG2, font_weight="700")]
    for i, (st, en) in enumerate(zip(r["start"], r["end"])):
        zero = en == st  # a continuation or special token: a thin mark where it stands
        if (not (a0 <= st < b0 or st == b0 == len(chars))) if zero else (en <= a0 or st >= b0):
            continue
        lo, hi = max(st, a0), min(en, b0)
        colours = colour(r, i)
        x = gutter + x0[lo] * COL
        wd = 3 if zero else (x0[hi] - x0[lo]) * COL
        body.append(
            el(
                "rect",
                x=x - (1 if zero else 0),
                y=0,
                width=wd,
                height=20,
                rx=2,
                fill=colours[0] if colours else NEUTRAL,
                class_="dnb-ctok",
                data_tag=r["tag"],
                data_i=str(i),
            )
        )
        if not zero:
            body.append(text(x, 15, "".join(show_char(ch) for ch in chars[lo:hi]), mono=True, fill=colours[1] if colours else FG2))
    if span[1] > span[0] and min(span[1], b0) > max(span[0], a0):
        lo, hi = max(span[0], a0), min(span[1], b0)
        outline = {"fill": "none", "stroke": MARKER, "stroke_width": 2}
        body.append(el("rect", x=gutter + x0[lo] * COL - 1, y=-1, width=(x0[hi] - x0[lo]) * COL + 2, height=22, rx=2, **outline))
    return Part(width, 20, body)


def _compare_scatter(rows_: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]], span: Sequence[int]) -> Part:
    """The first pair's per-character density scatter with its Spearman ρ, the selected characters on top."""
    S, m0 = 230, 34
    pw = S - m0 - 10
    Xs, Ys = (lambda val: m0 + val * pw), (lambda val: S - m0 - val * pw)
    right = Flow(240)
    if not pairs:
        right.title("Needs at least two results.")
        return right.done()
    p = pairs[0]
    A, B = rows_[p["a"]], rows_[p["b"]]
    right.title(f"Spearman ρ = {fmt(p['rho'], 2)} over {p['n']} characters")
    dots = [el("line", x1=Xs(0), y1=Ys(0), x2=Xs(1), y2=Ys(1), stroke=GRIDLINE, stroke_dasharray="2 3")]
    for val in (0, 0.5, 1):
        dots.append(el("line", x1=Xs(val), x2=Xs(val), y1=Ys(0), y2=Ys(0) + 4, stroke=FG2))
        dots.append(el("line", x1=Xs(0) - 4, x2=Xs(0), y1=Ys(val), y2=Ys(val), stroke=FG2))
        dots.append(text(Xs(val), Ys(0) + 14, fmt(val), size=10, fill=FG2, text_anchor="middle"))
        dots.append(text(Xs(0) - 6, Ys(val) + 3, fmt(val), size=10, fill=FG2, text_anchor="end"))
    dots.append(el("line", x1=Xs(0), x2=Xs(1), y1=Ys(0), y2=Ys(0), stroke=FG2))
    dots.append(el("line", x1=Xs(0), x2=Xs(0), y1=Ys(0), y2=Ys(1), stroke=FG2))
    dots.append(text(Xs(0.5), S - 2, f"density, {A['tag']} ({A['label']})"[:60], size=10, fill=FG2, text_anchor="middle"))
    y_title = f"density, {B['tag']} ({B['label']})"[:60]
    dots.append(text(10, Ys(0.5), y_title, size=10, fill=FG2, text_anchor="middle", transform=f"rotate(-90 10 {Ys(0.5):g})"))
    on = lambda a, b: span[1] > span[0] and a < span[1] and b > span[0]
    for x, y, a, b in sorted(p["points"], key=lambda q: on(q[2], q[3])):
        paint = {"fill": MARKER, "fill_opacity": 0.9} if on(a, b) else {"fill": CURVE, "fill_opacity": 0.35}
        dots.append(el("circle", cx=round(Xs(x), 1), cy=round(Ys(y), 1), r=round(1.6 + math.sqrt(b - a), 1), **paint))
    right.part(Part(S, S, dots))
    return right.done()


def _difference_row(
    diff: dict[str, Any], deltas: list[float | None], half: float, x0: dict[int, int], line: tuple[int, int], width: float
) -> Part:
    """The difference row of one line: a box per run of characters one token of each result holds, its colour the
    run's difference on the diverging map."""
    a0, b0 = line
    gutter = 3 * COL
    body = [text(0, 11, "Δ", size=12, fill=FG2, font_weight="700")]
    for (st, en, _, _), delta in zip(diff["runs"], deltas):
        if en <= a0 or st >= b0:
            continue
        lo, hi = max(st, a0), min(en, b0)
        colours = map_colours("difference", difference_position(delta, half))
        x, wd = gutter + x0[lo] * COL, (x0[hi] - x0[lo]) * COL
        outline = {"stroke": CELL_BORDER[0], "stroke_opacity": CELL_BORDER[1]}  # "no change" is white: outlined
        body.append(el("rect", x=x, y=2, width=wd, height=10, rx=2, fill=colours[0] if colours else NEUTRAL, class_="dnb-dtok", **outline))
    return Part(width, 14, body)


def compare(widget: Any, gid: str) -> Part:
    """The comparison: each result's key, the rows of every line of characters (and the difference row, when the
    data holds a ``diff``), the legend and the selection; beside them the scatter."""
    d = widget.data
    chars: list[str] = d["chars"]
    cw = [int(c) for c in d["cw"]]
    rows_, span = d["rows"], list(getattr(widget, "span", [0, 0]))
    measure, how = getattr(widget, "measure", "density"), getattr(widget, "colour_scale", "fitted")
    values = lambda r: r.get("measures", {}).get(measure, r["density"])
    bounds = colour_range([x for r in rows_ for x in values(r)], measure, how)  # one scale for every row
    colour = lambda r, i: map_colours("strip", scale_position(values(r)[i], bounds, measure))
    diff = d.get("diff")
    deltas: list[float | None] = []
    if diff:
        va, vb = values(rows_[diff["a"]]), values(rows_[diff["b"]])
        deltas = [difference(va[ia], vb[ib], measure) for _, _, ia, ib in diff["runs"]]
    half = difference_range(deltas, measure, how)
    cols = min(LAYOUT["compare_columns"], max(12, columns("".join(chars))))
    left = Flow(max(360.0, (cols + 4) * COL))
    left.title(d.get("heading") or f"The same text ({len(chars)} characters) in {len(rows_)} results, aligned by characters")
    for r in rows_:
        left.lines(f"{r['tag']}  {r['label']} — {len(r['tokens'])} tokens, mean density {fmt(r['mean'])}", size=12, gap=0)
    left.y += 6
    for a0, b0 in line_breaks(chars, cw, cols, d.get("bk") or "1" * (len(chars) + 1)):
        x0 = {a0: 0}
        for c in range(a0, b0):
            x0[c + 1] = x0[c] + cw[c]
        for r in rows_:
            left.part(_compare_row(r, chars, x0, (a0, b0), span, left.width, colour), gap=2)
        if diff:
            left.part(_difference_row(diff, deltas, half, x0, (a0, b0), left.width), gap=2)
        left.y += 6
    label = MEASURES.get(measure, {"label": measure})["label"]
    left.part(gradient_bar(gid + "v", label, fmt_measure(bounds[0], measure), fmt_measure(bounds[1], measure)))
    left.lines(f"one scale for every row, {scale_note_of(how, False)}", size=11, fill=FG2)
    if diff:
        tags = f"{rows_[diff['b']]['tag']} − {rows_[diff['a']]['tag']}"
        short = MEASURES.get(measure, {"short": measure})["short"]
        decades = " (decades)" if MEASURES.get(measure, {}).get("scale") == "log" else ""
        left.part(gradient_bar(gid + "d", f"Δ = {tags}, {short}{decades}", fmt_difference(-half, measure), fmt_difference(half, measure)))
    if span[1] > span[0]:
        left.lines(f"Selected “{show_text(''.join(chars[span[0] : span[1]]))}” (characters {span[0]}–{span[1]}).", size=12)
    lp, rp = left.done(), _compare_scatter(rows_, d["pairs"], span)
    return Part(lp.width + GAP + rp.width, max(lp.height, rp.height), [lp.at(0, 0), rp.at(lp.width + GAP, 0)])


def density_views(widget: Any, view: str, gid: str) -> Part:
    """The views of one result: the strip, the slider, the preview and the grid, as ``view`` shows them (a live
    view and the playground: its progress, then the strip and, once a root is traced, the rest)."""
    v = View(widget)
    growing = view in ("live", "playground")
    below = {"explorer": ["slider", "preview", "grid"], "slider": ["slider"], "preview": ["preview"], "grid": ["grid"]}.get(view, [])
    make = {"slider": lambda: slider(v), "preview": lambda: preview(v), "grid": lambda: head_grid(v, gid)}
    parts = [make[p]() for p in (["slider", "preview", "grid"] if growing and v.roots else below)]
    strip_shown = view in ("explorer", "strip", "live") or (view == "playground" and bool(v.tokens))
    width = max(LAYOUT["strip_columns"] * COL + 4 if strip_shown else 0.0, sum(p.width for p in parts) + GAP * (len(parts) - 1))
    flow = Flow(width)
    if growing and (getattr(widget, "status", None) or {}).get("state"):
        flow.part(status(widget, width), gap=10)
    if strip_shown:
        flow.part(strip(v, width, gid), gap=10)
    if parts:
        flow.part(row(parts, width))
    return flow.done()


class _Comparison:
    """The comparison a playground shows, as ``compare`` reads a view (its data, selection, measure and scale)."""

    def __init__(self, widget: Any) -> None:
        self.data, self.span = widget.comparison, widget.compare_span
        self.measure, self.colour_scale = widget.measure, widget.colour_scale


def playground(widget: Any, gid: str) -> Part:
    """The playground as it stands: its model and text, an error if any, the result's views, the history and the
    comparison when one is open (the text box and the buttons are the page's, not the picture's)."""
    views = density_views(widget, "playground", gid)
    comparison = compare(_Comparison(widget), gid) if widget.comparison else None
    width = max(LAYOUT["strip_columns"] * COL + 4, views.width, comparison.width if comparison else 0.0)
    flow = Flow(width)
    flow.title(f"density_nb playground — {widget.model}")
    flow.lines(f"Text: “{show_text(widget.text)}”" if widget.text else "Text: (empty)", size=12, gap=2)
    settings = f"{widget.grid} grid" + (
        f", baselines: {', '.join(LABELS['baselines'][b] for b in widget.baselines)}" if widget.baselines else ""
    )
    flow.lines(settings, size=11, fill=FG2, gap=6)
    if widget.error:
        flow.lines(widget.error, size=12, fill=P["error"], gap=6)
    flow.part(views, gap=10)
    if widget.entries:
        flow.lines("History of this session:", size=12, fill=FG2, gap=2)
        for i, e in enumerate(widget.entries):
            state = "" if e["state"] == "done" else f", cancelled: {e['roots']} of {e['total']} roots"
            mark = "▸ " if i == widget.current else "  "
            flow.lines(
                f"{mark}#{i + 1} {e['model']} — “{show_text(e['text'])[:70]}” — mean density {fmt(e['mean'])}{state}", size=11, gap=0
            )
        flow.y += 8
    if comparison is not None:
        flow.part(comparison)
    return flow.done()


def render(widget: Any) -> str:
    """The SVG document of ``widget``'s current view (light theme, 8 px margin)."""
    view = getattr(widget, "view", "explorer")
    if view not in VIEWS:
        raise NotImplementedError(f"The {view!r} view has no static rendering: save it from the view's SVG/PNG buttons instead.")
    gid = "g{ID}"
    content = (
        compare(widget, gid) if view == "compare" else playground(widget, gid) if view == "playground" else density_views(widget, view, gid)
    )
    w, h = math.ceil(content.width + 16), math.ceil(content.height + 16)
    title = (widget.data or {}).get("title") or f"density_nb {view} — {(widget.data or {}).get('model', '')}"
    doc = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'font-family={quoteattr(SANS)} font-size="{SIZE}"><title>{_xml_text(title)}</title>'
        f"<defs>{gradient_def(gid + 'v', stops('strip'))}{gradient_def(gid + 'c', stops('shares'))}{gradient_def(gid + 'd', stops('difference'))}</defs>"
        f"{el('rect', width=w, height=h, fill=BG)}{content.at(8, 8)}</svg>"
    )
    return doc.replace("{ID}", hashlib.sha1(doc.encode()).hexdigest()[:8])
