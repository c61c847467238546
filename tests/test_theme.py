"""One theme, one set of helpers: static/theme.json is the only place a colour is written; the CSS reads the
palettes it defines; static/common.js (run in node) computes the same Spearman ρ as ``analysis.stats`` and the
same colours and numbers as ``views.theme`` (what the Python SVG draws with); a saved view reloads
(anywidget's hot reload) when its files are saved."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import numpy as np
import pytest

from density_nb.analysis.stats import spearman
from density_nb.views import theme
from density_nb.views.assets import STATIC, compact_json
from density_nb.views.explorer import _Widget

COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}\b|rgba?\(\s*\d")


def node_eval(body: str) -> Any:
    """Run ``body`` in node as an ES module with ``C`` (static/common.js, theme.json in use) and ``theme`` bound;
    its last ``console.log(JSON.stringify(...))`` comes back parsed."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs); the browser tests run common.js in Chromium")
    common = (STATIC / "common.js").read_text(encoding="utf-8")
    themed = (STATIC / "theme.json").read_text(encoding="utf-8")
    script = (
        # the page common.js puts its CSS variables in, reduced to what useTheme touches
        "globalThis.document = { getElementById: () => null, createElement: () => ({}), head: { appendChild() {} } };\n"
        f"const C = await import('data:text/javascript;charset=utf-8,' + encodeURIComponent({json.dumps(common)}));\n"
        f"const theme = C.useTheme({json.dumps(themed)});\n{body}"
    )
    out = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_no_colour_outside_the_theme():
    """Colours are written in theme.json only: not in the Python views, not in the JavaScript, and the CSS
    reads them as the --dnb-l-* / --dnb-d-* variables common.js defines from the theme's palettes."""
    views = STATIC.parent
    for path in [*views.glob("*.py"), *STATIC.glob("*.js"), *STATIC.glob("*.css")]:
        text = path.read_text(encoding="utf-8")
        text = text.replace("/rgba\\(.*,\\s*0\\)$/", "")  # common.js: a regex that recognises a transparent colour
        assert not COLOUR.search(text), f"{path.name}: {COLOUR.search(text).group()}"  # type: ignore[union-attr]
    light, dark = theme.palette("light"), theme.palette("dark")
    assert set(dark) == set(light)
    css = "".join((STATIC / name).read_text(encoding="utf-8") for name in ("density.css", "dashboard.css"))
    used = set(re.findall(r"var\(--dnb-([ld])-([a-z0-9-]+)\)", css))
    assert used, "the CSS reads no theme colour"
    for mode, name in used:
        assert name.replace("-", "_") in (light if mode == "l" else dark), f"--dnb-{mode}-{name} is not in theme.json"


def test_js_spearman_equals_analysis_stats():
    """The dashboard's live ρ of a brushed selection (common.js) is analysis.stats.spearman's: ties, missing
    values, constant and too-short columns included."""
    rng = np.random.default_rng(0)
    cases = []
    for n in (0, 2, 3, 5, 17, 200):
        x = rng.normal(size=n).round(1)  # rounded: ties
        y = (x * rng.uniform(-1, 1) + rng.normal(size=n)).round(1)
        if n > 4:
            x[rng.integers(0, n, 2)] = np.nan
            y[rng.integers(0, n, 1)] = np.inf
        cases.append((x, y))
    cases.append((np.ones(6), np.arange(6.0)))  # constant: undefined
    got = node_eval(
        f"const cases = {json.dumps([[[v if np.isfinite(v) else None for v in a] for a in c] for c in cases])};\n"
        "const num = (a) => a.map((v) => (v === null ? NaN : v));\n"
        "console.log(JSON.stringify(cases.map(([x, y]) => C.spearman(num(x), num(y)))));"
    )
    for (x, y), js in zip(cases, got):
        py = spearman(x, y, n_boot=0)
        assert js["n"] == py.n
        if np.isfinite(py.rho):
            assert js["rho"] == pytest.approx(py.rho, abs=1e-12)
        else:
            assert js["rho"] is None


