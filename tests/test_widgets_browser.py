"""Real-browser tests of the widgets: JupyterLab 4 (live kernel) and the exported standalone HTML.

Run:  pytest -m browser tests/test_widgets_browser.py      (needs /usr/bin/chromium and python playwright)
Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from defusedxml import ElementTree
from test_export import png_pixels

from helpers import CHROMIUM, CHROMIUM_ARGS, sync_playwright_or_skip

sys.path.insert(0, str(Path(__file__).resolve().parent))
pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
EVIL = "<img src=x onerror=alert(1)>"
TEXT = f"Hi {EVIL} & </script>\nThe cat sat on the mat."

sync_playwright = sync_playwright_or_skip()

TESTS = str(Path(__file__).resolve().parent)
# compare: one text split two ways (hostile text, a multi-byte character split into a continuation, a BOS)
CMP_A = ["Say", " <img src=x onerror=alert(1)>", " and", " 日本", "語", " done", "."]
CMP_B = ["<bos>", "Say <", "img", " src=x onerror=", "alert(1)>", " and", " 日", "本", "", "語", " do", "ne."]
LIVE_TEXT = "The small boat drifted past the old mill, and the miller waved."
GEN_STEPS = 80
NOTEBOOK_CELLS = [
    # 1. the explorer, with the three baselines and the model's tokenizer naming the top-k
    "import dataclasses, json, sys\n"
    f"sys.path.insert(0, {TESTS!r})\n"
    "import density_nb\n"
    "from density_nb import compare, generate, trace_live\n"
    "from density_nb.tracing import trace\n"
    "from density_nb.views.compare import char_spans\n"
    "model = density_nb.load_model('tiny-llama')\n"
    f"result = trace(model, {TEXT!r}, roots='all', grid='fast', baselines=['random', 'random_residual', 'inverse'], progress=False)\n"
    "w = result.widget(tokenizer=model)\n"
    "w.to_html('explorer.html')\n"
    "facts = {'tokens': result.tokens, 'roots': result.roots.tolist(), 'density': result.density.tolist(),\n"
    "         'tv': result.tv.tolist(), 'grid': result.grid.tolist(), 'n_layers': result.n_layers, 'n_heads': result.n_heads,\n"
    "         'n_edges': result.n_edges.tolist(), 'input_edges': result.input_edges.tolist(),\n"
    "         'next_token': result.next_token.tolist(), 'topk_full': result.topk_token_full.tolist()}\n"
    "json.dump(facts, open('facts.json', 'w'))\n"
    "w",
    # 2. compare: one text, two tokenizations
    "from helpers import make_result\n"
    f"a = make_result(tokens={CMP_A!r}, n_strata=5, n_layers=2, n_heads=2, seed=1)\n"
    f"b = dataclasses.replace(make_result(tokens={CMP_B!r}, n_strata=5, n_layers=2, n_heads=2, seed=2), text=a.text)\n"
    "c = compare([a, b], labels=['model A', 'model B'])\n"
    "c.to_html('compare.html')\n"
    "json.dump({'text': a.text, 'spans': [char_spans(r.tokens, a.text) for r in (a, b)], 'points': len(c.data['pairs'][0]['points'])},\n"
    "          open('compare.json', 'w'))\n"
    "c",
    # 3. a long text traced live, a few roots at a time
    f"live = trace_live(model, {LIVE_TEXT!r}, max_rows=400)\nlive",
    # 4. generation, live, to be cancelled from the view
    f"gen = generate(model, 'Once <b>upon</b> a time', max_new_tokens={GEN_STEPS}, live=True, grid='paper')\ngen",
]


# ---- helpers ----------------------------------------------------------------------------------------
def shown(token: str) -> str:
    """What the token strip displays for a token (mirror of the JS whitespace marks)."""
    if not token:
        return "◌"
    out = []
    for ch in token:
        if ch == " ":
            out.append("·")
        elif ch == "\t":
            out.append("→")
        elif ch == "\n":
            out.append("↵")
        elif ch == "\r":
            continue
        elif ch.isspace():
            out.append("␣")
        else:
            out.append(ch)
    return "".join(out)


def watch(page) -> tuple[list[str], list[str], list[str]]:
    """Record the page's requests, dialogs (dismissed) and page errors."""
    requests, dialogs, errors = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    return requests, dialogs, errors


