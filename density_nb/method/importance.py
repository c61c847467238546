"""Edge weights of the s-Trace graph for every root position of a text, from one cached forward.

Graph (docs/method.md §1): node (g, t) is a residual state; g = 2l+1 after layer l's attention, g = 2l+2
after its MLP. In-edges of (2l+1, t): one attention edge per (head h, source s ≤ t) and the
residual-attention edge; of (2l+2, t): the MLP edge and the residual-MLP edge. A parallel block
(docs/method.md §9.1) has one node per layer and position, (2l+2, t), whose in-edges are the
attention edges, the residual edge and the MLP edge.

Weights (docs/method.md §2) are normalised per target node, so they do not depend on the root. Attention
edge norms factorise, ``||A[h,t,s] · γ ⊙ u_{h,s} / rms_t||_1 = A[h,t,s] · ||γ ⊙ u_{h,s}||_1 / rms_t``
with ``u_{h,s} = W_O^h v_s + b_O / H``, so nothing of shape [T, T, H, d] is ever built (except, for
``ifr``, one target row at a time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from density_nb.config import WEIGHTINGS, Weighting
from density_nb.errors import TraceInputError
from density_nb.method.arch import Arch


@dataclass
class EdgeWeights:
    """Per-text edge weights (float32) and what the masked passes reuse from the full run."""

    attn: np.ndarray  # [L, H, T, T] weight of attention edge (l, h, target t, source s); 0 for s > t
    res_attn: np.ndarray  # [L, T] residual-attention edge into (2l+1, t) (parallel blocks: the residual edge into (2l+2, t))
    mlp: np.ndarray  # [L, T] MLP edge into (2l+2, t)
    res_mlp: np.ndarray  # [L, T] residual-MLP edge into (2l+2, t) (parallel blocks: none, 0)
    final: torch.Tensor  # [T, d] final residual state of the unmasked model (``Arch.logits`` of it: its logits)
    attn_inv_rms: torch.Tensor  # [L, T] 1/rms of the raw attention output (post-norm models; else ones)
    mlp_inv_rms: torch.Tensor  # [L, T] 1/rms of the raw MLP output (post-norm models; else ones)
    parallel: bool = False  # the graph of parallel blocks: one node per layer (docs/method.md §9.1)


@dataclass
class _Layer:
    """What one layer of the cached forward gives us, for T positions."""

    x: torch.Tensor  # [T, d] resid_pre
    h: torch.Tensor  # [T, d] resid_pre + the attention output (resid_mid of a sequential block)
    pattern: torch.Tensor  # [H, T, T]
    head_out: torch.Tensor  # [H, T, d] γ ⊙ u_{h,s}, u = W_O^h v_{h,s} + b_O / H, per head and source s (γ = 1 without a post-norm)
    attn_inv: torch.Tensor  # [T] 1/rms of the raw o_proj output for post-norm models, else ones
    mlp: torch.Tensor  # [T, d] MLP branch output as added to the stream (after post-norm)
    mlp_inv: torch.Tensor  # [T] 1/rms of the raw MLP output for post-norm models, else ones
    out: torch.Tensor  # [T, d] resid_post


@dataclass
class _Node:
    """The in-edges of one node slot g at every position: the attention edges (factorised: the
    vector of edge (h, t, s) is ``pattern[h,t,s] · head_out[h,s] · inv[t]``), then whole-vector edges
    in key order; ``state`` is what they sum to."""

    attn: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # pattern [H, T, T], head_out [H, T, d], inv [T]
    vectors: list[torch.Tensor]  # [T, d] each
    state: torch.Tensor  # [T, d]


@torch.no_grad()
def cached_layers(bridge: Any, token_ids: torch.Tensor) -> tuple[list[_Layer], torch.Tensor, Arch]:
    """One unmasked forward that keeps what the weights need -> per-layer cache, final state [T, d], Arch.

    No unembedding: callers take logits only where they need them (``arch.logits(final[roots])``)."""
    arch = Arch.of(bridge.original_model)
    n_pos = len(token_ids)
    x = arch.embed(token_ids)  # [T, d] (+ learned positions)
    layers = []
    for layer in arch.layers:
        cos, sin = arch.rope(layer, n_pos)  # [T, hd], [T, rot]
        q = arch.queries(layer, x, cos, sin)  # [T, H, hd]
        k, v = arch.keys_values(layer, x, cos, sin)  # [T, KV, hd]
        probs = arch.pattern(q[None], k[None], arch.attention_bias(layer, n_pos))[0]  # [H, T, T]
        attn_raw = layer.o(arch.mix(probs[None], v[None])[0].flatten(1))  # [T, d]
        if layer.o_bias is not None:
            attn_raw = attn_raw + layer.o_bias
        h = x + arch.post_norm(attn_raw, layer.post_attn_norm, None)  # [T, d]
        mlp_raw = arch.mlp(layer, x if arch.parallel else h)  # [T, d]: a parallel block's MLP reads its input
        f = arch.post_norm(mlp_raw, layer.post_mlp_norm, None)  # [T, d]
        v_heads = v.float().repeat_interleave(arch.n_heads // arch.n_kv_heads, dim=1).transpose(0, 1)  # [H, T, hd]
        w_o = layer.o_w.float().view(arch.d_model, arch.n_heads, arch.head_dim).permute(1, 2, 0)  # [H, hd, d]
        head_out = torch.matmul(v_heads, w_o)  # [H, T, d]
        if layer.o_bias is not None:  # b_O rides on the attention edges, b_O / H per head (docs/method.md §9.2)
            head_out = head_out + layer.o_bias.float() / arch.n_heads
        ones = torch.ones(n_pos, device=x.device)
        if layer.post_attn_norm is not None:
            head_out = head_out * layer.post_attn_norm.gain
        attn_inv = ones if layer.post_attn_norm is None else layer.post_attn_norm.inv_scale(attn_raw)[:, 0]
        mlp_inv = ones if layer.post_mlp_norm is None else layer.post_mlp_norm.inv_scale(mlp_raw)[:, 0]
        layers.append(
            _Layer(
                x=x.float(), h=h.float(), pattern=probs.float(), head_out=head_out,
                attn_inv=attn_inv, mlp=f.float(), mlp_inv=mlp_inv, out=(h + f).float(),
            )
        )  # fmt: skip
        x = h + f
    return layers, x, arch


def _nodes(arch: Arch, layer: _Layer, last: bool) -> list[_Node]:
    """The layer's nodes with their in-edges: the attention node and the MLP node, or a parallel
    block's one node. Into the root (the last layer's output node) every vector goes through the
    final norm linearised at each position (docs/method.md §2, §9.3)."""
    inv = arch.final_norm.inv_scale(layer.out) if last else None  # [T, 1]

    def root(v: torch.Tensor) -> torch.Tensor:  # [T, d] -> the same through the linearised final norm
        return v if inv is None else arch.final_norm.linearised(v, inv)

    attn = (layer.pattern, layer.head_out, layer.attn_inv)
    if arch.parallel:
        if inv is not None:  # J_t(A·u) = A · (γ ⊙ centred(u)) / σ_t: a source table and a per-target factor
            attn = (
                layer.pattern,
                arch.final_norm.linearised(layer.head_out, torch.ones(1, device=layer.head_out.device)),
                layer.attn_inv * inv[:, 0],
            )
        return [_Node(attn, [root(layer.x), root(layer.mlp)], root(layer.out))]
    return [_Node(attn, [layer.x], layer.h), _Node(None, [root(layer.mlp), root(layer.h)], root(layer.out))]


def _attention_vectors(attn: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Σ over a node's attention edges at every target: [T, d]."""
    pattern, head_out, inv = attn
    return torch.einsum("hts,hsd->td", pattern, head_out) * inv[:, None]


