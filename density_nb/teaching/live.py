"""The teaching corpus (``texts``) traced live, as corpus runs trace passages, and token names for the notebooks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from density_nb.config import TraceConfig
from density_nb.corpus.passages import passage_text, trace_passages
from density_nb.corpus.sources import find_data, passages
from density_nb.method.controls import removal_control
from density_nb.models import hf_tokenizer, load_model
from density_nb.teaching import texts

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
    table = texts.table()
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


def inverse_control(
    model: str = "smollm2-135m",
    n_passages: int = 24,
    *,
    split: str = "valid",
    sizes: Sequence[float] = (2e-4,),
    draws: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """The inverse and its random-removal control (``method.controls.removal_control``) on the first
    ``n_passages`` WikiText-2 passages of ``split`` (40 words, as the corpus runs cut them; the root is
    the prompt's last token, as ``trace_passages`` puts it), or on the teaching corpus where no WikiText-2
    is found. Numbers and passage ids only (column ``passage_id``; ``data`` says which corpus)."""
    start_time = time.perf_counter()
    bridge = load_model(model)
    if find_data() is not None:
        table, data = passages(n_passages, words=40, split=split, drop_unk="passage"), f"WikiText-2 {split}"
    else:  # no corpus here (e.g. Binder): our own texts
        table, data = texts.table().head(n_passages).assign(continuation=lambda d: " " + d.next_word), "teaching corpus"
    placed = [passage_text(bridge, row) for row in table[["passage_id", "prompt", "next_word", "continuation"]].itertuples(index=False)]
    joined, roots = [text for text, _, _ in placed], [root for _, root, _ in placed]  # as trace_passages traces them
    out = removal_control(bridge, joined, roots, sizes, draws=draws, seed=seed)
    out.insert(0, "passage_id", table.passage_id.to_numpy()[out.pop("text").to_numpy()])
    print(
        f"inverse and {draws} random removals per kind of match on {len(joined)} {data} passages in {time.perf_counter() - start_time:.0f} s"
    )
    return out.assign(data=data)


def tokenizer(model: str = "smollm2-135m") -> Any:
    """The model's own tokenizer (loads the model: about a second once it is cached)."""
    return hf_tokenizer(load_model(model))


def decode(tok: Any, ids: Any) -> list[str]:
    """Each token id as its text (repr-quoted so spaces show)."""
    return [repr(tok.decode([int(i)])) for i in np.asarray(ids).ravel()]