def luminance(css: str) -> float:
    nums = [float(x) for x in css[css.index("(") + 1 : css.index(")")].replace(",", " ").split()[:3]]
    return (0.2126 * nums[0] + 0.7152 * nums[1] + 0.0722 * nums[2]) / 255


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def check_explorer(page, facts: dict, scope: str, tag: str) -> None:
    """The checks shared by JupyterLab and the exported HTML. ``scope`` is a CSS selector of the widget root."""
    tokens, roots, density = facts["tokens"], facts["roots"], facts["density"]
    root = page.locator(scope).first
    toks = root.locator(".dnb-tok")
    # one element per token, and the text is displayed literally (no markup was interpreted)
    assert toks.count() == len(tokens)
    texts = toks.evaluate_all("els => els.map(e => e.textContent)")
    assert texts == [shown(t) for t in tokens]
    assert root.locator("img, script, iframe").count() == 0
    # colours: token i is coloured by root i-1's density; different densities -> different colours
    colours = toks.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)")
    dens_of = {r + 1: d for r, d in zip(roots, density)}
    coloured = sorted((dens_of[i], colours[i]) for i in range(len(tokens)) if i in dens_of)
    assert len(coloured) >= 2
    for (d1, c1), (d2, c2) in itertools.pairwise(coloured):
        if d2 - d1 > 0.02:
            assert c1 != c2, (d1, d2, c1)
    neutral = [colours[i] for i in range(len(tokens)) if i not in dens_of]
    assert all(c not in {c for _, c in coloured} for c in neutral)
    assert root.locator(".dnb-legend-bar").count() >= 1

    # slider: arrow keys move the marker and change grid cells and readout (no kernel needed)
    slider = root.locator("input.dnb-range")
    marker = root.locator("line.dnb-marker")
    cells = root.locator(".dnb-cell")
    assert cells.count() == facts["n_layers"] * (facts["n_heads"] + 1)
    slider.focus()
    page.keyboard.press("Home")
    before = (
        marker.get_attribute("x1"),
        cells.evaluate_all("els => els.map(e => e.style.backgroundColor)"),
        root.locator(".dnb-readout").text_content(),
        slider.get_attribute("aria-valuetext"),
    )
    for _ in range(len(facts["grid"]) - 1):
        page.keyboard.press("ArrowRight")
    after = (
        marker.get_attribute("x1"),
        cells.evaluate_all("els => els.map(e => e.style.backgroundColor)"),
        root.locator(".dnb-readout").text_content(),
        slider.get_attribute("aria-valuetext"),
    )
    assert slider.input_value() == str(len(facts["grid"]) - 1), page.evaluate(
        "() => [document.activeElement.className, document.activeElement.tagName]"
    )
    assert float(after[0]) > float(before[0])
    assert after[1] != before[1]
    assert after[2] != before[2] and "top-1 ✓" in after[2]
    assert after[3] != before[3] and after[3].startswith("s = 1")
    page.keyboard.press("ArrowLeft")
    assert marker.get_attribute("x1") != after[0]
    page.screenshot(path=str(ARTIFACTS / f"{tag}-slider-moved.png"), full_page=True)

    # clicking another token re-targets the curve and the title
    curve = root.locator("path.dnb-curve")
    d_before = curve.get_attribute("d")
    title_before = root.locator(".dnb-slider-part .dnb-title").text_content()
    sel = root.locator(".dnb-sel")
    cur = int(sel.get_attribute("data-pos")) if sel.count() else -1
    tv_row = {r + 1: row for r, row in zip(roots, facts["tv"])}
    cur_row = tv_row.get(cur)
    target = next(
        i for i in sorted(tv_row, key=lambda i: -abs(dens_of[i] - dens_of.get(cur, 0.0))) if tv_row[i] != cur_row and i < len(tokens)
    )
    toks.nth(target).click()
    assert "dnb-sel" in (toks.nth(target).get_attribute("class") or "")
    assert toks.nth(target).get_attribute("aria-selected") == "true"
    assert curve.get_attribute("d") != d_before
    assert root.locator(".dnb-slider-part .dnb-title").text_content() != title_before
    # hover shows the numbers
    toks.nth(target).hover()
    tip = root.locator(".dnb-tip")
    assert tip.is_visible() and "density" in tip.text_content() and "top prediction" in tip.text_content()
    # keyboard on the strip: the selected token is the roving tab stop; arrows move focus, Enter selects
    sel = root.locator(".dnb-sel").first
    assert sel.get_attribute("tabindex") == "0"
    sel.focus()
    page.keyboard.press("ArrowLeft")
    focused_pos = page.evaluate("() => document.activeElement.dataset.pos")
    assert focused_pos is not None and int(focused_pos) != target
    page.keyboard.press("Enter")
    assert "dnb-sel" in (toks.nth(int(focused_pos)).get_attribute("class") or "")
    assert curve.get_attribute("d") is not None
    # metric toggle
    root.locator("button.dnb-btn", has_text="KL").click()
    assert "KL" in root.locator(".dnb-chart text.dnb-axislabel").nth(1).text_content()
    root.locator("button.dnb-btn", has_text="TV").click()


