"""The views' SVG / PNG buttons in a real browser (the standalone HTML page that ``to_html`` writes, opened
from disk, offline): the downloaded SVG parses, the PNG decodes at 2× device pixels, a dark page exports a
dark picture, and the colours the browser shows are the ones ``widget.save`` draws in Python.

Run:  pytest -m browser tests/test_export_browser.py   (Chromium at /usr/bin/chromium, python playwright)
The saved pictures go to test-artifacts/export-*.png (gitignored).
"""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from defusedxml import ElementTree
from test_export import NS, png_pixels
from test_widgets_browser import ARTIFACTS, _Tokenizer, browser, watch  # noqa: F401 (browser: the fixture)

from helpers import EVIL_TOKENS, make_result, with_measures

pytestmark = pytest.mark.browser
XHTML = "{http://www.w3.org/1999/xhtml}"


def _view(name: str):
    import density_nb.views as W

    res = with_measures(make_result(tokens=[*EVIL_TOKENS, "\n", " tail"] * 6, n_strata=7, n_layers=3, n_heads=2))
    if name == "CompareView":
        other = dataclasses.replace(
            make_result(tokens=["".join(EVIL_TOKENS[:3]), *EVIL_TOKENS[3:], "\n", " tail"] * 6, seed=2), text=res.text
        )
        return W.compare([res, other])
    if name == "LiveTrace":
        view = W.LiveTrace(res.model, res.tokens, total=len(res.roots), unit="steps")
        return view.run(lambda on_step, stop: on_step(res, len(res.roots)))
    return getattr(W, name)(res, tokenizer=_Tokenizer())


def export(page, kind: str, path):
    """Click the view's ``kind`` button and save the download to ``path``; returns its bytes."""
    with page.expect_download(timeout=30_000) as info:
        page.locator(f"button[data-export='{kind}']").click()
    download = info.value
    assert download.suggested_filename.endswith(f".{kind}")
    download.save_as(path)
    return path.read_bytes()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(
    "name", ["DensityExplorer", "TokenStrip", "SubgraphSlider", "PredictionPreview", "HeadGrid", "CompareView", "LiveTrace"]
)
def test_export_buttons_save_svg_and_png(name, scheme, browser, tmp_path):  # noqa: F811
    widget = _view(name)
    if name == "LiveTrace":
        widget.wait(60)
    html = widget.to_html(tmp_path / "view.html")
    context = browser.new_context(viewport={"width": 1100, "height": 800}, color_scheme=scheme, device_scale_factor=1)
    page = context.new_page()
    requests, dialogs, errors = watch(page)
    page.goto(html.as_uri())
    page.wait_for_selector("body[data-dnb-ready]", timeout=20_000)
    svg = export(page, "svg", tmp_path / "v.svg")
    png = export(page, "png", tmp_path / "v.png")
    assert page.locator(".dnb-export-note").text_content() == ""
    # the SVG parses: the view's HTML (with its charts) inside a foreignObject, the buttons left out
    root = ElementTree.fromstring(svg)
    assert root.tag == f"{NS}svg" and root.find(f"{NS}foreignObject") is not None
    classes = " ".join(e.get("class") or "" for e in root.iter())
    assert "dnb-export" not in classes and "dnb-body" in classes
    assert not [e for e in root.iter() if e.tag in (f"{XHTML}script", f"{XHTML}img", f"{XHTML}iframe")]
    texts = "".join(root.itertext())
    if name in ("DensityExplorer", "TokenStrip", "LiveTrace"):
        assert len([e for e in root.iter(f"{XHTML}span") if "dnb-tok" in (e.get("class") or "")]) == len(widget.data["tokens"])
        assert "<img·src=x·onerror=alert(1)>" in texts  # token text, as text
    # the PNG decodes, at 2× the SVG's size (device scale 1), with the page's background
    width, height, rows = png_pixels(png)
    assert (width, height) == (2 * int(root.get("width")), 2 * int(root.get("height")))
    corner = sum(rows[2][6:9])
    assert corner < 200 if scheme == "dark" else corner > 700, (scheme, rows[2][6:9])
    if name in ("DensityExplorer", "CompareView") or scheme == "dark":
        shutil.copy(tmp_path / "v.png", ARTIFACTS / f"export-{name}-{scheme}.png")
    assert dialogs == [] and errors == [], (dialogs, errors)
    assert all(u.startswith(("file://", "data:", "blob:")) for u in requests), requests
    context.close()


def test_python_svg_has_the_colours_the_browser_shows(browser, tmp_path):  # noqa: F811
    """The strip ``widget.save`` draws and the one the browser draws: the same colour for every token."""
    widget = _view("TokenStrip")
    page = browser.new_page()
    page.goto(widget.to_html(tmp_path / "strip.html").as_uri())
    page.wait_for_selector("body[data-dnb-ready]", timeout=20_000)
    shown = page.locator(".dnb-tok.dnb-pred").evaluate_all(
        "els => els.map(e => [Number(e.dataset.pos), getComputedStyle(e).backgroundColor])"
    )
    drawn = {
        int(r.get("data-pos")): r.get("fill")
        for r in ElementTree.fromstring(widget.to_svg()).iter(f"{NS}rect")
        if r.get("class") == "dnb-tok"
    }
    assert len(shown) >= 10 and all(drawn[pos] == colour for pos, colour in shown)
    page.close()
