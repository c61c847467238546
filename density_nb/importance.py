"""Edge weights of the s-Trace graph for every root position of a text, from one cached forward.

Graph (docs/method.md §1): node (g, t) is a residual state; g = 2l+1 after layer l's attention, g = 2l+2
after its MLP. In-edges of (2l+1, t): one attention edge per (head h, source s ≤ t) and the
residual-attention edge; of (2l+2, t): the MLP edge and the residual-MLP edge.

Weights (docs/method.md §2) are normalised per target node, so they do not depend on the root. Attention
edge norms factorise, ``||A[h,t,s] · γ ⊙ W_O^h v_s / rms_t||_1 = A[h,t,s] · ||γ ⊙ W_O^h v_s||_1 / rms_t``,
so nothing of shape [T, T, H, d] is ever built (except, for ``ifr``, one target row at a time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from density_nb.arch import Arch
from density_nb.config import WEIGHTINGS, Weighting
from density_nb.errors import TraceInputError


@dataclass
class EdgeWeights:
    """Per-text edge weights (float32) and what the masked passes reuse from the full run."""

    attn: np.ndarray  # [L, H, T, T] weight of attention edge (l, h, target t, source s); 0 for s > t
    res_attn: np.ndarray  # [L, T] residual-attention edge into (2l+1, t)
    mlp: np.ndarray  # [L, T] MLP edge into (2l+2, t)
    res_mlp: np.ndarray  # [L, T] residual-MLP edge into (2l+2, t)
    final: torch.Tensor  # [T, d] final residual state of the unmasked model (``Arch.logits`` of it: its logits)
    attn_inv_rms: torch.Tensor  # [L, T] 1/rms of the raw attention output (post-norm models; else ones)
    mlp_inv_rms: torch.Tensor  # [L, T] 1/rms of the raw MLP output (post-norm models; else ones)


@dataclass
class _Layer:
    """What one layer of the cached forward gives us, for T positions."""

    x: torch.Tensor  # [T, d] resid_pre
    h: torch.Tensor  # [T, d] resid_mid
    pattern: torch.Tensor  # [H, T, T]
    head_out: torch.Tensor  # [H, T, d] γ ⊙ u_{h,s}, u = W_O^h v_{h,s} + b_O / H, per head and source s (γ = 1 without a post-norm)
    attn_inv: torch.Tensor  # [T] 1/rms of the raw o_proj output for post-norm models, else ones
    mlp: torch.Tensor  # [T, d] MLP branch output as added to the stream (after post-norm)
    mlp_inv: torch.Tensor  # [T] 1/rms of the raw MLP output for post-norm models, else ones
    out: torch.Tensor  # [T, d] resid_post


@torch.no_grad()
def cached_layers(bridge: Any, token_ids: torch.Tensor) -> tuple[list[_Layer], torch.Tensor, Arch]:
    """One unmasked forward that keeps what the weights need -> per-layer cache, final state [T, d], Arch.

    No unembedding: callers take logits only where they need them (``arch.logits(final[roots])``)."""
    arch = Arch.of(bridge.original_model)
    n_pos = len(token_ids)
    x = arch.embed(token_ids)  # [T, d] (+ learned positions)
    layers = []
    for layer in arch.layers:
        cos, sin = arch.rope(layer, n_pos)  # [T, hd]
        q = arch.queries(layer, x, cos, sin)  # [T, H, hd]
        k, v = arch.keys_values(layer, x, cos, sin)  # [T, KV, hd]
        probs = arch.pattern(q[None], k[None], arch.attention_bias(layer, n_pos))[0]  # [H, T, T]
        attn_raw = layer.o(arch.mix(probs[None], v[None])[0].flatten(1))  # [T, d]
        if layer.o_bias is not None:
            attn_raw = attn_raw + layer.o_bias
        h = x + arch.post_norm(attn_raw, layer.post_attn_norm, None)  # [T, d]
        mlp_raw = arch.mlp(layer, h)  # [T, d]
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


def _final_linear(arch: Arch, last: _Layer, vectors: torch.Tensor) -> torch.Tensor:
    """Edge vectors [T, d] into the root mapped through the final norm linearised at each position:
    γ_f ⊙ centred(v) / σ(x_L) (RMSNorm: no centring); β_f is on no edge (docs/method.md §9.3)."""
    return arch.final_norm.linearised(vectors, arch.final_norm.inv_scale(last.out))


@torch.no_grad()
def in_edge_sums(bridge: Any, token_ids: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Per layer, the sum of each node's in-edge vectors, rebuilt from the factorised pieces:
    {"attn_node": [T, d] (= resid_mid), "mlp_node": [T, d] (= resid_post; for the last layer the
    final-normed state minus the final norm's bias)}. Tests compare these with TransformerLens's
    cache of the real run."""
    layers, _, arch = cached_layers(bridge, token_ids)
    out = []
    for index, layer in enumerate(layers):
        attn_edges = torch.einsum("hts,hsd->td", layer.pattern, layer.head_out) * layer.attn_inv[:, None]  # [T, d]
        h, f = (_final_linear(arch, layer, v) for v in (layer.h, layer.mlp)) if index == arch.n_layers - 1 else (layer.h, layer.mlp)
        out.append({"attn_node": layer.x + attn_edges, "mlp_node": h + f})
    return out


