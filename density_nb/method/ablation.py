"""Masked forward passes (docs/method.md §4, zero ablation), many subgraphs on the batch axis.

Each batch row b is one subgraph of one root: it keeps the edges whose rank (from ``stratify``) is
below ``n_keep[b]``. Roots may come from different texts (each root has its own token ids). Per layer and position:

    o_t = Σ_h W_O^h Σ_s keep[h,t,s] · A[h,t,s] · v_s + m_t · b_O   A: softmax of the masked stream, no renormalisation;
                                                             m_t = (1/H) Σ_{h,s} keep · A, the kept attention mass
    h_t = keep_ra[t] · x_t + post_attn_norm(o_t)            (post-norms: Gemma, OLMo-2; live or frozen)
    x'_t = keep_rm[t] · h_t + keep_mlp[t] · post_mlp_norm(MLP(mlp_norm(h_t)))
    parallel blocks (docs/method.md §9.1): x'_t = keep_ra[t] · x_t + o_t + keep_mlp[t] · MLP(mlp_norm(x_t))

Norms are recomputed live on the masked stream (``norms="live"``); ``norms="frozen"`` holds the
post-norms at the full run's per-position scale. Work follows the subgraph: queries, the output
projection and the MLP run only on (row, position) pairs whose node has a kept in-edge; attention
only in rows with such a node, with keys and values only up to its last one and only where the state
is non-zero (everywhere when biases or LayerNorm's β make a zero state's keys non-zero); the residual
stream is updated in place on those rows alone (every other row stays exactly zero); logits only at
each row's root.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from density_nb.errors import TraceInputError
from density_nb.method.arch import Arch
from density_nb.method.linear import bucket
from density_nb.method.stratify import Ranks


class PassStopped(Exception):
    """A masked pass was stopped between two layers (its caller asked, see ``masked_logits``'s ``stop``)."""


@dataclass
class RankBatch:
    """Edge ranks of Rb roots, padded to P positions (-1 = never kept, and beyond each root)."""

    attn: torch.Tensor  # [Rb, L, H, P, P] int32 (target, source)
    res_attn: torch.Tensor  # [Rb, L, P] int32
    mlp: torch.Tensor  # [Rb, L, P] int32
    res_mlp: torch.Tensor  # [Rb, L, P] int32
    roots: torch.Tensor  # [Rb] int64 root positions

    @classmethod
    def stack(cls, ranks: Sequence[Ranks], n_pos: int) -> RankBatch:
        """The ranks of several roots (root = last position of each), padded with -1 to n_pos positions."""

        def pad(a: np.ndarray, dims: int) -> torch.Tensor:
            width = [(0, 0)] * (a.ndim - dims) + [(0, n_pos - a.shape[-1])] * dims
            return torch.from_numpy(np.pad(a, width, constant_values=-1))

        return cls(
            attn=torch.stack([pad(r.attn, 2) for r in ranks]),
            res_attn=torch.stack([pad(r.res_attn, 1) for r in ranks]),
            mlp=torch.stack([pad(r.mlp, 1) for r in ranks]),
            res_mlp=torch.stack([pad(r.res_mlp, 1) for r in ranks]),
            roots=torch.tensor([r.attn.shape[-1] - 1 for r in ranks]),
        )


def full_ranks(n_layers: int, n_heads: int, n_pos: int, parallel: bool = False) -> RankBatch:
    """Ranks under which every edge of every node up to position n_pos - 1 is kept (n_keep ≥ 1);
    ``parallel``: the graph of parallel blocks, which has no residual-MLP edges."""
    return RankBatch(
        attn=torch.zeros(1, n_layers, n_heads, n_pos, n_pos, dtype=torch.int32),
        res_attn=torch.zeros(1, n_layers, n_pos, dtype=torch.int32),
        mlp=torch.zeros(1, n_layers, n_pos, dtype=torch.int32),
        res_mlp=torch.full((1, n_layers, n_pos), -1 if parallel else 0, dtype=torch.int32),
        roots=torch.tensor([n_pos - 1]),
    )


def _never_last(ranks: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Ranks with never-taken edges (-1) moved past every stratum: kept in row b <=> rank < n_keep[b]."""
    return torch.where(ranks >= 0, ranks, torch.iinfo(torch.int32).max).to(device)


@dataclass
class _Rows:
    """What a batch's B rows keep, every layer at once; a row's nodes are its P positions, flattened
    into [B*P] with each row's P together."""

    n_rows: int
    n_pos: int
    pos: torch.Tensor  # [P] 0..P-1
    root_pos: torch.Tensor  # [B] each row's root position
    in_prefix: torch.Tensor  # [B, P] positions up to each row's root
    keep_ra: torch.Tensor  # [B, L, P] residual-attention edges kept
    keep_mlp: torch.Tensor  # [B, L, P] MLP edges kept
    keep_rm: torch.Tensor  # [B, L, P] residual-MLP edges kept
    target: torch.Tensor  # [B, L, P] attention nodes with a kept in-edge
    attn_r: torch.Tensor  # [Rb, L, H, P, P] attention ranks, never-taken last
    row_root: torch.Tensor  # [B]
    n_keep: torch.Tensor  # [B]
    inv: torch.Tensor  # [B] inverted rows
    grouped: bool  # rows laid out root after root, the same number each (as ``trace`` builds them)
    any_inv: bool

    def dropped(self, index: int, rows: torch.Tensor) -> torch.Tensor:
        """[nb, H, P, P] the attention edges of layer ``index`` that rows ``rows`` do not keep."""
        n_roots = self.attn_r.shape[0]
        if self.grouped:  # each root's ranks compared once against its rows' sizes
            drop = self.attn_r[:, index, None] >= self.n_keep.view(n_roots, self.n_rows // n_roots, 1, 1, 1)  # [Rb, B/Rb, H, P, P]
            drop = drop.view(self.n_rows, *drop.shape[2:])[rows]
        else:
            drop = self.attn_r[self.row_root[rows], index] >= self.n_keep[rows].view(-1, 1, 1, 1)
        return drop ^ self.inv[rows].view(-1, 1, 1, 1) if self.any_inv else drop


def _rows(
    ranks: RankBatch,
    row_root: torch.Tensor,
    n_keep: torch.Tensor,
    invert: torch.Tensor | None,
    keep_residual: torch.Tensor | None,
    dev: torch.device,
) -> _Rows:
    """Which nodes keep which in-edges in each row (kept: rank < n_keep; inverted rows: the opposite)."""
    n_pos, n_rows = ranks.attn.shape[-1], row_root.shape[0]
    pos = torch.arange(n_pos, device=dev)
    root_pos = ranks.roots.to(dev)[row_root]  # [B]
    in_prefix = pos[None, :] <= root_pos[:, None]  # [B, P]
    attn_r = _never_last(ranks.attn, dev)  # [Rb, L, H, P, P]
    no = torch.zeros(n_rows, dtype=torch.bool, device=dev)
    inv = no if invert is None else invert.to(dev)  # [B]
    res = (no if keep_residual is None else keep_residual.to(dev)).view(-1, 1, 1) & in_prefix[:, None]  # [B, 1, P]
    n3, inv3 = n_keep.view(-1, 1, 1), inv.view(-1, 1, 1)  # [B, 1, 1]

    def kept(r: torch.Tensor) -> torch.Tensor:  # ranks [Rb, L, P] -> [B, L, P] kept, inside each row's prefix
        return ((_never_last(r, dev)[row_root] < n3) ^ inv3) & in_prefix[:, None]

    first_attn = attn_r.amin(dim=(2, 4))[row_root]  # [B, L, P] first-taken in-edge of each attention node
    n_roots = attn_r.shape[0]
    per_root = n_rows // n_roots
    grouped = n_rows == per_root * n_roots and torch.equal(row_root, torch.arange(n_roots, device=dev).repeat_interleave(per_root))
    return _Rows(
        n_rows=n_rows,
        n_pos=n_pos,
        pos=pos,
        root_pos=root_pos,
        in_prefix=in_prefix,
        keep_ra=kept(ranks.res_attn) | res,
        keep_mlp=kept(ranks.mlp),
        keep_rm=kept(ranks.res_mlp) | res,
        target=torch.where(inv3, in_prefix[:, None], first_attn < n3),
        attn_r=attn_r,
        row_root=row_root,
        n_keep=n_keep,
        inv=inv,
        grouped=grouped,
        any_inv=bool(inv.any()),
    )


def _padded(idx: torch.Tensor, packed: bool) -> torch.Tensor:
    """``idx`` with its last entry repeated up to the packed GEMM's row bucket (the repeats are dropped
    before anything is added up)."""
    return F.pad(idx, (0, bucket(len(idx)) - len(idx)), value=int(idx[-1])) if len(idx) and packed else idx


def _attention(
    arch: Arch, layer: Any, index: int, x: torch.Tensor, b: _Rows, live: torch.Tensor, attn_inv: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The masked attention output ``o`` of layer ``index`` at its target nodes (after the post-norm):
    ``(o [n_q, d], q_idx [n_q] into [B*P], n_q)``; ``x`` is only read. Attention runs only in rows
    with a target, with keys and values only up to its last target."""
    n_pos = b.n_pos
    tgt = b.target[:, index]  # [B, P]
    rows = tgt.any(1).nonzero().squeeze(1)  # [nb]
    last = torch.where(tgt[rows], b.pos, -1).amax(1)  # [nb]
    sources = (b.in_prefix if layer.kv_of_zero else live)[rows] & (b.pos[None, :] <= last[:, None])  # [nb, P]
    kv_c = _padded(sources.view(-1).nonzero().squeeze(1), arch.packed)  # into [nb*P]
    q_c = _padded(tgt[rows].view(-1).nonzero().squeeze(1), arch.packed)
    kv_idx, q_idx = rows[kv_c // n_pos] * n_pos + kv_c % n_pos, rows[q_c // n_pos] * n_pos + q_c % n_pos  # into [B*P]
    n_q = int(tgt.sum())
    cos, sin = arch.rope(layer, n_pos)  # [P, hd]
    p_kv, p_q = kv_c % n_pos, q_c % n_pos
    k, v = arch.keys_values(layer, x[kv_idx], cos[p_kv], sin[p_kv])  # [n_kv, KV, hd] each
    q = arch.queries(layer, x[q_idx], cos[p_q], sin[p_q])  # [n_q, H, hd]
    n_b = len(rows)
    keys = x.new_zeros(n_b * n_pos, arch.n_kv_heads, arch.head_dim)
    values = x.new_zeros(n_b * n_pos, arch.n_kv_heads, arch.head_dim)
    queries = x.new_zeros(n_b * n_pos, arch.n_heads, arch.head_dim)
    keys[kv_c], values[kv_c], queries[q_c] = k, v, q
    probs = arch.pattern(
        queries.view(n_b, n_pos, arch.n_heads, arch.head_dim),
        keys.view(n_b, n_pos, arch.n_kv_heads, arch.head_dim),
        arch.attention_bias(layer, n_pos),
    )  # [nb, H, P, P]
    z = arch.mix(probs.masked_fill_(b.dropped(index, rows), 0.0), values.view(n_b, n_pos, arch.n_kv_heads, arch.head_dim))  # [nb, P, H, hd]
    o = layer.o(z[q_c // n_pos, p_q].flatten(1))  # [n_q, d]
    if layer.o_bias is not None:  # b_O in proportion to the kept attention mass (docs/method.md §9.2)
        mass = probs.sum(-1).mean(1).view(-1)[q_c]  # [n_q]
        o = o + mass[:, None].to(o.dtype) * layer.o_bias
    return arch.post_norm(o, layer.post_attn_norm, None if attn_inv is None else attn_inv[index, q_idx, None]), q_idx, n_q


def _update(
    arch: Arch,
    layer: Any,
    index: int,
    x: torch.Tensor,
    b: _Rows,
    live: torch.Tensor,
    attn: tuple[torch.Tensor, torch.Tensor, int],
    mlp_inv: torch.Tensor | None,
) -> torch.Tensor:
    """The residual stream after layer ``index``, in place in ``x``: h = keep_ra · x + o, then
    x' = keep_rm · h + MLP (parallel blocks: x' = keep_ra · x + o + MLP(x)). Returns the new ``live``
    ([B, P]: nodes whose state may be non-zero)."""
    o, q_idx, n_q = attn
    m_idx = _padded(b.keep_mlp[:, index].reshape(-1).nonzero().squeeze(1), arch.packed)  # [n_m]
    n_m = int(b.keep_mlp[:, index].sum())
    if arch.parallel:  # one node: residual, attention and MLP edges add up; the MLP reads the block's input
        f = arch.mlp(layer, x[m_idx])  # [n_m, d]
    x.index_fill_(0, (live & ~b.keep_ra[:, index]).view(-1).nonzero().squeeze(1), 0.0)
    x.index_add_(0, q_idx[:n_q], o[:n_q])
    h_live = (live & b.keep_ra[:, index]) | b.target[:, index]  # [B, P]
    if not arch.parallel:
        f = arch.mlp(layer, x[m_idx])  # [n_m, d]
    f = arch.post_norm(f, layer.post_mlp_norm, None if mlp_inv is None else mlp_inv[index, m_idx, None])
    if arch.parallel:
        live = h_live | b.keep_mlp[:, index]
    else:  # x' = keep_rm · h + f, in place
        x.index_fill_(0, (h_live & ~b.keep_rm[:, index]).view(-1).nonzero().squeeze(1), 0.0)
        live = (h_live & b.keep_rm[:, index]) | b.keep_mlp[:, index]
    x.index_add_(0, m_idx[:n_m], f[:n_m])
    return live


@torch.no_grad()
def masked_logits(
    arch: Arch,
    token_ids: torch.Tensor,
    ranks: RankBatch,
    row_root: torch.Tensor,
    n_keep: torch.Tensor,
    attn_inv_rms: torch.Tensor | None = None,
    mlp_inv_rms: torch.Tensor | None = None,
    invert: torch.Tensor | None = None,
    keep_residual: torch.Tensor | None = None,
    stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Logits at each row's root for B masked subgraphs.

    token_ids: [P] (one text for every root) or [Rb, P] (each root's text), at least up to the
    largest root; row_root: [B] index into ``ranks.roots``; n_keep: [B] edges kept per row;
    attn_inv_rms / mlp_inv_rms: full-run post-norm scales, [L, T] (one text) or [Rb, L, T]: given,
    post-norms are frozen at them; None, they are recomputed live.
    invert: [B] bool, rows that keep the attention and MLP edges *outside* their stratum (the
    published inverse baseline); keep_residual: [B] bool, rows that keep every residual edge
    whatever the stratum (the published baselines; inverted rows should set it too); stop: asked
    before each layer, True raises ``PassStopped`` (a cancelled live trace stops within one layer).
    Returns [B, V] float32.
    """
    if arch.parallel and bool((ranks.res_mlp >= 0).any()):
        raise TraceInputError(
            f"These ranks keep residual-MLP edges, which a {arch.model_type} model with parallel blocks does not have: "
            "rank the edges of its own graph (edge_weights, or random_weights(..., parallel=True))."
        )
    dev = arch.device
    b = _rows(ranks, row_root.to(dev), n_keep.to(dev), invert, keep_residual, dev)
    n_rows, n_pos = b.n_rows, b.n_pos

    def per_row(a: torch.Tensor, text_dims: int) -> torch.Tensor:  # one text's [..., T] or [Rb, ..., T] -> [B, ..., P]
        a = a[..., :n_pos].to(dev)
        return a.expand(n_rows, *a.shape) if a.dim() == text_dims else a[b.row_root]

    def per_layer(a: torch.Tensor | None) -> torch.Tensor | None:  # post-norm scales -> [L, B*P]
        return None if a is None else per_row(a, 2).transpose(0, 1).reshape(arch.n_layers, -1)

    attn_inv, mlp_inv = per_layer(attn_inv_rms), per_layer(mlp_inv_rms)  # [L, B*P] each
    row_pos = b.pos.repeat(n_rows)  # [B*P] position of each flattened row
    prefix = b.in_prefix.view(-1).nonzero().squeeze(1)  # [n_prefix]
    x = torch.zeros(n_rows * n_pos, arch.d_model, dtype=arch.dtype, device=dev)  # [B*P, d]: zero outside each row's prefix
    x[prefix] = arch.embed(per_row(token_ids, 1).reshape(-1)[prefix], row_pos[prefix])
    live = b.in_prefix  # [B, P] nodes whose state may be non-zero (elsewhere x is exactly zero)
    for index, layer in enumerate(arch.layers):
        if stop is not None and stop():
            raise PassStopped
        attn = _attention(arch, layer, index, x, b, live, attn_inv)
        live = _update(arch, layer, index, x, b, live, attn, mlp_inv)
    final = x[torch.arange(n_rows, device=dev) * n_pos + b.root_pos]  # [B, d]
    return arch.logits(final)
