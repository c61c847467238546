"""A text and its roots: checked before any model work, and tokenized with the model's own tokenizer."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from density_nb.config import TraceConfig
from density_nb.errors import TraceInputError
from density_nb.models import hf_tokenizer

_TOKENIZER_LOCK = threading.Lock()
Roots = str | int | Sequence[int]


# ---- 0. inputs, checked before any model work -------------------------------------------------------
def check_text(text: Any) -> None:
    if not isinstance(text, str):
        raise TraceInputError(f"The text must be a string, got {type(text).__name__}.")
    if not text.strip():
        raise TraceInputError("The text is empty or only whitespace: give a text of at least a few words.")


def check_roots(roots: Any) -> None:
    if isinstance(roots, str):
        if roots not in ("all", "last"):
            raise TraceInputError(f"roots must be 'all', 'last' or a list of positions, got {roots!r}.")
        return
    items = [roots] if isinstance(roots, (int, np.integer)) else roots
    if isinstance(items, (bool, np.bool_)) or not isinstance(items, (Sequence, np.ndarray)):
        raise TraceInputError(f"roots must be 'all', 'last' or a list of positions, got {roots!r}.")
    if len(items) == 0:
        raise TraceInputError("roots is empty: give 'all', 'last' or at least one position.")
    bad = [r for r in items if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, np.integer))]
    if bad:
        raise TraceInputError(f"Root positions must be integers, got {bad[:5]}.")


# ---- 1. tokenize ---------------------------------------------------------------------------------------
def tokenize(bridge: Any, text: str, prepend_bos: bool | None = None) -> tuple[torch.Tensor, list[str]]:
    """Token ids with the model's own HF tokenizer defaults, and each token's own piece of the text.

    A character split over several tokens (byte-level BPE on CJK, emoji, some accents) is shown once,
    by the first of its tokens; the others get ``""`` (a continuation), so the pieces join back to the
    text. Special tokens (BOS) show their name.
    ``prepend_bos``: None keeps the tokenizer's default; True/False forces a BOS token on/off.
    """
    tok = hf_tokenizer(bridge)
    with _TOKENIZER_LOCK:  # a fast tokenizer is not safe to call from several threads at once
        enc = tok(text, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    bos = tok.bos_token_id
    has_bos = bool(ids) and bos is not None and ids[0] == bos
    if prepend_bos is True and not has_bos:
        if bos is None:
            raise TraceInputError("prepend_bos=True, but this tokenizer has no BOS token.")
        ids, offsets = [bos, *ids], [(0, 0), *offsets]
    elif prepend_bos is False and has_bos:
        ids, offsets = ids[1:], offsets[1:]
    pieces, shown = [], 0  # shown: the text up to here is already in some token's piece
    for i, (a, b) in zip(ids, offsets):
        if b <= a:
            pieces.append(tok.convert_ids_to_tokens(i))
        else:
            pieces.append(text[max(a, shown) : b] if b > shown else "")
            shown = max(shown, b)
    return torch.tensor(ids, dtype=torch.long), pieces


def root_positions(roots: Roots, n_tokens: int) -> list[int]:
    """The root positions ``roots`` names in a text of ``n_tokens`` tokens, sorted and unique."""
    if isinstance(roots, str):
        if roots == "last":
            return [n_tokens - 1]
        if n_tokens < 2:
            raise TraceInputError(
                f"The text has {n_tokens} token(s): too short to predict anything from it. roots='all' "
                "traces every prediction the text can check (positions 0..T-2); give a longer text, "
                "or roots='last' to trace the prediction after the last token."
            )
        return list(range(n_tokens - 1))
    positions = [int(roots)] if isinstance(roots, (int, np.integer)) else [int(r) for r in roots]
    bad = [r for r in positions if not -n_tokens <= r < n_tokens]
    if bad:
        raise TraceInputError(f"Root positions {bad} are outside the text's {n_tokens} tokens (0..{n_tokens - 1}).")
    return sorted({r % n_tokens for r in positions})


def check_length(n_tokens: int, roots: Roots, config: TraceConfig) -> list[int]:
    """The root positions of a text of ``n_tokens`` tokens, refusing an empty or over-long text."""
    if n_tokens == 0:
        raise TraceInputError("The text produced no tokens: give a text of at least a few words.")
    if n_tokens > config.max_tokens:
        raise TraceInputError(
            f"The text has {n_tokens} tokens, over max_tokens={config.max_tokens}. Shorten it, or raise the limit "
            f"with trace(..., max_tokens={n_tokens}) (cost grows roughly with the cube of the length)."
        )
    return root_positions(roots, n_tokens)
