"""Corpus runs: trace the next-word prediction of many passages, locally on threads or on Ray,
writing each completed passage to the run store as it finishes."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from density_nb.config import DEFAULT_MAX_TOKENS, TraceConfig, resolve
from density_nb.data import DataError, data_source, passages, prompt_table, read_prompts
from density_nb.models import BUILTIN_MODELS, cached_model, load_model, model_name
from density_nb.result import DensityResult
from density_nb.run_store import RUN_FORMAT, CorpusError, RunLock, ShardWriter, load_runs, read_manifest
from density_nb.tracing import tokenize, trace_many

BACKENDS = ("local", "ray")


def _model_label(model: Any) -> str:
    if isinstance(model, str):
        key = model.strip().lower()
        return key if key in BUILTIN_MODELS else model
    return model_name(load_model(model))


CORPUS_CONFIG = TraceConfig(grid="paper")  # corpus runs default to the paper's grid
_SETTING_DEFAULTS = {"norms": "live", "prepend_bos": None, "max_tokens": DEFAULT_MAX_TOKENS, "seed": 0, "max_rows": 4096, "topk": 5}


def _recorded_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A manifest's settings in today's terms: settings added since take their default, and
    ``random_baseline`` (before the baselines were selectable) reads as ``baselines``."""
    out = {**_SETTING_DEFAULTS, **settings}
    if "random_baseline" in out:
        out["baselines"] = ["random"] if out.pop("random_baseline") else []
    return out


def versions() -> dict[str, str]:
    """The versions a run's numbers depend on (recorded in its manifest)."""
    import transformers

    from density_nb import __version__

    return {"density_nb": __version__, "torch": torch.__version__, "transformers": transformers.__version__}


def trace_passages(
    bridge: Any,
    rows: Sequence[tuple[int, str, str]],
    config: TraceConfig = CORPUS_CONFIG,
    *,
    words: int | None,
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Trace the prediction of each ``next_word`` after its ``prompt``, the passages sharing masked
    passes (``trace_many``): one ``(summary row, curves rows)`` per ``(passage_id, prompt, next_word)``.

    The traced text is ``prompt + " " + next_word`` and the root is the prompt's last token, so the
    gold next token is in the text and the loss is defined. When the prompt's tokenization is not a
    prefix of the joined text's, the prompt alone is traced at its last token (``aligned`` False,
    loss NaN). ``words``: the prompt length recorded with each passage (None: its word count).
    """
    texts, roots, aligned, n_tokens = [], [], [], []
    for _, prompt, next_word in rows:
        joined = prompt + " " + next_word
        prompt_ids, _ = tokenize(bridge, prompt)
        joined_ids, _ = tokenize(bridge, joined)
        n = len(prompt_ids)
        ok = 0 < n < len(joined_ids) and bool(torch.equal(joined_ids[:n], prompt_ids))
        texts.append(joined if ok else prompt)
        roots.append([n - 1] if ok else "last")
        aligned.append(ok)
        n_tokens.append(n)
    results = trace_many(bridge, texts, roots, config, progress=False)
    return [
        _passage_tables(result, passage_id, prompt, next_word, len(prompt.split()) if words is None else words, ok, n)
        for result, (passage_id, prompt, next_word), ok, n in zip(results, rows, aligned, n_tokens)
    ]


def trace_passage(
    bridge: Any,
    passage_id: int,
    prompt: str,
    next_word: str,
    config: TraceConfig = CORPUS_CONFIG,
    *,
    words: int | None = None,
    **settings: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``trace_passages`` of one passage; ``settings`` override fields of ``config``."""
    return trace_passages(bridge, [(passage_id, prompt, next_word)], resolve(config, settings), words=words)[0]


