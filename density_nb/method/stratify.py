"""Best-first backward expansion from a root (docs/method.md §3), compiled with numba.

From the output node (2L, r), repeatedly take the heaviest edge on the frontier (ties: the smaller
edge key) and, when its source node is new, put that node's in-edges on the frontier. The frontier
is kept as each reached node's in-edges sorted once, merged through a heap of nodes. The rank at
which each edge is taken defines every stratum at once: stratum k = edges with rank < floor(s_k·|E|),
so strata are nested, connected to the root and of exact size.

Edge key (also the tie-break order): the tuple (kind, layer, target, head, source), kind 0 =
attention, 1 = residual-attention, 2 = MLP, 3 = residual-MLP (head = 0, source = target for kinds 1–3).
Parallel blocks (docs/method.md §9.1) have one node per layer, (2l+2, t): its in-edges are attention,
the residual (kind 1) and the MLP (kind 2), all leaving (2l, ·); there are no residual-MLP edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from density_nb.method.importance import EdgeWeights, random_weights


def edge_count(n_layers: int, n_heads: int, n_pos: int, parallel: bool = False) -> int:
    """|E| of the graph of a root at position n_pos - 1 (docs/method.md §1; parallel blocks §9.1)."""
    t, per_node = n_pos, 2 if parallel else 3  # in-edges other than attention, per layer and position
    return n_layers * (n_heads * t * (t + 1) // 2 + per_node * t) - n_heads * t * (t - 1) // 2 - per_node * (t - 1)


@dataclass
class Ranks:
    """Rank at which each edge of one root's graph is taken (-1: not taken); P = root + 1."""

    attn: np.ndarray  # [L, H, P, P] int32 (target, source)
    res_attn: np.ndarray  # [L, P] int32
    mlp: np.ndarray  # [L, P] int32
    res_mlp: np.ndarray  # [L, P] int32 (parallel blocks: all -1)
    total_edges: int
    parallel: bool = False  # the graph of parallel blocks (docs/method.md §9.1)


_Int = int | np.int64  # an index in the compiled code: Python ints and numpy int64 both compile to int64

# key layout: kind << 58 | layer << 46 | target << 30 | head << 16 | source
_KIND, _LAYER, _TARGET, _HEAD = 58, 46, 30, 16


@numba.njit(cache=True, inline="always")
def _key(kind: _Int, layer: _Int, target: _Int, head: _Int, source: _Int) -> np.int64:
    return (
        (np.int64(kind) << _KIND)
        | (np.int64(layer) << _LAYER)
        | (np.int64(target) << _TARGET)
        | (np.int64(head) << _HEAD)
        | np.int64(source)
    )


@numba.njit(cache=True, inline="always")
def _before(wa: float, ka: np.int64, wb: float, kb: np.int64) -> bool | np.bool_:
    return wa > wb or (wa == wb and ka < kb)


@numba.njit(cache=True, inline="always")
def _swap(hw: np.ndarray, hk: np.ndarray, hn: np.ndarray, i: int, j: int) -> None:
    hw[i], hw[j] = hw[j], hw[i]
    hk[i], hk[j] = hk[j], hk[i]
    hn[i], hn[j] = hn[j], hn[i]


@numba.njit(cache=True, nogil=True)
def _sift_up(hw: np.ndarray, hk: np.ndarray, hn: np.ndarray, i: int) -> None:
    while i > 0:
        parent = (i - 1) >> 1
        if not _before(hw[i], hk[i], hw[parent], hk[parent]):
            break
        _swap(hw, hk, hn, i, parent)
        i = parent


@numba.njit(cache=True, nogil=True)
def _sift_down(hw: np.ndarray, hk: np.ndarray, hn: np.ndarray, size: int) -> None:
    i = 0
    while True:
        best = 2 * i + 1
        if best >= size:
            break
        if best + 1 < size and _before(hw[best + 1], hk[best + 1], hw[best], hk[best]):
            best += 1
        if not _before(hw[best], hk[best], hw[i], hk[i]):
            break
        _swap(hw, hk, hn, i, best)
        i = best