def check_preview_and_baselines(page, facts: dict, scope: str) -> None:
    """The prediction preview follows the slider (plateau strata say so, the full graph predicts as the
    full model); the baselines are in the legend and toggle from the keyboard; the grid's scale too."""
    root = page.locator(scope).first
    slider = root.locator("input.dnb-range")
    preview = root.locator(".dnb-preview-part")
    sub_rows = preview.locator(".dnb-pv-col").nth(0).locator(".dnb-pv-row:not([hidden])")
    full_rows = preview.locator(".dnb-pv-col").nth(1).locator(".dnb-pv-row:not([hidden])")
    assert "top-5" in preview.locator(".dnb-pv-head").nth(0).text_content()
    assert preview.locator(".dnb-pv-head").nth(1).text_content() == "full model — top-5"
    ri = facts["roots"].index(int(root.locator(".dnb-strip .dnb-sel").first.get_attribute("data-pos")) - 1)
    slider.focus()
    page.keyboard.press("Home")
    if facts["n_edges"][ri][0] < facts["input_edges"][ri]:  # a plateau stratum: no tokens, a sentence instead
        assert sub_rows.count() == 0
        assert preview.locator(".dnb-pv-note").first.text_content().startswith("No path from the input yet")
        assert "no path from the input yet" in root.locator(".dnb-readout").text_content()
    page.keyboard.press("End")  # the full graph predicts what the full model predicts
    assert sub_rows.count() == full_rows.count() == 5
    texts = lambda rows: rows.locator(".dnb-pv-tok").evaluate_all("els => els.map(e => e.textContent)")
    assert texts(sub_rows) == texts(full_rows)
    next_in_full = facts["next_token"][ri] in facts["topk_full"][ri]
    assert full_rows.locator(".dnb-pv-mark", has_text="next").count() == int(next_in_full)
    assert preview.locator(".dnb-pv-foot").text_content().startswith("◂ the text's next token")
    # baselines: three curves, each named in the legend; Space/Enter on its legend entry hides/shows it
    for name, label in (("random", "random"), ("random_residual", "published random"), ("inverse", "inverse")):
        toggle = root.locator(f".dnb-li-toggle[data-baseline='{name}']")
        curve = root.locator(f"path.dnb-base-{name}")
        assert toggle.text_content() == label and toggle.get_attribute("aria-pressed") == "true"
        page.keyboard.press("Home")
        assert curve.get_attribute("d")
        toggle.focus()
        page.keyboard.press("Space")
        assert toggle.get_attribute("aria-pressed") == "false" and curve.get_attribute("d") == ""
        page.keyboard.press("Enter")
        assert toggle.get_attribute("aria-pressed") == "true" and curve.get_attribute("d")
    # grid scale: log by default, linear from the keyboard; the legend says which
    slider.focus()
    page.keyboard.press("Home")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    legend = root.locator(".dnb-grid-legend .dnb-legend-label")
    assert "log scale" in legend.text_content()
    cells = root.locator(".dnb-cell")
    log_colours = cells.evaluate_all("els => els.map(e => e.style.backgroundColor)")
    root.locator(".dnb-scale-btn", has_text="linear").focus()
    page.keyboard.press("Enter")
    assert "linear scale" in legend.text_content()
    assert cells.evaluate_all("els => els.map(e => e.style.backgroundColor)") != log_colours
    root.locator(".dnb-scale-btn", has_text="log").click()
    cells.nth(0).hover()
    assert "of its edges included" in root.locator(".dnb-tip").text_content()


