"""A finished (or growing) corpus run as tables: ``load_runs`` reads the shards the run store has recorded into a
``CorpusRun``, which re-traces a passage, or shows the run's dashboard."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from density_nb.corpus.store import MANIFEST, CorpusError, read_manifest, read_tables


@dataclass
class CorpusRun:
    """What ``load_runs`` returns: unpacks as ``summary, curves = load_runs(out_dir)``.

    ``summary``: one row per passage (``passage_id``, ``model``, ``words``, ``prompt``,
    ``next_word``, ``aligned``, ``n_tokens`` and the columns of
    ``DensityResult.summary()``: ``density``, ``auc_tv``, ``auc_kl``, ``s_top1``, ``entropy``,
    ``loss``, ...), sorted by ``passage_id``.
    ``curves``: one row per (passage, stratum): ``passage_id``, ``model``, ``words`` and the columns of
    ``DensityResult.curves()`` (``s``, ``s_actual``, ``tv``, ``kl``, ``top1``, ``nu``, ...), plus
    ``edges_attn``, ``edges_mlp``, ``edges_res`` and ``layer_edges`` (edges per layer, a list).
    ``manifest``: the run's settings, and ``shards``: the files its passages were read from.
    """

    summary: pd.DataFrame
    curves: pd.DataFrame
    manifest: dict[str, Any]

    def __iter__(self) -> Iterator[pd.DataFrame]:
        yield self.summary
        yield self.curves

    def passage(self, passage_id: int, model: Any = None) -> Any:
        """One passage's ``DensityResult``, re-traced with the run's settings (the run stores only its
        tables): the same numbers as its rows. ``model``: the loaded model (default: the recorded name)."""
        from density_nb.corpus.passages import trace_recorded  # torch: only to trace again (reading a run needs none)

        return trace_recorded(self, passage_id, model)

    def widget(self, compare: CorpusRun | None = None, **kwargs: Any) -> Any:
        """The corpus dashboard (``density_nb.views.CorpusDashboard``); ``compare``: a run of another
        model on the same prompts. ``model=`` (the loaded model) re-traces clicked passages without loading it again."""
        from density_nb.views import CorpusDashboard  # anywidget: the widgets extra

        return CorpusDashboard(self, compare, **kwargs)

    def to_html(self, path: str | os.PathLike[str], compare: CorpusRun | None = None, **kwargs: Any) -> Path:
        """A standalone HTML page with the dashboard that works offline from disk (no kernel: a click
        on a passage shows its numbers, not its explorer)."""
        return Path(self.widget(compare, **kwargs).to_html(path))


def load_runs(out_dir: str | os.PathLike[str]) -> CorpusRun:
    """Read a corpus run directory: ``CorpusRun(summary, curves, manifest)`` (unpacks as a pair).

    Only the shards the run has recorded are read (a run may be read while it is written); rows are
    sorted by ``passage_id`` and each passage appears once.
    """
    out = Path(out_dir)
    manifest = read_manifest(out)
    if manifest is None:
        raise CorpusError(f"{str(out)!r} holds no corpus run (no {MANIFEST}); run `run_corpus` or `density-nb corpus` first.")
    pieces, summaries, curves = read_tables(out, manifest)
    if manifest["format"] != 1:
        manifest = {**manifest, "shards": [p.record() for p in pieces]}
    if not summaries:
        return CorpusRun(pd.DataFrame(), pd.DataFrame(), manifest)
    summary = pd.concat(summaries, ignore_index=True)
    curve = pd.concat(curves, ignore_index=True)
    if summary["passage_id"].duplicated().any():  # not written by one run's writer (which records each passage once)
        summary = summary.drop_duplicates("passage_id", keep="first")
        curve = curve.drop_duplicates(["passage_id", "stratum"], keep="first")
    summary = summary.sort_values("passage_id", kind="stable").reset_index(drop=True)
    curve = curve.sort_values(["passage_id", "stratum"], kind="stable").reset_index(drop=True)
    return CorpusRun(summary, curve, manifest)
