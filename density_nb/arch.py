"""A uniform view of a supported HF decoder's weights, and the layer math density_nb runs on them.

Pre-norm families (llama, mistral, qwen2) and Gemma-3 (post-norms around attention and MLP, (1 + w)
norm gains, q/k-norms, scaled embeddings) differ only in which weights exist; everything else in
density_nb goes through here. The math calls plain ``torch`` ops on the weight tensors, not the
model's modules (TransformerBridge wraps those with hooks, which costs more than the math itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from density_nb.models import SUPPORTED_MODEL_TYPES, ModelError

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
}


@dataclass
class Layer:
    """One decoder layer's weights; post-norms (Gemma-3) and biases (Qwen2) may be None."""

    attn_norm: torch.Tensor  # [d]
    q_w: torch.Tensor  # [H*hd, d]
    k_w: torch.Tensor  # [KV*hd, d]
    v_w: torch.Tensor  # [KV*hd, d]
    o_w: torch.Tensor  # [d, H*hd]
    q_b: torch.Tensor | None
    k_b: torch.Tensor | None
    v_b: torch.Tensor | None
    q_norm: torch.Tensor | None  # [hd]
    k_norm: torch.Tensor | None  # [hd]
    post_attn_norm: torch.Tensor | None  # [d]
    mlp_norm: torch.Tensor  # [d]
    gate_w: torch.Tensor  # [I, d]
    up_w: torch.Tensor  # [I, d]
    down_w: torch.Tensor  # [d, I]
    post_mlp_norm: torch.Tensor | None  # [d]
    sliding_window: int | None
    rope_key: str  # which rotary table the layer uses ("full_attention" / "sliding_attention")


