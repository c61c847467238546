"""What one corpus passage costs, for docs/scale.md: measured on this CPU, and what follows for a GPU and a 7B model.

    python benchmarks/bench_scale.py [--passages 6] [--words 40] [--models smollm2-135m gemma3-270m]

Each passage is traced as a Ray worker traces it (``trace_passage``: prompt + " " + next word, the root at the
prompt's end, the paper grid) on one torch thread, after a warm-up passage. Measured per passage: wall time
(= core-seconds), the GEMM work and its time (``bench_core.gemm_work``: every ``Linear`` and the unembedding),
the time in ``stratify`` (numba, always on the CPU), the prompt's tokens and the graph's edges, and the
bytes that cross the network on Ray: the task's arguments and its result (pickled, as Ray sends them), and
the parquet bytes the run store writes. The 7B row is derived, not measured: Llama-2-7B's shapes scale the
SmolLM2 measurements (GEMM work by FLOPs per token row and per unembedding, stratification by edges per
token pair, bytes by heads and layers). GPU rates are estimates from the GEMM work at an assumed achieved
rate (``--gpu-tflops``), bounded by the CPU cores a GPU's workers have for stratification (``--cores-per-gpu``).
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from density_nb.config import TraceConfig
from density_nb.corpus.passages import trace_passage
from density_nb.method import pipeline
from density_nb.models import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmarks beside this one
from bench_core import gemm_work, matmul_gflops
from bench_gpu import rows as gpu_rows

LLAMA2_7B = {"layers": 32, "heads": 32, "kv_heads": 32, "d": 4096, "d_ff": 11008, "vocab": 32000, "mlp_mats": 3}
SHAPES = {"smollm2-135m": {"layers": 30, "heads": 9, "kv_heads": 3, "d": 576, "d_ff": 1536, "vocab": 49152, "mlp_mats": 3}}  # its HF config


def row_flops(s: dict[str, int]) -> float:
    """FLOPs of one token row through every layer's projections and MLP."""
    hd = s["d"] // s["heads"]
    attn = s["d"] * (s["heads"] * hd) * 2 + s["d"] * (s["kv_heads"] * hd) * 2  # q, o; k, v
    return 2.0 * s["layers"] * (attn + s["mlp_mats"] * s["d"] * s["d_ff"])


@dataclass
class Cost:
    seconds: float
    cpu_seconds: float  # CPU time of this process (one thread): what a core spends, whatever else runs
    gemm_seconds: float
    linear_flops: float
    logits_flops: float
    stratify_seconds: float
    tokens: float
    edges: float
    task_bytes: float
    result_bytes: float
    summary_bytes: float
    curves_bytes: float
    parquet_bytes: float


def rows(n: int, words: int) -> list[tuple[int, str, str]]:
    return gpu_rows(n + 1, words)


def parquet_size(df) -> int:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getbuffer().nbytes


def measure(model: str, n: int, words: int) -> Cost:
    torch.set_num_threads(1)
    bridge = load_model(model)
    work = rows(n, words)
    config = TraceConfig(grid="paper")
    kwargs = {"config": config, "words": words}
    trace_passage(bridge, *work[0], **kwargs)  # warm-up: numba, packed weights
    from density_nb.method import arch as arch_module

    logits_flops, strat = [0.0], [0.0]
    lock = threading.Lock()
    real_logits, real_stratify = arch_module.Arch.logits, pipeline.stratify

    def logits(self, x):
        out = real_logits(self, x)
        with lock:
            logits_flops[0] += 2.0 * x.numel() * out.shape[-1]
        return out

    def stratify(*args, **kw):
        t0 = time.perf_counter()
        out = real_stratify(*args, **kw)
        strat[0] += time.perf_counter() - t0
        return out

    arch_module.Arch.logits, pipeline.stratify = logits, stratify
    try:
        results = []
        cpu = time.process_time()
        w = gemm_work(lambda: [results.append(trace_passage(bridge, *row, **kwargs)) for row in work[1:]])
        cpu = time.process_time() - cpu
    finally:
        arch_module.Arch.logits, pipeline.stratify = real_logits, real_stratify
    summaries = [s for s, _ in results]
    curves = [c for _, c in results]
    task = statistics.mean(len(pickle.dumps((*row, kwargs), protocol=5)) for row in work[1:])
    result = statistics.mean(len(pickle.dumps((row[0], s, c), protocol=5)) for row, (s, c) in zip(work[1:], results))
    return Cost(
        seconds=w.seconds / n,
        cpu_seconds=cpu / n,
        gemm_seconds=w.gemm_seconds / n,
        linear_flops=(w.flops - logits_flops[0]) / n,
        logits_flops=logits_flops[0] / n,
        stratify_seconds=strat[0] / n,
        tokens=statistics.mean(float(s["n_tokens"].iloc[0]) for s in summaries),
        edges=statistics.mean(float(s["total_edges"].iloc[0]) for s in summaries),
        task_bytes=task,
        result_bytes=result,
        summary_bytes=statistics.mean(len(pickle.dumps(s, protocol=5)) for s in summaries),
        curves_bytes=statistics.mean(len(pickle.dumps(c, protocol=5)) for c in curves),
        parquet_bytes=statistics.mean(parquet_size(s) + parquet_size(c) for s, c in results),
    )


