"""Distribution metrics (TV, KL, top-1, ν, entropy, loss) and per-root density numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

NU_LEVELS = (0.01, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.99)
LOG_S_MIN = -5.0  # the area runs over log10 s from 1e-5 to 1


@dataclass
class Metrics:
    """How K subgraph distributions compare with the full model's; each field is [K]."""

    tv: np.ndarray  # total variation distance
    kl: np.ndarray  # KL(full ‖ subgraph), nats
    top1: np.ndarray  # bool: same top-1 token as the full model
    nu: np.ndarray  # shared nucleus level, percent
    entropy: np.ndarray  # the subgraph distribution's entropy, nats
    loss: np.ndarray  # -log p(actual next token), nats; NaN where the text ends


def distribution_metrics(full_logits: torch.Tensor, logits: torch.Tensor, target: int | None) -> Metrics:
    """Compare subgraph distributions with the full model's, all in float32.

    full_logits: [V]; logits: [K, V]; target: the actual next token id or None.
    """
    import torch

    logp_full = torch.log_softmax(full_logits.float(), dim=-1)  # [V]
    logp = torch.log_softmax(logits.float(), dim=-1)  # [K, V]
    p_full, p = logp_full.exp(), logp.exp()
    tv = 0.5 * (p - p_full).abs().sum(-1)  # [K]
    kl = (p_full * (logp_full - logp)).sum(-1).clamp_min(0.0)  # [K]
    top1 = logits.argmax(-1) == full_logits.argmax(-1)  # [K]
    entropy = -(p * logp).sum(-1)  # [K]
    loss = -logp[:, target] if target is not None else torch.full_like(tv, float("nan"))
    return Metrics(
        tv=tv.double().numpy(),
        kl=kl.double().numpy(),
        top1=top1.numpy(),
        nu=shared_nucleus(p_full, p),
        entropy=entropy.double().numpy(),
        loss=loss.double().numpy(),
    )


def shared_nucleus(p_full: torch.Tensor, p: torch.Tensor, levels: tuple[float, ...] = NU_LEVELS) -> np.ndarray:
    """ν: the largest level q for which the ordered top-q nuclei (each including the token that
    crosses q) of the full and subgraph distributions are identical; 0 when none is.

    p_full: [V]; p: [K, V]. Returns [K] in percent.
    """
    import torch

    n_max = 64  # nuclei longer than this are compared as unequal (they never are at these levels in practice)
    top_full = torch.topk(p_full, min(n_max, p_full.numel()))
    top = torch.topk(p, min(n_max, p.shape[-1]), dim=-1)
    out = np.zeros(p.shape[0])
    for q in levels:
        n_full = int((top_full.values.cumsum(0) < q).sum()) + 1
        n_sub = (top.values.cumsum(-1) < q).sum(-1) + 1  # [K]
        for k in range(p.shape[0]):
            n = int(n_sub[k])
            if n == n_full and n <= n_max and torch.equal(top.indices[k, :n], top_full.indices[:n]):
                out[k] = 100 * q
    return out


def auc_log(sizes: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area of ``values`` over log10(sizes), from 1e-5 to 1 (the full graph, value 0).

    sizes: nominal grid sizes, increasing, last == 1. Sizes below 1e-5 are clipped to it; a grid
    that starts above 1e-5 is extended down to it with its first value held constant.
    """
    x = np.log10(np.clip(np.asarray(sizes, dtype=np.float64), 10**LOG_S_MIN, 1.0))
    y = np.asarray(values, dtype=np.float64)
    if x[0] > LOG_S_MIN:
        x, y = np.concatenate([[LOG_S_MIN], x]), np.concatenate([y[:1], y])
    return float(np.trapezoid(y, x))


def smallest_agreeing(sizes: np.ndarray, top1: np.ndarray) -> tuple[float, float]:
    """``s_top1`` (first size agreeing with the full top-1) and ``s_top1_stable`` (agreement from
    there on for every larger size). NaN when no size agrees (never the case with the full graph last)."""
    top1 = np.asarray(top1, dtype=bool)
    first = np.flatnonzero(top1)
    s_first = float(sizes[first[0]]) if first.size else float("nan")
    disagree = np.flatnonzero(~top1)
    stable_idx = disagree[-1] + 1 if disagree.size else 0
    s_stable = float(sizes[stable_idx]) if stable_idx < len(sizes) else float("nan")
    return s_first, s_stable
