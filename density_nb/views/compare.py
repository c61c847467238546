"""``compare(results)``: several results of one text (models with different tokenizers, or one model
under two settings), their token strips stacked and aligned by characters, with a scatter of
per-character density and its Spearman ρ. Numpy, scipy and traitlets only (no torch)."""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets

from density_nb.errors import DensityNBError
from density_nb.views.data import sig4
from density_nb.views.explorer import _Widget, check_colour_scale, check_measure
from density_nb.views.theme import known_measures


class CompareError(DensityNBError):
    """The results cannot be compared (different texts, too few, tokens that do not spell the text)."""


def char_spans(tokens: Sequence[str], text: str) -> list[tuple[int, int]]:
    """``[start, end)`` characters of each token's piece in ``text``. A continuation (``""``: the rest
    of a character its previous token shows) and a special token (its name, e.g. ``<bos>``, not in the
    text) hold no character: an empty span where they stand."""
    spans, at = [], 0
    for piece in tokens:
        if piece and text.startswith(piece, at):
            spans.append((at, at + len(piece)))
            at += len(piece)
        else:
            spans.append((at, at))
    if at != len(text):
        raise CompareError(
            f"The tokens spell only the first {at} of the text's {len(text)} characters: this result's tokens "
            "do not match its text (was it edited?). Trace the text again."
        )
    return spans


def char_widths(text: str) -> str:
    """Columns each character takes in the aligned strips, one digit per character: 2 for wide
    (East Asian, most emoji), 0 for combining marks, format characters and carriage returns, else 1."""

    def width(ch: str) -> int:
        if ch == "\r" or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            return 0
        return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1

    return "".join(str(width(ch)) for ch in text)


def token_density(result: Any, values: Any = None) -> np.ndarray:
    """[T] the density (or ``values``, one per root) of the step that predicts each token (NaN where none was traced)."""
    out = np.full(len(result.tokens), np.nan)
    roots = np.asarray(result.roots)
    per_root = np.asarray(result.density if values is None else values, dtype=np.float64)
    inside = roots + 1 < len(result.tokens)
    out[roots[inside] + 1] = per_root[inside]
    return out


def breakable(spans: Sequence[Sequence[tuple[int, int]]], n_chars: int) -> str:
    """'1' for each of the ``n_chars + 1`` character boundaries that no result's token straddles (where a line of
    the comparison may end), else '0'."""
    ok = np.ones(n_chars + 1, dtype=bool)
    for row in spans:
        for a, b in row:
            ok[a + 1 : b] = False
    return "".join("1" if x else "0" for x in ok)


def char_density(result: Any, spans: Sequence[tuple[int, int]] | None = None, n_chars: int | None = None) -> np.ndarray:
    """[characters] each character's density: that of the step predicting the token that shows it (``spans``: the
    tokens' characters, on a line of ``n_chars``; default: the result's own text)."""
    spans = char_spans(result.tokens, result.text) if spans is None else spans
    per_token = token_density(result)
    out = np.full(len(result.text) if n_chars is None else n_chars, np.nan)
    for (a, b), value in zip(spans, per_token):
        out[a:b] = value
    return out


def _char_tokens(spans: Sequence[tuple[int, int]], n_chars: int) -> np.ndarray:
    """[characters] index of the token holding each character."""
    out = np.full(n_chars, -1, dtype=np.int64)
    for i, (a, b) in enumerate(spans):
        out[a:b] = i
    return out


def label(result: Any, others: Sequence[Any]) -> str:
    """The model's name, and the settings in which it differs from the other results of the same model."""
    same = [o for o in others if o is not result and o.model == result.model]
    keys = sorted({k for o in same for k in set(o.settings) | set(result.settings) if o.settings.get(k) != result.settings.get(k)})
    extra = ", ".join(f"{k}={result.settings.get(k)!r}" for k in keys)
    return f"{result.model} ({extra})" if extra else str(result.model)


def compare_rows(results: Sequence[Any], spans: Sequence[Sequence[tuple[int, int]]], names: Sequence[str]) -> list[dict[str, Any]]:
    """Each result's row of the comparison: its tokens as character spans (``spans``, on the comparison's line)
    with the value of every measure the results share, its s_top1 and mean density."""
    summaries = [r.summary() for r in results]
    measures = [m for m in known_measures(summaries[0].columns) if all(m in t for t in summaries)]
    rows = []
    for i, (res, span, name, table) in enumerate(zip(results, spans, names, summaries)):
        per_token = token_density(res)
        s_top1 = np.full(len(res.tokens), np.nan)
        inside = res.roots + 1 < len(res.tokens)
        s_top1[res.roots[inside] + 1] = res.s_top1[inside]
        rows.append(
            {
                "tag": chr(ord("A") + i) if i < 26 else str(i),
                "label": name,
                "model": str(res.model),
                "tokens": [str(t) for t in res.tokens],
                "start": [a for a, _ in span],
                "end": [b for _, b in span],
                "density": sig4(per_token),
                "measures": {m: sig4(token_density(res, table[m].to_numpy(dtype=np.float64))) for m in measures},
                "s_top1": sig4(s_top1),
                "mean": sig4(np.nanmean(res.density)) if len(res.roots) else None,
            }
        )
    return rows


