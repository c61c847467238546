"""``density_nb.playground(model_or_models)``: type a sentence, see its density; change one word, see what moves.

The view is ``views.playground.Playground`` (no torch); this module gives it what knows models: a ``ModelTracer``
over the models given (names, the built-in ones by default, loaded on first use and kept by
``models.cached_model``; or models already loaded), which counts a text's tokens with the tokenizer alone
(``models.token_counter``) and traces with ``tracing.trace_steps`` on ``trace``'s own passes, so that what the
playground shows at the end equals ``trace(model, text, ...)`` bitwise. Its examples are the teaching corpus's
contrasting pairs (``texts``).

It lives in ``teaching``, the wing above ``tracing`` that may import models, tracing and views alike: it joins
the three, and it brings the teaching corpus's pairs as its examples.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from density_nb.config import BUILTIN_MODELS, DEFAULT_MODEL, GRIDS, TraceConfig, resolve
from density_nb.errors import TraceInputError
from density_nb.method.inputs import check_length, check_text, tokenize
from density_nb.models import TokenCounter, cached_model, hf_tokenizer, load_model, model_name, named_tokenizer
from density_nb.teaching import texts
from density_nb.tracing import trace_steps
from density_nb.views.playground import Playground

__all__ = ["KINDS", "ModelTracer", "examples", "playground"]

KINDS = {
    "context": "the same sentence alone, and after a paragraph that sets up its last word (finding 5)",
    "certainty": "a continuation almost everyone would give, beside an open one (finding 7)",
    "rarity": "an everyday last word, beside a rare one (finding 4)",
}


def examples() -> list[dict[str, Any]]:
    """The teaching corpus's contrasting pairs as the playground lists them: per kind, its pairs and their texts."""
    groups = []
    for kind, about in KINDS.items():
        table = texts.pairs(kind)
        pairs = [
            {"pair": str(pair), "items": [{"role": str(r.role), "text": str(r.text)} for r in rows.itertuples()]}
            for pair, rows in table.groupby("pair", sort=True)
        ]
        groups.append({"kind": kind, "about": about, "pairs": pairs})
    return groups


class ModelTracer:
    """The playground's ``Tracer``: the models it may use (names loaded on first use and kept, or objects
    already loaded, by their names) and the settings it traces with (``config``; the playground chooses the grid
    and the baselines)."""

    grids = tuple(GRIDS)

    def __init__(self, models: Sequence[Any], config: TraceConfig) -> None:
        self.config = config
        self.max_tokens = config.max_tokens
        self._loaded: dict[str, Any] = {}  # name -> a model given as an object
        names: list[str] = []
        for spec in models:
            if isinstance(spec, str):
                name = spec.strip()
            else:
                bridge = load_model(spec)
                name = model_name(bridge)
                self._loaded[name] = bridge
            if name and name not in names:
                names.append(name)
        if not names:
            raise TraceInputError("playground needs at least one model: a name such as 'smollm2-135m', or a loaded model.")
        self.models = tuple(names)

    def bridge(self, model: str) -> Any:
        """The model ``model`` (loaded on first use; ``ModelError`` names what is known when it is not)."""
        return self._loaded[model] if model in self._loaded else cached_model(model)

    def count(self, model: str, text: str) -> int | None:
        """The tokens of ``text``: with the tokenizer alone, or the loaded model's; None for a model not loaded yet
        whose tokenizer cannot be read alone (a hub name)."""
        counter = self._loaded.get(model) or named_tokenizer(model)
        if counter is None:
            return None
        if isinstance(counter, TokenCounter):
            return counter.count(text, self.config.prepend_bos)
        return len(tokenize(counter, text, self.config.prepend_bos)[0])

    def start(self, model: str, text: str) -> tuple[list[str], int]:
        """Refuse an empty or over-long text (before loading a model where the tokenizer alone can tell), then load
        the model and tokenize: the tokens and the number of roots (every prediction the text can check)."""
        check_text(text)
        known = self.count(model, text) if model not in self._loaded else None
        if known is not None:
            check_length(known, "all", self.config)
        ids, pieces = tokenize(self.bridge(model), text, self.config.prepend_bos)
        return pieces, len(check_length(len(ids), "all", self.config))

    def steps(self, model: str, text: str, grid: str, baselines: Sequence[str], stop: threading.Event) -> Iterator[Any]:
        """``trace_steps`` on ``trace``'s passes (``first=0``): every result a prefix of ``trace``'s, the last equal."""
        config = self.config.replace(grid=grid, baselines=tuple(baselines))
        yield from trace_steps(self.bridge(model), text, "all", config, stop=stop, first=0)

    def tokenizer(self, model: str) -> Any:
        """The model's own tokenizer (names the tokens the preview lists)."""
        return hf_tokenizer(self.bridge(model))


def playground(
    model_or_models: Any = None,
    *,
    text: str = "",
    grid: str = "fast",
    baselines: Sequence[str] = (),
    config: TraceConfig | None = None,
    **settings: Any,
) -> Playground:
    """A playground (display it): type a text, Trace (or Ctrl/Cmd+Enter), watch the strip fill in with the
    explorer underneath; change one word, trace again and compare the two with their per-token difference.

    ``model_or_models``: a model or a list of them, each a name (``load_model``'s: loaded on first use and kept)
    or a loaded model; None offers the built-in models, SmolLM2-135M first. ``text``: what the box starts with;
    ``grid`` ("fast" or "paper") and ``baselines``: the first trace's settings (the view can change them); other
    trace settings as in ``trace`` (``config`` or keywords, e.g. ``max_tokens=64``).

        pg = density_nb.playground("smollm2-135m")
        pg                                   # the view
        pg.text = "The cat sat on the mat"; pg.run(); pg.wait()
        pg.result, pg.history                # the result shown; every result traced here
    """
    config = resolve(config, settings)
    if not isinstance(grid, str) or grid not in GRIDS:
        raise TraceInputError(f"The playground traces on the 'fast' or 'paper' grid, not {grid!r}: pass grid='fast' or grid='paper'.")
    if model_or_models is None:
        models: list[Any] = list(BUILTIN_MODELS)
    elif isinstance(model_or_models, (list, tuple)):
        models = list(model_or_models)
    else:
        models = [model_or_models]
    tracer = ModelTracer(models, config)
    first = DEFAULT_MODEL if model_or_models is None else tracer.models[0]
    chosen = tuple(baselines) or config.baselines
    return Playground(tracer, examples=examples(), text=text, model=first, grid=grid, baselines=list(chosen))
