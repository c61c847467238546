"""The Ray backend of corpus runs: actors that each load the model once and trace passages; a
passage whose worker dies is run again (up to ``MAX_ATTEMPTS`` times)."""

from __future__ import annotations

import collections
import os
from typing import Any

import pandas as pd
import torch

from density_nb.corpus.passages import trace_passage
from density_nb.corpus.store import CorpusError, ShardWriter
from density_nb.models import load_model

MAX_ATTEMPTS = 3  # per passage, across worker deaths
_active_actors: list[Any] = []  # the running Ray actors (for tests that kill one mid-run)


class _TraceWorker:
    """A Ray actor body: loads the model once, then traces passages."""

    def __init__(self, model: str, device: str | None, threads: int) -> None:
        torch.set_num_threads(threads)
        self.bridge = load_model(model, device=device)

    def pid(self) -> int:
        return os.getpid()

    def run(self, passage_id: int, prompt: str, next_word: str, kwargs: dict[str, Any]) -> tuple[int, pd.DataFrame, pd.DataFrame]:
        summary, curves = trace_passage(self.bridge, passage_id, prompt, next_word, **kwargs)
        return passage_id, summary, curves


def run_ray(
    model: str, device: str | None, threads: int, todo: pd.DataFrame, kwargs: dict[str, Any], workers: int, writer: ShardWriter, bar: Any
) -> None:
    try:
        import ray
        from ray.exceptions import ActorDiedError, RayActorError, RayTaskError
    except ImportError as err:
        raise CorpusError("backend='ray' needs Ray: pip install 'density_nb[ray]' (or pip install ray).") from err
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=max(1, workers), include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    gpu = device is not None and str(device).startswith("cuda")
    actor_cls = ray.remote(_TraceWorker).options(
        num_cpus=1, num_gpus=1 if gpu else 0, max_restarts=MAX_ATTEMPTS, max_task_retries=MAX_ATTEMPTS
    )

    def new_actor() -> Any:
        return actor_cls.remote(model, device, threads)

    actors = [new_actor() for _ in range(max(1, workers))]
    _active_actors[:] = actors
    queue = collections.deque(todo.itertuples(index=False))
    attempts: collections.Counter[int] = collections.Counter()
    pending: dict[Any, tuple[int, Any]] = {}

    def submit(slot: int) -> None:
        if queue:
            row = queue.popleft()
            ref = actors[slot].run.remote(int(row.passage_id), row.prompt, row.next_word, {**kwargs, "continuation": row.continuation})
            pending[ref] = (slot, row)

    try:
        for slot in range(len(actors)):
            for _ in range(2):  # two in flight per actor hides the round trip
                submit(slot)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                slot, row = pending.pop(ref)
                try:
                    pid, summary, curves = ray.get(ref)
                except RayActorError as err:  # the worker died (killed, OOM): run the passage again
                    attempts[int(row.passage_id)] += 1
                    if attempts[int(row.passage_id)] >= MAX_ATTEMPTS:
                        raise CorpusError(f"Passage {row.passage_id} failed {MAX_ATTEMPTS} times on Ray workers: {err}") from err
                    if isinstance(err, ActorDiedError):  # out of restarts: replace the worker
                        actors[slot] = new_actor()
                        _active_actors[slot] = actors[slot]
                    queue.appendleft(row)
                    submit(slot)
                    continue
                except RayTaskError as err:  # the trace itself raised: same error as the local backend
                    raise err.as_instanceof_cause() from None
                if writer.add(pid, summary, curves):  # driver-side dedup by passage id
                    bar.update(1)
                submit(slot)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        _active_actors.clear()
        if started:
            ray.shutdown()
