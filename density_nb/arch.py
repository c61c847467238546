"""A thin, uniform view of a supported HF decoder: its sublayers, norms and attention settings.

Pre-norm families (llama, mistral, qwen2) and Gemma-3 (post-norms around attention and MLP) differ
only in which norms exist and what they are called; everything else in density_nb goes through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from density_nb.models import SUPPORTED_MODEL_TYPES, ModelError


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


@dataclass
class Layer:
    """One decoder layer's pieces; ``post_attn_norm``/``post_mlp_norm`` are None for pre-norm models."""

    attn_norm: nn.Module
    q_proj: nn.Linear
    k_proj: nn.Linear
    v_proj: nn.Linear
    o_proj: nn.Linear
    q_norm: nn.Module | None
    k_norm: nn.Module | None
    post_attn_norm: nn.Module | None
    mlp_norm: nn.Module
    mlp: nn.Module
    post_mlp_norm: nn.Module | None
    sliding_window: int | None
    rope_key: str  # which rotary table the layer uses ("full_attention" / "sliding_attention")


class Arch:
    """Uniform access to an HF causal LM's weights and sublayers (no copies of the weights)."""

    def __init__(self, hf_model: Any):
        config = hf_model.config
        self.model_type: str = config.model_type
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelError(f"Architecture {self.model_type!r} is not supported; supported: {', '.join(SUPPORTED_MODEL_TYPES)}.")
        self.hf = hf_model
        self.config = config
        base = hf_model.model
        self.n_layers: int = config.num_hidden_layers
        self.n_heads: int = config.num_attention_heads
        self.n_kv_heads: int = config.num_key_value_heads
        self.d_model: int = config.hidden_size
        self.head_dim: int = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.gemma = self.model_type == "gemma3_text"
        self.embed_tokens: nn.Module = base.embed_tokens
        self.final_norm: nn.Module = base.norm
        self.lm_head: nn.Linear = hf_model.lm_head
        self.final_softcap: float | None = getattr(config, "final_logit_softcapping", None)
        self.attn_softcap: float | None = getattr(config, "attn_logit_softcapping", None)
        self.rotary = base.rotary_emb
        layer_types = getattr(config, "layer_types", None) or ["full_attention"] * self.n_layers
        self.layers: list[Layer] = []
        for index, block in enumerate(base.layers):
            attn = block.self_attn
            window = getattr(config, "sliding_window", None) if layer_types[index] == "sliding_attention" else None
            self.layers.append(
                Layer(
                    attn_norm=block.input_layernorm,
                    q_proj=attn.q_proj,
                    k_proj=attn.k_proj,
                    v_proj=attn.v_proj,
                    o_proj=attn.o_proj,
                    q_norm=getattr(attn, "q_norm", None),
                    k_norm=getattr(attn, "k_norm", None),
                    post_attn_norm=block.post_attention_layernorm if self.gemma else None,
                    mlp_norm=block.pre_feedforward_layernorm if self.gemma else block.post_attention_layernorm,
                    mlp=block.mlp,
                    post_mlp_norm=block.post_feedforward_layernorm if self.gemma else None,
                    sliding_window=window,
                    rope_key=layer_types[index],
                )
            )
        self.scaling: float = float(base.layers[0].self_attn.scaling)
        self.eps: float = float(getattr(config, "rms_norm_eps", 1e-6))
        self._rope_cache: dict[tuple[str, int, torch.dtype, str], tuple[torch.Tensor, torch.Tensor]] = {}

    # ---- small helpers ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def norm_gain(self, norm: nn.Module) -> torch.Tensor:
        """The elementwise gain of an RMSNorm (``1 + w`` for Gemma): [d]."""
        weight = norm.weight.float()
        return 1.0 + weight if self.gemma else weight

    def inv_rms(self, x: torch.Tensor) -> torch.Tensor:
        """1/rms over the last axis, in float32, as the model's RMSNorm computes it: [..., 1]."""
        return torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)

    def rope(self, layer: Layer, n_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for positions 0..n_pos-1: [n_pos, head_dim], from the model's own rotary module."""
        key = (layer.rope_key, n_pos, self.dtype, str(self.device))
        if key not in self._rope_cache:
            pos = torch.arange(n_pos, device=self.device)[None]  # [1, P]
            probe = torch.zeros(1, n_pos, self.d_model, dtype=self.dtype, device=self.device)
            if self.gemma:
                cos, sin = self.rotary(probe, pos, layer.rope_key)
            else:
                cos, sin = self.rotary(probe, pos)
            self._rope_cache[key] = (cos[0], sin[0])
        return self._rope_cache[key]

    def apply_rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x: [..., N, heads, head_dim]; cos/sin: [N, head_dim] (one row per position of x)."""
        return x * cos[:, None, :] + _rotate_half(x) * sin[:, None, :]

    def attention_bias(self, layer: Layer, n_pos: int) -> torch.Tensor:
        """Additive causal (+ sliding-window) mask: [P, P] with 0 where target t may see source s."""
        t = torch.arange(n_pos, device=self.device)[:, None]
        s = torch.arange(n_pos, device=self.device)[None, :]
        allowed = s <= t
        if layer.sliding_window is not None:
            allowed &= (t - s) < layer.sliding_window
        bias = torch.zeros(n_pos, n_pos, device=self.device)
        return bias.masked_fill(~allowed, float("-inf"))

    def logits(self, x_final: torch.Tensor) -> torch.Tensor:
        """Final norm (live) + unembedding (+ softcap): [..., d] -> [..., V] float32."""
        out = self.lm_head(self.final_norm(x_final)).float()
        if self.final_softcap:
            out = torch.tanh(out / self.final_softcap) * self.final_softcap
        return out


def pattern(arch: Arch, layer: Layer, q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Post-softmax attention probabilities from q: [B, P, H, hd], k: [B, P, KV, hd] -> [B, H, P, P]."""
    group = arch.n_heads // arch.n_kv_heads
    k = k.repeat_interleave(group, dim=-2)  # [B, P, H, hd]
    scores = torch.einsum("bthd,bshd->bhts", q, k)  # [B, H, P, P]
    if arch.attn_softcap:
        scores = torch.tanh(scores / arch.attn_softcap) * arch.attn_softcap
    return torch.softmax(scores.float() + bias, dim=-1).to(q.dtype)

