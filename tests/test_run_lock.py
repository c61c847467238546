"""The run lock: one writer per run folder, even when processes start at the same instant; a holder
killed with ``kill -9`` releases it; a lock left on a shared disk by another host is reported, not taken."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from density_nb.corpus.store import HOST, LOCK, CorpusError, RunLock

TRIALS, PROCESSES = 200, 3


def contend(folder: str, barrier, inside, overlaps, taken, trials: int) -> None:
    """Each trial: wait for the others, try the lock; a holder counts itself in ``inside`` for 2 ms."""
    for trial in range(trials):
        barrier.wait()
        try:
            with RunLock(Path(folder) / str(trial)):
                with inside.get_lock():
                    inside.value += 1
                    overlaps.value += inside.value > 1
                record = json.loads((Path(folder) / str(trial) / LOCK).read_text())
                assert (record["host"], record["pid"]) == (HOST, os.getpid())
                time.sleep(0.002)
                with inside.get_lock():
                    inside.value -= 1
                with taken.get_lock():
                    taken[trial] += 1
        except CorpusError:
            pass


def test_processes_released_together_never_hold_it_twice(tmp_path):
    for trial in range(TRIALS):
        (tmp_path / str(trial)).mkdir()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    inside, overlaps, taken = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Array("i", TRIALS)
    workers = [ctx.Process(target=contend, args=(str(tmp_path), barrier, inside, overlaps, taken, TRIALS)) for _ in range(PROCESSES)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    assert overlaps.value == 0, f"two holders at once in {overlaps.value} of {TRIALS} trials"
    assert min(taken[:]) >= 1  # someone got it each time (a loser may take it after the winner let go)
    assert not list(tmp_path.glob(f"*/{LOCK}"))  # each holder removed it


HOLD = "import sys, time; from pathlib import Path; from density_nb.corpus.store import RunLock\nwith RunLock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)"


def test_a_holder_killed_with_sigkill_releases_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CorpusError, match=rf"Another run \(pid {holder.pid} on host {HOST}, started .*\) is writing"):
            RunLock(tmp_path).__enter__()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == holder.pid  # its record stays, naming a dead process
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK).exists()


def test_a_lock_left_on_another_host_is_reported_not_taken(tmp_path):
    """On a shared disk a record of another host cannot be checked from here, dead or alive."""
    record = json.dumps({"host": "node-7.cluster", "pid": 4242, "started": "2025-03-01T09:00:00+0000"})
    (tmp_path / LOCK).write_text(record)
    with pytest.raises(CorpusError) as err:
        RunLock(tmp_path).__enter__()
    message = str(err.value)
    for fragment in ("another host", "pid 4242 on host node-7.cluster, started 2025-03-01T09:00:00+0000", "not taken over", "delete"):
        assert fragment in message
    assert (tmp_path / LOCK).read_text() == record


def test_one_process_cannot_take_it_twice(tmp_path):
    with RunLock(tmp_path), pytest.raises(CorpusError, match=rf"Another run \(pid {os.getpid()} on host"):
        RunLock(tmp_path).__enter__()


@pytest.mark.parametrize("left", ["", "{not json", json.dumps({"host": HOST, "pid": 2**22 + 12345})], ids=["empty", "torn", "dead pid"])
def test_a_record_of_no_running_process_is_taken_over(tmp_path, left):
    (tmp_path / LOCK).write_text(left)
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
