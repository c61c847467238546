"""``Subgraph``: one stratum of one prediction as a graph file (JSON, GraphML) or a networkx graph.

A stratum is the first n edges of the best-first order from the root; nothing in a ``DensityResult``
stores edge sets (they would dwarf it), so a subgraph is derived again from the model, the text and
the result's settings: one forward for the edge weights and one expansion. Layout: docs/exports.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from density_nb.config import TraceConfig, resolve
from density_nb.errors import DensityNBError
from density_nb.files import atomic_write, write_text

FORMAT = "density_nb.subgraph"
VERSION = 1
EDGE_KINDS = ("attention", "residual_attention", "mlp", "residual_mlp")  # key kinds 0..3


@dataclass(frozen=True)
class Edge:
    """One kept edge. Nodes are residual states (g, t): g = 0 the embedding, 2l+1 after layer l's
    attention, 2l+2 after its MLP; t the position. In a model of parallel blocks (GPT-NeoX) there is
    one node per layer, 2l+2, and every edge of layer l leaves 2l (docs/method.md §9.1)."""

    rank: int  # 0 = taken first
    kind: str  # one of EDGE_KINDS
    layer: int
    head: int | None  # attention edges only
    target: int  # position of the node the edge enters
    source: int  # position of the node it leaves (= target except for attention edges)
    weight: float
    parallel: bool = False  # an edge of a parallel block

    @property
    def nodes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(source node, target node) as (g, t)."""
        if self.parallel:
            return (2 * self.layer, self.source), (2 * self.layer + 2, self.target)
        g_in = 2 * self.layer + (1 if self.kind in ("attention", "residual_attention") else 2)
        return (g_in - 1, self.source), (g_in, self.target)


