"""Slider response of the exported explorer HTML in headless Chromium.

Builds the 128-token × 27-strata explorer on SmolLM2-135M's shape (30 layers × 9 heads) from the
synthetic factory in tests/helpers.py, with the prediction preview's top-5 and all three baselines,
writes it with ``to_html``, opens it from disk and times 100 slider ``input`` events with
performance.now(). Each event redraws the curve marker, the readout (with the baselines' values),
the preview (the subgraph's top-5 beside the full model's) and the whole layer × head grid (300
cells + 30 bars); "with layout" also forces style/layout after each event (what the next frame
would pay). Target: < 16 ms per move.

    python benchmarks/bench_widget_slider.py [--moves 100] [--html out.html]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]

MEASURE = """
async (moves) => {
  const input = document.querySelector('input.dnb-range');
  const K = Number(input.max) + 1;
  const cells = document.querySelectorAll('.dnb-cell');
  const rows = document.querySelectorAll('.dnb-pv-row');
  const run = (forceLayout) => {
    const times = [];
    for (let i = 0; i < moves; i++) {
      const k = (i * 7 + 3) % K;          // jump around the grid so every move changes something
      const t0 = performance.now();
      input.value = String(k);
      input.dispatchEvent(new Event('input', { bubbles: true }));
      if (forceLayout) { document.body.offsetHeight; getComputedStyle(cells[cells.length - 1]).backgroundColor; getComputedStyle(rows[rows.length - 1]).display; }
      times.push(performance.now() - t0);
    }
    return times;
  };
  run(false);  // warm-up
  const sync = run(false);
  const layout = run(true);
  // frame-to-frame: one move per animation frame, measuring the whole frame including paint,
  // next to idle frames (no move) for the headless compositor's own cadence
  const idle = [];
  await new Promise((resolve) => {
    let i = 0, last = performance.now();
    const step = () => { const now = performance.now(); if (i > 0) idle.push(now - last); last = now;
      if (i++ >= moves) return resolve(); requestAnimationFrame(step); };
    requestAnimationFrame(step);
  });
  const frames = [];
  await new Promise((resolve) => {
    let i = 0, last = performance.now();
    const step = () => {
      const now = performance.now();
      if (i > 0) frames.push(now - last);
      last = now;
      if (i++ >= moves) return resolve();
      input.value = String((i * 5) % K);
      input.dispatchEvent(new Event('input', { bubbles: true }));
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  });
  return { sync, layout, frames, idle, cells: cells.length, rows: rows.length, K,
           baselines: document.querySelectorAll('.dnb-curve-base').length,
           readout: document.querySelector('.dnb-readout').textContent };
}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moves", type=int, default=100)
    ap.add_argument("--html", type=Path, default=None, help="where to write the HTML (default: a temp dir)")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from density_nb.views import DensityExplorer
    from helpers import smollm2_sized, with_measures

    class Tokenizer:  # names the top-5 tokens, as a model's tokenizer would
        def decode(self, ids: list[int]) -> str:
            return f" token{ids[0]}"

    widget = DensityExplorer(with_measures(smollm2_sized()), tokenizer=Tokenizer())
    out = args.html or Path(tempfile.mkdtemp()) / "bench_explorer.html"
    widget.to_html(out)
    print(f"state {widget.state_nbytes() / 1e6:.3f} MB (live widget), HTML {out.stat().st_size / 1e6:.3f} MB: {out}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(out.as_uri())
        page.wait_for_selector("body[data-dnb-ready]", timeout=30_000)
        load_ms = page.evaluate("() => performance.now()")
        res = page.evaluate(MEASURE, args.moves)
        browser.close()

    def line(name: str, xs: list[float]) -> str:
        xs = sorted(xs)
        return (
            f"{name:<28} mean {statistics.fmean(xs):6.2f} ms/move   median {statistics.median(xs):6.2f}   "
            f"p95 {xs[int(0.95 * (len(xs) - 1))]:6.2f}   max {xs[-1]:6.2f}"
        )

    print(
        f"page ready after {load_ms:.0f} ms; {res['cells']} grid cells, {res['rows']} preview rows, "
        f"{res['baselines']} baseline curves, {res['K']} strata, {args.moves} moves"
    )
    print(line("input → redraw (sync JS)", res["sync"]))
    print(line("input → redraw + layout", res["layout"]))
    print(line("frame interval, moving (rAF)", res["frames"]))
    print(line("frame interval, idle (rAF)", res["idle"]))
    verdict = "OK" if statistics.fmean(res["layout"]) < 16 else "SLOW"
    print(f"target < 16 ms per move: {verdict}")


if __name__ == "__main__":
    main()
