"""Compact, JSON-ready data for the widgets (numpy only — no torch here)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from density_nb.views.text import columns, shown
from density_nb.views.theme import LABELS, known_measures

DATA_VERSION = 2
# The baselines a result may hold (result field suffix -> name in the chart's legend)
BASELINE_NAMES: dict[str, str] = LABELS["baselines"]
Decode = Callable[[int], str]


def sig4(values: Any, digits: int = 4) -> Any:
    """Round to 4 (``digits``) significant digits; NaN/inf become ``None`` (JSON has no NaN). Keeps nesting."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        x = float(arr)
        return float(f"{x:.{digits}g}") if math.isfinite(x) else None
    return [sig4(v, digits) for v in arr]


def _ints(values: Any) -> list:
    return np.asarray(values, dtype=np.int64).tolist()


def _bits(rows: Any) -> list[str]:
    """Boolean rows as '0'/'1' strings (compact and JSON-safe)."""
    arr = np.asarray(rows, dtype=bool)
    return ["".join("1" if b else "0" for b in row) for row in arr]


def decoder(tokenizer: Any) -> Decode | None:
    """``id -> text`` from a Hugging Face tokenizer, a ``tokenizers.Tokenizer`` or a loaded model (its tokenizer)."""
    if tokenizer is None:
        return None
    tok = getattr(tokenizer, "density_nb_tokenizer", None) or tokenizer
    if not hasattr(tok, "decode"):
        tok = getattr(tok, "tokenizer", None)
    if tok is None or not hasattr(tok, "decode"):
        raise TypeError(f"tokenizer must have a decode method (a tokenizer or a loaded model), got {type(tokenizer).__name__}.")
    return lambda token: str(tok.decode([int(token)]))


def _vocabulary(result: Any, ids: np.ndarray, decode: Decode | None) -> list[str | None]:
    """Text of each token id in ``ids``: decoded when a tokenizer is given, else what the result
    itself shows for it (its own tokens' pieces, the full model's top-1 text), else None."""
    known: dict[int, str] = {}
    if decode is None:
        for token, piece in zip(np.asarray(result.token_ids).tolist(), result.tokens):
            if piece:
                known.setdefault(int(token), str(piece))
        for token, text in zip(np.asarray(result.top_token_full).tolist(), result.top_text_full or []):
            known.setdefault(int(token), str(text))
    return [decode(int(i)) if decode else known.get(int(i)) for i in ids]


def _topk(result: Any, plateau: np.ndarray, decode: Decode | None) -> dict[str, Any]:
    """Each stratum's and the full model's top-k as indices into a small vocabulary sent once;
    plateau strata (no path from the input: uniform output) send no tokens."""
    sub, full = np.asarray(result.topk_token), np.asarray(result.topk_token_full)  # [R, K, k], [R, k]
    nxt = np.asarray(result.next_token)
    used = np.concatenate([sub[~plateau].ravel(), full.ravel(), nxt[nxt >= 0]])
    vocab = np.unique(used)
    local = {int(t): i for i, t in enumerate(vocab.tolist())}
    sub_prob = np.asarray(result.topk_prob)
    return {
        "k": int(full.shape[-1]),
        "vocab_id": vocab.tolist(),
        "vocab": _vocabulary(result, vocab, decode),
        "next": [local.get(int(t), -1) for t in nxt],
        "sub": [[[] if flat else [local[int(t)] for t in row] for row, flat in zip(rows, flats)] for rows, flats in zip(sub, plateau)],
        "sub_p": [[[] if flat else sig4(row, 3) for row, flat in zip(rows, flats)] for rows, flats in zip(sub_prob, plateau)],
        "full": [[local[int(t)] for t in row] for row in full],
        "full_p": sig4(result.topk_prob_full, 3),
    }


def token_widths(tokens: Any) -> list[int]:
    """Columns each token takes in the strip, with its marks (what lays out its lines, here and in the browser)."""
    return [columns(shown(str(t))) for t in tokens]


def compact_data(result: Any, tokenizer: Any = None) -> dict[str, Any]:
    """Everything the browser needs except head/MLP shares (see ``share_codes``). ``tokenizer``
    (optional) names the top-k tokens; without it they show the text the result holds, or their id."""
    r_count = len(result.roots)
    top_text = list(result.top_text_full) if result.top_text_full else [""] * r_count
    data: dict[str, Any] = {
        "v": DATA_VERSION,
        "model": str(result.model),
        "tokens": [str(t) for t in result.tokens],
        "tw": token_widths(result.tokens),
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
        "baselines": {
            name: {"label": label, "tv": sig4(getattr(result, f"tv_{name}")), "kl": sig4(getattr(result, f"kl_{name}"))}
            for name, label in BASELINE_NAMES.items()
            if getattr(result, f"tv_{name}") is not None and getattr(result, f"kl_{name}") is not None
        },
    }
    summary = result.summary()  # the per-root measures the strip can colour by (the theme's, where present)
    data["measures"] = {m: sig4(summary[m].to_numpy(dtype=np.float64)) for m in known_measures(summary.columns)}
    plateau = np.zeros(np.shape(result.n_edges), dtype=bool)  # [R, K] strata with no path from the input
    if result.input_edges is not None:
        data["input_edges"] = _ints(result.input_edges)
        plateau = np.asarray(result.n_edges) < np.asarray(result.input_edges)[:, None]
    if result.topk_token is not None and result.topk_token_full is not None:
        data["topk"] = _topk(result, plateau, decoder(tokenizer))
    if result.generated is not None:
        data["generated"] = "".join("1" if g else "0" for g in np.asarray(result.generated, dtype=bool))
    return data


# ---- head and MLP shares: one log-coded byte per cell ---------------------------------------------------
def share_floor(result: Any) -> float:
    """The power of ten at or below the smallest nonzero share (at most 1e-2): the bottom of the log code."""
    both = np.concatenate([np.asarray(result.head_share, dtype=np.float64).ravel(), np.asarray(result.mlp_share, dtype=np.float64).ravel()])
    positive = both[both > 0]
    smallest = float(positive.min()) if positive.size else 1e-2
    return float(10.0 ** min(-2, math.floor(math.log10(smallest))))


def encode_shares(shares: Any, floor: float) -> np.ndarray:
    """Shares in [0, 1] as uint8 codes: 0 is none, 255 is all, 1–254 are log-spaced from ``floor`` to 1
    (a share between them is off by at most half a step: 1.8 % for a floor of 1e-4, 2.3 % for 1e-5)."""
    x = np.nan_to_num(np.asarray(shares, dtype=np.float64), nan=0.0)
    span = -math.log10(floor)
    code = 1 + np.rint(253 * (np.log10(np.maximum(x, floor)) + span) / span)
    return np.where(x <= 0, 0, np.where(x >= 1, 255, code)).astype(np.uint8)


def decode_shares(codes: Any, floor: float) -> np.ndarray:
    """Inverse of ``encode_shares`` (shares in [0, 1]); the browser uses the same formula."""
    c = np.asarray(codes, dtype=np.float64)
    value = 10.0 ** (math.log10(floor) * (254 - c) / 253)
    return np.where(c == 0, 0.0, np.where(c == 255, 1.0, value))


def share_codes(result: Any) -> tuple[bytes, float]:
    """Head and MLP shares as log-coded bytes, C order ``[R, K, L, H + 1]`` (column H is the MLP), and the code's floor."""
    floor = share_floor(result)
    both = np.concatenate([np.asarray(result.head_share), np.asarray(result.mlp_share)[..., None]], axis=-1)
    return encode_shares(both, floor).tobytes(), floor
