"""The corpus dashboard's data, prepared in Python: right against aggregate.py, pandas and stats on a
small real run of the tiny models; a killed-and-resumed run shows each passage once; click-through
re-traces the passage's own numbers; ``density-nb view`` writes an offline page."""

from __future__ import annotations

import shutil
import zlib

import numpy as np
import pandas as pd
import pytest

from density_nb import cli
from density_nb.analysis import aggregate
from density_nb.analysis.stats import spearman
from density_nb.corpus import runner
from density_nb.corpus import runs as corpus_runs
from density_nb.corpus import store as run_store
from density_nb.views import CorpusDashboard, DashboardError
from density_nb.views.dashboard_state import GRID, HEAD_SIZES, LOG_FLOOR, PARTS, composition_shares, head_shares, nearest_sizes, tv_on_grid
from density_nb.views.data import decode_shares
from helpers import SAMPLE_LINES, resume_killed_mid_shard

RUN = {"words": 6, "grid": "fast", "progress": False}
N_PASSAGES = 5


def make_data(folder):
    (folder / "wikitext-2").mkdir(parents=True)
    (folder / "wikitext-2" / "test.txt").write_text("\n".join(SAMPLE_LINES) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama, tiny_gemma3):
    """Two runs of the same prompts: tiny-llama (with the random baseline) and tiny-gemma3."""
    root = tmp_path_factory.mktemp("dash")
    data = make_data(root / "data")
    runner.run_corpus(tiny_llama, root / "llama", data=data, n_passages=N_PASSAGES, baselines=["random"], **RUN)
    runner.run_corpus(tiny_gemma3, root / "gemma", data=data, n_passages=N_PASSAGES, **RUN)
    return root, corpus_runs.load_runs(root / "llama"), corpus_runs.load_runs(root / "gemma")