@torch.no_grad()
def in_edge_sums(bridge: Any, token_ids: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Per layer, the sum of each node's in-edge vectors, rebuilt from the factorised pieces:
    {"attn_node": [T, d] (= resid_mid; sequential blocks only), "out_node": [T, d] (= resid_post;
    for the last layer the final-normed state minus the final norm's bias)}. Tests compare these
    with TransformerLens's cache of the real run."""
    layers, _, arch = cached_layers(bridge, token_ids)
    out = []
    for index, layer in enumerate(layers):
        nodes = _nodes(arch, layer, index == arch.n_layers - 1)
        sums = [torch.stack(node.vectors).sum(0) + (0 if node.attn is None else _attention_vectors(node.attn)) for node in nodes]
        out.append({"out_node": sums[-1]} | ({"attn_node": sums[0]} if len(sums) == 2 else {}))
    return out


def _l1(x: torch.Tensor) -> torch.Tensor:
    """||x||_1 over the last axis."""
    return torch.linalg.vector_norm(x, ord=1, dim=-1)


def _normalise(attn: torch.Tensor | None, others: list[torch.Tensor]) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """Normalise one node's scores per target: attention [H, T, T] (or None) with the others [T] each."""
    total = others[0] if attn is None else attn.sum(dim=(0, 2)) + others[0]  # [T]
    for other in others[1:]:
        total = total + other
    total = torch.where(total > 0, total, torch.ones_like(total))
    return None if attn is None else attn / total[None, :, None], [other / total for other in others]


def _ifr_shift(*scores: torch.Tensor) -> list[torch.Tensor]:
    """IFR proximity: add |min| over one node's in-edges (published, unclamped) so scores are ≥ 0.

    Each score tensor has the target position first: [T, ...]; non-edges must be +inf.
    """
    low = torch.stack([sc.reshape(sc.shape[0], -1).amin(-1) for sc in scores]).amin(0)  # [T]
    return [sc + low.abs().view(-1, *([1] * (sc.dim() - 1))) for sc in scores]


def _l1_scores(node: _Node) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """||v_e||_1 of each in-edge: attention [H, T, T] by the factorisation, the others [T]."""
    attn = None
    if node.attn is not None:
        pattern, head_out, inv = node.attn
        attn = pattern.cpu() * _l1(head_out).cpu()[:, None, :] * inv.cpu()[None, :, None]  # [H, T, T]
    return attn, [_l1(v).cpu() for v in node.vectors]


def _ifr_scores(node: _Node) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
    """p_e = ||y||_1 - ||y - v_e||_1 (y: the node's state), shifted by |min| over the node's in-edges;
    the attention edges one target row at a time. In float64: p_e of a small edge is the difference
    of two nearly equal norms."""
    y = node.state.double()  # [T, d]
    others = [(_l1(y) - _l1(y - v.double())).cpu() for v in node.vectors]  # [T] each
    if node.attn is None:
        return None, _ifr_shift(*others)
    pattern, head_out, inv = node.attn
    n_heads, n_pos = pattern.shape[:2]
    attn = torch.full((n_heads, n_pos, n_pos), float("inf"), dtype=torch.float64)  # non-edges (s > t) stay +inf through the shift
    for t in range(n_pos):
        vec = pattern[:, t, : t + 1, None].double() * head_out[:, : t + 1] * inv[t]  # [H, t+1, d]
        attn[:, t, : t + 1] = (_l1(y[t]) - _l1(y[t] - vec)).cpu()
    shifted = _ifr_shift(attn.permute(1, 0, 2), *others)
    causal = torch.ones(n_pos, n_pos).tril().bool()  # [T, T]
    return torch.where(causal, shifted[0].permute(1, 0, 2), 0.0), shifted[1:]


@torch.no_grad()
def edge_weights(bridge: Any, token_ids: torch.Tensor, weighting: Weighting = "l1", seed: int = 0) -> EdgeWeights:
    """Weights of every edge of the text's graph (all roots), from one cached forward."""
    if weighting not in WEIGHTINGS:
        raise TraceInputError(f"Unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}.")
    layers, final, arch = cached_layers(bridge, token_ids)
    n_pos = len(token_ids)
    if weighting == "random":
        rand = random_weights(arch.n_layers, arch.n_heads, n_pos, seed, parallel=arch.parallel)
        rand.final = final
        return rand
    scores = _l1_scores if weighting == "l1" else _ifr_scores
    attn_w, ra_w, mlp_w, rm_w = [], [], [], []
    for index, layer in enumerate(layers):
        weights = [_normalise(*scores(node)) for node in _nodes(arch, layer, index == arch.n_layers - 1)]
        if arch.parallel:  # one node: attention, residual, MLP
            ((attn, (ra, mlp)),) = weights
            rm = torch.zeros(n_pos)
        else:  # the attention node (attention, residual-attention), the MLP node (MLP, residual-MLP)
            (attn, (ra,)), (_, (mlp, rm)) = weights
        assert attn is not None
        attn_w.append(attn)
        ra_w.append(ra)
        mlp_w.append(mlp)
        rm_w.append(rm)
    ones = torch.ones(arch.n_layers, n_pos)
    is_post = arch.layers[0].post_attn_norm is not None
    return EdgeWeights(
        attn=torch.stack(attn_w).float().numpy(),
        res_attn=torch.stack(ra_w).float().numpy(),
        mlp=torch.stack(mlp_w).float().numpy(),
        res_mlp=torch.stack(rm_w).float().numpy(),
        final=final,
        attn_inv_rms=torch.stack([layer.attn_inv.cpu() for layer in layers]) if is_post else ones,
        mlp_inv_rms=torch.stack([layer.mlp_inv.cpu() for layer in layers]) if is_post else ones,
        parallel=arch.parallel,
    )


def random_weights(n_layers: int, n_heads: int, n_pos: int, seed: int = 0, parallel: bool = False) -> EdgeWeights:
    """U(0, 1) weights (no forward pass): best-first expansion under them grows random connected
    subgraphs by the same rules as the traced ones (the like-for-like baseline). ``parallel``: the
    graph of parallel blocks (no residual-MLP edges)."""
    gen = torch.Generator().manual_seed(seed)
    causal = torch.ones(n_pos, n_pos).tril()  # [T, T]
    ones = torch.ones(n_layers, n_pos)
    return EdgeWeights(
        attn=(torch.rand(n_layers, n_heads, n_pos, n_pos, generator=gen) * causal).numpy(),
        res_attn=torch.rand(n_layers, n_pos, generator=gen).numpy(),
        mlp=torch.rand(n_layers, n_pos, generator=gen).numpy(),
        res_mlp=(torch.rand(n_layers, n_pos, generator=gen) * (not parallel)).numpy(),
        final=torch.empty(0),
        attn_inv_rms=ones,
        mlp_inv_rms=ones,
        parallel=parallel,
    )
