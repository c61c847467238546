"""Corpus runs: trace the next-word prediction of many passages, locally on threads or on Ray,
writing each completed passage to the run store as it finishes."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from density_nb.config import TraceConfig, resolve
from density_nb.corpus import ray_backend
from density_nb.corpus.passages import CONTINUATION, CORPUS_CONFIG, recorded_settings, trace_passages
from density_nb.corpus.ray_backend import versions
from density_nb.corpus.runs import load_runs
from density_nb.corpus.sources import DataError, data_source, passages, prompt_table, read_prompts
from density_nb.corpus.store import CorpusError, RunLock, ShardWriter, new_manifest, read_manifest, recorded_ids
from density_nb.models import BUILTIN_MODELS, load_model, model_name

BACKENDS = ("local", "ray")


def _model_label(model: Any) -> str:
    if isinstance(model, str):
        key = model.strip().lower()
        return key if key in BUILTIN_MODELS else model
    return model_name(load_model(model))


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
    ray_address: str | None = None,
    runtime_env: dict[str, Any] | None = None,
    gpus_per_worker: float | None = None,
    **settings: Any,
) -> pd.DataFrame:
    """Trace the next-word prediction of ``n_passages`` WikiText passages; returns the summary table.

    ``data``: WikiText-2 (see ``find_data``), or a prompt table file (``read_prompts``: CSV, TSV or
    parquet with prompt and next_word, or the published ``wikitext_40.txt`` format), whose prompts
    are traced as given (``words``, ``split`` and ``drop_unk`` then do not apply).
    ``config`` / ``settings``: how to trace, as in ``trace`` (default: the paper grid).

    Results go to ``out_dir`` as parquet shards (``shards/*.{summary,curves}.parquet``, merged as the run
    grows) plus a ``manifest.json`` (settings, model, grid, versions); read them back with ``load_runs``.
    Every file is written to a temp name and renamed, and a shard counts once its summary file is
    written, so an interrupted run loses at most the passages in flight (up to ``batch``; and, with
    ``shard_size > 1``, completed passages not yet written, at most ``store.FLUSH_S`` seconds' worth).
    One process writes ``out_dir`` at a time (``run.lock``; another is refused); the manifest is written
    with the first shard, so a run that fails before any passage is done leaves nothing behind.
    ``resume=True`` skips passages already recorded (on either backend, whichever started the run) and
    refuses if the settings differ, or if the run was made by other versions of density_nb, torch or
    transformers (``force=True`` continues anyway, with a warning); without it, an ``out_dir`` that
    already holds a run is refused.
    ``workers``: passages traced at once. Local: threads sharing one model in this process (the
    serial parts of one passage, stratification and small ops, overlap the other's GEMMs); Ray:
    actors that each load the model once (``model`` must then be a name or path). Default: 2 (local: 1
    on a single core; on a Ray cluster: as many as its nodes hold, see ``ray_backend.plan``).
    ``threads``: torch CPU threads per worker. Default: this process's count divided among the
    workers, the same for both backends, so a private Ray gives bitwise the local backend's numbers
    (float sums depend on the thread count; on a cluster pass the same ``threads`` to compare).
    ``ray_address``: the Ray cluster to run on (``HOST:PORT``, ``ray://HOST:PORT``, ``"auto"``; default
    ``$RAY_ADDRESS``); without one, a private Ray on this machine. An already initialised Ray is used as
    it is. ``runtime_env``: what Ray sets up for the workers (default on a cluster: this density_nb and
    the model's packaged weights, ``ray_backend.default_runtime_env``; ``{}``: nothing).
    ``gpus_per_worker``: with ``device="cuda"`` on Ray, each worker's share of a GPU (default: 0.25 for
    the small built-in models, else 1).
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
    if backend != "ray" and (ray_address is not None or runtime_env is not None or gpus_per_worker is not None):
        raise CorpusError("ray_address, runtime_env and gpus_per_worker apply to the Ray backend: pass backend='ray' (--backend ray).")
    config = resolve(config, settings, CORPUS_CONFIG)
    df, words_setting = _passages_to_run(data, split, n_passages, words, drop_unk)
    label = _model_label(model)
    run_settings = {
        "model": label,
        "split": split,
        "words": words_setting,
        **config.settings(),
        "drop_unk": drop_unk,
        "data": data_source(data, split),
        "continuation": CONTINUATION,
    }
    out = Path(out_dir)
    with contextlib.ExitStack() as stack:
        ray = None
        if backend == "ray":  # connect (or start Ray) and size the workers before the run folder is made
            address = ray_backend.ray_address(ray_address)
            session = stack.enter_context(ray_backend.ray_session(address, workers or 2, model, runtime_env))
            nodes = ray_backend.alive_nodes()
            plan = ray_backend.plan(session.kind, nodes, label, device, workers, threads, gpus_per_worker, torch.get_num_threads())
            ray = (plan, session.actor_env)
        stack.enter_context(_run_folder(out))
        stack.enter_context(RunLock(out))
        _run_locked(model, out, df, config, run_settings, resume=resume, force=force, device=device, workers=workers, ray=ray,
                    progress=progress, shard_size=shard_size, threads=threads, words=words_setting, batch=batch)  # fmt: skip
    return load_runs(out).summary


def _passages_to_run(
    data: str | os.PathLike[str] | None, split: str, n_passages: int | None, words: int, drop_unk: str
) -> tuple[pd.DataFrame, int | None]:
    """The passages a run traces (a prompt table's rows, or WikiText-2 passages of ``words`` words) and
    the ``words`` setting it records (None for a prompt table); refuses none, warns of fewer than asked."""
    table = prompt_table(data)
    if table is not None:
        df = read_prompts(table)
        df = df if n_passages is None else df.head(n_passages)
    else:
        df = passages(n_passages, words=words, split=split, data=data, drop_unk=drop_unk)
    if df.empty:
        raise DataError(_no_passages(n_passages, words, split))
    if n_passages is not None and len(df) < n_passages:
        what = (
            f"prompts are in {str(table)!r}"
            if table is not None
            else f"passages of more than {words} words are available in the {split!r} split"
        )
        warnings.warn(f"Only {len(df)} {what} (asked for {n_passages}); running those.", stacklevel=3)
    return df, None if table is not None else int(words)


@contextlib.contextmanager
def _run_folder(out: Path) -> Iterator[None]:
    """Make the run folder; a run that fails before writing any passage removes the folder it made (the
    manifest comes with the first shard), so a plain re-run is not refused."""
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file of that name, no permission, ...
        raise CorpusError(f"Cannot make the run folder {str(out)!r} ({err.strerror or err}): choose another output directory.") from err
    try:
        yield
    except BaseException:
        if created:
            with contextlib.suppress(OSError):  # not empty: keep it
                out.rmdir()
        raise


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
                device: str | None, workers: int | None, ray: tuple[ray_backend.Plan, dict[str, Any] | None] | None, progress: bool,
                shard_size: int, threads: int | None, words: int | None, batch: int) -> None:  # fmt: skip
    label = settings["model"]
    manifest = read_manifest(out)
    recorded = recorded_ids(out, manifest) if manifest is not None else set()
    if manifest is not None and not recorded:  # a run that recorded no passage (killed before its first shard): start afresh
        manifest = None
    if manifest is not None and not resume:
        raise CorpusError(
            f"{str(out)!r} already holds a corpus run ({len(recorded)} passages); pass "
            "resume=True (--resume) to continue it, or choose another output directory."
        )
    if manifest is not None:
        same = recorded_settings(manifest["settings"])
        diff = {k: (same.get(k), v) for k, v in settings.items() if same.get(k) != v}
        if diff:
            lines = "; ".join(f"{k}: recorded {a!r}, now {b!r}" for k, (a, b) in diff.items())
            older = (
                " It was made before runs traced prompt + continuation exactly (it put a space before every next word)."
                if "continuation" in diff
                else ""
            )
            raise CorpusError(
                f"Cannot resume {str(out)!r}: its settings differ ({lines}).{older} Use the same settings or another directory."
            )
        _check_versions(out, manifest.get("versions"), force)
    else:  # written with the first shard: a run killed before it leaves no run to resume
        manifest = new_manifest(settings, versions(), config.sizes.tolist())
    writer = ShardWriter(out, manifest, shard_size)
    todo = df[~df["passage_id"].isin(writer.done)]
    kwargs: dict[str, Any] = {"config": config, "words": words}
    bar = tqdm(total=len(df), initial=len(df) - len(todo), desc=f"corpus {label}", unit="passage", disable=not progress, smoothing=0.1)
    try:
        if len(todo) and ray is not None:
            ray_backend.run_ray(model, *ray, todo, kwargs, writer, bar)
        elif len(todo):
            workers = workers or min(2, torch.get_num_threads())
            bridge = load_model(model, device=device)
            before = torch.get_num_threads()
            torch.set_num_threads(int(threads) if threads else max(1, before // workers))
            try:
                _run_local(bridge, todo, kwargs, workers, batch, writer, bar)
            finally:
                torch.set_num_threads(before)
    finally:
        writer.flush()  # Ctrl-C or an error: keep every completed passage
        bar.close()


def _run_local(bridge: Any, todo: pd.DataFrame, kwargs: dict[str, Any], workers: int, batch: int, writer: ShardWriter, bar: Any) -> None:
    """Trace ``todo`` in batches on ``workers`` threads; results are written here, as they complete.

    On an error or Ctrl-C, queued batches are dropped, running ones finish, and every completed
    batch is written before the exception goes on."""
    rows = [(int(r.passage_id), r.prompt, r.next_word, r.continuation) for r in todo.itertuples(index=False)]
    chunks = [rows[start : start + batch] for start in range(0, len(rows), batch)]

    def write(chunk: list[tuple[int, str, str, str]], tables: list[tuple[pd.DataFrame, pd.DataFrame]]) -> None:
        for (passage_id, *_), (summary, curves) in zip(chunk, tables):
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
