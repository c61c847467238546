"""The views' one theme in Python: ``static/theme.json`` (colour maps, light and dark palettes, the static charts'
colours, labels, number formats), the same file the browser reads (``static/common.js``, from the ``_theme``
trait), and the colour and number arithmetic both sides share, written once here for the Python SVG and the
Altair charts."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RGB = tuple[int, int, int]
THEME_FILE = Path(__file__).parent / "static" / "theme.json"
THEME: dict[str, Any] = json.loads(THEME_FILE.read_text(encoding="utf-8"))
LABELS: dict[str, Any] = THEME["labels"]
CHARTS: dict[str, Any] = THEME["charts"]
FORMATS: dict[str, Any] = THEME["formats"]
LAYOUT: dict[str, Any] = THEME["layout"]
MEASURES: dict[str, dict[str, Any]] = {name: spec for name, spec in THEME["measures"].items() if name != "about"}
DEFAULT_SPEC = {"range": [0.0, 1.0], "scale": "linear"}


def stops(name: str) -> list[RGB]:
    """A colour map's RGB stops by its name (``"viridis"``) or by the view that uses it (``"strip"``)."""
    maps = THEME["maps"]
    key = THEME["map_of"].get(name, name)
    if key not in maps or key == "about":
        raise KeyError(f"theme.json has no colour map {name!r} (maps: {', '.join(k for k in maps if k != 'about')}).")
    return [(r, g, b) for r, g, b in maps[key]]


def palette(mode: str = "light") -> dict[str, str]:
    """The named colours of ``mode`` ("light" or "dark": the light ones with the dark ones over them)."""
    palettes = THEME["palettes"]
    return {**palettes["light"], **(palettes["dark"] if mode == "dark" else {})}


def interp(colours: Sequence[RGB], t: float) -> RGB:
    """The map ``colours`` at ``t`` in [0, 1] (clipped): linear between stops, rounded half up as JS Math.round."""
    t = min(1.0, max(0.0, t))
    x = t * (len(colours) - 1)
    i = min(len(colours) - 2, math.floor(x))
    f = x - i
    a, b = colours[i], colours[i + 1]
    r, g, bl = (math.floor(a[j] + (b[j] - a[j]) * f + 0.5) for j in range(3))
    return r, g, bl


def rgb(c: RGB) -> str:
    return f"rgb({c[0]}, {c[1]}, {c[2]})"


def luminance(c: RGB) -> float:
    """Relative luminance (WCAG) of an RGB colour."""
    lin = [v / 255 / 12.92 if v / 255 <= 0.03928 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def opaque(colour: str) -> tuple[str, float | None]:
    """A palette colour as an opaque colour and its opacity (None when it has none): ``rgba(r, g, b, a)`` is
    ``rgb(r, g, b)`` at ``a``, for SVG 1.1 readers (vl-convert) that know no rgba()."""
    found = re.fullmatch(r"rgba\(\s*(\d+),\s*(\d+),\s*(\d+),\s*([\d.]+)\s*\)", colour)
    if found is None:
        return colour, None
    r, g, b, a = found.groups()
    return f"rgb({r}, {g}, {b})", float(a)


def map_colours(name: str, t: float | None) -> tuple[str, str] | None:
    """Background on the map ``name`` at ``t`` and the text colour readable on it (None where ``t`` is missing)."""
    if t is None or not math.isfinite(t):
        return None
    c = interp(stops(name), t)
    text_on = THEME["text_on"]
    return rgb(c), text_on["dark"] if luminance(c) > text_on["threshold"] else text_on["light"]


# ---- measures and their colour scale, as common.js computes them --------------------------------------
def known_measures(have: Any) -> list[str]:
    """The theme's measures that ``have`` (a mapping or a table's columns) holds, in the theme's order."""
    return [name for name in MEASURES if name in have]


def colour_range(values: Any, measure: str, how: str = "fitted") -> tuple[float, float]:
    """The colour range of ``measure`` over ``values``: "fixed" (its range in the theme) or "fitted" (the
    theme's percentiles of the finite values, of log10 for a log measure; the fixed range when too close)."""
    spec = MEASURES.get(measure, DEFAULT_SPEC)
    log, fixed = spec["scale"] == "log", (float(spec["range"][0]), float(spec["range"][1]))
    if how == "fixed":
        return fixed
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & ((v > 0) if log else True)]
    if not v.size:
        return fixed
    v = np.log10(v) if log else v
    lo, hi = (float(x) for x in np.percentile(v, THEME["fit"]["percentiles"]))
    span = math.log10(fixed[1]) - math.log10(fixed[0]) if log else fixed[1] - fixed[0]
    if not hi - lo >= THEME["fit"]["min_span"] * span:
        return fixed
    return (10**lo, 10**hi) if log else (lo, hi)


def scale_position(value: float | None, bounds: Sequence[float], measure: str) -> float | None:
    """Where ``value`` lies on ``bounds`` of ``measure``, in [0, 1] (clipped; log10 for a log measure)."""
    if value is None or not math.isfinite(value):
        return None
    log = MEASURES.get(measure, DEFAULT_SPEC)["scale"] == "log"
    if log and value <= 0:
        return 0.0
    a, b, x = (math.log10(bounds[0]), math.log10(bounds[1]), math.log10(value)) if log else (bounds[0], bounds[1], value)
    return min(1.0, max(0.0, (x - a) / ((b - a) or 1)))


