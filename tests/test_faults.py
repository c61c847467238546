"""Faults a corpus run must survive, in real processes (slow, seeded: rerun it to repeat it exactly as far as
timing allows): two writers started at the same instant on one folder, SIGKILL at random points,
SIGKILL in the middle of a shard's write and between its two files, in the middle of a merge, between a
merge's two files and between a merged piece and the removal of its inputs, a disk that fills during a
shard's write and a merge's; then a resume. The runs merge every 4 shards (``store.FANOUT``), so merges of
three sizes happen. After every fault the run and each piece it counts read, each passage is in one piece
and no passage recorded before is lost; at the end every passage is there exactly once, with the numbers
of an uninterrupted run, and nothing else is left in the folder.

The runs are forked from a server process that imported torch, transformers and TransformerLens once
(multiprocessing's forkserver), so each starts in about 0.2 s instead of 6 s.
"""

from __future__ import annotations

import errno
import itertools
import multiprocessing
import multiprocessing.connection
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from density_nb.corpus import runner
from density_nb.corpus import store as run_store
from density_nb.corpus.runs import load_runs
from density_nb.corpus.store import CorpusError
from density_nb.files import WriteError
from density_nb.models import load_model
from helpers import SAMPLE_LINES

pytestmark = pytest.mark.slow

SEED = 19
PASSAGES = 200
RANDOM_KILLS = 24  # SIGKILL once a run has recorded 0 to MORE more passages, a random 0 to DELAY s later
MORE, DELAY = 3, 0.2
CHECKED = 25  # passages whose numbers are compared with an uninterrupted run's
FANOUT = 4  # the runs merge every 4 pieces of one span
# SIGKILL in a write (the file half written), before one, after one, or a full disk (every write fails from there on).
# to_parquet writes a shard's curves then its summary (the shard counts from there); a merge writes its curves
# then its summary with ParquetWriter.write_table, one call per input piece, then removes its inputs.
WRITE_FAULTS = [
    ("shard", 1, "kill"),
    ("shard", 2, "kill"),
    ("shard", 4, "kill before"),  # between a shard's two files
    ("merge", 2, "kill"),  # a merged curves file half written
    ("merge", FANOUT + 1, "kill before"),  # the merged curves written, its summary not yet
    ("merged", 2, "kill after"),  # the merged piece counts, its inputs not yet removed
    ("shard", 3, "disk full"),
    ("merge", 3, "disk full"),
]
OPTIONS = [{"workers": w, "batch": b, "shard_size": s} for w in (1, 2) for b in (1, 2) for s in (1, 3)]
# the method a fault hits, and which of its arguments is the file it writes (None: a merge's open ParquetWriter)
WRITERS = {
    "shard": (pd.DataFrame, "to_parquet", 1),
    "merge": (pq.ParquetWriter, "write_table", None),
    "merged": (run_store, "_concat", None),
}
REFUSED, DISK_FULL = 3, 4  # exit codes of a run (a SIGKILLed one exits with -9)
WORDS = sorted({word for line in SAMPLE_LINES for word in line.split() if word.isalpha()})


def corpus_run(out: str, table: str, options: dict[str, Any], fault: tuple[str, int, str] | None = None, barrier: Any = None) -> None:
    """One corpus run (in a forked process) that resumes ``out``; ``fault``: a write fault to inject;
    ``barrier``: waited at once the model is loaded (the test and other runs start from there together)."""
    run_store.FANOUT = FANOUT
    if fault is not None:
        inject(*fault)
    bridge = load_model("tiny-llama")
    if barrier is not None:
        barrier.wait()
    try:
        runner.run_corpus(  # the store is under test, not the measures: no bisection passes (refine=False)
            bridge, out, data=table, grid="fast", refine=False, n_passages=None, resume=True, progress=False, **options
        )
    except CorpusError as err:
        Path(out).with_suffix(".refused").write_text(str(err))
        raise SystemExit(REFUSED) from None
    except WriteError:
        raise SystemExit(DISK_FULL) from None


