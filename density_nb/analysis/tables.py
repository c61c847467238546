"""Any set of results as one pair of tables: ``stack`` several ``DensityResult``s (of your own texts, every
root of each) into one summary and one curves table, and ``tables`` of whatever a finding is run on (a
list of results, a corpus run, a run as the notebooks hold it, or a ``(summary, curves)`` pair).

Each prediction is one row of the summary, identified by ``passage_id`` (for stacked results: a running
number over the predictions; for a corpus run: the passage's own id), as every function of
``analysis.curves`` expects. No torch: results are read through their ``summary()`` and ``curves()``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from density_nb.errors import DensityNBError


@runtime_checkable
class ResultLike(Protocol):
    """What ``stack`` reads of a result (``DensityResult`` is one)."""

    model: str
    text: str

    def summary(self) -> pd.DataFrame: ...

    def curves(self, composition: bool = False) -> pd.DataFrame: ...


@dataclass
class Tables:
    """``summary`` (one row per prediction, ``passage_id`` first) and ``curves`` (one row per prediction and
    stratum); unpacks as ``summary, curves = ...``."""

    summary: pd.DataFrame
    curves: pd.DataFrame

    def __iter__(self) -> Iterator[pd.DataFrame]:
        yield self.summary
        yield self.curves


Source = Any  # Tables | (summary, curves) | a run with .summary and .curves tables | a result | a list of results


def stack(results: Sequence[ResultLike], ids: Sequence[Hashable] | None = None) -> Tables:
    """Several results as one summary and one curves table: every traced prediction of every result is
    one row of the summary, with in front ``passage_id`` (0, 1, 2, ... over all predictions: the id every
    analysis function groups by), ``text_id`` (``ids[i]``, default the result's index ``i``), ``model``
    and ``text``, then the columns of ``DensityResult.summary()`` (``position``, ``n_tokens``: the tokens
    the prediction sees, the measures). The curves: ``passage_id`` and ``text_id`` in front of
    ``curves(composition=True)`` (``reaches_input``, composition, top-k)."""
    results = list(results)
    if ids is not None and len(ids) != len(results):
        raise DensityNBError(f"stack: {len(ids)} ids for {len(results)} results; give one id per result.")
    labels = list(range(len(results))) if ids is None else list(ids)
    summaries, curves = [], []
    start = 0
    for label, result in zip(labels, results):
        s, c = result.summary(), result.curves(composition=True)
        pids = np.arange(start, start + len(s), dtype=np.int64)
        start += len(s)
        s.insert(0, "passage_id", pids)
        s.insert(1, "text_id", [label] * len(s))
        s.insert(2, "model", result.model)
        s.insert(3, "text", result.text)
        c.insert(0, "passage_id", c["position"].map(dict(zip(s["position"], pids))).to_numpy(dtype=np.int64))
        c.insert(1, "text_id", [label] * len(c))
        summaries.append(s)
        curves.append(c)
    if not summaries:
        return Tables(pd.DataFrame(), pd.DataFrame())
    return Tables(pd.concat(summaries, ignore_index=True), pd.concat(curves, ignore_index=True))


def tables(source: Source) -> Tables:
    """The summary and curves of ``source``: a ``Tables``; a ``(summary, curves)`` pair; anything with
    ``summary`` and ``curves`` tables (``load_runs``'s ``CorpusRun``, the notebooks' ``CorpusData``); one
    result or a list of results (``stack``)."""
    if isinstance(source, Tables):
        return source
    if isinstance(source, tuple) and len(source) == 2 and all(isinstance(t, pd.DataFrame) for t in source):
        return Tables(*source)
    if isinstance(getattr(source, "summary", None), pd.DataFrame) and isinstance(getattr(source, "curves", None), pd.DataFrame):
        return Tables(source.summary, source.curves)
    if isinstance(source, ResultLike):
        return stack([source])
    if isinstance(source, Sequence) and source and all(isinstance(r, ResultLike) for r in source):
        return stack(source)
    raise DensityNBError(
        f"Cannot read tables from a {type(source).__name__}: give a list of DensityResults, a corpus run "
        "(load_runs), or a (summary, curves) pair of DataFrames."
    )
