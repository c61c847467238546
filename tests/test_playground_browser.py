"""The playground (issue 25) in a real browser, driven as a user drives it: JupyterLab (typing, Ctrl+Enter, the
strip filling, one word changed, the comparison's difference colours against the two results' numbers, Cancel
mid-trace keeping a prefix, errors in the view and never in the output area, the history, keyboard only, dark,
SVG/PNG) and Notebook 7; the documentation screenshots (docs/screenshots/playground.png, playground-dark.png) with
SmolLM2.

Run:  pytest -m browser tests/test_playground_browser.py   (needs /usr/bin/chromium and python playwright)
Screenshots go to test-artifacts/ (gitignored), the documentation's to docs/screenshots/.
VS Code cannot run here: the playground uses the mechanisms every other view uses there (one anywidget ESM,
VS Code's body classes and --vscode-* variables for its themes, test_widgets_browser.test_vscode_dark_and_narrow).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from defusedxml import ElementTree
from test_widgets_browser import ARTIFACTS, browser, dark_background, jupyterlab_server, luminance, watch  # noqa: F401 (browser: the fixture)

from density_nb.views.theme import difference_position, difference_range, fmt_difference, map_colours

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
TESTS = str(Path(__file__).resolve().parent)

SENTENCE = "The cat sat on the mat and looked at the dog."
CHANGED = "The cat sat on the rug and looked at the dog."
LONG = "Every morning the old baker opened the shop, lit the ovens and sang while the bread rose in the warm dark kitchen."
OUT = ".jp-OutputArea-output"
# the notebook shown (JupyterLab keeps the others' tabs in the page, hidden); no quotes: it goes into JavaScript strings
PG = f".jp-NotebookPanel:not(.lm-mod-hidden) {OUT} .dnb[data-view=playground]"

# the facts a test reads back from the kernel: the history's numbers (each token's density: the step predicting it)
FACTS = (
    "import json\n"
    "from density_nb.views.compare import token_density\n"
    "json.dump({'history': [{'text': r.text, 'tokens': r.tokens, 'roots': r.roots.tolist(), 'density': token_density(r).tolist()}\n"
    "                       for r in pg.history], 'comparison': pg.comparison, 'entries': pg.entries, 'error': pg.error},\n"
    "          open('pg.json', 'w'))"
)
SLOW = "from density_nb.method.arch import Arch\n_mlp = Arch.mlp\nArch.mlp = lambda self, layer, h: (time.sleep(0.03), _mlp(self, layer, h))[1]"
FAST = "Arch.mlp = _mlp"


def notebook(path: Path, *sources: str) -> None:
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [source]} for source in sources]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    path.write_text(json.dumps({"cells": cells, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    root = tmp_path_factory.mktemp("pglab")
    setup = f"import sys, time\nsys.path.insert(0, {TESTS!r})\nimport density_nb\n"
    # max_rows=300: tiny-llama's roots in several passes, so the strip fills in steps
    notebook(root / "tiny.ipynb", setup + "pg = density_nb.playground(['tiny-llama', 'no-such-model'], max_tokens=160, max_rows=300)\npg")
    notebook(root / "smol.ipynb", setup + "pg = density_nb.playground('smollm2-135m')\npg")
    # the Python side, as the lesson uses it: the view in one cell, traces and a comparison from the next ones
    notebook(
        root / "api.ipynb",
        setup + "pg = density_nb.playground('tiny-llama')\npg",
        f"pg.text = {SENTENCE!r}\npg.run().wait()\nprint(len(pg.history), pg.result.text == pg.text)",
        f"pg.text = {CHANGED!r}\npg.run().wait()\npg.compare(0, 1)\nprint(pg.compare_pair, pg.error == '')",
    )
    with jupyterlab_server(root) as base:
        yield {"base": base, "root": root}


WORKSPACES = itertools.count()


def open_notebook(page, base: str, name: str, app: str = "lab") -> None:
    """Open ``name`` (in JupyterLab, in a workspace of its own: no tab of an earlier test comes back) and run its
    cells; wait for the playground."""
    url = f"{base}/lab/workspaces/pg{next(WORKSPACES)}/tree/{name}" if app == "lab" else f"{base}/notebooks/{name}"
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function(  # the notebook asked for (JupyterLab may restore other tabs first)
        "(name) => window.jupyterapp && window.jupyterapp.shell.currentWidget && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.context.path === name",
        arg=name,
        timeout=90_000,
    )
    page.evaluate(
        """async () => {
            const nb = window.jupyterapp.shell.currentWidget;
            await nb.sessionContext.ready;
            await window.jupyterapp.commands.execute('notebook:run-all-cells');
        }"""
    )
    try:
        page.wait_for_selector(f"{PG} .dnb-pg-text", timeout=300_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "playground-open-timeout.png"), full_page=True)
        raise
    news = page.locator(".jp-toast-button", has_text="No")
    if news.count():
        news.first.click()


def kernel(page, code: str) -> None:
    """Run ``code`` in the notebook's kernel (not in a cell) and wait for it."""
    page.evaluate(
        "async (code) => { await window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.requestExecute({ code }).done; }", code
    )


