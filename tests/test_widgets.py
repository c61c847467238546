"""State-level tests for the anywidget views (no browser): shapes, ranges, linking, size budget, export."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import traitlets

from density_nb.widgets import DensityExplorer, HeadGrid, SubgraphSlider, TokenStrip, link
from density_nb.widgets._data import decode_shares, sig4
from helpers import EVIL_TOKENS, make_result, smollm2_sized

WIDGET_DIR = Path(__file__).resolve().parents[1] / "density_nb" / "widgets"


@pytest.fixture(scope="module")
def result():
    return make_result(n_tokens=20, n_strata=9, n_layers=3, n_heads=4, seed=1)


def test_explorer_state_shapes(result):
    w = DensityExplorer(result)
    d = w.data
    r_count, k_count = result.tv.shape
    assert w.view == "explorer"
    assert d["tokens"] == result.tokens
    assert d["roots"] == result.roots.tolist()
    assert len(d["grid"]) == k_count and d["grid"][-1] == 1.0
    assert d["n_layers"] == 3 and d["n_heads"] == 4
    for key in ("density", "s_top1", "entropy", "top_token", "top_prob", "total_edges"):
        assert len(d[key]) == r_count, key
    for key in ("tv", "kl", "n_edges", "tv_random", "kl_random"):
        assert np.asarray(d[key]).shape == (r_count, k_count), key
    assert all(len(b) == k_count and set(b) <= {"0", "1"} for b in d["top1"])
    assert d["top1"] == ["".join("1" if x else "0" for x in row) for row in result.top1]
    shares = decode_shares(w.shares, r_count, k_count, 3, 4)
    assert shares.dtype == np.uint8 and shares.max() <= 100
    np.testing.assert_allclose(shares[..., :4], np.rint(result.head_share * 100), atol=0)
    np.testing.assert_allclose(shares[..., 4], np.rint(result.mlp_share * 100), atol=0)
    assert (shares[:, -1] == 100).all()  # the full graph includes everything
    # ranges
    assert all(0 <= x <= 1 for x in d["density"])
    assert all(0 <= x <= 1 for row in d["tv"] for x in row)
    assert w.root in d["roots"] and 0 <= w.stratum < k_count and w.metric == "tv"
    json.dumps(d, allow_nan=False)  # strictly JSON


def test_numbers_rounded_to_4_significant_digits(result):
    d = DensityExplorer(result).data
    for x in (v for row in d["tv"] + d["kl"] for v in row):
        assert x is None or float(f"{x:.4g}") == x
    assert sig4([1.23456789, 0.000123456, float("nan"), float("inf")]) == [1.235, 0.0001235, None, None]
    np.testing.assert_allclose(d["density"], result.density, rtol=5e-4)


def test_default_stratum_is_s_top1_of_default_root(result):
    w = DensityExplorer(result)
    ri = result.roots.tolist().index(w.root)
    assert w.s == pytest.approx(result.s_top1[ri], rel=1e-3)
    assert result.next_token[ri] >= 0  # the default root predicts a token of the text


def test_single_views_share_esm_and_send_only_what_they_need(result):
    views = {TokenStrip: "strip", SubgraphSlider: "slider", HeadGrid: "grid", DensityExplorer: "explorer"}
    esm = {cls(result)._esm for cls in views}
    assert len(esm) == 1
    for cls, view in views.items():
        w = cls(result, root=int(result.roots[3]), stratum=2)
        assert w.view == view and w.root == result.roots[3] and w.stratum == 2
    assert TokenStrip(result).shares == b"" and SubgraphSlider(result).shares == b""
    assert len(HeadGrid(result).shares) == result.head_share.size + result.mlp_share.size


def test_selection_validation(result):
    w = DensityExplorer(result)
    w.root = int(result.roots[-1])
    with pytest.raises(traitlets.TraitError):
        w.root = 10_000
    with pytest.raises(traitlets.TraitError):
        w.stratum = len(result.grid)
    with pytest.raises(traitlets.TraitError):
        w.stratum = -1
    w.metric = "KL"
    assert w.metric == "kl"
    with pytest.raises(traitlets.TraitError):
        w.metric = "js"


def test_roots_subset_and_no_random_baseline():
    res = make_result(n_tokens=12, n_strata=6, random_baseline=False, seed=3)
    w = DensityExplorer(res)
    assert "tv_random" not in w.data and "kl_random" not in w.data
    with pytest.raises(traitlets.TraitError):
        DensityExplorer(res, root=99)


def test_link_separate_widgets(result):
    strip, slider, grid = TokenStrip(result), SubgraphSlider(result), HeadGrid(result)
    links = link(strip, slider, grid)
    strip.root = int(result.roots[5])
    assert slider.root == grid.root == result.roots[5]
    slider.stratum = 1
    assert grid.stratum == strip.stratum == 1
    for lk in links:
        lk.unlink()


def test_result_widget_and_to_html(result, tmp_path):
    w = result.widget()
    assert isinstance(w, DensityExplorer)
    path = result.to_html(tmp_path / "r.html")
    assert path.exists() and path.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_size_budget_smollm2_shape(tmp_path):
    res = smollm2_sized()
    assert res.head_share.shape == (128, 27, 30, 9)
    w = DensityExplorer(res)
    n = w.state_nbytes()
    html = w.to_html(tmp_path / "big.html")
    print(f"state {n / 1e6:.3f} MB, html {html.stat().st_size / 1e6:.3f} MB")
    assert n < 2_000_000
    assert html.stat().st_size < 2_000_000


def test_export_is_self_contained_and_escaped(tmp_path):
    res = make_result(tokens=EVIL_TOKENS, n_strata=5, n_layers=2, n_heads=2)
    w = DensityExplorer(res)
    text = w.to_html(tmp_path / "evil.html").read_text(encoding="utf-8")
    # no external resources of any kind
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=", text, re.I)
    assert "unpkg" not in text and "jsdelivr" not in text and "cdn" not in text.lower()
    assert re.search(r"Content-Security-Policy.*default-src 'none'", text)
    # the only </script> sequences are the closing tags of our two scripts
    assert text.lower().count("</script") == 2
    assert "<img" not in text.replace("\\u003cimg", "")
    # the JSON payload parses back to the exact tokens
    payload = re.search(r'<script type="application/json" id="dnb-state">(.*?)</script>', text, re.S).group(1)
    state = json.loads(payload)
    entry = state["manager_state"]["state"][state["view_specs"][0]["model_id"]]
    assert entry["state"]["data"]["tokens"] == EVIL_TOKENS
    assert entry["state"]["_esm"].startswith("// density_nb widgets")
    assert [b["path"] for b in entry["buffers"]] == [["shares"]]


def test_widget_modules_import_no_torch():
    for path in WIDGET_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] != "torch", f"{path.name} imports {name}"
                assert name not in ("density_nb.metrics", "density_nb.tracing", "density_nb.models"), f"{path.name} imports {name}"


def test_js_never_uses_innerhtml():
    js = (WIDGET_DIR / "static" / "density.js").read_text(encoding="utf-8")
    assert "innerHTML" not in js and "outerHTML" not in js and "insertAdjacentHTML" not in js
    assert "document.write" not in js and "eval(" not in js
