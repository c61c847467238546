"""The run store at 10k, 100k and 1M passages: shard write time, resume time, ``load_runs`` time and memory,
and the dashboard's state, with the growth exponent of each.

    python benchmarks/bench_store.py [--sizes 10000 100000 1000000] [--shard-size 100] [--layers 4] [--heads 4] [--keep DIR]

A stub tracer writes synthetic rows with the columns of a real run (``bench_dashboard.passage_tables``'s, made a
shard at a time): the fast grid (9 strata), ``--layers`` × ``--heads`` head shares per stratum (small by default so
that a million passages fit in memory; memory grows with L · H). Each run is written through the run store's own
writer (``ShardWriter.write``, merges included), each shard timed. Then, each in a fresh process (times and
peak RSS above the process after its imports): resume (``ShardWriter`` opening the run: what is recorded),
``load_runs``, and ``dashboard_state`` (after ``load_runs``). For comparison, the format 1 store rewrote a manifest
listing every passage id after each shard: its cost at each size is timed too (the same JSON, written atomically).
The growth exponent is the slope of log(cost) over log(passages) between the smallest and the largest size
(0: independent of the run's length; 1: linear). The load average is printed beside the numbers.

No asserts: numbers only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from density_nb.config import FAST_GRID
from density_nb.corpus.store import FANOUT, MERGE_LIMIT, ShardWriter, new_manifest, write_json

GRID = np.asarray(FAST_GRID)


def stub_tables(ids: np.ndarray, rng: np.random.Generator, layers: int, heads: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stub tracer: the summary and curves rows of the passages ``ids``, synthetic, with a real run's columns."""
    n, k = len(ids), len(GRID)
    t = rng.integers(20, 61, n)
    total = layers * (heads * t * (t + 1) // 2 + 3 * t)  # [n]
    n_edges = np.floor(GRID[None, :] * total[:, None]).astype(np.int64)  # [n, k]
    tv_empty = rng.uniform(0.85, 0.99, n)
    log_s = np.log10(GRID)
    drop = rng.uniform(-1.4, -0.2, n)
    tv = tv_empty[:, None] / (1 + np.exp((log_s[None, :] - drop[:, None]) / 0.3))  # [n, k]
    tv[:, -1] = 0.0
    density = np.trapezoid(tv, log_s, axis=1) / 5
    mlp = (n_edges * 0.05).astype(np.int64)
    res = (n_edges * 0.1).astype(np.int64)
    layer_edges = np.repeat(n_edges[..., None] // layers, layers, axis=2)  # [n, k, L]
    head_share = np.clip(GRID[None, :, None] * rng.gamma(0.6, 1.6, (n, k, layers * heads)), 0, 1).astype(np.float32)  # [n, k, L*H]
    summary = pd.DataFrame(
        {
            "passage_id": ids, "model": "stub", "words": 40, "prompt": [f"synthetic prompt {i}" for i in ids], "next_word": "word",
            "aligned": True, "n_tokens": t, "position": t - 1, "next_token": rng.integers(0, 49152, n),
            "top_prob_full": rng.uniform(0.05, 0.95, n), "entropy_full": rng.uniform(0.2, 7, n), "loss_full": rng.uniform(0, 8, n),
            "density": density, "auc_tv": density * 5, "s_top1": GRID[rng.integers(4, k, n)], "total_edges": total,
            "input_edges": (total * 1e-3).astype(np.int64), "s_input": 1e-3, "tv_empty": tv_empty, "density_plateau_free": density - 0.05,
        }
    )  # fmt: skip
    curves = pd.DataFrame(
        {
            "passage_id": np.repeat(ids, k), "model": "stub", "words": 40, "position": np.repeat(t - 1, k), "stratum": np.tile(np.arange(k), n),
            "s": np.tile(GRID, n), "s_actual": (n_edges / total[:, None]).ravel(), "n_edges": n_edges.ravel(), "tv": tv.ravel(),
            "kl": 3 * tv.ravel(), "top1": np.tile(GRID, n) >= 0.3, "edges_attn": (n_edges - mlp - res).ravel(), "edges_mlp": mlp.ravel(),
            "edges_res": res.ravel(), "layer_edges": list(layer_edges.reshape(n * k, layers)),
            "head_share": list(head_share.reshape(n * k, layers * heads)),
        }
    )  # fmt: skip
    return summary, curves


def write_run(out: Path, n: int, shard_size: int, layers: int, heads: int) -> np.ndarray:
    """Write ``n`` passages a shard at a time; returns each shard's write time (s), merges included."""
    writer = ShardWriter(out, new_manifest({"model": "stub", "grid": "fast"}, {}, GRID.tolist()), shard_size)
    rng = np.random.default_rng(0)
    order = rng.permutation(n)  # passages complete out of order, as on many workers
    times = []
    for start in range(0, n, shard_size):
        ids = np.sort(order[start : start + shard_size])
        summary, curves = stub_tables(ids, rng, layers, heads)
        t0 = time.perf_counter()
        writer.write(ids.tolist(), summary, curves)
        times.append(time.perf_counter() - t0)
    return np.asarray(times)


def format_1_manifest_write(n: int, folder: Path) -> float:
    """Seconds the format 1 store spent after a shard at run length ``n``: the manifest with every id, rewritten."""
    manifest = {"format": 1, "settings": {"model": "stub"}, "shards": [], "passage_ids": list(range(n)), "next_shard": 0}
    manifest["shards"] = [{"name": f"{i:06d}", "passage_ids": list(range(i * 100, i * 100 + 100))} for i in range(n // 100)]
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        write_json(manifest, folder / "manifest.json")
        best = min(best, time.perf_counter() - t0)
    return best


def measure(what: str, out: Path) -> dict[str, float]:
    """In this (fresh) process: seconds and peak RSS (MB, above the process after its imports) of ``what``."""
    from density_nb.corpus.runs import load_runs
    from density_nb.views.dashboard_state import dashboard_state

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if what == "resume":
        writer = ShardWriter(out, json.loads((out / "manifest.json").read_text()))
        extra = {"passages": len(writer.done), "pieces": len(writer.pieces)}
    elif what == "load":
        run = load_runs(out)
        extra = {"passages": len(run.summary), "rows": len(run.curves)}
    else:
        run = load_runs(out)
        t0 = time.perf_counter()
        data, arrays = dashboard_state(run, text=True)
        extra = {"state_mb": (len(json.dumps(data)) + len(arrays)) / 1e6}
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base, **extra}


def in_fresh_process(what: str, out: Path) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--measure", what, str(out)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def exponent(sizes: list[int], values: list[float]) -> float:
    return float(np.log(values[-1] / values[0]) / np.log(sizes[-1] / sizes[0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--keep", type=Path, default=None, help="write the runs here (default: a temp dir, removed)")
    ap.add_argument("--measure", nargs=2, metavar=("WHAT", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]))))
        return
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_store-"))
    print(
        f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; shards of {args.shard_size} passages, merged {FANOUT} at a "
        f"time up to {MERGE_LIMIT} passages; fast grid, {args.layers} layers x {args.heads} heads"
    )
    rows: dict[str, list[float]] = {}
    try:
        for n in args.sizes:
            out = folder / f"run{n}"
            t0 = time.perf_counter()
            times = write_run(out, n, args.shard_size, args.layers, args.heads)
            total = time.perf_counter() - t0
            tail = times[-max(1, len(times) // 10) :]
            disk = sum(p.stat().st_size for p in (out / "shards").iterdir()) / 1e6
            v1 = format_1_manifest_write(n, folder)
            res, load, dash = (in_fresh_process(w, out) for w in ("resume", "load", "dashboard"))
            values = {
                "shard write, median (ms)": 1e3 * statistics.median(times),
                "shard write, mean incl. merges (ms)": 1e3 * times.mean(),
                "shard write, mean of the last 10% (ms)": 1e3 * tail.mean(),
                "format 1 manifest rewrite per shard (ms)": 1e3 * v1,
                "resume (s)": res["seconds"],
                "load_runs (s)": load["seconds"],
                "load_runs peak (MB)": load["peak_mb"],
                "dashboard_state (s)": dash["seconds"],
                "dashboard_state + load peak (MB)": dash["peak_mb"],
                "dashboard state sent (MB)": dash["state_mb"],
            }
            for key, value in values.items():
                rows.setdefault(key, []).append(value)
            print(
                f"\n{n:,} passages: written in {total:.0f} s ({len(times)} shards, slowest {1e3 * times.max():.0f} ms: a merge), "
                f"{disk:.0f} MB on disk in {res['pieces']:.0f} pieces; load average {os.getloadavg()[0]:.2f}"
            )
            for key, value in values.items():
                print(f"  {key:42s} {value:10.3f}")
            marks = [m for m in (1_000, 10_000, 100_000, 1_000_000) if m <= n]
            window = {m: 1e3 * statistics.median(times[max(0, m // args.shard_size - 100) : m // args.shard_size]) for m in marks}
            print(
                "  shard write within this run, median of the 100 shards before passage "
                + ", ".join(f"{m:,}: {v:.1f} ms" for m, v in window.items())
            )
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    if len(args.sizes) > 1:
        print(f"\ngrowth exponent over {args.sizes[0]:,} .. {args.sizes[-1]:,} passages (cost ∝ N^x; 0: independent of N)")
        for key, values in rows.items():
            print(f"  {key:42s} {exponent(args.sizes, values):6.2f}")


if __name__ == "__main__":
    main()