def driver_cost(result: bytes, shard_size: int, n: int = 300) -> float:
    """Seconds the driver spends per passage on a Ray run: unpickle one result, then the run store's ``add``
    (shards of ``shard_size``, written to a temp dir, merges included)."""
    from density_nb.corpus.store import ShardWriter, new_manifest

    with tempfile.TemporaryDirectory() as folder:
        writer = ShardWriter(Path(folder), new_manifest({}, {}, []), shard_size)
        t0 = time.perf_counter()
        for pid in range(n):
            _, summary, curves = pickle.loads(result)
            writer.add(pid, summary.assign(passage_id=pid), curves.assign(passage_id=pid))
        writer.flush()
        return (time.perf_counter() - t0) / n


def as_7b(c: Cost) -> Cost:
    """SmolLM2's measured passage scaled to Llama-2-7B's shapes (same text, same tokens: an estimate)."""
    smol = SHAPES["smollm2-135m"]
    flops = row_flops(LLAMA2_7B) / row_flops(smol)
    logits = (LLAMA2_7B["d"] * LLAMA2_7B["vocab"]) / (smol["d"] * smol["vocab"])
    edges = (LLAMA2_7B["layers"] * LLAMA2_7B["heads"]) / (smol["layers"] * smol["heads"])
    heads = edges  # per-stratum head shares: one float per (layer, head)
    linear, logit = c.linear_flops * flops, c.logits_flops * logits
    other = c.seconds - c.gemm_seconds - c.stratify_seconds  # masks, attention, metrics: grows with heads x tokens^2
    return Cost(
        seconds=(linear + logit) / (c.linear_flops + c.logits_flops) * c.gemm_seconds + c.stratify_seconds * edges + other * edges,
        cpu_seconds=c.cpu_seconds
        * ((linear + logit) / (c.linear_flops + c.logits_flops) * c.gemm_seconds + (c.seconds - c.gemm_seconds) * edges)
        / c.seconds,
        gemm_seconds=(linear + logit) / (c.linear_flops + c.logits_flops) * c.gemm_seconds,
        linear_flops=linear,
        logits_flops=logit,
        stratify_seconds=c.stratify_seconds * edges,
        tokens=c.tokens,
        edges=c.edges * edges,
        task_bytes=c.task_bytes,
        result_bytes=c.summary_bytes + c.curves_bytes * (0.2 + 0.8 * heads),  # most of the curves' bytes are head shares
        summary_bytes=c.summary_bytes,
        curves_bytes=c.curves_bytes * (0.2 + 0.8 * heads),
        parquet_bytes=c.parquet_bytes * (0.2 + 0.8 * heads),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=6)
    ap.add_argument("--words", type=int, default=40)
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--gpu-tflops", type=float, default=200.0, help="achieved bf16 GEMM rate assumed for a GPU (H100: ~990 peak)")
    ap.add_argument("--cores-per-gpu", type=int, default=8, help="CPU cores a GPU's workers have for stratification")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.2f}; one large fp32 GEMM on one thread: {matmul_gflops():.0f} GFLOP/s here")
    costs = {m: measure(m, args.passages, args.words) for m in args.models}
    first = args.models[0]
    bridge = load_model(first)
    row = rows(1, args.words)[0]
    result = pickle.dumps((row[0], *trace_passage(bridge, *row, config=TraceConfig(grid="paper"), words=args.words)), protocol=5)
    driver = {size: driver_cost(result, size) for size in (1, 10, 100)}
    if "smollm2-135m" in costs:
        costs["llama-2-7b (derived)"] = as_7b(costs["smollm2-135m"])
    print(f"load average {os.getloadavg()[0]:.2f}; {args.passages} passages of {args.words} words, paper grid, one thread\n")
    head = f"{'model':22s} {'s/passage':>9s} {'CPU s':>6s} {'GEMM s':>7s} {'strat s':>7s} {'GFLOP':>7s} {'logits%':>7s} {'tokens':>6s} {'edges':>9s}"
    print(head + f" {'task B':>7s} {'result B':>9s} {'parquet B':>9s} {'/s/core':>8s} {'/s/GPU':>7s}")
    for name, c in costs.items():
        flops = c.linear_flops + c.logits_flops
        gpu = min(args.gpu_tflops * 1e12 / flops, args.cores_per_gpu / max(c.stratify_seconds, 1e-9))
        print(
            f"{name:22s} {c.seconds:9.2f} {c.cpu_seconds:6.2f} {c.gemm_seconds:7.2f} {c.stratify_seconds:7.2f} {flops / 1e9:7.0f} "
            f"{100 * c.logits_flops / flops:6.0f}% {c.tokens:6.0f} {c.edges:9.0f} {c.task_bytes:7.0f} {c.result_bytes:9.0f} "
            f"{c.parquet_bytes:9.0f} {1 / c.cpu_seconds:8.3f} {gpu:7.1f}"
        )
    print(
        f"\n/s/GPU: min(GEMM work at {args.gpu_tflops:.0f} TFLOP/s achieved, {args.cores_per_gpu} cores of stratification), an estimate. "
        "/s/core: 1 / CPU s. Result bytes: summary + curves pickled as Ray sends them."
    )
    print(
        f"driver, per {first} passage (unpickle + run store, load average {os.getloadavg()[0]:.2f}): "
        + ", ".join(f"shards of {k}: {1e3 * v:.1f} ms ({1 / v:.0f} passages/s)" for k, v in driver.items())
    )


if __name__ == "__main__":
    main()
