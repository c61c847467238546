"""The corpus dashboard in a real browser (its standalone page, offline): brushing changes the curve and
ρ to what Python computes for the same selection, click-through, keyboard, dark mode, no network; the
documentation screenshot (docs/screenshots/dashboard.png).

Run:  pytest -m browser tests/test_dashboard_browser.py   (needs /usr/bin/chromium and python playwright)
The runs are the shipped teaching-corpus runs of SmolLM2 and Gemma-3 (results/: numbers and the project's own text).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from density_nb.analysis import aggregate
from density_nb.analysis.stats import spearman
from density_nb.corpus.runs import CorpusRun
from density_nb.views.dashboard_state import GRID
from helpers import CHROMIUM, CHROMIUM_ARGS, sync_playwright_or_skip

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOT = ROOT / "docs" / "screenshots" / "dashboard.png"

sync_playwright = sync_playwright_or_skip()


def shipped(name: str) -> CorpusRun:
    """A run shipped in results/ (summary, curves and its index entry) as ``load_runs`` returns one."""
    entry = json.loads((RESULTS / "index.json").read_text())[name]
    summary = pd.read_parquet(RESULTS / f"{name}.summary.parquet")
    curves = pd.read_parquet(RESULTS / f"{name}.curves.parquet")
    return CorpusRun(summary, curves, {"settings": entry["settings"], "grid_sizes": entry["grid_sizes"]})


@pytest.fixture(scope="module")
def runs():
    return shipped("teaching"), shipped("teaching_gemma3")


@pytest.fixture(scope="module")
def page_file(runs, tmp_path_factory):
    path = tmp_path_factory.mktemp("dash") / "dashboard.html"
    runs[0].to_html(path, compare=runs[1])
    return path


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, url: str, scheme: str = "light", width: int = 1200):
    """A page on ``url`` whose every request but file: and data: is refused (and recorded)."""
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    refused, errors = [], []
    page.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(("file:", "data:")) else (refused.append(route.request.url), route.abort())
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-dnb-ready='1']")
    return page, refused, errors


def drag(page, selector: str, x0: float, x1: float, y0: float = 0.4, y1: float = 0.45) -> None:
    """A mouse drag across the element, from (x0, y0) to (x1, y1) as fractions of its box."""
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y0)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * x1, box["y"] + box["height"] * y1, steps=6)
    page.mouse.up()


def python_selection(run: CorpusRun, brush: dict) -> pd.DataFrame:
    """The passages a brush selects, by the page's rule (float32 values, inclusive bounds)."""
    s = run.summary
    if brush.get("kind") == "range":
        v = s[brush["measure"]].to_numpy(np.float32)
        return s[(v >= np.float32(brush["lo"])) & (v <= np.float32(brush["hi"]))]
    x, y = s[brush["column"]].to_numpy(np.float32), s[brush["measure"]].to_numpy(np.float32)
    keep = (
        (x >= np.float32(brush["x"][0]))
        & (x <= np.float32(brush["x"][1]))
        & (y >= np.float32(brush["y"][0]))
        & (y <= np.float32(brush["y"][1]))
    )
    return s[keep]


def check_selection(page, run: CorpusRun) -> pd.DataFrame:
    """The page's selection, curve and ρ agree with Python's for the brush the page holds."""
    brush = page.evaluate("window.dnbModel.get('brush')")
    chosen = python_selection(run, brush)
    assert 3 <= len(chosen) < len(run.summary)
    assert page.locator(".dnb-d").get_attribute("data-selected") == str(len(chosen))
    js_mean = json.loads(page.locator(".dnb-d-curve div[data-sel-mean]").get_attribute("data-sel-mean"))
    py_mean = aggregate.mean_curve(run.curves, grid=GRID, passages=chosen.passage_id.tolist())["mean"].to_numpy()
    np.testing.assert_allclose(np.array(js_mean, dtype=float), py_mean, atol=0.5 / 254 + 1e-4)  # the uint8 code's half step
    column = page.evaluate("window.dnbModel.get('column')")
    measure = page.evaluate("window.dnbModel.get('measure')")
    rho = spearman(chosen[column].to_numpy(np.float32), chosen[measure].to_numpy(np.float32), n_boot=0).rho
    assert float(page.locator(".dnb-d-rho").first.get_attribute("data-rho-sel")) == pytest.approx(rho, abs=1e-9)
    return chosen


