"""``trace(model, text)``: the s-Trace density of every next-token prediction of a text, as a
``DensityResult`` (the steps themselves are ``method.pipeline``'s)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from tqdm.auto import tqdm

from density_nb.config import TraceConfig, resolve
from density_nb.errors import TraceInputError
from density_nb.method.inputs import Roots
from density_nb.method.pipeline import passes, result_fields, setup
from density_nb.result import DensityResult


# ---- the public entry points --------------------------------------------------------------------------
def trace(
    model: Any,
    text: str,
    roots: Roots = "all",
    config: TraceConfig | None = None,
    *,
    progress: bool = True,
    **settings: Any,
) -> DensityResult:
    """Trace the computation density of each next-token prediction of ``text``.

    model: a TransformerBridge from ``load_model`` (load it once, trace many texts), or anything
    ``load_model`` accepts; a name is loaded once and kept (see ``density_nb.models.cached_model``).
    roots: ``"all"`` (every position whose next token is in the text), ``"last"`` (the prediction
    after the last token, as the papers do) or a list of positions.
    config: a ``TraceConfig``; ``settings``: any of its fields to override (``grid="paper"``,
    ``norms="frozen"``, ``baselines=["random", "inverse"]``, ...). Select a root's numbers with ``result.at(position)``.
    """
    return trace_many(model, [text], [roots], config, progress=progress, **settings)[0]


def trace_many(
    model: Any,
    texts: Sequence[str],
    roots: Roots | Sequence[Roots] = "all",
    config: TraceConfig | None = None,
    *,
    progress: bool = True,
    **settings: Any,
) -> list[DensityResult]:
    """``trace`` of several texts, their roots sharing masked passes: one DensityResult per text,
    equal to ``trace`` of that text up to float rounding (batching changes summation order only).

    roots: ``"all"`` or ``"last"`` for every text, or one entry per text (each as in ``trace``).
    """
    config = resolve(config, settings)
    if isinstance(texts, str):
        raise TraceInputError("trace_many takes a list of texts; for one text use trace(model, text).")
    texts = list(texts)
    if not texts:
        raise TraceInputError("texts is empty: give at least one text.")
    per_text: list[Roots] = [roots] * len(texts) if isinstance(roots, str) else list(roots)  # type: ignore[arg-type]
    if len(per_text) != len(texts):
        raise TraceInputError(f"roots has {len(per_text)} entries for {len(texts)} texts: give one per text, or 'all' / 'last'.")
    bridge, arch, prepared = setup(model, texts, per_text, config)
    with tqdm(total=sum(len(t.positions) for t in prepared), desc="trace", unit="root", disable=not progress) as bar:
        for done in passes(arch, prepared, config):
            bar.update(done)
    return [DensityResult(**result_fields(bridge, arch, text, config)) for text in prepared]


def trace_steps(
    model: Any,
    text: str,
    roots: Roots = "all",
    config: TraceConfig | None = None,
    *,
    stop: threading.Event | None = None,
    first: int = 1,
    **settings: Any,
) -> Iterator[DensityResult]:
    """``trace`` that shows its work: after each masked pass, a ``DensityResult`` of the roots traced so
    far (the last result equals ``trace``'s). The first pass holds ``first`` roots alone: with 1, something
    shows within about a second, and the roots after it share passes differently from ``trace`` (equal up
    to float rounding); with 0 the passes are ``trace``'s own, so every result is bitwise a prefix of
    ``trace``'s and the last one equals it (the playground's choice). To cancel, stop iterating
    (``close()``) or set ``stop`` from any thread: the passes in flight stop within one layer, the
    iteration ends, and every result already yielded stays valid.

        for partial in trace_steps(model, text):
            strip.update(partial)
    """
    config = resolve(config, settings)
    bridge, arch, prepared = setup(model, [text], [roots], config)
    for _ in passes(arch, prepared, config, first=first, stop=stop):
        yield DensityResult(**result_fields(bridge, arch, prepared[0], config))
