"""State-level tests for the anywidget views (no browser): shapes, ranges, linking, the share code,
the prediction preview's data, the comparison's character alignment, the live view, size budget, export."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import traitlets

from density_nb.analysis.stats import spearman
from density_nb.views import (
    CompareError,
    CompareView,
    DensityExplorer,
    HeadGrid,
    LiveTrace,
    PredictionPreview,
    SubgraphSlider,
    TokenStrip,
    compare,
    link,
)
from density_nb.views.compare import char_density, char_spans, char_widths
from density_nb.views.data import decode_shares, encode_shares, share_floor, sig4
from helpers import EVIL_TOKENS, make_result, smollm2_sized, with_measures

WIDGET_DIR = Path(__file__).resolve().parents[1] / "density_nb" / "views"


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
    for key in ("tv", "kl", "n_edges"):
        assert np.asarray(d[key]).shape == (r_count, k_count), key
    assert list(d["baselines"]) == ["random"] and d["baselines"]["random"]["label"] == "random"
    for key in ("tv", "kl"):
        np.testing.assert_allclose(np.asarray(d["baselines"]["random"][key], dtype=float), getattr(result, f"{key}_random"), rtol=5e-4)
    assert all(len(b) == k_count and set(b) <= {"0", "1"} for b in d["top1"])
    assert d["top1"] == ["".join("1" if x else "0" for x in row) for row in result.top1]
    codes = np.frombuffer(w.shares, dtype=np.uint8).reshape(r_count, k_count, 3, 4 + 1)
    shares = decode_shares(codes, d["share_floor"])
    half_step = 10 ** (-np.log10(d["share_floor"]) / 253 / 2) - 1 + 1e-9  # the code's precision, from its floor
    np.testing.assert_allclose(shares[..., :4], result.head_share, rtol=half_step)
    np.testing.assert_allclose(shares[..., 4], result.mlp_share, rtol=half_step)
    assert (codes[:, -1] == 255).all()  # the full graph includes everything, exactly
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
    assert w.data["baselines"] == {} and "topk" not in w.data and "input_edges" not in w.data
    with pytest.raises(traitlets.TraitError):
        DensityExplorer(res, root=99)


def test_share_code_keeps_small_shares():
    """Whole percents made every share below 0.5 % blank; the log code keeps 2 significant digits down
    to the floor, and 0 and 1 exactly."""
    x = np.array([0.0, 1.0, 1.2e-4, 3.3e-4, 0.0049, 0.012, 0.5, 0.97, 0.999])
    floor = 1e-4
    codes = encode_shares(x, floor)
    back = decode_shares(codes, floor)
    assert codes[0] == 0 and codes[1] == 255 and back[0] == 0 and back[1] == 1
    assert (codes[2:] > 0).all() and (codes[2:] < 255).all()  # nonzero never reads as none, below 1 never as all
    np.testing.assert_allclose(back[2:], x[2:], rtol=0.019)  # half a step of 4 decades / 253
    dense = np.logspace(-4, 0, 5000, endpoint=False)
    assert (np.diff(encode_shares(dense, floor).astype(int)) >= 0).all()  # monotone
    res = make_result(n_tokens=6, n_strata=5, seed=2)
    assert share_floor(res) <= min(res.head_share[res.head_share > 0].min(), res.mlp_share[res.mlp_share > 0].min())


class _Tokenizer:
    """A stand-in for a Hugging Face tokenizer: hostile text for every id."""

    def decode(self, ids: list[int]) -> str:
        return f"<b>{ids[0]}</b>"


def test_preview_data_topk_plateau_and_next():
    res = with_measures(make_result(n_tokens=16, n_strata=10, n_layers=2, n_heads=2, seed=4), k=5)
    d = PredictionPreview(res, tokenizer=_Tokenizer()).data
    tk = d["topk"]
    assert tk["k"] == 5 and d["input_edges"] == res.input_edges.tolist()
    vocab = dict(zip(tk["vocab_id"], tk["vocab"]))
    plateau = res.n_edges < res.input_edges[:, None]
    assert plateau.any() and (~plateau).any()
    for r in range(len(res.roots)):
        assert [tk["vocab_id"][i] for i in tk["full"][r]] == res.topk_token_full[r].tolist()
        np.testing.assert_allclose(tk["full_p"][r], res.topk_prob_full[r], rtol=5e-3)
        nxt = res.next_token[r]
        assert tk["next"][r] == (-1 if nxt < 0 else tk["vocab_id"].index(nxt))
        for k in range(len(res.grid)):
            if plateau[r, k]:  # no path from the input: no tokens are sent, the view says so
                assert tk["sub"][r][k] == [] and tk["sub_p"][r][k] == []
            else:
                assert [tk["vocab_id"][i] for i in tk["sub"][r][k]] == res.topk_token[r, k].tolist()
    assert all(vocab[t] == f"<b>{t}</b>" for t in vocab)  # decoded by the tokenizer, kept literal
    # without a tokenizer: what the result holds (its own token pieces, the full top-1 text), else None
    bare = PredictionPreview(res).data["topk"]
    known: dict[int, str] = {}
    for token, text in [*zip(res.token_ids.tolist(), res.tokens), *zip(res.top_token_full.tolist(), res.top_text_full)]:
        known.setdefault(token, text)  # the text's own pieces first
    for token, text in zip(bare["vocab_id"], bare["vocab"]):
        assert text == known.get(token)
    # the three baselines, named for the legend
    assert {k: v["label"] for k, v in DensityExplorer(res).data["baselines"].items()} == {
        "random": "random",
        "random_residual": "published random",
        "inverse": "inverse",
    }


def test_scale_and_generated_marks():
    res = make_result(n_tokens=8, n_strata=5, seed=5)
    w = DensityExplorer(res)
    assert w.scale == "log" and "generated" not in w.data
    w.scale = "LINEAR"
    assert w.scale == "linear"
    with pytest.raises(traitlets.TraitError):
        w.scale = "sqrt"
    marked = dataclasses.replace(res, generated=np.arange(len(res.tokens)) >= 5)
    assert DensityExplorer(marked).data["generated"] == "00000111"


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
    """128 tokens on the paper grid with the preview's top-k and three baselines."""
    res = with_measures(smollm2_sized())
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