def facts(page, root: Path) -> dict:
    (root / "pg.json").unlink(missing_ok=True)
    kernel(page, FACTS)
    return json.loads((root / "pg.json").read_text())


def execution_count(page) -> int | None:
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets[0].model.executionCount")


def wait_state(page, state: str, entries: int | None = None) -> None:
    """Wait for the playground's trace to end in ``state`` (with ``entries`` in the history: the state of the trace
    before may still show until the new one files its entry). Generous bounds: a busy machine is slow, never wrong."""
    try:
        if entries is not None:
            page.wait_for_function(f"() => document.querySelectorAll('{PG} .dnb-pg-entry').length === {entries}", timeout=600_000)
        page.locator(f"{PG} .dnb-pg .dnb-live[data-state='{state}']").wait_for(timeout=600_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "playground-timeout.png"), full_page=True)
        raise


def to_dark(page) -> None:
    """JupyterLab's dark theme, its splash gone."""
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=120_000)
    dark_background(page, PG)
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=120_000)
    page.wait_for_timeout(300)


def rgb(css: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", css)[:3]]


def no_traceback(page) -> None:
    """Nothing but the playground in the output area: no error output, no stderr."""
    assert page.locator(f"{OUT}[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    assert page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count() == 0


def type_and_trace(page, text: str) -> None:
    area = page.locator(f"{PG} .dnb-pg-text")
    area.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.type(text)
    page.keyboard.press("Control+Enter")


def test_type_trace_change_one_word_and_compare(lab, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    requests, dialogs, errors = watch(page)
    open_notebook(page, lab["base"], "tiny.ipynb")
    runs = execution_count(page)
    pg = page.locator(PG)
    # typed letters are the text's: none of them is a notebook shortcut (a: cell above, b: below, d d: delete, m: markdown)
    area = pg.locator(".dnb-pg-text")
    area.click()
    page.keyboard.type(SENTENCE)
    assert area.input_value() == SENTENCE
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.length") == 1
    page.wait_for_function(
        f"() => /19 tokens of at most 160/.test(document.querySelector('{PG} .dnb-pg-counts').textContent)", timeout=120_000
    )
    assert pg.locator(".dnb-pg-counts").text_content().startswith("45 characters · ")
    page.keyboard.press("Control+Enter")
    # the strip fills in as roots complete (several passes), then the explorer shows the result
    page.wait_for_function(f"() => document.querySelectorAll('{PG} .dnb-tok.dnb-pred').length > 0", timeout=120_000)
    wait_state(page, "done", entries=1)
    tokens = pg.locator(".dnb-strip .dnb-tok").count()
    assert pg.locator(".dnb-tok.dnb-pred").count() == tokens - 1 and pg.locator(".dnb-slider-part").count() == 1
    assert pg.locator(".dnb-pg .dnb-live-text").text_content().startswith(f"done {tokens - 1} of {tokens - 1} roots")
    assert execution_count(page) == runs, "Ctrl+Enter in the text box ran the notebook cell"
    # change one word: the caret after "mat", three Backspaces, "rug"
    area.click()
    page.keyboard.press("Control+Home")
    for _ in range(SENTENCE.index("mat") + 3):
        page.keyboard.press("ArrowRight")
    for _ in range(3):
        page.keyboard.press("Backspace")
    page.keyboard.type("rug")
    assert area.input_value() == CHANGED
    page.keyboard.press("Control+Enter")
    wait_state(page, "done", entries=2)
    assert pg.locator(".dnb-pg-entry[aria-current='true']").text_content().startswith("#2 tiny-llama · “The cat sat on the rug")
    # compare with…: #1 with #2 (the defaults), the focus goes to the comparison
    assert pg.locator(".dnb-pg-a").input_value() == "0" and pg.locator(".dnb-pg-b").input_value() == "1"
    pg.locator(".dnb-pg-cmp-go").click()
    pg.locator(".dnb-pg-comparison .dnb-dtok").first.wait_for(timeout=120_000)
    assert page.evaluate("() => document.activeElement.classList.contains('dnb-title')")
    assert "aligned where they agree" in page.evaluate("() => document.activeElement.textContent")
    # the difference colours: each run's Δ = B's density − A's, from the two results' own numbers, on the theme's scale
    got = facts(page, lab["root"])
    a, b = got["history"]
    assert [a["text"], b["text"]] == [SENTENCE, CHANGED]
    runs_ = got["comparison"]["diff"]["runs"]
    finite = lambda x: x is not None and x == x  # NaN: no prediction
    deltas = [
        b["density"][ib] - a["density"][ia] if finite(a["density"][ia]) and finite(b["density"][ib]) else None for _, _, ia, ib in runs_
    ]
    half = difference_range(deltas, "density")
    boxes = pg.locator(".dnb-pg-comparison .dnb-dtok").evaluate_all(
        "els => els.map(e => [Number(e.dataset.k), getComputedStyle(e).backgroundColor, e.classList.contains('dnb-none')])"
    )
    assert sorted({k for k, _, _ in boxes}) == list(range(len(runs_)))
    changed = SENTENCE.index("mat")  # the first character the texts do not share (the line is the same up to it)
    for k, colour, none in boxes:
        _, end, ia, ib = runs_[k]
        assert a["tokens"][ia] == b["tokens"][ib], "a run joins two tokens of different text"
        if deltas[k] is None:
            assert none
            continue
        want = rgb(map_colours("difference", difference_position(deltas[k], half))[0])
        assert max(abs(x - y) for x, y in zip(rgb(colour), want)) <= 2, (k, colour, want, deltas[k])
        if end <= changed:  # before the changed word the predictions are the same: no difference
            assert abs(deltas[k]) < 1e-3 and rgb(colour) == [247, 247, 247]
    assert max(abs(d) for d in deltas if d is not None) > 1e-3, "nothing moved after the changed word"
    # the legend's ends: the scale of the numbers the view was sent (4 significant digits)
    sent_a, sent_b = (row["density"] for row in got["comparison"]["rows"])
    sent = [sent_b[ib] - sent_a[ia] if finite(sent_a[ia]) and finite(sent_b[ib]) else None for _, _, ia, ib in runs_]
    legend = pg.locator(".dnb-diff-legend .dnb-legend-tick").all_text_contents()
    assert legend == [
        fmt_difference(-difference_range(sent, "density"), "density"),
        fmt_difference(difference_range(sent, "density"), "density"),
    ]
    # a token's label and tooltip say its difference
    label = pg.locator(".dnb-pg-comparison .dnb-ctok[data-m='1']").last.get_attribute("aria-label")
    assert ", Δ " in label
    page.screenshot(path=str(ARTIFACTS / "playground-lab-compare.png"), full_page=True)
    # the history goes back without tracing again
    pg.locator(".dnb-pg-entry").first.click()
    page.wait_for_function(f"() => document.querySelector('{PG} .dnb-pg-text').value === {json.dumps(SENTENCE)}", timeout=120_000)
    assert pg.locator(".dnb-pg-entry").count() == 2 and "#1 from the history" in pg.locator(".dnb-pg .dnb-live-text").text_content()
    no_traceback(page)
    assert dialogs == [] and not [e for e in errors if "dnb" in e or "density" in e], (dialogs, errors)
    assert [u for u in requests if not u.startswith((lab["base"], "data:", "blob:"))] == []
    page.close()


def test_python_cells_drive_the_view(lab, browser):  # noqa: F811
    """``pg.text = ...; pg.run().wait()`` and ``pg.compare(0, 1)`` in later cells show in the view displayed above
    (and redraw its snapshot: the live view stays one, with everything in it)."""
    page = browser.new_page(viewport={"width": 1300, "height": 1600})
    open_notebook(page, lab["base"], "api.ipynb")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.widgets.every((c) => c.model.executionCount !== null)", timeout=300_000
    )
    printed = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stdout']")
    printed.filter(has_text="[0, 1] True").wait_for(timeout=120_000)
    assert printed.filter(has_text="1 True").count() == 1
    pg = page.locator(PG)
    assert pg.count() == 1
    assert pg.locator(".dnb-pg-entry").count() == 2 and pg.locator(".dnb-pg-text").input_value() == CHANGED
    assert pg.locator(".dnb-pg-comparison .dnb-dtok").count() > 0
    no_traceback(page)
    page.screenshot(path=str(ARTIFACTS / "playground-lab-api.png"), full_page=True)
    page.close()


def test_errors_show_in_the_view(lab, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1300, "height": 1200})
    open_notebook(page, lab["base"], "tiny.ipynb")
    pg = page.locator(PG)
    error = pg.locator(".dnb-pg-error")
    # an empty text
    type_and_trace(page, "")
    error.filter(has_text="The text is empty").wait_for(timeout=120_000)
    assert error.get_attribute("role") == "alert"
    # too long: the count says so before tracing, the trace is refused
    type_and_trace(page, " ".join(["word"] * 70))
    error.filter(has_text="over max_tokens=160").wait_for(timeout=120_000)
    assert "too long" in pg.locator(".dnb-pg-counts").text_content()
    # an unknown model, offered by the playground: refused when it loads
    pg.locator(".dnb-pg-model").select_option("no-such-model")
    type_and_trace(page, SENTENCE)
    error.filter(has_text="Unknown model 'no-such-model'").wait_for(timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "playground-lab-error.png"), full_page=True)
    no_traceback(page)
    pg.locator(".dnb-pg-model").select_option("tiny-llama")
    type_and_trace(page, SENTENCE)
    wait_state(page, "done")
    assert error.is_hidden()
    page.close()


