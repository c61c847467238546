"""The thread policy for busy and shared machines, applied by ``import density_nb``.

torch's OpenMP threads spin while they wait for each other, holding cores that the threads they wait
for need once another process runs (a trace 8x slower beside one busy process). So, unless the user chose:
- torch uses at most the CPUs this process may really use: torch follows its affinity already,
  density_nb adds the cgroup's CPU quota (Binder, Kubernetes) (``usable_cpus``);
- OpenMP's waiting threads spin only briefly, then sleep (``WAIT``);
- where other processes hold cores when a trace's masked passes start, they run on fewer threads
  (``team_size``; same results).
OpenMP reads the first two when torch loads, so they go into the environment (child processes
inherit them) when density_nb is imported first; where torch came first, ``apply`` caps a thread
count above the usable CPUs and warns once with the fix. The user's ``OMP_NUM_THREADS``,
``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``, ``set_threads`` and ``torch.set_num_threads`` win (one
called before density_nb up to the usable CPUs: more is taken for torch's default and capped);
``DENSITY_NB_THREAD_POLICY=off`` keeps torch's own defaults, as before.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path

from density_nb.errors import DensityNBError

POLICY = "DENSITY_NB_THREAD_POLICY"
# ~0.2 ms of spinning, then sleep (libgomp's default spins ~3 ms): measured by benchmarks/bench_contention.py
WAIT = {"GOMP_SPINCOUNT": "20000"}  # unless the user set one of WAIT_SETTINGS
WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
COUNT_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # what torch reads for its thread count


def enabled() -> bool:
    """Whether the policy applies (``DENSITY_NB_THREAD_POLICY`` is not ``off``)."""
    return os.environ.get(POLICY, "").strip().lower() != "off"


def usable_cpus(proc: Path = Path("/proc/self")) -> int:
    """CPUs this process may use: its affinity, capped by its cgroup's CPU quota rounded up."""
    quota = cgroup_cpus(proc)
    return max(1, min(affinity_cpus(), math.ceil(quota))) if quota is not None else affinity_cpus()


def affinity_cpus() -> int:
    """CPUs this process may run on (torch's own default follows these, not a cgroup quota)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cgroup_cpus(proc: Path = Path("/proc/self")) -> float | None:
    """The tightest CPU quota on this process's cgroup or its ancestors, in CPUs (v2 ``cpu.max``,
    v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``); None without one or where it cannot be read."""
    try:
        memberships = [line.split(":", 2) for line in (proc / "cgroup").read_text().splitlines() if line.count(":") >= 2]
        mounts = [fields for line in (proc / "mountinfo").read_text().splitlines() if "-" in (fields := line.split())[6:-2]]
    except OSError:
        return None
    quotas = []
    for _, controllers, path in memberships:
        v2 = controllers == ""
        if not v2 and "cpu" not in controllers.split(","):
            continue
        for fields in mounts:
            fstype, options = fields[fields.index("-", 6) + 1], fields[-1].split(",")
            if (fstype == "cgroup2") if v2 else (fstype == "cgroup" and "cpu" in options):
                root, point = fields[3], Path(fields[4])
                inside = path[len(root) :].lstrip("/") if path == root or path.startswith(root.rstrip("/") + "/") else ""
                quotas += [q for folder in _up_to(point / inside, point) if (q := _quota(folder, v2)) is not None]
                break
    return min(quotas, default=None)


def _up_to(folder: Path, top: Path) -> list[Path]:
    """``folder`` and its parents up to ``top`` (a parent's quota bounds its children)."""
    return [folder, *(p for p in folder.parents if p.is_relative_to(top))]


def _quota(folder: Path, v2: bool) -> float | None:
    """One cgroup folder's CPU quota in CPUs; None without one."""
    try:
        if v2:
            quota, period = (folder / "cpu.max").read_text().split()[:2]
        else:
            quota, period = ((folder / name).read_text().strip() for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
        return int(quota) / int(period) if quota != "max" and int(quota) > 0 and int(period) > 0 else None
    except (OSError, ValueError):
        return None


def team_size(size: int, teams: int = 1) -> int:
    """Threads for each of ``teams`` OpenMP teams that want ``size``: fewer where other processes'
    runnable threads leave fewer idle cores than that (a team waits at every barrier for its slowest
    thread, and one without a core stalls the rest); ``size`` where unknown or the policy is off."""
    others = others_running() if size > 1 and enabled() else None
    if others is None:
        return size
    return max(1, min(size, ((os.cpu_count() or 1) - others) // teams))


def others_running() -> int | None:
    """Threads of other processes that run or wait for a core right now (Linux ``/proc``; None elsewhere)."""
    try:
        running = int(Path("/proc/stat").read_text().split("procs_running", 1)[1].split()[0])
        own = sum(_running(task) for task in Path("/proc/self/task").iterdir())
    except (OSError, IndexError, ValueError):
        return None
    return max(0, running - own)


def _running(task: Path) -> bool:
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "R"
    except (OSError, IndexError):
        return False  # the thread ended


def set_threads(n: int | None = None) -> int:
    """Use ``n`` torch threads from now on (None: the CPUs this process may use); returns the count."""
    if n is None:
        n = usable_cpus()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DensityNBError(f"set_threads({n!r}): give a whole number of threads, at least 1 (or None for the CPUs this process may use).")
    import torch  # heavy: only when asked

    torch.set_num_threads(n)
    return n


def apply() -> None:
    """Set the policy for torch before it loads; where it loaded first, cap its threads to the usable
    CPUs (unless the user set a count) and warn once where its threads spin."""
    if not enabled():
        return
    env = os.environ
    count_chosen = any(env.get(name) for name in COUNT_SETTINGS)
    wait_chosen = any(env.get(name) for name in WAIT_SETTINGS)
    torch = sys.modules.get("torch")
    if torch is None:
        cpus = usable_cpus()
        if not count_chosen and cpus < affinity_cpus():  # a quota that torch would not see
            env["OMP_NUM_THREADS"] = str(cpus)
        if not wait_chosen:
            env.update(WAIT)
        return
    said = []
    threads, cpus = torch.get_num_threads(), usable_cpus()
    if not count_chosen and threads > cpus:
        torch.set_num_threads(cpus)
        said.append(
            f"density_nb lowered torch's threads from {threads} to {cpus}, the CPUs this process may use "
            "(torch.set_num_threads after importing density_nb chooses otherwise)."
        )
    if not wait_chosen and torch.get_num_threads() > 1:
        waits = " ".join(f"{k}={v}" for k, v in WAIT.items())
        said.append(
            "torch was imported before density_nb, so its threads spin while they wait: beside another busy "
            f"process a trace can take several times longer. Import density_nb before torch, or set {waits} "
            f"before Python starts ({POLICY}=off silences this)."
        )
    if said:
        warnings.warn(" ".join(reversed(said)), RuntimeWarning, stacklevel=2)