def test_brush_changes_the_curve_and_rho(browser, page_file, runs):
    page, refused, errors = open_page(browser, page_file.as_uri())
    before = page.locator(".dnb-d-curve svg").inner_html()
    assert page.locator(".dnb-d").get_attribute("data-selected") == ""
    drag(page, ".dnb-d-dist svg", 0.45, 0.8)
    assert page.evaluate("window.dnbModel.get('brush').kind") == "range"
    chosen = check_selection(page, runs[0])
    assert page.locator(".dnb-d-curve svg").inner_html() != before
    assert page.locator(".dnb-d-seltext").text_content() == f"{len(chosen)} of 32 passages selected"
    # the head grid and the composition now show the selection
    assert "the selection" in page.locator(".dnb-d-heads .dnb-d-note").text_content()
    assert page.locator(".dnb-d-comp svg.dnb-d-chart .dnb-d-part-sel").count() == 7
    # a box on the scatter replaces the range; the plateau-free measure redraws everything for it
    drag(page, ".dnb-d-scatter svg", 0.1, 0.7, 0.1, 0.9)
    assert page.evaluate("window.dnbModel.get('brush').kind") == "box"
    check_selection(page, runs[0])
    page.get_by_role("button", name="Show the plateau-free density").click()
    drag(page, ".dnb-d-dist svg", 0.3, 0.7)
    assert page.evaluate("window.dnbModel.get('brush').measure") == "tv_post_input"
    check_selection(page, runs[0])
    # the view saves as SVG (static/export.js): a file that parses and shows the selection
    with page.expect_download() as download:
        page.locator(".dnb-export button[data-export='svg']").click()
    saved = ET.parse(download.value.path()).getroot()
    assert saved.tag.endswith("svg") and "selected" in "".join(saved.itertext())
    page.get_by_role("button", name="Clear the selection (Escape)").click()
    assert page.locator(".dnb-d").get_attribute("data-selected") == ""
    assert refused == [] and errors == []


def test_click_through(browser, page_file, runs):
    run = runs[0]
    page, _, errors = open_page(browser, page_file.as_uri())
    # offline: the page says there is no kernel, and shows the passage's numbers and text (set as text)
    row = page.locator(".dnb-d-prow[data-index]").first
    index = int(row.get_attribute("data-index"))
    row.click()
    status = page.locator(".dnb-d-status")
    assert status.get_attribute("data-state") == "offline" and "no kernel" in status.text_content()
    pid = int(run.summary.passage_id.iloc[index])
    assert page.locator(".dnb-d-detail .dnb-tip-head").text_content() == f"Passage {pid}"
    assert run.summary.next_word.iloc[index] in page.locator(".dnb-d-passage").text_content()
    assert page.locator(".dnb-d-curve .dnb-d-line-one").count() == 1 and page.locator(".dnb-d-scatter .dnb-d-picked").count() == 1
    # with a kernel (the page's model given a manager and a send that records): a click asks Python to open it
    html = page_file.read_text(encoding="utf-8").replace(
        "send() {},\n  widget_manager: null,", "send(m) { (window.sent ||= []).push(m); },\n  widget_manager: {},"
    )
    kernel_file = page_file.with_name("kernel.html")
    kernel_file.write_text(html, encoding="utf-8")
    page2, _, errors2 = open_page(browser, kernel_file.as_uri())
    page2.locator(".dnb-d-prow[data-index]").nth(2).click()
    index2 = int(page2.locator(".dnb-d-prow[data-index]").nth(2).get_attribute("data-index"))
    pid2 = int(run.summary.passage_id.iloc[index2])
    assert page2.evaluate("window.sent") == [{"type": "open", "passage_id": pid2}]
    assert page2.locator(".dnb-d-status").get_attribute("data-state") == "asked"
    page2.evaluate(f"window.dnbModel.set('opened', {{passage_id: {pid2}, state: 'tracing', note: ''}})")
    assert "Tracing passage" in page2.locator(".dnb-d-status").text_content()
    page2.evaluate(f"window.dnbModel.set('opened', {{passage_id: {pid2}, state: 'done', note: ''}})")
    assert "below the dashboard" in page2.locator(".dnb-d-status").text_content()
    # a click on a scatter point picks the nearest passage
    page2.locator(".dnb-d-scatter svg").scroll_into_view_if_needed()
    point = page2.evaluate("""() => { const p = document.querySelector('.dnb-d-scatter .dnb-d-pts').getAttribute('d').match(/M([\\d.]+),([\\d.]+)/);
        const svg = document.querySelector('.dnb-d-scatter svg'), b = svg.getBoundingClientRect(), k = b.width / svg.viewBox.baseVal.width;
        return [b.left + p[1] * k, b.top + p[2] * k]; }""")
    page2.mouse.click(point[0], point[1])
    assert len(page2.evaluate("window.sent")) == 2
    assert errors == [] and errors2 == []