def test_cancel_mid_trace_keeps_a_prefix(lab, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1300, "height": 1200})
    open_notebook(page, lab["base"], "tiny.ipynb")
    pg = page.locator(PG)
    kernel(page, SLOW)
    try:
        type_and_trace(page, LONG)
        page.wait_for_function(
            f"() => /tracing ([2-9]|\\d\\d+) of/.test(document.querySelector('{PG} .dnb-live-text').textContent)", timeout=180_000
        )
        cancel = pg.locator(".dnb-pg .dnb-cancel")
        cancel.focus()
        page.keyboard.press("Enter")
        wait_state(page, "cancelled", entries=1)
    finally:
        kernel(page, FAST)
    text = pg.locator(".dnb-pg .dnb-live-text").text_content()
    kept, total = (int(x) for x in re.match(r"cancelled, kept (\d+) of (\d+) roots", text).groups())
    assert 2 <= kept < total
    positions = pg.locator(".dnb-strip .dnb-tok.dnb-pred").evaluate_all("els => els.map(e => Number(e.dataset.pos))")
    assert positions == list(range(1, kept + 1)), "the strip does not show a prefix"
    got = facts(page, lab["root"])
    assert got["history"][0]["roots"] == list(range(kept)) and got["entries"][0]["state"] == "cancelled"
    assert pg.locator(".dnb-pg-entry").first.text_content().endswith(f"cancelled: {kept} of {total}")
    page.close()