def test_compare_and_preview_exports_are_escaped(tmp_path):
    a = make_result(tokens=EVIL_TOKENS, n_strata=4, n_layers=2, n_heads=2, seed=1)
    b = make_result(tokens=["".join(EVIL_TOKENS[:3]), *EVIL_TOKENS[3:]], n_strata=4, n_layers=2, n_heads=2, seed=2)
    for widget in (compare([a, b]), DensityExplorer(with_measures(a), tokenizer=_Tokenizer())):
        text = widget.to_html(tmp_path / "w.html").read_text(encoding="utf-8")
        assert text.lower().count("</script") == 2 and "<img" not in text and "<b>" not in text
        payload = re.search(r'<script type="application/json" id="dnb-state">(.*?)</script>', text, re.S).group(1)
        assert json.loads(payload)  # the escaped JSON reads back


# ---- compare: character alignment -----------------------------------------------------------------
def _pair(tokens_a: list[str], tokens_b: list[str], **kw):
    a = make_result(tokens=tokens_a, n_strata=5, n_layers=2, n_heads=2, seed=1, **kw)
    b = make_result(tokens=tokens_b, n_strata=5, n_layers=2, n_heads=2, seed=2, **kw)
    return a, dataclasses.replace(b, text=a.text)


SPLIT_A = ["The", " cat", " sat", " on", " 日本", "語", " mat", ".", " 👩\u200d💻", " ok"]
SPLIT_B = ["<bos>", "The", " c", "at", " sat on", " 日", "本", "", "語", " ma", "t.", " 👩", "", "\u200d", "💻", "", " ok"]


