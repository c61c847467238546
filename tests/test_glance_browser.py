"""Views you can read at a glance (issue 22), in Chromium on the standalone pages (offline): a strip whose colours
differ (a fitted scale, the measure chosen, the same in compare and in ``save()``), a KL axis that fits the curve,
``save()`` breaking lines where the browser does, a tooltip that hides no selection, every token readable, and
the dashboard's details (integer counts, the next word in view, the brush and the measure, the shipped runs).

Run:  pytest -m browser tests/test_glance_browser.py   (Chromium at /usr/bin/chromium, python playwright)
Screenshots go to test-artifacts/ and, for the README, to docs/screenshots/ (explorer, compare, dashboard-shipped).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from defusedxml import ElementTree
from test_export import NS
from test_widgets_browser import ARTIFACTS, browser, watch  # noqa: F401 (browser: the fixture)

from density_nb.result import DensityResult
from density_nb.views import DensityExplorer, SubgraphSlider, TokenStrip, compare
from density_nb.views.svg import line_breaks
from density_nb.views.text import columns
from density_nb.views.theme import LAYOUT, fmt_measure, map_colours, scale_position, stops
from helpers import make_result, make_text, with_measures

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"


def open_html(browser, widget, path: Path, width: int = 1400, scheme: str = "light"):  # noqa: F811
    """The widget's standalone page in a fresh page; returns it and a check that the page raised no error, showed
    no dialog and asked for nothing but the file and data: URLs (offline)."""
    context = browser.new_context(viewport={"width": width, "height": 1000}, color_scheme=scheme, device_scale_factor=1)
    page = context.new_page()
    requests, dialogs, errors = watch(page)
    page.goto(widget.to_html(path).as_uri())
    page.wait_for_selector("body[data-dnb-ready]", timeout=20_000)

    def check() -> None:
        assert errors == [] and dialogs == [], (errors, dialogs)
        assert all(u.startswith(("file://", "data:")) for u in requests), requests
        context.close()

    return page, check


def lightness(css: str) -> float:
    """CIE L* (0–100) of a CSS rgb() colour."""
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css)[:3])
    lin = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in (r, g, b)]
    y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return 116 * (y ** (1 / 3) if y > 216 / 24389 else (24389 / 27 * y + 16) / 116) - 16


def strip_colours(page) -> dict[int, str]:
    return dict(
        page.locator(".dnb-tok.dnb-pred").evaluate_all("els => els.map(e => [Number(e.dataset.pos), getComputedStyle(e).backgroundColor])")
    )


def svg_strip(widget) -> dict[int, tuple[str, float]]:
    """Each token's fill and line (its y) in ``widget.save()``'s strip."""
    rects = ElementTree.fromstring(widget.to_svg()).iter(f"{NS}rect")
    return {int(r.get("data-pos")): (r.get("fill"), float(r.get("y"))) for r in rects if r.get("class") == "dnb-tok"}


class WithMeasuresV2(DensityResult):
    """A synthetic result carrying the bisected required sizes (as a refined trace has them) as summary columns."""

    def summary(self) -> pd.DataFrame:
        df = super().summary()
        rng = np.random.default_rng(7)
        n = len(df)
        return df.assign(
            tv_post_input=rng.uniform(0.55, 0.75, n),
            tv_mid=rng.uniform(0.3, 0.9, n),
            s_tv10=10 ** rng.uniform(-2, -0.2, n),
            s_tv50=10 ** rng.uniform(-3, -1, n),
            s_top1_exact=10 ** rng.uniform(-2.5, 0, n),
        )


# ---- 1. a strip that shows differences ---------------------------------------------------------------------
@pytest.mark.real
def test_quickstart_strip_spans_the_colour_map(smollm2, browser, tmp_path):  # noqa: F811
    """On the quickstart paragraph (SmolLM2, densities within about 0.77–0.94) the tokens' backgrounds span at
    least half of the colour map's lightness by default; the fixed 0–1 scale, one toggle away, is the nearly
    uniform strip of before. The legend names the measure and the numbers at its ends; save() draws the same."""
    from density_nb import trace
    from density_nb.examples import QUICKSTART_TEXT

    result = trace(smollm2, QUICKSTART_TEXT, roots="all", grid="fast", progress=False)
    widget = result.widget(tokenizer=smollm2)
    page, check = open_html(browser, widget, tmp_path / "quick.html", width=1100)
    ends = [lightness(f"rgb{tuple(c)}") for c in (stops("strip")[0], stops("strip")[-1])]
    span = lambda colours: max(map(lightness, colours)) - min(map(lightness, colours))
    fitted = strip_colours(page)
    assert len(fitted) == len(result.tokens) - 1
    assert span(fitted.values()) >= 0.5 * (ends[1] - ends[0]), span(fitted.values())
    legend = page.locator(".dnb-strip-part .dnb-legend")
    ticks = legend.locator(".dnb-legend-tick").all_text_contents()
    assert legend.locator(".dnb-legend-label").first.text_content() == "density (published)"
    lo, hi = np.percentile(result.density, [2, 98])
    assert [float(t) for t in ticks] == pytest.approx([lo, hi], abs=6e-3)
    assert {p: c for p, (c, _) in svg_strip(widget).items() if p in fitted} == fitted  # save() colours as the page does
    page.screenshot(path=str(SCREENSHOTS / "explorer.png"), full_page=True)
    page.locator(".dnb-cscale-btn[data-scale='fixed']").click()
    fixed = strip_colours(page)
    assert span(fixed.values()) < 0.25 * (ends[1] - ends[0])
    assert legend.locator(".dnb-legend-tick").all_text_contents() == ["0", "1"]
    check()


@pytest.mark.real
def test_generated_strip_is_fitted_too(smollm2, browser, tmp_path):  # noqa: F811
    """generate(..., live=True): the live view's strip is on the fitted scale as well (its numbers in the legend),
    the written tokens marked; save() draws the same colours."""
    from density_nb import generate

    live = generate(smollm2, "The lighthouse keeper climbed the stairs and", max_new_tokens=16, live=True, grid="fast")
    result = live.wait()
    page, check = open_html(browser, live, tmp_path / "gen.html", width=1100)
    page.wait_for_selector(".dnb-live[data-state='done']")
    ticks = [float(t) for t in page.locator(".dnb-strip-part .dnb-legend-tick").all_text_contents()]
    assert ticks == pytest.approx(np.percentile(result.density, [2, 98]), abs=6e-3)
    assert page.locator(".dnb-tok.dnb-gen").count() == int(result.generated.sum())
    assert {p: c for p, (c, _) in svg_strip(live).items() if p in strip_colours(page)} == strip_colours(page)
    page.screenshot(path=str(SCREENSHOTS / "generate.png"), full_page=True)
    check()


def test_measure_selector_offers_what_the_result_holds(browser, tmp_path):  # noqa: F811
    """The selector offers the theme's measures the result holds, the measures-v2 columns included; choosing one
    recolours the strip on its own fitted scale (a size on a log scale, written as a size), the fixed toggle on
    the measure's range; the Python SVG follows the same traits."""
    base = with_measures(make_result(n_tokens=30, n_strata=9, n_layers=2, n_heads=2, seed=3))
    result = WithMeasuresV2(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
    widget = TokenStrip(result)
    page, check = open_html(browser, widget, tmp_path / "v2.html")
    options = page.locator("select.dnb-measure option").evaluate_all("els => els.map(e => e.value)")
    assert options == ["density", "tv_post_input", "tv_mid", "s_tv50", "s_tv10", "s_top1_exact", "s_top1"]
    plain = TokenStrip(with_measures(make_result(n_tokens=30, n_strata=9, n_layers=2, n_heads=2, seed=3)))
    assert list(plain.data["measures"]) == ["density", "tv_post_input", "tv_mid", "s_top1"]  # without refine: no bisected sizes
    table = result.summary()
    for measure, log in (("tv_post_input", False), ("s_tv10", True)):
        page.select_option("select.dnb-measure", measure)
        assert page.evaluate("() => window.dnbModel.get('measure')") == measure
        values = np.asarray(widget.data["measures"][measure], dtype=float)  # 4 significant digits, as sent
        np.testing.assert_allclose(values, table[measure], rtol=5e-4)
        lo, hi = np.percentile(np.log10(values) if log else values, [2, 98])
        bounds = (10**lo, 10**hi) if log else (lo, hi)
        want = {int(p) + 1: map_colours("strip", scale_position(v, bounds, measure))[0] for p, v in zip(table.position, values)}
        assert strip_colours(page) == {p: c for p, c in want.items() if p < len(result.tokens)}
        widget.measure = measure  # the same traits in Python draw the same
        assert {p: c for p, (c, _) in svg_strip(widget).items() if p in want} == strip_colours(page)
        ticks = page.locator(".dnb-strip-part .dnb-legend-tick").all_text_contents()
        assert ticks == [fmt_measure(bounds[0], measure), fmt_measure(bounds[1], measure)]
        label = page.locator(".dnb-strip-part .dnb-legend-label").first.text_content()
        assert label.startswith({"tv_post_input": "plateau-free density", "s_tv10": "size to TV"}[measure])
    page.locator(".dnb-cscale-btn[data-scale='fixed']").click()
    assert page.locator(".dnb-strip-part .dnb-legend-tick").all_text_contents() == ["1.0e-5", "1"]
    page.screenshot(path=str(ARTIFACTS / "glance-measure-s_tv10-fixed.png"), full_page=True)
    check()


@pytest.mark.real
def test_compare_two_models_on_one_scale(smollm2, browser, tmp_path):  # noqa: F811
    """SmolLM2 and Gemma-3 on one text: both rows on one fitted scale (the legend's numbers are the percentiles of
    both rows' values), aligned by characters; the README's screenshot."""
    from density_nb import load_model, trace

    text = "The lighthouse keeper climbed the narrow stairs; below, the café lights of the naïve little town went out one by one."
    results = [trace(m, text, roots="all", grid="fast", progress=False) for m in (smollm2, load_model("gemma3-270m"))]
    view = compare(results)
    view.span = [4, 14]
    page, check = open_html(browser, view, tmp_path / "two.html", width=1100)
    values = [x for r in view.data["rows"] for x in r["density"] if x is not None]
    ticks = [float(t) for t in page.locator(".dnb-legend-tick").all_text_contents()]
    assert ticks == pytest.approx(np.percentile(values, [2, 98]), abs=6e-3)
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
    check()


def test_compare_shares_one_fitted_scale(browser, tmp_path):  # noqa: F811
    """Compare colours both rows on one scale fitted to every row's values; save() draws the same colours."""
    a, b = _pair_long(40)
    view = compare([a, b], labels=["model A", "model B"])
    page, check = open_html(browser, view, tmp_path / "cmp.html")
    shown = page.locator(".dnb-ctok:not(.dnb-ctok-zero)").evaluate_all(
        "els => els.map(e => [Number(e.dataset.m), Number(e.dataset.i), getComputedStyle(e).backgroundColor])"
    )
    values = [x for r in view.data["rows"] for x in r["density"] if x is not None]
    bounds = tuple(np.percentile(values, [2, 98]))
    for m, i, colour in shown:
        dens = view.data["rows"][m]["density"][i]
        if dens is not None:
            assert colour == map_colours("strip", scale_position(dens, bounds, "density"))[0]
    tags = {r["tag"]: m for m, r in enumerate(view.data["rows"])}
    rects = [r for r in ElementTree.fromstring(view.to_svg()).iter(f"{NS}rect") if r.get("class") == "dnb-ctok"]
    drawn = {(tags[r.get("data-tag")], int(r.get("data-i"))): r.get("fill") for r in rects}
    assert all(drawn[(m, i)] == colour for m, i, colour in shown if view.data["rows"][m]["density"][i] is not None)
    check()


# ---- 2. axes that fit the curve ------------------------------------------------------------------------------
def test_kl_axis_fits_the_traced_curve(browser, tmp_path):  # noqa: F811
    """A baseline of 179 nats does not flatten the traced KL curve: KL is on a log axis (the axis and the legend
    say so), in the page and in save()."""
    res = with_measures(make_result(n_tokens=12, n_strata=12, n_layers=2, n_heads=2, seed=2))
    res = dataclasses.replace(res, kl_random_residual=np.full_like(res.kl, 179.0))
    widget = SubgraphSlider(res, metric="kl")
    page, check = open_html(browser, widget, tmp_path / "kl.html", width=900)
    ys = lambda d: [float(y) for y in re.findall(r"[ML][\d.]+,([\d.]+)", d)]
    curve = ys(page.locator("path.dnb-curve").get_attribute("d"))
    plot = 212 - 22 - 34
    assert max(curve) - min(curve) > 0.3 * plot, curve  # it was flat on 0
    assert "log" in page.locator(".dnb-chart text.dnb-axislabel").nth(1).text_content()
    assert page.locator(".dnb-key-log").locator("xpath=..").is_visible()
    drawn = next(e for e in ElementTree.fromstring(widget.to_svg()).iter(f"{NS}path") if e.get("class") == "dnb-curve")
    assert max(ys(drawn.get("d"))) - min(ys(drawn.get("d"))) > 0.3 * plot
    assert "KL on a log axis" in widget.to_svg()
    page.screenshot(path=str(ARTIFACTS / "glance-kl-log.png"), full_page=True)
    page.locator("button.dnb-btn", has_text="TV").click()
    assert not page.locator(".dnb-key-log").locator("xpath=..").is_visible()
    check()


# ---- 4. saving matches the page ------------------------------------------------------------------------------
def _pair_long(n_words: int):
    """One long text split two ways: A word by word, B with every longer word split in two (" b" + "oats,")."""
    text = make_text(n_words, seed=4)
    words = re.findall(r"\s*\S+", text)
    split = [piece for w in words for piece in ((w[: len(w) // 2 + 1], w[len(w) // 2 + 1 :]) if len(w.strip()) > 3 else (w,))]
    a = make_result(tokens=words, n_strata=5, n_layers=2, n_heads=2, seed=1)
    b = dataclasses.replace(make_result(tokens=split, n_strata=5, n_layers=2, n_heads=2, seed=2), text=a.text)
    return a, b


def test_save_breaks_lines_where_the_page_does(browser, tmp_path):  # noqa: F811
    """A long text: the strip's lines and the comparison's lines in save() are the page's, and the comparison
    breaks only where no row's token is cut (it drew "·b" on one line and "oats," on the next)."""
    result = make_result(text=make_text(260, seed=5), n_strata=5, n_layers=2, n_heads=2)
    widget = DensityExplorer(result)
    page, check = open_html(browser, widget, tmp_path / "long.html")
    lines = page.locator(".dnb-strip .dnb-line").evaluate_all(
        "ls => ls.map(l => [...l.querySelectorAll('.dnb-tok')].map(e => Number(e.dataset.pos)))"
    )
    assert len([x for x in lines if x]) >= 5
    saved: dict[float, list[int]] = {}
    for pos, (_, y) in sorted(svg_strip(widget).items()):
        saved.setdefault(y, []).append(pos)
    assert [x for x in lines if x] == list(saved.values())
    a, b = _pair_long(120)
    view = compare([a, b])
    page.goto(view.to_html(tmp_path / "cmp.html").as_uri())
    page.wait_for_selector("body[data-dnb-ready]", timeout=20_000)
    shown = page.locator(".dnb-cmp-line").evaluate_all(
        "ls => ls.map(l => { const m = l.querySelector('.dnb-cmp-span'); return [Number(m.dataset.a), Number(m.dataset.b)]; })"
    )
    chars, cw, bk = view.data["chars"], [int(c) for c in view.data["cw"]], view.data["bk"]
    assert len(shown) >= 3
    assert [tuple(x) for x in shown] == line_breaks(chars, cw, min(LAYOUT["compare_columns"], columns("".join(chars))), bk)
    for row in view.data["rows"]:  # no token of any row crosses a soft break
        for st, en in zip(row["start"], row["end"]):
            assert not any(st < b0 < en and chars[b0 - 1] != "\n" for _, b0 in shown[:-1])
    page.screenshot(path=str(ARTIFACTS / "glance-compare-breaks.png"), full_page=True)
    check()


# ---- 5. the compare tooltip ----------------------------------------------------------------------------------
def test_compare_tooltip_hides_no_selection(browser, tmp_path):  # noqa: F811
    """After a click selects characters in both rows, the tooltip of a token (hovered or focused) sits below its
    line's rows: it covers no selected token."""
    a, b = _pair_long(60)
    page, check = open_html(browser, compare([a, b]), tmp_path / "cmp.html", width=1100)
    target = page.locator(".dnb-ctok[data-m='0']").nth(6)
    target.click()
    for hovered in (target, page.locator(".dnb-ctok[data-m='0']").nth(7), page.locator(".dnb-ctok[data-m='1']").nth(8)):
        hovered.hover()
        tip = page.locator(".dnb-tip")
        assert tip.is_visible()
        t = tip.bounding_box()
        for sel in page.locator(".dnb-ctok.dnb-sel").all():
            s = sel.bounding_box()
            overlap = min(t["x"] + t["width"], s["x"] + s["width"]) > max(t["x"], s["x"]) and min(
                t["y"] + t["height"], s["y"] + s["height"]
            ) > max(t["y"], s["y"])
            assert not overlap, (t, s)
    page.screenshot(path=str(ARTIFACTS / "glance-compare-tooltip.png"), clip={"x": 0, "y": 0, "width": 1100, "height": 520})
    check()


# ---- 7. every token readable -----------------------------------------------------------------------------------
class _Spaces:
    """A tokenizer whose token 216 is a lone space (SmolLM2's), 5 a NUL, 6 a zero-width space."""

    def decode(self, ids: list[int]) -> str:
        return {216: " ", 5: "\x00", 6: "\u200b"}.get(ids[0], f"tok{ids[0]}")


def test_whitespace_and_control_tokens_are_marked(browser, tmp_path):  # noqa: F811
    """A lone space, a NUL, a zero-width space and a no-break space show a mark in the strip, its tooltip, the
    preview (the full model's top-k decoded by the tokenizer) and save(); "," and "." sit in a visible chip."""
    tokens = ["The", " ", "\x00", "\u200b", "\u00a0", ",", " end", "."]
    res = with_measures(make_result(tokens=tokens, n_strata=5, n_layers=2, n_heads=2))
    full = res.topk_token_full.copy()
    full[:, :3] = [216, 5, 6]
    res = dataclasses.replace(res, topk_token_full=full)
    widget = DensityExplorer(res, tokenizer=_Spaces(), stratum=len(res.grid) - 1)
    page, check = open_html(browser, widget, tmp_path / "marks.html")
    texts = page.locator(".dnb-tok").evaluate_all("els => els.map(e => e.textContent)")
    assert texts == ["The", "·", "\\x00", "\\u200b", "␣", ",", "·end", "."]
    marks = page.locator(".dnb-tok .dnb-ws").evaluate_all("els => els.map(e => e.textContent)")
    assert marks[:4] == ["·", "\\x00", "\\u200b", "␣"]
    full_rows = page.locator(".dnb-pv-col").nth(1).locator(".dnb-pv-tok").evaluate_all("els => els.map(e => e.textContent)")
    assert full_rows[:3] == ["·", "\\x00", "\\u200b"]
    assert page.locator(".dnb-pv-chip").count() >= 5
    page.locator(".dnb-tok").nth(2).hover()
    assert "“\\x00”" in page.locator(".dnb-tip").text_content()
    svg = widget.to_svg()
    assert "\\x00" in svg and "\\u200b" in svg and "␣" in svg and "\x00" not in svg
    page.screenshot(path=str(ARTIFACTS / "glance-marks.png"), full_page=True)
    check()


# ---- 3, 5, 6: the dashboard ------------------------------------------------------------------------------------------
def test_dashboard_counts_next_words_and_the_brush(browser, tmp_path):  # noqa: F811
    """Count axes have whole-number ticks; in a narrow list the prompt is cut at its start and the next word stays
    in view; a brush drawn on one measure is cleared, said so, when the measure changes."""
    from density_nb.corpus.runs import load_runs

    run = load_runs(ROOT / "results" / "teaching")
    page, check = open_html(browser, run.widget(), tmp_path / "dash.html", width=480)
    y_ticks = page.locator(".dnb-d-dist svg g text[text-anchor='end']").all_text_contents()
    assert y_ticks and all(re.fullmatch(r"\d+", t) for t in y_ticks), y_ticks
    for row in page.locator(".dnb-d-prow[data-index]").all()[:6]:
        word, box = row.locator(".dnb-d-word").bounding_box(), row.bounding_box()
        assert word["x"] + word["width"] <= box["x"] + box["width"] + 0.5, (word, box)
    prompt = page.locator(".dnb-d-prow[data-index] .dnb-d-prompt").first
    assert prompt.evaluate("e => e.scrollWidth > e.clientWidth")  # cut: at its start, as the ellipsis shows
    box = page.locator(".dnb-d-dist svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.4)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] * 0.45, steps=5)
    page.mouse.up()
    assert page.locator(".dnb-d").get_attribute("data-selected") not in ("", None)
    assert page.locator(".dnb-d-brushed").count() == 1
    page.locator(".dnb-d-head button.dnb-btn", has_text="plateau-free").click()
    assert page.evaluate("() => window.dnbModel.get('brush')") == {}
    assert page.locator(".dnb-d").get_attribute("data-selected") == "" and page.locator(".dnb-d-brushed").count() == 0
    assert "measure changed" in page.locator(".dnb-d-seltext").text_content()
    assert "measure changed" in page.locator(".dnb-d-sr").text_content()
    page.screenshot(path=str(ARTIFACTS / "glance-dashboard-narrow.png"), full_page=True)
    check()


def test_shipped_runs_open_offline(browser, tmp_path, capsys):  # noqa: F811
    """results/<run> opens as a dashboard (load_runs and density-nb view), offline; results/ alone lists the runs;
    without shipped text the list shows each passage's id and its next token (named by the recorded model's
    tokenizer, read without weights), and a click says how to trace the text where the corpus is."""
    from density_nb.cli import main
    from density_nb.corpus.runs import load_runs
    from density_nb.corpus.store import CorpusError

    with pytest.raises(CorpusError, match=r"holds the shipped runs .*smollm2.*load_runs\("):
        load_runs(ROOT / "results")
    index = json.loads((ROOT / "results" / "index.json").read_text())
    for name in index:
        run = load_runs(ROOT / "results" / name)
        assert len(run.summary) == index[name]["passages"] and run.manifest["grid_sizes"] == index[name]["grid_sizes"]
    out = tmp_path / "smol.html"
    with pytest.raises(SystemExit) as done:
        main(["view", str(ROOT / "results" / "smollm2"), "--out", str(out)])
    assert done.value.code == 0
    assert str(out) in capsys.readouterr().out
    run = load_runs(ROOT / "results" / "smollm2")
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    requests, dialogs, errors = watch(page)
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-dnb-ready]", timeout=30_000)
    assert f"({len(run.summary)} passages)" in page.locator(".dnb-d-head .dnb-title").text_content()
    rows = page.locator(".dnb-d-prow[data-index]")
    first = rows.first
    pid = int(first.locator(".dnb-d-id").text_content().lstrip("#"))
    tok = run.tokenizer()
    next_id = int(run.summary.set_index("passage_id").loc[pid, "next_token"])
    word = first.locator(".dnb-d-word").text_content()
    assert word.startswith("⟨") and word.strip("⟨⟩").replace("·", " ") == tok.decode([next_id])
    assert "not shipped" in page.locator(".dnb-d-phead").text_content()
    first.click()
    status = page.locator(".dnb-d-status")
    assert status.get_attribute("data-state") == "no-text"
    assert f"corpus_text([{pid}])" in status.text_content() and "not shipped" in status.text_content()
    page.screenshot(path=str(SCREENSHOTS / "dashboard-shipped.png"), full_page=True)
    assert errors == [] and dialogs == [] and all(u.startswith(("file://", "data:")) for u in requests)
    context.close()


def test_dashboard_explorer_names_its_tokens(browser, tmp_path):  # noqa: F811
    """A passage opened from the dashboard (its run's recorded model's tokenizer, no weights passed) names every
    predicted token, and its headers count in the singular where there is one."""
    from density_nb.corpus.runs import load_runs

    run = load_runs(ROOT / "results" / "teaching")
    dash = run.widget()
    pid = int(run.summary.passage_id.iloc[0])
    explorer = dash.open_passage(pid)
    assert all(text is not None for text in explorer.data["topk"]["vocab"])
    assert explorer.data["fit"]["density"] == list(dash.fit()["density"])
    page, check = open_html(browser, explorer, tmp_path / "opened.html", width=1100)
    title = page.locator(".dnb-strip-part .dnb-title").text_content()
    assert " · 1 step · " in title and "1 steps" not in title
    assert not re.search(r"#\d+", "".join(page.locator(".dnb-pv-tok").all_text_contents()))
    assert "fitted to the run" in page.locator(".dnb-strip-part .dnb-legend-note").text_content()
    check()
