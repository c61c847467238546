"""The tutorials' one import (``from density_nb.teaching import tutorial as tut``): the corpus runs and
their modes (``runs``), the notebook header (``notebook``), live runs on the teaching corpus (``live``),
the per-passage numbers and statistics of ``analysis`` (here taking a run as the notebooks hold it,
``CorpusData``), and the verdict rules (``verdicts``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from density_nb.analysis import curves as _curves
from density_nb.analysis.curves import (
    COMPONENTS,
    QUARTILES,
    long_shares,
    past_input,
    per_passage_spearman,
    phase_means,
    phase_of,
    plateau_area,
    plateau_share,
    share_by_size,
    smallest_s,
    tv_at,
)
from density_nb.analysis.curves import stratum_composition as composition
from density_nb.analysis.frequency import log10_frequency
from density_nb.analysis.stats import bootstrap_ci, correlation_table, iqr, residual_spread
from density_nb.teaching.live import decode, teaching_run, tokenizer
from density_nb.teaching.notebook import NOTEBOOKS, NotebookInfo, start
from density_nb.teaching.playground import playground
from density_nb.teaching.runs import (
    ALL_BASELINES,
    CONTEXT_CUTS,
    MEASURES,
    MODE_ENV,
    N_PASSAGES,
    RUN_SPECS,
    RUNS_ENV,
    SPLIT,
    TEXT_COLUMNS,
    WORDS,
    CorpusData,
    RunSpec,
    compute_run,
    context_table,
    corpus,
    corpus_text,
    export_results,
    main,
    mode,
    results_dir,
    runs_dir,
    show_corpus_text,
    strip_text,
    unigram,
)
from density_nb.teaching.verdicts import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    OPPOSITE,
    REPRODUCED,
    VERDICT_COLUMNS,
    above,
    check,
    ci_text,
    combine,
    direction,
    gap_verdict,
    verdict_table,
)
from density_nb.views.difference import difference_table

__all__ = [
    "ALL_BASELINES", "COMPONENTS", "CONTEXT_CUTS", "INCONCLUSIVE", "MEASURES", "MODE_ENV", "NOTEBOOKS", "NOT_REPRODUCED",
    "N_PASSAGES", "OPPOSITE", "QUARTILES", "REPRODUCED", "RUNS_ENV", "RUN_SPECS", "SPLIT", "TEXT_COLUMNS", "VERDICT_COLUMNS",
    "WORDS", "CorpusData", "NotebookInfo", "RunSpec", "above", "baseline_by_size", "bootstrap_ci", "check", "ci_text",
    "combine", "composition", "compute_run", "context_table", "corpus", "corpus_text", "correlation_table", "decode",
    "difference_table", "direction", "export_results", "first_past_input", "gap_verdict", "iqr", "log10_frequency", "long_shares", "main", "mode",
    "past_input", "per_passage_spearman", "phase_compare", "phase_means", "phase_of", "plateau_area", "plateau_free_from",
    "plateau_share", "playground", "rarity", "residual_spread", "results_dir", "runs_dir", "share_by_size", "show_corpus_text",
    "smallest_s", "start", "strip_text", "teaching_run", "tokenizer", "tv_at", "unigram", "verdict_table", "versus_baseline",
]  # fmt: skip


def baseline_by_size(data: CorpusData) -> pd.DataFrame:
    """``analysis.curves.baseline_by_size`` of a run."""
    return _curves.baseline_by_size(data.summary, data.curves)


def versus_baseline(data: CorpusData, baseline: str, informative_only: bool = True) -> tuple[Any, list[float]]:
    """``analysis.curves.versus_baseline`` of a run."""
    return _curves.versus_baseline(data.summary, data.curves, baseline, informative_only)


def plateau_free_from(data: CorpusData, s_from: pd.Series) -> pd.Series:
    """``analysis.curves.plateau_free_from`` of a run."""
    return _curves.plateau_free_from(data.summary, data.curves, s_from)


def phase_compare(data: CorpusData, part: str, added: bool = False, only_past_input: bool = False) -> pd.DataFrame:
    """``analysis.curves.phase_compare`` of a run."""
    return _curves.phase_compare(data.summary, data.curves, part, added, only_past_input)


def first_past_input(data: CorpusData) -> pd.DataFrame:
    """``analysis.curves.first_past_input`` of a run."""
    return _curves.first_past_input(data.summary, data.curves)


def rarity(data: CorpusData, counts: pd.Series) -> pd.DataFrame:
    """``analysis.curves.rarity`` of a run."""
    return _curves.rarity(data.summary, data.curves, counts)
