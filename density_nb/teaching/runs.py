"""The corpus runs behind the findings: their specs, where the shipped results live, computing them
(full mode) or reading them (class mode), and exporting them without third-party text.

* ``full`` mode computes the runs of :data:`RUN_SPECS` (WikiText-2, full settings) into the run cache
  (``$DENSITY_NB_RUNS``, else ``runs/`` in a checkout, else the user data folder), resuming whatever is there;
* ``class`` mode (the default) reads the same runs as shipped with the package (:func:`results_dir`):
  numbers and ids only, no third-party text. Passage text is re-read from the corpus when one is
  found (:func:`corpus_text`), and otherwise the notebook says so.

``DENSITY_NB_MODE=class|full`` picks the mode. Both modes give the same numbers: the shipped results are
written from the full runs by :func:`export_results` (``python scripts/run_notebooks.py --results``).
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import platformdirs

from density_nb.analysis.curves import mean_tv_from, plateau_area, smallest_s
from density_nb.corpus.runner import run_corpus
from density_nb.corpus.runs import load_runs
from density_nb.corpus.sources import find_data, passages, unigram_counts
from density_nb.files import atomic_write, write_text
from density_nb.result import RENAMED_COLUMNS
from density_nb.teaching import texts
from density_nb.teaching.live import tokenizer

Mode = Literal["class", "full"]
MODES: tuple[Mode, ...] = ("class", "full")
MODE_ENV = "DENSITY_NB_MODE"
RUNS_ENV = "DENSITY_NB_RUNS"
RESULTS_ENV = "DENSITY_NB_RESULTS"
CHECKOUT = Path(__file__).resolve().parents[2]  # the repository, when the package runs from a checkout
# What no shipped file may hold: text from the corpus (WikiText is not ours to redistribute).
TEXT_COLUMNS = ("prompt", "next_word", "continuation", "text", "token_text", "next_text", "top_text", "top_text_full")

SPLIT = "valid"  # the split the findings are made on
REPLICATION_SPLIT = "test"  # the disjoint passages each finding's primary verdict is checked on again
WORDS = 40
N_PASSAGES = 200
N_TEST = 186  # every test-split paragraph of more than 40 words without <unk>
CONTEXT_CUTS = (10, 20)  # 05: the same prediction after only the last 10 / 20 words of the prompt
ALL_BASELINES = ("random", "random_residual", "inverse")


def results_dir() -> Path:
    """The shipped results: ``$DENSITY_NB_RESULTS``, else the package's own ``density_nb/results`` (in a
    checkout, an installed wheel or Binder alike)."""
    env = os.environ.get(RESULTS_ENV)
    return Path(env).expanduser() if env else Path(str(importlib.resources.files("density_nb") / "results"))


def _in_checkout() -> bool:
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "notebooks").is_dir()


def mode() -> Mode:
    """``class`` (default: shipped results + small live runs) or ``full`` (every corpus run computed)."""
    value = os.environ.get(MODE_ENV, "class").strip().lower() or "class"
    if value not in MODES:
        raise ValueError(f"${MODE_ENV} must be 'class' or 'full', got {value!r}.")
    return "full" if value == "full" else "class"


def runs_dir() -> Path:
    """The cache of full-mode corpus runs: ``$DENSITY_NB_RUNS``, else ``runs/`` in the checkout, else the
    user data folder (``platformdirs``) when the package is installed from a wheel."""
    env = os.environ.get(RUNS_ENV)
    if env:
        return Path(env).expanduser()
    if _in_checkout():
        return CHECKOUT / "runs"
    return Path(platformdirs.user_data_dir("density_nb")) / "runs"


def shown(path: Path) -> str:
    """``path`` relative to the checkout when it lies inside it (outputs should not carry a machine's paths)."""
    try:
        return str(Path(path).resolve().relative_to(CHECKOUT))
    except ValueError:
        return str(path)


# ---- the corpus runs behind the findings -----------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """One corpus run: WikiText-2 passages (``context`` None) or the same passages' prompts cut to
    their last ``context`` words (the same next word: 05_context_length); ``data="teaching"``: the
    teaching corpus (density_nb/teaching/texts.py, our own text, shipped with its text)."""

    model: str
    n_passages: int = N_PASSAGES
    words: int = WORDS
    grid: str = "paper"
    baselines: tuple[str, ...] = ()
    norms: str = "live"
    context: int | None = None
    data: Literal["wikitext", "teaching"] = "wikitext"
    split: str = SPLIT
    minutes: float = 0.0  # measured wall time of the full run on 2 CPU cores
    settings: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.data == "teaching":
            return f"{self.model}, the teaching corpus (density_nb/teaching/texts.py), {self.grid} grid, norms={self.norms}"
        cut = f", prompts cut to their last {self.context} words" if self.context else ""
        base = f", baselines {', '.join(self.baselines)}" if self.baselines else ""
        return f"{self.model}, {self.n_passages} WikiText-2 {self.split} passages of {self.words} words{cut}, {self.grid} grid, norms={self.norms}{base}"


RUN_SPECS: dict[str, RunSpec] = {  # minutes: measured on this project's shared 2-core CPU (issue 21: with refine, 72 min in all)
    "smollm2": RunSpec("smollm2-135m", baselines=ALL_BASELINES, minutes=26),
    "smollm2_last10": RunSpec("smollm2-135m", context=10, minutes=6),
    "smollm2_last20": RunSpec("smollm2-135m", context=20, minutes=15),
    "gemma3_live": RunSpec("gemma3-270m", norms="live", minutes=12),
    "gemma3_frozen": RunSpec("gemma3-270m", norms="frozen", minutes=8),
    # the replication: the same runs on the test split's passages (disjoint from the valid split's; it has 186 of 40+ words)
    "smollm2_test": RunSpec("smollm2-135m", N_TEST, baselines=ALL_BASELINES, split=REPLICATION_SPLIT, minutes=26),
    "smollm2_test_last10": RunSpec("smollm2-135m", N_TEST, context=10, split=REPLICATION_SPLIT, minutes=6),
    "smollm2_test_last20": RunSpec("smollm2-135m", N_TEST, context=20, split=REPLICATION_SPLIT, minutes=5),
    "gemma3_test": RunSpec("gemma3-270m", N_TEST, norms="live", split=REPLICATION_SPLIT, minutes=20),
    "teaching": RunSpec("smollm2-135m", n_passages=32, baselines=ALL_BASELINES, data="teaching", minutes=1.3),
    "teaching_gemma3": RunSpec("gemma3-270m", n_passages=32, data="teaching", minutes=4),
}


def _context_table(spec: RunSpec, folder: Path) -> Path:
    """A prompt table of the main run's passages with each prompt cut to its last ``spec.context`` words."""
    df = passages(spec.n_passages, words=spec.words, split=spec.split, drop_unk="passage")
    cut = df.assign(prompt=[" ".join(p.split()[-int(spec.context or 0) :]) for p in df.prompt])
    path = folder / f"prompts_{spec.split}_last{spec.context}.csv"
    text = cut[["passage_id", "prompt", "next_word"]].to_csv(index=False)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text(path, text)
    return path


def compute_run(name: str, progress: bool = False) -> Path:
    """Compute (or resume) the corpus run ``name`` of :data:`RUN_SPECS` into the run cache; returns its folder."""
    spec = RUN_SPECS[name]
    out = runs_dir() / name
    kwargs: dict[str, Any] = {"grid": spec.grid, "baselines": list(spec.baselines), "norms": spec.norms, **spec.settings}
    if spec.data == "teaching":
        data = texts.write_table(runs_dir() / "prompt_tables" / "teaching.csv")
        run_corpus(spec.model, out, data=data, n_passages=spec.n_passages, resume=True, progress=progress, shard_size=5, **kwargs)
    elif spec.context:  # the split recorded is the passages' (the prompt table is cut from them)
        data = _context_table(spec, runs_dir() / "prompt_tables")
        run_corpus(
            spec.model, out, data=data, split=spec.split, n_passages=spec.n_passages, resume=True, progress=progress, shard_size=5, **kwargs
        )
    else:
        run_corpus(spec.model, out, split=spec.split, drop_unk="passage", n_passages=spec.n_passages, words=spec.words, resume=True,
                   progress=progress, shard_size=5, **kwargs)  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m density_nb.teaching.runs [NAME ...]``: compute the full corpus runs (resume-safe), then
    export them to the shipped results."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("names", nargs="*", help=f"runs to compute (default: all of {', '.join(RUN_SPECS)})")
    parser.add_argument("--no-export", action="store_true", help="do not write the shipped results afterwards")
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


def export_results(names: Sequence[str] | None = None, out: Path | None = None) -> Path:
    """Write the finished runs to ``<results>/<name>.{summary,curves}.parquet`` without any text column."""
    out = results_dir() if out is None else out
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
        if spec.data == "teaching":  # passages of the teaching corpus: no WikiText split, no cut
            settings |= {"split": None, "words": None, "drop_unk": None, "data": "teaching corpus (density_nb/teaching/texts.py)"}
        elif spec.context:  # the prompts of the main run's passages, cut to their last `context` words
            settings |= {"split": spec.split, "words": spec.context, "cut_from_words": spec.words, "drop_unk": "passage"}
        index[name] = {"describe": spec.describe(), "passages": len(summary), "settings": settings, "versions": run.manifest.get("versions"),
                       "grid_sizes": run.manifest.get("grid_sizes")}  # fmt: skip
    write_text(out / "index.json", json.dumps(index, indent=1) + "\n")
    return out


def strip_text(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the columns that hold corpus text (:data:`TEXT_COLUMNS`)."""
    return df.drop(columns=[c for c in TEXT_COLUMNS if c in df.columns]).reset_index(drop=True)


# ---- what a notebook reads ------------------------------------------------------------------------
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
    """The corpus run ``name`` of :data:`RUN_SPECS`: from the shipped results in class mode, computed (or resumed)
    in the run cache in full mode. The first ``n_passages`` passages, in passage-id order."""
    if name not in RUN_SPECS:
        raise KeyError(f"No corpus run {name!r}; runs: {', '.join(RUN_SPECS)}.")
    key = (mode(), name)
    if key in _LOADED:
        return _LOADED[key]
    spec = RUN_SPECS[name]
    start_time = time.perf_counter()
    if key[0] == "class":
        summary_file, curves_file = results_dir() / f"{name}.summary.parquet", results_dir() / f"{name}.curves.parquet"
        if not summary_file.exists():
            raise FileNotFoundError(
                f"{summary_file} is missing: the shipped results come with the package (set $DENSITY_NB_RESULTS if they live elsewhere). Run in full mode "
                f"(DENSITY_NB_MODE=full) to compute them, or `python -m density_nb.teaching.runs {name}`."
            )
        summary, curves, source = pd.read_parquet(summary_file), pd.read_parquet(curves_file), f"{shown(summary_file)}"
        summary = summary.rename(columns=RENAMED_COLUMNS)  # results shipped before a measure was renamed
    else:
        folder = compute_run(name)
        run = load_runs(folder)
        summary, curves, source = run.summary, run.curves, shown(folder)
    keep = summary.passage_id.iloc[: spec.n_passages]
    summary = summary[summary.passage_id.isin(keep)].reset_index(drop=True)
    curves = curves[curves.passage_id.isin(keep)].reset_index(drop=True)
    if spec.data != "teaching":
        summary, curves = strip_text(summary), strip_text(curves)  # the same columns in both modes
    else:
        summary = summary.merge(texts.table()[["passage_id", "genre", "pair", "role"]], on="passage_id", how="left")
    data = CorpusData(name, spec, summary, curves, source)
    _LOADED[key] = data
    print(f"{data}  [{time.perf_counter() - start_time:.1f} s]")
    return data


CORPUS_TEXT_ENV = "DENSITY_NB_CORPUS_TEXT"


def show_corpus_text() -> bool:
    """False when ``$DENSITY_NB_CORPUS_TEXT`` is ``hide`` (set when the committed outputs are written:
    WikiText is not ours to redistribute)."""
    return os.environ.get(CORPUS_TEXT_ENV, "show").strip().lower() != "hide"


def corpus_text(passage_ids: Sequence[int], words: int = WORDS, split: str = SPLIT) -> pd.DataFrame | None:
    """``passage_id``, ``prompt``, ``next_word`` of WikiText-2 passages of ``split``, re-read from the corpus; None (and
    a printed note) when no corpus is found or its text is not to be shown."""
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
    df = passages(None, words=words, split=split, drop_unk="passage")
    return df[df.passage_id.isin(list(passage_ids))][["passage_id", "prompt", "next_word"]].reset_index(drop=True)


def unigram(model: str = "smollm2-135m", split: str = SPLIT) -> pd.Series:
    """Token id -> count of the model's own tokenization of every WikiText-2 paragraph of ``split`` (the
    papers count over the evaluation corpus itself). Shipped with the results (ids and counts only)."""
    path = results_dir() / f"unigram_{model}_{split}.parquet"
    if mode() == "class":
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; run in full mode to count it from the corpus.")
        df = pd.read_parquet(path)
        return pd.Series(df["count"].to_numpy(), index=pd.Index(df.token_id.to_numpy(), name="token_id"), name="count")
    texts = [t.replace(" <unk>", "").replace("<unk>", "") for t in passages(None, words=1, split=split, drop_unk="passage")["text"]]
    counts = unigram_counts(tokenizer(model), texts)  # <unk> is WikiText's placeholder, not text
    atomic_write(path, lambda tmp: counts.reset_index().to_parquet(tmp, index=False))
    return counts


MEASURES = ("density", "tv_post_input", "tv_mid", "tv_post_input_over_empty", "auc_kl", "s_top1", "entropy_full", "tv_empty", "n_tokens",
            "top_token_full", "total_edges")  # fmt: skip


def run_name(base: str, split: str = SPLIT) -> str:
    """The name of run ``base`` (e.g. ``smollm2``, ``smollm2_last10``) on ``split``: ``smollm2_test_last10``."""
    if split == SPLIT:
        return base
    model, _, rest = base.partition("_")
    name = f"{model}_{split}" + (f"_{rest}" if rest and rest != "live" else "")
    if name not in RUN_SPECS:
        raise KeyError(f"No run of {base!r} on the {split} split; runs: {', '.join(RUN_SPECS)}.")
    return name


def context_table(cuts: Sequence[int] = CONTEXT_CUTS, split: str = SPLIT) -> pd.DataFrame:
    """The same passages and next words with the full prompt and with its last ``cuts`` words: one row per
    passage, columns ``<measure>_<words>`` (e.g. ``density_40``, ``density_10``), with ``edges_top1``
    (edges the top-1 needs: by bisection where the run has it, else on the grid), ``plateau_density`` (the
    plateau's part of the density), ``s_tv10`` (the smallest size with TV ≤ 0.1: by bisection, else on the
    grid) and ``tv_post_input_common`` (the mean TV past the input over the range every length shares:
    from the largest of the passage's ``s_input`` on; the length-fair ``tv_post_input``)."""
    parts = {WORDS: corpus(run_name("smollm2", split))} | {cut: corpus(run_name(f"smollm2_last{cut}", split)) for cut in cuts}
    s_common = pd.concat([d.summary.set_index("passage_id").s_input for d in parts.values()], axis=1).max(axis=1)
    wide = None
    for words, data in parts.items():
        summary = data.summary.set_index("passage_id")
        s = summary[[m for m in MEASURES if m in summary]]
        plateau = plateau_area(data.summary, data.curves.s.unique()) / 5  # on the density scale
        s = s.assign(
            edges_top1=summary.edges_top1 if "edges_top1" in summary else s.s_top1 * s.total_edges,
            plateau_density=plateau,
            s_tv10=summary.s_tv10 if "s_tv10" in summary else smallest_s(data.curves, "tv", 0.1),
            tv_post_input_common=mean_tv_from(data, s_common),
        )
        s = s.add_suffix(f"_{words}")
        wide = s if wide is None else wide.join(s, how="inner")
    assert wide is not None
    return wide.reset_index()


if __name__ == "__main__":
    raise SystemExit(main())
