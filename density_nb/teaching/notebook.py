"""What each tutorial notebook says when it starts: its mode, its expected time, where its data come from."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

from density_nb.corpus.sources import find_data
from density_nb.teaching.runs import RUN_SPECS, Mode, mode, runs_dir, show_corpus_text, shown


@dataclass(frozen=True)
class NotebookInfo:
    """A notebook's header: its title, its measured class-mode time and the corpus runs full mode computes.

    ``class_minutes`` is measured: the wall time ``scripts/run_notebooks.py NAME --mode class`` records
    (``nb.metadata["density_nb"]``), kernel start included, on this project's shared 2-core CPU, rounded to
    half a minute (tests/test_teaching.py compares it with the recorded seconds). ``runs`` names the
    :data:`~density_nb.teaching.runs.RUN_SPECS` runs full mode computes (valid and test split); the full-mode
    time is their measured ``RunSpec.minutes`` summed (:attr:`full_minutes`). ``also`` names what full mode
    computes besides them (or, without runs, what it does instead)."""

    title: str
    class_minutes: float
    runs: tuple[str, ...] = ()
    also: str = ""

    @property
    def full_minutes(self) -> float:
        """The measured minutes of the runs full mode computes the first time (0 when it computes none)."""
        return float(sum(RUN_SPECS[name].minutes for name in self.runs))

    @property
    def full_note(self) -> str:
        """What full mode computes, and how long that takes the first time (from the runs' measured minutes)."""
        if not self.runs:
            return self.also
        names = ", ".join(f"`{name}`" for name in self.runs)
        also = f" and {self.also}" if self.also else ""
        return f"the runs {names}{also}, about {minutes_text(self.full_minutes)}"


def minutes_text(minutes: float) -> str:
    """``"52 min"`` below 90 minutes, else hours to one decimal (``"1.6 h"``)."""
    return f"{minutes:.0f} min" if minutes < 90 else f"{minutes / 60:.1f} h"


_VALID_TEST = ("smollm2", "smollm2_test")  # the findings' run and its replication on the test split
# class_minutes: measured with `scripts/run_notebooks.py NAME --mode class --inplace` (00: --mode full, the same), one at a
# time on 2 CPU cores with nothing else running (load average below 1), 2026-12-06, main after issue 23's merges:
# 00_anatomy 26 s, 00_quickstart 21 s, 01 39 s, 02 25 s, 03 23 s, 04 27 s, 05 26 s, 06 22 s, 07 26 s, 08 20 s
# (docs/teaching.md); tests/test_teaching.py re-checks them against each notebook's record.
NOTEBOOKS: dict[str, NotebookInfo] = {
    "00_anatomy": NotebookInfo("Anatomy of one prediction", 1, also="the same as class mode (one sentence, traced live)"),
    "00_quickstart": NotebookInfo("Quickstart: the tool", 1, also="the same as class mode (one paragraph, traced live)"),
    "01_dense_vs_random": NotebookInfo(  # its live random-removal control: 39 s idle, 82–143 s beside a corpus run
        "Findings 1 and 9: dense computation; traced vs random subgraphs",
        1,
        _VALID_TEST,
        "the inverse's random-removal control on 24 passages",
    ),
    "02_dynamic_density": NotebookInfo("Finding 2: density varies across inputs", 1, _VALID_TEST),
    "03_cross_model": NotebookInfo(
        "Finding 3: correlation across models",
        1,
        ("smollm2", "gemma3_live", "gemma3_frozen", "teaching", "teaching_gemma3", "smollm2_test", "gemma3_test"),
    ),
    "04_rarity": NotebookInfo("Finding 4: rarer predicted tokens", 1, _VALID_TEST, "the unigram counts of both splits"),
    "05_context_length": NotebookInfo(
        "Finding 5: longer context",
        1,
        ("smollm2", "smollm2_last10", "smollm2_last20", "smollm2_test", "smollm2_test_last10", "smollm2_test_last20"),
    ),
    "06_two_phases": NotebookInfo("Finding 6: two phases", 1, _VALID_TEST),
    "07_entropy": NotebookInfo("Finding 7: density and uncertainty", 1, _VALID_TEST),
    "08_unigram": NotebookInfo("Finding 8: sparse subgraphs and unigram frequency", 1, _VALID_TEST, "the unigram counts of both splits"),
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
        full = f"{info.full_note} the first time (cached in the run folder afterwards)" if info.runs else info.full_note
        lines.append(f"Expected time: about {info.class_minutes:g} min in class mode on 2 CPU cores; full mode: {full}.")
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
