"""A slow, plainly written, obviously-correct implementation of s-Trace (test oracle, speed baseline).

Nothing here is optimised. Every step follows docs/method.md §1–§4 and §9 literally, with the published
attention-mask bug fixed (attention edges really are masked, per head, target and source, after
the softmax). The fast path (importance / stratify / ablation / trace) is tested against this file,
so it deliberately shares no code with it: the only project import is ``density_nb.models``.

Precision: every computation here runs in **float64** (weights are copied from the Hugging Face
module and cast to float64). Distribution metrics are computed from the logits cast to float32, as
the method prescribes. The edge weights are returned as Python floats (from float64).

Layer math is re-implemented with plain torch ops from the HF parameters; the HF forward is never
called (except by the self-tests, to check this file against it).

Graph (docs/method.md §1). Text of T tokens, L layers, H query heads.
  Node (g, t): g = 0 embeddings; g = 2l+1 residual after layer l's attention; g = 2l+2 after its MLP.
  Edge key (kind, layer, target_pos, head, source_pos), compared as int tuples:
    kind 0  attention         (2l, s)   -> (2l+1, t)   key (0, l, t, h, s), s <= t
    kind 1  residual-attention (2l, t)  -> (2l+1, t)   key (1, l, t, 0, t)
    kind 2  MLP               (2l+1, t) -> (2l+2, t)   key (2, l, t, 0, t)
    kind 3  residual-MLP      (2l+1, t) -> (2l+2, t)   key (3, l, t, 0, t)
  Parallel blocks (GPT-NeoX, docs/method.md §9.1): no node 2l+1; kinds 0, 1, 2 run (2l, ·) -> (2l+2, t).
  The functions that take (n_layers, n_heads, root) take ``parallel=True`` for that graph.

Public functions:
  edge_count(n_layers, n_heads, n_positions, parallel=False) -> int
  forward(bridge, token_ids) -> dict                       (unmasked forward, float64 cache)
  unmasked_logits(bridge, token_ids) -> Tensor [T, V]
  edge_vectors(bridge, token_ids) -> dict{node: (keys, vectors [n_in, d], state [d])}
  edge_weights(bridge, token_ids, weighting="l1") -> dict{key: float}
  build_graph(weights, n_layers, n_heads, root) -> networkx.MultiDiGraph
  stratify_weights(weights, n_layers, n_heads, root, sizes) -> (order, n_edges)
  masked_logits(bridge, token_ids, root, kept, norms="live") -> Tensor [V]
  distribution_metrics(full_logits, logits) -> dict(tv, kl, top1)
  trace_root(bridge, token_ids, root, sizes, weighting="l1", norms="live") -> dict
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypedDict, cast

import networkx as nx
import numpy as np
import torch

DTYPE = torch.float64

ATTN, RES_ATTN, MLP, RES_MLP = 0, 1, 2, 3

Key = tuple[int, int, int, int, int]  # edge key (kind, layer, target_pos, head, source_pos)
Node = tuple[int, int]  # graph node (g, t)
TokenIds = Sequence[int] | np.ndarray | torch.Tensor

PAPER_SIZES = (
    1e-5,
    2e-5,
    4e-5,
    8e-5,
    1e-4,
    2e-4,
    4e-4,
    8e-4,
    1e-3,
    1.2e-3,
    1.4e-3,
    2e-3,
    3e-3,
    4e-3,
    6e-3,
    8e-3,
    1e-2,
    2e-2,
    4e-2,
    6e-2,
    8e-2,
    0.1,
    0.2,
    0.4,
    0.6,
    0.8,
    1.0,
)  # the paper-2 grid plus the full graph


# ----------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------


def _hf_model(bridge: Any) -> Any:
    """The Hugging Face causal LM behind a TransformerBridge (or the HF model itself)."""
    return getattr(bridge, "original_model", bridge)


class _LayerWeightsBase(TypedDict):
    q: torch.Tensor  # [H*dh, d]
    k: torch.Tensor  # [KV*dh, d]
    v: torch.Tensor  # [KV*dh, d]
    o: torch.Tensor  # [d, H*dh]
    up: torch.Tensor  # [I, d]
    down: torch.Tensor  # [d, I]
    window: int | None  # sliding window (None: full causal attention)
    scaling: float
    inv_freq: torch.Tensor  # [rot/2] rotary frequencies (the first rot dims of a head rotate)


class _LayerWeights(_LayerWeightsBase, total=False):
    """One layer's float64 weights and settings; the optional ones depend on the family."""

    gate: torch.Tensor  # [I, d]  gated MLPs (all but GPT-2)
    in_norm: torch.Tensor  # [d]  the norm before attention (all but OLMo-2)
    mlp_norm: torch.Tensor  # [d]  the norm before the MLP (all but OLMo-2)
    in_norm_b: torch.Tensor  # [d]  LayerNorm biases (GPT-2)
    mlp_norm_b: torch.Tensor  # [d]
    q_b: torch.Tensor  # [H*dh]  Qwen2, GPT-2
    k_b: torch.Tensor  # [KV*dh]
    v_b: torch.Tensor  # [KV*dh]
    o_b: torch.Tensor  # [d]  GPT-2
    up_b: torch.Tensor  # [I]  GPT-2
    down_b: torch.Tensor  # [d]  GPT-2
    post_attn_norm: torch.Tensor  # [d]  Gemma
    post_ff_norm: torch.Tensor  # [d]  Gemma
    q_norm: torch.Tensor  # [dh]  Gemma-3, Qwen3 (per head); [H*dh] OLMo-2 (all heads at once)
    k_norm: torch.Tensor  # [dh] or [KV*dh]


def _window(cfg: Any, l: int) -> int | None:
    """Layer l's sliding window, from HF's mask rules: Mistral slides on every layer when
    ``sliding_window`` is set; families with ``layer_types`` on their "sliding_attention" layers."""
    kinds = getattr(cfg, "layer_types", None)
    if kinds is None:  # Mistral, Phi-3: every layer
        return getattr(cfg, "sliding_window", None)
    return cfg.sliding_window if kinds[l] == "sliding_attention" else None


