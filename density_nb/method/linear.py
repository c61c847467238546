"""``Linear``: y = x Wᵀ (+ b) for one or several weights, through oneDNN's pre-packed GEMM on CPU.

On CPU, ``F.linear`` in float32 goes to MKL, which runs well below peak on AMD CPUs with AVX-512
(measured here: 150–190 GFLOP/s on 2 Zen cores); oneDNN with a weight packed once for the CPU's
kernels runs the same GEMM at 330–400 GFLOP/s (``benchmarks/bench_linear.py``). Packing copies the
weight, so ``Arch.of`` packs once per model. Other devices and dtypes, or
``DENSITY_NB_ONEDNN=0``, use ``F.linear``; results agree to float32 rounding either way.

Several weights that read the same input (gate and up, keys and values) are packed as one matrix
and run as one GEMM; ``split`` returns the outputs one by one.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

ROW_BUCKET = 32
ONEDNN_OPS = ("_reorder_linear_weight", "_linear_pointwise")  # private ops: a torch release may drop them


def onednn_available() -> bool:
    """Whether this torch has oneDNN and the private ops the packed GEMM uses (checked at run time,
    so a torch without them falls back to ``F.linear`` instead of failing)."""
    return torch.backends.mkldnn.is_available() and all(hasattr(torch.ops.mkldnn, op) for op in ONEDNN_OPS)


def bucket(n: int) -> int:
    """The row count a packed GEMM of n rows runs at: oneDNN builds (and caches) a kernel per row
    count, 1-2 ms each, so rows are padded to a multiple of ROW_BUCKET (of 8 for few rows) and a
    trace meets a few dozen row counts, not hundreds."""
    return n + -n % (ROW_BUCKET if n > 4 * ROW_BUCKET else 8)


def packing_enabled(weight: torch.Tensor) -> bool:
    """Whether weights like ``weight`` get a oneDNN packed copy (float32 on CPU, oneDNN built in)."""
    return (
        weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and os.environ.get("DENSITY_NB_ONEDNN", "1") != "0"
        and onednn_available()
    )


class Linear:
    """x: [..., d_in] -> [..., Σ d_out_i] for weights W_i: [d_out_i, d_in] and optional biases b_i."""

    def __init__(self, *weights: torch.Tensor, biases: tuple[torch.Tensor | None, ...] | None = None) -> None:
        self.weights = weights
        self.biases = biases or (None,) * len(weights)
        self.sizes = [w.shape[0] for w in weights]
        self._packed: torch.Tensor | None = None
        self._bias: torch.Tensor | None = None
        if packing_enabled(weights[0]):
            weight = torch.cat(weights) if len(weights) > 1 else weights[0]  # [Σ d_out, d_in]
            self._packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)
            if self.has_bias:
                self._bias = torch.cat([weights[0].new_zeros(n) if b is None else b for n, b in zip(self.sizes, self.biases)])

    @property
    def packed(self) -> bool:
        return self._packed is not None

    @property
    def has_bias(self) -> bool:
        return any(b is not None for b in self.biases)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """[..., d_in] -> [..., Σ d_out] (outputs of the weights side by side)."""
        if self._packed is not None:
            if x.shape[-1] != self.weights[0].shape[1]:
                raise ValueError(f"Linear: input has {x.shape[-1]} features, the weight expects {self.weights[0].shape[1]}.")
            rows = x.reshape(-1, x.shape[-1])  # [N, d_in]
            n = rows.shape[0]
            if bucket(n) > n:  # callers that gather their rows can ask for bucket(n) of them and save this copy
                rows = F.pad(rows, (0, 0, 0, bucket(n) - n))
            out = torch.ops.mkldnn._linear_pointwise(rows, self._packed, self._bias, "none", [], "")[:n]
            return out.view(*x.shape[:-1], out.shape[-1])
        outs = [F.linear(x, w, b) for w, b in zip(self.weights, self.biases)]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """[..., d_in] -> one [..., d_out_i] per weight."""
        if self._packed is not None:
            return self(x).split(self.sizes, dim=-1)
        return tuple(F.linear(x, w, b) for w, b in zip(self.weights, self.biases))
