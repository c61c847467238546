"""The GEMMs of the masked passes: ``F.linear`` (MKL on CPU) vs ``Linear`` (oneDNN, packed weights).

SmolLM2-135M's layer shapes (random weights of that shape; the cost does not depend on the values)
at several row counts; also how long a row count costs the first time oneDNN meets it, which is
why ``Linear`` pads rows to a multiple of ``ROW_BUCKET``. No asserts: numbers only.

    python benchmarks/bench_linear.py
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F

from density_nb.method.linear import ROW_BUCKET, Linear

D, I, KV = 576, 1536, 192  # SmolLM2-135M: d_model, MLP width, key/value width (3 heads x 64)
SHAPES = {"q / o": (D, D), "k+v": (2 * KV, D), "gate+up": (2 * I, D), "down": (D, I)}


def best_of(fn, repeat: int = 5, number: int = 10) -> float:
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def main() -> None:
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"{'weight':8s} {'rows':>5s} {'F.linear':>10s} {'Linear':>10s} {'ratio':>6s}  max |diff| / max |y|")
    for name, (n_out, n_in) in SHAPES.items():
        weight = torch.randn(n_out, n_in) / n_in**0.5
        packed = Linear(weight)
        for rows in (32, 128, 512, 2048):
            x = torch.randn(rows, n_in)
            flop = 2 * rows * n_in * n_out
            t_mkl = best_of(lambda x=x, weight=weight: F.linear(x, weight))
            t_packed = best_of(lambda x=x, packed=packed: packed(x))
            ref = F.linear(x.double(), weight.double())
            err = (packed(x).double() - ref).abs().max() / ref.abs().max()
            print(
                f"{name:8s} {rows:5d} {flop / t_mkl / 1e9:6.0f} GF/s {flop / t_packed / 1e9:6.0f} GF/s {t_mkl / t_packed:5.2f}x  {err:.1e}"
            )
    weight = torch.randn(2 * I, D)
    packed = Linear(weight)
    x = torch.randn(2048, D)
    fresh, seen = [], []
    for rows in range(301, 701, 7):  # row counts oneDNN has not met yet: first call, then a second
        for times in (fresh, seen):
            start = time.perf_counter()
            torch.ops.mkldnn._linear_pointwise(x[:rows], packed._packed, None, "none", [], "")
            times.append(time.perf_counter() - start)
    print(
        f"\ngate+up, unpadded: a new row count costs {1e3 * (sum(fresh) / len(fresh) - sum(seen) / len(seen)):.1f} ms more than a seen one "
        f"(Linear pads rows to a multiple of {ROW_BUCKET})"
    )


if __name__ == "__main__":
    main()