def unpack(widget: CorpusDashboard) -> dict[str, np.ndarray]:
    """The binary trait as numpy arrays, read the way the browser reads it (layout offsets)."""
    buf, out = zlib.decompress(widget.arrays), {}
    for name, spec in widget.data["layout"].items():
        dtype = np.dtype({"int32": "<i4", "float32": "<f4", "uint8": "u1"}[spec["dtype"]])
        n = int(np.prod(spec["shape"]))
        out[name] = np.frombuffer(buf, dtype, n, spec["offset"]).reshape(spec["shape"])
    return out


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # strata empty in every passage
def test_state_agrees_with_aggregate(runs):
    _, run, _ = runs
    w = run.widget()
    d, a = w.data, unpack(w)
    s, c = run.summary, run.curves
    assert d["n"] == len(s) == N_PASSAGES
    np.testing.assert_array_equal(a["ids"], s["passage_id"])
    names = [m["key"] for m in d["measures"]] + [col["key"] for col in d["columns"]]
    assert names[:2] == ["density", "tv_post_input"] and {"entropy_full", "top_prob_full", "n_tokens"} <= set(names)
    for i, name in enumerate(names):
        np.testing.assert_array_equal(a["cols"][i], s[name].to_numpy(dtype=np.float32))
    # whole-run curve: aggregate.mean_curve on the dashboard's grid
    whole = aggregate.mean_curve(c, grid=GRID)
    np.testing.assert_allclose(d["curve"]["mean"], whole["mean"], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(d["curve"]["q75"], whole["q75"], rtol=1e-3, atol=1e-6)
    # per-passage TV: each passage's own mean_curve, within the uint8 code's half step
    tv = tv_on_grid(c, a["ids"].astype(np.int64))
    for row, pid in enumerate(a["ids"]):
        np.testing.assert_allclose(tv[row], aggregate.mean_curve(c, grid=GRID, passages=[int(pid)])["mean"], atol=1e-12)
    assert np.abs(a["tv"] / 254 - tv).max() <= 0.5 / 254 + 1e-12
    # composition: the per-passage shares average to aggregate.composition; their codes decode within tolerance
    comp = aggregate.composition(c).set_index("s")
    sizes = np.asarray(run.manifest["grid_sizes"])
    shares = composition_shares(c, a["ids"].astype(np.int64), len(sizes))  # [N, K, 7]
    mean = np.nanmean(shares, axis=0)  # strata empty for every passage stay NaN
    for part_i, part in enumerate(PARTS):
        np.testing.assert_allclose(mean[np.isin(sizes, comp.index), part_i], comp[part].to_numpy(), atol=1e-12)
        np.testing.assert_allclose(d["comp"]["values"][part], comp[part].to_numpy(), rtol=1e-3, atol=1e-6)
    codes = a["comp"].astype(float)
    kept = ~np.isnan(shares[..., 0])
    assert ((codes[..., :3].sum(-1) > 0) == kept).all(), "an empty stratum is exactly the all-zero code"
    linear = [0, 3, 4, 5, 6]
    assert np.abs(codes[..., linear][kept] / 255 - shares[..., linear][kept]).max() <= 0.5 / 255 + 1e-12
    logged = decode_shares(a["comp"][..., 1:3], LOG_FLOOR)[kept]
    exact = shares[..., 1:3][kept]
    big = exact >= LOG_FLOOR
    assert np.all(np.abs(logged[big] - exact[big]) <= 0.02 * exact[big])
    # heads at the sizes nearest 1e-3, 1e-2, 1e-1: aggregate.head_frequency, and per-passage codes
    heads = d["heads"]
    assert heads["sizes"] == nearest_sizes(sizes.tolist(), HEAD_SIZES)
    for j, size in enumerate(heads["sizes"]):
        expected = aggregate.head_frequency(c, size, heads["L"], heads["H"]).ravel()
        np.testing.assert_allclose(heads["freq"][j], expected, rtol=1e-3, atol=1e-6)
    exact_heads = head_shares(c, a["ids"].astype(np.int64), heads["sizes"], heads["L"] * heads["H"])
    assert np.abs(a["heads"] / 255 - exact_heads).max() <= 0.5 / 255 + 1e-9
    # ρ of the whole run: stats.spearman on the values the page holds
    for col in d["columns"]:
        for m in ("density", "tv_post_input"):
            ref = spearman(s[m].to_numpy(np.float32), s[col["key"]].to_numpy(np.float32), n_boot=0)
            got = col["rho"][m]
            assert got["n"] == ref.n and (got["rho"] is None if np.isnan(ref.rho) else got["rho"] == pytest.approx(ref.rho, rel=1e-3))
    code = sum(len(getattr(w, name).encode()) for name in ("_esm", "_css", "_common", "_theme"))  # the views' code and theme
    assert w.state_nbytes() - code < 40_000 and code < 120_000


def test_selection_follows_the_brush(runs):
    _, run, _ = runs
    w = run.widget()
    s = run.summary
    assert len(w.selected()) == len(s)
    lo, hi = float(s.density.quantile(0.2)), float(s.density.quantile(0.8))
    w.brush = {"kind": "range", "measure": "density", "lo": lo, "hi": hi}
    v = s.density.to_numpy(np.float32)
    expected = s[(v >= np.float32(lo)) & (v <= np.float32(hi))]
    pd.testing.assert_frame_equal(w.selected(), expected)
    w.brush = {"kind": "box", "measure": "density", "column": "entropy_full", "x": [0, 1e9], "y": [lo, hi]}
    pd.testing.assert_frame_equal(w.selected(), expected)
    with pytest.raises(Exception, match="measure must be one of"):
        w.measure = "loss"
    with pytest.raises(Exception, match="column must be one of"):
        w.column = "loss"
    w.column = "top_prob_full"
    assert w.column == "top_prob_full"


def test_compare_joins_two_runs(runs):
    _, llama, gemma = runs
    w = llama.widget(compare=gemma)
    d, a = w.data["compare"], unpack(w)
    both, corr = aggregate.join_runs(llama.summary, gemma.summary)
    assert d["a"] == "tiny-llama" and d["b"] == "tiny-gemma3" and d["n"] == len(both)
    assert d["rho"]["density"]["rho"] == pytest.approx(
        spearman(both.density_a.astype(np.float32), both.density_b.astype(np.float32), n_boot=0).rho, rel=1e-3
    )
    assert abs(d["rho"]["density"]["rho"] - corr.rho) < 1e-3
    np.testing.assert_array_equal(a["ids"][a["cmp_a"]], both.passage_id)
    np.testing.assert_array_equal(a["cmp_b"][0], both.density_b.to_numpy(np.float32))


def test_killed_and_resumed_run_shows_each_passage_once(tiny_llama, tmp_path, monkeypatch):
    """A kill after a shard is written but before the manifest lists it, then a resume: the orphan
    shard's passage is traced again; the dashboard shows every passage once."""
    data = make_data(tmp_path / "data")
    out = tmp_path / "run"
    runner.run_corpus(tiny_llama, out, data=data, n_passages=2, **RUN)
    resume_killed_mid_shard(tiny_llama, out, monkeypatch, data=data, n_passages=3, **RUN)
    runner.run_corpus(tiny_llama, out, data=data, n_passages=4, resume=True, **RUN)
    # one passage in two shards (as a copied or damaged folder could hold it) still shows once
    for kind in ("summary", "curves"):
        shutil.copy(out / f"shards/00000000.{kind}.parquet", out / f"shards/00000099.{kind}.parquet")
    run = corpus_runs.load_runs(out)
    w = run.widget()
    ids = unpack(w)["ids"]
    assert w.data["n"] == 4 and sorted(set(ids.tolist())) == ids.tolist() == run.summary.passage_id.tolist()
    assert w.data["curve"]["n"] == 4


def test_click_opens_the_passage(runs, tiny_llama):
    _, run, _ = runs
    w = run.widget(model=tiny_llama)
    row = run.summary.iloc[2]
    w._on_message(w, {"type": "open", "passage_id": int(row.passage_id)}, [])
    assert w.opened == {"passage_id": int(row.passage_id), "state": "done", "note": ""}
    result = w.explorer.result
    assert result.density[0] == row.density and result.roots.tolist() == [row.position]
    assert w.panel.children == (w, w.explorer)
    assert w.open_passage(int(row.passage_id)) is not None and w._results[int(row.passage_id)] is result  # kept, not traced again
    with pytest.raises(DashboardError, match="not in this run"):
        w.open_passage(10_000)
    bare = corpus_runs.CorpusRun(run.summary.drop(columns=["prompt"]), run.curves, run.manifest)
    with pytest.raises(run_store.CorpusError, match="no prompt text"):
        bare.passage(int(row.passage_id))


def test_counts_add_the_frequency_column(runs):
    _, run, _ = runs
    counts = pd.Series([5, 1], index=pd.Index([int(run.summary.next_token.iloc[0]), 3]))
    w = run.widget(counts=counts)
    keys = [c["key"] for c in w.data["columns"]]
    assert "log10_freq_next" in keys and not any("next-token frequency" in n for n in w.data.get("notes", []))
    freq = w.selected()["log10_freq_next"].to_numpy()
    assert freq[0] == pytest.approx(np.log10(5 / 6)) and np.all(freq[1:] <= np.log10(5 / 6))


def test_bad_runs_say_what_to_do(runs):
    _, run, _ = runs
    with pytest.raises(DashboardError, match="no passages"):
        corpus_runs.CorpusRun(run.summary.iloc[:0], run.curves.iloc[:0], run.manifest).widget()
    w = corpus_runs.CorpusRun(run.summary, run.curves.drop(columns=["head_share"]), run.manifest).widget()
    assert "head_share" in w.data["heads"]["missing"] and "heads" not in w.data["layout"]


def test_cli_view_writes_an_offline_page(runs, capsys):
    root, run, _ = runs
    out = root / "page.html"
    with pytest.raises(SystemExit) as done:
        cli.main(["view", str(root / "llama"), "--out", str(out), "--compare", str(root / "gemma")])
    assert done.value.code == 0 and out.is_file()
    page = out.read_text(encoding="utf-8")
    assert "dnb-state" in page and "connect-src 'none'" in page and "http://" not in page.replace("http://www.w3.org", "")
    assert run.summary.next_word.iloc[0] in page
    with pytest.raises(SystemExit):
        cli.main(["view", str(root / "llama"), "--out", str(root / "bare.html"), "--no-text"])
    bare = (root / "bare.html").read_text(encoding="utf-8")
    assert all(p[-20:] not in bare for p in run.summary.prompt)
    with pytest.raises(SystemExit) as bad:
        cli.main(["view", str(root / "llama"), "--out", str(root / "page.txt")])
    assert bad.value.code == 2 and "--out must end in .html" in capsys.readouterr().err


def test_save_and_snapshot(runs, tmp_path):
    """``save`` draws the views in Python (the selection included) as SVG that parses and PNG that decodes;
    the notebook keeps the same SVG as a snapshot for readers without a kernel."""
    import xml.etree.ElementTree as ET

    _, llama, gemma = runs
    w = llama.widget(compare=gemma)
    w.brush = {"kind": "range", "measure": "density", "lo": float(llama.summary.density.min()), "hi": float(llama.summary.density.median())}
    svg = ET.parse(w.save(tmp_path / "d.svg")).getroot()
    assert svg.tag.endswith("svg") and float(svg.get("width")) > 500
    text = (tmp_path / "d.svg").read_text()
    assert f"selection ({len(w.selected())})" in text and "Mean TV" in text
    png = w.save(tmp_path / "d.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") > 500
    assert "image/svg+xml" in w._repr_mimebundle_()
    with pytest.raises(ValueError, match=r"\.svg or \.png"):
        w.save(tmp_path / "d.pdf")
    w.brush = {"kind": "range", "measure": "density", "lo": 2.0, "hi": 3.0}  # selects nothing
    assert "selects no passage" in w.save(tmp_path / "none.svg").read_text()
    assert aggregate.composition(llama.curves, passages=[]).empty


def test_js_sets_text_never_html():
    from density_nb.views.assets import STATIC

    js = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    # the one import() is importText's: static/common.js from the _common trait's text, never a URL of the network
    loader = js[js.index("function importText(text) {") :]
    loader = loader[: loader.index("\n}\n") + 3]
    assert loader.count("import(") == 1 and "${encodeURIComponent(text)}" in loader and "new Blob([text]" in loader
    js = js.replace(loader, "")
    assert not any(bad in js for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "fetch(", "import("))
