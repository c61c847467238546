"""A corpus passage traced: the prediction of its next word after its prompt, as one summary row and its
curves rows (``DensityResult.corpus_tables``); and a recorded passage traced again as its run traced it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from density_nb.config import DEFAULT_MAX_TOKENS, TraceConfig, resolve
from density_nb.corpus.store import CorpusError
from density_nb.method.inputs import tokenize
from density_nb.models import cached_model, load_model
from density_nb.result import DensityResult
from density_nb.tracing import trace_many

CORPUS_CONFIG = TraceConfig(grid="paper", refine=True)  # corpus runs default to the paper's grid, required sizes bisected
CONTINUATION = "exact"  # a run's setting: texts are prompt + continuation exactly (runs before it joined a space always)
_SETTING_DEFAULTS = {"norms": "live", "prepend_bos": None, "max_tokens": DEFAULT_MAX_TOKENS, "seed": 0, "max_rows": 4096, "topk": 5}


def recorded_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A manifest's settings in today's terms: settings added since take their default, and
    ``random_baseline`` (before the baselines were selectable) reads as ``baselines``."""
    out = {**_SETTING_DEFAULTS, **settings}
    if "random_baseline" in out:
        out["baselines"] = ["random"] if out.pop("random_baseline") else []
    return out


Row = tuple[int, str, str] | tuple[int, str, str, str]  # passage_id, prompt, next_word[, continuation]


def _continuation(row: Row) -> str:
    """What follows the prompt: the row's continuation, else a space and the next word."""
    return row[3] if len(row) > 3 else " " + row[2]


def passage_text(bridge: Any, row: Row) -> tuple[str, int, bool]:
    """What a passage's trace reads: ``(text, root, aligned)``. The text is ``prompt + continuation`` and the
    root the prompt's last token when the prompt's tokens are a prefix of the joined text's (``aligned``);
    else the prompt alone, at its last token."""
    prompt = row[1]
    joined = prompt + _continuation(row)
    prompt_ids, _ = tokenize(bridge, prompt)
    joined_ids, _ = tokenize(bridge, joined)
    n = len(prompt_ids)
    ok = 0 < n < len(joined_ids) and bool(torch.equal(joined_ids[:n], prompt_ids))
    return (joined if ok else prompt), n - 1, ok


def trace_passages(
    bridge: Any,
    rows: Sequence[Row],
    config: TraceConfig = CORPUS_CONFIG,
    *,
    words: int | None,
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Trace the prediction of each ``next_word`` after its ``prompt``, the passages sharing masked
    passes (``trace_many``): one ``(summary row, curves rows)`` per ``(passage_id, prompt, next_word[,
    continuation])``.

    The traced text is ``prompt + continuation`` exactly (``continuation``: ``" " + next_word``, or
    ``next_word`` where it attaches, as ``,`` ``'s`` ``)`` do; ``sources.read_prompts``; default: a space
    and the next word) and the root is the prompt's last token, so the gold next token is in the text
    and the loss is defined. When the prompt's tokenization is not a prefix of the joined text's, the
    prompt alone is traced at its last token (``aligned`` False, loss NaN). ``words``: the prompt length
    recorded with each passage (None: its word count).
    """
    placed = [passage_text(bridge, row) for row in rows]
    texts = [text for text, _, _ in placed]
    roots: list[Any] = [[root] if ok else "last" for _, root, ok in placed]
    aligned = [ok for _, _, ok in placed]
    results = trace_many(bridge, texts, roots, config, progress=False)
    return [
        result.corpus_tables(
            row[0],
            len(row[1].split()) if words is None else words,
            prompt=row[1],
            next_word=row[2],
            continuation=_continuation(row),
            aligned=ok,
        )
        for result, row, ok in zip(results, rows, aligned)
    ]


def trace_passage(
    bridge: Any,
    passage_id: int,
    prompt: str,
    next_word: str,
    config: TraceConfig = CORPUS_CONFIG,
    *,
    words: int | None = None,
    continuation: str | None = None,
    **settings: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``trace_passages`` of one passage (``continuation``: as there, default a space and the next word);
    ``settings`` override fields of ``config``."""
    row = (passage_id, prompt, next_word, " " + next_word if continuation is None else continuation)
    return trace_passages(bridge, [row], resolve(config, settings), words=words)[0]


def trace_recorded(run: Any, passage_id: int, model: Any = None) -> DensityResult:
    """The ``DensityResult`` of one passage of a ``CorpusRun``, traced again as the run traced it
    (its recorded settings, prompt, next word and root): equal to the passage's rows."""
    rows = run.summary[run.summary["passage_id"] == int(passage_id)]
    if not len(rows):
        raise CorpusError(f"Passage {passage_id} is not in this run; its passages are {len(run.summary)} ids from the summary table.")
    row = rows.iloc[0]
    if "prompt" not in row or not isinstance(row["prompt"], str):
        raise CorpusError(
            f"This run's summary holds no prompt text for passage {passage_id} (shipped results keep numbers only); "
            "run the corpus again to trace it, or read its text from the corpus (density_nb.teaching.tutorial.corpus_text)."
        )
    recorded = recorded_settings(run.manifest["settings"])
    config = TraceConfig.from_settings(recorded)
    bridge = load_model(model) if model is not None else cached_model(recorded["model"])
    continuation = row["continuation"] if isinstance(row.get("continuation"), str) else " " + row["next_word"]  # runs before 0.2: a space
    text, root = (row["prompt"] + continuation, [int(row["n_tokens"]) - 1]) if row["aligned"] else (row["prompt"], "last")
    return trace_many(bridge, [text], [root], config, progress=False)[0]
