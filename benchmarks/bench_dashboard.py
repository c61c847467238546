"""The corpus dashboard on a 5,000-passage run: state size, time to build it, and brush → redraw in Chromium.

Writes a synthetic run with the run store's own writer (``ShardWriter``, shards of 500) in SmolLM2-135M's
shapes: 30 layers × 9 heads, the paper grid (27 strata), prompts of 20–60 tokens, plausible TV curves
(a plateau, then a drop), composition counts and head shares. Then: ``load_runs``, the dashboard's state
(bytes on the wire: JSON + binary; and the standalone page), the time to build it (median of 3), and in
headless Chromium the time from a brush (a new ``brush`` value) to every view redrawn (performance.now(),
with a forced layout), for range brushes on the distribution and box brushes on the scatter. Target:
< 100 ms per brush (feels immediate); during a drag the redraws are throttled to one per frame.

    python benchmarks/bench_dashboard.py [--passages 5000] [--brushes 40] [--keep DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from density_nb.config import PAPER_GRID
from density_nb.corpus.runs import load_runs
from density_nb.corpus.store import ShardWriter, new_manifest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
L, H = 30, 9  # SmolLM2-135M


def passage_tables(pid: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One synthetic passage: its summary row and its 27 curve rows, with the columns a real run has."""
    grid = np.asarray(PAPER_GRID)
    k = len(grid)
    t = int(rng.integers(20, 61))
    total = L * (H * t * (t + 1) // 2 + 3 * t)
    n_edges = np.floor(grid * total).astype(np.int64)
    s_input = float(10 ** rng.uniform(-3.3, -2.0))
    drop = rng.uniform(-1.4, -0.2)
    tv_empty = rng.uniform(0.85, 0.99)
    log_s = np.log10(np.maximum(grid, 1e-9))
    tv = np.where(grid < s_input, tv_empty, tv_empty / (1 + np.exp((log_s - drop) / rng.uniform(0.15, 0.4))))
    tv[-1] = 0.0
    auc = float(np.trapezoid(tv, log_s) / 5)
    mlp = np.minimum(n_edges, np.round(n_edges * np.clip(0.3 * np.exp(-((log_s + 2.5) ** 2)), 0.005, 1))).astype(np.int64)
    res = np.minimum(n_edges - mlp, np.round(n_edges * np.clip(1 - (log_s + 5) / 4, 0.02, 1))).astype(np.int64)
    attn = n_edges - mlp - res
    depth = np.linspace(2, 0.5, L) ** rng.uniform(0.5, 2)
    layer_edges = np.floor(n_edges[:, None] * depth / depth.sum()).astype(np.int64)  # [K, L]
    reached = rng.random((k, L * H)) < np.minimum(1, 30 * grid[:, None])  # as on SmolLM2: no head at 1e-3, most from 0.1
    head_share = np.where(reached, np.clip(grid[:, None] * rng.gamma(0.6, 1.6, (k, L * H)), 0, 1), 0).astype(np.float32)  # [K, L * H]
    head_share[-1] = 1.0
    summary = pd.DataFrame(
        {
            "passage_id": [pid], "model": ["synthetic-smollm2"], "words": [40], "prompt": [f"synthetic prompt {pid} " * 3],
            "next_word": ["word"], "aligned": [True], "n_tokens": [t], "position": [t - 1], "next_token": [int(rng.integers(0, 49152))],
            "top_prob_full": [rng.uniform(0.05, 0.95)], "entropy_full": [rng.uniform(0.2, 7)], "loss_full": [rng.uniform(0, 8)],
            "density": [auc], "auc_tv": [auc * 5], "s_top1": [float(grid[int(rng.integers(18, k))])], "total_edges": [total],
            "input_edges": [int(s_input * total)], "s_input": [s_input], "tv_empty": [tv_empty],
            "tv_post_input": [auc - rng.uniform(0.02, 0.1)],
        }
    )  # fmt: skip
    curves = pd.DataFrame(
        {
            "passage_id": pid, "model": "synthetic-smollm2", "words": 40, "position": t - 1, "stratum": np.arange(k), "s": grid,
            "s_actual": n_edges / total, "n_edges": n_edges, "tv": tv, "kl": tv * 3, "top1": grid >= summary.s_top1[0],
            "edges_attn": attn, "edges_mlp": mlp, "edges_res": res, "layer_edges": list(layer_edges), "head_share": list(head_share),
        }
    )  # fmt: skip
    return summary, curves


def write_run(out: Path, n: int) -> None:
    manifest = new_manifest({"model": "synthetic-smollm2", "grid": "paper", "norms": "live"}, {}, list(PAPER_GRID))
    writer = ShardWriter(out, manifest, shard_size=500)  # writes the manifest with its first shard
    rng = np.random.default_rng(0)
    for pid in range(n):
        writer.add(pid, *passage_tables(pid, rng))
    writer.flush()


MEASURE = """
(count) => {
  const m = window.dnbModel, d = m.get('data'), el = document.querySelector('.dnb-d');
  const col = d.measures.length + d.columns.findIndex((c) => c.key === 'entropy_full');
  const brushes = [];
  for (let i = 0; i < count; i++) {
    const a = 0.3 + 0.4 * ((i * 37) % 100) / 100, w = 0.02 + 0.2 * ((i * 53) % 100) / 100;
    brushes.push(i % 2 ? { kind: 'range', measure: 'density', lo: a, hi: a + w }
                       : { kind: 'box', measure: 'density', column: 'entropy_full', x: [a * 7, a * 7 + 3], y: [a, a + w] });
  }
  const times = [], js = [], selected = [];
  for (const b of brushes) {
    const t0 = performance.now();
    m.set('brush', b);
    document.body.offsetHeight;  // force style and layout: what the next frame pays
    times.push(performance.now() - t0);
    js.push(Number(el.dataset.redrawMs));
    selected.push(Number(el.dataset.selected || 0));
  }
  m.set('brush', {});
  return { times, js, selected, nodes: document.querySelectorAll('*').length, col };
}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", type=int, default=5000)
    ap.add_argument("--brushes", type=int, default=40)
    ap.add_argument("--keep", type=Path, default=None, help="write the run and the page here (default: a temp dir)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from density_nb.views import CorpusDashboard

    folder = args.keep or Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    write_run(folder / "run", args.passages)
    print(f"wrote {args.passages} passages in {time.perf_counter() - t0:.1f} s to {folder / 'run'}")
    t0 = time.perf_counter()
    run = load_runs(folder / "run")
    print(f"load_runs: {time.perf_counter() - t0:.2f} s ({len(run.summary)} passages, {len(run.curves)} curve rows)")
    builds = []
    for _ in range(3):
        t0 = time.perf_counter()
        widget = CorpusDashboard(run)
        builds.append(time.perf_counter() - t0)
    sizes = {name: int(np.prod(spec["shape"])) * np.dtype(spec["dtype"]).itemsize for name, spec in widget.data["layout"].items()}
    page = widget.to_html(folder / "dashboard.html")
    print(f"state build: median {statistics.median(builds):.2f} s (of {', '.join(f'{b:.2f}' for b in builds)})")
    print(
        f"state: {widget.state_nbytes() / 1e6:.2f} MB on the wire (binary {len(widget.arrays) / 1e6:.2f} MB compressed from "
        + ", ".join(f"{k} {v / 1e6:.2f}" for k, v in sizes.items())
        + f"); standalone page {page.stat().st_size / 1e6:.2f} MB"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1200, "height": 1000})
        t0 = time.perf_counter()
        tab.goto(page.as_uri())
        tab.wait_for_selector("body[data-dnb-ready]", timeout=60_000)
        print(f"page ready in {time.perf_counter() - t0:.2f} s")
        res = tab.evaluate(MEASURE, args.brushes)
        browser.close()
    times, js = sorted(res["times"]), sorted(res["js"])
    print(
        f"brush → every view redrawn + layout: median {statistics.median(times):.1f} ms, p95 {times[int(0.95 * (len(times) - 1))]:.1f}, "
        f"max {times[-1]:.1f} (JS alone: median {statistics.median(js):.1f} ms); selections of "
        f"{min(res['selected'])}–{max(res['selected'])} passages; {res['nodes']} DOM nodes"
    )
    print(f"target < 100 ms per brush: {'OK' if statistics.median(times) < 100 else 'SLOW'}")


if __name__ == "__main__":
    main()
