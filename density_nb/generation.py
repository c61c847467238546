"""Density along generated text: ``generate`` lets the model write and traces every step it takes;
``trace_live`` shows ``trace`` of a long text as its masked passes complete. Both show a live explorer
that updates as steps complete, with progress and a cancel button that keeps what is done.

Each step is traced with ``trace`` on the text written so far, so a result equals ``trace`` of its
final text at the same roots (up to float rounding: ``trace`` batches roots differently).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import torch
from tqdm.auto import tqdm

from density_nb.config import TraceConfig, resolve
from density_nb.errors import TraceInputError
from density_nb.method.inputs import Roots, root_positions, tokenize
from density_nb.models import cached_model, hf_tokenizer, load_model, model_name
from density_nb.result import DensityResult
from density_nb.tracing import trace, trace_steps
from density_nb.views.compare import char_spans

if TYPE_CHECKING:
    from density_nb.views import LiveTrace  # anywidget: the widgets extra, only for live views

Pick = tuple[DensityResult, int]  # a traced result and the index of one of its roots
Step = Callable[[DensityResult | None, int], None]  # (the result so far, steps done)


def _bridge(model: Any) -> Any:
    return cached_model(model) if isinstance(model, str) else load_model(model)


def _nucleus(logits: torch.Tensor, top_p: float, temperature: float, rng: torch.Generator) -> int:
    """A token drawn from the smallest set of most probable tokens whose mass reaches ``top_p``."""
    probs = torch.softmax(logits.double() / temperature, -1)  # [V]
    order = torch.argsort(probs, descending=True, stable=True)  # ties: lower id first, as argmax
    ranked = probs[order]
    keep = torch.cumsum(ranked, 0) - ranked < top_p  # every token before the mass reaches top_p (at least one)
    weights = ranked[keep]
    return int(order[keep][torch.multinomial(weights / weights.sum(), 1, generator=rng)])


def _check_generation(prompt: Any, max_new_tokens: Any, top_p: Any, temperature: Any) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise TraceInputError("The prompt is empty or not a string: give a text of at least a few words to continue.")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise TraceInputError(f"max_new_tokens must be an integer ≥ 1, got {max_new_tokens!r}.")
    if not 0 < top_p <= 1:
        raise TraceInputError(f"top_p must lie in (0, 1] (the papers use 0.6), got {top_p!r}.")
    if not temperature > 0:
        raise TraceInputError(f"temperature must be > 0, got {temperature!r}.")


def _generate(
    bridge: Any,
    prompt: str,
    max_new_tokens: int,
    sample: bool,
    seed: int,
    top_p: float,
    temperature: float,
    config: TraceConfig,
    on_step: Step,
    stop: threading.Event,
    progress: bool,
) -> DensityResult | None:
    """The generation loop: each step continues the text's own tokenization, adds the chosen token's
    text, and traces the steps that predict the written tokens (an incomplete character waits for
    the tokens that complete it)."""
    tok = hf_tokenizer(bridge)
    ids, pieces = tokenize(bridge, prompt, config.prepend_bos)
    if len(ids) + max_new_tokens > config.max_tokens:
        raise TraceInputError(
            f"The prompt has {len(ids)} tokens; with max_new_tokens={max_new_tokens} the text could exceed "
            f"max_tokens={config.max_tokens}. Shorten the prompt, lower max_new_tokens or raise max_tokens."
        )
    rng = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on any device
    special = set(tok.all_special_ids)
    device = next(bridge.original_model.parameters()).device
    text, steps, stopped = prompt, 0, "max_new_tokens"
    pending: list[int] = []  # tokens of a character not yet complete
    traced: dict[tuple[int, ...], Pick] = {}  # the ids up to a root's next token -> that root, traced
    result = None
    with tqdm(total=max_new_tokens, desc="generate", unit="step", disable=not progress) as bar:
        try:
            for _ in range(max_new_tokens):
                if stop.is_set():
                    stopped = "cancelled"
                    break
                context = torch.cat([ids, torch.tensor(pending, dtype=torch.long)])
                with torch.no_grad():
                    logits = bridge.original_model(context[None].to(device)).logits[0, -1].float().cpu()  # [V]
                token = _nucleus(logits, top_p, temperature, rng) if sample else int(logits.argmax())
                if token in special:
                    stopped = "end_of_text"
                    break
                steps += 1
                bar.update(1)
                shown = tok.decode(ids.tolist(), skip_special_tokens=True)
                written = tok.decode([*ids.tolist(), *pending, token], skip_special_tokens=True)
                if written.endswith("\ufffd"):  # the first bytes of a character: wait for the rest
                    pending.append(token)
                    continue
                text += written[len(shown) :] if written.startswith(shown) else tok.decode([*pending, token], skip_special_tokens=True)
                ids, pieces = tokenize(bridge, text, config.prepend_bos)
                pending = []
                generated = np.array([end > len(prompt) for _, end in char_spans(pieces, text)])
                roots = [int(i) - 1 for i in np.flatnonzero(generated) if i > 0]
                keys = [tuple(ids[: p + 2].tolist()) for p in roots]
                missing = [p for p, key in zip(roots, keys) if key not in traced]
                if missing:
                    part = trace(bridge, text, roots=missing, config=config, progress=False)
                    for j, p in enumerate(part.roots.tolist()):
                        traced[tuple(ids[: p + 2].tolist())] = (part, j)
                if roots:
                    result = DensityResult.from_roots([traced[key] for key in keys], text, ids.numpy(), pieces, generated)
                    on_step(result, steps)
        except KeyboardInterrupt:
            if result is None:
                raise
            stopped = "interrupted"
    if result is not None:
        result.settings["generation"] = {
            "prompt_chars": len(prompt),
            "max_new_tokens": max_new_tokens,
            "sample": sample,
            "seed": seed,
            "top_p": top_p,
            "temperature": temperature,
            "steps": steps,
            "stopped": stopped,
        }
    return result


@overload
def generate(
    model: Any,
    prompt: str,
    max_new_tokens: int = ...,
    *,
    sample: bool = ...,
    seed: int = ...,
    top_p: float = ...,
    temperature: float = ...,
    live: Literal[False] = ...,
    config: TraceConfig | None = ...,
    progress: bool = ...,
    **settings: Any,
) -> DensityResult: ...
@overload
def generate(
    model: Any,
    prompt: str,
    max_new_tokens: int = ...,
    *,
    sample: bool = ...,
    seed: int = ...,
    top_p: float = ...,
    temperature: float = ...,
    live: Literal[True],
    config: TraceConfig | None = ...,
    progress: bool = ...,
    **settings: Any,
) -> LiveTrace: ...
def generate(
    model: Any,
    prompt: str,
    max_new_tokens: int = 20,
    *,
    sample: bool = False,
    seed: int = 0,
    top_p: float = 0.6,
    temperature: float = 1.0,
    live: bool = False,
    config: TraceConfig | None = None,
    progress: bool = True,
    **settings: Any,
) -> DensityResult | LiveTrace:
    """Let the model continue ``prompt`` for up to ``max_new_tokens`` tokens (stopping at its
    end-of-text or any other special token) and trace the density of every step it takes.

    Greedy by default; ``sample=True`` draws from the nucleus of mass ``top_p`` (0.6, as the papers'
    generation runs) at ``temperature``, reproducibly for a ``seed``. Each step continues the text's
    own tokenization (the tokens ``trace`` gives the text written so far); where writing on
    re-tokenizes earlier text (trailing whitespace, a character completed), those steps are traced
    again, so the result equals ``trace(model, result.text, roots=result.roots)`` (up to float
    rounding). An incomplete character at the very end is left out. The result marks the tokens the model wrote (``result.generated``) and records
    the run in ``result.settings["generation"]``. Trace settings as in ``trace`` (``config`` or
    keywords; ``TraceConfig.seed`` is the trace's, not the sampling's).

    ``live=True`` returns at once with a ``LiveTrace`` widget (display it) that updates after each
    step, with progress and a Cancel button that stops cleanly; ``.result`` holds what is done and
    ``.wait()`` returns the final result. Without it, interrupting the kernel stops generation and
    returns the steps done.
    """
    _check_generation(prompt, max_new_tokens, top_p, temperature)
    config = resolve(config, settings)
    bridge = _bridge(model)

    def work(on_step: Step, stop: threading.Event) -> DensityResult | None:
        return _generate(bridge, prompt, max_new_tokens, sample, seed, top_p, temperature, config, on_step, stop, progress and not live)

    if not live:
        result = work(lambda result, done: None, threading.Event())
        if result is None:
            raise TraceInputError("The model ended the text at once (its first token was end-of-text): nothing was generated to trace.")
        return result
    from density_nb.views import LiveTrace  # anywidget: the widgets extra, only for live views

    _, pieces = tokenize(bridge, prompt, config.prepend_bos)
    view = LiveTrace(model_name(bridge), pieces, max_new_tokens, "steps", tokenizer=hf_tokenizer(bridge))
    return view.run(work)


def trace_live(model: Any, text: str, roots: Roots = "all", config: TraceConfig | None = None, **settings: Any) -> LiveTrace:
    """``trace`` of a long text shown live: returns at once with a ``LiveTrace`` widget (display it)
    whose strip fills after each masked pass of ``tracing.trace_steps``, with progress and a Cancel
    button that keeps the roots done. ``.wait()`` returns the result, ``trace(model, text, roots)``'s
    when it runs to the end."""
    if not isinstance(text, str) or not text.strip():
        raise TraceInputError("The text is empty or not a string: give a text of at least a few words.")
    config = resolve(config, settings)
    bridge = _bridge(model)
    ids, pieces = tokenize(bridge, text, config.prepend_bos)
    total = len(root_positions(roots, len(ids)))

    def work(on_step: Step, stop: threading.Event) -> DensityResult | None:
        result = None
        for result in trace_steps(bridge, text, roots, config, stop=stop):  # ends within a layer of a cancel
            on_step(result, len(result.roots))
        return result

    from density_nb.views import LiveTrace  # anywidget: the widgets extra, only for live views

    view = LiveTrace(model_name(bridge), pieces, total, "roots", tokenizer=hf_tokenizer(bridge))
    return view.run(work)