class Arch:
    """Weights and layer math of an HF causal LM (views of its parameters, no copies)."""

    def __init__(self, hf_model: Any):
        config = hf_model.config
        self.model_type: str = config.model_type
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelError(f"Architecture {self.model_type!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}.")
        self.gemma = self.model_type == "gemma3_text"
        params = {name.replace("._original_component", ""): p.detach() for name, p in hf_model.named_parameters()}
        get = params.get
        self.n_layers: int = config.num_hidden_layers
        self.n_heads: int = config.num_attention_heads
        self.n_kv_heads: int = config.num_key_value_heads
        self.d_model: int = config.hidden_size
        self.head_dim: int = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.eps: float = float(getattr(config, "rms_norm_eps", 1e-6))
        self.embed_w: torch.Tensor = params["model.embed_tokens.weight"]  # [V, d]
        self.embed_scale: float = self.d_model**0.5 if self.gemma else 1.0
        self.final_norm: torch.Tensor = params["model.norm.weight"]  # [d]
        self.unembed_w: torch.Tensor = get("lm_head.weight", self.embed_w)  # [V, d] (tied when absent)
        self.final_softcap: float | None = getattr(config, "final_logit_softcapping", None)
        self.attn_softcap: float | None = getattr(config, "attn_logit_softcapping", None)
        act = getattr(config, "hidden_activation", None) or config.hidden_act
        if act not in _ACTIVATIONS:
            raise ModelError(f"MLP activation {act!r} is not supported; supported: {', '.join(_ACTIVATIONS)}.")
        self.act = _ACTIVATIONS[act]
        self.scaling: float = (config.query_pre_attn_scalar if self.gemma else self.head_dim) ** -0.5
        layer_types = getattr(config, "layer_types", None) or ["full_attention"] * self.n_layers
        self.layers: list[Layer] = []
        for i in range(self.n_layers):
            pre = f"model.layers.{i}."
            window = getattr(config, "sliding_window", None) if layer_types[i] == "sliding_attention" else None
            self.layers.append(
                Layer(
                    attn_norm=params[pre + "input_layernorm.weight"],
                    q_w=params[pre + "self_attn.q_proj.weight"],
                    k_w=params[pre + "self_attn.k_proj.weight"],
                    v_w=params[pre + "self_attn.v_proj.weight"],
                    o_w=params[pre + "self_attn.o_proj.weight"],
                    q_b=get(pre + "self_attn.q_proj.bias"),
                    k_b=get(pre + "self_attn.k_proj.bias"),
                    v_b=get(pre + "self_attn.v_proj.bias"),
                    q_norm=get(pre + "self_attn.q_norm.weight"),
                    k_norm=get(pre + "self_attn.k_norm.weight"),
                    post_attn_norm=params[pre + "post_attention_layernorm.weight"] if self.gemma else None,
                    mlp_norm=params[pre + ("pre_feedforward_layernorm.weight" if self.gemma else "post_attention_layernorm.weight")],
                    gate_w=params[pre + "mlp.gate_proj.weight"],
                    up_w=params[pre + "mlp.up_proj.weight"],
                    down_w=params[pre + "mlp.down_proj.weight"],
                    post_mlp_norm=params[pre + "post_feedforward_layernorm.weight"] if self.gemma else None,
                    sliding_window=window,
                    rope_key=layer_types[i],
                )
            )
        rope_params = getattr(config, "rope_parameters", None) or {}
        self._theta: dict[str, float] = {}
        for key in set(layer_types):
            entry = rope_params.get(key, rope_params) if isinstance(rope_params, dict) else {}
            rope_type = entry.get("rope_type", "default")
            if rope_type != "default":
                raise ModelError(f"RoPE type {rope_type!r} is not supported yet (only the default rotary embedding).")
            self._theta[key] = float(entry.get("rope_theta", getattr(config, "rope_theta", 10000.0)))
        self._rope_cache: dict[tuple[str, int, str], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def device(self) -> torch.device:
        return self.embed_w.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_w.dtype

    # ---- norms --------------------------------------------------------------------------------------
    def gain(self, weight: torch.Tensor) -> torch.Tensor:
        """The elementwise gain of an RMSNorm weight (``1 + w`` for Gemma): [d] float32."""
        return 1.0 + weight.float() if self.gemma else weight.float()

    def inv_rms(self, x: torch.Tensor) -> torch.Tensor:
        """1/rms over the last axis in float32, as the model's RMSNorm computes it: [..., 1]."""
        return torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)

    def norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """RMSNorm exactly as HF computes it (float32 inside)."""
        if self.gemma:
            return (x.float() * self.inv_rms(x) * self.gain(weight)).to(x.dtype)
        return weight * (x.float() * self.inv_rms(x)).to(x.dtype)

    # ---- pieces of a layer ---------------------------------------------------------------------------
    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """[P] -> [P, d]."""
        x = F.embedding(token_ids.to(self.device), self.embed_w)
        return x * torch.tensor(self.embed_scale, dtype=x.dtype) if self.gemma else x

    def rope(self, layer: Layer, n_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for positions 0..n_pos-1: [n_pos, head_dim]."""
        key = (layer.rope_key, n_pos, str(self.device))
        if key not in self._rope_cache:
            theta = self._theta[layer.rope_key]
            inv_freq = 1.0 / theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=self.device).float() / self.head_dim)
            freqs = torch.arange(n_pos, device=self.device).float()[:, None] * inv_freq[None]  # [P, hd/2]
            emb = torch.cat((freqs, freqs), dim=-1)
            self._rope_cache[key] = (emb.cos().to(self.dtype), emb.sin().to(self.dtype))
        return self._rope_cache[key]

    @staticmethod
    def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x: [N, heads, hd]; cos/sin: [N, hd] (one row per position of x)."""
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos[:, None, :] + torch.cat((-x2, x1), dim=-1) * sin[:, None, :]

    def queries(self, layer: Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Residual rows x: [N, d] -> scaled, roped queries [N, H, hd]."""
        q = F.linear(self.norm(x, layer.attn_norm), layer.q_w, layer.q_b).view(-1, self.n_heads, self.head_dim)
        if layer.q_norm is not None:
            q = self.norm(q, layer.q_norm)
        return self.apply_rope(q, cos, sin) * self.scaling

    def keys_values(self, layer: Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual rows x: [N, d] -> roped keys [N, KV, hd] and values [N, KV, hd]."""
        xn = self.norm(x, layer.attn_norm)
        k = F.linear(xn, layer.k_w, layer.k_b).view(-1, self.n_kv_heads, self.head_dim)
        v = F.linear(xn, layer.v_w, layer.v_b).view(-1, self.n_kv_heads, self.head_dim)
        if layer.k_norm is not None:
            k = self.norm(k, layer.k_norm)
        return self.apply_rope(k, cos, sin), v

    def attention_bias(self, layer: Layer, n_pos: int) -> torch.Tensor:
        """Additive causal (+ sliding-window) mask: [P, P], 0 where target t may see source s."""
        t = torch.arange(n_pos, device=self.device)[:, None]
        s = torch.arange(n_pos, device=self.device)[None, :]
        allowed = s <= t
        if layer.sliding_window is not None:
            allowed &= (t - s) < layer.sliding_window
        return torch.zeros(n_pos, n_pos, device=self.device).masked_fill(~allowed, float("-inf"))

    def pattern(self, q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Post-softmax attention from q: [B, P, H, hd], k: [B, P, KV, hd] -> [B, H, P, P]."""
        k = k.repeat_interleave(self.n_heads // self.n_kv_heads, dim=-2)  # [B, P, H, hd]
        scores = torch.einsum("bthd,bshd->bhts", q, k)  # [B, H, P, P]
        if self.attn_softcap:
            scores = torch.tanh(scores / self.attn_softcap) * self.attn_softcap
        return torch.softmax(scores.float() + bias, dim=-1).to(q.dtype)

    def mix(self, probs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Σ_s A[h,t,s] v[s]: probs [B, H, P, P], v [B, P, KV, hd] -> [B, P, H*hd]."""
        v = v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=-2)  # [B, P, H, hd]
        return torch.einsum("bhts,bshd->bthd", probs, v).flatten(2)

    def post_norm(self, x: torch.Tensor, weight: torch.Tensor | None, frozen_inv: torch.Tensor | None) -> torch.Tensor:
        """A post-norm (identity when ``weight`` is None), live or at a frozen 1/rms ([N, 1])."""
        if weight is None:
            return x
        if frozen_inv is None:
            return self.norm(x, weight)
        return (x.float() * frozen_inv * self.gain(weight)).to(x.dtype)

    def mlp(self, layer: Layer, h: torch.Tensor) -> torch.Tensor:
        """Raw MLP output (before any post-norm) for residual rows h: [N, d] -> [N, d]."""
        xn = self.norm(h, layer.mlp_norm)
        return F.linear(self.act(F.linear(xn, layer.gate_w)) * F.linear(xn, layer.up_w), layer.down_w)

    def logits(self, x_final: torch.Tensor) -> torch.Tensor:
        """Final norm (live) + unembedding (+ softcap): [..., d] -> [..., V] float32."""
        out = F.linear(self.norm(x_final, self.final_norm), self.unembed_w).float()
        if self.final_softcap:
            out = torch.tanh(out / self.final_softcap) * self.final_softcap
        return out
