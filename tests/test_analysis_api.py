"""The analysis API on any set of results (``analysis.tables``, ``analysis.curves``): several traced texts
stacked into one summary and one curves table, and every per-passage function giving on them what the
slow obvious computation from the results themselves gives, and the same on a corpus run's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import density_nb
from density_nb import trace_many
from density_nb.analysis import curves as ac
from density_nb.analysis.tables import Tables, tables

TEXTS = ["The small boat drifted past the old mill, and the miller waved", "Rain fell on the city for three days"]


@pytest.fixture(scope="module")
def results(tiny_llama):
    return trace_many(tiny_llama, TEXTS, roots="all", grid="paper", baselines=["random", "inverse"], refine=True, progress=False)


def test_stack_has_every_prediction_once(results):
    summary, curves = density_nb.stack(results, ids=["boat", "rain"])
    n = [len(r.roots) for r in results]
    assert len(summary) == sum(n) and summary.passage_id.tolist() == list(range(sum(n)))
    assert (
        summary.text_id.tolist() == ["boat"] * n[0] + ["rain"] * n[1]
        and (summary.text == [t for t, k in zip(TEXTS, n) for _ in range(k)]).all()
    )
    np.testing.assert_array_equal(summary.n_tokens, np.concatenate([r.roots + 1 for r in results]))
    np.testing.assert_array_equal(summary.density, np.concatenate([r.density for r in results]))
    assert len(curves) == sum(k * len(r.grid) for k, r in zip(n, results))
    by_row = curves.set_index(["passage_id", "stratum"])
    for pid, (text_id, position) in enumerate(zip(summary.text_id, summary.position)):
        r = results[0 if text_id == "boat" else 1]
        i = r.index(int(position))
        np.testing.assert_array_equal(by_row.loc[pid].tv, r.tv[i])
        np.testing.assert_array_equal(by_row.loc[pid].edges_attn, r.component_edges[i, :, 0])
    assert tables(results).summary.equals(density_nb.stack(results).summary)
    assert tables((summary, curves)) == Tables(summary, curves) and tables(results[0]).summary.equals(
        density_nb.stack([results[0]]).summary
    )
    with pytest.raises(density_nb.DensityNBError, match="Cannot read tables"):
        tables("runs/smol")


def test_required_size_and_reaches_input(results):
    stacked = density_nb.stack(results)
    summary, curves = stacked
    derived = ac.reaches_input((summary, curves.drop(columns="reaches_input")))
    np.testing.assert_array_equal(derived, curves.reaches_input)
    np.testing.assert_array_equal(curves.reaches_input, np.concatenate([(r.n_edges >= r.input_edges[:, None]).ravel() for r in results]))
    exact = ac.required_size(results, "top1")
    np.testing.assert_array_equal(exact.to_numpy(), np.concatenate([r.required("top1") for r in results]))
    np.testing.assert_array_equal(ac.required_size(stacked, "nu20").to_numpy(), np.concatenate([r.required("nu20") for r in results]))
    # on the grid: the first grid size past the input where the condition holds, by a plain loop over the results
    for condition, ok in (("tv10", lambda r: r.tv <= 0.1), ("top1", lambda r: r.top1), ("nu40", lambda r: r.nu >= 40)):
        expected = [r.grid[np.flatnonzero(ok(r)[i] & (r.n_edges[i] >= r.input_edges[i]))[0]] for r in results for i in range(len(r.roots))]
        np.testing.assert_array_equal(ac.required_size(stacked, condition, exact=False).to_numpy(), expected)
    assert (
        ac.required_size(stacked, "tv10") <= ac.required_size(stacked, "tv10", exact=False) + 1e-12
    ).all()  # refined: inside the bracket
    with pytest.raises(density_nb.DensityNBError, match="Unknown condition"):
        ac.required_size(stacked, "entropy")


def test_first_past_input_phases_and_baselines(results):
    stacked = density_nb.stack(results)
    first = ac.first_past_input(results)
    for row in first.itertuples():
        r_i = stacked.summary.set_index("passage_id").loc[row.passage_id]
        r = results[int(r_i.text_id)]
        i = r.index(int(r_i.position))
        k = int(np.flatnonzero(r.n_edges[i] >= r.input_edges[i])[0])
        assert row.n_edges == r.n_edges[i, k] and row.top_token == r.top_token[i, k] and row.agrees == r.top1[i, k]
    phases = ac.phase_compare(stacked, "attention")
    np.testing.assert_allclose(phases.base.to_numpy(), np.concatenate([r.component_share()[:, -1, 0] for r in results]))
    assert {"traced_construction", "random_construction", "traced_refinement", "random_refinement"} <= set(phases.columns)
    assert set(ac.baseline_by_size(results).columns) >= {"tv", "tv_random", "tv_inverse", "random informative"}
    counts = pd.Series([5, 1, 1], index=pd.Index([int(results[0].top_token_full[0]), 1, 2], name="token_id"))
    rarity = ac.rarity(results, counts)
    assert {"log10_freq_top", "log10_freq_next", "log10_s_top1_exact"} <= set(rarity.columns)
    # the length-fair mean TV from a shared start equals tv_post_input where the start is the root's own s_input
    own = stacked.summary.set_index("passage_id").s_input
    np.testing.assert_allclose(ac.mean_tv_from(stacked, own).to_numpy(), stacked.summary.tv_post_input.to_numpy(), rtol=1e-12)


def test_a_corpus_run_is_a_source(tiny_llama, tmp_path):
    table = tmp_path / "p.csv"
    pd.DataFrame({"prompt": ["The boat went down the", "Rain fell on the"], "next_word": ["river", "roof"]}).to_csv(table, index=False)
    density_nb.run_corpus(tiny_llama, tmp_path / "run", data=table, n_passages=None, grid="fast", progress=False)
    run = density_nb.load_runs(tmp_path / "run")
    assert tables(run).summary is run.summary
    assert ac.required_size(run, "tv50").index.tolist() == run.summary.passage_id.tolist()
    assert len(ac.first_past_input(run)) == 2


def test_the_readme_example_runs():
    """The README's notebook-free finding, on the tiny model (same code otherwise)."""
    import contextlib
    import io
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"### A finding on your own texts.*?```python\n(.*?)```", readme, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(
            code.replace('load_model("smollm2-135m")', 'load_model("tiny-llama")').replace(
                "trace_many(model, texts,", "trace_many(model, texts, progress=False,"
            ),
            {},
        )
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("IQR = ") and "bootstrap resamples" in lines[2] and lines[1].startswith("ρ = ")
