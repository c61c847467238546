"""The measure card of docs/method.md (§10), computed from the shipped results: every per-prediction measure,
what it measures, its range, and its Spearman ρ (95 % bootstrap CI) with the full distribution's entropy and
top probability and with the prompt's length in tokens, on the SmolLM2 run and on the teaching corpus.

    python scripts/measure_card.py            # print the card
    python scripts/measure_card.py --write    # write it into docs/method.md (between its markers)
    python scripts/measure_card.py --check    # exit 1 when docs/method.md holds another card (tests/test_measure_card.py)

No number in the card is typed in: they come from ``density_nb.teaching.runs.results_dir()``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from density_nb.analysis.stats import spearman
from density_nb.result import RENAMED_COLUMNS
from density_nb.teaching.runs import results_dir

METHOD = Path(__file__).resolve().parents[1] / "docs" / "method.md"
START, END = "<!-- measure-card:start (scripts/measure_card.py --write) -->", "<!-- measure-card:end -->"
RUNS = {"smollm2": "SmolLM2 run", "teaching": "teaching corpus"}
AGAINST = {"entropy_full": "entropy", "top_prob_full": "top prob", "n_tokens": "prompt tokens"}
N_BOOT = 2000
# measure: (what it measures, its range)
MEASURES = {
    "density": ("published density: area under TV over log10 s from 1e-5 to 1, / 5; plateau included", "[0, 1]"),
    "auc_kl": ("area under KL(full ‖ subgraph) over log10 s; plateau included (KL there = ln V − H(p))", "[0, ∞)"),
    "tv_post_input": ("plateau-free: mean TV over log10 s from the first grid size past the input to 1", "[0, 1]"),
    "tv_mid": ("mean TV over log10 s from s = 0.1 to 0.8 (the same range for every prediction)", "[0, 1]"),
    "tv_post_input_over_empty": ("tv_post_input / tv_empty (formerly density_plateau_free)", "[0, ∞)"),
    "tv_empty": ("TV of the empty graph's (uniform) output: a function of p_full alone", "[0, 1]"),
    "s_input": ("share of the edges up to the first one leaving an input embedding: where the plateau ends", "(0, 1]"),
    "s_top1": ("smallest grid size agreeing with the full top-1 (grid values only)", "grid"),
    "s_top1_stable": ("grid size from which every larger stratum agrees on the top-1", "grid"),
    "s_top1_exact": ("required size for top-1 agreement, by bisection past the input (§5)", "(0, 1]"),
    "s_tv10": ("required size for TV ≤ 0.1, by bisection past the input", "(0, 1]"),
    "s_tv50": ("required size for TV ≤ 0.5, by bisection past the input", "(0, 1]"),
    "s_nu20": ("published required size for the 20 % nucleus (grid values only)", "grid"),
    "s_nu20_exact": ("required size for the 20 % nucleus, by bisection past the input", "(0, 1]"),
}


def _summary(name: str) -> pd.DataFrame:
    return pd.read_parquet(results_dir() / f"{name}.summary.parquet").rename(columns=RENAMED_COLUMNS)


def _cell(summary: pd.DataFrame, measure: str, against: str) -> str:
    if measure not in summary or against not in summary:
        return "n/a"
    r = spearman(summary[measure], summary[against], n_boot=N_BOOT)
    return "n/a" if r.rho != r.rho else f"{_signed(r.rho)} [{_signed(r.lo)}, {_signed(r.hi)}]"


def _signed(x: float) -> str:
    text = f"{x:+.2f}"
    return "0.00" if text in ("+0.00", "-0.00") else text.replace("-", "−")


def card() -> str:
    """The card as markdown: the definitions, then the ρ table."""
    summaries = {name: _summary(name) for name in RUNS}
    n = {name: len(s) for name, s in summaries.items()}
    lines = [
        "| measure | what it measures | range |",
        "|---|---|---|",
        *(f"| `{m}` | {what} | {rng} |" for m, (what, rng) in MEASURES.items()),
        "",
        "Spearman ρ with the full distribution's entropy and top-1 probability and with the prompt's length in tokens, "
        f"95 % bootstrap percentile CI ({N_BOOT} resamples of whole predictions): "
        + "; ".join(f"{label}: `results/{name}`, N = {n[name]}" for name, label in RUNS.items())
        + ".",
        "",
        "| measure | " + " | ".join(f"{RUNS[name]}: {a}" for name in RUNS for a in AGAINST.values()) + " |",
        "|---|" + "---|" * (len(RUNS) * len(AGAINST)),
    ]
    for m in MEASURES:
        lines.append(f"| `{m}` | " + " | ".join(_cell(summaries[name], m, a) for name in RUNS for a in AGAINST) + " |")
    return "\n".join(lines) + "\n"


def written() -> str:
    """The card docs/method.md holds now."""
    text = METHOD.read_text(encoding="utf-8")
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write() -> None:
    text = METHOD.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    METHOD.write_text(f"{head}{START}\n{card()}{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write the card into docs/method.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/method.md holds another card")
    args = parser.parse_args(argv)
    if args.write:
        write()
        return 0
    if args.check:
        same = written() == card()
        print(
            "docs/method.md's measure card is up to date"
            if same
            else "docs/method.md's measure card differs: run scripts/measure_card.py --write"
        )
        return 0 if same else 1
    print(card(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