def test_char_spans_continuations_and_special_tokens():
    a, b = _pair(SPLIT_A, SPLIT_B)
    sa, sb = char_spans(a.tokens, a.text), char_spans(b.tokens, a.text)
    assert sb[0] == (0, 0)  # <bos> holds no character
    assert sb[7] == (sb[6][1], sb[6][1])  # a continuation: empty, right after the character it continues
    for spans, tokens in ((sa, a.tokens), (sb, b.tokens)):
        assert "".join(a.text[x:y] for x, y in spans) == a.text
        assert all(a.text[x:y] == t for (x, y), t in zip(spans, tokens) if y > x)
    assert char_widths("a 日\u0301👩\u200d\r") == "1120200"
    with pytest.raises(CompareError, match="spell only"):
        char_spans(["The", " dog"], "The cat")
    # each character takes the density of the step predicting the token that shows it
    dens = char_density(b)
    i = b.tokens.index(" c")
    x, y = sb[i]
    assert np.isnan(char_density(a)[:3]).all()  # A's first token is predicted by no traced step
    np.testing.assert_allclose(dens[x:y], b.density[list(b.roots).index(i - 1)])


def test_compare_data_rho_points_and_selection():
    a, b = _pair(SPLIT_A, SPLIT_B)
    w = compare([a, b])
    d = w.data
    assert [r["tag"] for r in d["rows"]] == ["A", "B"] and d["chars"] == list(a.text)
    assert d["rows"][1]["tokens"] == b.tokens and d["rows"][1]["start"][0] == 0 == d["rows"][1]["end"][0]
    ca, cb = char_density(a), char_density(b)
    both = np.isfinite(ca) & np.isfinite(cb)
    pair = d["pairs"][0]
    assert pair["n"] == both.sum() and pair["rho"] == pytest.approx(spearman(ca[both], cb[both], n_boot=0).rho, abs=1e-3)
    assert w.rho(0, 1) == pytest.approx(pair["rho"])
    # the points partition the characters both results have a density for, each run within one token of each
    covered = sorted(c for *_, lo, hi in pair["points"] for c in range(lo, hi))
    assert covered == np.flatnonzero(both).tolist()
    for x, y, lo, hi in pair["points"]:
        assert x == pytest.approx(ca[lo], rel=1e-3) and y == pytest.approx(cb[hi - 1], rel=1e-3)
    w.span = [4, 7]
    assert w.span == [4, 7]
    for bad in ([5, 4], [0, len(a.text) + 1], [1]):
        with pytest.raises(traitlets.TraitError):
            w.span = bad
    json.dumps(d, allow_nan=False)


def test_compare_refuses_what_it_cannot_align():
    a, b = _pair(SPLIT_A, SPLIT_B)
    with pytest.raises(CompareError, match="at least two"):
        compare([a])
    other = make_result(tokens=["The", " dog"], n_strata=5, n_layers=2, n_heads=2)
    with pytest.raises(CompareError, match="different text"):
        compare([a, other])
    with pytest.raises(CompareError, match="labels"):
        compare([a, b], labels=["one"])
    # one model under two settings: the labels say which
    live = dataclasses.replace(a, model="m", settings={"norms": "live"})
    frozen = dataclasses.replace(a, model="m", settings={"norms": "frozen"})
    labels = [r["label"] for r in CompareView([live, frozen, b]).data["rows"]]
    assert labels[:2] == ["m (norms='live')", "m (norms='frozen')"] and len(CompareView([live, frozen, b]).data["pairs"]) == 3


@pytest.mark.real
def test_compare_smollm2_and_gemma3_split_differently(smollm2):
    """SmolLM2 (byte-level BPE: CJK and emoji split into continuation tokens) and Gemma-3
    (SentencePiece, BOS, whole characters) on one text with multi-byte characters."""
    from density_nb import load_model, trace

    text = "Le café naïve: 日本語 and emoji 👩\u200d💻 — the river runs."
    a = trace(smollm2, text, grid="fast", progress=False)
    b = trace(load_model("gemma3-270m"), text, grid="fast", progress=False)
    assert a.tokens != b.tokens and "" in a.tokens and b.tokens[0] == "<bos>"
    spans = [char_spans(r.tokens, text) for r in (a, b)]
    for sp in spans:
        assert "".join(text[x:y] for x, y in sp) == text
    # 日 is one character: one token in Gemma, a token and its continuations in SmolLM2
    c = text.index("日")
    holders = [[i for i, (x, y) in enumerate(sp) if x <= c < y] for sp in spans]
    assert all(len(h) == 1 for h in holders)
    i = holders[0][0]
    assert a.tokens[i] == " 日" and a.tokens[i + 1] == "" and spans[0][i + 1] == (c + 1, c + 1)
    w = compare([a, b])
    assert [r["label"] for r in w.data["rows"]] == ["smollm2-135m", "gemma3-270m"]
    assert -1 <= w.rho() <= 1 and w.data["pairs"][0]["n"] == len(text) - 2  # all but the first token's characters


