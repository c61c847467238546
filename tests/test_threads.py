"""The thread policy (density_nb/threads.py): the CPUs a process may use (affinity, cgroup v1/v2 quota),
the user's settings first, applied at import before torch, and one warning where torch came first."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import pytest
import torch

from density_nb import threads
from density_nb.errors import DensityNBError
from density_nb.method import pipeline
from density_nb.tracing import trace
from helpers import TEXT

SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", threads.POLICY)


def fake_proc(tmp_path: Path, cgroup: str, mount: str, quotas: dict[str, dict[str, str]]) -> Path:
    """A /proc/self with ``cgroup`` and one ``mount`` line (``{root}`` = the fake cgroup folder), and
    quota files per cgroup folder (relative to it)."""
    root = tmp_path / "cgroup"
    for folder, files in quotas.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (root / folder / name).write_text(text)
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text("22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n" + mount.format(root=root) + "\n")
    return proc


V2_MOUNT = "30 22 0:26 / {root} rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate"


def test_v2_quota_is_the_tightest_up_the_tree(tmp_path):
    quotas = {"kubepods/pod": {"cpu.max": "150000 100000\n"}, "kubepods/pod/ctr": {"cpu.max": "max 100000\n"}, "kubepods": {}}
    proc = fake_proc(tmp_path, "0::/kubepods/pod/ctr\n", V2_MOUNT, quotas)
    assert threads.cgroup_cpus(proc) == 1.5


def test_v2_max_is_no_quota(tmp_path):
    proc = fake_proc(tmp_path, "0::/\n", V2_MOUNT, {".": {"cpu.max": "max 100000\n"}})
    assert threads.cgroup_cpus(proc) is None


def test_v1_quota_below_a_mounted_cgroup(tmp_path):
    """cgroup v1 without a namespace: the container's cgroup mounted as the controller's root."""
    mount = "35 22 0:31 /docker/abc {root} rw,nosuid - cgroup cgroup rw,cpu,cpuacct"
    proc = fake_proc(
        tmp_path,
        "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
        mount,
        {".": {"cpu.cfs_quota_us": "50000\n", "cpu.cfs_period_us": "100000\n"}},
    )
    assert threads.cgroup_cpus(proc) == 0.5


def test_v1_minus_one_is_no_quota(tmp_path):
    mount = "35 22 0:31 / {root} rw - cgroup cgroup rw,cpu,cpuacct"
    proc = fake_proc(tmp_path, "4:cpu,cpuacct:/\n", mount, {".": {"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"}})
    assert threads.cgroup_cpus(proc) is None


def test_odd_lines_are_skipped(tmp_path):
    proc = fake_proc(tmp_path, "garbage\n0::/\n", "short line\n" + V2_MOUNT, {".": {"cpu.max": "200000 100000"}})
    assert threads.cgroup_cpus(proc) == 2.0


def test_no_cgroup_files_is_no_quota(tmp_path):
    assert threads.cgroup_cpus(tmp_path / "nothing") is None


@pytest.mark.parametrize(
    ("affinity", "cpu_max", "usable"), [(4, "150000 100000", 2), (4, "max 100000", 4), (4, "50000 100000", 1), (1, "400000 100000", 1)]
)
def test_usable_cpus_is_affinity_capped_by_the_quota_rounded_up(tmp_path, monkeypatch, affinity, cpu_max, usable):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(affinity)))
    proc = fake_proc(tmp_path, "0::/\n", V2_MOUNT, {".": {"cpu.max": cpu_max}})
    assert threads.usable_cpus(proc) == usable


# ---- what apply() decides ----------------------------------------------------------------------------
@pytest.fixture
def env(monkeypatch):
    """``os.environ`` as a plain dict without the thread settings (restored afterwards), no quota."""
    fake = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    monkeypatch.setattr(os, "environ", fake)
    monkeypatch.setattr(threads, "affinity_cpus", lambda: 4)
    monkeypatch.setattr(threads, "cgroup_cpus", lambda proc=None: None)
    return fake


def without_torch(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch")


def test_before_torch_sets_a_short_spin_and_no_count_without_a_quota(env, monkeypatch):
    without_torch(monkeypatch)
    threads.apply()
    assert env["GOMP_SPINCOUNT"] == threads.WAIT["GOMP_SPINCOUNT"]
    assert "OMP_NUM_THREADS" not in env  # torch follows the affinity itself


def test_before_torch_a_quota_sets_the_count(env, monkeypatch):
    without_torch(monkeypatch)
    monkeypatch.setattr(threads, "cgroup_cpus", lambda proc=None: 1.5)
    threads.apply()
    assert env["OMP_NUM_THREADS"] == "2"


@pytest.mark.parametrize(
    ("user", "kept"),
    [
        ({"OMP_NUM_THREADS": "3"}, {"OMP_NUM_THREADS": "3", "GOMP_SPINCOUNT": threads.WAIT["GOMP_SPINCOUNT"]}),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "2"}),
        ({"GOMP_SPINCOUNT": "0"}, {"GOMP_SPINCOUNT": "0", "OMP_NUM_THREADS": "2"}),
        ({threads.POLICY: "off"}, {threads.POLICY: "off"}),
    ],
)
def test_the_users_settings_win(env, monkeypatch, user, kept):
    without_torch(monkeypatch)
    monkeypatch.setattr(threads, "cgroup_cpus", lambda proc=None: 2.0)
    env.update(user)
    threads.apply()
    assert {k: env[k] for k in SETTINGS if k in env} == kept


def fake_torch(monkeypatch, count: int) -> types.SimpleNamespace:
    state = types.SimpleNamespace(count=count)
    module = types.SimpleNamespace(get_num_threads=lambda: state.count, set_num_threads=lambda n: setattr(state, "count", n))
    monkeypatch.setitem(sys.modules, "torch", module)
    return state


def test_torch_first_warns_once_with_the_fix_and_caps_a_count_above_the_quota(env, monkeypatch):
    monkeypatch.setattr(threads, "cgroup_cpus", lambda proc=None: 2.0)
    state = fake_torch(monkeypatch, 16)
    with pytest.warns(RuntimeWarning) as caught:
        threads.apply()
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "Import density_nb before torch" in message and "GOMP_SPINCOUNT=" in message and "from 16 to 2" in message
    assert state.count == 2


def test_torch_first_keeps_a_count_within_the_usable_cpus(env, monkeypatch):
    state = fake_torch(monkeypatch, 3)  # torch.set_num_threads(3) before density_nb, 4 usable
    with pytest.warns(RuntimeWarning, match="Import density_nb before torch"):
        threads.apply()
    assert state.count == 3


@pytest.mark.parametrize("user", [{"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "1000"}, {threads.POLICY: "off"}])
def test_torch_first_is_silent_when_the_user_chose(env, monkeypatch, user):
    env.update(user)
    fake_torch(monkeypatch, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        threads.apply()


def test_torch_first_with_one_thread_is_silent(env, monkeypatch):
    """One thread never waits for another: nothing spins, nothing to say."""
    fake_torch(monkeypatch, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        threads.apply()


def test_set_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert threads.set_threads(1) == 1 and torch.get_num_threads() == 1
        assert threads.set_threads() == threads.usable_cpus() == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(DensityNBError, match="whole number of threads"):
            threads.set_threads(bad)  # type: ignore[arg-type]


# ---- in a fresh process ---------------------------------------------------------------------------------
def python(code: str, env: dict[str, str] | None = None, preexec=None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        env={**clean, **(env or {})},
        preexec_fn=preexec,
        capture_output=True,
        text=True,
        check=True,
    )


def test_import_before_torch_sets_the_policy():
    code = (
        "import os, sys\nimport density_nb\nassert 'torch' not in sys.modules\nimport torch\n"
        "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_NUM_THREADS'), torch.get_num_threads())"
    )
    out = python(code, preexec=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
    assert out.stdout.split() == [threads.WAIT["GOMP_SPINCOUNT"], "None", "1"]  # one CPU: torch follows it
    assert "RuntimeWarning" not in out.stderr


@contextlib.contextmanager
def one_cpu_cgroup():
    """A fresh cgroup limited to one CPU (v1 or v2), or a skip where none can be made (not root)."""
    for root, files in (
        (Path("/sys/fs/cgroup"), {"cpu.max": "100000 100000"}),
        (Path("/sys/fs/cgroup/cpu"), {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "100000"}),
    ):
        group = root / f"density_nb_test_{os.getpid()}"
        if not (root / "cgroup.procs").exists():  # not a cgroup file system (a v1 machine's /sys/fs/cgroup is a tmpfs)
            continue
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            for name, value in files.items():
                (group / name).write_text(value)
            yield group
            return
        except OSError:
            continue
        finally:
            with contextlib.suppress(OSError):
                group.rmdir()
    pytest.skip("no cgroup with a CPU quota can be made here (needs root and a cpu controller)")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="a one-CPU quota changes nothing on one CPU")
def test_import_before_torch_under_a_real_cgroup_quota():
    with one_cpu_cgroup() as group:
        code = "import os\nimport density_nb, torch\nprint(os.environ.get('OMP_NUM_THREADS'), torch.get_num_threads())"
        out = python(code, preexec=lambda: (group / "cgroup.procs").write_text(str(os.getpid())))
    assert out.stdout.split() == ["1", "1"]


def test_torch_first_warns_once_in_a_fresh_process():
    code = "import torch\nimport density_nb\nimport density_nb.tracing\nfrom density_nb import trace, set_threads"
    out = python(code)
    if torch.get_num_threads() > 1:
        assert out.stderr.count("RuntimeWarning") == 1, out.stderr
        assert "Import density_nb before torch" in out.stderr
    assert python(code, env={"OMP_WAIT_POLICY": "PASSIVE"}).stderr.count("RuntimeWarning") == 0


def test_error_classes_and_set_threads_import_no_torch():
    code = "import sys\nfrom density_nb import DensityNBError, TraceInputError, set_threads\nassert 'torch' not in sys.modules"
    python(code)


# ---- the passes under contention -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "teams", "cpus", "others", "policy", "want"),
    [
        (2, 1, 2, 0, "", 2),  # idle: all of them
        (2, 1, 2, 1, "", 1),  # one busy process on two cores: one thread, nothing waits for a core
        (4, 2, 8, 4, "", 2),  # two teams share the four idle cores
        (2, 1, 2, 5, "", 1),  # never fewer than one
        (2, 1, 2, None, "", 2),  # unknown (no /proc): as asked
        (2, 1, 2, 1, "off", 2),  # the policy off: as asked
    ],
)
def test_team_size_leaves_the_cores_others_hold(monkeypatch, size, teams, cpus, others, policy, want):
    monkeypatch.setattr(threads, "others_running", lambda: others)
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setenv(threads.POLICY, policy)
    assert threads.team_size(size, teams) == want


def test_others_running_sees_a_busy_process():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        seen = 0
        for _ in range(200):  # until the busy process runs (at most a few seconds)
            seen = threads.others_running() or 0
            if seen:
                break
            time.sleep(0.02)
        assert seen >= 1
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="needs two torch threads")
def test_contended_passes_use_fewer_threads_same_results_and_give_them_back(tiny_llama, monkeypatch):
    before = torch.get_num_threads()
    plain = trace(tiny_llama, TEXT, grid="fast", max_rows=10_000, progress=False)  # one group of roots
    seen = []
    evaluate = pipeline._evaluate
    monkeypatch.setattr(pipeline, "_evaluate", lambda *a, **k: seen.append(torch.get_num_threads()) or evaluate(*a, **k))
    monkeypatch.setattr(threads, "team_size", lambda size, teams=1: 1)
    contended = trace(tiny_llama, TEXT, grid="fast", max_rows=10_000, progress=False)
    assert set(seen) == {1}
    assert torch.get_num_threads() == before, "the torch threads are given back"
    assert contended.equals(plain)