def accessible_name(page) -> tuple[str, str]:
    return page.evaluate(
        """() => { const e = document.activeElement;
            const name = e.getAttribute('aria-label') || (e.labels && e.labels.length ? e.labels[0].textContent : '') || e.textContent || '';
            return [e.tagName.toLowerCase() + '.' + (e.className || e.type || ''), name.trim()]; }"""
    )


def test_keyboard_only_dark_and_saving(lab, browser):  # noqa: F811
    """Examples trace from the keyboard; then every control is reached with Tab and named; the dark theme; the SVG
    and PNG buttons save the playground as shown."""
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    open_notebook(page, lab["base"], "tiny.ipynb")
    pg = page.locator(PG)
    pg.locator(".dnb-pg-text").focus()
    for _ in range(7):  # text, model, grid, three baselines, Trace: then the examples, one tab stop
        page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent") == "short"
    page.keyboard.press("Enter")
    wait_state(page, "done", entries=1)
    page.keyboard.press("ArrowRight")  # the focus stayed on the example; the pair's other text
    page.keyboard.press("Enter")
    wait_state(page, "done", entries=2)
    assert pg.locator(".dnb-pg-text").input_value().startswith("Mara keeps bees")
    pg.locator(".dnb-pg-text").focus()
    seen = [accessible_name(page)]
    for _ in range(80):
        page.keyboard.press("Tab")
        if not page.evaluate(f"() => document.querySelector('{PG}').contains(document.activeElement)"):
            break
        seen.append(accessible_name(page))
    assert all(name for _, name in seen), [s for s in seen if not s[1]]
    kinds = " ".join(kind for kind, _ in seen)
    for want in (
        "textarea", "dnb-pg-model", "dnb-pg-grid", "checkbox", "dnb-pg-trace", "dnb-pg-ex", "dnb-pg-entry", "dnb-pg-a", "dnb-pg-b",
        "dnb-pg-cmp-go", "dnb-pg-other", "dnb-tok", "dnb-range", "dnb-export-btn",
    ):  # fmt: skip
        assert want in kinds, (want, seen)
    assert sum("dnb-pg-ex" in kind for kind, _ in seen) == 1 and sum("dnb-pg-entry" in kind for kind, _ in seen) == 1
    # the history from the keyboard: ↑ to the first entry, Enter shows it again
    pg.locator(".dnb-pg-entry[tabindex='0']").focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelector('{PG} .dnb-pg-text').value.startsWith('This year')", timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "playground-lab-light.png"), full_page=True)
    to_dark(page)
    assert luminance(pg.locator(".dnb-pg-text").evaluate("e => getComputedStyle(e).backgroundColor")) < 0.3
    assert luminance(pg.locator(".dnb-pg-text").evaluate("e => getComputedStyle(e).color")) > 0.6
    page.screenshot(path=str(ARTIFACTS / "playground-lab-dark.png"), full_page=True)
    for kind in ("svg", "png"):
        with page.expect_download(timeout=60_000) as info:
            pg.locator(f"button[data-export='{kind}']").first.click()
        info.value.save_as(ARTIFACTS / f"playground-export.{kind}")
    svg = (ARTIFACTS / "playground-export.svg").read_text()
    assert ElementTree.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg" and "This year the first customer" in svg
    assert (ARTIFACTS / "playground-export.png").read_bytes().startswith(b"\x89PNG")
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    page.close()


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    pytest.importorskip("notebook", minversion="7", reason="Notebook 7 is not installed (pip install 'notebook>=7')")
    root = tmp_path_factory.mktemp("pgnb7")
    notebook(
        root / "tiny.ipynb", f"import sys\nsys.path.insert(0, {TESTS!r})\nimport density_nb\npg = density_nb.playground('tiny-llama')\npg"
    )
    with jupyterlab_server(root, app="notebook") as base:
        yield {"base": base, "root": root}