def _passage_tables(
    result: DensityResult, passage_id: int, prompt: str, next_word: str, words: int, aligned: bool, n: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    name = result.model
    summary = result.summary()
    front = pd.DataFrame(
        {
            "passage_id": np.int64(passage_id),
            "model": name,
            "words": np.int64(words),
            "prompt": prompt,
            "next_word": next_word,
            "aligned": aligned,
            "n_tokens": np.int64(n),
        },
        index=summary.index,
    )
    summary = pd.concat([front, summary], axis=1)
    curves = result.curves()
    k = len(result.grid)
    curves.insert(0, "words", np.int64(words))
    curves.insert(0, "model", name)
    curves.insert(0, "passage_id", np.int64(passage_id))
    rows = len(result.roots) * k
    for suffix, edges, layers in (
        ("", result.component_edges, result.layer_edges),
        ("_random", result.component_edges_random, result.layer_edges_random),
    ):
        if edges is not None and layers is not None:
            comp = edges.reshape(-1, 3)
            curves[f"edges_attn{suffix}"], curves[f"edges_mlp{suffix}"], curves[f"edges_res{suffix}"] = comp[:, 0], comp[:, 1], comp[:, 2]
            curves[f"layer_edges{suffix}"] = list(layers.reshape(rows, -1))
    curves["head_share"] = list(result.head_share.reshape(rows, -1))  # [L * H] share of each head's edges kept
    for name in ("topk_token", "topk_prob"):
        value = getattr(result, name)
        if value is not None:
            curves[name] = list(value.reshape(rows, -1))
    return summary, curves


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
            "run the corpus again to trace it, or read its text from the corpus (density_nb.tutorial.corpus_text)."
        )
    recorded = _recorded_settings(run.manifest["settings"])
    config = TraceConfig.from_settings(recorded)
    bridge = load_model(model) if model is not None else cached_model(recorded["model"])
    text, root = (row["prompt"] + " " + row["next_word"], [int(row["n_tokens"]) - 1]) if row["aligned"] else (row["prompt"], "last")
    return trace_many(bridge, [text], [root], config, progress=False)[0]


