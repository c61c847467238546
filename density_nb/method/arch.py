"""A uniform view of a supported HF decoder's weights, and the layer math density_nb runs on them.

Each family differs only in where its weights live and which pieces exist (docs/method.md §9): pre-
and post-norms (RMSNorm with a gain ``w`` or Gemma's ``1 + w``, or LayerNorm with its bias), q/k
norms per head or over all heads, biases, fused projections, gated or plain MLPs, sliding windows,
soft-capping, scaled embeddings or learned positions, the rotary frequencies, and whether attention
and MLP run in parallel. A ``_Layout`` per family names its weights and a reader per weight layout
fills one ``Layer`` per decoder layer; everything else in density_nb goes through here. The math
calls plain ``torch`` ops on the weight tensors, not the model's modules (TransformerBridge wraps
those with hooks, which costs more than the math itself).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from transformers.activations import ACT2FN

from density_nb.method.linear import Linear
from density_nb.models import SUPPORTED_MODEL_TYPES, ModelError

STATIC_ROPE_TYPES = ("default", "linear", "llama3", "yarn", "proportional")  # frequencies fixed at load


@dataclass
class Norm:
    """A norm exactly as HF computes it: RMSNorm (float32 inside) ``w · x̂`` (Llama) or ``(1 + w) · x̂``
    (Gemma), or LayerNorm ``γ · (x − mean) / σ + β`` (GPT-2, GPT-NeoX; ``bias`` is β)."""

    weight: torch.Tensor  # [n] as stored
    gain: torch.Tensor  # [n] float32: w, or 1 + w
    eps: float
    scale_in_float: bool  # Gemma, OLMo-2: (x̂ · gain).to(dtype); Llama: w · x̂.to(dtype)
    bias: torch.Tensor | None = None  # [n] LayerNorm's β (a LayerNorm when set)

    def _centred(self, x: torch.Tensor) -> torch.Tensor:
        """x in float32, minus its mean over the last axis for a LayerNorm."""
        x = x.float()
        return x - x.mean(-1, keepdim=True) if self.bias is not None else x

    def inv_scale(self, x: torch.Tensor) -> torch.Tensor:
        """1/rms (RMSNorm) or 1/σ (LayerNorm) over the last axis, in float32: [..., 1]."""
        return torch.rsqrt(self._centred(x).pow(2).mean(-1, keepdim=True) + self.eps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """[..., n] -> [..., n] in x's dtype."""
        if self.bias is not None:
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        gain = self.gain if self.scale_in_float else self.weight
        if x.dtype == gain.dtype == torch.float32:  # one fused op, the same float32 arithmetic
            return F.rms_norm(x, gain.shape, gain, self.eps)
        normed = x.float() * self.inv_scale(x)
        if self.scale_in_float:
            return (normed * self.gain).to(x.dtype)
        return self.weight * normed.to(x.dtype)

    def frozen(self, x: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        """The norm at a given 1/rms ([..., 1]) instead of x's own: [..., n] in x's dtype."""
        return (x.float() * inv * self.gain).to(x.dtype)

    def linearised(self, e: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        """The norm's linear part at a fixed 1/rms or 1/σ ([..., 1]), applied to an edge vector:
        ``gain · centred(e) · inv`` (β belongs to no edge, docs/method.md §9.3): float32 [..., n]."""
        return self.gain * self._centred(e) * inv


@dataclass
class Layer:
    """One decoder layer's weights; norms, post-norms and biases are None where the family has none."""

    attn_norm: Norm | None  # before attention (OLMo-2 has none)
    mlp_norm: Norm | None  # before the MLP
    post_attn_norm: Norm | None  # after attention (Gemma, OLMo-2)
    post_mlp_norm: Norm | None  # after the MLP (Gemma, OLMo-2)
    q_norm: Norm | None  # [hd] per head (Qwen3, Gemma-3), or [H*hd] over all heads (OLMo-2)
    k_norm: Norm | None  # [hd] or [KV*hd]
    o_w: torch.Tensor  # [d, H*hd]
    o_bias: torch.Tensor | None  # [d] output-projection bias (GPT-2): added in proportion to the kept attention mass
    sliding_window: int | None
    rope_key: str  # which rotary table the layer uses
    scaling: float  # query scaling (GPT-2 may divide it by the layer's number)
    q: Linear  # -> [N, H*hd]
    kv: Linear  # -> keys [N, KV*hd], values [N, KV*hd]
    o: Linear  # [N, H*hd] -> [N, d], without its bias
    gated: bool  # SwiGLU/GeGLU MLP (act(gate) · up); else act(up) (GPT-2)
    gate_up: Linear  # -> gate [N, I], up [N, I]; ungated: up [N, I] only
    down: Linear  # [N, I] -> [N, d] (with its bias)

    @property
    def kv_of_zero(self) -> bool:
        """Whether a zero state has non-zero keys and values (projection biases, LayerNorm's β)."""
        return self.kv.has_bias or (self.attn_norm is not None and self.attn_norm.bias is not None)


@dataclass
class _Weights:
    """A layer's projection weights [out, in] and biases [out], as one reader finds them."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    o: torch.Tensor
    gate: torch.Tensor | None  # None: an ungated MLP
    up: torch.Tensor
    down: torch.Tensor
    q_b: torch.Tensor | None = None
    k_b: torch.Tensor | None = None
    v_b: torch.Tensor | None = None
    o_b: torch.Tensor | None = None
    up_b: torch.Tensor | None = None
    down_b: torch.Tensor | None = None


def sliding_windows(config: Any) -> list[int | None]:
    """Each layer's sliding window as HF masks it (None: full causal attention). Families with
    ``layer_types`` slide on their "sliding_attention" layers; the others (Mistral, Phi-3) on every
    layer whenever ``sliding_window`` is set."""
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is None:
        return [window] * config.num_hidden_layers
    return [window if kind == "sliding_attention" else None for kind in layer_types]


def _by_name(items: Any) -> dict[str, Any]:
    """HF names -> tensors or modules, through TransformerBridge's wrappers (the innermost wins)."""
    return {name.replace("._original_component", ""): item for name, item in items}


def _llama_weights(params: dict[str, torch.Tensor], pre: str, config: Any) -> _Weights:
    """Llama layout (Mistral, Qwen2/3, Gemma): separate q/k/v/o and gate/up/down projections."""
    q, k, v, o = (params[f"{pre}self_attn.{n}_proj.weight"] for n in "qkvo")
    q_b, k_b, v_b = (params.get(f"{pre}self_attn.{n}_proj.bias") for n in "qkv")
    gate, up, down = (params[f"{pre}mlp.{n}_proj.weight"] for n in ("gate", "up", "down"))
    return _Weights(q, k, v, o, gate, up, down, q_b, k_b, v_b)


def _phi3_weights(params: dict[str, torch.Tensor], pre: str, config: Any) -> _Weights:
    """Phi-3 layout: one fused ``qkv_proj`` (queries, then keys, then values) and one fused
    ``gate_up_proj`` (gate rows, then up rows)."""
    o = params[f"{pre}self_attn.o_proj.weight"]  # [d, H*hd]
    qkv = params[f"{pre}self_attn.qkv_proj.weight"]  # [H*hd + 2*KV*hd, d]
    kv_rows = (qkv.shape[0] - o.shape[1]) // 2
    q, k, v = qkv.split([o.shape[1], kv_rows, kv_rows])
    gate, up = params[f"{pre}mlp.gate_up_proj.weight"].chunk(2)  # [I, d] each
    return _Weights(q, k, v, o, gate, up, params[f"{pre}mlp.down_proj.weight"])


def _gpt2_weights(params: dict[str, torch.Tensor], pre: str, config: Any) -> _Weights:
    """GPT-2 layout: Conv1D weights stored [in, out] (transposed here), one fused ``c_attn`` (queries,
    keys, values), biases everywhere, an ungated MLP."""

    def conv(name: str) -> torch.Tensor:
        return params[f"{pre}{name}.weight"].t().contiguous()  # [out, in]

    q, k, v = conv("attn.c_attn").chunk(3)
    q_b, k_b, v_b = params[f"{pre}attn.c_attn.bias"].chunk(3)
    return _Weights(
        q, k, v, conv("attn.c_proj"), None, conv("mlp.c_fc"), conv("mlp.c_proj"),
        q_b, k_b, v_b, params[f"{pre}attn.c_proj.bias"], params[f"{pre}mlp.c_fc.bias"], params[f"{pre}mlp.c_proj.bias"],
    )  # fmt: skip


def _neox_weights(params: dict[str, torch.Tensor], pre: str, config: Any) -> _Weights:
    """GPT-NeoX layout: one fused ``query_key_value`` whose rows are per head [q_h | k_h | v_h],
    biases everywhere, an ungated MLP."""
    n_heads = config.num_attention_heads

    def split(fused: torch.Tensor) -> tuple[torch.Tensor, ...]:  # [H*3*hd, ...] -> q, k, v [H*hd, ...]
        per_head = fused.view(n_heads, 3, -1, *fused.shape[1:])  # [H, 3, hd, ...]
        return tuple(part.reshape(-1, *fused.shape[1:]) for part in per_head.unbind(1))

    q, k, v = split(params[f"{pre}attention.query_key_value.weight"])
    q_b, k_b, v_b = split(params[f"{pre}attention.query_key_value.bias"])
    return _Weights(
        q, k, v, params[f"{pre}attention.dense.weight"], None,
        params[f"{pre}mlp.dense_h_to_4h.weight"], params[f"{pre}mlp.dense_4h_to_h.weight"],
        q_b, k_b, v_b, params[f"{pre}attention.dense.bias"], params[f"{pre}mlp.dense_h_to_4h.bias"], params[f"{pre}mlp.dense_4h_to_h.bias"],
    )  # fmt: skip


@dataclass(frozen=True)
class _Layout:
    """Where a family keeps its weights: names of the embeddings, the final norm, each layer's prefix
    ({} = the layer's number), its norms (before attention, before the MLP, after attention, after
    the MLP; None: absent) and the reader of its projections."""

    embed: str
    final_norm: str
    layer: str
    norms: tuple[str | None, str | None, str | None, str | None]
    read: Callable[[dict[str, torch.Tensor], str, Any], _Weights]
    positions: str | None = None  # learned position embeddings


_LLAMA = _Layout(
    "model.embed_tokens", "model.norm", "model.layers.{}.", ("input_layernorm", "post_attention_layernorm", None, None), _llama_weights
)
_GEMMA_NORMS = ("input_layernorm", "pre_feedforward_layernorm", "post_attention_layernorm", "post_feedforward_layernorm")
_LAYOUTS: dict[str, _Layout] = {
    "phi3": replace(_LLAMA, read=_phi3_weights),
    "gemma2": replace(_LLAMA, norms=_GEMMA_NORMS),
    "gemma3_text": replace(_LLAMA, norms=_GEMMA_NORMS),
    "olmo2": replace(_LLAMA, norms=(None, None, "post_attention_layernorm", "post_feedforward_layernorm")),
    "gpt2": _Layout(
        "transformer.wte", "transformer.ln_f", "transformer.h.{}.", ("ln_1", "ln_2", None, None), _gpt2_weights, "transformer.wpe"
    ),
    "gpt_neox": _Layout(
        "gpt_neox.embed_in",
        "gpt_neox.final_layer_norm",
        "gpt_neox.layers.{}.",
        ("input_layernorm", "post_attention_layernorm", None, None),
        _neox_weights,
    ),
}
LAYER_NORM_FAMILIES = ("gpt2", "gpt_neox")


def _apply(norm: Norm | None, x: torch.Tensor) -> torch.Tensor:
    """A pre-norm, or the raw stream where the family has none."""
    return x if norm is None else norm(x)


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
        self.gemma = self.model_type in ("gemma2", "gemma3_text")
        self.qk_norm_full = self.model_type == "olmo2"  # q/k norms over all heads at once
        self.parallel: bool = bool(getattr(config, "use_parallel_residual", False))  # GPT-NeoX: attention and MLP read one input
        layout = _LAYOUTS.get(self.model_type, _LLAMA)
        params = _by_name((name, p.detach()) for name, p in hf_model.named_parameters(remove_duplicate=False))
        self.n_layers: int = config.num_hidden_layers
        self.n_heads: int = config.num_attention_heads
        self.n_kv_heads: int = getattr(config, "num_key_value_heads", None) or self.n_heads
        self.d_model: int = config.hidden_size
        self.head_dim: int = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.layer_norm = self.model_type in LAYER_NORM_FAMILIES
        eps = (getattr(config, name, None) for name in ("rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps"))
        self.eps: float = float(next((e for e in eps if e is not None), 1e-6))
        self.embed_w: torch.Tensor = params[layout.embed + ".weight"]  # [V, d]
        self.embed_scale: float = self.d_model**0.5 if self.gemma else 1.0
        self.pos_w: torch.Tensor | None = None if layout.positions is None else params[layout.positions + ".weight"]  # [n_ctx, d]
        self.final_norm: Norm = self._norm(params, layout.final_norm)
        self.unembed_w: torch.Tensor = params.get("lm_head.weight", self.embed_w)  # [V, d] (tied when absent)
        self.final_softcap: float | None = getattr(config, "final_logit_softcapping", None)
        self.attn_softcap: float | None = getattr(config, "attn_logit_softcapping", None)
        act = next(
            getattr(config, name) for name in ("hidden_activation", "hidden_act", "activation_function") if getattr(config, name, None)
        )
        self.act = self._activation(act)
        rotary = next((m for name, m in _by_name(hf_model.named_modules()).items() if name.endswith("rotary_emb")), None)
        per_type = rotary is not None and isinstance(rotary.rope_type, dict)  # Gemma-3: one rotary table per layer type
        layer_types = getattr(config, "layer_types", None) or ["full_attention"] * self.n_layers
        rope_keys = layer_types if per_type else ["default"] * self.n_layers
        windows = sliding_windows(config)
        self.layers = [self._layer(params, layout, config, i, windows[i], rope_keys[i]) for i in range(self.n_layers)]
        self._rotary = self._rotary_frequencies(rotary, sorted(set(rope_keys)))
        self._tables: dict[tuple[Any, ...], Any] = {}  # rotary tables and attention masks, per length and device

    # ---- reading the weights ----------------------------------------------------------------------------
    def _norm(self, params: dict[str, torch.Tensor], name: str) -> Norm:
        """The family's norm (RMSNorm, or LayerNorm with its β) stored under ``name``."""
        weight = params[name + ".weight"]
        gain = 1.0 + weight.float() if self.gemma else weight.float()
        bias = params[name + ".bias"] if self.layer_norm else None
        return Norm(weight, gain, self.eps, scale_in_float=self.gemma or self.model_type == "olmo2", bias=bias)

    def _scaling(self, config: Any, index: int) -> float:
        """The query scaling of layer ``index``."""
        if self.gemma:
            return float(config.query_pre_attn_scalar**-0.5)
        if self.model_type != "gpt2":
            return float(self.head_dim**-0.5)
        scaling = self.head_dim**-0.5 if config.scale_attn_weights else 1.0
        return scaling / (index + 1) if config.scale_attn_by_inverse_layer_idx else scaling

    @staticmethod
    def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """The MLP activation exactly as HF defines it."""
        if name not in ACT2FN:
            raise ModelError(f"MLP activation {name!r} is not supported; supported: {', '.join(ACT2FN)}.")
        act: Callable[[torch.Tensor], torch.Tensor] = ACT2FN[name]
        return act

    def _layer(self, params: dict[str, torch.Tensor], layout: _Layout, config: Any, index: int, window: int | None, rope_key: str) -> Layer:
        pre = layout.layer.format(index)
        w = layout.read(params, pre, config)
        attn_norm, mlp_norm, post_attn, post_mlp = (None if name is None else self._norm(params, pre + name) for name in layout.norms)
        q_norm, k_norm = (
            self._norm(params, f"{pre}self_attn.{n}_norm") if f"{pre}self_attn.{n}_norm.weight" in params else None for n in "qk"
        )
        return Layer(
            attn_norm=attn_norm,
            mlp_norm=mlp_norm,
            post_attn_norm=post_attn,
            post_mlp_norm=post_mlp,
            q_norm=q_norm,
            k_norm=k_norm,
            o_w=w.o,
            o_bias=w.o_b,
            sliding_window=window,
            rope_key=rope_key,
            scaling=self._scaling(config, index),
            q=Linear(w.q, biases=(w.q_b,)),
            kv=Linear(w.k, w.v, biases=(w.k_b, w.v_b)),
            o=Linear(w.o),
            gated=w.gate is not None,
            gate_up=Linear(w.up, biases=(w.up_b,)) if w.gate is None else Linear(w.gate, w.up),
            down=Linear(w.down, biases=(w.down_b,)),
        )

    @staticmethod
    def _rotary_frequencies(rotary: Any, keys: list[str]) -> dict[str, tuple[torch.Tensor, float]]:
        """Per rotary table: the inverse frequencies [rot/2] and cos/sin scaling of the model's own
        rotary module (so Llama-3 scaling and partial rotary come as HF computes them); no rotary
        module (GPT-2's learned positions): no rotating dims."""
        if rotary is None:
            return {"default": (torch.zeros(0), 1.0)}
        out = {}
        for key in keys:
            prefix = "" if key == "default" else f"{key}_"
            rope_type = rotary.rope_type if isinstance(rotary.rope_type, str) else rotary.rope_type[key]
            if rope_type not in STATIC_ROPE_TYPES:
                raise ModelError(
                    f"RoPE type {rope_type!r} changes its frequencies with the text's length; supported: {', '.join(STATIC_ROPE_TYPES)}."
                )
            out[key] = (getattr(rotary, f"{prefix}inv_freq").float(), float(getattr(rotary, f"{prefix}attention_scaling")))
        return out

    @property
    def device(self) -> torch.device:
        return self.embed_w.device

    @property
    def packed(self) -> bool:
        """Whether the GEMMs run packed (``linear.Linear`` on CPU), at row counts rounded up by ``linear.bucket``."""
        return self.layers[0].q.packed

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_w.dtype

    # ---- pieces of a layer ---------------------------------------------------------------------------
    def embed(self, token_ids: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids [N] at positions [N] (default 0..N-1) -> input states [N, d]."""
        x = F.embedding(token_ids.to(self.device), self.embed_w)
        if self.gemma:
            return x * torch.tensor(self.embed_scale, dtype=x.dtype)
        if self.pos_w is None:
            return x
        positions = torch.arange(len(token_ids), device=self.device) if positions is None else positions.to(self.device)
        if len(positions) and int(positions.max()) >= self.pos_w.shape[0]:
            raise ModelError(
                f"{self.model_type} has learned positions for {self.pos_w.shape[0]} tokens, and the text needs "
                f"{int(positions.max()) + 1}: shorten the text."
            )
        return x + F.embedding(positions, self.pos_w)

    def rope(self, layer: Layer, n_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos [n_pos, hd] and sin [n_pos, rot] for positions 0..n_pos-1, as HF's rotary module gives
        them; only the first rot ≤ hd dims of a head rotate (cos is 1 past them)."""
        key = (layer.rope_key, n_pos, str(self.device))
        if key not in self._tables:
            inv_freq, scale = self._rotary[layer.rope_key]
            freqs = torch.arange(n_pos, device=self.device).float()[:, None] * inv_freq.to(self.device)[None]  # [P, rot/2]
            emb = torch.cat((freqs, freqs), dim=-1)  # [P, rot]
            cos = F.pad(emb.cos() * scale, (0, self.head_dim - emb.shape[-1]), value=1.0)  # [P, hd]
            self._tables[key] = (cos.to(self.dtype), (emb.sin() * scale).to(self.dtype))
        return self._tables[key]

    @staticmethod
    def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x: [N, heads, hd]; cos [N, hd], sin [N, rot] (one row per position of x). HF's
        x·cos + rotate_half(x)·sin on the first rot dims; the others are multiplied by cos (= 1)."""
        half = sin.shape[-1] // 2
        cos, sin = cos[:, None, :], sin[:, None, :]
        out = x * cos
        out[..., :half].addcmul_(x[..., half : 2 * half], sin[..., :half], value=-1.0)
        out[..., half : 2 * half].addcmul_(x[..., :half], sin[..., half:])
        return out

    def queries(self, layer: Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Residual rows x: [N, d] -> scaled, roped queries [N, H, hd]."""
        q = self._qk_norm(layer.q_norm, layer.q(_apply(layer.attn_norm, x)), self.n_heads)  # [N, H, hd]
        return self.apply_rope(q, cos * layer.scaling, sin * layer.scaling)  # the scaling rides on the tables

    def keys_values(self, layer: Layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual rows x: [N, d] -> roped keys [N, KV, hd] and values [N, KV, hd]."""
        k, v = layer.kv.split(_apply(layer.attn_norm, x))  # [N, KV*hd] each
        k = self._qk_norm(layer.k_norm, k, self.n_kv_heads)  # [N, KV, hd]
        return self.apply_rope(k, cos, sin), v.view(-1, self.n_kv_heads, self.head_dim)

    def _qk_norm(self, norm: Norm | None, x: torch.Tensor, heads: int) -> torch.Tensor:
        """[N, heads*hd] -> [N, heads, hd], normalised per head or (OLMo-2) over all heads at once."""
        if norm is not None and self.qk_norm_full:
            return norm(x).view(-1, heads, self.head_dim)
        x = x.view(-1, heads, self.head_dim)
        return x if norm is None else norm(x)

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
        return torch.softmax(scores.float().add_(bias), dim=-1).to(q.dtype)

    def mix(self, probs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Σ_s A[h,t,s] v[s]: probs [B, H, P, P], v [B, P, KV, hd] -> [B, P, H, hd] (a strided view)."""
        n_batch, _, n_pos, _ = probs.shape
        group = self.n_heads // self.n_kv_heads
        z = torch.matmul(probs.reshape(n_batch, self.n_kv_heads, group * n_pos, n_pos), v.transpose(1, 2))  # [B, KV, G*P, hd]
        return z.view(n_batch, self.n_kv_heads, group, n_pos, self.head_dim).permute(0, 3, 1, 2, 4).flatten(2, 3)

    @staticmethod
    def post_norm(x: torch.Tensor, norm: Norm | None, frozen_inv: torch.Tensor | None) -> torch.Tensor:
        """A post-norm (identity when ``norm`` is None), live or at a frozen 1/rms ([N, 1])."""
        if norm is None:
            return x
        return norm(x) if frozen_inv is None else norm.frozen(x, frozen_inv)

    def mlp(self, layer: Layer, h: torch.Tensor) -> torch.Tensor:
        """Raw MLP output (before any post-norm) for residual rows h: [N, d] -> [N, d]."""
        if not layer.gated:
            return layer.down(self.act(layer.gate_up(_apply(layer.mlp_norm, h))))  # [N, I] -> [N, d]
        gate, up = layer.gate_up.split(_apply(layer.mlp_norm, h))  # [N, I] each
        return layer.down(self.act(gate).mul_(up))

    def logits(self, x_final: torch.Tensor) -> torch.Tensor:
        """Final norm (live) + unembedding (+ softcap): [..., d] -> [..., V] float32."""
        out = F.linear(self.final_norm(x_final), self.unembed_w).float()
        if self.final_softcap:
            out = torch.tanh(out / self.final_softcap) * self.final_softcap
        return out
