"""Corpus-level summaries: mean curves on a common log grid, composition and its base rate, head
frequencies, joined runs; by hand on made-up tables and on a real (tiny) run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from density_nb.analysis import aggregate
from density_nb.corpus import runner
from density_nb.corpus import runs as corpus_runs
from helpers import SAMPLE_LINES


def test_mean_curve_by_hand():
    curves = pd.DataFrame(
        {
            "passage_id": [1, 1, 1, 2, 2, 2],
            "s_actual": [1e-4, 1e-2, 1.0, 1e-3, 1e-1, 1.0],
            "tv": [0.8, 0.4, 0.0, 0.6, 0.2, 0.0],
        }
    )
    grid = np.array([1e-4, 1e-3, 1e-2, 1.0])
    table = aggregate.mean_curve(curves, grid=grid)
    # passage 1 at 1e-3: halfway (in log s) from 0.8 to 0.4 = 0.6; passage 2 at 1e-4 is held at 0.6, at 1e-2 halfway 0.6 -> 0.2 = 0.4
    np.testing.assert_allclose(table["mean"], [(0.8 + 0.6) / 2, (0.6 + 0.6) / 2, (0.4 + 0.4) / 2, 0.0])
    assert table["n"].iloc[0] == 2
    assert (table["q25"] <= table["mean"]).all() and (table["mean"] <= table["q75"]).all()
    only_two = aggregate.mean_curve(curves, grid=grid, passages=[2])
    np.testing.assert_allclose(only_two["mean"], [0.6, 0.6, 0.4, 0.0])


def test_composition_and_joined_runs_by_hand():
    curves = pd.DataFrame(
        {
            "passage_id": [1, 1, 2, 2],
            "s": [0.1, 1.0, 0.1, 1.0],
            "edges_attn": [2, 90, 0, 90],
            "edges_mlp": [1, 4, 0, 4],
            "edges_res": [1, 6, 0, 6],
            "layer_edges": [[4, 0, 0, 0], [25, 25, 25, 25], [0, 0, 0, 0], [25, 25, 25, 25]],
        }
    )
    table = aggregate.composition(curves).set_index("s")
    assert table.loc[0.1, "attention"] == pytest.approx(0.5) and table.loc[0.1, "depth_q1"] == pytest.approx(
        1.0
    )  # the empty stratum is left out
    assert table.loc[1.0, "attention"] == pytest.approx(0.9) and table.loc[1.0, "depth_q4"] == pytest.approx(0.25)
    a = pd.DataFrame({"passage_id": [1, 2, 3, 4], "density": [0.1, 0.2, 0.3, 0.4]})
    b = pd.DataFrame({"passage_id": [2, 3, 4, 5], "density": [0.5, 0.7, 0.6, 0.9]})
    both, rho = aggregate.join_runs(a, b)
    assert both["passage_id"].tolist() == [2, 3, 4] and rho.n == 3 and rho.rho == pytest.approx(0.5)


def test_on_a_real_run(tiny_llama, tmp_path):
    data = tmp_path / "data" / "wikitext-2"
    data.mkdir(parents=True)
    (data / "test.txt").write_text("\n".join(SAMPLE_LINES) + "\n")
    runner.run_corpus(
        tiny_llama, tmp_path / "run", data=tmp_path / "data", n_passages=3, words=6, grid="fast", baselines=["random"], progress=False
    )
    run = corpus_runs.load_runs(tmp_path / "run")
    curve = aggregate.mean_curve(run.curves)
    assert curve["mean"].iloc[-1] == 0 and curve["n"].iloc[0] == 3
    comp = aggregate.composition(run.curves)
    base = run.curves[run.curves.s == 1.0]
    expected = (base.edges_attn / (base.edges_attn + base.edges_mlp + base.edges_res)).mean()
    assert comp.set_index("s").loc[1.0, "attention"] == pytest.approx(expected)
    assert len(aggregate.composition(run.curves, random=True)) > 1
    heads = aggregate.head_frequency(run.curves, 1.0, 4, 4)
    assert heads.shape == (4, 4) and np.allclose(heads, 1.0), "the full graph keeps every head's edges"