def test_notebook7(notebook7, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1280, "height": 1300})
    open_notebook(page, notebook7["base"], "tiny.ipynb", app="notebook")
    runs = execution_count(page)
    type_and_trace(page, SENTENCE)
    wait_state(page, "done", entries=1)
    pg = page.locator(PG)
    assert pg.locator(".dnb-tok.dnb-pred").count() == pg.locator(".dnb-strip .dnb-tok").count() - 1
    assert execution_count(page) == runs
    to_dark(page)
    page.screenshot(path=str(ARTIFACTS / "playground-nb7-dark.png"), full_page=True)
    no_traceback(page)
    page.close()


@pytest.mark.real
def test_documentation_screenshots(lab, browser, smollm2):  # noqa: F811
    """docs/screenshots/playground.png and playground-dark.png: SmolLM2 on the certainty pair's confident passage,
    one word changed (the lesson's exercise), the comparison open."""
    from density_nb.teaching import texts

    sure = next(p.text for p in texts.PASSAGES if p.pair == "certainty-1" and p.role == "confident")
    page = browser.new_page(viewport={"width": 1280, "height": 2800}, device_scale_factor=1)
    open_notebook(page, lab["base"], "smol.ipynb")
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")  # the file browser closed
    pg = page.locator(PG)
    type_and_trace(page, sure)
    wait_state(page, "done", entries=1)
    type_and_trace(page, sure.replace("Saturday", "pizza"))
    wait_state(page, "done", entries=2)
    pg.locator(".dnb-pg-cmp-go").click()
    pg.locator(".dnb-pg-comparison .dnb-dtok").first.wait_for(timeout=120_000)
    # the explorer on the last step of the changed text, where the list no longer ends for sure
    pg.locator(".dnb-strip .dnb-tok", has_text="Sunday").click()
    page.mouse.move(0, 0)
    page.wait_for_timeout(300)
    output = page.locator(f".jp-NotebookPanel:not(.lm-mod-hidden) {OUT}:has(.dnb[data-view='playground'])").first
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    output.screenshot(path=str(SCREENSHOTS / "playground.png"))
    page.screenshot(path=str(ARTIFACTS / "playground-smollm2-page.png"))
    to_dark(page)
    page.mouse.move(0, 0)
    page.wait_for_timeout(300)
    output.screenshot(path=str(SCREENSHOTS / "playground-dark.png"))
    page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")
    page.close()