def inject(writer: str, at: int, then: str) -> None:
    """From the ``at``-th call of ``writer`` on: SIGKILL this process before, half-way through or after that write,
    or fail it and every later one with ENOSPC after half the file is written."""
    owner, name, position = WRITERS[writer]
    real = getattr(owner, name)
    calls = itertools.count(1)

    def faulty(*args: Any, **kwargs: Any) -> Any:
        call = next(calls)
        if call < at or (call > at and then != "disk full"):
            return real(*args, **kwargs)
        if then == "kill before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(*args, **kwargs)
        if then == "kill after":
            os.kill(os.getpid(), signal.SIGKILL)
        if position is not None:
            path = args[position]
            os.truncate(path, os.path.getsize(path) // 2)
        else:  # a merge: its temp file holds what was written so far
            path = "a merged piece"
        if then == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    setattr(owner, name, faulty)


def prompt_table(path: Path, rng: random.Random) -> Path:
    rows = [(3 * i + 1, " ".join(rng.choices(WORDS, k=rng.randint(4, 12))), rng.choice(WORDS)) for i in range(PASSAGES)]
    pd.DataFrame(rows, columns=["passage_id", "prompt", "next_word"]).to_csv(path, index=False)
    return path


def recorded(out: Path) -> int:
    """How many passages the run in ``out`` has recorded (read while it runs: a merge may remove a piece meanwhile)."""
    for _ in range(20):
        try:
            return sum(pq.read_metadata(out / p.summary).num_rows for p in run_store.scan(out)[0])
        except FileNotFoundError:
            continue
    raise AssertionError("the pieces kept vanishing")


class Runs:
    """Corpus runs that resume one folder, forked from a server that imported everything once; after each,
    ``check`` holds what any fault may leave: the run and every piece it counts read, each passage is in one
    piece, and every passage recorded before is still recorded (superseded pieces, orphan curves and temp
    files are the next run's to clean)."""

    def __init__(self, tmp_path: Path, rng: random.Random) -> None:
        self.rng, self.out = rng, tmp_path / "run"
        self.manifest = self.out / "manifest.json"
        self.table = prompt_table(tmp_path / "prompts.csv", rng)
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(["test_faults", "transformer_lens.model_bridge", "transformers.models.llama.modeling_llama"])
        self.recorded: list[set[int]] = [set()]  # the passages recorded after each run
        self.seen: Counter[str] = Counter()

    def start(self, fault: tuple[str, int, str] | None = None, barrier: Any = None) -> Any:
        options = self.rng.choice(OPTIONS)
        run = self.ctx.Process(target=corpus_run, args=(str(self.out), str(self.table), options, fault, barrier))
        run.start()
        return run

    def check(self) -> None:
        ids: set[int] = set()
        if self.manifest.exists():
            run = load_runs(self.out)
            pieces = run_store.scan(self.out)[0]
            listed = [i for p in pieces for i in pd.read_parquet(self.out / p.summary, columns=["passage_id"])["passage_id"]]
            assert len(listed) == len(set(listed)) and sorted(listed) == run.summary["passage_id"].tolist()
            assert len(run.curves) == 9 * len(listed) and not run.curves.duplicated(["passage_id", "stratum"]).any()
            ids = set(listed)
        assert self.recorded[-1] <= ids, f"lost {self.recorded[-1] - ids}"
        self.recorded.append(ids)

    def kill_at_random(self, run: Any) -> None:
        """SIGKILL ``run`` at a random point, the same on a fast or a busy machine: once it has recorded 0 to
        ``MORE`` more passages, a random moment later (in a trace or a write)."""
        wait_for, deadline = len(self.recorded[-1]) + self.rng.randint(0, MORE), time.monotonic() + 120
        while recorded(self.out) < wait_for:
            assert run.is_alive() and time.monotonic() < deadline, "the run ended or hung before its kill"
            time.sleep(0.005)
        time.sleep(self.rng.uniform(0, DELAY))
        run.kill()
        run.join()
        self.seen["killed at random" if run.exitcode == -signal.SIGKILL else "finished before its kill"] += 1
        self.check()

    def two_writers_at_once(self) -> None:
        """Two runs released together: one is refused at once, the other writes (until killed at random)."""
        barrier = self.ctx.Barrier(3)
        pair = [self.start(barrier=barrier) for _ in range(2)]
        barrier.wait(timeout=60)
        assert multiprocessing.connection.wait([p.sentinel for p in pair], timeout=60), "neither run was refused"
        loser = next(p for p in pair if not p.is_alive())
        assert loser.exitcode == REFUSED and "Another run" in self.out.with_suffix(".refused").read_text()
        self.kill_at_random(next(p for p in pair if p is not loser))
        self.seen["refused (two writers at once)"] += 1

    def write_fault(self, fault: tuple[str, int, str]) -> None:
        run = self.start(fault)
        run.join(timeout=120)
        assert run.exitcode == (DISK_FULL if fault[2] == "disk full" else -signal.SIGKILL), fault
        self.seen[fault[2]] += 1
        self.check()

    def random_kill(self) -> None:
        barrier = self.ctx.Barrier(2)
        run = self.start(barrier=barrier)
        barrier.wait(timeout=60)  # the run has loaded its model
        self.kill_at_random(run)

    def finish(self) -> None:
        run = self.start()
        run.join(timeout=300)
        assert run.exitcode == 0
        self.check()


def test_a_corpus_run_survives_kills_two_writers_and_a_full_disk(tmp_path, tiny_llama):
    runs = Runs(tmp_path, random.Random(SEED))
    runs.two_writers_at_once()
    for fault in WRITE_FAULTS:
        runs.write_fault(fault)
    for _ in range(RANDOM_KILLS):
        runs.random_kill()
    runs.finish()
    assert_complete(runs, tiny_llama, tmp_path)
    print(f"faults: {dict(runs.seen)}; passages recorded after each run: {[len(ids) for ids in runs.recorded]}")
    assert runs.seen["killed at random"] == RANDOM_KILLS + 1  # with the two writers' winner


def assert_complete(runs: Runs, model: Any, tmp_path: Path) -> None:
    """Every passage exactly once, with an uninterrupted run's numbers (on a sample); no lock, temp or unlisted file left."""
    run = load_runs(runs.out)
    listed = {p[kind] for p in run.manifest["shards"] for kind in ("summary", "curves")} | {"manifest.json"}
    on_disk = {str(p.relative_to(runs.out)) for p in runs.out.rglob("*") if p.is_file()}
    assert on_disk == listed, on_disk ^ listed
    prompts = pd.read_csv(runs.table)
    assert run.summary["passage_id"].tolist() == sorted(prompts["passage_id"])
    sample = prompts.iloc[sorted(runs.rng.sample(range(len(prompts)), CHECKED))]
    sample.to_csv(tmp_path / "sample.csv", index=False)
    runner.run_corpus(
        model, tmp_path / "reference", data=tmp_path / "sample.csv", grid="fast", refine=False, n_passages=None, progress=False
    )
    whole = load_runs(tmp_path / "reference")
    mine = run.summary.set_index("passage_id").loc[whole.summary["passage_id"]]
    assert mine["prompt"].tolist() == whole.summary["prompt"].tolist()
    for column in ("density", "auc_kl", "entropy_full", "loss_full"):
        np.testing.assert_allclose(mine[column], whole.summary[column], rtol=1e-5, atol=1e-6)
    curves = run.curves.set_index(["passage_id", "stratum"]).loc[pd.MultiIndex.from_frame(whole.curves[["passage_id", "stratum"]])]
    np.testing.assert_allclose(curves["tv"], whole.curves["tv"], rtol=1e-5, atol=1e-6)
