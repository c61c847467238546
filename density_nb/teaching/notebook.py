"""What each tutorial notebook says when it starts: its mode, its expected time, where its data come from."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

from density_nb.corpus.sources import find_data
from density_nb.teaching.runs import Mode, mode, runs_dir, show_corpus_text, shown


@dataclass(frozen=True)
class NotebookInfo:
    title: str
    class_minutes: float  # measured on this project's 2-core CPU (shared), kernel start included
    full_note: str  # what full mode recomputes, and how long that takes


NOTEBOOKS: dict[str, NotebookInfo] = {
    "00_anatomy": NotebookInfo("Anatomy of one prediction", 2, "the same as class mode (one sentence, traced live)"),
    "00_quickstart": NotebookInfo("Quickstart: the tool", 1, "the same as class mode (one paragraph, traced live)"),
    "01_dense_vs_random": NotebookInfo(
        "Findings 1 and 9: dense computation; traced vs random subgraphs", 1.5, "the `smollm2` run, about 40 min"
    ),
    "02_dynamic_density": NotebookInfo("Finding 2: density varies across inputs", 1, "the `smollm2` and `smollm2_test` runs, about 70 min"),
    "03_cross_model": NotebookInfo(
        "Finding 3: correlation across models", 1, "the `smollm2` run, both `gemma3` runs and the teaching runs, about 1.5 h"
    ),
    "04_rarity": NotebookInfo(
        "Finding 4: rarer predicted tokens", 1, "the `smollm2` and `smollm2_test` runs and both splits' unigram counts, about 70 min"
    ),
    "05_context_length": NotebookInfo("Finding 5: longer context", 2, "the `smollm2` run and two shorter-context runs, about 1 h"),
    "06_two_phases": NotebookInfo("Finding 6: two phases", 1.5, "the `smollm2` run, about 40 min"),
    "07_entropy": NotebookInfo("Finding 7: density and uncertainty", 1.5, "the `smollm2` run, about 40 min"),
    "08_unigram": NotebookInfo(
        "Finding 8: sparse subgraphs and unigram frequency",
        1,
        "the `smollm2` and `smollm2_test` runs and both splits' unigram counts, about 70 min",
    ),
}


def start(notebook: str) -> Mode:
    """Print the mode, the expected runtime and where the data come from; quiet the libraries' progress bars."""
    pd.set_option("display.max_colwidth", 80)
    pd.set_option("display.width", 140)
    with _suppress():
        from transformers.utils import logging as hf_logging  # quiet its progress bars where it is installed

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    info = NOTEBOOKS.get(notebook)
    m = mode()
    lines = [f"Mode: {m}  (set DENSITY_NB_MODE=class|full before starting Jupyter)."]
    if info is not None:
        lines.append(
            f"Expected time: about {info.class_minutes:g} min in class mode on 2 CPU cores; full mode: {info.full_note} "
            "the first time (cached in the run folder afterwards)."
        )
    if m == "class":
        lines.append(
            "Corpus statistics: full-setting runs shipped with the package (numbers and ids only); live runs: the teaching corpus."
        )
    else:
        lines.append(f"Corpus statistics: computed here, or loaded when already computed (resume-safe cache: {shown(runs_dir())}).")
    try:
        found = find_data()
    except Exception as err:  # a bad $DENSITY_NB_DATA: say so, and go on without text
        found, lines = None, [*lines, f"Corpus: {err}"]
    if found is None:
        lines.append("WikiText-2 not found here (e.g. on Binder): passages are shown by id and numbers only.")
    elif not show_corpus_text():
        lines.append("WikiText-2 found; its text is not shown in these outputs (DENSITY_NB_CORPUS_TEXT=hide).")
    else:
        lines.append(f"WikiText-2 found at {shown(found)}: passage text is shown where it helps.")
    print("\n".join(lines))
    return m


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return exc[0] is not None and issubclass(exc[0], ImportError)