def check_compare(page, facts: dict, scope: str) -> None:
    """Strips aligned by characters, the hostile text literal, a click or Enter selects the same
    characters in both rows, the scatter with ρ."""
    root = page.locator(scope).first
    text, spans = facts["text"], facts["spans"]
    assert root.locator(".dnb-cmp-line").count() >= 1
    rows = root.locator(".dnb-cmp-row")
    assert rows.count() == 2 * root.locator(".dnb-cmp-line").count()
    assert root.locator("img, script, iframe, b").count() == 0
    # every row shows the text, character by character (empty tokens draw nothing)
    for m in (0, 1):
        shown_text = "".join(root.locator(f".dnb-ctok[data-m='{m}']").evaluate_all("els => els.map(e => e.textContent)"))
        assert shown_text == "".join(shown(ch) for ch in text)
    # aligned: a token edge both results share sits at the same x in both rows
    box = lambda m, i: root.locator(f".dnb-ctok[data-m='{m}'][data-i='{i}']").first.bounding_box()
    starts_b = {a: i for i, (a, b) in enumerate(spans[1]) if b > a}
    shared = [(i, starts_b[a]) for i, (a, b) in enumerate(spans[0]) if b > a and a in starts_b]
    assert len(shared) >= 3
    for i, j in shared:
        assert abs(box(0, i)["x"] - box(1, j)["x"]) < 0.6, (i, j)
    # a click on a token of A selects its characters in both rows
    i_img = next(i for i, (a, b) in enumerate(spans[0]) if "<img" in text[a:b])
    root.locator(f".dnb-ctok[data-m='0'][data-i='{i_img}']").click()
    sel_b = root.locator(".dnb-ctok.dnb-sel[data-m='1']").evaluate_all("els => els.map(e => Number(e.dataset.i))")
    a0, b0 = spans[0][i_img]
    assert sorted(set(sel_b)) == [j for j, (a, b) in enumerate(spans[1]) if a < b0 and b > a0 and b > a]
    detail = root.locator(".dnb-cmp-detail").text_content()
    assert detail.startswith("Selected “·<img·src=x·onerror=alert(1)>”") and "A: 1 token" in detail and "B: 4 tokens" in detail
    # keyboard: the row's tab stop, arrows move along the row, Enter selects, ↓ goes to the other row at the same character
    first = root.locator(".dnb-ctok[data-m='0'][tabindex='0']")
    assert first.count() == 1
    first.focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.dataset.i") == "1"
    assert "Selected “·<img" in root.locator(".dnb-cmp-detail").text_content()
    page.keyboard.press("ArrowDown")
    assert page.evaluate("() => document.activeElement.dataset.m") == "1"
    page.keyboard.press("Enter")  # B's token at that character is "Say <"
    assert root.locator(".dnb-cmp-detail").text_content().startswith("Selected “Say·<”")
    # the scatter: one point per run of characters in one token of each, ρ in its title
    assert root.locator(".dnb-cmp-pt").count() == facts["points"]
    assert root.locator(".dnb-cmp-rho").text_content().startswith("Spearman ρ = ")
    root.locator(".dnb-cmp-pt").first.click()
    assert root.locator(".dnb-cmp-pt-sel").count() >= 1


def no_horizontal_overflow(page) -> None:
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


