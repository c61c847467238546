"""A uniform view of a supported HF decoder's weights, and the layer math density_nb runs on them.

Pre-norm families (llama, mistral, qwen2) and Gemma-3 (post-norms around attention and MLP, (1 + w)
norm gains, q/k-norms, scaled embeddings) differ only in which weights exist; everything else in
density_nb goes through here. The math calls plain ``torch`` ops on the weight tensors, not the
model's modules (TransformerBridge wraps those with hooks, which costs more than the math itself).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from density_nb.linear import Linear
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
    o_w: torch.Tensor  # [d, H*hd]
    q_norm: torch.Tensor | None  # [hd]
    k_norm: torch.Tensor | None  # [hd]
    post_attn_norm: torch.Tensor | None  # [d]
    mlp_norm: torch.Tensor  # [d]
    post_mlp_norm: torch.Tensor | None  # [d]
    sliding_window: int | None
    rope_key: str  # which rotary table the layer uses ("full_attention" / "sliding_attention")
    q: Linear  # -> [N, H*hd]
    kv: Linear  # -> keys [N, KV*hd], values [N, KV*hd]
    o: Linear  # [N, H*hd] -> [N, d]
    gate_up: Linear  # -> gate [N, I], up [N, I]
    down: Linear  # [N, I] -> [N, d]


def sliding_windows(config: Any) -> list[int | None]:
    """Each layer's sliding window as HF masks it (None: full causal attention). Families with
    ``layer_types`` slide on their "sliding_attention" layers; the others (Mistral, Phi-3) on every
    layer whenever ``sliding_window`` is set."""
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is None:
        return [window] * config.num_hidden_layers
    return [window if kind == "sliding_attention" else None for kind in layer_types]


class Arch:
    """Weights and layer math of an HF causal LM: views of its parameters, plus the packed GEMM
    weights of ``Linear`` on CPU. Build it with ``Arch.of(model)``, which packs once per model."""

    _by_model: ClassVar[weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], Arch]]] = weakref.WeakKeyDictionary()
    _building = threading.Lock()  # corpus worker threads share a model: pack it once

    @classmethod
    def of(cls, hf_model: Any) -> Arch:
        """The model's Arch, reused while its parameters are the same tensors, unmodified.

        In-place edits under ``torch.no_grad()`` (and ``load_state_dict``, ``.to()``) are noticed
        through the tensors' version counters; edits through ``param.data`` bypass those: after
        such an edit, call ``Arch.forget(model)``.
        """
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in hf_model.parameters())
        with cls._building:
            hit = cls._by_model.get(hf_model)
            if hit is None or hit[0] != key:
                hit = (key, cls(hf_model))
                cls._by_model[hf_model] = hit
        return hit[1]

    @classmethod
    def forget(cls, hf_model: Any) -> None:
        """Drop the model's cached Arch (needed only after editing weights through ``param.data``)."""
        cls._by_model.pop(hf_model, None)

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
        windows = sliding_windows(config)
        self.layers: list[Layer] = []
        for i in range(self.n_layers):
            pre = f"model.layers.{i}."
            q_w, k_w, v_w, o_w = (params[f"{pre}self_attn.{n}_proj.weight"] for n in "qkvo")
            q_b, k_b, v_b = (get(f"{pre}self_attn.{n}_proj.bias") for n in "qkv")
            gate_w, up_w, down_w = (params[f"{pre}mlp.{n}_proj.weight"] for n in ("gate", "up", "down"))
            self.layers.append(
                Layer(
                    attn_norm=params[pre + "input_layernorm.weight"],
                    o_w=o_w,
                    q_norm=get(pre + "self_attn.q_norm.weight"),
                    k_norm=get(pre + "self_attn.k_norm.weight"),
                    post_attn_norm=params[pre + "post_attention_layernorm.weight"] if self.gemma else None,
                    mlp_norm=params[pre + ("pre_feedforward_layernorm.weight" if self.gemma else "post_attention_layernorm.weight")],
                    post_mlp_norm=params[pre + "post_feedforward_layernorm.weight"] if self.gemma else None,
                    sliding_window=windows[i],
                    rope_key=layer_types[i],
                    q=Linear(q_w, biases=(q_b,)),
                    kv=Linear(k_w, v_w, biases=(k_b, v_b)),
                    o=Linear(o_w),
                    gate_up=Linear(gate_w, up_w),
                    down=Linear(down_w),
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
        self._tables: dict[tuple[Any, ...], Any] = {}  # rotary tables and attention masks, per length and device

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
        if key not in self._tables:
            theta = self._theta[layer.rope_key]
            inv_freq = 1.0 / theta ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=self.device).float() / self.head_dim)
            freqs = torch.arange(n_pos, device=self.device).float()[:, None] * inv_freq[None]  # [P, hd/2]
            emb = torch.cat((freqs, freqs), dim=-1)
            self._tables[key] = (emb.cos().to(self.dtype), emb.sin().to(self.dtype))
        return self._tables[key]

    @staticmethod
    def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x: [N, heads, hd]; cos/sin: [N, hd] (one row per position of x). HF's x·cos + rotate_half(x)·sin."""
        half = x.shape[-1] // 2
        cos, sin = cos[:, None, :], sin[:, None, :]
        out = x * cos
        out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1.0)
        out[..., half:].addcmul_(x[..., :half], sin[..., half:])
        return out

    def queries(self, layer: Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Residual rows x: [N, d] -> scaled, roped queries [N, H, hd]."""
        q = layer.q(self.norm(x, layer.attn_norm)).view(-1, self.n_heads, self.head_dim)
        if layer.q_norm is not None:
            q = self.norm(q, layer.q_norm)
        return self.apply_rope(q, cos * self.scaling, sin * self.scaling)  # the scaling rides on the [N, hd] tables

    def keys_values(self, layer: Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual rows x: [N, d] -> roped keys [N, KV, hd] and values [N, KV, hd]."""
        k, v = (kv.view(-1, self.n_kv_heads, self.head_dim) for kv in layer.kv.split(self.norm(x, layer.attn_norm)))
        if layer.k_norm is not None:
            k = self.norm(k, layer.k_norm)
        return self.apply_rope(k, cos, sin), v

    def attention_bias(self, layer: Layer, n_pos: int) -> torch.Tensor:
        """Additive causal (+ sliding-window) mask: [P, P], 0 where target t may see source s."""
        key = ("bias", layer.sliding_window, n_pos, str(self.device))
        if key not in self._tables:
            t = torch.arange(n_pos, device=self.device)[:, None]
            s = torch.arange(n_pos, device=self.device)[None, :]
            allowed = s <= t
            if layer.sliding_window is not None:
                allowed &= (t - s) < layer.sliding_window
            self._tables[key] = torch.zeros(n_pos, n_pos, device=self.device).masked_fill(~allowed, float("-inf"))
        return self._tables[key]

    def pattern(self, q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Post-softmax attention from q: [B, P, H, hd], k: [B, P, KV, hd] -> [B, H, P, P]."""
        n_batch, n_pos = q.shape[:2]
        group = self.n_heads // self.n_kv_heads
        # query head h = kv * group + g reads key head kv: one matmul per (batch, kv head), no repeated keys
        q = q.reshape(n_batch, n_pos, self.n_kv_heads, group, self.head_dim).permute(0, 2, 3, 1, 4)  # [B, KV, G, P, hd]
        scores = torch.matmul(q.reshape(n_batch, self.n_kv_heads, group * n_pos, self.head_dim), k.permute(0, 2, 3, 1))  # [B, KV, G*P, P]
        scores = scores.view(n_batch, self.n_heads, n_pos, n_pos)  # [B, H, P, P]
        if self.attn_softcap:
            scores = torch.tanh(scores / self.attn_softcap) * self.attn_softcap
        return torch.softmax(scores.float() + bias, dim=-1).to(q.dtype)

    def mix(self, probs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Σ_s A[h,t,s] v[s]: probs [B, H, P, P], v [B, P, KV, hd] -> [B, P, H, hd] (a strided view)."""
        n_batch, _, n_pos, _ = probs.shape
        group = self.n_heads // self.n_kv_heads
        z = torch.matmul(probs.reshape(n_batch, self.n_kv_heads, group * n_pos, n_pos), v.transpose(1, 2))  # [B, KV, G*P, hd]
        return z.view(n_batch, self.n_kv_heads, group, n_pos, self.head_dim).permute(0, 3, 1, 2, 4).flatten(2, 3)

    def post_norm(self, x: torch.Tensor, weight: torch.Tensor | None, frozen_inv: torch.Tensor | None) -> torch.Tensor:
        """A post-norm (identity when ``weight`` is None), live or at a frozen 1/rms ([N, 1])."""
        if weight is None:
            return x
        if frozen_inv is None:
            return self.norm(x, weight)
        return (x.float() * frozen_inv * self.gain(weight)).to(x.dtype)

    def mlp(self, layer: Layer, h: torch.Tensor) -> torch.Tensor:
        """Raw MLP output (before any post-norm) for residual rows h: [N, d] -> [N, d]."""
        gate, up = layer.gate_up.split(self.norm(h, layer.mlp_norm))  # [N, I] each
        return layer.down(self.act(gate) * up)

    def logits(self, x_final: torch.Tensor) -> torch.Tensor:
        """Final norm (live) + unembedding (+ softcap): [..., d] -> [..., V] float32."""
        out = F.linear(self.norm(x_final, self.final_norm), self.unembed_w).float()
        if self.final_softcap:
            out = torch.tanh(out / self.final_softcap) * self.final_softcap
        return out