# ---- live view ------------------------------------------------------------------------------------------
def test_live_view_shows_steps_cancels_and_keeps_what_is_done():
    full = make_result(n_tokens=12, n_strata=5, n_layers=2, n_heads=2, seed=6)
    view = LiveTrace("synthetic", full.tokens, total=len(full.roots), unit="roots")
    assert view.result is None and view.data["roots"] == [] and view.status["state"] == "running"
    gate = threading.Event()

    def work(on_step, stop):
        for n in range(1, len(full.roots) + 1):
            if stop.is_set():
                break
            on_step(_first_roots(full, n), n)
            if n == 3:
                gate.set()
                stop.wait(5)
        return view.result

    view.run(work)
    assert gate.wait(10)
    assert view.data["roots"] == full.roots[:3].tolist() and view.status["done"] == 3
    assert view.root == full.roots[2]  # the selection follows the newest step
    view._on_message(view, {"type": "cancel"}, [])  # what the Cancel button sends
    result = view.wait(10)
    assert view.done and view.status["state"] == "cancelled" and len(result.roots) == 3


def _first_roots(result, n):
    return result.take(range(n))


def test_live_view_follows_the_newest_step_until_the_user_moves():
    full = make_result(n_tokens=8, n_strata=6, n_layers=2, n_heads=2, seed=7)
    view = LiveTrace("synthetic", full.tokens, total=len(full.roots), unit="steps")
    s_top1_step = lambda r: int(np.flatnonzero(full.top1[r])[0])
    for n in (1, 2, 3):
        view.show(_first_roots(full, n), n)
        assert view.root == full.roots[n - 1] and view.stratum == s_top1_step(n - 1)
    view.root, view.stratum = int(full.roots[0]), 1
    view.show(_first_roots(full, 4), 4)
    assert view.root == full.roots[0] and view.stratum == 1 and view.status["done"] == 4


def test_live_view_reports_a_failure():
    view = LiveTrace("m", ["a", "b"], total=2, unit="steps")

    def work(on_step, stop):
        raise ValueError("boom")

    view.run(work)
    with pytest.raises(ValueError, match="boom"):
        view.wait(10)
    assert view.status["state"] == "failed" and "boom" in view.status["note"]


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
                assert name not in ("density_nb.method.metrics", "density_nb.tracing", "density_nb.models"), f"{path.name} imports {name}"


def test_js_never_uses_innerhtml():
    js = "".join((WIDGET_DIR / "static" / name).read_text(encoding="utf-8") for name in ("common.js", "density.js"))
    assert "innerHTML" not in js and "outerHTML" not in js and "insertAdjacentHTML" not in js
    assert "document.write" not in js and "eval(" not in js


def test_views_link_the_measure_and_its_scale(result):
    """link() carries the measure colouring the strip and its scale between separate views; a measure the result
    does not hold is refused, naming those it holds."""
    res = with_measures(result)
    strip, explorer = TokenStrip(res), DensityExplorer(res)
    assert list(strip.data["measures"]) == ["density", "tv_post_input", "tv_mid", "s_top1"]
    links = link(strip, explorer)
    strip.measure, strip.colour_scale = "s_top1", "FIXED"
    assert (explorer.measure, explorer.colour_scale) == ("s_top1", "fixed")
    for lk in links:
        lk.unlink()
    with pytest.raises(traitlets.TraitError, match="measure must be one of density, tv_post_input, tv_mid, s_top1"):
        strip.measure = "s_tv10"  # needs refine=True
    with pytest.raises(traitlets.TraitError, match="colour_scale must be"):
        strip.colour_scale = "log"
