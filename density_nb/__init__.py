"""density_nb: computation density (s-Trace) of transformer language models.

    from density_nb import load_model, trace
    result = trace(load_model("smollm2-135m"), "Some text to trace")
    result.summary(); result.widget()
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["BUILTIN_MODELS", "DEFAULT_MODEL", "DensityResult", "ModelError", "TraceInputError", "load_model", "trace", "trace_many"]

_LAZY = {
    "BUILTIN_MODELS": "density_nb.models",
    "DEFAULT_MODEL": "density_nb.models",
    "ModelError": "density_nb.models",
    "load_model": "density_nb.models",
    "trace": "density_nb.trace",
    "trace_many": "density_nb.trace",
    "TraceInputError": "density_nb.trace",
    "DensityResult": "density_nb.result",
}


def __getattr__(name: str) -> Any:
    """Import torch-heavy parts on first use, so viewing a saved result needs no torch."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # importing density_nb.trace binds the module here; the function wins
        return value
    raise AttributeError(f"module 'density_nb' has no attribute {name!r}")
