"""Two results side by side with the per-token difference of a measure: what moved when one word changed
(``difference(before, after)``; the playground's "compare with…").

The rows are laid out as ``compare`` lays them out (each result's tokens as spans of one line of characters),
but the two texts may differ: they are aligned where they agree (``difflib`` on the characters, each changed
stretch widened until both tokenizations have a boundary at its ends), and a changed stretch shows the first
text's characters, then the second's, each row blank where the other's are. The same text (two models, two
settings) aligns character for character, as ``compare`` aligns it. Where both texts hold the same characters,
each run of characters that one token of each result holds gets the difference of their values, second minus
first, in the measure the view colours by (decades for a log measure: ``views.theme.difference``), drawn on the
theme's diverging map. Numpy, difflib and traitlets only (no torch).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from density_nb.views.compare import (
    CompareError,
    CompareView,
    breakable,
    char_spans,
    char_widths,
    compare_rows,
    label,
    pair_points,
    token_density,
)
from density_nb.views.theme import difference as value_difference

Spans = list[tuple[int, int]]


def align(a_text: str, a_spans: Spans, b_text: str, b_spans: Spans) -> tuple[str, list[int], list[int], list[bool]]:
    """The two texts on one line of characters: ``(chars, where_a, where_b, shared)``, ``where_x[i]`` the place of
    character ``i`` of text x on the line, ``shared[c]`` whether both texts hold character ``c`` there. The texts
    meet at the boundaries both tokenizations have inside the stretches difflib matches; between two such
    boundaries the stretch is shared when its characters are the same in both, else it holds the first text's
    characters and then the second's. No token crosses a stretch's end, so each token's characters stay together."""
    a_bounds = {0, len(a_text), *(x for span in a_spans for x in span)}
    b_bounds = {0, len(b_text), *(x for span in b_spans for x in span)}
    anchors = {(0, 0), (len(a_text), len(b_text))}
    matcher = difflib.SequenceMatcher(None, a_text, b_text, autojunk=False)
    for i, j, n in matcher.get_matching_blocks():
        anchors.update((i + k, j + k) for k in range(n + 1) if i + k in a_bounds and j + k in b_bounds)
    chars: list[str] = []
    where_a, where_b, shared = [0] * len(a_text), [0] * len(b_text), []
    for (i0, j0), (i1, j1) in itertools.pairwise(sorted(anchors)):
        if a_text[i0:i1] == b_text[j0:j1]:
            for k in range(i1 - i0):
                where_a[i0 + k] = where_b[j0 + k] = len(chars)
                chars.append(a_text[i0 + k])
                shared.append(True)
            continue
        for text, where, start, end in ((a_text, where_a, i0, i1), (b_text, where_b, j0, j1)):
            for i in range(start, end):
                where[i] = len(chars)
                chars.append(text[i])
                shared.append(False)
    return "".join(chars), where_a, where_b, shared


def _placed(spans: Spans, where: list[int], n_text: int, n_line: int) -> Spans:
    """Token spans of a text moved onto the line (an empty span stays empty, where its character is)."""

    def at(i: int) -> int:
        return where[i] if i < n_text else n_line

    return [(at(a), where[b - 1] + 1) if b > a else (at(a), at(a)) for a, b in spans]


def difference_data(before: Any, after: Any, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """The data of the comparison view for two results of the same or of different texts, with ``diff``:
    ``{"a": 0, "b": 1, "runs": [[start, end, token of a, token of b], ...]}``, each run of line characters that
    both texts hold and one token of each holds (the browser and ``save()`` colour its difference, b − a, in the
    measure shown)."""
    results = [before, after]
    if labels is not None and len(labels) != 2:
        raise CompareError(f"labels has {len(labels)} entries for 2 results: give one per result.")
    spans = [char_spans(r.tokens, r.text) for r in results]
    line, where_a, where_b, shared = align(before.text, spans[0], after.text, spans[1])
    placed = [_placed(spans[0], where_a, len(before.text), len(line)), _placed(spans[1], where_b, len(after.text), len(line))]
    rows = compare_rows(results, placed, [str(x) for x in labels] if labels is not None else [label(r, results) for r in results])
    holders = [np.full(len(line), -1, dtype=np.int64) for _ in results]
    for holder, row in zip(holders, placed):
        for i, (a, b) in enumerate(row):
            holder[a:b] = i
    both = np.flatnonzero(np.asarray(shared, dtype=bool) & (holders[0] >= 0) & (holders[1] >= 0))
    runs = []
    for (ta, tb), run in itertools.groupby(both.tolist(), key=lambda c: (int(holders[0][c]), int(holders[1][c]))):
        cs = list(run)
        runs.append([cs[0], cs[-1] + 1, ta, tb])
    same = before.text == after.text
    heading = (
        f"The same text ({len(line)} characters) in 2 results, aligned by characters; Δ: second − first"
        if same
        else f"Two texts ({len(before.text)} and {len(after.text)} characters) aligned where they agree; Δ: B − A"
    )
    return {
        "title": f"density_nb — difference of two results ({len(line)} characters)",
        "heading": heading,
        "chars": list(line),
        "cw": char_widths(line),
        "bk": breakable(placed, len(line)),
        "rows": rows,
        "pairs": [pair_points(results, placed, line, 0, 1)],
        "diff": {"a": 0, "b": 1, "runs": runs},
    }


def difference_table(before: Any, after: Any, measure: str = "density") -> pd.DataFrame:
    """The differences the comparison colours, as a table: one row per run of characters both texts hold in one
    token each (in the second text's order), with the tokens (``token_a``, ``token_b``: their positions
    ``position_a``, ``position_b``), ``measure``'s value in each (``a``, ``b``: that of the step predicting the
    token) and ``delta`` = b − a (decades for a log measure), and ``side``: "before" or "after" the first
    character the texts do not share ("after" throughout when they share every character)."""
    data = difference_data(before, after)
    rows, diff, chars = data["rows"], data["diff"], data["chars"]
    values = [token_density(r, r.summary()[measure].to_numpy(dtype=np.float64)) for r in (before, after)]
    line_a, line_b = (
        set(range(len(chars))) - set(itertools.chain.from_iterable(range(s, e) for s, e in zip(r["start"], r["end"]))) for r in rows
    )
    first = min(line_a | line_b, default=len(chars))  # the first character only one text holds
    out = []
    for start, _, ia, ib in diff["runs"]:
        a, b = float(values[0][ia]), float(values[1][ib])
        delta = value_difference(a, b, measure)
        out.append(
            {
                "token_a": before.tokens[ia],
                "token_b": after.tokens[ib],
                "position_a": ia,
                "position_b": ib,
                "a": a,
                "b": b,
                "delta": np.nan if delta is None else delta,
                "side": "before" if start < first and first < len(chars) else "after",
            }
        )
    return pd.DataFrame(out, columns=["token_a", "token_b", "position_a", "position_b", "a", "b", "delta", "side"])


def difference(before: Any, after: Any, labels: Sequence[str] | None = None) -> CompareView:
    """Two results side by side, as ``compare`` shows them, with the per-token difference ``after`` − ``before`` of
    the measure shown on the theme's diverging scale. The texts may differ (change one word and trace again): they
    are aligned where they agree. ``labels`` names the two rows."""
    return CompareView([before, after], labels, data=difference_data(before, after, labels))