def run_corpus(
    model: Any,
    out_dir: str | os.PathLike[str],
    config: TraceConfig | None = None,
    *,
    data: str | os.PathLike[str] | None = None,
    split: str = "test",
    n_passages: int | None = 100,
    words: int = 40,
    resume: bool = False,
    force: bool = False,
    backend: str = "local",
    device: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    drop_unk: str = "paragraph",
    shard_size: int = 1,
    threads: int | None = None,
    batch: int = 1,
    **settings: Any,
) -> pd.DataFrame:
    """Trace the next-word prediction of ``n_passages`` WikiText passages; returns the summary table.

    ``data``: WikiText-2 (see ``find_data``), or a prompt table file (``read_prompts``: CSV, TSV or
    parquet with prompt and next_word, or the published ``wikitext_40.txt`` format), whose prompts
    are traced as given (``words``, ``split`` and ``drop_unk`` then do not apply).
    ``config`` / ``settings``: how to trace, as in ``trace`` (default: the paper grid).

    Results go to ``out_dir`` as parquet shards (``shards/NNNNNN.{summary,curves}.parquet``) plus a
    ``manifest.json`` (settings, model, grid, shards, completed passage ids); read them back with
    ``load_runs``. Every file is written to a temp name and renamed, and a shard counts only once the
    manifest lists it, so an interrupted run loses at most the passages in flight (up to ``batch``;
    and, with ``shard_size > 1``, completed passages not yet flushed when the process is killed outright).
    One process writes ``out_dir`` at a time (``run.lock``; another is refused); the manifest is written
    with the first shard, so a run that fails before any passage is done leaves nothing behind.
    ``resume=True`` skips passages already recorded and refuses if the settings differ, or if the
    run was made by other versions of density_nb, torch or transformers (``force=True`` continues
    anyway, with a warning); without it, an ``out_dir`` that already holds a run is refused.
    ``workers``: passages traced at once. Local: threads sharing one model in this process (the
    serial parts of one passage, stratification and small ops, overlap the other's GEMMs); Ray:
    actors that each load the model once (``model`` must then be a name or path; one GPU per actor
    when ``device="cuda"``). Default: 2 (local: 1 on a single core).
    ``threads``: torch CPU threads per worker. Default: this process's count divided among the
    workers, the same for both backends, so Ray gives bitwise the local backend's numbers (float
    sums depend on the thread count).
    ``batch``: passages whose strata share one masked pass (local backend; Ray runs one passage per
    task). On CPU it does not pay (measured: benchmarks/bench_corpus.py); on a GPU it fills the
    device. The numbers do not depend on it beyond float rounding.
    """
    if not isinstance(batch, int) or batch < 1:
        raise CorpusError(f"batch must be a positive integer (passages per masked pass), got {batch!r}.")
    if backend not in BACKENDS:
        raise CorpusError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "ray" and not isinstance(model, str):
        raise CorpusError("backend='ray' needs the model as a name or path (each worker loads it itself).")
    config = resolve(config, settings, CORPUS_CONFIG)
    table = prompt_table(data)
    if table is not None:
        df = read_prompts(table)
        df = df if n_passages is None else df.head(n_passages)
        words_setting: int | None = None
    else:
        df = passages(n_passages, words=words, split=split, data=data, drop_unk=drop_unk)
        words_setting = int(words)
    if df.empty:
        raise DataError(_no_passages(n_passages, words, split))
    if n_passages is not None and len(df) < n_passages:
        what = (
            f"prompts are in {str(table)!r}"
            if table is not None
            else f"passages of more than {words} words are available in the {split!r} split"
        )
        warnings.warn(f"Only {len(df)} {what} (asked for {n_passages}); running those.", stacklevel=2)
    label = _model_label(model)
    run_settings = {
        "model": label,
        "split": split,
        "words": words_setting,
        **config.settings(),
        "drop_unk": drop_unk,
        "data": data_source(data, split),
    }
    out = Path(out_dir)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file of that name, no permission, ...
        raise CorpusError(f"Cannot make the run folder {str(out)!r} ({err.strerror or err}): choose another output directory.") from err
    try:
        with RunLock(out):
            _run_locked(model, out, df, config, run_settings, resume=resume, force=force, backend=backend, device=device, workers=workers,
                        progress=progress, shard_size=shard_size, threads=threads, words=words_setting, batch=batch)  # fmt: skip
    except BaseException:
        if created:  # a run that wrote no passage leaves no folder behind (the manifest comes with the first shard)
            with contextlib.suppress(OSError):  # not empty: keep it
                out.rmdir()
        raise
    return load_runs(out).summary


def _no_passages(n_passages: int | None, words: int, split: str) -> str:
    if n_passages is not None and n_passages < 1:
        return f"n_passages must be at least 1 (or None for all), got {n_passages}."
    return f"No passage of more than {words} words in the {split!r} split: ask for fewer words."


def _check_versions(out: Path, recorded: dict[str, str] | None, force: bool) -> None:
    """Refuse (or, with ``force``, warn) when a run was made by other versions than this process's."""
    now = versions()
    diff = {k: ((recorded or {}).get(k), v) for k, v in now.items() if (recorded or {}).get(k) != v}
    if not diff:
        return
    lines = "; ".join(f"{k}: recorded {a or 'unknown'}, now {b}" for k, (a, b) in diff.items())
    if not force:
        raise CorpusError(
            f"Cannot resume {str(out)!r}: it was made with other versions ({lines}), whose numbers may differ. "
            "Use another output directory, or pass force=True (--force) to continue it anyway."
        )
    warnings.warn(f"Resuming {str(out)!r} made with other versions ({lines}): its passages mix both.", stacklevel=4)


