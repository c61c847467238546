"""A finished (or growing) corpus run as tables: ``load_runs`` reads the shards the run store has recorded (or a
run shipped with the package, ``results/<name>``) into a ``CorpusRun``, which re-traces a passage, or shows the
run's dashboard."""

from __future__ import annotations

import importlib.resources
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from density_nb.corpus.store import MANIFEST, CorpusError, read_manifest, read_tables
from density_nb.errors import DensityNBError
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

    def tokenizer(self) -> Any:
        """The recorded model's tokenizer, read without its weights (the model itself when it is loaded by
        name), to name tokens; None when only loading the model can tell."""
        from density_nb.models import named_tokenizer  # torch (models loads it): only to name a run's tokens

        try:
            return named_tokenizer(str(self.manifest.get("settings", {}).get("model", "")))
        except (DensityNBError, OSError):  # its files are not here (a packaged model not installed): ids name them
            return None

    def widget(self, compare: CorpusRun | None = None, **kwargs: Any) -> Any:
        """The corpus dashboard (``density_nb.views.CorpusDashboard``); ``compare``: a run of another
        model on the same prompts. ``model=`` (the loaded model) re-traces clicked passages without loading it again;
        the recorded model's tokenizer (``tokenizer()``, no weights; read when first needed, so a run that holds its
        text is shown without torch) names the tokens unless ``tokenizer=`` is given."""
        from density_nb.views import CorpusDashboard  # anywidget: the widgets extra

        kwargs.setdefault("tokenizer", kwargs.get("model") or self.tokenizer)
        return CorpusDashboard(self, compare, **kwargs)

    def to_html(self, path: str | os.PathLike[str], compare: CorpusRun | None = None, **kwargs: Any) -> Path:
        """A standalone HTML page with the dashboard that works offline from disk (no kernel: a click
        on a passage shows its numbers, not its explorer)."""
        return Path(self.widget(compare, **kwargs).to_html(path))


def _read_shard(path: Path) -> pd.DataFrame:
    """One shipped table; a damaged one is a ``CorpusError``."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:  # missing, truncated or not parquet (pyarrow's errors are both)
        raise CorpusError(
            f"Shard {str(path)!r} of this run cannot be read ({err}): the run is damaged. Move its folder aside and run it again."
        ) from None


# ---- the runs shipped with the package: results/<name>.summary.parquet, .curves.parquet, index.json ----------------
SHIPPED = Path(str(importlib.resources.files("density_nb") / "results"))
SHIPPED_INDEX = "index.json"


def _shipped_index(folder: Path) -> dict[str, Any] | None:
    """The index of the runs shipped in ``folder`` (name -> settings, grid sizes, ...), or None if it holds none."""
    index = folder / SHIPPED_INDEX
    return json.loads(index.read_text(encoding="utf-8")) if index.is_file() else None


def _shipped_run(out: Path) -> CorpusRun | None:
    """The shipped run ``out`` (``results/<name>``, or the package's own results when no such folder is here)."""
    for folder in (out.parent, SHIPPED) if out.parent.name == "results" else (out.parent,):
        entry = (_shipped_index(folder) or {}).get(out.name)
        if entry is not None:
            manifest = {**entry, "shards": [], "shipped": str(folder / out.name)}
            return _run(manifest, [_read_shard(folder / f"{out.name}.{part}.parquet") for part in ("summary", "curves")])
    return None


def _run(manifest: dict[str, Any], tables: list[pd.DataFrame]) -> CorpusRun:
    """A ``CorpusRun`` of summary tables and curves tables (alternating), sorted, each passage once."""
    summaries, curves = tables[0::2], tables[1::2]
    if not summaries:
        return CorpusRun(pd.DataFrame(), pd.DataFrame(), manifest)
    summary = pd.concat(summaries, ignore_index=True).rename(columns=RENAMED_COLUMNS)  # older runs' names read as today's
    curve = pd.concat(curves, ignore_index=True)
    if summary["passage_id"].duplicated().any():  # not written by one run's writer (which records each passage once)
        summary = summary.drop_duplicates("passage_id", keep="first")
        curve = curve.drop_duplicates(["passage_id", "stratum"], keep="first")
    summary = summary.sort_values("passage_id", kind="stable").reset_index(drop=True)
    curve = curve.sort_values(["passage_id", "stratum"], kind="stable").reset_index(drop=True)
    return CorpusRun(summary, curve, manifest)


def load_runs(out_dir: str | os.PathLike[str]) -> CorpusRun:
    """Read a corpus run directory: ``CorpusRun(summary, curves, manifest)`` (unpacks as a pair); or a run shipped
    with the package, ``results/<name>`` (``load_runs("results")`` lists them).

    Only the shards the run has recorded are read (a run may be read while it is written); rows are
    sorted by ``passage_id`` and each passage appears once.
    """
    out = Path(out_dir)
    manifest = read_manifest(out) if out.is_dir() else None
    if manifest is None:
        shipped = _shipped_run(out)
        if shipped is not None:
            return shipped
        names = sorted(_shipped_index(out) or {})
        if names:
            raise CorpusError(
                f"{str(out)!r} holds the shipped runs {', '.join(names)}, one dashboard each: open one with "
                f"load_runs({str(out / names[0])!r}) (or density-nb view {out / names[0]})."
            )
        raise CorpusError(f"{str(out)!r} holds no corpus run (no {MANIFEST}); run `run_corpus` or `density-nb corpus` first.")
    pieces, summaries, curves = read_tables(out, manifest)
    if summaries and "continuation" not in manifest.get("settings", {}):
        warnings.warn(
            f"{str(out)!r} was made before corpus runs traced prompt + continuation exactly: it put a space before every next "
            "word, so passages continuing with ',', \"'s\", ')' ... have the wrong target token and loss. Run it again to fix them.",
            stacklevel=2,
        )
    if manifest["format"] != 1:
        manifest = {**manifest, "shards": [p.record() for p in pieces]}
    return _run(manifest, [table for pair in zip(summaries, curves) for table in pair])