# ---- JupyterLab server ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_notebook(root: Path) -> None:
    (root / "explorer.ipynb").write_text(
        json.dumps(
            {
                "cells": [
                    {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [source]}
                    for source in NOTEBOOK_CELLS
                ],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )


@contextlib.contextmanager
def jupyterlab_server(root: Path, app: str = "lab"):
    """Start JupyterLab (``app="lab"``) or Notebook 7 (``"notebook"``) on a free localhost port serving
    ``root`` (no token, no browser); always stop it and its kernels."""
    port = _free_port()
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    for var, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTERLAB_SETTINGS_DIR", "settings"),
        ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
    ):
        env[var] = str(root.parent / f"{root.name}-{sub}")
    log = open(root.parent / f"{root.name}-server.log", "w")  # noqa: SIM115 (closed when the server stops)
    common = [
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        "--allow-root",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root}",
    ]
    if app == "lab":
        extra = [
            "jupyterlab",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
    else:
        extra = ["notebook", "--JupyterNotebookApp.expose_app_in_browser=True"]
    proc = subprocess.Popen(
        [sys.executable, "-m", extra[0], *common, *extra[1:]],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"JupyterLab did not start; see {log.name}")
            time.sleep(0.5)
        yield base
    finally:
        try:  # shut kernels down through the API (they run in their own process groups)
            with urllib.request.urlopen(f"{base}/api/kernels", timeout=5) as resp:
                for k in json.load(resp):
                    req = urllib.request.Request(f"{base}/api/kernels/{k['id']}", method="DELETE")
                    urllib.request.urlopen(req, timeout=10).close()
        except OSError:
            pass
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


def open_and_run(page, base: str, app: str = "lab") -> None:
    """Open explorer.ipynb in JupyterLab / Notebook 7, run all cells, wait for every view."""
    url = f"{base}/lab/tree/explorer.ipynb" if app == "lab" else f"{base}/notebooks/explorer.ipynb"
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function(
        "window.jupyterapp && window.jupyterapp.shell && window.jupyterapp.shell.currentWidget && window.jupyterapp.shell.currentWidget.sessionContext",
        timeout=90_000,
    )
    page.evaluate(
        """async () => {
            const app = window.jupyterapp;
            const nb = app.shell.currentWidget;
            await nb.sessionContext.ready;
            await app.commands.execute('notebook:run-all-cells');
        }"""
    )
    for view in ("explorer", "compare", "live"):
        page.wait_for_selector(f"{OUT}[data-view='{view}']", state="attached", timeout=180_000)
    page.wait_for_selector(f"{EXPLORER} .dnb-tok", timeout=60_000)


OUT = ".jp-OutputArea-output .dnb"
EXPLORER, COMPARE, LIVE = (f"{OUT}[data-view='{v}']" for v in ("explorer", "compare", "live"))


def check_live(page) -> None:
    """The live views: trace_live fills its strip and ends "done"; generation runs until the Cancel
    button (pressed from the keyboard) stops it, keeping the steps done, marked as written."""
    traced, gen = page.locator(LIVE).nth(0), page.locator(LIVE).nth(1)
    traced.locator(".dnb-live[data-state='done']").wait_for(timeout=180_000)
    n_tokens = traced.locator(".dnb-tok").count()
    assert traced.locator(".dnb-tok.dnb-pred").count() == n_tokens - 1  # every prediction in the text, traced
    assert traced.locator(".dnb-live-text").text_content().startswith(f"done {n_tokens - 1} of {n_tokens - 1} roots")
    assert traced.locator(".dnb-cancel").is_hidden() and traced.locator(".dnb-slider-part").count() == 1
    page.wait_for_function(
        f'() => /tracing ([2-9]|\\d\\d+) of {GEN_STEPS} steps/.test(document.querySelectorAll("{LIVE} .dnb-live-text")[1].textContent)',
        timeout=180_000,
    )
    assert gen.locator(".dnb-tok.dnb-gen").count() >= 2 and gen.locator("b, img, script").count() == 0
    cancel = gen.locator(".dnb-cancel")
    cancel.focus()
    before = gen.locator(".dnb-live-text").text_content()
    page.wait_for_function(  # another step lands (the explorer below is rebuilt): the focus stays on Cancel
        f'(t) => document.querySelectorAll("{LIVE} .dnb-live-text")[1].textContent !== t', arg=before, timeout=180_000
    )
    assert page.evaluate("() => document.activeElement.classList.contains('dnb-cancel')")
    page.keyboard.press("Enter")
    gen.locator(".dnb-live[data-state='cancelled']").wait_for(timeout=180_000)
    kept = int(gen.locator(".dnb-live-text").text_content().split("kept ")[1].split(" of")[0])
    assert 2 <= kept < GEN_STEPS and gen.locator(".dnb-tok.dnb-gen.dnb-pred").count() >= kept - 1
    assert "Once·<b>upon</b>·a·time" in gen.locator(".dnb-strip").text_content()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    pytest.importorskip("density_nb.tracing", reason="density_nb.tracing is not available")
    root = tmp_path_factory.mktemp("lab")
    write_notebook(root)
    with jupyterlab_server(root) as base:
        yield {"base": base, "root": root}


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = launch(pw)
        try:
            yield b
        finally:
            b.close()


def dark_background(page, scope: str) -> None:
    page.wait_for_function(
        f"""() => [...document.querySelectorAll("{scope}")].every((e) => {{
                const c = getComputedStyle(e).backgroundColor.match(/\\d+/g).map(Number); return c[0] + c[1] + c[2] < 200; }})""",
        timeout=30_000,
    )


def test_jupyterlab_views(lab, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1500})
    requests, dialogs, errors = watch(page)
    open_and_run(page, lab["base"])
    facts = json.loads((lab["root"] / "facts.json").read_text())
    news = page.locator(".jp-toast-button", has_text="No")
    if news.count():
        news.first.click()
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "lab-light.png"), full_page=True)
    for scope in (EXPLORER, COMPARE, LIVE):
        bg = page.locator(scope).first.evaluate("e => getComputedStyle(e).backgroundColor")
        assert luminance(bg) > 0.8, bg
    check_explorer(page, facts, EXPLORER, "lab")
    check_preview_and_baselines(page, facts, EXPLORER)
    check_compare(page, json.loads((lab["root"] / "compare.json").read_text()), COMPARE)
    check_live(page)
    # dark theme: JupyterLab's command; every view follows the --jp-* variables
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    dark_background(page, OUT)
    fg = page.locator(f"{EXPLORER} .dnb-readout").first.evaluate("e => getComputedStyle(e).color")
    assert luminance(fg) > 0.5, fg
    page.locator(f"{EXPLORER} .dnb-tok").nth(3).hover()
    page.screenshot(path=str(ARTIFACTS / "lab-dark.png"), full_page=True)
    # the explorer's SVG / PNG buttons in JupyterLab: the files come back, open, and keep the dark theme
    for kind in ("svg", "png"):
        with page.expect_download(timeout=60_000) as info:
            page.locator(f"{EXPLORER} button[data-export='{kind}']").first.click()
        info.value.save_as(ARTIFACTS / f"export-lab-dark.{kind}")
    assert ElementTree.parse(ARTIFACTS / "export-lab-dark.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg"
    _, _, rows = png_pixels((ARTIFACTS / "export-lab-dark.png").read_bytes())
    assert sum(rows[2][6:9]) < 200, rows[2][6:9]
    assert dialogs == [], dialogs
    assert not [e for e in errors if "dnb" in e or "density" in e], errors
    assert [u for u in requests if not u.startswith((lab["base"], "data:", "blob:"))] == []
    page.close()


def test_exported_html_offline(lab, browser):
    """Depends on the notebook above having written explorer.html, compare.html and their facts."""
    for name in ("explorer.html", "compare.html"):
        if not (lab["root"] / name).exists():
            pytest.skip(f"the JupyterLab test did not produce {name}")
        shutil.copy(lab["root"] / name, ARTIFACTS / name)
    facts = json.loads((lab["root"] / "facts.json").read_text())
    compare_facts = json.loads((lab["root"] / "compare.json").read_text())
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1200, "height": 950}, color_scheme=scheme)
        page = context.new_page()
        requests, dialogs, errors = watch(page)
        page.goto((lab["root"] / "explorer.html").as_uri())
        page.wait_for_selector("body[data-dnb-ready]", timeout=20_000)
        bg = page.locator(".dnb").first.evaluate("e => getComputedStyle(e).backgroundColor")
        assert (luminance(bg) > 0.8) if scheme == "light" else (luminance(bg) < 0.2), bg
        page.screenshot(path=str(ARTIFACTS / f"html-{scheme}.png"), full_page=True)
        check_explorer(page, facts, ".dnb", f"html-{scheme}")
        check_preview_and_baselines(page, facts, ".dnb")
        # keyboard: Tab reaches a token (roving tabindex), arrows move, Enter selects
        page.locator("body").click(position={"x": 2, "y": 2})
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement.className")
        assert "dnb-tok" in focused or "dnb-next" in focused, focused
        before = page.evaluate("() => window.dnbModel.get('root')")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("Enter")
        assert page.evaluate("() => window.dnbModel.get('root')") != before
        assert page.locator(".dnb-strip").first.text_content().replace("·", " ").find(EVIL) >= 0
        page.goto((lab["root"] / "compare.html").as_uri())
        page.wait_for_selector("body[data-dnb-ready]", timeout=20_000)
        page.screenshot(path=str(ARTIFACTS / f"compare-html-{scheme}.png"), full_page=True)
        check_compare(page, compare_facts, ".dnb")
        # check_compare clicked a point last: its characters are the widget's selection
        picked = page.locator(".dnb-cmp-pt-sel").evaluate_all("els => els.map(e => [Number(e.dataset.a), Number(e.dataset.b)])")
        assert page.evaluate("() => window.dnbModel.get('span')") in picked
        assert dialogs == [] and errors == [], (dialogs, errors)
        bad = [u for u in requests if not (u.startswith(("file://", "data:")))]
        assert bad == [], bad
        context.close()


