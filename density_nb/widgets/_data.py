"""Compact, JSON-ready data for the widgets (numpy only — no torch here)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DATA_VERSION = 1


def sig4(values: Any) -> Any:
    """Round to 4 significant digits; NaN/inf become ``None`` (JSON has no NaN). Keeps nesting."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        x = float(arr)
        return float(f"{x:.4g}") if math.isfinite(x) else None
    return [sig4(v) for v in arr]


def _ints(values: Any) -> list:
    return np.asarray(values, dtype=np.int64).tolist()


def _bits(rows: Any) -> list[str]:
    """Boolean rows as '0'/'1' strings (compact and JSON-safe)."""
    arr = np.asarray(rows, dtype=bool)
    return ["".join("1" if b else "0" for b in row) for row in arr]


def compact_data(result: Any) -> dict[str, Any]:
    """Everything the browser needs except head/MLP shares (see ``share_bytes``)."""
    r_count = len(result.roots)
    top_text = list(result.top_text_full) if result.top_text_full else [""] * r_count
    data: dict[str, Any] = {
        "v": DATA_VERSION,
        "model": str(result.model),
        "tokens": [str(t) for t in result.tokens],
        "roots": _ints(result.roots),
        "grid": sig4(result.grid),
        "n_layers": int(result.n_layers),
        "n_heads": int(result.n_heads),
        "density": sig4(result.density),
        "s_top1": sig4(result.s_top1),
        "entropy": sig4(result.entropy_full),
        "top_token": [str(t) for t in top_text],
        "top_prob": sig4(result.top_prob_full),
        "total_edges": _ints(result.total_edges),
        "n_edges": _ints(result.n_edges),
        "tv": sig4(result.tv),
        "kl": sig4(result.kl),
        "top1": _bits(result.top1),
    }
    if result.tv_random is not None:
        data["tv_random"] = sig4(result.tv_random)
    if result.kl_random is not None:
        data["kl_random"] = sig4(result.kl_random)
    return data


def share_bytes(result: Any) -> bytes:
    """Head and MLP shares as uint8 percent, C order ``[R, K, L, H + 1]`` (column H is the MLP)."""
    head = np.asarray(result.head_share, dtype=np.float64)
    mlp = np.asarray(result.mlp_share, dtype=np.float64)
    both = np.concatenate([head, mlp[..., None]], axis=-1)
    both = np.nan_to_num(both, nan=0.0)
    return np.clip(np.rint(both * 100.0), 0, 100).astype(np.uint8).tobytes()


def decode_shares(buf: bytes, r_count: int, k_count: int, n_layers: int, n_heads: int) -> np.ndarray:
    """Inverse of ``share_bytes`` (percent, ``[R, K, L, H + 1]``)."""
    return np.frombuffer(buf, dtype=np.uint8).reshape(r_count, k_count, n_layers, n_heads + 1)
