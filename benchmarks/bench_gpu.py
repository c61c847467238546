"""GPU corpus throughput: passages per second for SmolLM2 on the paper grid, and the batch that fills the device.

    python benchmarks/bench_gpu.py [--passages 256] [--words 40] [--dtype bfloat16] [--device cuda]

Each passage is traced as a corpus run traces it (``trace_passages``: prompt + " " + next word, the
root at the prompt's last token, 26 sizes + the full graph). Two knobs set how much work one masked
pass holds: how many passages are traced together (their roots share masked passes) and
``max_rows`` (strata × roots × positions per pass). The script sweeps both, times each setting
after a warm-up, records the peak device memory, and prints passages per second and the setting
that fills the device: the fastest one whose peak stays under 90 % of the device's memory. Before
the sweep it checks the device path against the CPU float32 path on a few passages (max TV of the
subgraphs' distributions). No asserts: numbers only. Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import time

import torch

from density_nb.config import TraceConfig
from density_nb.corpus.passages import trace_passages
from density_nb.examples import QUICKSTART_TEXT
from density_nb.models import load_model

MODEL = "smollm2-135m"


def rows(n: int, words: int) -> list[tuple[int, str, str]]:
    """(passage_id, prompt, next word) from WikiText-2 when the corpus is there, else the project's own text."""
    try:
        from density_nb.corpus.sources import passages

        df = passages(n, words=words)
        return [(int(r.passage_id), r.prompt, r.next_word) for r in df.itertuples()]
    except Exception:
        tokens = (QUICKSTART_TEXT + " ") * 4
        text = tokens.split()
        return [(i, " ".join(text[i % 7 : i % 7 + words]), text[i % 7 + words]) for i in range(n)]


def agreement(cpu: object, device: object, sample: list[tuple[int, str, str]], config: TraceConfig) -> float:
    """Max |TV(device) − TV(cpu)| over every stratum of the sample's passages."""
    a = trace_passages(cpu, sample, config, words=None)
    b = trace_passages(device, sample, config, words=None)
    return max(float((x[1]["tv"] - y[1]["tv"]).abs().max()) for x, y in zip(a, b))


def timed_run(bridge: object, work: list[tuple[int, str, str]], batch: int, config: TraceConfig, device: str) -> tuple[float, float]:
    """(passages per second, peak memory in GiB) for the work traced ``batch`` passages at a time."""
    trace_passages(bridge, work[:batch], config, words=None)  # warm-up: kernels for this shape
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for i in range(0, len(work), batch):
        trace_passages(bridge, work[i : i + batch], config, words=None)
    torch.cuda.synchronize(device)
    return len(work) / (time.perf_counter() - start), torch.cuda.max_memory_allocated(device) / 2**30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=256)
    ap.add_argument("--words", type=int, default=40)
    ap.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    ap.add_argument("--max-rows", type=int, nargs="+", default=[4096, 16384, 65536, 262144])
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("No CUDA device: run this on a GPU machine.")
    dtype = getattr(torch, args.dtype)
    total = torch.cuda.get_device_properties(args.device).total_memory / 2**30
    print(f"{torch.cuda.get_device_name(args.device)}, {total:.0f} GiB; torch {torch.__version__}; {MODEL} in {args.dtype}")
    bridge = load_model(MODEL, device=args.device, dtype=dtype)
    work = rows(args.passages, args.words)
    config = TraceConfig(grid="paper")
    print(
        f"CPU float32 vs {args.device} {args.dtype}: max |ΔTV| over 4 passages' strata {agreement(load_model(MODEL), bridge, work[:4], config):.2e}"
    )
    print(f"\n{len(work)} passages of {args.words} words, paper grid\n  batch  max_rows  passages/s  peak GiB")
    results = []
    for max_rows in args.max_rows:
        for batch in args.batches:
            try:
                rate, peak = timed_run(bridge, work, batch, config.replace(max_rows=max_rows), args.device)
            except torch.cuda.OutOfMemoryError:
                print(f"  {batch:5d}  {max_rows:8d}  out of memory")
                torch.cuda.empty_cache()
                continue
            results.append((rate, batch, max_rows, peak))
            print(f"  {batch:5d}  {max_rows:8d}  {rate:10.1f}  {peak:8.1f}")
    fitting = [r for r in results if r[3] <= 0.9 * total]
    if fitting:
        rate, batch, max_rows, peak = max(fitting)
        print(
            f"\nfills the device: {batch} passages at a time, max_rows={max_rows}: {rate:.1f} passages/s, peak {peak:.1f} of {total:.0f} GiB"
        )


if __name__ == "__main__":
    main()