def _w(p: torch.Tensor) -> torch.Tensor:
    """A parameter as a float64 copy."""
    return p.detach().to(DTYPE).clone()


def _gpt2_layer(block: Any, cfg: Any, l: int) -> dict[str, Any]:
    """One GPT-2 block. Its Conv1D layers compute x @ W + b with W stored [in, out]."""
    a, mlp, d = block.attn, block.mlp, cfg.n_embd
    qkv, qkv_b = _w(a.c_attn.weight).T, _w(a.c_attn.bias)  # [3d, d], [3d]: queries, keys, values
    scaling = (d // cfg.n_head) ** -0.5 if cfg.scale_attn_weights else 1.0
    if cfg.scale_attn_by_inverse_layer_idx:
        scaling /= l + 1
    return {
        "q": qkv[:d], "k": qkv[d : 2 * d], "v": qkv[2 * d :], "q_b": qkv_b[:d], "k_b": qkv_b[d : 2 * d], "v_b": qkv_b[2 * d :],
        "o": _w(a.c_proj.weight).T, "o_b": _w(a.c_proj.bias),
        "up": _w(mlp.c_fc.weight).T, "up_b": _w(mlp.c_fc.bias), "down": _w(mlp.c_proj.weight).T, "down_b": _w(mlp.c_proj.bias),
        "in_norm": _w(block.ln_1.weight), "in_norm_b": _w(block.ln_1.bias),
        "mlp_norm": _w(block.ln_2.weight), "mlp_norm_b": _w(block.ln_2.bias),
        "window": None, "scaling": scaling, "inv_freq": torch.zeros(0, dtype=DTYPE),  # learned positions, no rotary
    }  # fmt: skip


def _neox_layer(layer: Any, cfg: Any, dh: int) -> dict[str, Any]:
    """One GPT-NeoX layer. ``query_key_value`` computes, per head, [q_h | k_h | v_h] side by side."""
    a, mlp, H = layer.attention, layer.mlp, cfg.num_attention_heads
    qkv, qkv_b = _w(a.query_key_value.weight), _w(a.query_key_value.bias)  # [H*3*dh, d], [H*3*dh]
    rows = [torch.arange(h * 3 * dh, h * 3 * dh + dh) for h in range(H)]  # head h's query rows
    q_rows, k_rows, v_rows = (torch.cat([r + j * dh for r in rows]) for j in range(3))
    return {
        "q": qkv[q_rows], "k": qkv[k_rows], "v": qkv[v_rows], "q_b": qkv_b[q_rows], "k_b": qkv_b[k_rows], "v_b": qkv_b[v_rows],
        "o": _w(a.dense.weight), "o_b": _w(a.dense.bias),
        "up": _w(mlp.dense_h_to_4h.weight), "up_b": _w(mlp.dense_h_to_4h.bias),
        "down": _w(mlp.dense_4h_to_h.weight), "down_b": _w(mlp.dense_4h_to_h.bias),
        "in_norm": _w(layer.input_layernorm.weight), "in_norm_b": _w(layer.input_layernorm.bias),
        "mlp_norm": _w(layer.post_attention_layernorm.weight), "mlp_norm_b": _w(layer.post_attention_layernorm.bias),
        "window": None, "scaling": dh**-0.5, "inv_freq": _inv_freq(cfg.rope_parameters, dh),
    }  # fmt: skip


def _act(name: str, x: torch.Tensor) -> torch.Tensor:
    """The MLP activations, from their formulas."""
    if name == "silu":
        return x * torch.sigmoid(x)
    if name == "gelu":  # exact: x·Φ(x)
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):  # the tanh approximation
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    raise NotImplementedError(f"activation {name!r} is not supported here")


def _projections(layer: Any, cfg: Any, dh: int) -> dict[str, torch.Tensor]:
    """q, k, v, o, gate, up, down [out, in] (and q/k/v biases where present) of one decoder layer."""
    a, mlp = layer.self_attn, layer.mlp
    if cfg.model_type == "phi3":  # fused: rows [queries | keys | values] and [gate | up]
        q_rows, kv_rows = cfg.num_attention_heads * dh, cfg.num_key_value_heads * dh
        q, k, v = _w(a.qkv_proj.weight).split([q_rows, kv_rows, kv_rows])
        gate, up = _w(mlp.gate_up_proj.weight).chunk(2)
        return {"q": q, "k": k, "v": v, "o": _w(a.o_proj.weight), "gate": gate, "up": up, "down": _w(mlp.down_proj.weight)}
    out = {n: _w(getattr(a, f"{n}_proj").weight) for n in "qkvo"}
    out.update({n: _w(getattr(mlp, f"{n}_proj").weight) for n in ("gate", "up", "down")})
    if a.o_proj.bias is not None:
        raise NotImplementedError("reference.py does not handle an o_proj bias here")
    out.update({f"{n}_b": _w(getattr(a, f"{n}_proj").bias) for n in "qkv" if getattr(a, f"{n}_proj").bias is not None})
    return out