@dataclass(frozen=True)
class Subgraph:
    """Stratum of ``n_edges`` of the ``total_edges`` edges of the prediction at token ``position``."""

    model: str
    tokens: tuple[str, ...]
    position: int
    s: float  # the nominal size asked for
    n_edges: int
    total_edges: int
    n_layers: int
    n_heads: int
    weighting: str
    edges: tuple[Edge, ...]  # best first
    parallel: bool = False  # the graph of parallel blocks (GPT-NeoX / Pythia): one node per layer

    @property
    def output(self) -> tuple[int, int]:
        """The root node (2L, position)."""
        return (2 * self.n_layers, self.position)

    def keys(self) -> set[tuple[int, int, int, int, int]]:
        """The kept edges as (kind, layer, target, head, source) keys, as ``reference.py`` names them."""
        return {(EDGE_KINDS.index(e.kind), e.layer, e.target, e.head or 0, e.source) for e in self.edges}

    # ---- files -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of docs/exports.md."""
        nodes = sorted({node for e in self.edges for node in e.nodes} | {self.output})
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "tokens": list(self.tokens),
            "position": self.position,
            "s": self.s,
            "n_edges": self.n_edges,
            "total_edges": self.total_edges,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "weighting": self.weighting,
            "parallel": self.parallel,
            "nodes": [_node(g, t, self.n_layers, self.parallel) for g, t in nodes],
            "edges": [
                {
                    "rank": e.rank,
                    "kind": e.kind,
                    "layer": e.layer,
                    "head": e.head,
                    "target": e.target,
                    "source": e.source,
                    "from": _node_id(*e.nodes[0]),
                    "to": _node_id(*e.nodes[1]),
                    "weight": e.weight,
                }
                for e in self.edges
            ],
        }

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON file (atomically)."""
        text = json.dumps(self.to_dict(), indent=1)
        return write_text(path, text)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> Subgraph:
        """Read what ``to_json`` wrote."""
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DensityNBError(f"{str(path)!r} does not exist: give a file written by Subgraph.to_json.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DensityNBError(f"{str(path)!r} is not a subgraph JSON file ({err}).") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or raw.get("version") != VERSION:
            raise DensityNBError(f"{str(path)!r} is not a {FORMAT} file of version {VERSION}; write it again with Subgraph.to_json.")
        parallel = bool(raw.get("parallel", False))
        edges = tuple(
            Edge(e["rank"], e["kind"], e["layer"], e["head"], e["target"], e["source"], float(e["weight"]), parallel) for e in raw["edges"]
        )
        return cls(
            model=raw["model"],
            tokens=tuple(raw["tokens"]),
            position=raw["position"],
            s=raw["s"],
            n_edges=raw["n_edges"],
            total_edges=raw["total_edges"],
            n_layers=raw["n_layers"],
            n_heads=raw["n_heads"],
            weighting=raw["weighting"],
            edges=edges,
            parallel=parallel,
        )

    def to_networkx(self) -> Any:
        """A ``networkx.MultiDiGraph``: nodes (g, t) with their kind, layer and token; edges keyed
        by their (kind, layer, target, head, source) key, with rank and weight."""
        try:
            import networkx as nx  # optional (the reference extra)
        except ImportError as err:
            raise DensityNBError("Subgraph.to_networkx needs networkx: pip install networkx.") from err
        graph = nx.MultiDiGraph(model=self.model, position=self.position, s=self.s, n_edges=self.n_edges, total_edges=self.total_edges)
        for node in self.to_dict()["nodes"]:
            layer = -1 if node["layer"] is None else node["layer"]  # GraphML has no null
            graph.add_node((node["slot"], node["position"]), id=node["id"], kind=node["kind"], layer=layer)
        for e, key in zip(self.edges, (_key(e) for e in self.edges)):
            graph.add_edge(
                *e.nodes, key=key, kind=e.kind, layer=e.layer, head=-1 if e.head is None else e.head, rank=e.rank, weight=e.weight
            )
        return graph

    def to_graphml(self, path: str | os.PathLike[str]) -> Path:
        """Write GraphML (for Gephi, Cytoscape, yEd ...); node ids as in the JSON layout."""
        import networkx as nx  # optional (the reference extra)

        graph = nx.relabel_nodes(self.to_networkx(), lambda node: _node_id(*node))
        for _u, _v, data in graph.edges(data=True):
            data.pop("key", None)
        graph.graph = {k: v for k, v in graph.graph.items() if isinstance(v, (int, float, str))}
        return atomic_write(path, lambda tmp: nx.write_graphml(graph, tmp))


def _key(e: Edge) -> str:
    return f"{e.kind}:{e.layer}:{e.target}:{e.head or 0}:{e.source}"


def _node_id(g: int, t: int) -> str:
    return f"g{g}t{t}"


def _node(g: int, t: int, n_layers: int, parallel: bool) -> dict[str, Any]:
    inner = "after_block" if parallel else ("after_attention" if g % 2 else "after_mlp")
    kind = "embedding" if g == 0 else ("output" if g == 2 * n_layers else inner)
    return {"id": _node_id(g, t), "slot": g, "position": t, "kind": kind, "layer": None if g == 0 else (g - 1) // 2}


def subgraph(model: Any, text: str, position: int, s: float, config: TraceConfig | None = None, **settings: Any) -> Subgraph:
    """The stratum of size ``s`` (a share of the edges, as on the grid: ⌊s·|E|⌋ edges) of the
    prediction at token ``position`` of ``text``, traced as ``trace(model, text, config, **settings)``
    would (same tokenization and weighting)."""
    # torch: only to derive a stratum (a saved subgraph is read, written and drawn without it)
    from density_nb.method.arch import Arch
    from density_nb.method.importance import edge_weights
    from density_nb.method.inputs import root_positions, tokenize
    from density_nb.method.stratify import edge_count, edge_order, expand, stratum_sizes
    from density_nb.models import cached_model, load_model, model_name

    config = resolve(config, settings)
    if not 0 < float(s) <= 1:
        raise DensityNBError(f"s must be a share of the edges in (0, 1], got {s!r}.")
    bridge = cached_model(model) if isinstance(model, str) else load_model(model)
    arch = Arch.of(bridge.original_model)
    ids, pieces = tokenize(bridge, text, config.prepend_bos)
    (root,) = root_positions([position], len(ids))
    weights = edge_weights(bridge, ids, config.weighting, seed=config.seed)
    total = edge_count(arch.n_layers, arch.n_heads, root + 1, arch.parallel)
    n = int(stratum_sizes(np.array([float(s)]), total)[0])
    order = edge_order(expand(weights, root, n_max=n))[:n]
    edges = tuple(
        Edge(
            rank=rank,
            kind=EDGE_KINDS[kind],
            layer=layer,
            head=head if kind == 0 else None,
            target=target,
            source=source,
            weight=float(_weight(weights, kind, layer, target, head, source)),
            parallel=arch.parallel,
        )
        for rank, (kind, layer, target, head, source) in enumerate(order)
    )
    return Subgraph(
        model_name(bridge), tuple(pieces), root, float(s), n, total, arch.n_layers, arch.n_heads, config.weighting, edges, arch.parallel
    )


def _weight(w: Any, kind: int, layer: int, target: int, head: int, source: int) -> float:
    if kind == 0:
        return float(w.attn[layer, head, target, source])
    return float((w.res_attn, w.mlp, w.res_mlp)[kind - 1][layer, target])
