"""One text's trace, step by step: tokenize → edge weights (``importance``) → strata (``stratify``) →
masked passes (``ablation``) → metrics (``metrics``) → the fields of its ``DensityResult``.

Several roots (of one text or several) share masked passes; two groups of roots run at once on a CPU.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from density_nb import threads
from density_nb.config import Baseline, TraceConfig
from density_nb.errors import TraceInputError
from density_nb.method.ablation import PassStopped, RankBatch, masked_logits
from density_nb.method.arch import Arch
from density_nb.method.importance import EdgeWeights, edge_weights, random_weights
from density_nb.method.inputs import Roots, check_length, check_roots, check_text, tokenize
from density_nb.method.metrics import Metrics, distribution_metrics, tv_empty_graph
from density_nb.method.required import Curve, conditions, required_edges
from density_nb.method.stratify import Composition, InEdges, Ranks, Strata, composition, expand, sort_in_edges, stratify
from density_nb.models import cached_model, hf_tokenizer, load_model, model_name, token_counter

_Item = TypeVar("_Item")
_Out = TypeVar("_Out")


# ---- 2. edge weights: one forward per text ------------------------------------------------------------
@dataclass
class RootRow:
    """What one root's strata gave: per stratum [K] arrays, and each baseline's that was asked for
    (not the strata's edge ranks: [L, H, P, P] per root adds up to gigabytes over a long text's roots)."""

    sizes: np.ndarray  # [K] int64 edges per stratum
    total_edges: int
    input_edges: int
    metrics: Metrics
    top_token: np.ndarray  # [K] int64 each subgraph's top-1 token
    composition: Composition
    baselines: dict[Baseline, Metrics]
    random_composition: Composition | None  # of the random strata, when a random baseline ran
    required: np.ndarray | None = None  # [C] required edge counts (``required.conditions``), when refined


@dataclass
class TracedText:
    """One text being traced: its tokens and roots, what the full run gives, and the per-root rows."""

    text: str
    ids: torch.Tensor  # [T]
    pieces: list[str]
    positions: list[int]
    weights: EdgeWeights
    full: torch.Tensor  # [R, V] the unmasked model's logits at the roots
    rand: EdgeWeights | None  # random weights for the baseline
    in_edges: InEdges  # every node's in-edges sorted once, shared by the roots' expansions
    rand_in_edges: InEdges | None
    rows: list[RootRow] = field(default_factory=list)

    def target(self, position: int) -> int | None:
        """The actual next token after ``position``, None where the text ends."""
        return int(self.ids[position + 1]) if position + 1 < len(self.ids) else None


def prepare(bridge: Any, arch: Arch, text: str, roots: Roots, config: TraceConfig) -> TracedText:
    ids, pieces = tokenize(bridge, text, config.prepend_bos)
    n_tokens = len(ids)
    positions = check_length(n_tokens, roots, config)
    weights = edge_weights(bridge, ids, config.weighting, seed=config.seed)
    full = arch.logits(weights.final[positions]).cpu()  # [R, V]
    wants_random = any(name.startswith("random") for name in config.baselines)
    rand = random_weights(arch.n_layers, arch.n_heads, n_tokens, seed=config.seed + 1, parallel=arch.parallel) if wants_random else None
    n_pos = max(positions) + 1
    rand_in_edges = None if rand is None else sort_in_edges(rand, n_pos)
    return TracedText(text, ids, pieces, positions, weights, full, rand, sort_in_edges(weights, n_pos), rand_in_edges)


# ---- 3. strata, and 4. masked passes: several roots share one pass --------------------------------------
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


How = Literal["stratum", "residual", "inverse"]
_HOW: dict[Baseline, How] = {"random": "stratum", "random_residual": "residual", "inverse": "inverse"}


def _masked(
    arch: Arch,
    texts: list[TracedText],
    ranks: list[Ranks],
    which: list[tuple[int, int]],
    counts: list[np.ndarray],
    frozen: bool,
    invert: torch.Tensor | None = None,
    keep_residual: bool = False,
    stop: Callable[[], bool] | None = None,
) -> torch.Tensor:
    """Logits [B, V] of masked passes: for root j (root ``which[j][1]`` of text ``which[j][0]``, its edge
    ranks ``ranks[j]``), one row per edge count in ``counts[j]``, root after root. ``invert``: [B] rows that
    keep the edges outside their subgraph; ``keep_residual``: every row keeps every residual edge."""
    n_pos = max(r.attn.shape[-1] for r in ranks)

    def padded(t: int, values: torch.Tensor, fill: float = 0) -> torch.Tensor:  # [..., T] -> [..., n_pos]
        return F.pad(values[..., :n_pos], (0, n_pos - min(n_pos, len(texts[t].ids))), value=fill)

    batch = RankBatch.stack(ranks, n_pos)
    ids = torch.stack([padded(t, texts[t].ids) for t, _ in which])  # [Rb, P]
    row_root = torch.cat([torch.full((len(k),), i) for i, k in enumerate(counts)])  # [B]
    n_keep = torch.from_numpy(np.concatenate(counts))  # [B]
    if invert is None:
        invert = torch.full((len(n_keep),), False)  # [B]
    scales: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
    if frozen and any(layer.post_attn_norm is not None for layer in arch.layers):
        attn_scale, mlp_scale = (
            torch.stack([padded(t, getattr(texts[t].weights, name), 1.0) for t, _ in which]) for name in ("attn_inv_rms", "mlp_inv_rms")
        )  # [Rb, L, P] each
        scales = (attn_scale, mlp_scale)
    return masked_logits(
        arch, ids, batch, row_root, n_keep, *scales, invert=invert, keep_residual=torch.full((len(n_keep),), keep_residual), stop=stop
    ).cpu()  # [B, V]


def _evaluate(
    arch: Arch,
    texts: list[TracedText],
    strata: list[Strata],
    which: list[tuple[int, int]],
    frozen: bool,
    how: How = "stratum",
    stop: Callable[[], bool] | None = None,
) -> list[torch.Tensor]:
    """Logits [K, V] of every stratum of each root (root j: root ``which[j][1]`` of text ``which[j][0]``).

    how: ``"stratum"`` keeps each stratum (the full graph, last, reuses the full run's logits);
    ``"residual"`` keeps each stratum and every residual edge (the full graph: the full run's);
    ``"inverse"`` keeps every attention and MLP edge outside the stratum and every residual edge
    (the inverse of the full graph is the residual stream alone). stop: see ``masked_logits``."""
    evaluated = [len(s.sizes) - (how != "inverse") for s in strata]  # strata run per root
    counts = [s.sizes[:k].copy() for s, k in zip(strata, evaluated)]
    invert = torch.full((sum(evaluated),), how == "inverse")  # [B]
    if how == "inverse":  # the inverse of the full graph: nothing but the residual stream
        for c in counts:
            c[-1] = 0
        invert[torch.from_numpy(np.cumsum(evaluated)) - 1] = False
    logits = _masked(arch, texts, [s.ranks for s in strata], which, counts, frozen, invert, how != "stratum", stop)
    out, start = [], 0
    for k, (t, i) in zip(evaluated, which):
        rows = logits[start : start + k]
        out.append(rows if how == "inverse" else torch.cat([rows, texts[t].full[i][None]]))
        start += k
    return out


def _required(
    arch: Arch,
    texts: list[TracedText],
    strata: list[Strata],
    which: list[tuple[int, int]],
    curves: list[Metrics],
    config: TraceConfig,
    stop: Callable[[], bool] | None = None,
) -> np.ndarray:
    """[R, C] the required edge counts of each root for ``required.conditions(config.tv_levels)``, by
    bisection (``required.required_edges``): each round's midpoints of every root in one masked pass
    (split so that a pass holds no more rows than the grid's), metrics as the grid's."""
    strata = list(strata)  # deeper ranks replace a root's own here only
    frozen = config.norms == "frozen"

    def ranked(s: Strata) -> int:
        return 1 + max(int(s.ranks.attn.max()), int(s.ranks.res_attn.max()), int(s.ranks.mlp.max()), int(s.ranks.res_mlp.max()))

    def evaluate(requests: list[tuple[int, np.ndarray]]) -> list[Curve]:
        for j, counts in requests:
            if int(counts[-1]) > ranked(strata[j]):  # past the ranked edges: rank the rest of the graph too
                s, t = strata[j], which[j][0]
                strata[j] = Strata(s.position, expand(texts[t].weights, s.position, None, texts[t].in_edges), s.sizes, s.input_edges)
        out: list[Curve] = []
        limit = max(len(config.sizes) * len(strata), 1)
        chunk: list[tuple[int, np.ndarray]] = []
        for item in [*requests, None]:
            if item is not None and (not chunk or sum(len(c) for _, c in chunk) + len(item[1]) <= limit):
                chunk.append(item)
                continue
            logits = _masked(
                arch, texts, [strata[j].ranks for j, _ in chunk], [which[j] for j, _ in chunk], [c for _, c in chunk], frozen, stop=stop
            )
            start = 0
            for j, counts in chunk:
                t, i = which[j]
                out.append(distribution_metrics(texts[t].full[i], logits[start : start + len(counts)], None, 1))
                start += len(counts)
            chunk = [] if item is None else [item]
        return out

    return required_edges(
        [s.sizes for s in strata], curves, [s.input_edges for s in strata], conditions(config.tv_levels), config.refine_rtol, evaluate
    )


# ---- 5. metrics ----------------------------------------------------------------------------------------
def _row(
    text: TracedText,
    i: int,
    strata: Strata,
    logits: torch.Tensor,
    baselines: dict[Baseline, torch.Tensor],
    random: Strata | None,
    topk: int,
) -> RootRow:
    target = text.target(strata.position)
    return RootRow(
        sizes=strata.sizes,
        total_edges=strata.ranks.total_edges,
        input_edges=strata.input_edges,
        metrics=distribution_metrics(text.full[i], logits, target, topk),
        top_token=logits.argmax(-1).numpy().astype(np.int64),
        composition=composition(strata),
        baselines={name: distribution_metrics(text.full[i], lg, target, topk) for name, lg in baselines.items()},
        random_composition=None if random is None else composition(random),
    )


# ---- 6. the result's fields ---------------------------------------------------------------------------------------
def result_fields(bridge: Any, arch: Arch, text: TracedText, config: TraceConfig) -> dict[str, Any]:
    """The fields of the ``DensityResult`` of the roots of ``text`` traced so far: numpy arrays and
    plain values, no tensors (``DensityResult(**result_fields(...))``)."""
    rows, ids = text.rows, text.ids
    positions, full = text.positions[: len(rows)], text.full[: len(rows)]  # the roots traced so far
    logp_full = torch.log_softmax(full.float(), -1)  # [R, V]
    nxt = np.array([-1 if (t := text.target(p)) is None else t for p in positions], dtype=np.int64)
    loss_full = np.array([-float(logp_full[i, t]) if t >= 0 else float("nan") for i, t in enumerate(nxt)])
    top = full.argmax(-1)  # [R]
    topk_full = torch.topk(logp_full.exp(), min(config.topk, logp_full.shape[-1]), dim=-1)  # [R, k]
    tok = hf_tokenizer(bridge)

    def per_stratum(get: Any, dtype: Any = np.float64) -> np.ndarray:
        return np.stack([get(row) for row in rows]).astype(dtype)

    def baseline(name: Baseline, metric: str, dtype: Any = np.float64) -> np.ndarray | None:
        return per_stratum(lambda row: getattr(row.baselines[name], metric), dtype) if name in config.baselines else None

    def random_composition(part: str) -> np.ndarray | None:
        return None if text.rand is None else per_stratum(lambda row: getattr(row.random_composition, part), np.int64)

    n_tv = len(config.tv_levels)
    required = per_stratum(lambda row: row.required, np.int64) if config.refine else None  # [R, C] as required.conditions

    return {
        "model": model_name(bridge),
        "text": text.text,
        "token_ids": ids.numpy().astype(np.int64),
        "tokens": text.pieces,
        "grid": config.sizes,
        "n_layers": arch.n_layers,
        "n_heads": arch.n_heads,
        "roots": np.array(positions, dtype=np.int64),
        "total_edges": np.array([row.total_edges for row in rows], dtype=np.int64),
        "entropy_full": (-(logp_full.exp() * logp_full).sum(-1)).double().numpy(),
        "top_token_full": top.numpy().astype(np.int64),
        "top_prob_full": logp_full.exp().max(-1).values.double().numpy(),
        "loss_full": loss_full,
        "next_token": nxt,
        "n_edges": per_stratum(lambda row: row.sizes, np.int64),
        "tv": per_stratum(lambda row: row.metrics.tv),
        "kl": per_stratum(lambda row: row.metrics.kl),
        "top1": per_stratum(lambda row: row.metrics.top1, bool),
        "nu": per_stratum(lambda row: row.metrics.nu),
        "entropy": per_stratum(lambda row: row.metrics.entropy),
        "loss": per_stratum(lambda row: row.metrics.loss),
        "head_share": per_stratum(lambda row: row.composition.head_share, np.float32),
        "mlp_share": per_stratum(lambda row: row.composition.mlp_share, np.float32),
        "component_edges": per_stratum(lambda row: row.composition.component_edges, np.int64),
        "layer_edges": per_stratum(lambda row: row.composition.layer_edges, np.int64),
        "top_token": per_stratum(lambda row: row.top_token, np.int64),
        "input_edges": np.array([row.input_edges for row in rows], dtype=np.int64),
        "tv_empty": tv_empty_graph(full, arch.logits(torch.zeros(arch.d_model, dtype=arch.dtype, device=arch.device)).cpu()),
        "topk_token": per_stratum(lambda row: row.metrics.topk_token, np.int64),
        "topk_prob": per_stratum(lambda row: row.metrics.topk_prob),
        "topk_token_full": topk_full.indices.numpy().astype(np.int64),
        "topk_prob_full": topk_full.values.double().numpy(),
        "tv_random": baseline("random", "tv"),
        "kl_random": baseline("random", "kl"),
        "top1_random": baseline("random", "top1", bool),
        "tv_random_residual": baseline("random_residual", "tv"),
        "kl_random_residual": baseline("random_residual", "kl"),
        "top1_random_residual": baseline("random_residual", "top1", bool),
        "tv_inverse": baseline("inverse", "tv"),
        "kl_inverse": baseline("inverse", "kl"),
        "top1_inverse": baseline("inverse", "top1", bool),
        "component_edges_random": random_composition("component_edges"),
        "layer_edges_random": random_composition("layer_edges"),
        "edges_tv": None if required is None else required[:, :n_tv],
        "edges_top1": None if required is None else required[:, n_tv],
        "edges_nu": None if required is None else required[:, n_tv + 1 :],
        "top_text_full": [tok.decode([int(t)]) for t in top],
        "settings": config.settings(),
    }


def setup(model: Any, texts: list[str], per_text: list[Roots], config: TraceConfig) -> tuple[Any, Arch, list[TracedText]]:
    """Check every text and its roots (before any model work: a model given by name or folder has its
    lengths and root positions checked with its tokenizer alone), then load the model and run each
    text's one forward (edge weights, full logits)."""
    counter = token_counter(model)
    for index, (text, text_roots) in enumerate(zip(texts, per_text)):
        try:
            check_text(text)
            check_roots(text_roots)
            if counter is not None:
                check_length(counter.count(text, config.prepend_bos), text_roots, config)
        except TraceInputError as err:
            raise (TraceInputError(f"Text {index}: {err}") if len(texts) > 1 else err) from None
    bridge = cached_model(model) if isinstance(model, str) else load_model(model)
    arch = Arch.of(bridge.original_model)
    prepared = []
    for index, (text, text_roots) in enumerate(zip(texts, per_text)):
        try:
            prepared.append(prepare(bridge, arch, text, text_roots, config))
        except TraceInputError as err:
            raise (TraceInputError(f"Text {index}: {err}") if len(texts) > 1 else err) from None
    return bridge, arch, prepared


def _strata(
    arch: Arch, prepared: list[TracedText], group: list[tuple[int, int, int]], grid: np.ndarray
) -> tuple[list[Strata], list[Strata | None]]:
    """Each root's traced strata, and its random ones where a random baseline is asked for (else None)."""
    strata = [stratify(prepared[t].weights, p, grid, arch.n_layers, arch.n_heads, prepared[t].in_edges) for t, _, p in group]
    rand_strata: list[Strata | None] = [None] * len(group)
    if prepared[0].rand is not None:
        rand_strata = [
            stratify(prepared[t].rand, p, grid, arch.n_layers, arch.n_heads, prepared[t].rand_in_edges)  # type: ignore[arg-type]
            for t, _, p in group
        ]
    return strata, rand_strata


def _baseline_logits(
    arch: Arch,
    prepared: list[TracedText],
    which: list[tuple[int, int]],
    strata: list[Strata],
    rand_strata: list[Strata | None],
    names: Sequence[Baseline],
    frozen: bool,
    stop: Callable[[], bool] | None,
) -> dict[Baseline, list[torch.Tensor]]:
    """Each baseline's logits [K, V] per root: the inverse of the traced strata, the random ones' passes."""
    out: dict[Baseline, list[torch.Tensor]] = {}
    for name in names:
        subgraphs = strata if name == "inverse" else rand_strata
        out[name] = _evaluate(arch, prepared, subgraphs, which, frozen, _HOW[name], stop)  # type: ignore[arg-type]
    return out


def baseline_fields(
    model: Any, text: str, positions: Sequence[int], token_ids: np.ndarray, settings: dict[str, Any], names: Sequence[Baseline]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields (``tv_<name>``, ``kl_<name>``, ``top1_<name>``, the random strata's composition) of the
    baselines ``names`` that a result traced with ``settings`` lacks, and its settings with them added:
    only the baseline passes are run (one forward for the weights, the strata again, no traced pass),
    grouped and threaded as ``trace`` groups them, so the numbers are bitwise those of tracing with the
    baselines from the start (``DensityResult.with_baselines``)."""
    base = TraceConfig.from_settings(settings)
    config = base.replace(baselines=(*base.baselines, *names), refine=False)
    new = [name for name in config.baselines if name not in base.baselines]
    if not new:
        return {}, config.settings() | {"refine": base.refine}
    _, arch, prepared = setup(model, [text], [[int(p) for p in positions]], config)
    if not np.array_equal(prepared[0].ids.numpy(), np.asarray(token_ids)):
        raise TraceInputError("This model tokenizes the result's text differently: pass the model the result was traced with.")
    grid, frozen = config.sizes, config.norms == "frozen"
    work = [(0, i, p) for i, p in enumerate(prepared[0].positions)]

    def run(group: list[tuple[int, int, int]]) -> list[tuple[dict[Baseline, Metrics], Composition | None]]:
        which = [(t, i) for t, i, _ in group]
        strata, rand_strata = _strata(arch, prepared, group, grid)
        logits = _baseline_logits(arch, prepared, which, strata, rand_strata, new, frozen, None)
        text_ = prepared[0]
        return [
            (
                {name: distribution_metrics(text_.full[i], logits[name][j], text_.target(s.position), config.topk) for name in new},
                None if rs is None else composition(rs),
            )
            for j, ((_, i), s, rs) in enumerate(zip(which, strata, rand_strata))
        ]

    halt = threading.Event()
    rows = [row for group in _in_order(run, _batches(work, len(grid), config.max_rows), arch.device.type == "cpu", halt) for row in group]
    fields: dict[str, Any] = {}
    for name in new:
        fields[f"tv_{name}"] = np.stack([m[name].tv for m, _ in rows]).astype(np.float64)
        fields[f"kl_{name}"] = np.stack([m[name].kl for m, _ in rows]).astype(np.float64)
        fields[f"top1_{name}"] = np.stack([m[name].top1 for m, _ in rows]).astype(bool)
    if any(name.startswith("random") for name in new) and not any(name.startswith("random") for name in base.baselines):
        fields["component_edges_random"] = np.stack([c.component_edges for _, c in rows]).astype(np.int64)  # type: ignore[union-attr]
        fields["layer_edges_random"] = np.stack([c.layer_edges for _, c in rows]).astype(np.int64)  # type: ignore[union-attr]
    return fields, config.settings() | {"refine": base.refine}


def passes(
    arch: Arch, prepared: list[TracedText], config: TraceConfig, first: int = 0, stop: threading.Event | None = None
) -> Iterator[int]:
    """Strata, masked passes and metrics of every root, one group of roots at a time (the first
    ``first`` roots alone); appends each root's row to its text and yields the group's size, in order.
    Ends early, its passes in flight stopped within a layer, when ``stop`` is set or the caller stops
    iterating; the rows appended so far stay."""
    halt = threading.Event()  # set by ``_in_order`` when the caller stops iterating

    def stopped() -> bool:
        return halt.is_set() or (stop is not None and stop.is_set())

    grid = config.sizes
    frozen = config.norms == "frozen"
    work = [(t, i, p) for t, text in enumerate(prepared) for i, p in enumerate(text.positions)]
    groups = ([work[:first]] if first else []) + _batches(work[first:], len(grid), config.max_rows)

    def run(group: list[tuple[int, int, int]]) -> list[RootRow]:
        which = [(t, i) for t, i, _ in group]
        strata, rand_strata = _strata(arch, prepared, group, grid)
        logits = _evaluate(arch, prepared, strata, which, frozen, stop=stopped)
        baselines = _baseline_logits(arch, prepared, which, strata, rand_strata, config.baselines, frozen, stopped)
        rows = [
            _row(prepared[t], i, s, lg, {name: values[j] for name, values in baselines.items()}, rs, config.topk)
            for j, ((t, i), s, lg, rs) in enumerate(zip(which, strata, logits, rand_strata))
        ]
        if config.refine:
            for row, needed in zip(rows, _required(arch, prepared, strata, which, [row.metrics for row in rows], config, stopped)):
                row.required = needed
        return rows

    alone = groups[:1] if first else []  # the first result shows before the other passes start
    try:
        for group, rows in zip(
            groups, itertools.chain(map(run, alone), _in_order(run, groups[len(alone) :], arch.device.type == "cpu", halt))
        ):
            for (t, _, _), row in zip(group, rows):
                prepared[t].rows.append(row)
            yield len(group)
    except PassStopped:
        return


def _in_order(run: Callable[[_Item], _Out], items: list[_Item], cpu: bool, halt: threading.Event) -> Iterator[_Out]:
    """``run`` of each item, in order. On a CPU with several torch threads and several items, two
    items run at once on two threads that split the torch threads between them: a pass's serial
    work (Python, small ops, the expansion, metrics) then overlaps the other's GEMMs. Where other
    processes hold cores, each pass gets fewer torch threads (``threads.team_size``; the results
    are the same): an OpenMP team waits at every barrier for a thread that has no core. Stopping
    early (a generator closed) sets ``halt``, which the running items check (see ``masked_logits``'s
    ``stop``), waits for them and drops the rest. The torch threads are given back."""
    total = torch.get_num_threads()
    together = 2 if cpu and total >= 2 and len(items) >= 2 else 1
    each = threads.team_size(total // together, together) if cpu else total
    if together == 1 and each == total:
        yield from map(run, items)
        return
    pool = concurrent.futures.ThreadPoolExecutor(together, thread_name_prefix="density-nb-pass")
    torch.set_num_threads(each)  # picked up by the pool's threads, which start after this
    try:
        for future in [pool.submit(run, item) for item in items]:
            yield future.result()
    finally:
        halt.set()
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(total)
