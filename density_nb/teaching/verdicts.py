"""The verdict rules of the finding notebooks and their one table format (collected into docs/findings.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from density_nb.views.charts import markdown_table

VERDICT_COLUMNS = (
    "finding",
    "claim",
    "primary measure and rule",
    "valid split",
    "test split",
    "secondary checks (exploratory)",
    "verdict",
    "model",
    "grid",
)


REPRODUCED, NOT_REPRODUCED, OPPOSITE, INCONCLUSIVE = "reproduced", "not reproduced", "opposite", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, OPPOSITE, INCONCLUSIVE)


def direction(lo: float, hi: float, expected: int, margin: float) -> str:
    """The verdict rule for an effect whose claimed sign is ``expected`` (+1 or −1), from its 95 % CI
    ``[lo, hi]``, the margin first: ``not reproduced`` when the CI lies inside ±``margin`` (no effect as
    large as the smallest one of interest, whatever its sign), else ``reproduced`` when the CI lies on the
    claimed side of 0, ``opposite`` when it lies on the other side, else ``inconclusive``."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        return INCONCLUSIVE
    if -margin < lo and hi < margin:
        return NOT_REPRODUCED
    lo_s, hi_s = sorted((expected * lo, expected * hi))
    if lo_s > 0:
        return REPRODUCED
    if hi_s < 0:
        return OPPOSITE
    return INCONCLUSIVE


def above(ci: Sequence[float], threshold: float) -> str:
    """The verdict rule for "at least ``threshold``", from ``(estimate, lo, hi)``: ``reproduced`` when the
    95 % CI lies above it, ``not reproduced`` when it lies below, else ``inconclusive``."""
    _, lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return INCONCLUSIVE
    return REPRODUCED if lo > threshold else NOT_REPRODUCED if hi < threshold else INCONCLUSIVE


def replicated(valid: str, test: str) -> str:
    """A finding's verdict from its primary's verdicts on the two disjoint splits: the verdict both give, or
    ``inconclusive`` (saying what each gave) when they differ."""
    if valid == test:
        return valid
    return f"{INCONCLUSIVE} (valid: {valid}; test: {test})"


@dataclass(frozen=True)
class Primary:
    """A finding's one primary measure and verdict rule, declared in code before any of its numbers: the
    finding's verdict is this measure's, on both splits (:func:`replicated`); everything else is secondary.

    ``rule`` is ``"direction"`` (claimed sign ``expected``, smallest effect of interest ``margin``:
    :func:`direction`) or ``"above"`` (at least ``threshold``: :func:`above`)."""

    finding: str
    claim: str
    measure: str  # what is estimated, in words: the statistic, of which numbers, over what
    rule: Literal["direction", "above"] = "direction"
    expected: int = +1
    margin: float = 0.0
    threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.rule not in ("direction", "above") or self.expected not in (-1, 1):
            raise ValueError(f"rule must be 'direction' or 'above' and expected ±1, got {self.rule!r}, {self.expected!r}.")

    def describe(self) -> str:
        if self.rule == "above":
            return f"{self.measure}; reproduced when its 95 % CI lies above {self.threshold:g}"
        side = "above" if self.expected > 0 else "below"
        if not self.margin:
            return f"{self.measure}; reproduced when its 95 % CI lies {side} 0"
        return f"{self.measure}; not reproduced when its 95 % CI lies inside ±{self.margin:g}, else reproduced when it lies {side} 0"

    def announce(self) -> None:
        """Print the declaration (the first output of a finding's analysis, before its numbers)."""
        print(f"Primary measure of {self.finding}, declared before the numbers: {self.describe()}.")

    def verdict(self, ci: Any) -> str:
        """This rule applied to ``(estimate, lo, hi)`` (or a ``stats`` result: Estimate, Correlation, PairedDifference)."""
        est, lo, hi = triple(ci)
        return above((est, lo, hi), self.threshold) if self.rule == "above" else direction(lo, hi, self.expected, self.margin)

    def row(self, valid: Any, test: Any | None, *, secondary: dict[str, str] | None = None, fmt: str = ".2f",
            model: str = "", grid: str = "paper") -> dict[str, str]:  # fmt: skip
        """One verdict-table row: this primary on the valid split and on the test split (each an
        ``(estimate, lo, hi)`` with ``n`` and ``n_boot`` where it has them, or None when not computed), the
        secondary checks (exploratory: they never change the verdict) and the verdict both splits support."""
        cells, verdicts = {}, []
        for split, ci in (("valid split", valid), ("test split", test)):
            if ci is None:
                cells[split], v = "not computed", INCONCLUSIVE
            else:
                v = self.verdict(ci)
                cells[split] = f"{ci_text(*triple(ci), fmt=fmt)}{_counts(ci)} → {v}"
            verdicts.append(v)
        return {
            "finding": self.finding,
            "claim": self.claim,
            "primary measure and rule": self.describe(),
            **cells,
            "secondary checks (exploratory)": "; ".join(f"{k}: {v}" for k, v in (secondary or {}).items()) or "none",
            "verdict": replicated(*verdicts),
            "model": model,
            "grid": grid,
        }


def triple(ci: Any) -> tuple[float, float, float]:
    """``(estimate, lo, hi)`` of a tuple or a ``stats`` result (``rho`` of a Correlation, ``share`` of a Proportion)."""
    if hasattr(ci, "rho"):  # Correlation
        return float(ci.rho), float(ci.lo), float(ci.hi)
    if hasattr(ci, "estimate"):
        return float(ci.estimate), float(ci.lo), float(ci.hi)
    if hasattr(ci, "share"):  # Proportion
        return float(ci.share), float(ci.lo), float(ci.hi)
    est, lo, hi = (float(v) for v in ci)
    return est, lo, hi


def _counts(ci: Any) -> str:
    n, n_boot = getattr(ci, "n", None), getattr(ci, "n_boot", None)
    parts = [f"N = {n}"] if n else []
    parts += [f"{n_boot} bootstrap resamples"] if n_boot else []
    return f" ({', '.join(parts)})" if parts else ""


def ci_text(est: float, lo: float, hi: float, fmt: str = ".2f") -> str:
    return f"{est:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def verdict_table(notebook: str, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Show the verdict table (one format everywhere) and tag the output, so that
    ``scripts/run_notebooks.py --findings`` can collect it into docs/findings.md from the notebooks."""
    from IPython.display import Markdown, display  # only inside a notebook

    table = pd.DataFrame([{c: r.get(c, "") for c in VERDICT_COLUMNS} for r in rows])
    display(Markdown(markdown_table(table)), metadata={"density_nb": {"verdicts": notebook, "rows": table.astype(str).to_dict("records")}})
    return table


def check(prediction: Any, answer: Any, explanation: str = "") -> None:
    """Compare a reader's prediction with what the run found, and explain; never raises (a class runs on)."""
    if prediction is None or prediction == "":
        print(f"No prediction written. The run says: {answer!r}. {explanation}".strip())
        return
    ok = str(prediction).strip().lower() == str(answer).strip().lower()
    said = "✓ Right: the run" if ok else f"✗ Not quite: you said {prediction!r}, the run"
    print(f"{said} says {answer!r}. {explanation}")
