"""The quickstart: trace a short text on the default model, print the table, save the result.

python -m density_nb.quickstart [--model smollm2-135m] [--out quickstart.parquet]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import pandas as pd

from density_nb.errors import DensityNBError
from density_nb.examples import QUICKSTART_TEXT
from density_nb.models import DEFAULT_MODEL, is_cached, load_model
from density_nb.tracing import trace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model to trace (default: {DEFAULT_MODEL})")
    parser.add_argument("--grid", default="fast", help="size grid: fast (8 sizes + full) or paper (26 + full)")
    parser.add_argument("--out", default="quickstart.parquet", help="where to write the result (parquet)")
    parser.add_argument("--html", default="quickstart.html", help="where to write the interactive explorer ('' to skip)")
    args = parser.parse_args(argv)

    if args.model == DEFAULT_MODEL and not is_cached(DEFAULT_MODEL):
        print("First run: converting SmolLM2-135M from its PyPI wheel to a cached safetensors copy (~30 s)...")
    try:
        start = time.perf_counter()
        model = load_model(args.model)
        print(f"Loaded {args.model} in {time.perf_counter() - start:.1f} s.")
        print(f"\nText: {QUICKSTART_TEXT!r}\n")
        start = time.perf_counter()
        result = trace(model, QUICKSTART_TEXT, roots="all", grid=args.grid)
    except DensityNBError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    table = result.summary()[["position", "token_text", "next_text", "top_text_full", "top_prob_full", "density", "s_top1", "entropy_full"]]
    with pd.option_context("display.max_rows", None, "display.width", 120, "display.float_format", "{:.3g}".format):
        print(table.to_string(index=False))
    dens = result.density
    print(
        f"\n{len(result.roots)} predictions traced in {elapsed:.1f} s ({args.grid} grid, {len(result.grid)} strata each).\n"
        f"Density (AUC-TV / 5, 0 = sparse, 1 = dense): mean {dens.mean():.3f}, min {dens.min():.3f} "
        f"({table.next_text[dens.argmin()]!r}), max {dens.max():.3f} ({table.next_text[dens.argmax()]!r})."
    )
    try:
        _save(result, model, args.out, args.html)
    except DensityNBError as err:  # a full disk, a folder not writable: nothing partial is left
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _save(result: Any, model: Any, out: str, html: str) -> None:
    """Write the result file and (``html`` not empty) the explorer page, each atomically."""
    print(f"Saved {result.to_parquet(out)}  (DensityResult.from_parquet to load it)")
    if html:
        try:
            print(f"Saved {result.to_html(html, tokenizer=model)}  (open it in a browser: token strip, s-slider, head grid)")
        except ImportError as err:
            print(f"(no HTML explorer: {err}; install the widgets extra)")


if __name__ == "__main__":
    raise SystemExit(main())