class _Params:
    """All weights of the model as float64 tensors, plus the config values the math needs."""

    FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "olmo2", "gemma2", "gemma3_text", "gpt2", "gpt_neox")

    def __init__(self, bridge: Any) -> None:
        hf = _hf_model(bridge)
        cfg = hf.config
        self.model_type: str = cfg.model_type
        if self.model_type not in self.FAMILIES:
            raise NotImplementedError(f"reference.py supports {', '.join(self.FAMILIES)}, not {self.model_type!r}")
        self.gemma = self.model_type in ("gemma2", "gemma3_text")
        self.olmo = self.model_type == "olmo2"
        self.post_norms = self.gemma or self.olmo  # norms after attention and after the MLP
        self.layer_norm = self.model_type in ("gpt2", "gpt_neox")  # LayerNorm (with β) instead of RMSNorm
        self.parallel = bool(getattr(cfg, "use_parallel_residual", False))  # attention and MLP both read x
        self.L: int = cfg.num_hidden_layers
        self.H: int = cfg.num_attention_heads
        self.KV: int = getattr(cfg, "num_key_value_heads", None) or self.H
        self.d: int = cfg.hidden_size
        self.dh: int = getattr(cfg, "head_dim", None) or self.d // self.H
        eps_name = {"gpt2": "layer_norm_epsilon", "gpt_neox": "layer_norm_eps"}.get(self.model_type, "rms_norm_eps")
        self.eps: float = getattr(cfg, eps_name)
        self.act_name: str = next(
            getattr(cfg, n) for n in ("hidden_activation", "hidden_act", "activation_function") if getattr(cfg, n, None)
        )
        self.final_norm_b: torch.Tensor | None = None  # [d] LayerNorm's β
        self.positions: torch.Tensor | None = None  # [n_ctx, d] learned position embeddings (GPT-2)
        self.softcap: float | None = getattr(cfg, "final_logit_softcapping", None) if self.gemma else None
        self.attn_softcap: float | None = getattr(cfg, "attn_logit_softcapping", None) if self.gemma else None
        self.lm_head = _w(hf.lm_head.weight)  # [V, d]
        self.layers: list[_LayerWeights] = []
        if self.model_type == "gpt2":
            tr = hf.transformer
            self.embed, self.embed_scale, self.positions = _w(tr.wte.weight), 1.0, _w(tr.wpe.weight)
            self.final_norm, self.final_norm_b = _w(tr.ln_f.weight), _w(tr.ln_f.bias)
            self.layers = [cast(_LayerWeights, _gpt2_layer(block, cfg, l)) for l, block in enumerate(tr.h)]
            return
        if self.model_type == "gpt_neox":
            nx_ = hf.gpt_neox
            self.embed, self.embed_scale = _w(nx_.embed_in.weight), 1.0
            self.final_norm, self.final_norm_b = _w(nx_.final_layer_norm.weight), _w(nx_.final_layer_norm.bias)
            self.layers = [cast(_LayerWeights, _neox_layer(layer, cfg, self.dh)) for layer in nx_.layers]
            return
        w = _w
        inner = hf.model
        self.embed = w(inner.embed_tokens.weight)  # [V, d]
        if self.gemma:
            # Gemma3TextScaledWordEmbedding: embeddings * sqrt(d), the scale cast to the weight dtype
            scale = torch.tensor(math.sqrt(self.d), dtype=inner.embed_tokens.weight.dtype)
            self.embed_scale = float(scale.to(DTYPE))
        else:
            self.embed_scale = 1.0
        self.final_norm = w(inner.norm.weight)  # [d]
        for l, layer in enumerate(inner.layers):
            a = layer.self_attn
            if self.model_type == "gemma3_text":  # one rope per layer type
                rope = cfg.rope_parameters[cfg.layer_types[l]]
            else:
                rope = cfg.rope_parameters
            P = cast(
                _LayerWeights,
                {
                    **_projections(layer, cfg, self.dh),  # q [H*dh, d], k/v [KV*dh, d], o [d, H*dh], gate/up [I, d], down [d, I]
                    "window": _window(cfg, l),
                    "scaling": cfg.query_pre_attn_scalar**-0.5 if self.gemma else self.dh**-0.5,
                    "inv_freq": _inv_freq(rope, self.dh),
                },
            )
            if hasattr(a, "q_norm"):
                P["q_norm"] = w(a.q_norm.weight)  # [dh], or [H*dh] for OLMo-2
                P["k_norm"] = w(a.k_norm.weight)
            if not self.olmo:  # OLMo-2 has no norms before attention and the MLP
                P["in_norm"] = w(layer.input_layernorm.weight)  # [d]
                # Gemma: pre_feedforward_layernorm; Llama & co: post_attention_layernorm is the pre-MLP norm
                P["mlp_norm"] = w(layer.pre_feedforward_layernorm.weight if self.gemma else layer.post_attention_layernorm.weight)
            if self.post_norms:
                P["post_attn_norm"] = w(layer.post_attention_layernorm.weight)
                P["post_ff_norm"] = w(layer.post_feedforward_layernorm.weight)
            self.layers.append(P)

    # --- building blocks --------------------------------------------------------------------

    def gain(self, weight: torch.Tensor) -> torch.Tensor:
        """RMSNorm gain: w for Llama, (1 + w) for Gemma."""
        return 1.0 + weight if self.gemma else weight

    def inv_rms(self, x: torch.Tensor) -> torch.Tensor:
        """1 / sqrt(mean(x^2) + eps) over the last axis.  x: [..., n] -> [..., 1]"""
        return torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def rmsnorm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self.gain(weight) * (x * self.inv_rms(x))

    def centre(self, x: torch.Tensor) -> torch.Tensor:
        """x minus its mean over the last axis for LayerNorm families (RMSNorm: x)."""
        return x - x.mean(-1, keepdim=True) if self.layer_norm else x

    def inv_scale(self, x: torch.Tensor) -> torch.Tensor:
        """The final norm's 1/rms (RMSNorm) or 1/σ (LayerNorm, biased variance): [..., 1]."""
        return self.inv_rms(self.centre(x))

    def norm(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """A pre-norm or the final norm: RMSNorm, or LayerNorm γ·(x − mean)/σ + β."""
        if bias is None:
            return self.rmsnorm(x, weight)
        return weight * self.centre(x) * self.inv_scale(x) + bias

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return _act(self.act_name, x)


def _inv_freq(rope: Mapping[str, Any], dh: int) -> torch.Tensor:
    """Rotary frequencies [rot/2] from the config's rope parameters: theta^(-2i/rot) over the
    rotated dims, rescaled for Llama-3 ("Llama 3 herd of models", §3.3: wavelengths above
    original_max/low_freq_factor slow down by ``factor``, below original_max/high_freq_factor stay,
    and the band between is interpolated)."""
    rot = int(dh * rope.get("partial_rotary_factor", 1.0))
    freq = 1.0 / (float(rope["rope_theta"]) ** (torch.arange(0, rot, 2, dtype=DTYPE) / rot))  # [rot/2]
    kind = rope.get("rope_type", "default")
    if kind == "default":
        return freq
    if kind != "llama3":
        raise NotImplementedError(f"rope_type {kind!r} is not supported here")
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    context = rope["original_max_position_embeddings"]
    wavelength = 2 * math.pi / freq
    smooth = ((context / wavelength - low) / (high - low)).clamp(0.0, 1.0)  # 0: long waves, 1: short waves
    return (1 - smooth) * freq / factor + smooth * freq


def _rope(x: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotary embedding (rotate-half convention) of the first 2·len(inv_freq) dims; the rest pass.
    x: [T, dh] for one head, positions 0..T-1."""
    T = x.shape[0]
    rot = 2 * inv_freq.shape[0]
    angles = torch.arange(T, dtype=DTYPE)[:, None] * inv_freq[None, :]  # [T, rot/2]
    emb = torch.cat([angles, angles], dim=-1)  # [T, rot]
    cos, sin = emb.cos(), emb.sin()
    x_rot, x_pass = x[:, :rot], x[:, rot:]
    x1, x2 = x_rot[:, : rot // 2], x_rot[:, rot // 2 :]
    rotated = torch.cat([-x2, x1], dim=-1)  # [T, rot]
    return torch.cat([x_rot * cos + rotated * sin, x_pass], dim=-1)


def _ids(token_ids: TokenIds) -> torch.Tensor:
    ids = torch.as_tensor(token_ids, dtype=torch.long).reshape(-1)  # [T]
    if ids.numel() == 0:
        raise ValueError("token_ids is empty")
    return ids


# ----------------------------------------------------------------------------------------------
# The forward pass (one code path for unmasked and masked runs)
# ----------------------------------------------------------------------------------------------


def _post_norm(
    P: _Params, weight: torch.Tensor | None, raw: torch.Tensor, inv_rms: torch.Tensor, frozen_inv_rms: torch.Tensor | None
) -> torch.Tensor:
    """A post-norm on a raw sublayer output (live 1/rms, or the unmasked run's); identity without one."""
    if weight is None:
        return raw
    return P.gain(weight) * (raw * (inv_rms if frozen_inv_rms is None else frozen_inv_rms))


def _run(
    P: _Params,
    ids: torch.Tensor,
    keep: dict[str, torch.Tensor] | None = None,
    norms: str = "live",
    frozen: dict[str, list[torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Run the model over ids [T] in float64, optionally with edge masks.

    keep: None (everything kept) or a dict of float64 0/1 masks
        "attn"     [L, H, T, T]  1 = attention edge (l, h, t, s) kept
        "res_attn" [L, T]        1 = residual-attention edge kept
        "mlp"      [L, T]        1 = MLP edge kept
        "res_mlp"  [L, T]        1 = residual-MLP edge kept
    norms: "live" recomputes Gemma's post-norms on the masked stream; "frozen" uses the inverse-RMS
        of the unmasked run (frozen["inv_rms_o"] [L, T, 1], frozen["inv_rms_m"] [L, T, 1]).
    Returns a cache of per-layer tensors (lists indexed by layer), the final-layer tensors and the
    logits [T, V] (hence ``Any`` values: a list of tensors or a tensor, by name).
    """
    if norms not in ("live", "frozen"):
        raise ValueError(f"norms must be 'live' or 'frozen', not {norms!r}")
    if norms == "frozen" and P.post_norms and frozen is None:
        raise ValueError("norms='frozen' needs the unmasked run's inverse RMS values")
    T = ids.shape[0]
    H, KV, dh = P.H, P.KV, P.dh
    group = H // KV
    pos = torch.arange(T)
    causal = pos[None, :] <= pos[:, None]  # [T, T] target t (row) may see source s (col)

    cache: dict[str, Any] = {k: [] for k in ("x", "A", "v", "o", "inv_rms_o", "a", "h", "m", "inv_rms_m", "f")}
    x = P.embed[ids] * P.embed_scale  # [T, d]   never masked
    if P.positions is not None:  # GPT-2's learned positions belong to the input node
        x = x + P.positions[:T]
    for l, W in enumerate(P.layers):
        cache["x"].append(x)
        # ---- attention ----
        xn = P.norm(x, W["in_norm"], W.get("in_norm_b")) if "in_norm" in W else x  # [T, d]
        Q = xn @ W["q"].T + W.get("q_b", 0.0)  # [T, H*dh]  (+ Qwen2's biases)
        K = xn @ W["k"].T + W.get("k_b", 0.0)  # [T, KV*dh]
        V = xn @ W["v"].T + W.get("v_b", 0.0)  # [T, KV*dh]
        if P.olmo:  # q/k RMSNorm over all heads at once
            Q, K = P.rmsnorm(Q, W["q_norm"]), P.rmsnorm(K, W["k_norm"])
        allowed = causal.clone()
        if W["window"] is not None:  # HF: source s visible from target t iff s > t - window
            allowed &= pos[None, :] > pos[:, None] - W["window"]  # [T, T]
        A_all = torch.zeros(H, T, T, dtype=DTYPE)  # [H, T, T]
        v_all = torch.zeros(H, T, dh, dtype=DTYPE)  # [H, T, dh] value of each query head's KV group
        o = torch.zeros(T, P.d, dtype=DTYPE)  # [T, d]  o_proj output
        for h in range(H):
            g = h // group  # KV group of query head h (repeat_kv)
            q = Q[:, h * dh : (h + 1) * dh]  # [T, dh]
            k = K[:, g * dh : (g + 1) * dh]  # [T, dh]
            v = V[:, g * dh : (g + 1) * dh]  # [T, dh]
            if "q_norm" in W and not P.olmo:  # per-head q/k RMSNorm
                q = P.rmsnorm(q, W["q_norm"])
                k = P.rmsnorm(k, W["k_norm"])
            q = _rope(q, W["inv_freq"])
            k = _rope(k, W["inv_freq"])
            scores = (q @ k.T) * W["scaling"]  # [T, T]
            if P.attn_softcap is not None:  # Gemma-2: cap · tanh(score / cap), before the mask
                scores = torch.tanh(scores / P.attn_softcap) * P.attn_softcap
            scores = scores.masked_fill(~allowed, float("-inf"))
            A = torch.softmax(scores, dim=-1)  # [T, T]  live softmax, all s <= t (in the window)
            A_used = A if keep is None else A * keep["attn"][l, h]  # zero ablation, no renormalisation
            W_O_h = W["o"][:, h * dh : (h + 1) * dh]  # [d, dh]
            o = o + (A_used @ v) @ W_O_h.T  # [T, d]
            if "o_b" in W:  # b_O: b_O / H per head, in proportion to its kept attention (docs/method.md §9.2)
                o = o + A_used.sum(-1, keepdim=True) * W["o_b"] / H
            A_all[h] = A
            v_all[h] = v
        inv_rms_o = P.inv_rms(o)  # [T, 1]
        a = _post_norm(
            P,
            W.get("post_attn_norm"),
            o,
            inv_rms_o,
            frozen["inv_rms_o"][l] if norms == "frozen" and frozen is not None else None,
        )  # [T, d]
        res_attn = 1.0 if keep is None else keep["res_attn"][l][:, None]  # [T, 1]
        h_state = res_attn * x + a  # [T, d]
        # ---- MLP ---- (a parallel block's MLP reads the block's input x, not h)
        mlp_in = x if P.parallel else h_state
        hn = P.norm(mlp_in, W["mlp_norm"], W.get("mlp_norm_b")) if "mlp_norm" in W else mlp_in  # [T, d]
        if "gate" in W:  # act(gate) · up
            m = (P.act(hn @ W["gate"].T) * (hn @ W["up"].T)) @ W["down"].T  # [T, d]  raw MLP output
        else:  # GPT-2: act(up), with biases
            m = P.act(hn @ W["up"].T + W["up_b"]) @ W["down"].T + W["down_b"]  # [T, d]
        inv_rms_m = P.inv_rms(m)  # [T, 1]
        f = _post_norm(
            P, W.get("post_ff_norm"), m, inv_rms_m, frozen["inv_rms_m"][l] if norms == "frozen" and frozen is not None else None
        )  # [T, d]
        k_mlp = 1.0 if keep is None else keep["mlp"][l][:, None]  # [T, 1]
        if P.parallel:  # one node: kept residual + kept attention + kept MLP
            x = h_state + k_mlp * f  # [T, d]
        else:
            k_res = 1.0 if keep is None else keep["res_mlp"][l][:, None]  # [T, 1]
            x = k_res * h_state + k_mlp * f  # [T, d]
        for name, val in (
            ("A", A_all),
            ("v", v_all),
            ("o", o),
            ("inv_rms_o", inv_rms_o),
            ("a", a),
            ("h", h_state),
            ("m", m),
            ("inv_rms_m", inv_rms_m),
            ("f", f),
        ):
            cache[name].append(val)
    cache["x_final"] = x  # [T, d]  x_L
    cache["inv_rms_final"] = P.inv_scale(x)  # [T, 1]  (1/σ for LayerNorm)
    cache["normed_final"] = P.norm(x, P.final_norm, P.final_norm_b)  # [T, d]
    logits = cache["normed_final"] @ P.lm_head.T  # [T, V]
    if P.softcap is not None:
        logits = torch.tanh(logits / P.softcap) * P.softcap
    cache["logits"] = logits
    return cache


def forward(bridge: Any, token_ids: TokenIds) -> dict[str, Any]:
    """Unmasked float64 forward over the whole text; returns the cache (see ``_run``)."""
    return _run(_Params(bridge), _ids(token_ids))


def unmasked_logits(bridge: Any, token_ids: TokenIds) -> torch.Tensor:
    """Logits [T, V] (float64) of this file's own unmasked forward."""
    return forward(bridge, token_ids)["logits"]


# ----------------------------------------------------------------------------------------------
# Graph, edge vectors, weights
# ----------------------------------------------------------------------------------------------


def edge_count(n_layers: int, n_heads: int, n_positions: int, parallel: bool = False) -> int:
    """|E| of the prefix graph with T' = n_positions, root at the last position (docs/method.md §1;
    parallel blocks §9.1: two non-attention in-edges per node instead of three)."""
    L, H, T, n = n_layers, n_heads, n_positions, 2 if parallel else 3
    return L * (H * T * (T + 1) // 2 + n * T) - H * T * (T - 1) // 2 - n * (T - 1)


def _in_edges(g: int, t: int, n_heads: int, parallel: bool = False) -> list[tuple[Key, Node]]:
    """In-edges of node (g, t) as (key, source node), in ascending key order. None for g = 0."""
    if g == 0:
        return []
    if parallel:  # node (2l+2, t): attention, residual and MLP edges, all from (2l, ·)
        if g % 2 == 1:
            raise ValueError(f"a parallel block has no node {g} (after its attention)")
        l = (g - 2) // 2
        edges: list[tuple[Key, Node]] = [((ATTN, l, t, h, s), (2 * l, s)) for h in range(n_heads) for s in range(t + 1)]
        return [*edges, ((RES_ATTN, l, t, 0, t), (2 * l, t)), ((MLP, l, t, 0, t), (2 * l, t))]
    if g % 2 == 1:  # attention node of layer l
        l = (g - 1) // 2
        out: list[tuple[Key, Node]] = [((ATTN, l, t, h, s), (2 * l, s)) for h in range(n_heads) for s in range(t + 1)]
        out.append(((RES_ATTN, l, t, 0, t), (2 * l, t)))
        return out
    l = (g - 2) // 2  # MLP node of layer l
    return [((MLP, l, t, 0, t), (2 * l + 1, t)), ((RES_MLP, l, t, 0, t), (2 * l + 1, t))]


def _iter_edge_vectors(P: _Params, C: dict[str, Any]) -> Iterator[tuple[Node, list[Key], torch.Tensor, torch.Tensor]]:
    """Yield (node, keys, vectors [n_in, d], node_state [d]) for every non-embedding node of the text.

    The in-edge vectors of a node sum to its state (for nodes (2L, t) the final-normed state, minus
    the final norm's bias for LayerNorm families).
    """
    L, H, dh = P.L, P.H, P.dh
    T = C["x"][0].shape[0]
    for l in range(L):
        W = P.layers[l]
        last = l == L - 1
        # u_{h,s} = W_O^h v_{h,s} (+ b_O / H) for every head and source: [H, T, d]
        WOv = torch.stack([C["v"][l][h] @ W["o"][:, h * dh : (h + 1) * dh].T for h in range(H)])
        if "o_b" in W:
            WOv = WOv + W["o_b"] / H
        for t in range(T):
            # ---- attention node (2l+1, t) ----
            block = C["A"][l][:, t, : t + 1, None] * WOv[:, : t + 1, :]  # [H, t+1, d]
            if P.post_norms:  # linearised post-attention norm at target t
                block = P.gain(W["post_attn_norm"]) * block * C["inv_rms_o"][l][t]
            keys: list[Key] = [(ATTN, l, t, h, s) for h in range(H) for s in range(t + 1)]
            if P.parallel:  # one node (2l+2, t): attention, residual, MLP
                yield _parallel_node(P, C, l, t, block, keys)
                continue
            vecs = torch.cat([block.reshape(H * (t + 1), -1), C["x"][l][t][None, :]])  # [H(t+1)+1, d]
            keys.append((RES_ATTN, l, t, 0, t))
            yield (2 * l + 1, t), keys, vecs, C["h"][l][t]
            # ---- MLP node (2l+2, t) ----
            f_vec, h_vec = C["f"][l][t], C["h"][l][t]
            if last:  # linearised final norm on the last layer's MLP and residual-MLP edges (centred for LayerNorm)
                lin = P.gain(P.final_norm) * C["inv_rms_final"][t]
                f_vec, h_vec = lin * P.centre(f_vec), lin * P.centre(h_vec)
                # the final norm's β is on no edge: the in-edges sum to the normed state minus β
                state = C["normed_final"][t] - (0.0 if P.final_norm_b is None else P.final_norm_b)
            else:
                state = C["x"][l + 1][t]
            yield (2 * l + 2, t), [(MLP, l, t, 0, t), (RES_MLP, l, t, 0, t)], torch.stack([f_vec, h_vec]), state


def _parallel_node(
    P: _Params, C: dict[str, Any], l: int, t: int, block: torch.Tensor, keys: list[Key]
) -> tuple[Node, list[Key], torch.Tensor, torch.Tensor]:
    """Node (2l+2, t) of a parallel block: its attention edge vectors ``block`` [H, t+1, d], the
    residual x_t and the MLP's f_t, all through the linearised final norm at the root."""
    vecs = torch.cat([block.reshape(-1, P.d), C["x"][l][t][None, :], C["f"][l][t][None, :]])  # [H(t+1)+2, d]
    keys = [*keys, (RES_ATTN, l, t, 0, t), (MLP, l, t, 0, t)]
    if l < P.L - 1:
        return (2 * l + 2, t), keys, vecs, C["x"][l + 1][t]
    lin = P.gain(P.final_norm) * C["inv_rms_final"][t]  # [d]
    state = C["normed_final"][t] - (0.0 if P.final_norm_b is None else P.final_norm_b)
    return (2 * l + 2, t), keys, lin * P.centre(vecs), state


def edge_vectors(bridge: Any, token_ids: TokenIds) -> dict[Node, tuple[list[Key], torch.Tensor, torch.Tensor]]:
    """{node (g, t): (keys, vectors [n_in, d] float64, real node state [d])} for the whole text.

    Materialises every edge vector: use on short texts / small models only.
    """
    P = _Params(bridge)
    C = _run(P, _ids(token_ids))
    return {node: (keys, vecs, state) for node, keys, vecs, state in _iter_edge_vectors(P, C)}


def _node_weights(vecs: torch.Tensor, state: torch.Tensor, weighting: str) -> list[float]:
    """Weights of one node's in-edges.  vecs: [n_in, d]; state: [d]."""
    if weighting == "l1":
        norms = vecs.abs().sum(-1)  # [n_in]
        total = norms.sum()
        if total == 0:
            return [1.0 / len(norms)] * len(norms)
        return (norms / total).tolist()
    if weighting == "ifr":
        p = state.abs().sum() - (state[None, :] - vecs).abs().sum(-1)  # [n_in]
        p = p + p.min().abs()
        total = p.sum()
        if total == 0:
            return [1.0 / len(p)] * len(p)
        return (p / total).tolist()
    raise ValueError(f"weighting must be 'l1' or 'ifr', not {weighting!r}")


def _weights_from_cache(P: _Params, C: dict[str, Any], weighting: str) -> dict[Key, float]:
    weights: dict[Key, float] = {}
    for _node, keys, vecs, state in _iter_edge_vectors(P, C):
        for key, w in zip(keys, _node_weights(vecs, state, weighting)):
            weights[key] = w
    return weights


def edge_weights(bridge: Any, token_ids: TokenIds, weighting: str = "l1") -> dict[Key, float]:
    """{key: weight} for every edge of the whole text (root-independent, normalised per target node)."""
    P = _Params(bridge)
    return _weights_from_cache(P, _run(P, _ids(token_ids)), weighting)


def build_graph(weights: Mapping[Key, float], n_layers: int, n_heads: int, root: int, parallel: bool = False) -> nx.MultiDiGraph:
    """The prefix graph for root r: positions 0..r, output (2L, r), only edges that reach the output.

    Edges carry key = edge key tuple and attribute weight = weights[key]. ``weights`` must cover
    every edge that reaches the output (extra keys, e.g. for later positions, are ignored).
    """
    L, H, Tp = n_layers, n_heads, root + 1
    slots = range(0, 2 * L + 1, 2) if parallel else range(2 * L + 1)  # parallel blocks: no node 2l+1
    G = nx.MultiDiGraph()
    for g in slots:
        for t in range(Tp):
            G.add_node((g, t))
    for g in slots[1:]:
        for t in range(Tp):
            for key, src in _in_edges(g, t, H, parallel):
                G.add_edge(src, (g, t), key=key, weight=weights.get(key))
    out = (2 * L, root)
    keep = nx.ancestors(G, out) | {out}
    G.remove_nodes_from([n for n in list(G.nodes) if n not in keep])
    missing = [k for _s, _d, k, w in G.edges(keys=True, data="weight") if w is None]
    if missing:
        raise KeyError(f"weights lack {len(missing)} edges of the prefix graph, e.g. {missing[0]}")
    expected = edge_count(L, H, Tp, parallel)
    assert G.number_of_edges() == expected, (G.number_of_edges(), expected)
    return G


def _check_sizes(sizes: Iterable[float]) -> list[float]:
    sizes = [float(s) for s in sizes]
    if not sizes:
        raise ValueError("sizes is empty")
    if any(not (0.0 < s <= 1.0) for s in sizes):
        raise ValueError(f"sizes must lie in (0, 1]: {sizes}")
    if any(b <= a for a, b in itertools.pairwise(sizes)):
        raise ValueError(f"sizes must be strictly increasing: {sizes}")
    return sizes


def stratify_weights(
    weights: Mapping[Key, float], n_layers: int, n_heads: int, root: int, sizes: Iterable[float], parallel: bool = False
) -> tuple[list[Key], list[int]]:
    """Best-first backward expansion from (2L, root) (docs/method.md §3).

    weights: {key: weight} covering at least every edge of the prefix graph.
    Heap order: heaviest float32-rounded weight first, ties broken by the smaller key tuple.
    Returns (order, n_edges): order = keys in expansion order, up to max n_k;
    n_edges[k] = floor(sizes[k] * |E|), stratum k = order[:n_edges[k]].
    """
    sizes = _check_sizes(sizes)
    G = build_graph(weights, n_layers, n_heads, root, parallel)
    total = G.number_of_edges()
    n_edges = [math.floor(s * total) for s in sizes]
    order = [key for key, _src in itertools.islice(_best_first(G, (2 * n_layers, root)), max(n_edges))]
    return order, n_edges


def _best_first(G: nx.MultiDiGraph, out: Node) -> Iterator[tuple[Key, Node]]:
    """(key, source node) of every edge of G in best-first order from ``out``."""

    def push_in_edges(heap: list[tuple[float, Key, Node]], node: Node) -> None:
        for src, _dst, key, w in G.in_edges(node, keys=True, data="weight"):
            heapq.heappush(heap, (-float(np.float32(w)), key, src))

    heap: list[tuple[float, Key, Node]] = []
    reached = {out}
    push_in_edges(heap, out)
    while heap:
        _negw, key, src = heapq.heappop(heap)
        yield key, src
        if src not in reached:
            reached.add(src)
            push_in_edges(heap, src)  # embedding nodes have no in-edges


def graph_keys(n_layers: int, n_heads: int, root: int, parallel: bool = False) -> set[Key]:
    """Every edge of the root's prefix graph."""
    G = build_graph(_AnyWeight(), n_layers, n_heads, root, parallel)
    return {key for _src, _dst, key in G.edges(keys=True)}


class _AnyWeight(dict[Key, float]):
    """Weights for when only the graph's edges matter: every edge weighs 0."""

    def get(self, key: Key, default: object = None) -> float:
        return 0.0


def residual_keys(n_layers: int, n_heads: int, root: int, parallel: bool = False) -> set[Key]:
    """The residual edges of the root's prefix graph (what the published baselines always keep)."""
    return {key for key in graph_keys(n_layers, n_heads, root, parallel) if key[0] in (RES_ATTN, RES_MLP)}


def inverse_kept(order: Sequence[Key], n: int, n_layers: int, n_heads: int, root: int, parallel: bool = False) -> set[Key]:
    """The published inverse of stratum ``order[:n]``: every other edge of the graph, and every residual edge."""
    everything = graph_keys(n_layers, n_heads, root, parallel)
    return (everything - set(order[:n])) | residual_keys(n_layers, n_heads, root, parallel)


def input_edges(weights: Mapping[Key, float], n_layers: int, n_heads: int, root: int, parallel: bool = False) -> int:
    """Edges of the smallest best-first subgraph that holds an edge leaving an input embedding
    (a node (0, s)): expand until the first such edge is taken."""
    G = build_graph(weights, n_layers, n_heads, root, parallel)
    for count, (_key, src) in enumerate(_best_first(G, (2 * n_layers, root)), start=1):
        if src[0] == 0:
            return count
    raise AssertionError("the graph has no edge from an input embedding")


# ----------------------------------------------------------------------------------------------
# Masked evaluation
# ----------------------------------------------------------------------------------------------


def _masks_from_set(kept: Iterable[Key] | None, L: int, H: int, root: int, parallel: bool) -> dict[str, torch.Tensor]:
    """Explicit 0/1 masks for the prefix 0..root from a set of kept keys (None = keep all)."""
    Tp = root + 1
    if kept is None:
        return {
            "attn": torch.ones(L, H, Tp, Tp, dtype=DTYPE).tril(),  # [L, H, T, T]
            "res_attn": torch.ones(L, Tp, dtype=DTYPE),  # [L, T]
            "mlp": torch.ones(L, Tp, dtype=DTYPE),
            "res_mlp": torch.ones(L, Tp, dtype=DTYPE),
        }
    # numpy arrays for the per-key writes (a torch element write costs ~100x more), torch at the end
    M = {
        "attn": np.zeros((L, H, Tp, Tp)),  # [L, H, T, T]
        "res_attn": np.zeros((L, Tp)),  # [L, T]
        "mlp": np.zeros((L, Tp)),
        "res_mlp": np.zeros((L, Tp)),
    }
    for key in kept:
        kind, l, t, h, s = key
        if not (0 <= l < L and 0 <= s <= t <= root):
            raise ValueError(f"edge key {key} is not an edge of the prefix graph of root {root}")
        if kind == ATTN:
            if not 0 <= h < H:
                raise ValueError(f"edge key {key}: head out of range")
            M["attn"][l, h, t, s] = 1.0
        elif kind == RES_ATTN:
            M["res_attn"][l, t] = 1.0
        elif kind == MLP:
            M["mlp"][l, t] = 1.0
        elif kind == RES_MLP:
            if parallel:
                raise ValueError(f"edge key {key}: a parallel block has no residual-MLP edge")
            M["res_mlp"][l, t] = 1.0
        else:
            raise ValueError(f"edge key {key}: unknown kind")
    return {name: torch.from_numpy(arr).to(DTYPE) for name, arr in M.items()}


def _masked_logits(
    P: _Params,
    ids: torch.Tensor,
    root: int,
    kept: Iterable[Key] | None,
    norms: str,
    frozen: dict[str, list[torch.Tensor]] | None = None,
) -> torch.Tensor:
    if not 0 <= root < ids.shape[0]:
        raise ValueError(f"root {root} is outside 0..{ids.shape[0] - 1}")
    prefix = ids[: root + 1]
    if norms == "frozen" and P.post_norms and frozen is None:
        full = _run(P, prefix)
        frozen = {"inv_rms_o": full["inv_rms_o"], "inv_rms_m": full["inv_rms_m"]}
    keep = _masks_from_set(kept, P.L, P.H, root, P.parallel)
    C = _run(P, prefix, keep=keep, norms=norms, frozen=frozen)
    return C["logits"][root]  # [V]


def masked_logits(bridge: Any, token_ids: TokenIds, root: int, kept: set[Key] | None, norms: str = "live") -> torch.Tensor:
    """Logits [V] (float64) at position ``root`` with only the edges in ``kept`` (zero ablation).

    kept: set of edge keys, or None for everything kept (reproduces the unmasked logits).
    norms: "live" (Gemma post-norms recomputed on the masked stream) or "frozen" (held at the
    unmasked run's per-position scale). Llama has no post-norms, so both give the same result.
    The final norm is always live.
    """
    return _masked_logits(_Params(bridge), _ids(token_ids), root, kept, norms)


# ----------------------------------------------------------------------------------------------
# Metrics and the top level
# ----------------------------------------------------------------------------------------------


def distribution_metrics(full_logits: torch.Tensor, logits: torch.Tensor) -> dict[str, float | bool]:
    """tv, kl (full || subgraph), top1 between two logit vectors [V], with softmaxes in float32."""
    logp_full = torch.log_softmax(full_logits.float(), dim=-1)  # [V]
    logp = torch.log_softmax(logits.float(), dim=-1)  # [V]
    p_full, p = logp_full.exp(), logp.exp()
    return {
        "tv": float(0.5 * (p_full - p).abs().sum()),
        "kl": float((p_full * (logp_full - logp)).sum()),
        "top1": bool(full_logits.float().argmax() == logits.float().argmax()),
    }


def trace_root(
    bridge: Any, token_ids: TokenIds, root: int, sizes: Iterable[float], weighting: str = "l1", norms: str = "live"
) -> dict[str, Any]:
    """Trace one root position: weights -> strata -> masked passes -> metrics.

    Returns a dict:
      order        list of keys, the expansion order up to max n_k
      n_edges      list, n_k = floor(sizes[k] * |E|)  (|E| itself for size 1.0)
      total_edges  |E| of the root's prefix graph
      input_edges  edges of the smallest best-first subgraph that reaches an input embedding
      sizes        the sizes as floats
      tv, kl, top1 lists per size (against this file's unmasked logits at root)
      logits       tensor [K, V] float32, the masked logits per stratum
      full_logits  tensor [V] float32, the unmasked logits at root
    """
    sizes = _check_sizes(sizes)
    P = _Params(bridge)
    ids = _ids(token_ids)
    if not 0 <= root < ids.shape[0]:
        raise ValueError(f"root {root} is outside 0..{ids.shape[0] - 1}")
    C = _run(P, ids)  # one unmasked forward over the whole text
    weights = _weights_from_cache(P, C, weighting)
    order, n_edges = stratify_weights(weights, P.L, P.H, root, sizes, P.parallel)
    total = edge_count(P.L, P.H, root + 1, P.parallel)
    frozen: dict[str, list[torch.Tensor]] | None = None
    if norms == "frozen":  # causal model: the whole-text run's values at positions <= root are the prefix's
        frozen = {"inv_rms_o": [v[: root + 1] for v in C["inv_rms_o"]], "inv_rms_m": [v[: root + 1] for v in C["inv_rms_m"]]}
    full_logits = C["logits"][root].float()  # [V]
    result: dict[str, Any] = {
        "order": order,
        "n_edges": n_edges,
        "total_edges": total,
        "input_edges": input_edges(weights, P.L, P.H, root, P.parallel),
        "sizes": sizes,
        "tv": [],
        "kl": [],
        "top1": [],
        "full_logits": full_logits,
    }
    rows = []
    for n in n_edges:
        kept = set(order[:n])
        assert len(kept) == n
        logits = _masked_logits(P, ids, root, kept, norms, frozen).float()  # [V]
        rows.append(logits)
        m = distribution_metrics(full_logits, logits)
        for name in ("tv", "kl", "top1"):
            result[name].append(m[name])
    result["logits"] = torch.stack(rows)  # [K, V]
    return result
