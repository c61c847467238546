"""A finished (or growing) corpus run as tables: ``load_runs`` reads the shards its manifest records into a
``CorpusRun``, which re-traces a passage, or shows the run's dashboard."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from density_nb.corpus.store import MANIFEST, CorpusError, read_manifest
from density_nb.result import RENAMED_COLUMNS


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
    ``manifest``: the run's settings and completed shards.
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


def _read_shard(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:  # missing, truncated or not parquet (pyarrow's errors are both)
        raise CorpusError(
            f"Shard {str(path)!r} of this run cannot be read ({err}): the run is damaged. Move its folder aside and run it again."
        ) from None


def load_runs(out_dir: str | os.PathLike[str]) -> CorpusRun:
    """Read a corpus run directory: ``CorpusRun(summary, curves, manifest)`` (unpacks as a pair).

    Only shards recorded in the manifest are read; rows are sorted by ``passage_id`` and each
    passage appears once.
    """
    out = Path(out_dir)
    manifest = read_manifest(out)
    if manifest is None:
        raise CorpusError(f"{str(out)!r} holds no corpus run (no {MANIFEST}); run `run_corpus` or `density-nb corpus` first.")
    summaries = [_read_shard(out / shard["summary"]) for shard in manifest["shards"]]
    curves = [_read_shard(out / shard["curves"]) for shard in manifest["shards"]]
    if not summaries:
        return CorpusRun(pd.DataFrame(), pd.DataFrame(), manifest)
    if "continuation" not in manifest.get("settings", {}):
        warnings.warn(
            f"{str(out)!r} was made before corpus runs traced prompt + continuation exactly: it put a space before every next "
            "word, so passages continuing with ',', \"'s\", ')' ... have the wrong target token and loss. Run it again to fix them.",
            stacklevel=2,
        )
    summary = pd.concat(summaries, ignore_index=True).rename(columns=RENAMED_COLUMNS).drop_duplicates("passage_id", keep="first")
    summary = summary.sort_values("passage_id", kind="stable").reset_index(drop=True)
    curve = pd.concat(curves, ignore_index=True).drop_duplicates(["passage_id", "stratum"], keep="first")
    curve = curve.sort_values(["passage_id", "stratum"], kind="stable").reset_index(drop=True)
    return CorpusRun(summary, curve, manifest)
