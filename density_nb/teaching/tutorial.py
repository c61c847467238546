"""Notebook-level helpers for the tutorials: class / full mode, the corpus runs behind every finding,
the shipped results, the teaching corpus live, and the one table format of the verdicts.

Every finding notebook reads its numbers through :func:`corpus`:

* ``full`` mode computes the corpus runs of :data:`RUN_SPECS` (WikiText-2, full settings) into the
  run cache (``runs/`` or ``$DENSITY_NB_RUNS``), resuming whatever is already there;
* ``class`` mode (the default) reads the same runs as shipped with the repository in ``results/``:
  numbers and ids only, no third-party text. Passage text is re-read from the corpus when one is
  found (:func:`passage_text`), and otherwise the notebook says so.

``DENSITY_NB_MODE=class|full`` picks the mode. Both modes give the same numbers: ``results/`` is
written from the full runs by :func:`export_results` (``python scripts/run_notebooks.py --results``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from density_nb.analysis.aggregate import CONSTRUCTION, composition_counts
from density_nb.files import atomic_write, write_text

Mode = Literal["class", "full"]
MODES: tuple[Mode, ...] = ("class", "full")
MODE_ENV = "DENSITY_NB_MODE"
RUNS_ENV = "DENSITY_NB_RUNS"
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
# What no shipped file may hold: text from the corpus (WikiText is not ours to redistribute).
TEXT_COLUMNS = ("prompt", "next_word", "text", "token_text", "next_text", "top_text", "top_text_full")

SPLIT = "valid"
WORDS = 40
N_PASSAGES = 200
CONTEXT_CUTS = (10, 20)  # 05: the same prediction after only the last 10 / 20 words of the prompt
ALL_BASELINES = ("random", "random_residual", "inverse")


def mode() -> Mode:
    """``class`` (default: shipped results + small live runs) or ``full`` (every corpus run computed)."""
    value = os.environ.get(MODE_ENV, "class").strip().lower() or "class"
    if value not in MODES:
        raise ValueError(f"${MODE_ENV} must be 'class' or 'full', got {value!r}.")
    return "full" if value == "full" else "class"


def runs_dir() -> Path:
    """The cache of full-mode corpus runs: ``$DENSITY_NB_RUNS`` or ``runs/`` in the checkout."""
    return Path(os.environ.get(RUNS_ENV) or ROOT / "runs")


def _shown(path: Path) -> str:
    """``path`` relative to the checkout when it lies inside it (outputs should not carry a machine's paths)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# ---- the corpus runs behind the findings -----------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One corpus run: WikiText-2 passages (``context`` None) or the same passages' prompts cut to
    their last ``context`` words (the same next word: 05_context_length); ``data="teaching"``: the
    teaching corpus (density_nb/teaching.py, our own text, shipped with its text)."""

    model: str
    n_passages: int = N_PASSAGES
    words: int = WORDS
    grid: str = "paper"
    baselines: tuple[str, ...] = ()
    norms: str = "live"
    context: int | None = None
    data: Literal["wikitext", "teaching"] = "wikitext"
    minutes: float = 0.0  # measured wall time of the full run on 2 CPU cores
    settings: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.data == "teaching":
            return f"{self.model}, the teaching corpus (density_nb/teaching.py), {self.grid} grid, norms={self.norms}"
        cut = f", prompts cut to their last {self.context} words" if self.context else ""
        base = f", baselines {', '.join(self.baselines)}" if self.baselines else ""
        return f"{self.model}, {self.n_passages} WikiText-2 {SPLIT} passages of {self.words} words{cut}, {self.grid} grid, norms={self.norms}{base}"


RUN_SPECS: dict[str, RunSpec] = {  # minutes: measured on this project's shared 2-core CPU
    "smollm2": RunSpec("smollm2-135m", baselines=ALL_BASELINES, minutes=39),
    "smollm2_last10": RunSpec("smollm2-135m", context=10, minutes=3),
    "smollm2_last20": RunSpec("smollm2-135m", context=20, minutes=8),
    "gemma3_live": RunSpec("gemma3-270m", norms="live", minutes=15),
    "gemma3_frozen": RunSpec("gemma3-270m", norms="frozen", minutes=15),
    "teaching": RunSpec("smollm2-135m", n_passages=32, baselines=ALL_BASELINES, data="teaching", minutes=6),
    "teaching_gemma3": RunSpec("gemma3-270m", n_passages=32, data="teaching", minutes=2),
}


def _context_table(spec: RunSpec, folder: Path) -> Path:
    """A prompt table of the main run's passages with each prompt cut to its last ``spec.context`` words."""
    from density_nb.corpus.sources import passages

    df = passages(spec.n_passages, words=spec.words, split=SPLIT, drop_unk="passage")
    cut = df.assign(prompt=[" ".join(p.split()[-int(spec.context or 0) :]) for p in df.prompt])
    path = folder / f"prompts_last{spec.context}.csv"
    text = cut[["passage_id", "prompt", "next_word"]].to_csv(index=False)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text(path, text)
    return path


def compute_run(name: str, progress: bool = False) -> Path:
    """Compute (or resume) the corpus run ``name`` of :data:`RUN_SPECS` into the run cache; returns its folder."""
    from density_nb.corpus.runner import run_corpus

    spec = RUN_SPECS[name]
    out = runs_dir() / name
    kwargs: dict[str, Any] = {"grid": spec.grid, "baselines": list(spec.baselines), "norms": spec.norms, **spec.settings}
    if spec.data == "teaching":
        from density_nb.teaching import texts as teaching

        data = teaching.write_table(runs_dir() / "prompt_tables" / "teaching.csv")
        run_corpus(spec.model, out, data=data, n_passages=spec.n_passages, resume=True, progress=progress, shard_size=5, **kwargs)
    elif spec.context:
        data = _context_table(spec, runs_dir() / "prompt_tables")
        run_corpus(spec.model, out, data=data, n_passages=spec.n_passages, resume=True, progress=progress, shard_size=5, **kwargs)
    else:
        run_corpus(spec.model, out, split=SPLIT, drop_unk="passage", n_passages=spec.n_passages, words=spec.words, resume=True,
                   progress=progress, shard_size=5, **kwargs)  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m density_nb.teaching.tutorial [NAME ...]``: compute the full corpus runs (resume-safe), then
    export them to ``results/``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("names", nargs="*", help=f"runs to compute (default: all of {', '.join(RUN_SPECS)})")
    parser.add_argument("--no-export", action="store_true", help="do not write results/ afterwards")
    args = parser.parse_args(argv)
    for name in args.names or list(RUN_SPECS):
        start = time.perf_counter()
        print(f"{time.strftime('%H:%M:%S')} {name}: {RUN_SPECS[name].describe()}", flush=True)
        compute_run(name, progress=True)
        print(f"{time.strftime('%H:%M:%S')} {name}: done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    if not args.no_export:
        print(export_results())
    return 0


def _write_shipped(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False, compression="zstd"))


def export_results(names: Sequence[str] | None = None, out: Path = RESULTS) -> Path:
    """Write the finished runs to ``results/<name>.{summary,curves}.parquet`` without any text column."""
    from density_nb.corpus.store import load_runs

    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = json.loads((out / "index.json").read_text()) if (out / "index.json").exists() else {}
    for name in names or list(RUN_SPECS):
        folder = runs_dir() / name
        if not (folder / "manifest.json").exists():
            continue
        run = load_runs(folder)
        spec = RUN_SPECS[name]
        keep = run.summary.passage_id.iloc[: spec.n_passages]
        summary = run.summary[run.summary.passage_id.isin(keep)]
        curves = run.curves[run.curves.passage_id.isin(keep)]
        if spec.data != "teaching":  # our own text may ship; WikiText's may not
            summary, curves = strip_text(summary), strip_text(curves)
        _write_shipped(summary, out / f"{name}.summary.parquet")
        _write_shipped(curves, out / f"{name}.curves.parquet")
        settings = {k: v for k, v in run.manifest["settings"].items() if k != "data"}
        index[name] = {"describe": spec.describe(), "passages": len(summary), "settings": settings, "versions": run.manifest.get("versions"),
                       "grid_sizes": run.manifest.get("grid_sizes")}  # fmt: skip
    write_text(out / "index.json", json.dumps(index, indent=1) + "\n")
    return out


def strip_text(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the columns that hold corpus text (:data:`TEXT_COLUMNS`)."""
    return df.drop(columns=[c for c in TEXT_COLUMNS if c in df.columns]).reset_index(drop=True)


# ---- notebook start --------------------------------------------------------------------------------
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
    "02_dynamic_density": NotebookInfo("Finding 2: density varies across inputs", 2, "the `smollm2` run, about 40 min"),
    "03_cross_model": NotebookInfo(
        "Finding 3: correlation across models", 1, "the `smollm2` run, both `gemma3` runs and the teaching runs, about 1.5 h"
    ),
    "04_rarity": NotebookInfo("Finding 4: rarer predicted tokens", 1.5, "the `smollm2` run and the unigram counts, about 40 min"),
    "05_context_length": NotebookInfo("Finding 5: longer context", 2, "the `smollm2` run and two shorter-context runs, about 1 h"),
    "06_two_phases": NotebookInfo("Finding 6: two phases", 1.5, "the `smollm2` run, about 40 min"),
    "07_entropy": NotebookInfo("Finding 7: density and uncertainty", 1.5, "the `smollm2` run, about 40 min"),
    "08_unigram": NotebookInfo(
        "Finding 8: sparse subgraphs and unigram frequency", 1, "the `smollm2` run and the unigram counts, about 40 min"
    ),
}


def start(notebook: str) -> Mode:
    """Print the mode, the expected runtime and where the data come from; quiet the libraries' progress bars."""
    import warnings

    from density_nb.corpus.sources import find_data

    pd.set_option("display.max_colwidth", 80)
    pd.set_option("display.width", 140)
    with _suppress():
        from transformers.utils import logging as hf_logging

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
        lines.append("Corpus statistics: full-setting runs shipped in results/ (numbers and ids only); live runs: the teaching corpus.")
    else:
        lines.append(f"Corpus statistics: computed here, or loaded when already computed (resume-safe cache: {_shown(runs_dir())}).")
    try:
        found = find_data()
    except Exception as err:  # a bad $DENSITY_NB_DATA: say so, and go on without text
        found, lines = None, [*lines, f"Corpus: {err}"]
    if found is None:
        lines.append("WikiText-2 not found here (e.g. on Binder): passages are shown by id and numbers only.")
    elif not show_corpus_text():
        lines.append("WikiText-2 found; its text is not shown in these outputs (DENSITY_NB_CORPUS_TEXT=hide).")
    else:
        lines.append(f"WikiText-2 found at {_shown(found)}: passage text is shown where it helps.")
    print("\n".join(lines))
    return m


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return exc[0] is not None and issubclass(exc[0], ImportError)


# ---- corpus data -----------------------------------------------------------------------------------
@dataclass
class CorpusData:
    """One corpus run as the notebooks use it: ``summary`` (one row per passage), ``curves`` (one row per
    passage and stratum), where they came from, and the run's settings."""

    name: str
    spec: RunSpec
    summary: pd.DataFrame
    curves: pd.DataFrame
    source: str

    @property
    def n(self) -> int:
        return len(self.summary)

    def __repr__(self) -> str:
        return f"{self.name}: {self.n} passages ({self.spec.describe()}); from {self.source}"


_LOADED: dict[tuple[str, str], CorpusData] = {}


def corpus(name: str) -> CorpusData:
    """The corpus run ``name`` of :data:`RUN_SPECS`: from ``results/`` in class mode, computed (or resumed)
    in the run cache in full mode. The first ``n_passages`` passages, in passage-id order."""
    if name not in RUN_SPECS:
        raise KeyError(f"No corpus run {name!r}; runs: {', '.join(RUN_SPECS)}.")
    key = (mode(), name)
    if key in _LOADED:
        return _LOADED[key]
    spec = RUN_SPECS[name]
    start_time = time.perf_counter()
    if key[0] == "class":
        summary_file, curves_file = RESULTS / f"{name}.summary.parquet", RESULTS / f"{name}.curves.parquet"
        if not summary_file.exists():
            raise FileNotFoundError(
                f"{summary_file} is missing: the shipped results come with the repository. Run in full mode "
                f"(DENSITY_NB_MODE=full) to compute them, or `python -m density_nb.teaching.tutorial {name}`."
            )
        summary, curves, source = pd.read_parquet(summary_file), pd.read_parquet(curves_file), f"results/{name}.*.parquet"
    else:
        from density_nb.corpus.store import load_runs

        folder = compute_run(name)
        run = load_runs(folder)
        summary, curves, source = run.summary, run.curves, _shown(folder)
    keep = summary.passage_id.iloc[: spec.n_passages]
    summary = summary[summary.passage_id.isin(keep)].reset_index(drop=True)
    curves = curves[curves.passage_id.isin(keep)].reset_index(drop=True)
    if spec.data != "teaching":
        summary, curves = strip_text(summary), strip_text(curves)  # the same columns in both modes
    else:
        from density_nb.teaching import texts as teaching

        summary = summary.merge(teaching.table()[["passage_id", "genre", "pair", "role"]], on="passage_id", how="left")
    data = CorpusData(name, spec, summary, curves, source)
    _LOADED[key] = data
    print(f"{data}  [{time.perf_counter() - start_time:.1f} s]")
    return data


CORPUS_TEXT_ENV = "DENSITY_NB_CORPUS_TEXT"


def show_corpus_text() -> bool:
    """False when ``$DENSITY_NB_CORPUS_TEXT`` is ``hide`` (set when the committed outputs are written:
    WikiText is not ours to redistribute)."""
    return os.environ.get(CORPUS_TEXT_ENV, "show").strip().lower() != "hide"


def corpus_text(passage_ids: Sequence[int], words: int = WORDS) -> pd.DataFrame | None:
    """``passage_id``, ``prompt``, ``next_word`` of WikiText-2 passages, re-read from the corpus; None (and
    a printed note) when no corpus is found or its text is not to be shown."""
    from density_nb.corpus.sources import find_data, passages

    if not show_corpus_text():
        print("(passage text not shown in these outputs: run the notebook where the corpus is to read it)")
        return None
    try:
        found = find_data()
    except Exception:
        found = None
    if found is None:
        print("(no WikiText-2 corpus here, e.g. on Binder: passage text cannot be shown; set DENSITY_NB_DATA to see it)")
        return None
    df = passages(None, words=words, split=SPLIT, drop_unk="passage")
    return df[df.passage_id.isin(list(passage_ids))][["passage_id", "prompt", "next_word"]].reset_index(drop=True)


# ---- live runs on the teaching corpus ----------------------------------------------------------------
_LIVE: dict[tuple[Any, ...], tuple[pd.DataFrame, pd.DataFrame]] = {}


def teaching_run(
    model: str = "smollm2-135m",
    ids: Sequence[int] | None = None,
    *,
    grid: str = "paper",
    baselines: Sequence[str] = (),
    norms: str = "live",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trace teaching passages live (all when ``ids`` is None), as corpus runs trace passages: returns
    ``(summary, curves)`` with the corpus run's columns plus ``genre``, ``pair`` and ``role``."""
    from density_nb.config import TraceConfig
    from density_nb.corpus.runner import trace_passages
    from density_nb.models import load_model
    from density_nb.teaching import texts as teaching

    table = teaching.table()
    if ids is not None:
        table = table[table.passage_id.isin(list(ids))]
    key = (model, tuple(table.passage_id), grid, tuple(baselines), norms)
    if key not in _LIVE:
        start_time = time.perf_counter()
        bridge = load_model(model)
        config = TraceConfig(grid=grid, baselines=tuple(baselines), norms=norms)  # type: ignore[arg-type]
        rows = [(int(r.passage_id), r.prompt, r.next_word) for r in table.itertuples()]
        tables = trace_passages(bridge, rows, config, words=None)
        summary = pd.concat([s for s, _ in tables], ignore_index=True)
        curves = pd.concat([c for _, c in tables], ignore_index=True)
        summary = summary.merge(table[["passage_id", "genre", "pair", "role"]], on="passage_id")
        _LIVE[key] = (summary, curves)
        print(f"traced {len(rows)} teaching passages with {model} ({grid} grid) in {time.perf_counter() - start_time:.0f} s")
    return _LIVE[key]


def tokenizer(model: str = "smollm2-135m") -> Any:
    """The model's own tokenizer (loads the model: about a second once it is cached)."""
    from density_nb.models import hf_tokenizer, load_model

    return hf_tokenizer(load_model(model))


def decode(tok: Any, ids: Any) -> list[str]:
    """Each token id as its text (repr-quoted so spaces show)."""
    return [repr(tok.decode([int(i)])) for i in np.asarray(ids).ravel()]


# ---- per-passage numbers the notebooks share ---------------------------------------------------------
def smallest_s(curves: pd.DataFrame, column: str = "tv", threshold: float = 0.1, stable: bool = False) -> pd.Series:
    """Per passage: the smallest grid size with ``column <= threshold`` (``stable``: from which on it holds
    for every larger size). The full graph always qualifies (TV = 0 there)."""

    def one(group: pd.DataFrame) -> float:
        ok = (group[column] <= threshold).to_numpy()
        s = group.s.to_numpy()
        if stable:
            bad = np.flatnonzero(~ok)
            return float(s[bad[-1] + 1]) if bad.size else float(s[0])
        return float(s[np.argmax(ok)])

    return curves.sort_values(["passage_id", "stratum"]).groupby("passage_id")[["s", column]].apply(one)


def share_by_size(curves: pd.DataFrame, column: str, label: str | None = None) -> pd.DataFrame:
    """Per grid size: the share of passages whose boolean ``column`` is true, with a Wilson 95 % interval
    (a proportion, not a median of booleans)."""
    from density_nb.analysis import stats

    rows = []
    for s, group in curves.groupby("s"):
        values = group[column].dropna().astype(bool)
        p = stats.proportion(int(values.sum()), len(values))
        rows.append({"s": s, "share": p.share, "lo": p.lo, "hi": p.hi, "n": p.n, "series": label or column})
    return pd.DataFrame(rows)


def past_input(curves: pd.DataFrame, summary: pd.DataFrame) -> pd.Series:
    """True for the strata that reach an input embedding (``n_edges >= input_edges``): only these compute
    anything; smaller ones output the uniform distribution (docs/method.md §8)."""
    need = curves.passage_id.map(summary.set_index("passage_id").input_edges)
    return curves.n_edges >= need


def tv_at(curves: pd.DataFrame, s: float, column: str = "tv") -> pd.Series:
    """Per passage: ``column`` at the grid size nearest ``s`` (in log10)."""
    sizes = np.sort(curves.s.unique())
    nearest = sizes[np.argmin(np.abs(np.log10(sizes) - np.log10(s)))]
    return curves[curves.s == nearest].set_index("passage_id")[column]


def plateau_share(summary: pd.DataFrame, grid: Sequence[float]) -> pd.Series:
    """Per passage: the part of ``auc_tv`` that the uniform plateau contributes (its height ``tv_empty`` times
    its width, from 1e-5 to the last grid size short of the input), as a share of ``auc_tv``."""
    sizes = np.asarray(sorted(grid), dtype=np.float64)

    def one(row: Any) -> float:
        last = sizes[sizes < row.s_input]
        if not last.size:
            return 0.0
        width = np.log10(last[-1]) + 5.0
        return float(row.tv_empty * width / row.auc_tv) if row.auc_tv > 0 else float("nan")

    return pd.Series([one(r) for r in summary.itertuples()], index=summary.passage_id)


# ---- composition -----------------------------------------------------------------------------------
COMPONENTS = ("attention", "MLP", "residual")
QUARTILES = ("Q1 (first layers)", "Q2", "Q3", "Q4 (last layers)")


def composition(curves: pd.DataFrame, random: bool = False, added: bool = False) -> pd.DataFrame:
    """Shares of each stratum's edges by component and by layer quartile, one row per (passage, stratum):
    columns ``passage_id``, ``stratum``, ``s``, ``n`` and one per part of :data:`COMPONENTS` and
    :data:`QUARTILES`. ``random``: of the random baseline's strata (same sizes); ``added``: of the edges
    each stratum adds to the previous one (what joins as s grows)."""
    c = curves.sort_values(["passage_id", "stratum"]).reset_index(drop=True)
    counts = pd.DataFrame(composition_counts(c, random), columns=[*COMPONENTS, *QUARTILES])  # [rows, 7]
    if added:
        counts = counts.groupby(c.passage_id).diff()
    n_comp = counts[list(COMPONENTS)].sum(1)
    n_layer = counts[list(QUARTILES)].sum(1)
    out = pd.DataFrame({"passage_id": c.passage_id, "stratum": c.stratum, "s": c.s, "n": n_comp})
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in COMPONENTS:
            out[name] = counts[name] / n_comp.where(n_comp > 0)
        for name in QUARTILES:
            out[name] = counts[name] / n_layer.where(n_layer > 0)
    return out.dropna(subset=["attention"]).reset_index(drop=True)


def long_shares(shares: pd.DataFrame, parts: Sequence[str]) -> pd.DataFrame:
    """:func:`composition` in long format (``passage_id``, ``s``, ``part``, ``share``) for charts."""
    return shares.melt(id_vars=["passage_id", "s"], value_vars=list(parts), var_name="part", value_name="share").dropna()


# ---- unigram counts --------------------------------------------------------------------------------
def unigram(model: str = "smollm2-135m") -> pd.Series:
    """Token id -> count of the model's own tokenization of every WikiText-2 paragraph of the split (the
    papers count over the evaluation corpus itself). Shipped in ``results/`` (ids and counts only)."""
    path = RESULTS / f"unigram_{model}_{SPLIT}.parquet"
    if mode() == "class":
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; run in full mode to count it from the corpus.")
        df = pd.read_parquet(path)
        return pd.Series(df["count"].to_numpy(), index=pd.Index(df.token_id.to_numpy(), name="token_id"), name="count")
    from density_nb.corpus.sources import passages, unigram_counts

    texts = [t.replace(" <unk>", "").replace("<unk>", "") for t in passages(None, words=1, split=SPLIT, drop_unk="passage")["text"]]
    counts = unigram_counts(tokenizer(model), texts)  # <unk> is WikiText's placeholder, not text
    atomic_write(path, lambda tmp: counts.reset_index().to_parquet(tmp, index=False))
    return counts


def log10_frequency(counts: pd.Series, ids: Any) -> np.ndarray:
    """log10 of each token's unigram frequency; a token never seen gets half a count."""
    from density_nb.analysis.frequency import token_frequency

    floor = 0.5 / float(counts.sum())
    return np.log10(np.maximum(token_frequency(counts, ids), floor))


# ---- statistics the verdicts use -------------------------------------------------------------------------
def bootstrap_ci(values: Any, statistic: Any = np.median, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``statistic`` of the finite ``values`` with a percentile bootstrap 95 % CI: ``(estimate, lo, hi)``."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = np.array([statistic(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)])
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return float(statistic(x)), float(lo), float(hi)


def iqr(x: np.ndarray) -> float:
    """Interquartile range."""
    q25, q75 = np.quantile(x, [0.25, 0.75])
    return float(q75 - q25)


def correlation_table(df: pd.DataFrame, x: str, measures: Sequence[str], controls: Sequence[str] = ()) -> pd.DataFrame:
    """Spearman ρ of ``x`` with each measure (bootstrap CI, N), and the partial ρ with ``controls`` held fixed."""
    from density_nb.analysis import stats

    rows = {}
    for m in measures:
        raw = stats.spearman(df[x], df[m])
        row = {"rho": raw.rho, "lo": raw.lo, "hi": raw.hi, "p": raw.p_text, "N": raw.n}
        if controls:
            part = stats.partial_spearman(df, x, m, list(controls))
            row |= {"partial rho": part.rho, "partial lo": part.lo, "partial hi": part.hi, "partial N": part.n}
        rows[m] = row
    return pd.DataFrame(rows).T


def residual_spread(df: pd.DataFrame, y: str, controls: Sequence[str]) -> tuple[float, float, float]:
    """IQR of ``y`` once ``controls`` are regressed out (least squares, intercept kept), with a bootstrap CI:
    the spread across inputs that the controls do not explain."""
    d = df[[y, *controls]].replace([np.inf, -np.inf], np.nan).dropna()
    x = np.column_stack([np.ones(len(d)), d[list(controls)].to_numpy(dtype=np.float64)])
    beta, *_ = np.linalg.lstsq(x, d[y].to_numpy(dtype=np.float64), rcond=None)
    resid = d[y].to_numpy(dtype=np.float64) - x @ beta
    return bootstrap_ci(resid, iqr)


def plateau_area(summary: pd.DataFrame, grid: Sequence[float]) -> pd.Series:
    """Per passage: the area (TV × decades) the uniform plateau adds to ``auc_tv`` (docs/method.md §8)."""
    share = plateau_share(summary, grid)
    return share * summary.set_index("passage_id").auc_tv


# ---- baselines (01) ------------------------------------------------------------------------------------
def baseline_by_size(data: CorpusData) -> pd.DataFrame:
    """Per grid size: the median TV of the traced strata, of each baseline and of the uniform output, and
    whether each random baseline is *informative* there (its median TV below the uniform output's: a
    baseline that does worse than the empty graph makes "traced beats random" true by construction)."""
    c = data.curves.merge(data.summary[["passage_id", "tv_empty"]], on="passage_id")
    cols = ["tv"] + [f"tv_{b}" for b in ALL_BASELINES if f"tv_{b}" in c]
    table = c[c.s < 1].groupby("s")[[*cols, "tv_empty"]].median()
    for b in ("random", "random_residual"):  # the inverse answers another question (what removing the stratum does)
        if f"tv_{b}" in table:
            table[f"{b} informative"] = table[f"tv_{b}"] < table["tv_empty"]
    return table


def versus_baseline(data: CorpusData, baseline: str, informative_only: bool = True) -> tuple[Any, list[float]]:
    """Per passage, the mean over sizes of TV(baseline) − TV(traced), over the sizes where the baseline is
    informative (better than the uniform output, :func:`baseline_by_size`) or over all sizes < 1; returns
    the paired comparison (``stats.paired_difference``, mean) and the sizes used (empty: nothing to compare)."""
    from density_nb.analysis import stats

    table = baseline_by_size(data)
    sizes = list(table.index[table[f"{baseline} informative"]]) if informative_only else list(table.index)
    c = data.curves[data.curves.s.isin(sizes)]
    gap = (c[f"tv_{baseline}"] - c.tv).groupby(c.passage_id).mean()
    if not sizes:
        return None, []
    return stats.paired_difference(np.zeros(len(gap)), gap.to_numpy(), statistic="mean"), sizes


def gap_verdict(compared: tuple[Any, list[float]], margin: float = 0.01) -> tuple[str, str]:
    """A :func:`versus_baseline` result as ``(text, verdict)``: inconclusive when the baseline is never
    informative (no better than the empty graph at any size)."""
    res, sizes = compared
    if res is None:
        return "never better than the empty graph", INCONCLUSIVE
    return f"{res.estimate:.2f} [{res.lo:.2f}, {res.hi:.2f}] at {len(sizes)} size(s)", direction(res.lo, res.hi, +1, margin)


# ---- context (05) ----------------------------------------------------------------------------------------
MEASURES = ("density", "density_plateau_free", "auc_kl", "s_top1", "entropy_full", "tv_empty", "n_tokens", "top_token_full", "total_edges")


def plateau_free_from(data: CorpusData, s_from: pd.Series) -> pd.Series:
    """Per passage: the mean of TV / TV(uniform) over log10 s from the first grid size ≥ ``s_from[passage]``
    to 1 (trapezoid rule): ``density_plateau_free`` over a range chosen by the caller, so that runs whose
    plateaus end at different sizes can be compared over the same range."""
    empty = data.summary.set_index("passage_id").tv_empty

    def one(g: pd.DataFrame) -> float:
        pid = int(g.passage_id.iloc[0])
        g = g[g.s >= s_from.get(pid, np.nan)]
        x = np.log10(g.s.to_numpy())
        if len(x) < 2:
            return float("nan")
        return float(np.trapezoid(g.tv.to_numpy() / empty[pid], x) / (x[-1] - x[0]))

    return data.curves.sort_values(["passage_id", "stratum"]).groupby("passage_id")[["passage_id", "s", "tv"]].apply(one)


def context_table(cuts: Sequence[int] = CONTEXT_CUTS) -> pd.DataFrame:
    """The same passages and next words with the full prompt and with its last ``cuts`` words: one row per
    passage, columns ``<measure>_<words>`` (e.g. ``density_40``, ``density_10``), with ``edges_top1``
    (edges the top-1 needs), ``plateau_density`` (the plateau's part of the density), ``s_tv01`` (the
    smallest size with TV ≤ 0.1) and ``plateau_free_common`` (the plateau-free density over the range
    that every length shares: from the largest of the passage's ``s_input`` on)."""
    parts = {WORDS: corpus("smollm2")} | {cut: corpus(f"smollm2_last{cut}") for cut in cuts}
    s_common = pd.concat([d.summary.set_index("passage_id").s_input for d in parts.values()], axis=1).max(axis=1)
    wide = None
    for words, data in parts.items():
        s = data.summary.set_index("passage_id")[list(MEASURES)]
        plateau = plateau_area(data.summary, data.curves.s.unique()) / 5  # on the density scale
        s = s.assign(
            edges_top1=s.s_top1 * s.total_edges,
            plateau_density=plateau,
            s_tv01=smallest_s(data.curves, "tv", 0.1),
            plateau_free_common=plateau_free_from(data, s_common),
        )
        s = s.add_suffix(f"_{words}")
        wide = s if wide is None else wide.join(s, how="inner")
    assert wide is not None
    return wide.reset_index()


# ---- composition (06) ------------------------------------------------------------------------------------
def phase_of(s: Any) -> Any:
    """``"below"`` (s < 1e-4), ``"construction"`` (1e-4 ≤ s ≤ 1e-2) or ``"refinement"`` (s > 1e-2)."""
    s = np.asarray(s)
    return np.where(s < CONSTRUCTION[0], "below", np.where(s <= CONSTRUCTION[1], "construction", "refinement"))


def phase_means(shares: pd.DataFrame, parts: Sequence[str], include_full: bool = False) -> pd.DataFrame:
    """Per passage and phase, the mean share of each part over the phase's grid sizes (the full graph, s = 1,
    left out unless ``include_full``)."""
    d = shares if include_full else shares[shares.s < 1]
    return d.assign(phase=phase_of(d.s)).groupby(["passage_id", "phase"])[list(parts)].mean().reset_index()


def phase_compare(data: CorpusData, part: str, added: bool = False, only_past_input: bool = False) -> pd.DataFrame:
    """Per passage, the mean share of ``part`` (a component or a layer quartile) in the construction and in
    the refinement phase, for the traced strata and for the random strata of the same sizes (columns
    ``traced_construction``, ``random_construction``, ``traced_refinement``, ``random_refinement``), and the
    full graph's share (``base``). ``added``: shares of the edges each stratum adds; ``only_past_input``:
    strata that reach the input only (both sides keep the traced strata's selection)."""
    traced, rand = composition(data.curves, added=added), composition(data.curves, random=True, added=added)
    keys = ["passage_id", "stratum"]
    both = traced[[*keys, "s", part]].merge(rand[[*keys, part]], on=keys, suffixes=("_traced", "_random"))
    if only_past_input:
        ok = data.curves.assign(ok=past_input(data.curves, data.summary))[[*keys, "ok"]]
        both = both.merge(ok, on=keys)
        both = both[both.ok]
    base = composition(data.curves).query("s == 1.0").set_index("passage_id")[part]
    means = phase_means(both, [f"{part}_traced", f"{part}_random"])
    wide = means.pivot(index="passage_id", columns="phase")
    wide.columns = [f"{kind.removeprefix(part + '_')}_{phase}" for kind, phase in wide.columns]
    return wide.assign(base=base).reset_index()


# ---- what small subgraphs predict (08) -------------------------------------------------------------------
def per_passage_spearman(curves: pd.DataFrame, x: str, y: str) -> pd.Series:
    """Spearman ρ of ``x`` and ``y`` over each passage's strata (one value per passage): strata of one
    passage are nested and not independent, so a trend over strata is summarised per passage first and
    then compared across passages."""
    from density_nb.analysis import stats

    return curves.groupby("passage_id")[[x, y]].apply(lambda g: stats.spearman(g[x], g[y], n_boot=0).rho)


def first_past_input(data: CorpusData) -> pd.DataFrame:
    """Per passage, the first stratum that reaches the input (the smallest that computes anything), with its
    size, top-1 token and the full model's top-1."""
    c = data.curves[past_input(data.curves, data.summary)].sort_values(["passage_id", "stratum"])
    first = c.groupby("passage_id").head(1).set_index("passage_id")
    full = data.summary.set_index("passage_id")
    return pd.DataFrame({"s": first.s, "n_edges": first.n_edges, "top_token": first.top_token, "top_token_full": full.top_token_full,
                         "agrees": first.top1}).reset_index()  # fmt: skip


def rarity(data: CorpusData, counts: pd.Series) -> pd.DataFrame:
    """The run's summary with the log10 unigram frequency of the full model's top-1 token
    (``log10_freq_top``), of the text's next token (``log10_freq_next``), the mean over the full model's
    top-5 (``log10_freq_top5``: close to the published measure, which averages the top-5 of the 60 %
    nucleus) and ``log10_s_top1``."""
    s = data.summary.copy()
    full = data.curves[data.curves.s == 1.0].set_index("passage_id").topk_token
    top5 = np.stack(full.reindex(s.passage_id).to_numpy())  # [passages, 5]
    s["log10_freq_top"] = log10_frequency(counts, s.top_token_full)
    s["log10_freq_next"] = log10_frequency(counts, s.next_token)
    s["log10_freq_top5"] = log10_frequency(counts, top5).mean(axis=1)
    s["log10_s_top1"] = np.log10(s.s_top1)
    return s


# ---- verdicts --------------------------------------------------------------------------------------
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
    from IPython.display import Markdown, display

    from density_nb.views.charts import markdown_table

    table = pd.DataFrame([{c: r.get(c, "") for c in VERDICT_COLUMNS} for r in rows])
    display(Markdown(markdown_table(table)), metadata={"density_nb": {"verdicts": notebook, "rows": table.astype(str).to_dict("records")}})
    return table


# ---- predict, then run -----------------------------------------------------------------------------
def check(prediction: Any, answer: Any, explanation: str = "") -> None:
    """Compare a reader's prediction with what the run found, and explain; never raises (a class runs on)."""
    if prediction is None or prediction == "":
        print(f"No prediction written. The run says: {answer!r}. {explanation}".strip())
        return
    ok = str(prediction).strip().lower() == str(answer).strip().lower()
    print(("✓ Right. " if ok else f"✗ Not quite: you said {prediction!r}, the run says {answer!r}. ") + explanation)


if __name__ == "__main__":
    raise SystemExit(main())
