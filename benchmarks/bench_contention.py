"""A trace on a busy or shared machine: density_nb's thread policy against the old one (ratios, not asserts).

    python benchmarks/bench_contention.py [--reps 9] [--cgroup]

The workload of issue 19: SmolLM2, a 12-word text, roots="all", grid="fast". Each number is the median
of ``--reps`` traces in a fresh process (model loaded and warmed up first), under the policy
(``DENSITY_NB_THREAD_POLICY`` unset) and under the old behaviour (``DENSITY_NB_THREAD_POLICY=off``):
1. idle;
2. beside one busy process (``while True: pass``) that the benchmark starts and stops itself;
3. a CPU quota simulated with affinity to one core (``os.sched_setaffinity`` in the child);
4. ``--cgroup`` (root, cgroup v1 or v2): a real CPU quota of one CPU, the process seeing every core.
The machine is often shared: a trace during which other processes (not the benchmark's own busy
one) used more than 0.15 of a core is measured again (at most ``3 * reps`` tries), and the load
average and the others' CPU are printed with the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

TEXT_WORDS = 12
NOISE = 0.15  # cores used by other processes above which a trace is measured again
SCENARIOS = ("idle", "busy", "one core", "cgroup quota")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds used by the whole machine (``pid`` None) or by process ``pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    if pid is None:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(values[:3]) + sum(values[5:8])) / tick  # user nice system (not idle iowait) irq softirq steal
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(reps: int, busy_pid: int | None) -> None:
    """Time the workload in this process; print one JSON line."""
    import density_nb  # first: the thread policy applies before torch loads
    from density_nb.examples import QUICKSTART_TEXT

    text = " ".join(QUICKSTART_TEXT.split()[:TEXT_WORDS])
    model = density_nb.load_model("smollm2-135m")
    import torch  # after density_nb (loaded by now)

    for _ in range(2):
        density_nb.trace(model, text, roots="all", grid="fast", progress=False)
    kept: list[float] = []
    others: list[float] = []
    tries = 0
    while len(kept) < reps and tries < 3 * reps:
        tries += 1
        machine, own, busy = cpu_seconds(), own_cpu_seconds(), cpu_seconds(busy_pid) if busy_pid else 0.0
        start = time.perf_counter()
        density_nb.trace(model, text, roots="all", grid="fast", progress=False)
        wall = time.perf_counter() - start
        busy = (cpu_seconds(busy_pid) if busy_pid else 0.0) - busy
        other = (cpu_seconds() - machine - (own_cpu_seconds() - own) - busy) / wall
        if other <= NOISE or tries == 3 * reps:
            kept.append(wall)
            others.append(other)
    print(
        json.dumps(
            {
                "seconds": statistics.median(kept),
                "reps": len(kept),
                "retried": tries - len(kept),
                "others": statistics.median(others),
                "threads": torch.get_num_threads(),
            }
        )
    )


@contextlib.contextmanager
def busy_process() -> Iterator[int]:
    """One process that keeps a core busy, stopped on exit."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def cgroup_quota(cpus: float) -> Iterator[Path | None]:
    """A fresh cgroup limited to ``cpus`` CPUs (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``); None where
    one cannot be made (not root, no cpu controller)."""
    period = 100_000
    for root, files in (
        (Path("/sys/fs/cgroup"), {"cpu.max": f"{int(cpus * period)} {period}"}),
        (Path("/sys/fs/cgroup/cpu"), {"cpu.cfs_period_us": str(period), "cpu.cfs_quota_us": str(int(cpus * period))}),
    ):
        if not (root / "cgroup.procs").exists():  # not a cgroup file system (a v1 machine's /sys/fs/cgroup is a tmpfs)
            continue
        group = root / f"density_nb_bench_{os.getpid()}"
        try:
            group.mkdir()
            for name, value in files.items():
                (group / name).write_text(value)
        except OSError:
            with contextlib.suppress(OSError):
                group.rmdir()
            continue
        try:
            yield group
        finally:
            with contextlib.suppress(OSError):
                group.rmdir()
        return
    yield None


def measure(scenario: str, policy: bool, reps: int) -> dict[str, object] | None:
    """The child's numbers for one scenario under the new (``policy``) or the old thread policy."""
    env = {k: v for k, v in os.environ.items() if k != "DENSITY_NB_THREAD_POLICY"}
    if not policy:
        env["DENSITY_NB_THREAD_POLICY"] = "off"
    command = [sys.executable, __file__, "--child", "--reps", str(reps)]
    with contextlib.ExitStack() as stack:
        preexec = None
        if scenario == "busy":
            command += ["--busy-pid", str(stack.enter_context(busy_process()))]
        elif scenario == "one core":
            core = min(os.sched_getaffinity(0))
            preexec = lambda: os.sched_setaffinity(0, {core})
        elif scenario == "cgroup quota":
            group = stack.enter_context(cgroup_quota(1.0))
            if group is None:
                return None
            preexec = lambda: (group / "cgroup.procs").write_text(str(os.getpid()))
        out = subprocess.run(command, env=env, preexec_fn=preexec, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=9, help="traces per number (the median is printed)")
    parser.add_argument("--cgroup", action="store_true", help="also run under a real one-CPU cgroup quota (root)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--busy-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.reps, args.busy_pid)
        return
    print(
        f"{len(os.sched_getaffinity(0))} cores; SmolLM2, a {TEXT_WORDS}-word text, roots='all', grid='fast'; "
        f"median of {args.reps} traces per number, each in a fresh process"
    )
    print(f"{'':13s} {'old s':>7s} {'new s':>7s} {'new/old':>8s} {'old/idle':>9s} {'new/idle':>9s}  threads  others  load")
    idle: dict[bool, float] = {}
    for scenario in SCENARIOS[: 4 if args.cgroup else 3]:
        load = os.getloadavg()[0]
        rows = {policy: measure(scenario, policy, args.reps) for policy in (False, True)}
        old, new = rows[False], rows[True]
        if old is None or new is None:
            print(f"{scenario:13s} skipped: no cgroup could be made (needs root and a cpu controller)")
            continue
        seconds = {policy: float(row["seconds"]) for policy, row in rows.items()}  # type: ignore[arg-type]
        for policy in seconds:
            idle.setdefault(policy, seconds[policy])
        others = max(float(old["others"]), float(new["others"]))  # type: ignore[arg-type]
        print(
            f"{scenario:13s} {seconds[False]:7.3f} {seconds[True]:7.3f} {seconds[True] / seconds[False]:7.2f}x "
            f"{seconds[False] / idle[False]:8.2f}x {seconds[True] / idle[True]:8.2f}x  {old['threads']:>3} {new['threads']:>3}  "
            f"{others:6.2f}  {load:4.2f}"
        )
    print(
        "old: DENSITY_NB_THREAD_POLICY=off (torch's defaults); x/idle: against the same policy's idle time; threads: old, new; "
        "others: cores used by other processes during the kept traces (median, the larger of the two); load: before the row"
    )


if __name__ == "__main__":
    main()