def pair_points(results: Sequence[Any], spans: Sequence[Sequence[tuple[int, int]]], line: str, a: int, b: int) -> dict[str, Any]:
    """The scatter of results ``a`` and ``b``: one point per run of characters of ``line`` that one token of each
    holds (both with a density), and Spearman ρ over those characters."""
    from density_nb.analysis.stats import spearman  # scipy: imported when a comparison is made

    chars = [char_density(results[m], spans[m], len(line)) for m in (a, b)]
    holders = [_char_tokens(spans[m], len(line)) for m in (a, b)]
    both = np.isfinite(chars[0]) & np.isfinite(chars[1])
    corr = spearman(chars[0][both], chars[1][both], n_boot=0)
    points = []  # one per run of characters held by the same token in both
    for _, run in itertools.groupby(np.flatnonzero(both), key=lambda c: (holders[0][c], holders[1][c])):
        cs = list(run)
        points.append([sig4(chars[0][cs[0]]), sig4(chars[1][cs[0]]), int(cs[0]), int(cs[-1]) + 1])
    return {"a": a, "b": b, "rho": sig4(corr.rho), "n": int(corr.n), "points": points}


def compare_data(results: Sequence[Any], labels: Sequence[str] | None = None) -> dict[str, Any]:
    """The compact data of the comparison view: characters, each result's tokens as character spans
    with their densities, and for each pair the per-span scatter points and Spearman ρ over characters."""
    results = list(results)
    if len(results) < 2:
        raise CompareError(f"compare needs at least two results of the same text, got {len(results)}.")
    text = results[0].text
    for i, res in enumerate(results[1:], 1):
        if res.text != text:
            raise CompareError(
                f"Result {i} is of a different text ({len(res.text)} vs {len(text)} characters, first difference at "
                f"character {next((j for j, (a, b) in enumerate(zip(res.text, text)) if a != b), min(len(res.text), len(text)))}): "
                "compare results of the same text, or two results of different texts with views.difference(before, after)."
            )
    if labels is not None and len(labels) != len(results):
        raise CompareError(f"labels has {len(labels)} entries for {len(results)} results: give one per result.")
    names = [str(x) for x in labels] if labels is not None else [label(r, results) for r in results]
    spans = [char_spans(r.tokens, text) for r in results]
    return {
        "title": f"density_nb — {len(results)} results of one text ({len(text)} characters)",
        "chars": list(text),
        "cw": char_widths(text),
        "bk": breakable(spans, len(text)),
        "rows": compare_rows(results, spans, names),
        "pairs": [pair_points(results, spans, text, a, b) for a, b in itertools.combinations(range(len(results)), 2)],
    }


class CompareView(_Widget):
    """Token strips of several results of one text, stacked and aligned by characters; a scatter of
    per-character density with Spearman ρ; a click on any strip selects the same characters in all
    (trait ``span``: ``[start, end)``)."""

    span = traitlets.List(traitlets.Int(), default_value=[0, 0]).tag(sync=True)
    measure = traitlets.Unicode("density").tag(sync=True)  # what colours the tokens (one of data["rows"][0]["measures"])
    colour_scale = traitlets.Unicode("fitted").tag(sync=True)  # "fitted" to the values of every row, one scale, or "fixed"

    def __init__(
        self, results: Sequence[Any], labels: Sequence[str] | None = None, *, data: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        data = compare_data(results, labels) if data is None else data
        self._n_chars = len(data["chars"])
        super().__init__(view="compare", data=data, **kwargs)
        self.results = list(results)

    @traitlets.validate("measure")
    def _check_measure(self, proposal: Any) -> str:
        return check_measure(proposal["value"], self.data["rows"][0]["measures"] if self.data else None)

    @traitlets.validate("colour_scale")
    def _check_colour_scale(self, proposal: Any) -> str:
        return check_colour_scale(proposal["value"])

    @traitlets.validate("span")
    def _check_span(self, proposal: Any) -> list[int]:
        value = [int(x) for x in proposal["value"]]
        n = getattr(self, "_n_chars", None)
        if len(value) != 2 or not 0 <= value[0] <= value[1] or (n is not None and value[1] > n):
            raise traitlets.TraitError(f"span must be [start, end) characters with 0 ≤ start ≤ end ≤ {n}, got {proposal['value']!r}.")
        return value

    def rho(self, a: int = 0, b: int = 1) -> float:
        """Spearman ρ of per-character density between results ``a`` and ``b``."""
        for pair in self.data["pairs"]:
            if {pair["a"], pair["b"]} == {a, b}:
                return float("nan") if pair["rho"] is None else float(pair["rho"])
        raise IndexError(f"no pair ({a}, {b}) among {len(self.results)} results.")


def compare(results: Sequence[Any], labels: Sequence[str] | None = None) -> CompareView:
    """Compare two or more ``DensityResult``s of the same text (e.g. SmolLM2 and Gemma-3, or
    ``norms="live"`` and ``"frozen"``): strips aligned by characters, per-character density scatter
    with Spearman ρ, linked selection. ``labels`` names the rows (default: model and differing settings)."""
    return CompareView(results, labels)
