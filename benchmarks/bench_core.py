"""Core estimator speed, measured against reference.py in the same run (ratios, not asserts).

    python benchmarks/bench_core.py [--quick] [--gemma]

Issue 13's targets, each printed beside the number before that work (commit 21c75b6, same CPU):
1. Token strip: a 77-token paragraph, all roots, fast grid (<= 10 s) and paper grid (<= 30 s); peak
   RSS (<= 2.5 GiB, before reference.py runs); time to the first root of the live strip
   (``trace_steps``, < 1 s), and a cancel that keeps what was done.
2. Last-token trace, paper grid, SmolLM2, a 40-word WikiText passage: fast vs reference (>= 28x), the
   share of the fast path's time outside the GEMMs, and the achieved GFLOP/s of the masked passes
   against one large GEMM (``Linear``) in the same run.
2b. What the required sizes by bisection (``refine=True``) add to the last-token paper-grid trace (issue 21:
   aim under +50 %; it costs more, so it is opt-in for ``trace`` and on by default for corpus runs).
3. Cost growth with text length (T = 10, 20, 40, 80): the fitted exponent.
4. ``--gemma``: Gemma-3-270M's first load from a fresh cache (a temporary DENSITY_NB_CACHE).
The machine is often shared: the load average is printed with the numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from density_nb.config import PAPER_GRID
from density_nb.examples import QUICKSTART_TEXT
from density_nb.method import reference
from density_nb.method.inputs import tokenize
from density_nb.models import load_model
from density_nb.tracing import trace, trace_steps

BEFORE = {  # issue 13, measured at commit 21c75b6 on this 2-core CPU
    "speed-up": 22.0,
    "outside GEMMs": 0.45,
    "strip fast": 17.4,
    "strip paper": 52.7,
    "peak RSS GiB": 2.5,
    "gemma first load": 107.0,
}


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
        from density_nb.corpus.sources import passages

        return str(passages(n=1, words=words)["prompt"].iloc[0])
    except Exception:
        return " ".join((QUICKSTART_TEXT + " " + QUICKSTART_TEXT).split()[:words])


def matmul_gflops() -> float:
    """GFLOP/s of one [2048, 576] x [576, 1536] GEMM the way the masked passes run it (``Linear``)."""
    from density_nb.method.linear import Linear

    a, w = torch.randn(2048, 576), Linear(torch.randn(1536, 576))
    for _ in range(3):
        w(a)
    t, _ = timed(lambda: [w(a) for _ in range(20)], repeat=3)
    return 20 * 2 * 2048 * 576 * 1536 / t / 1e9


@dataclass
class Work:
    """One instrumented run: wall seconds, seconds inside the GEMMs, and their FLOPs."""

    seconds: float
    gemm_seconds: float  # summed over the threads that ran GEMMs
    flops: float
    result: object

    @property
    def outside(self) -> float:
        """The share of the wall time outside the GEMMs (for a run whose GEMMs are on one thread)."""
        return 1 - self.gemm_seconds / self.seconds

    def floor(self, gflops: float) -> float:
        """Seconds the same GEMM work takes at ``gflops`` (one large GEMM's rate): the fp32 floor."""
        return self.flops / gflops / 1e9


def gemm_work(fn) -> Work:
    """``fn()`` timed, with the time and FLOPs of its ``Linear`` GEMMs and unembeddings (the rows
    each call is given, before padding to a row bucket), on every thread."""
    from density_nb.method import arch as arch_module
    from density_nb.method.linear import Linear

    lock, spent, flops = threading.Lock(), [0.0], [0.0]
    call, logits = Linear.__call__, arch_module.Arch.logits

    def counted(method):  # x: [..., d_in] -> [..., d_out], its time and FLOPs added up
        def wrapper(self, x):
            start = time.perf_counter()
            out = method(self, x)
            with lock:
                spent[0] += time.perf_counter() - start
                flops[0] += 2.0 * x.numel() * out.shape[-1]  # rows · d_in · d_out multiply-adds
            return out

        return wrapper

    Linear.__call__, arch_module.Arch.logits = counted(call), counted(logits)
    try:
        total, result = timed(fn)
    finally:
        Linear.__call__, arch_module.Arch.logits = call, logits
    return Work(total, spent[0], flops[0], result)


def paragraph(model, n_tokens: int = 77) -> str:
    """A paragraph of ``n_tokens`` tokens (WikiText when the corpus is there)."""
    return model.density_nb_tokenizer.decode(tokenize(model, passage(80))[0][:n_tokens])


def gemma_first_load() -> float:
    """Seconds for load_model("gemma3-270m") with an empty cache, in a fresh process."""
    with tempfile.TemporaryDirectory() as cache:
        code = "import time; t = time.perf_counter(); from density_nb.models import load_model; load_model('gemma3-270m'); print(time.perf_counter() - t)"
        out = subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, "DENSITY_NB_CACHE": cache}, capture_output=True, text=True, check=True
        )
        return float(out.stdout.split()[-1])