@numba.njit(cache=True, nogil=True)
def _sorted_in_edges(
    ew: np.ndarray,  # [total] float64
    ek: np.ndarray,  # [total] int64
    used: int,
    g: _Int,
    t: _Int,
    attn: np.ndarray,  # [L, H, P, P]
    res_attn: np.ndarray,  # [L, P]
    mlp: np.ndarray,  # [L, P]
    res_mlp: np.ndarray,  # [L, P]
    parallel: bool,
) -> int:
    """Append node (g, t)'s in-edges to ew/ek from ``used`` on, best first (ties: smaller key); -> new end."""
    layer = (g - 1) // 2
    with_attn = g % 2 == 1 or parallel
    w = np.empty(attn.shape[1] * (t + 1) + 1 + parallel if with_attn else 2, np.float64)
    k = np.empty(w.shape[0], np.int64)
    n = 0
    if with_attn:  # attention node (2l+1, t) or parallel node (2l+2, t): head-major, residual, (MLP) = increasing key
        for h in range(attn.shape[1]):
            for s in range(t + 1):
                w[n] = attn[layer, h, t, s]
                k[n] = _key(0, layer, t, h, s)
                n += 1
        w[n] = res_attn[layer, t]
        k[n] = _key(1, layer, t, 0, t)
        if parallel:
            w[n + 1] = mlp[layer, t]
            k[n + 1] = _key(2, layer, t, 0, t)
    else:  # MLP node (2l+2, t)
        w[0] = mlp[layer, t]
        k[0] = _key(2, layer, t, 0, t)
        w[1] = res_mlp[layer, t]
        k[1] = _key(3, layer, t, 0, t)
    order = np.argsort(-w, kind="mergesort")  # stable: equal weights stay in key order
    for i in range(w.shape[0]):
        ew[used + i] = w[order[i]]
        ek[used + i] = k[order[i]]
    return used + w.shape[0]


@dataclass
class InEdges:
    """Every node's in-edges of one text, sorted best first (ties: the smaller key), node after node.

    Weights are normalised per target node, so a node's sorted list is the same for every root:
    one sort serves all roots of the text. Node (g, t) has id g·n_pos + t; its edges are
    ``weight[start[id]:start[id + 1]]`` and ``key[...]`` (none for g = 0 and, with parallel blocks, odd g)."""

    start: np.ndarray  # [(2L+1)·n_pos + 1] int64
    weight: np.ndarray  # [n] float64
    key: np.ndarray  # [n] int64
    n_layers: int
    n_heads: int
    n_pos: int
    parallel: bool