@pytest.mark.parametrize("page_html", ["explorer.html", "compare.html"])
@pytest.mark.parametrize("theme", ["class", "attribute"])
def test_vscode_dark_and_narrow(lab, browser, page_html, theme):
    """VS Code marks its dark themes on the body (class ``vscode-dark``, ``data-vscode-theme-kind``); the
    views follow them even when the OS scheme is light. At a phone's width nothing overflows sideways."""
    html = lab["root"] / page_html
    if not html.exists():
        pytest.skip(f"the JupyterLab test did not produce {page_html}")
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(html.as_uri())
    page.wait_for_selector("body[data-dnb-ready]", timeout=20_000)
    bg = lambda: luminance(page.locator(".dnb").first.evaluate("e => getComputedStyle(e).backgroundColor"))
    assert bg() > 0.8
    mark = "document.body.classList.add('vscode-dark')" if theme == "class" else "document.body.dataset.vscodeThemeKind = 'vscode-dark'"
    page.evaluate(f"() => {{ {mark}; }}")
    assert bg() < 0.2
    assert luminance(page.locator(".dnb-title").first.evaluate("e => getComputedStyle(e).color")) > 0.5
    page.screenshot(path=str(ARTIFACTS / f"vscode-dark-{theme}-{page_html}.png"), full_page=True)
    page.set_viewport_size({"width": 380, "height": 900})
    page.wait_for_timeout(200)
    no_horizontal_overflow(page)
    page.screenshot(path=str(ARTIFACTS / f"narrow-{theme}-{page_html}.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    pytest.importorskip("notebook", minversion="7", reason="Notebook 7 is not installed (pip install 'notebook>=7')")
    pytest.importorskip("density_nb.tracing", reason="density_nb.tracing is not available")
    root = tmp_path_factory.mktemp("nb7")
    write_notebook(root)
    with jupyterlab_server(root, app="notebook") as base:
        yield {"base": base, "root": root}


def test_notebook7_views(notebook7, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1500})
    requests, dialogs, _ = watch(page)
    open_and_run(page, notebook7["base"], app="notebook")
    facts = json.loads((notebook7["root"] / "facts.json").read_text())
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "nb7-light.png"), full_page=True)
    check_explorer(page, facts, EXPLORER, "nb7")
    check_preview_and_baselines(page, facts, EXPLORER)
    check_compare(page, json.loads((notebook7["root"] / "compare.json").read_text()), COMPARE)
    check_live(page)
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    dark_background(page, OUT)
    page.screenshot(path=str(ARTIFACTS / "nb7-dark.png"), full_page=True)
    assert dialogs == [], dialogs
    assert [u for u in requests if not u.startswith((notebook7["base"], "data:", "blob:"))] == []
    page.close()


