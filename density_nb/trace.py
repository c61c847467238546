"""``trace(model, text)``: the s-Trace density of every next-token prediction of a text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from density_nb.ablation import NORMS, Norms, RankBatch, masked_logits
from density_nb.arch import Arch
from density_nb.importance import EdgeWeights, Weighting, edge_weights, random_weights
from density_nb.metrics import distribution_metrics
from density_nb.models import hf_tokenizer, load_model, model_name
from density_nb.result import DensityResult
from density_nb.stratify import Ranks, edge_count, expand, make_grid, stratum_sizes

DEFAULT_MAX_TOKENS = 256


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


def _evaluate(
    arch: Arch, ids: torch.Tensor, weights: EdgeWeights, roots: list[_Root], full: torch.Tensor, norms: Norms
) -> list[torch.Tensor]:
    """Logits [K, V] of every stratum of each root; the full graph (last) reuses the full run's
    logits ``full`` [len(roots), V]."""
    batch = _pad(roots, max(r.position for r in roots) + 1)
    row_root = torch.cat([torch.full((len(r.sizes) - 1,), i) for i, r in enumerate(roots)])
    n_keep = torch.from_numpy(np.concatenate([r.sizes[:-1] for r in roots]))
    frozen = norms == "frozen" and any(layer.post_attn_norm is not None for layer in arch.layers)
    scales = (weights.attn_inv_rms, weights.mlp_inv_rms) if frozen else (None, None)
    logits = masked_logits(arch, ids, batch, row_root, n_keep, *scales).cpu()
    out, start = [], 0
    for i, r in enumerate(roots):
        k = len(r.sizes) - 1
        out.append(torch.cat([logits[start : start + k], full[i][None]]))
        start += k
    return out


def _batches(roots: list[int], n_strata: int, max_rows: int) -> list[list[int]]:
    """Group roots so that (strata × positions) per masked pass stays under ``max_rows``."""
    groups: list[list[int]] = []
    for r in roots:
        if groups and n_strata * len(groups[-1]) * (r + 1) + n_strata * (r + 1) <= max_rows:
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


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
    """
    if norms not in NORMS:
        raise TraceInputError(f"norms must be one of {', '.join(NORMS)}, got {norms!r}.")
    if not isinstance(text, str) or not text.strip():
        raise TraceInputError("The text is empty or only whitespace: give a text of at least a few words.")
    grid_arr = make_grid(grid)
    bridge = load_model(model)
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
    arch = Arch.of(bridge.original_model)
    weights = edge_weights(bridge, ids, weighting, seed=seed)
    pos = np.array(positions, dtype=np.int64)
    full = arch.logits(weights.final[pos]).cpu()  # [R, V] the unmasked model's logits at the roots
    rand = random_weights(arch.n_layers, arch.n_heads, n_tokens, seed=seed + 1) if random_baseline else None
    tok = hf_tokenizer(bridge)
    n_strata = len(grid_arr)
    rows: dict[str, list[Any]] = {key: [] for key in ("n_edges", "tv", "kl", "top1", "nu", "entropy", "loss", "head_share", "mlp_share", "component_edges", "layer_edges", "total", "top_token", "tv_random", "kl_random", "top1_random")}
    with tqdm(total=len(positions), desc="trace", unit="root", disable=not progress) as bar:
        done = 0
        for group in _batches(positions, n_strata, max_rows):
            full_group = full[done : done + len(group)]  # [len(group), V]
            strata = [_stratify(weights, r, grid_arr, arch.n_layers, arch.n_heads) for r in group]
            logits = _evaluate(arch, ids, weights, strata, full_group, norms)
            rand_logits = None
            if rand is not None:
                rand_strata = [_stratify(rand, r, grid_arr, arch.n_layers, arch.n_heads) for r in group]
                rand_logits = _evaluate(arch, ids, weights, rand_strata, full_group, norms)
            for i, root in enumerate(strata):
                target = int(ids[root.position + 1]) if root.position + 1 < n_tokens else None
                m = distribution_metrics(full_group[i], logits[i], target)
                for key in ("tv", "kl", "top1", "nu", "entropy", "loss"):
                    rows[key].append(m[key])
                rows["top_token"].append(logits[i].argmax(-1).numpy())
                rows["n_edges"].append(root.sizes)
                rows["total"].append(root.ranks.total_edges)
                for key, value in zip(("head_share", "mlp_share", "component_edges", "layer_edges"), _composition(root.ranks, root.sizes)):
                    rows[key].append(value)
                if rand_logits is not None:
                    mr = distribution_metrics(full_group[i], rand_logits[i], target)
                    rows["tv_random"].append(mr["tv"])
                    rows["kl_random"].append(mr["kl"])
                    rows["top1_random"].append(mr["top1"])
            bar.update(len(group))
            done += len(group)
    logp_full = torch.log_softmax(full.float(), -1)
    nxt = np.array([int(ids[p + 1]) if p + 1 < n_tokens else -1 for p in positions], dtype=np.int64)
    loss_full = np.array([-float(logp_full[i, t]) if t >= 0 else float("nan") for i, t in enumerate(nxt)])
    top = full.argmax(-1)
    stack = lambda key: np.stack(rows[key]) if rows[key] else None  # noqa: E731
    settings = {"grid": grid if isinstance(grid, str) else "custom", "weighting": weighting, "norms": norms, "prepend_bos": prepend_bos, "seed": seed, "random_baseline": random_baseline}
    return DensityResult(
        model=model_name(bridge),
        text=text,
        token_ids=ids.numpy().astype(np.int64),
        tokens=pieces,
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
        top1_random=None if rand is None else stack("top1_random").astype(bool),
        top_tokens=[tok.decode([int(t)]) for t in top],
        settings=settings,
    )
