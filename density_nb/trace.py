"""``trace(model, text)``: the s-Trace density of every next-token prediction of a text."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from density_nb.ablation import NORMS, Norms, RankBatch, masked_logits
from density_nb.arch import Arch
from density_nb.importance import EdgeWeights, Weighting, edge_weights, random_weights
from density_nb.metrics import distribution_metrics
from density_nb.models import hf_tokenizer, load_model, model_name
from density_nb.result import DensityResult
from density_nb.stratify import Ranks, edge_count, expand, make_grid, stratum_sizes

DEFAULT_MAX_TOKENS = 256
_TOKENIZER_LOCK = threading.Lock()


class TraceInputError(ValueError):
    """The text, roots or grid given to ``trace`` cannot be traced; the message says how to fix it."""


@dataclass
class _Root:
    """One root's strata, before its masked passes."""

    position: int
    ranks: Ranks
    sizes: np.ndarray  # [K] edges per stratum


def tokenize(bridge: Any, text: str, prepend_bos: bool | None = None) -> tuple[torch.Tensor, list[str]]:
    """Token ids with the model's own HF tokenizer defaults, and each token's piece of the text.

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
    pieces = [text[a:b] if b > a else tok.convert_ids_to_tokens(i) for i, (a, b) in zip(ids, offsets)]
    return torch.tensor(ids, dtype=torch.long), pieces


def _resolve_roots(roots: str | int | Sequence[int], n_tokens: int) -> list[int]:
    if isinstance(roots, str):
        if roots == "all":
            if n_tokens < 2:
                raise TraceInputError(
                    f"The text has {n_tokens} token(s): too short to predict anything from it. roots='all' "
                    "traces every prediction the text can check (positions 0..T-2); give a longer text, "
                    "or roots='last' to trace the prediction after the last token."
                )
            return list(range(n_tokens - 1))
        if roots == "last":
            return [n_tokens - 1]
        raise TraceInputError(f"roots must be 'all', 'last' or a list of positions, got {roots!r}.")
    positions = [int(roots)] if isinstance(roots, (int, np.integer)) else [int(r) for r in roots]
    if not positions:
        raise TraceInputError("roots is empty: give 'all', 'last' or at least one position.")
    bad = [r for r in positions if not -n_tokens <= r < n_tokens]
    if bad:
        raise TraceInputError(f"Root positions {bad} are outside the text's {n_tokens} tokens (0..{n_tokens - 1}).")
    return sorted({r % n_tokens for r in positions})


def _kept_counts(ranks: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """ranks [..., N] (-1: not taken) -> edges kept per stratum [K, ...] (rank < sizes[k]), in one pass."""
    n_strata = len(sizes)
    first = np.where(ranks >= 0, np.searchsorted(sizes, ranks, side="right"), n_strata)  # first stratum holding each edge
    groups = int(np.prod(ranks.shape[:-1]))
    flat = first.reshape(groups, -1) + (n_strata + 1) * np.arange(groups)[:, None]
    counts = np.bincount(flat.ravel(), minlength=groups * (n_strata + 1)).reshape(groups, n_strata + 1)
    return np.moveaxis(counts[:, :n_strata].cumsum(-1).reshape(*ranks.shape[:-1], n_strata), -1, 0)


def _composition(ranks: Ranks, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per stratum: head shares [K, L, H], MLP shares [K, L], edges by component [K, 3] and by layer [K, L].

    The last stratum is the full graph (its edges need not have been ranked)."""
    n_layers, n_heads, n_pos, _ = ranks.attn.shape
    head_total = np.full(n_layers, n_pos * (n_pos + 1) // 2)
    head_total[-1] = n_pos  # the last layer only has the root's attention node
    node_total = np.full(n_layers, n_pos)  # MLP, residual-attention and residual-MLP edges per layer
    node_total[-1] = 1
    att_kept = _kept_counts(ranks.attn.reshape(n_layers, n_heads, -1), sizes)  # [K, L, H]
    mlp_kept, ra_kept, rm_kept = (_kept_counts(r, sizes) for r in (ranks.mlp, ranks.res_attn, ranks.res_mlp))  # [K, L] each
    att_kept[-1] = head_total[:, None]
    mlp_kept[-1] = ra_kept[-1] = rm_kept[-1] = node_total
    head_share = (att_kept / head_total[None, :, None]).astype(np.float32)
    mlp_share = (mlp_kept / node_total[None, :]).astype(np.float32)
    components = np.stack([att_kept.sum((1, 2)), mlp_kept.sum(1), (ra_kept + rm_kept).sum(1)], axis=1)
    layer_edges = att_kept.sum(2) + mlp_kept + ra_kept + rm_kept
    return head_share, mlp_share, components.astype(np.int64), layer_edges.astype(np.int64)


def _stratify(weights: EdgeWeights, position: int, grid: np.ndarray, n_layers: int, n_heads: int) -> _Root:
    """Ranks of the edges up to the largest stratum short of the full graph (which needs no ranks)."""
    total = edge_count(n_layers, n_heads, position + 1)
    sizes = stratum_sizes(grid, total)
    ranks = expand(weights, position, n_max=int(sizes[-2]) if len(sizes) > 1 else 0)
    return _Root(position, ranks, sizes)


def _pad(roots: list[_Root], n_pos: int) -> RankBatch:
    """Stack the ranks of several roots, padded with -1 to n_pos positions."""

    def pad(a: np.ndarray, dims: int) -> torch.Tensor:
        width = [(0, 0)] * (a.ndim - dims) + [(0, n_pos - a.shape[-1])] * dims
        return torch.from_numpy(np.pad(a, width, constant_values=-1))

    return RankBatch(
        attn=torch.stack([pad(r.ranks.attn, 2) for r in roots]),
        res_attn=torch.stack([pad(r.ranks.res_attn, 1) for r in roots]),
        mlp=torch.stack([pad(r.ranks.mlp, 1) for r in roots]),
        res_mlp=torch.stack([pad(r.ranks.res_mlp, 1) for r in roots]),
        roots=torch.tensor([r.position for r in roots]),
    )


@dataclass
class _Text:
    """One text being traced: its tokens and roots, what the full run gives, and the per-root rows."""

    text: str
    ids: torch.Tensor  # [T]
    pieces: list[str]
    positions: list[int]
    weights: EdgeWeights
    full: torch.Tensor  # [R, V] the unmasked model's logits at the roots
    rand: EdgeWeights | None  # random weights for the baseline
    rows: dict[str, list[Any]]


_ROW_KEYS = ("n_edges", "tv", "kl", "top1", "nu", "entropy", "loss", "head_share", "mlp_share", "component_edges",
             "layer_edges", "total", "top_token", "tv_random", "kl_random", "top1_random")  # fmt: skip


def _prepare(bridge: Any, arch: Arch, text: str, roots: str | int | Sequence[int], *, weighting: Weighting,
             random_baseline: bool, prepend_bos: bool | None, max_tokens: int, seed: int) -> _Text:  # fmt: skip
    if not isinstance(text, str) or not text.strip():
        raise TraceInputError("The text is empty or only whitespace: give a text of at least a few words.")
    ids, pieces = tokenize(bridge, text, prepend_bos)
    n_tokens = len(ids)
    if n_tokens == 0:
        raise TraceInputError("The text produced no tokens: give a text of at least a few words.")
    if n_tokens > max_tokens:
        raise TraceInputError(
            f"The text has {n_tokens} tokens, over max_tokens={max_tokens}. Shorten it, or raise the limit "
            f"with trace(..., max_tokens={n_tokens}) (cost grows roughly with the cube of the length)."
        )
    positions = _resolve_roots(roots, n_tokens)
    weights = edge_weights(bridge, ids, weighting, seed=seed)
    full = arch.logits(weights.final[positions]).cpu()  # [R, V]
    rand = random_weights(arch.n_layers, arch.n_heads, n_tokens, seed=seed + 1) if random_baseline else None
    return _Text(text, ids, pieces, positions, weights, full, rand, {key: [] for key in _ROW_KEYS})


def _evaluate(arch: Arch, texts: list[_Text], roots: list[_Root], which: list[tuple[int, int]], norms: Norms) -> list[torch.Tensor]:
    """Logits [K, V] of every stratum of each root (root j: root ``which[j][1]`` of text
    ``which[j][0]``); the full graph (last) reuses the full run's logits."""
    n_pos = max(r.position for r in roots) + 1
    batch = _pad(roots, n_pos)
    ids = torch.stack([F.pad(texts[t].ids[:n_pos], (0, n_pos - min(n_pos, len(texts[t].ids)))) for t, _ in which])  # [Rb, P]
    row_root = torch.cat([torch.full((len(r.sizes) - 1,), i) for i, r in enumerate(roots)])
    n_keep = torch.from_numpy(np.concatenate([r.sizes[:-1] for r in roots]))
    scales: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
    if norms == "frozen" and any(layer.post_attn_norm is not None for layer in arch.layers):
        scales = tuple(  # type: ignore[assignment]
            torch.stack([F.pad(getattr(texts[t].weights, name)[:, :n_pos], (0, n_pos - min(n_pos, len(texts[t].ids))), value=1.0) for t, _ in which])
            for name in ("attn_inv_rms", "mlp_inv_rms")
        )  # [Rb, L, P] each
    logits = masked_logits(arch, ids, batch, row_root, n_keep, *scales).cpu()
    out, start = [], 0
    for r, (t, i) in zip(roots, which):
        k = len(r.sizes) - 1
        out.append(torch.cat([logits[start : start + k], texts[t].full[i][None]]))
        start += k
    return out


def _batches(work: list[tuple[int, int, int]], n_strata: int, max_rows: int) -> list[list[tuple[int, int, int]]]:
    """Group (text, root index, position) items so that strata × roots × positions per masked pass
    stays under ``max_rows`` (a single root may exceed it)."""
    groups: list[list[tuple[int, int, int]]] = []
    width = 0
    for item in work:
        w = max(width, item[2] + 1)
        if groups and n_strata * (len(groups[-1]) + 1) * w <= max_rows:
            groups[-1].append(item)
            width = w
        else:
            groups.append([item])
            width = item[2] + 1
    return groups


def _record(text: _Text, i: int, root: _Root, logits: torch.Tensor, rand_logits: torch.Tensor | None) -> None:
    """Metrics and composition of root i's strata, appended to the text's rows."""
    rows, ids = text.rows, text.ids
    target = int(ids[root.position + 1]) if root.position + 1 < len(ids) else None
    m = distribution_metrics(text.full[i], logits, target)
    for key in ("tv", "kl", "top1", "nu", "entropy", "loss"):
        rows[key].append(m[key])
    rows["top_token"].append(logits.argmax(-1).numpy())
    rows["n_edges"].append(root.sizes)
    rows["total"].append(root.ranks.total_edges)
    for key, value in zip(("head_share", "mlp_share", "component_edges", "layer_edges"), _composition(root.ranks, root.sizes)):
        rows[key].append(value)
    if rand_logits is not None:
        mr = distribution_metrics(text.full[i], rand_logits, target)
        rows["tv_random"].append(mr["tv"])
        rows["kl_random"].append(mr["kl"])
        rows["top1_random"].append(mr["top1"])


def _result(bridge: Any, arch: Arch, text: _Text, grid_arr: np.ndarray, settings: dict[str, Any]) -> DensityResult:
    rows, ids, positions = text.rows, text.ids, text.positions
    n_tokens = len(ids)
    pos = np.array(positions, dtype=np.int64)
    logp_full = torch.log_softmax(text.full.float(), -1)
    nxt = np.array([int(ids[p + 1]) if p + 1 < n_tokens else -1 for p in positions], dtype=np.int64)
    loss_full = np.array([-float(logp_full[i, t]) if t >= 0 else float("nan") for i, t in enumerate(nxt)])
    top = text.full.argmax(-1)
    stack = lambda key: np.stack(rows[key]) if rows[key] else None  # noqa: E731
    tok = hf_tokenizer(bridge)
    return DensityResult(
        model=model_name(bridge),
        text=text.text,
        token_ids=ids.numpy().astype(np.int64),
        tokens=text.pieces,
        grid=grid_arr,
        n_layers=arch.n_layers,
        n_heads=arch.n_heads,
        roots=pos,
        total_edges=np.array(rows["total"], dtype=np.int64),
        entropy_full=(-(logp_full.exp() * logp_full).sum(-1)).double().numpy(),
        top_token_full=top.numpy().astype(np.int64),
        top_prob_full=logp_full.exp().max(-1).values.double().numpy(),
        loss_full=loss_full,
        next_token=nxt,
        n_edges=np.stack(rows["n_edges"]).astype(np.int64),
        tv=stack("tv"),
        kl=stack("kl"),
        top1=stack("top1").astype(bool),
        nu=stack("nu"),
        entropy=stack("entropy"),
        loss=stack("loss"),
        head_share=stack("head_share"),
        mlp_share=stack("mlp_share"),
        component_edges=stack("component_edges"),
        layer_edges=stack("layer_edges"),
        top_token=stack("top_token").astype(np.int64),
        tv_random=stack("tv_random"),
        kl_random=stack("kl_random"),
        top1_random=None if text.rand is None else stack("top1_random").astype(bool),
        top_tokens=[tok.decode([int(t)]) for t in top],
        settings=settings,
    )


def trace(
    model: Any = "smollm2-135m",
    text: str = "",
    roots: str | int | Sequence[int] = "all",
    grid: str | Sequence[float] = "fast",
    *,
    weighting: Weighting = "l1",
    norms: Norms = "live",
    random_baseline: bool = False,
    prepend_bos: bool | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    seed: int = 0,
    max_rows: int = 4096,
    progress: bool = True,
) -> DensityResult:
    """Trace the computation density of each next-token prediction of ``text``.

    model: a TransformerBridge from ``load_model`` or anything ``load_model`` accepts.
    roots: ``"all"`` (every position whose next token is in the text), ``"last"`` (the prediction
    after the last token, as the papers do) or a list of positions.
    grid: ``"fast"`` (8 sizes + full), ``"paper"`` (26 sizes + full) or sizes in (0, 1].
    weighting: edge weights ``"l1"`` (the papers'), ``"ifr"`` or ``"random"``.
    norms: ``"live"`` (published) or ``"frozen"`` post-norm scales (Gemma-3 only differs).
    random_baseline: also evaluate random connected subgraphs of the same sizes (same rules).
    max_rows: strata × roots × positions per masked pass (memory; several roots share a pass).
    """
    return trace_many(model, [text], [roots], grid, weighting=weighting, norms=norms, random_baseline=random_baseline,
                      prepend_bos=prepend_bos, max_tokens=max_tokens, seed=seed, max_rows=max_rows, progress=progress)[0]  # fmt: skip


def trace_many(
    model: Any,
    texts: Sequence[str],
    roots: str | Sequence[str | int | Sequence[int]] = "all",
    grid: str | Sequence[float] = "fast",
    *,
    weighting: Weighting = "l1",
    norms: Norms = "live",
    random_baseline: bool = False,
    prepend_bos: bool | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    seed: int = 0,
    max_rows: int = 4096,
    progress: bool = True,
) -> list[DensityResult]:
    """``trace`` of several texts, their roots sharing masked passes: one DensityResult per text,
    equal to ``trace`` of that text up to float rounding (batching changes summation order only).

    roots: ``"all"`` or ``"last"`` for every text, or one entry per text (each as in ``trace``).
    Other arguments as in ``trace``.
    """
    if norms not in NORMS:
        raise TraceInputError(f"norms must be one of {', '.join(NORMS)}, got {norms!r}.")
    if isinstance(texts, str):
        raise TraceInputError("trace_many takes a list of texts; for one text use trace(model, text).")
    per_text = [roots] * len(texts) if isinstance(roots, str) else list(roots)
    if len(per_text) != len(texts):
        raise TraceInputError(f"roots has {len(per_text)} entries for {len(texts)} texts: give one per text, or 'all' / 'last'.")
    grid_arr = make_grid(grid)
    bridge = load_model(model)
    arch = Arch.of(bridge.original_model)
    prepared = []
    for index, (text, text_roots) in enumerate(zip(texts, per_text)):
        try:
            prepared.append(_prepare(bridge, arch, text, text_roots, weighting=weighting, random_baseline=random_baseline,
                                     prepend_bos=prepend_bos, max_tokens=max_tokens, seed=seed))  # fmt: skip
        except TraceInputError as err:
            raise (TraceInputError(f"Text {index}: {err}") if len(texts) > 1 else err) from None
    n_strata = len(grid_arr)
    work = [(t, i, p) for t, text in enumerate(prepared) for i, p in enumerate(text.positions)]
    with tqdm(total=len(work), desc="trace", unit="root", disable=not progress) as bar:
        for group in _batches(work, n_strata, max_rows):
            which = [(t, i) for t, i, _ in group]
            strata = [_stratify(prepared[t].weights, p, grid_arr, arch.n_layers, arch.n_heads) for t, _, p in group]
            logits = _evaluate(arch, prepared, strata, which, norms)
            rand_logits: list[torch.Tensor | None] = [None] * len(group)
            if random_baseline:
                rand_strata = [_stratify(prepared[t].rand, p, grid_arr, arch.n_layers, arch.n_heads) for t, _, p in group]  # type: ignore[arg-type]
                rand_logits = _evaluate(arch, prepared, rand_strata, which, norms)  # type: ignore[assignment]
            for (t, i), root, lg, rl in zip(which, strata, logits, rand_logits):
                _record(prepared[t], i, root, lg, rl)
            bar.update(len(group))
    settings = {"grid": grid if isinstance(grid, str) else "custom", "weighting": weighting, "norms": norms, "prepend_bos": prepend_bos, "seed": seed, "random_baseline": random_baseline}
    return [_result(bridge, arch, text, grid_arr, settings) for text in prepared]