class _Tokenizer:
    def decode(self, ids: list[int]) -> str:
        return EVIL if ids[0] % 2 else f" tok{ids[0]}"


def _finished_live():
    """A live view after its last step (what to_html of a finished generation writes)."""
    import dataclasses

    import numpy as np

    from density_nb.views import LiveTrace
    from helpers import EVIL_TOKENS, make_result, with_measures

    res = with_measures(make_result(tokens=[*EVIL_TOKENS, " more"], n_strata=7, n_layers=3, n_heads=2))
    res = dataclasses.replace(res, generated=np.arange(len(res.tokens)) >= 4)
    view = LiveTrace(res.model, res.tokens, total=len(res.roots), unit="steps", tokenizer=_Tokenizer())
    view.run(lambda on_step, stop: on_step(res, len(res.roots))).wait(10)
    return res, view


@pytest.mark.parametrize("cls_name", ["TokenStrip", "SubgraphSlider", "PredictionPreview", "HeadGrid", "DensityExplorer", "LiveTrace"])
def test_single_views_standalone(cls_name, browser, tmp_path):
    """Each view alone, exported and opened from disk (synthetic data with hostile token text)."""
    import density_nb.views as W
    from helpers import EVIL_TOKENS, make_result, with_measures

    if cls_name == "LiveTrace":
        res, widget = _finished_live()
    else:
        res = with_measures(make_result(tokens=[*EVIL_TOKENS, "\n", " tail"], n_strata=7, n_layers=3, n_heads=2))
        widget = getattr(W, cls_name)(res, tokenizer=_Tokenizer())
    html = widget.to_html(tmp_path / f"{cls_name}.html")
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    requests, dialogs, errors = watch(page)
    page.goto(html.as_uri())
    page.wait_for_selector("body[data-dnb-ready]", timeout=20_000)
    parts = {
        "strip": ".dnb-strip-part",
        "slider": ".dnb-slider-part",
        "preview": ".dnb-preview-part",
        "grid": ".dnb-grid-part",
        "live": ".dnb-live",
    }
    expect = {
        "TokenStrip": {"strip"},
        "SubgraphSlider": {"slider"},
        "PredictionPreview": {"preview"},
        "HeadGrid": {"grid"},
        "DensityExplorer": {"strip", "slider", "preview", "grid"},
        "LiveTrace": set(parts),
    }[cls_name]
    for name, sel in parts.items():
        assert page.locator(sel).count() == (1 if name in expect else 0), (name, cls_name)
    if "strip" in expect:
        assert page.locator(".dnb-tok").count() == len(res.tokens)
        assert page.locator(".dnb-tok").nth(1).text_content() == shown(EVIL_TOKENS[1])
    if "preview" in expect:  # decoded tokens are text, never markup
        assert EVIL.replace(" ", "·") in "".join(page.locator(".dnb-pv-tok").evaluate_all("els => els.map(e => e.textContent)"))
    if "grid" in expect:
        assert page.locator(".dnb-cell").count() == 3 * 3
    if cls_name == "LiveTrace":
        assert page.locator(".dnb-live[data-state='done']").count() == 1 and page.locator(".dnb-cancel").is_hidden()
        assert page.locator(".dnb-tok.dnb-gen").count() == int(res.generated.sum())
    page.screenshot(path=str(ARTIFACTS / f"standalone-{cls_name}.png"), full_page=True)
    assert page.locator(".dnb img, .dnb script").count() == 0
    assert dialogs == [] and errors == [], (dialogs, errors)
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
    page.close()