def refine_cost(model, n_texts: int = 6) -> None:
    """What the required sizes by bisection (``refine=True``, docs/method.md §5) add to the last-token trace on
    the paper grid, over several 40-word passages (each warmed once: a new batch shape's first pass is slower),
    for each relative tolerance; the aim was under +50 %."""
    try:
        from density_nb.corpus.sources import passages

        texts = [str(t) for t in passages(n=n_texts, words=40)["prompt"]]
    except Exception:
        texts = [" ".join((QUICKSTART_TEXT + " " + QUICKSTART_TEXT).split()[i : i + 40]) for i in range(n_texts)]
    print(
        f"\n2b. Required sizes by bisection: last-token trace, paper grid, {len(texts)} passages of 40 words (load {os.getloadavg()[0]:.1f})"
    )
    for rtol in (0.05, 0.02, 0.0):
        plain = refined = 0.0
        for text in texts:
            trace(model, text, roots="last", grid="paper", refine=True, refine_rtol=rtol, progress=False)  # warm this text's shapes
            plain += timed(lambda text=text: trace(model, text, roots="last", grid="paper", progress=False), repeat=3)[0]
            refined += timed(
                lambda text=text, rtol=rtol: trace(model, text, roots="last", grid="paper", refine=True, refine_rtol=rtol, progress=False),
                repeat=3,
            )[0]
        print(f"   refine_rtol {rtol:4.2f}: {plain:6.2f} s -> {refined:6.2f} s, +{100 * (refined / plain - 1):.0f} % (aim < +50 %)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the reference run and the paper-grid strip")
    parser.add_argument("--gemma", action="store_true", help="also time Gemma-3's first load from a fresh cache (minutes)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    model = load_model("smollm2-135m")
    trace(model, "warm up the compiled code", roots="last", grid="paper", progress=False)
    gemm = matmul_gflops()
    print(
        f"One large GEMM runs at {gemm:.0f} GFLOP/s here. Each run's 'GEMM floor' below is its own GEMM work at that "
        "rate: no exact float32 implementation of the same passes runs faster on this CPU."
    )
    para = paragraph(model)
    n_para = len(tokenize(model, para)[0])
    print(f"\n1. Token strip: a {n_para}-token paragraph, all roots (load average {os.getloadavg()[0]:.1f})")
    for grid, target in (("fast", 10), ("paper", 30))[: 1 if args.quick else 2]:
        work = gemm_work(lambda grid=grid: trace(model, para, roots="all", grid=grid, progress=False))
        print(
            f"   {grid:5s} grid: {len(work.result.roots)} roots in {work.seconds:6.2f} s (target <= {target} s; "
            f"before {BEFORE['strip ' + grid]} s); GEMM work {work.flops / 1e12:.2f} TFLOP, GEMM floor {work.floor(gemm):.1f} s"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # before reference.py runs (its graphs are larger)
    print(f"   peak RSS of this process so far {peak:.2f} GiB (target <= 2.5 GiB; before {BEFORE['peak RSS GiB']} GiB)")
    start = time.perf_counter()
    elapsed = [(time.perf_counter() - start, len(partial.roots)) for partial in trace_steps(model, para, roots="all", grid="fast")]
    print(
        f"   shown as it fills (trace_steps): first root after {elapsed[0][0]:.2f} s (target < 1 s), "
        f"{elapsed[1][1]} after {elapsed[1][0]:.2f} s, all {elapsed[-1][1]} after {elapsed[-1][0]:.2f} s"
    )
    start = time.perf_counter()
    steps = trace_steps(model, para, roots="all", grid="fast")
    partial = [next(steps) for _ in range(3)][-1]
    cancel = time.perf_counter()
    steps.close()  # cancel: what was shown stays valid, the passes in flight stop within a layer
    print(
        f"   cancelled after 3 updates ({cancel - start:.2f} s): {len(partial.roots)} roots kept, "
        f"the cancel took {time.perf_counter() - cancel:.3f} s"
    )

    text = passage(40)
    ids, _ = tokenize(model, text)
    print(f"\n2. Last-token trace, paper grid ({len(PAPER_GRID)} strata), SmolLM2, {len(text.split())} words = {len(ids)} tokens")
    t_fast, _ = timed(lambda: trace(model, text, roots="last", grid="paper", progress=False), repeat=3)
    work = gemm_work(lambda: trace(model, text, roots="last", grid="paper", progress=False))
    print(
        f"   fast path        {t_fast:8.2f} s   (GEMM work {work.flops / 1e9:.1f} GFLOP -> {work.flops / 1e9 / t_fast:.0f} GFLOP/s "
        f"end to end; GEMM floor {work.floor(gemm):.2f} s)"
    )
    print(f"   outside GEMMs    {work.outside:8.0%}     (before: {BEFORE['outside GEMMs']:.0%})")
    if not args.quick:
        t_ref, _ = timed(lambda: reference.trace_root(model, ids.tolist(), len(ids) - 1, list(PAPER_GRID)))
        print(f"   reference.py     {t_ref:8.2f} s")
        print(
            f"   speed-up         {t_ref / t_fast:8.1f} x   (target >= 28x; before {BEFORE['speed-up']:.0f}x; "
            f"{t_ref / work.floor(gemm):.0f}x if nothing but the GEMMs ran, at the floor)"
        )

    refine_cost(model)

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

    if args.gemma:
        print(
            f"\n4. Gemma-3-270M, first load from a fresh cache: {gemma_first_load():.0f} s (target < 30 s, or once at setup; before {BEFORE['gemma first load']:.0f} s)"
        )


if __name__ == "__main__":
    main()
