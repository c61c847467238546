"""The verdict rules of the finding notebooks and their one table format (collected into docs/findings.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from density_nb.views.charts import markdown_table

VERDICT_COLUMNS = (
    "finding",
    "claim",
    "primary (published measure)",
    "plateau-free",
    "controls",
    "other checks",
    "verdict",
    "N",
    "model",
    "grid",
)


REPRODUCED, NOT_REPRODUCED, OPPOSITE, INCONCLUSIVE = "reproduced", "not reproduced", "opposite", "inconclusive"


def direction(lo: float, hi: float, expected: int, margin: float) -> str:
    """The verdict rule for an effect whose claimed sign is ``expected`` (+1 or −1), from its 95 % CI
    ``[lo, hi]``: ``reproduced`` when the CI lies on the claimed side of 0, ``opposite`` when it lies on the
    other side, ``not reproduced`` when it lies inside ±``margin`` (no effect as large as the smallest one
    of interest), else ``inconclusive``."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE
    lo_s, hi_s = sorted((expected * lo, expected * hi))
    if lo_s > 0:
        return REPRODUCED
    if hi_s < 0:
        return OPPOSITE
    if -margin < lo and hi < margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def above(ci: Sequence[float], threshold: float) -> str:
    """The verdict rule for "at least ``threshold``", from ``(estimate, lo, hi)``: ``reproduced`` when the
    95 % CI lies above it, ``not reproduced`` when it lies below, else ``inconclusive``."""
    _, lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE
    return REPRODUCED if lo > threshold else NOT_REPRODUCED if hi < threshold else INCONCLUSIVE


def combine(primary: str, checks: dict[str, str]) -> str:
    """One verdict: the primary measure's, qualified by the robustness checks that disagree with it."""
    disagree = [f"{name}: {v}" for name, v in checks.items() if v != primary]
    if not disagree:
        return primary + (" (robust)" if checks else "")
    return f"{primary} on the published measure; " + "; ".join(disagree)


def ci_text(est: float, lo: float, hi: float, fmt: str = ".2f") -> str:
    return f"{est:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def verdict_table(notebook: str, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Show the verdict table (one format everywhere) and tag the output, so that
    ``scripts/run_notebooks.py --findings`` can collect it into docs/findings.md from the notebooks."""
    from IPython.display import Markdown, display  # only inside a notebook

    table = pd.DataFrame([{c: r.get(c, "") for c in VERDICT_COLUMNS} for r in rows])
    display(Markdown(markdown_table(table)), metadata={"density_nb": {"verdicts": notebook, "rows": table.astype(str).to_dict("records")}})
    return table


def gap_verdict(compared: tuple[Any, list[float]], margin: float = 0.01) -> tuple[str, str]:
    """A :func:`versus_baseline` result as ``(text, verdict)``: inconclusive when the baseline is never
    informative (no better than the empty graph at any size)."""
    res, sizes = compared
    if res is None:
        return "never better than the empty graph", INCONCLUSIVE
    return f"{res.estimate:.2f} [{res.lo:.2f}, {res.hi:.2f}] at {len(sizes)} size(s)", direction(res.lo, res.hi, +1, margin)


def check(prediction: Any, answer: Any, explanation: str = "") -> None:
    """Compare a reader's prediction with what the run found, and explain; never raises (a class runs on)."""
    if prediction is None or prediction == "":
        print(f"No prediction written. The run says: {answer!r}. {explanation}".strip())
        return
    ok = str(prediction).strip().lower() == str(answer).strip().lower()
    print(("✓ Right. " if ok else f"✗ Not quite: you said {prediction!r}, the run says {answer!r}. ") + explanation)