def test_keyboard(browser, page_file, runs):
    page, _, errors = open_page(browser, page_file.as_uri())
    lo = page.get_by_label("Select passages with density from this bin edge")
    lo.focus()
    for _ in range(12):
        page.keyboard.press("ArrowRight")
    brush = page.evaluate("window.dnbModel.get('brush')")
    assert brush["kind"] == "range"
    check_selection(page, runs[0])
    assert "passages selected" in page.locator(".dnb-d-sr").text_content()  # announced
    page.keyboard.press("Escape")
    assert page.evaluate("window.dnbModel.get('brush')") == {}
    # column and head size from the keyboard; a passage opens with Enter
    page.get_by_label("Column on the x axis").select_option("top_prob_full")
    assert page.evaluate("window.dnbModel.get('column')") == "top_prob_full"
    page.get_by_role("button", name="Head view at s = 0.4").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("window.dnbModel.get('head_size')") == 2
    row = page.locator(".dnb-d-prow[data-index]").nth(1)
    row.focus()
    page.keyboard.press("Enter")
    assert row.get_attribute("aria-current") == "true" and page.locator(".dnb-d-status").count() == 1
    # every control is labelled
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('.dnb-d button, .dnb-d input, .dnb-d select')].filter(e => !(e.getAttribute('aria-label') || e.textContent.trim() || e.closest('label'))).length"
    )
    assert unlabelled == 0 and errors == []


def luminance(css: str) -> float:
    nums = [float(x) for x in css[css.index("(") + 1 : css.index(")")].replace(",", " ").split()[:3]]
    return (0.2126 * nums[0] + 0.7152 * nums[1] + 0.0722 * nums[2]) / 255


def test_dark_mode(browser, page_file):
    ARTIFACTS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        page, refused, errors = open_page(browser, page_file.as_uri(), scheme=scheme)
        drag(page, ".dnb-d-dist svg", 0.45, 0.8)
        bg = page.evaluate("getComputedStyle(document.querySelector('.dnb')).backgroundColor")
        fg = page.evaluate("getComputedStyle(document.querySelector('.dnb-title')).color")
        axis = page.evaluate("getComputedStyle(document.querySelector('.dnb-d-chart text')).fill")
        if scheme == "dark":
            assert luminance(bg) < 0.15 and luminance(fg) > 0.7 and luminance(axis) > 0.45
        else:
            assert luminance(bg) > 0.9 and luminance(fg) < 0.3
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{scheme}.png"), full_page=True)
        assert refused == [] and errors == []


def test_screenshot_for_the_docs(browser, page_file, runs):
    """docs/screenshots/dashboard.png: the teaching runs of SmolLM2 and Gemma-3, the densest passages
    brushed, one picked."""
    page, refused, errors = open_page(browser, page_file.as_uri(), width=1180)
    drag(page, ".dnb-d-dist svg", 0.55, 0.98)
    page.locator(".dnb-d-prow[data-index]").nth(1).click()
    page.mouse.move(0, 0)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 50_000 and refused == [] and errors == []