def test_js_and_python_write_the_same_colours_and_numbers():
    """common.js and views.theme (the Python SVG's) agree on every map colour, its text colour and every
    number format, read from the one theme."""
    rng = np.random.default_rng(1)
    ts = [0.0, 1.0, 0.5, *rng.uniform(0, 1, 60).tolist()]
    xs = [0.0, 1e21, 3.1e-7, -0.0421, 1234.5, 2.5, 20_482.5, *(10.0 ** rng.uniform(-6, 5, 60) * rng.choice([-1, 1], 60)).tolist()]
    sizes = [1e-5, 2e-5, 0.0099, 0.01, 0.4, 1.0, *(10.0 ** rng.uniform(-5, 0, 40)).tolist()]
    got = node_eval(
        f"const ts = {json.dumps(ts)}, xs = {json.dumps(xs)}, sizes = {json.dumps(sizes)};\n"
        "console.log(JSON.stringify({\n"
        "  strip: ts.map((t) => C.mapColours('strip', t)), shares: ts.map((t) => C.rgb(C.interp(C.stops('shares'), t))),\n"
        "  fmt: xs.map((x) => C.fmt(x)), fmt2: xs.map((x) => C.fmt(x, 2)), fmtS: sizes.map((v) => C.fmtS(v)),\n"
        "  fmtS2: sizes.map((v) => C.fmtS(v, 2)), fmtInt: xs.map((x) => C.fmtInt(Math.abs(x))), fmtPct: ts.map((t) => C.fmtPct(t)),\n"
        "}));"
    )
    assert got["strip"] == [list(theme.map_colours("strip", t)) for t in ts]  # type: ignore[arg-type]
    assert got["shares"] == [theme.rgb(theme.interp(theme.stops("shares"), t)) for t in ts]
    assert got["fmt"] == [theme.fmt(x) for x in xs] and got["fmt2"] == [theme.fmt(x, 2) for x in xs]
    assert got["fmtS"] == [theme.fmt_s(v) for v in sizes] and got["fmtS2"] == [theme.fmt_s(v, 2) for v in sizes]
    assert got["fmtInt"] == [theme.fmt_int(abs(x)) for x in xs] and got["fmtPct"] == [theme.fmt_pct(t) for t in ts]


def test_saved_files_are_sent_again(monkeypatch):
    """Under anywidget's hot reload a saved common.js or theme.json reaches every widget's trait, as anywidget
    does for a saved _esm (scripts/check_hot_reload.py checks the file watcher itself, which needs watchfiles)."""
    from density_nb.views import LiveTrace, assets

    monkeypatch.setattr(assets, "hot_reload", lambda: True)
    monkeypatch.setattr("density_nb.views.explorer.hot_reload", lambda: True)
    widget = LiveTrace("m", ["a"], total=1, unit="steps")
    assert widget._common == (STATIC / "common.js").read_text(encoding="utf-8")
    assert json.loads(widget._theme) == json.loads(compact_json(json.dumps(theme.THEME)))  # without its "about" notes
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(widget, "send_state", lambda key=None: sent.append({"key": key}))
    _Widget._COMMON.changed.emit("// edited\n")  # what the file watcher emits on a save
    _Widget._THEME.changed.emit('{"edited": true, "about": "a note"}')
    assert widget._common == "// edited\n" and widget._theme == '{"edited":true}'
    assert [s["key"] for s in sent] == ["_common", "_theme"]


def test_js_and_python_agree_on_differences():
    """The comparison's difference row: common.js and views.theme (the Python SVG's) compute the same differences
    (decades for a log measure), the same diverging scale (fitted or fixed) and write the same numbers."""
    rng = np.random.default_rng(2)
    pairs = [[0.5, 0.5], [0.2, 0.9], [None, 0.3], [1e-3, 0.1], [0.0, 0.4], *rng.uniform(0, 1, (40, 2)).tolist()]
    sets = [[0.0, 0.0, 0.0], [0.01, -0.2, None, 0.05], rng.normal(0, 0.1, 50).tolist(), []]
    got = node_eval(
        f"const pairs = {json.dumps(pairs)}, sets = {json.dumps(sets)};\n"
        "console.log(JSON.stringify({\n"
        "  lin: pairs.map(([a, b]) => C.difference(a, b, 'density')), log: pairs.map(([a, b]) => C.difference(a, b, 's_top1')),\n"
        "  fitted: sets.map((v) => C.differenceRange(v, 'density')), fixed: sets.map((v) => C.differenceRange(v, 's_top1', 'fixed')),\n"
        "  pos: sets.flatMap((v) => v.map((x) => C.differencePosition(x, 0.1))),\n"
        "  text: sets.flatMap((v) => v.map((x) => [C.fmtDifference(x, 'density'), C.fmtDifference(x, 's_top1')])),\n"
        "}));"
    )
    assert got["lin"] == pytest.approx([theme.difference(a, b, "density") for a, b in pairs])
    assert got["log"] == pytest.approx([theme.difference(a, b, "s_top1") for a, b in pairs])
    assert got["fitted"] == pytest.approx([theme.difference_range(v, "density") for v in sets])
    assert got["fixed"] == [theme.difference_range(v, "s_top1", "fixed") for v in sets] == [5.0] * len(sets)
    assert got["pos"] == pytest.approx([theme.difference_position(x, 0.1) for v in sets for x in v])
    assert got["text"] == [[theme.fmt_difference(x, "density"), theme.fmt_difference(x, "s_top1")] for v in sets for x in v]
