"""Corpus throughput: run_corpus (local, and Ray with 1 vs 2 workers) vs reference.trace_root.

40-word WikiText-2 passages, paper grid (26 sizes + full), SmolLM2-135M on CPU, root = the prompt's
last token (text = prompt + " " + next word). The reference is slow (~20 s a passage), so it runs
on the first few passages only; the ratio compares seconds per passage. Model loading and a
warm-up (JIT, kernels) are outside the local timing; Ray timings include starting the
workers and loading the model in each, as a user sees them. No asserts: numbers only.

    python benchmarks/bench_corpus.py [--passages 8] [--reference 5] [--no-ray] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import tempfile
import time
from pathlib import Path

import torch

from density_nb.corpus.passages import trace_passage, trace_passages
from density_nb.corpus.runner import run_corpus
from density_nb.corpus.sources import passages
from density_nb.method import reference
from density_nb.method.inputs import tokenize
from density_nb.models import load_model

MODEL = "smollm2-135m"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=8, help="passages for the fast path and Ray runs")
    ap.add_argument("--reference", type=int, default=5, help="passages for reference.trace_root")
    ap.add_argument("--words", type=int, default=40)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile one passage of the fast path")
    args = ap.parse_args()

    print(f"cpus={os.cpu_count()} torch threads={torch.get_num_threads()} load average at start: {load()}")
    bridge = load_model(MODEL)
    df = passages(args.passages, words=args.words)
    tmp = Path(tempfile.mkdtemp(prefix="bench_corpus-"))
    rows: list[tuple[str, int, float]] = []
    try:
        # warm-up (numba JIT; oneDNN kernels for the row counts of one passage and of a batch of 4), not timed
        for batch in (1, 4):
            trace_passages(bridge, [(int(r.passage_id), r.prompt, r.next_word) for r in df.iloc[:batch].itertuples()], words=args.words)
        n_tokens = [len(tokenize(bridge, p + " " + w)[0]) for p, w in zip(df.prompt, df.next_word)]
        print(
            f"{len(df)} passages of {args.words} words: {min(n_tokens)}-{max(n_tokens)} tokens (mean {sum(n_tokens) / len(n_tokens):.0f})"
        )

        # fast path through run_corpus (shards, manifest and all); everything is warm by now
        n_threads = torch.get_num_threads()
        configs = [
            (1, n_threads, 1),
            (1, n_threads, 4),
            (2, max(1, n_threads // 2), 1),
        ]  # (workers, torch threads, batch); the last is the default
        for workers, threads, batch in configs:
            t0 = time.perf_counter()
            run_corpus(
                bridge,
                tmp / f"local{workers}-{threads}-{batch}",
                n_passages=args.passages,
                words=args.words,
                grid="paper",
                progress=False,
                workers=workers,
                threads=threads,
                batch=batch,
            )
            rows.append(
                (f"run_corpus local, {workers} worker(s) x {threads} thread(s), batch {batch}", args.passages, time.perf_counter() - t0)
            )

        # reference (torch's default threads): one float64 forward + networkx stratification + one masked pass per stratum
        t0 = time.perf_counter()
        ref = df.iloc[: args.reference]
        for p, w in zip(ref.prompt, ref.next_word):
            prompt_ids = tokenize(bridge, p)[0]
            ids = tokenize(bridge, p + " " + w)[0]
            reference.trace_root(bridge, ids, len(prompt_ids) - 1, reference.PAPER_SIZES)
        ref_s = time.perf_counter() - t0
        rows.append(("reference.trace_root (float64)", len(ref), ref_s))
        # the machine's speed drifts: the default configuration again, after the reference
        workers, threads, batch = configs[-1]
        t0 = time.perf_counter()
        run_corpus(
            bridge,
            tmp / "local-default-again",
            n_passages=args.passages,
            words=args.words,
            grid="paper",
            progress=False,
            workers=workers,
            threads=threads,
            batch=batch,
        )
        rows.append(
            (f"run_corpus local, {workers} worker(s) x {threads} thread(s), batch {batch}, again", args.passages, time.perf_counter() - t0)
        )

        if not args.no_ray:
            try:
                import ray
            except ImportError:
                print("ray not installed: skipping the Ray rows (pip install 'density_nb[ray]')")
            else:
                for workers, threads in ((1, 2), (2, 1)):
                    ray.init(num_cpus=max(workers, 2), include_dashboard=False, object_store_memory=100 * 1024**2, log_to_driver=False)
                    try:
                        t0 = time.perf_counter()
                        run_corpus(
                            MODEL,
                            tmp / f"ray{workers}-{threads}",
                            n_passages=args.passages,
                            words=args.words,
                            grid="paper",
                            backend="ray",
                            workers=workers,
                            threads=threads,
                            progress=False,
                        )
                        rows.append(
                            (
                                f"run_corpus ray, {workers} worker(s) x {threads} thread(s), incl. start",
                                args.passages,
                                time.perf_counter() - t0,
                            )
                        )
                    finally:
                        ray.shutdown()

        if args.profile:
            row = df.iloc[0]
            prof = cProfile.Profile()
            prof.enable()
            trace_passage(bridge, int(row.passage_id), row.prompt, row.next_word, words=args.words, grid="paper")
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
            print(out.getvalue())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nload average at end: {load()}")
    _ref_name, ref_n, ref_s = next(r for r in rows if r[0].startswith("reference"))
    ref_per = ref_s / ref_n
    print(f"{'run':<64} {'passages':>8} {'s':>8} {'s/passage':>10} {'passages/min':>13} {'x reference':>12}")
    for name, n, secs in rows:
        per = secs / n
        print(f"{name:<64} {n:>8} {secs:>8.1f} {per:>10.2f} {60 / per:>13.1f} {ref_per / per:>12.1f}")
    default = [secs / n for name, n, secs in rows if name.startswith("run_corpus local, 2 worker")]
    if len(default) == 2:
        print(
            f"\ndefault configuration, runs before and after the reference: {ref_per / (sum(default) / 2):.1f}x the reference (target >= 20x)"
        )


if __name__ == "__main__":
    main()
