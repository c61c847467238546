"""density_nb: computation density (s-Trace) of transformer language models.

from density_nb import load_model, trace
model = load_model("smollm2-135m")
result = trace(model, "Some text to trace")
result.summary(); result.at(3); result.widget()
"""

from __future__ import annotations

import importlib
from typing import Any

from density_nb import threads as _threads

__version__ = "0.1.0"
_threads.apply()  # before torch loads: OpenMP reads its thread count and wait policy once (see threads.py)

_LAZY = {
    "BUILTIN_MODELS": "density_nb.config",
    "DEFAULT_MODEL": "density_nb.config",
    "ModelError": "density_nb.models",
    "load_model": "density_nb.models",
    "release_models": "density_nb.models",
    "TraceConfig": "density_nb.config",
    "trace": "density_nb.tracing",
    "trace_many": "density_nb.tracing",
    "trace_steps": "density_nb.tracing",
    "generate": "density_nb.generation",
    "trace_live": "density_nb.generation",
    "compare": "density_nb.views",
    "playground": "density_nb.teaching.playground",
    "TraceInputError": "density_nb.errors",
    "DensityResult": "density_nb.result",
    "RootResult": "density_nb.result",
    "ResultFileError": "density_nb.result",
    "DensityNBError": "density_nb.errors",
    "WriteError": "density_nb.files",
    "DataError": "density_nb.corpus.sources",
    "find_data": "density_nb.corpus.sources",
    "passages": "density_nb.corpus.sources",
    "read_prompts": "density_nb.corpus.sources",
    "unigram_counts": "density_nb.corpus.sources",
    "token_frequency": "density_nb.analysis.frequency",
    "stack": "density_nb.analysis.tables",
    "CorpusError": "density_nb.corpus.store",
    "CorpusRun": "density_nb.corpus.runs",
    "load_runs": "density_nb.corpus.runs",
    "run_corpus": "density_nb.corpus.runner",
    "trace_passage": "density_nb.corpus.passages",
    "trace_passages": "density_nb.corpus.passages",
    "set_threads": "density_nb.threads",
    "Subgraph": "density_nb.method.subgraphs",
    "subgraph": "density_nb.method.subgraphs",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import torch-heavy parts on first use, so viewing a saved result needs no torch."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'density_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