# ---- in JupyterLab, with a kernel: a click re-traces the passage and opens its explorer below ------------
LAB_CELL = """import sys, pathlib
sys.path.insert(0, {tests!r})
from helpers import SAMPLE_LINES
from density_nb import load_model
from density_nb.corpus import store as run_store
from density_nb.corpus import runs as corpus_runs
from density_nb.corpus import runner
model = load_model('tiny-llama')
data = pathlib.Path('data/wikitext-2'); data.mkdir(parents=True, exist_ok=True)
(data / 'test.txt').write_text(chr(10).join(SAMPLE_LINES) + chr(10))
runner.run_corpus(model, 'run', data='data', n_passages=5, words=6, grid='fast', progress=False)
dash = corpus_runs.load_runs('run').widget(model=model)
dash"""


def test_jupyterlab_click_opens_the_explorer(browser, tmp_path):
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    import nbformat
    from test_widgets_browser import jupyterlab_server

    root = tmp_path / "lab"
    root.mkdir()
    cell = LAB_CELL.format(tests=str(Path(__file__).resolve().parent))
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)], metadata=kernel), root / "dash.ipynb")
    with jupyterlab_server(root) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/lab/tree/dash.ipynb", wait_until="domcontentloaded")
        page.wait_for_function("window.jupyterapp?.shell?.currentWidget?.sessionContext", timeout=90_000)
        page.evaluate(
            "async () => { const nb = window.jupyterapp.shell.currentWidget; await nb.sessionContext.ready; await window.jupyterapp.commands.execute('notebook:run-all-cells'); }"
        )
        page.wait_for_selector(".jp-OutputArea-output .dnb-d .dnb-d-prow[data-index]", timeout=180_000)
        drag(page, ".dnb-d-dist svg", 0.3, 0.9)
        assert page.locator(".dnb-d").get_attribute("data-selected") not in ("", None)
        row = page.locator(".dnb-d-prow[data-index]").first
        row.click()
        page.wait_for_selector(".jp-OutputArea-output .dnb[data-view='explorer'] .dnb-tok", timeout=180_000)  # the explorer, below
        assert "below the dashboard" in page.locator(".dnb-d-status").text_content()
        assert page.locator(".dnb-d-status").get_attribute("data-state") == "done"
        page.screenshot(path=str(ARTIFACTS / "dashboard-lab.png"), full_page=True)
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
        page.wait_for_function(
            "(() => { const c = getComputedStyle(document.querySelector('.dnb-dash')).backgroundColor.match(/\\d+/g).map(Number); return c[0] + c[1] + c[2] < 200; })()",
            timeout=30_000,
        )
        page.wait_for_timeout(1000)  # the theme's splash fades
        assert luminance(page.locator(".dnb-dash .dnb-title").first.evaluate("e => getComputedStyle(e).color")) > 0.5
        page.screenshot(path=str(ARTIFACTS / "dashboard-lab-dark.png"), full_page=True)
        assert errors == []


def test_hostile_text_is_shown_as_text(browser, runs, tmp_path):
    """Prompts and next words are set as text: markup in them is shown, never run or parsed."""
    run = runs[0]
    evil = "<img src=x onerror=alert(1)></script>"
    summary = run.summary.assign(prompt=run.summary.prompt + " " + evil, next_word="<b>" + run.summary.next_word + "</b>")
    page_file = CorpusRun(summary, run.curves, run.manifest).to_html(tmp_path / "evil.html")
    page, refused, errors = open_page(browser, page_file.as_uri())
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.locator(".dnb-d-prow[data-index]").first.click()
    assert evil in page.locator(".dnb-d-passage").text_content() and "<b>" in page.locator(".dnb-d-passage").text_content()
    assert page.locator(".dnb-d img, .dnb-d b, .dnb-d script").count() == 0
    assert dialogs == [] and refused == [] and errors == []