@numba.njit(cache=True, nogil=True)
def _sort_in_edges(
    attn: np.ndarray,  # [L, H, T, T] float
    res_attn: np.ndarray,  # [L, T]
    mlp: np.ndarray,  # [L, T]
    res_mlp: np.ndarray,  # [L, T]
    parallel: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every node's sorted in-edges, node after node: offsets by node id, weights, keys."""
    n_layers, n_heads, n_pos = attn.shape[0], attn.shape[1], attn.shape[2]
    start = np.zeros((2 * n_layers + 1) * n_pos + 1, np.int64)
    for g in range(1, 2 * n_layers + 1):
        for t in range(n_pos):
            if g % 2 == 1 and parallel:
                n = 0
            elif g % 2 == 1 or parallel:
                n = n_heads * (t + 1) + 1 + parallel
            else:
                n = 2
            start[g * n_pos + t + 1] = n
    start = np.cumsum(start)
    ew = np.empty(start[-1], np.float64)
    ek = np.empty(start[-1], np.int64)
    for g in range(1, 2 * n_layers + 1):
        if g % 2 == 1 and parallel:
            continue
        for t in range(n_pos):
            _sorted_in_edges(ew, ek, start[g * n_pos + t], g, t, attn, res_attn, mlp, res_mlp, parallel)
    return start, ew, ek


def sort_in_edges(weights: EdgeWeights, n_pos: int | None = None) -> InEdges:
    """The sorted in-edges of every node at positions < n_pos (default: the whole text), for ``expand``."""
    n_layers, n_heads, n_text = weights.attn.shape[:3]
    n_pos = n_text if n_pos is None else n_pos
    if n_layers >= 1 << 12 or n_heads >= 1 << 14 or n_pos >= 1 << 16:
        raise ValueError("Graph too large for the edge key (layers < 4096, heads < 16384, positions < 65536).")
    sl = slice(0, n_pos)
    start, weight, key = _sort_in_edges(
        np.ascontiguousarray(weights.attn[:, :, sl, sl]),
        np.ascontiguousarray(weights.res_attn[:, sl]),
        np.ascontiguousarray(weights.mlp[:, sl]),
        np.ascontiguousarray(weights.res_mlp[:, sl]),
        weights.parallel,
    )
    return InEdges(start, weight, key, n_layers, n_heads, n_pos, weights.parallel)


@numba.njit(cache=True, nogil=True)
def _expand(
    start: np.ndarray,  # [(2L+1)·T + 1] int64: node g·T + t's edges are ew/ek[start[id]:start[id + 1]]
    ew: np.ndarray,  # [n] float64
    ek: np.ndarray,  # [n] int64
    n_layers: int,
    n_heads: int,
    n_text: int,
    root: int,
    n_max: int,
    parallel: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A k-way merge of the reached nodes' sorted in-edge lists: the same order as one heap over
    every frontier edge, with a heap of nodes (≤ (2L+1)·P) instead of edges (up to |E|)."""
    n_pos = root + 1
    r_attn = np.full((n_layers, n_heads, n_pos, n_pos), -1, np.int32)
    r_ra = np.full((n_layers, n_pos), -1, np.int32)
    r_mlp = np.full((n_layers, n_pos), -1, np.int32)
    r_rm = np.full((n_layers, n_pos), -1, np.int32)
    n_nodes = (2 * n_layers + 1) * n_text
    cursor = np.zeros(n_nodes, np.int64)  # next unread in-edge of each reached node
    reached = np.zeros(n_nodes, np.bool_)
    hw = np.empty(n_nodes, np.float64)  # heap of nodes keyed by their best unread in-edge
    hk = np.empty(n_nodes, np.int64)
    hn = np.empty(n_nodes, np.int64)
    node = 2 * n_layers * n_text + root
    reached[node] = True
    cursor[node] = start[node]
    hw[0], hk[0], hn[0] = ew[start[node]], ek[start[node]], node
    size = 1
    taken = 0
    mask16 = np.int64(0xFFFF)
    while size > 0 and taken < n_max:
        k, node = hk[0], hn[0]
        cursor[node] += 1
        if cursor[node] < start[node + 1]:  # the node's next edge replaces it at the top
            hw[0], hk[0] = ew[cursor[node]], ek[cursor[node]]
        else:
            size -= 1
            hw[0], hk[0], hn[0] = hw[size], hk[size], hn[size]
        _sift_down(hw, hk, hn, size)
        kind = np.int64(k >> _KIND)
        layer = np.int64((k >> _LAYER) & np.int64(0xFFF))
        t = np.int64((k >> _TARGET) & mask16)
        h = np.int64((k >> _HEAD) & np.int64(0x3FFF))
        s = np.int64(k & mask16)
        if kind == 0:
            r_attn[layer, h, t, s] = taken
            g_src, t_src = 2 * layer, s
        elif kind == 1:
            r_ra[layer, t] = taken
            g_src, t_src = 2 * layer, t
        elif kind == 2:  # a parallel block's MLP reads the block's input
            r_mlp[layer, t] = taken
            g_src, t_src = 2 * layer + 1 - parallel, t
        else:
            r_rm[layer, t] = taken
            g_src, t_src = 2 * layer + 1, t
        taken += 1
        src = g_src * n_text + t_src
        if g_src > 0 and not reached[src]:  # a new node: its best in-edge joins the heap
            reached[src] = True
            cursor[src] = start[src]
            hw[size], hk[size], hn[size] = ew[start[src]], ek[start[src]], src
            _sift_up(hw, hk, hn, size)
            size += 1
    return r_attn, r_ra, r_mlp, r_rm


def expand(weights: EdgeWeights, root: int, n_max: int | None = None, in_edges: InEdges | None = None) -> Ranks:
    """Best-first expansion from root position ``root``; ranks of the first ``n_max`` edges (default
    all). ``in_edges``: ``sort_in_edges(weights)``, to share one sort among many roots."""
    n_layers, n_heads = weights.attn.shape[:2]
    total = edge_count(n_layers, n_heads, root + 1, weights.parallel)
    if in_edges is None or in_edges.n_pos <= root:
        in_edges = sort_in_edges(weights, root + 1)
    r_attn, r_ra, r_mlp, r_rm = _expand(
        in_edges.start,
        in_edges.weight,
        in_edges.key,
        n_layers,
        n_heads,
        in_edges.n_pos,
        root,
        total if n_max is None else min(n_max, total),
        weights.parallel,
    )
    return Ranks(r_attn, r_ra, r_mlp, r_rm, total_edges=total, parallel=weights.parallel)


def stratum_sizes(grid: np.ndarray, total_edges: int) -> np.ndarray:
    """n_k = floor(s_k · |E|) for each grid size: [K] int64 (the last, s = 1, is |E|)."""
    return np.floor(grid * total_edges).astype(np.int64)


@dataclass
class Strata:
    """One root's nested strata: stratum k keeps the edges with rank < ``sizes[k]``; the last is the full graph."""

    position: int
    ranks: Ranks
    sizes: np.ndarray  # [K] edges per stratum
    input_edges: int  # edges of the smallest stratum holding an edge that leaves an input embedding


def first_input_edge(ranks: Ranks) -> int | None:
    """The rank of the first edge taken that leaves an input-embedding node (layer 0's attention
    and residual-attention edges, and a parallel block's MLP edges: the only edges whose source is
    node (0, s)); None if none is ranked."""
    taken = np.concatenate([ranks.attn[0].ravel(), ranks.res_attn[0]] + ([ranks.mlp[0]] if ranks.parallel else []))
    taken = taken[taken >= 0]
    return int(taken.min()) if taken.size else None


def stratify(weights: EdgeWeights, position: int, grid: np.ndarray, n_layers: int, n_heads: int, in_edges: InEdges | None = None) -> Strata:
    """Strata of the root at ``position`` for the grid's sizes; edges are ranked only up to the
    largest stratum short of the full graph (which needs no ranks), or further if none of those
    reaches the input (then exactly as far as the first edge that does). ``in_edges``: as in ``expand``."""
    total = edge_count(n_layers, n_heads, position + 1, weights.parallel)
    sizes = stratum_sizes(grid, total)
    ranks = expand(weights, position, int(sizes[-2]) if len(sizes) > 1 else 0, in_edges)
    first = first_input_edge(ranks)
    if first is None:  # rare: only strata past the grid's largest reach the input
        first = first_input_edge(expand(weights, position, in_edges=in_edges))
        assert first is not None, "the full graph always holds the input's edges"
    return Strata(position, ranks, sizes, first + 1)


@dataclass
class Composition:
    """What each stratum holds. K strata, L layers, H heads."""

    head_share: np.ndarray  # [K, L, H] float32 share of that head's edges kept
    mlp_share: np.ndarray  # [K, L] float32 share of that layer's MLP edges kept
    component_edges: np.ndarray  # [K, 3] int64 attention, MLP, residual edges kept
    layer_edges: np.ndarray  # [K, L] int64 edges kept per layer


def _kept_counts(ranks: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """ranks [..., N] (-1: not taken) -> edges kept per stratum [K, ...] (rank < sizes[k]), in one pass."""
    n_strata = len(sizes)
    first = np.where(ranks >= 0, np.searchsorted(sizes, ranks, side="right"), n_strata)  # first stratum holding each edge
    groups = int(np.prod(ranks.shape[:-1]))
    flat = first.reshape(groups, -1) + (n_strata + 1) * np.arange(groups)[:, None]
    counts = np.bincount(flat.ravel(), minlength=groups * (n_strata + 1)).reshape(groups, n_strata + 1)
    return np.moveaxis(counts[:, :n_strata].cumsum(-1).reshape(*ranks.shape[:-1], n_strata), -1, 0)


def composition(strata: Strata) -> Composition:
    """Edges kept per head, MLP, component and layer in every stratum (the last is the full graph,
    whose edges need not have been ranked)."""
    ranks, sizes = strata.ranks, strata.sizes
    n_layers, n_heads, n_pos, _ = ranks.attn.shape
    head_total = np.full(n_layers, n_pos * (n_pos + 1) // 2)
    head_total[-1] = n_pos  # the last layer only has the root's attention node
    node_total = np.full(n_layers, n_pos)  # MLP, residual-attention and residual-MLP edges per layer
    node_total[-1] = 1
    rm_total = 0 if ranks.parallel else node_total  # parallel blocks have no residual-MLP edges
    att_kept = _kept_counts(ranks.attn.reshape(n_layers, n_heads, -1), sizes)  # [K, L, H]
    mlp_kept, ra_kept, rm_kept = (_kept_counts(r, sizes) for r in (ranks.mlp, ranks.res_attn, ranks.res_mlp))  # [K, L] each
    att_kept[-1] = head_total[:, None]
    mlp_kept[-1] = ra_kept[-1] = node_total
    rm_kept[-1] = rm_total
    return Composition(
        head_share=(att_kept / head_total[None, :, None]).astype(np.float32),
        mlp_share=(mlp_kept / node_total[None, :]).astype(np.float32),
        component_edges=np.stack([att_kept.sum((1, 2)), mlp_kept.sum(1), (ra_kept + rm_kept).sum(1)], axis=1).astype(np.int64),
        layer_edges=(att_kept.sum(2) + mlp_kept + ra_kept + rm_kept).astype(np.int64),
    )


def edge_order(ranks: Ranks) -> list[tuple[int, int, int, int, int]]:
    """The taken edges as key tuples, in the order they were taken (for checks against the reference)."""
    items: list[tuple[int, tuple[int, int, int, int, int]]] = []
    for l, h, t, s in zip(*np.nonzero(ranks.attn >= 0)):
        items.append((int(ranks.attn[l, h, t, s]), (0, int(l), int(t), int(h), int(s))))
    for kind, arr in ((1, ranks.res_attn), (2, ranks.mlp), (3, ranks.res_mlp)):
        for l, t in zip(*np.nonzero(arr >= 0)):
            items.append((int(arr[l, t]), (kind, int(l), int(t), 0, int(t))))
    items.sort()
    return [key for _, key in items]


def compile_now() -> None:
    """Compile the numba expansion into its on-disk cache (setup runs this once, so that a user's
    first trace does not wait ~10 s for the compiler)."""
    expand(random_weights(1, 1, 2), 1)
