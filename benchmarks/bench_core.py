"""Core estimator speed, measured against reference.py in the same run (ratios, not asserts).

    python benchmarks/bench_core.py [--quick]

1. Last-token trace, paper grid, SmolLM2, a 40-word WikiText passage: fast vs reference, and the
   achieved GFLOP/s of the masked passes against one large GEMM (``Linear``) in the same run.
2. All-roots trace (token strip), 40 tokens, fast grid: time and peak memory.
3. Cost growth with text length (T = 10, 20, 40, 80): the fitted exponent.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch

from density_nb import reference
from density_nb.config import PAPER_GRID
from density_nb.examples import QUICKSTART_TEXT
from density_nb.models import load_model
from density_nb.stratify import stratify
from density_nb.tracing import tokenize, trace, trace_steps


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def passage(words: int = 40) -> str:
    """A 40-word WikiText passage when the corpus is there, else the project's own text."""
    try:
        from density_nb.data import passages

        return str(passages(n=1, words=words)["prompt"].iloc[0])
    except Exception:
        return " ".join((QUICKSTART_TEXT + " " + QUICKSTART_TEXT).split()[:words])


def matmul_gflops() -> float:
    """GFLOP/s of one [2048, 576] x [576, 1536] GEMM the way the masked passes run it (``Linear``)."""
    from density_nb.linear import Linear

    a, w = torch.randn(2048, 576), Linear(torch.randn(1536, 576))
    for _ in range(3):
        w(a)
    t, _ = timed(lambda: [w(a) for _ in range(20)], repeat=3)
    return 20 * 2 * 2048 * 576 * 1536 / t / 1e9


def masked_flops(model, text: str) -> float:
    """FLOPs of the linear layers the packed masked passes actually run (active rows only)."""
    from density_nb.arch import Arch
    from density_nb.config import make_grid
    from density_nb.importance import edge_weights

    arch = Arch.of(model.original_model)
    ids, _ = tokenize(model, text)
    w = edge_weights(model, ids)
    root = stratify(w, len(ids) - 1, make_grid("paper"), arch.n_layers, arch.n_heads)
    d, kv, inter = arch.d_model, arch.n_kv_heads * arch.head_dim, arch.layers[0].gate_up.sizes[0]
    total = 0.0
    r = root.ranks
    for n in root.sizes[:-1]:
        mlp = ((r.mlp >= 0) & (r.mlp < n)).sum()
        q = ((r.attn >= 0) & (r.attn < n)).any(axis=(1, 3)).sum()
        kv_rows = len(ids) + (((r.mlp >= 0) & (r.mlp < n)) | ((r.res_mlp >= 0) & (r.res_mlp < n)))[:-1].sum()
        total += 2 * (mlp * 3 * d * inter + q * 2 * d * d + kv_rows * 2 * d * kv)
    return float(total)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the reference run (prints fast-path numbers only)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    model = load_model("smollm2-135m")
    trace(model, "warm up the compiled code", roots="last", grid="paper", progress=False)
    text = passage(40)
    ids, _ = tokenize(model, text)
    print(f"\n1. Last-token trace, paper grid ({len(PAPER_GRID)} strata), SmolLM2, {len(text.split())} words = {len(ids)} tokens")
    t_fast, _ = timed(lambda: trace(model, text, roots="last", grid="paper", progress=False), repeat=3)
    gemm = matmul_gflops()
    flops = masked_flops(model, text)
    print(
        f"   fast path        {t_fast:8.2f} s   (masked-pass linear work {flops / 1e9:.1f} GFLOP -> {flops / 1e9 / t_fast:.0f} GFLOP/s end to end; one large GEMM {gemm:.0f} GFLOP/s)"
    )
    if not args.quick:
        t_ref, _ = timed(lambda: reference.trace_root(model, ids.tolist(), len(ids) - 1, list(PAPER_GRID)))
        print(f"   reference.py     {t_ref:8.2f} s")
        print(f"   speed-up         {t_ref / t_fast:8.1f} x   (target >= 20x)")

    print("\n2. All-roots trace (token strip), 40 tokens, fast grid")
    text40 = model.density_nb_tokenizer.decode(tokenize(model, passage(60))[0][:40])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_all, res = timed(lambda: trace(model, text40, roots="all", grid="fast", progress=False))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"   {len(res.roots)} roots in {t_all:.2f} s (target <= 15 s); peak RSS {peak / 1024:.0f} MiB (+{(peak - before) / 1024:.0f} MiB in this step)"
    )

    start = time.perf_counter()
    elapsed = [(time.perf_counter() - start, len(partial.roots)) for partial in trace_steps(model, text40, roots="all", grid="fast")]
    print(
        f"   shown as it fills (trace_steps): first root after {elapsed[0][0]:.2f} s (target < 1 s), all {elapsed[-1][1]} after {elapsed[-1][0]:.2f} s"
    )

    print("\n3. Cost growth with text length (last root, paper grid)")
    lengths, times = [10, 20, 40, 80], []
    long_ids = tokenize(model, passage(120))[0]
    for n in lengths:
        t_n, _ = timed(
            lambda n=n: trace(model, model.density_nb_tokenizer.decode(long_ids[:n]), roots="last", grid="paper", progress=False), repeat=2
        )
        times.append(t_n)
        print(f"   T = {n:3d}: {t_n:6.2f} s")
    slope = np.polyfit(np.log(lengths), np.log(times), 1)[0]
    late = np.polyfit(np.log(lengths[1:]), np.log(times[1:]), 1)[0]
    print(f"   measured exponent {slope:.2f} over T = 10..80 ({late:.2f} over 20..80); |E| grows as T^2")


if __name__ == "__main__":
    main()