def log_axis(values: Any) -> tuple[float, float, list[float]]:
    """A log axis for the positive ``values``: whole decades from the smallest (not below 1e-3) to the largest,
    and at most six ticks: (lo, hi, ticks)."""
    v = [float(x) for x in values if x is not None and math.isfinite(x) and x > 0]
    lo = max(-3, math.floor(math.log10(min(v)))) if v else -3
    hi = max(lo + 1, math.ceil(math.log10(max(v)))) if v else lo + 1
    step = math.ceil((hi - lo) / 5)
    return 10.0**lo, 10.0**hi, [10.0**e for e in range(lo, hi + 1, step)]


def fmt_measure(value: float | None, measure: str) -> str:
    """A value of ``measure`` as legends and tooltips write it (sizes as sizes)."""
    return fmt_s(value) if MEASURES.get(measure, DEFAULT_SPEC)["scale"] == "log" else fmt(value)


# ---- numbers, as common.js writes them -----------------------------------------------------------------
def fmt(x: float | None, digits: int = FORMATS["digits"]) -> str:
    """``x`` to ``digits`` significant digits, without trailing zeros ("–" when missing); as JavaScript writes a
    number: in exponent form below 1e-6 (3e-7) and from 1e21 on."""
    if x is None or not math.isfinite(x):
        return "–"
    rounded = float(f"{x:.{digits}g}")
    if rounded and not 1e-6 <= abs(rounded) < 1e21:
        m, e = f"{rounded:.{digits}g}".split("e")
        return f"{m}e{int(e):+d}" if int(e) > 0 else f"{m}e{int(e)}"
    return str(np.format_float_positional(rounded, trim="-"))


def fmt_s(s: float | None, digits: int = FORMATS["s_digits"]) -> str:
    """A subgraph size: ``digits`` significant digits, in exponent form below ``s_exp_below`` (1.0e-5)."""
    if s is None or not math.isfinite(s):
        return "–"
    if s >= FORMATS["s_exp_below"]:
        return fmt(s, digits)
    m, e = f"{s:.{max(0, digits - 2)}e}".split("e")
    return f"{m}e{int(e)}"


def fmt_int(n: float | None) -> str:
    """A count with thousands separators, rounded half up (as JS Math.round)."""
    return "–" if n is None or not math.isfinite(n) else f"{math.floor(n + 0.5):,}"


def count(n: int, noun: str) -> str:
    """``n`` and ``noun`` in the plural unless n is 1: "1 step", "9 tokens"."""
    return f"{fmt_int(n)} {noun}" + ("" if n == 1 else "s")


def fmt_pct(v: float) -> str:
    p = v * 100
    return f"{p:.0f} %" if p >= 10 else f"{fmt(p, 2)} %"


# ---- the difference of a measure between two results, on the diverging map (as common.js computes it) ----------
def difference(a: float | None, b: float | None, measure: str) -> float | None:
    """``b`` − ``a`` in ``measure``; for a log measure in decades (log10 b − log10 a). None where either is missing
    (or, on a log measure, not positive)."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    if MEASURES.get(measure, DEFAULT_SPEC)["scale"] == "log":
        return math.log10(b) - math.log10(a) if a > 0 and b > 0 else None
    return b - a


def difference_range(values: Any, measure: str, how: str = "fitted") -> float:
    """Half the width of the diverging scale, which runs from −m to m: "fixed": the width of the measure's range
    (in decades for a log measure); "fitted": the theme's upper fit percentile of the differences' sizes, or the
    fixed width when that is below ``min_span`` of it (no difference worth a colour)."""
    spec = MEASURES.get(measure, DEFAULT_SPEC)
    lo, hi = float(spec["range"][0]), float(spec["range"][1])
    fixed = math.log10(hi) - math.log10(lo) if spec["scale"] == "log" else hi - lo
    if how == "fixed":
        return fixed
    v = np.abs(np.asarray([x for x in values if x is not None], dtype=np.float64))
    v = v[np.isfinite(v)]
    if not v.size:
        return fixed
    top = float(np.percentile(v, THEME["fit"]["percentiles"][1]))
    return top if top >= THEME["fit"]["min_span"] * fixed else fixed


def difference_position(value: float | None, half: float) -> float | None:
    """Where the difference ``value`` lies on the diverging scale −``half`` … ``half``, in [0, 1] (0.5: none)."""
    if value is None or not math.isfinite(value):
        return None
    return min(1.0, max(0.0, 0.5 + value / (2 * half)))


def fmt_difference(value: float | None, measure: str) -> str:
    """A difference as legends and tooltips write it: signed, "dec" (decades) for a log measure."""
    if value is None or not math.isfinite(value):
        return "–"
    unit = " dec" if MEASURES.get(measure, DEFAULT_SPEC)["scale"] == "log" else ""
    return f"{'+' if value > 0 else ''}{fmt(value)}{unit}"