def test_saved_common_js_and_theme_redraw_the_page(browser, tmp_path):
    """What anywidget's hot reload sends when static/common.js or theme.json is saved (the _common and _theme
    traits) redraws the view in place: a theme whose strip map is cividis colours the tokens as Python's
    cividis does; an edited common.js (another continuation mark) is what the strip shows."""
    from density_nb.views import TokenStrip
    from density_nb.views.assets import STATIC
    from density_nb.views.theme import THEME, map_colours
    from helpers import make_result

    res = make_result(tokens=["The", " 日", "", "本", " cat", " sat", " on", " the", " mat"], n_strata=5, n_layers=2, n_heads=2)
    widget = TokenStrip(res, colour_scale="fixed")  # density on 0–1: the map alone decides the colours
    page = browser.new_page()
    requests, dialogs, errors = watch(page)
    page.goto(widget.to_html(tmp_path / "strip.html").as_uri())
    page.wait_for_selector("body[data-dnb-ready]", timeout=20_000)
    colours = lambda: page.locator(".dnb-tok.dnb-pred").evaluate_all(
        "els => els.map(e => [Number(e.dataset.pos), getComputedStyle(e).backgroundColor])"
    )
    density = dict(zip((res.roots + 1).tolist(), res.density.tolist()))
    before = colours()
    assert all(c == map_colours("strip", density[p])[0] for p, c in before)
    cividis = json.dumps({**THEME, "map_of": {**THEME["map_of"], "strip": "cividis"}})
    page.evaluate("(t) => window.dnbModel.set('_theme', t)", cividis)
    page.wait_for_function("(c) => getComputedStyle(document.querySelector('.dnb-tok.dnb-pred')).backgroundColor !== c", arg=before[0][1])
    assert all(c == map_colours("cividis", density[p])[0] for p, c in colours())
    common = (
        (STATIC / "common.js").read_text(encoding="utf-8").replace('export const CONTINUATION = "◌";', 'export const CONTINUATION = "⁂";')
    )
    page.evaluate("(t) => window.dnbModel.set('_common', t)", common)
    page.wait_for_function("() => document.querySelector('.dnb-tok[data-pos=\"2\"]')?.textContent === '⁂'")
    assert page.locator(".dnb-strip").count() == 1  # redrawn in place, not twice
    assert dialogs == [] and errors == [], (dialogs, errors)
    assert all(u.startswith(("file://", "data:")) for u in requests), requests
    page.close()