def _run_locked(model: Any, out: Path, df: pd.DataFrame, config: TraceConfig, settings: dict[str, Any], *, resume: bool, force: bool,
                backend: str, device: str | None, workers: int | None, progress: bool, shard_size: int, threads: int | None,
                words: int | None, batch: int) -> None:  # fmt: skip
    label = settings["model"]
    manifest = read_manifest(out)
    if manifest is not None and not manifest["passage_ids"]:  # a run that recorded no passage (older density_nb): start afresh
        manifest = None
    if manifest is not None and not resume:
        raise CorpusError(
            f"{str(out)!r} already holds a corpus run ({len(manifest['passage_ids'])} passages); pass "
            "resume=True (--resume) to continue it, or choose another output directory."
        )
    if manifest is not None:
        recorded = _recorded_settings(manifest["settings"])
        diff = {k: (recorded.get(k), v) for k, v in settings.items() if recorded.get(k) != v}
        if diff:
            lines = "; ".join(f"{k}: recorded {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise CorpusError(f"Cannot resume {str(out)!r}: its settings differ ({lines}). Use the same settings or another directory.")
        _check_versions(out, manifest.get("versions"), force)
    else:
        manifest = {
            "format": RUN_FORMAT,
            "settings": settings,
            "versions": versions(),
            "grid_sizes": config.sizes.tolist(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "shards": [],
            "passage_ids": [],
            "next_shard": 0,
        }  # written with the first shard: a run killed before it leaves no run to resume
    writer = ShardWriter(out, manifest, shard_size)
    todo = df[~df["passage_id"].isin(writer.done)]
    if workers is None:
        workers = 2 if backend == "ray" else min(2, torch.get_num_threads())
    threads = int(threads) if threads else max(1, torch.get_num_threads() // workers)
    kwargs: dict[str, Any] = {"config": config, "words": words}
    bar = tqdm(total=len(df), initial=len(df) - len(todo), desc=f"corpus {label}", unit="passage", disable=not progress, smoothing=0.1)
    try:
        if len(todo):
            if backend == "local":
                bridge = load_model(model, device=device)
                before = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    _run_local(bridge, todo, kwargs, workers, batch, writer, bar)
                finally:
                    torch.set_num_threads(before)
            else:
                from density_nb.ray_runner import run_ray

                run_ray(model, device, threads, todo, kwargs, workers, writer, bar)
    finally:
        writer.flush()  # Ctrl-C or an error: keep every completed passage
        bar.close()


def _run_local(bridge: Any, todo: pd.DataFrame, kwargs: dict[str, Any], workers: int, batch: int, writer: ShardWriter, bar: Any) -> None:
    """Trace ``todo`` in batches on ``workers`` threads; results are written here, as they complete.

    On an error or Ctrl-C, queued batches are dropped, running ones finish, and every completed
    batch is written before the exception goes on."""
    rows = [(int(r.passage_id), r.prompt, r.next_word) for r in todo.itertuples(index=False)]
    chunks = [rows[start : start + batch] for start in range(0, len(rows), batch)]

    def write(chunk: list[tuple[int, str, str]], tables: list[tuple[pd.DataFrame, pd.DataFrame]]) -> None:
        for (passage_id, _, _), (summary, curves) in zip(chunk, tables):
            writer.add(passage_id, summary, curves)
        bar.update(len(chunk))

    if workers == 1:
        for chunk in chunks:
            write(chunk, trace_passages(bridge, chunk, **kwargs))
        return
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="density-nb")
    futures = {pool.submit(trace_passages, bridge, chunk, **kwargs): chunk for chunk in chunks}
    written: set[Any] = set()
    try:
        for future in concurrent.futures.as_completed(futures):
            write(futures[future], future.result())
            written.add(future)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        for future, chunk in futures.items():
            if future not in written and future.done() and not future.cancelled() and future.exception() is None:
                write(chunk, future.result())
        raise
    finally:
        pool.shutdown(wait=True)


# ---- Ray backend ---------------------------------------------------------------------------------
_active_actors: list[Any] = []  # the running Ray actors (for tests that kill one mid-run)