def _l1(x: torch.Tensor) -> torch.Tensor:
    """||x||_1 over the last axis."""
    return torch.linalg.vector_norm(x, ord=1, dim=-1)


def _normalise(attn: torch.Tensor, resid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise scores per target node: attn [H, T, T] with resid [T] (attention nodes)."""
    total = attn.sum(dim=(0, 2)) + resid  # [T]
    total = torch.where(total > 0, total, torch.ones_like(total))
    return attn / total[None, :, None], resid / total


def _normalise_pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    total = a + b
    total = torch.where(total > 0, total, torch.ones_like(total))
    return a / total, b / total


def _ifr_shift(*scores: torch.Tensor) -> list[torch.Tensor]:
    """IFR proximity: add |min| over one node's in-edges (published, unclamped) so scores are ≥ 0.

    Each score tensor has the target position first: [T, ...]; non-edges must be +inf.
    """
    low = torch.stack([sc.reshape(sc.shape[0], -1).amin(-1) for sc in scores]).amin(0)  # [T]
    return [sc + low.abs().view(-1, *([1] * (sc.dim() - 1))) for sc in scores]


@torch.no_grad()
def edge_weights(bridge: Any, token_ids: torch.Tensor, weighting: Weighting = "l1", seed: int = 0) -> EdgeWeights:
    """Weights of every edge of the text's graph (all roots), from one cached forward."""
    if weighting not in WEIGHTINGS:
        raise TraceInputError(f"Unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}.")
    layers, final, arch = cached_layers(bridge, token_ids)
    n_pos = len(token_ids)
    causal = torch.ones(n_pos, n_pos).tril().bool()  # [T, T]
    if weighting == "random":
        rand = random_weights(arch.n_layers, arch.n_heads, n_pos, seed)
        rand.final = final
        return rand
    attn_w, ra_w, mlp_w, rm_w = [], [], [], []
    for index, layer in enumerate(layers):
        last = index == arch.n_layers - 1
        if last:  # the last layer's MLP and residual-MLP edges go through the linearised final norm
            h_vec, f_vec = _final_linear(arch, layer, layer.h), _final_linear(arch, layer, layer.mlp)  # [T, d] each
        else:
            h_vec, f_vec = layer.h, layer.mlp
        if weighting == "l1":
            head_norm = _l1(layer.head_out)  # [H, T(source)]
            attn = layer.pattern.cpu() * head_norm.cpu()[:, None, :] * layer.attn_inv.cpu()[None, :, None]  # [H, T, T]
            attn, ra = _normalise(attn, _l1(layer.x).cpu())
            mlp, rm = _normalise_pair(_l1(f_vec).cpu(), _l1(h_vec).cpu())
        else:  # ifr: p_e = ||y||_1 - ||y - v_e||_1, one target row at a time
            attn = torch.zeros(arch.n_heads, n_pos, n_pos)
            y_attn = layer.h  # [T, d] state of the attention node
            for t in range(n_pos):
                vec = layer.pattern[:, t, : t + 1, None] * layer.head_out[:, : t + 1] * layer.attn_inv[t]  # [H, t+1, d]
                attn[:, t, : t + 1] = (y_attn[t].abs().sum() - (y_attn[t] - vec).abs().sum(-1)).cpu()
            ra = (y_attn.abs().sum(-1) - (y_attn - layer.x).abs().sum(-1)).cpu()
            attn = torch.where(causal, attn, float("inf"))
            attn_shifted, ra = _ifr_shift(attn.permute(1, 0, 2), ra)
            attn = torch.where(causal, attn_shifted.permute(1, 0, 2), 0.0)
            attn, ra = _normalise(attn, ra)
            y_mlp = h_vec + f_vec  # [T, d]
            mlp = (y_mlp.abs().sum(-1) - (y_mlp - f_vec).abs().sum(-1)).cpu()
            rm = (y_mlp.abs().sum(-1) - (y_mlp - h_vec).abs().sum(-1)).cpu()
            mlp, rm = _ifr_shift(mlp, rm)
            mlp, rm = _normalise_pair(mlp, rm)
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
    )


def random_weights(n_layers: int, n_heads: int, n_pos: int, seed: int = 0) -> EdgeWeights:
    """U(0, 1) weights (no forward pass): best-first expansion under them grows random connected
    subgraphs by the same rules as the traced ones (the like-for-like baseline)."""
    gen = torch.Generator().manual_seed(seed)
    causal = torch.ones(n_pos, n_pos).tril()  # [T, T]
    ones = torch.ones(n_layers, n_pos)
    return EdgeWeights(
        attn=(torch.rand(n_layers, n_heads, n_pos, n_pos, generator=gen) * causal).numpy(),
        res_attn=torch.rand(n_layers, n_pos, generator=gen).numpy(),
        mlp=torch.rand(n_layers, n_pos, generator=gen).numpy(),
        res_mlp=torch.rand(n_layers, n_pos, generator=gen).numpy(),
        final=torch.empty(0),
        attn_inv_rms=ones,
        mlp_inv_rms=ones,
    )
