"""Corpus runs on the Ray backend: same numbers as local, and a killed worker loses nothing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from density_nb.corpus import ray_backend, runner
from density_nb.corpus import runs as corpus_runs
from density_nb.corpus import store as run_store
from helpers import SAMPLE_LINES as LINES

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'density_nb[ray]' (or pip install ray)")
pytestmark = pytest.mark.slow

N = len(LINES) - 1
RUN = {"words": 6, "grid": "fast", "progress": False}


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def data(tmp_path):
    (tmp_path / "data" / "wikitext-2").mkdir(parents=True)
    (tmp_path / "data" / "wikitext-2" / "test.txt").write_text("\n".join(LINES) + "\n")
    return tmp_path / "data"


def test_ray_killed_worker_same_results(ray_local, data, tmp_path, tiny_llama):
    out = tmp_path / "ray"
    errors: list[BaseException] = []

    def go():
        try:
            runner.run_corpus("tiny-llama", out, data=data, n_passages=N, backend="ray", workers=2, **RUN)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=go)
    thread.start()
    deadline = time.time() + 120
    killed = False
    while thread.is_alive() and time.time() < deadline:  # kill a worker once the first passage is in
        if run_store.scan(out)[0] and ray_backend._active_actors:
            ray.kill(ray_backend._active_actors[0], no_restart=False)  # Ray restarts it; its tasks retry
            killed = True
            break
        time.sleep(0.05)
    thread.join(timeout=180)
    assert not thread.is_alive() and not errors, errors
    assert killed, "the run finished before a worker could be killed"
    ids = [i for p in run_store.scan(out)[0] for i in pd.read_parquet(out / p.summary)["passage_id"]]
    assert len(ids) == len(set(ids)) == N  # every passage exactly once
    summary, curves = corpus_runs.load_runs(out)
    assert len(summary) == N and len(curves) == N * 9
    # same numbers as the local backend, bitwise
    local = runner.run_corpus(tiny_llama, tmp_path / "local", data=data, n_passages=N, **RUN)
    numeric = summary.select_dtypes("number").columns
    pd.testing.assert_frame_equal(summary[numeric], local[numeric], check_exact=True)
    local_curves = corpus_runs.load_runs(tmp_path / "local").curves
    for col in ("tv", "kl", "nu", "entropy", "loss"):
        np.testing.assert_array_equal(curves[col].to_numpy(), local_curves[col].to_numpy())


def test_writer_dedups(tmp_path):
    writer = run_store.ShardWriter(tmp_path, run_store.new_manifest({}, {}, []), shard_size=1)
    rows = pd.DataFrame({"passage_id": [3], "x": [1.0]})
    curves = pd.DataFrame({"passage_id": [3], "stratum": [0]})
    assert writer.add(3, rows, curves) and not writer.add(3, rows, curves)
    assert writer.done == {3} and len(run_store.scan(tmp_path)[0]) == 1
