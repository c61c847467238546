"""A stratum as a graph file: JSON round trip, networkx and GraphML, and the same edges as the trace."""

from __future__ import annotations

import networkx as nx
import pytest

from density_nb import DensityNBError, Subgraph, subgraph, trace
from density_nb.method.importance import edge_weights
from density_nb.method.stratify import edge_order, expand
from density_nb.models import load_model, tiny_model
from helpers import TEXT, token_ids


@pytest.fixture(scope="module")
def result(tiny_llama):
    return trace(tiny_llama, TEXT, roots=[4, 11], grid="fast", progress=False)


@pytest.mark.parametrize("stratum", [0, 3, 6, 8])
def test_a_stratum_as_a_graph_is_the_traced_stratum(tiny_llama, result, stratum, tmp_path):
    sub = result.subgraph(tiny_llama, 11, stratum)
    assert sub.n_edges == result.n_edges[1, stratum] == len(sub.edges)
    assert sub.total_edges == result.total_edges[1] and sub.position == 11
    order = edge_order(expand(edge_weights(tiny_llama, token_ids(tiny_llama)), 11))[: sub.n_edges]
    assert [e.rank for e in sub.edges] == list(range(sub.n_edges))
    assert sub.keys() == set(order)
    # the JSON round trip gives back the same stratum
    again = Subgraph.from_json(sub.to_json(tmp_path / "s.json"))
    assert again == sub
    # every kept edge enters the output or a node some kept edge leaves: connected to the root
    reached = {sub.output}
    for e in sub.edges:
        source, target = e.nodes
        assert target in reached
        reached.add(source)


def test_networkx_and_graphml(tiny_llama, result, tmp_path):
    sub = result.subgraph(tiny_llama, 4, 7)
    graph = sub.to_networkx()
    assert graph.number_of_edges() == sub.n_edges
    assert all(graph.has_node(node) for e in sub.edges for node in e.nodes)
    back = nx.read_graphml(sub.to_graphml(tmp_path / "s.graphml"))
    assert back.number_of_edges() == sub.n_edges and back.number_of_nodes() == graph.number_of_nodes()
    weights = sorted(d["weight"] for _u, _v, d in back.edges(data=True))
    assert weights == pytest.approx(sorted(e.weight for e in sub.edges))


def test_the_wrong_model_or_a_bad_file_is_named(tiny_gemma3, tiny_llama, result, tmp_path):
    with pytest.raises(DensityNBError, match="another model"):
        result.subgraph(tiny_gemma3, 11, 5)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(DensityNBError, match=r"bad\.json.*not a density_nb\.subgraph"):
        Subgraph.from_json(bad)
    with pytest.raises(DensityNBError, match=r"s must be"):
        subgraph(tiny_llama, TEXT, 3, 0.0)


def test_parallel_blocks_give_one_node_per_layer(tmp_path):
    """GPT-NeoX: every edge of layer l leaves node 2l and enters 2l+2 (docs/method.md §9.1); the
    stratum is the traced one and stays connected to the root."""
    model, tok = tiny_model("gpt_neox")
    bridge = load_model(model, tokenizer=tok)
    result = trace(bridge, TEXT, roots=[9], grid="fast", progress=False)
    sub = result.subgraph(bridge, 9, 7)
    assert sub.parallel and sub.total_edges == result.total_edges[0] and sub.n_edges == result.n_edges[0, 7]
    assert sub.keys() == set(edge_order(expand(edge_weights(bridge, token_ids(bridge)), 9))[: sub.n_edges])
    assert all(e.kind != "residual_mlp" and e.nodes[0][0] == 2 * e.layer and e.nodes[1][0] == 2 * e.layer + 2 for e in sub.edges)
    reached = {sub.output}
    for e in sub.edges:
        assert e.nodes[1] in reached
        reached.add(e.nodes[0])
    layout = sub.to_dict()
    assert layout["parallel"] and {n["kind"] for n in layout["nodes"]} <= {"embedding", "after_block", "output"}
    assert Subgraph.from_json(sub.to_json(tmp_path / "neox.json")) == sub
