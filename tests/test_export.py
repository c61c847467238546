"""Saving views from Python (``widget.save`` / ``to_svg``: a static SVG drawn from the widget's data, PNG
through vl-convert) and the SVG snapshot each widget leaves in its mimebundle; the ESM that carries the
browser's export buttons. No browser here (see test_export_browser.py)."""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib

import numpy as np
import pytest
from defusedxml import ElementTree

from density_nb.views import DensityExplorer, HeadGrid, LiveTrace, PredictionPreview, SubgraphSlider, TokenStrip, compare
from density_nb.views.assets import STATIC
from density_nb.views.export import PNG_SCALE
from helpers import EVIL_TOKENS, make_result, with_measures

NS = "{http://www.w3.org/2000/svg}"
VIRIDIS = np.array(
    [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ]
)
CIVIDIS = np.array(
    [
        [0, 34, 78],
        [18, 53, 112],
        [59, 73, 108],
        [87, 93, 109],
        [112, 113, 115],
        [138, 134, 120],
        [166, 156, 117],
        [196, 180, 107],
        [254, 232, 56],
    ]
)
NEUTRAL = "#e0e0e0"


def colour(stops: np.ndarray, t: float) -> str:
    """The browser's colour map: linear between the stops, rounded half up (Math.round)."""
    x = np.linspace(0, 1, len(stops))
    r, g, b = (int(np.floor(np.interp(min(max(t, 0), 1), x, stops[:, j]) + 0.5)) for j in range(3))
    return f"rgb({r}, {g}, {b})"


def shown(token: str) -> str:
    """What the strip shows for a token (whitespace marks; mirror of density.js)."""
    if not token:
        return "◌"
    return "".join({" ": "·", "\t": "→", "\n": "↵", "\r": ""}.get(c, "␣" if c.isspace() else c) for c in token)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB(A) PNG (every filter): width, height and its rows as RGB bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, idat, head = 8, b"", b""
    while at < len(data):
        (n,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[at + 8 + n : at + 12 + n])[0], f"bad CRC in {kind!r}"
        head = body if kind == b"IHDR" else head
        idat += body if kind == b"IDAT" else b""
        at += 12 + n
    width, height, depth, ctype = struct.unpack(">IIBB", head[:10])
    assert depth == 8 and ctype in (2, 6), (depth, ctype)
    bpp = 3 if ctype == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    assert len(raw) == height * (stride + 1), "truncated image data"
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a, b, c = (line[i - bpp] if i >= bpp else 0), prev[i], (prev[i - bpp] if i >= bpp else 0)
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [r if bpp == 3 else bytes(v for j, v in enumerate(r) if j % 4 != 3) for r in rows]


def parse(svg: str):
    root = ElementTree.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def size(root) -> tuple[int, int]:
    return int(root.get("width")), int(root.get("height"))


@pytest.fixture(scope="module")
def result():
    return with_measures(make_result(tokens=[*EVIL_TOKENS, "\n", " tail"], n_strata=7, n_layers=3, n_heads=2))


def test_strip_svg_holds_each_token_as_text_on_its_density_colour(result, tmp_path):
    w = TokenStrip(result, colour_scale="fixed")  # density on 0–1 (the default fits the scale: test_strip_svg_fitted_scale)
    root = parse(w.save(tmp_path / "strip.svg").read_text(encoding="utf-8"))
    rects = [r for r in root.iter(f"{NS}rect") if r.get("class") in ("dnb-tok", "dnb-next")]
    toks = [r for r in rects if r.get("class") == "dnb-tok"]
    assert [int(r.get("data-pos")) for r in toks] == list(range(len(result.tokens)))
    density = dict(zip(result.roots.tolist(), result.density.tolist()))
    for i, r in enumerate(toks):
        want = colour(VIRIDIS, density[i - 1]) if i - 1 in density and np.isfinite(density[i - 1]) else NEUTRAL
        assert r.get("fill") == want, (i, r.get("fill"), want)
    assert [r.get("class") for r in rects].count("dnb-next") == int(len(result.tokens) - 1 in density)
    texts = ["".join(t.itertext()) for t in root.iter(f"{NS}text") if t.get("font-family", "").startswith("DejaVu Sans Mono")]
    assert texts[: len(result.tokens)] == [shown(t) for t in result.tokens]
    # hostile token text stays text: no element of its name, no script
    assert not [e for e in root.iter() if e.tag.split("}")[-1] in ("img", "script", "foreignObject")]
    assert "<img" not in w.to_svg() and "&lt;img" in w.to_svg()
    # the legend: the same colour map as the strip
    stops = [s.get("stop-color") for s in next(g for g in root.iter(f"{NS}linearGradient") if g.get("id").endswith("v"))]
    assert stops == [colour(VIRIDIS, t) for t in np.linspace(0, 1, 9)]


def test_svg_follows_the_selection(result):
    w = DensityExplorer(result)
    marker = lambda: next(e for e in parse(w.to_svg()).iter(f"{NS}line") if e.get("class") == "dnb-marker").get("x1")
    outline = lambda: sum(1 for e in parse(w.to_svg()).iter(f"{NS}rect") if e.get("stroke") == "#1976d2")
    before = marker()
    w.stratum = (w.stratum + 2) % len(result.grid)
    assert marker() != before
    assert outline() == 1  # the selected root's token
    w.root = int(result.roots[0])
    assert f"Step {int(result.roots[0])}:" in "".join(parse(w.to_svg()).itertext())


def test_head_grid_svg_cells(result):
    w = HeadGrid(result, stratum=3, scale="linear")
    cells = [r for r in parse(w.to_svg()).iter(f"{NS}rect") if r.get("class") == "dnb-cell"]
    assert len(cells) == result.n_layers * (result.n_heads + 1)
    ri = list(result.roots).index(w.root)
    share = float(result.head_share[ri, 3, 0, 0])
    got = tuple(int(x) for x in re.findall(r"\d+", cells[0].get("fill")))
    want = tuple(int(x) for x in re.findall(r"\d+", colour(CIVIDIS, share)))
    assert max(abs(a - b) for a, b in zip(got, want)) <= 3  # the share travels as a log-coded byte


def test_preview_svg_names_the_top_k(result):
    w = PredictionPreview(result, tokenizer=_Tokenizer())
    text = "".join(parse(w.to_svg()).itertext())
    assert "full model — top-" in text and "tok" in text and "<img" in text.replace("·", " ")


class _Tokenizer:
    def decode(self, ids: list[int]) -> str:
        return "<img src=x onerror=alert(1)>" if ids[0] % 2 else f" tok{ids[0]}"


def _compare_view():
    a = make_result(tokens=["Say", " <b>hi</b>", " and", " 日本", "語", " done", "."], n_strata=5, n_layers=2, n_heads=2, seed=1)
    b = dataclasses.replace(
        make_result(tokens=["<bos>", "Say <b>", "hi", "</b> and", " 日", "本", "", "語", " do", "ne."], seed=2, n_strata=5), text=a.text
    )
    view = compare([a, b], labels=["model A", "model B"])
    view.span = [4, 10]
    return view


def _live():
    res = with_measures(make_result(tokens=[*EVIL_TOKENS, " more"], n_strata=7, n_layers=3, n_heads=2))
    view = LiveTrace(res.model, res.tokens, total=len(res.roots), unit="steps")
    view.run(lambda on_step, stop: on_step(res, len(res.roots))).wait(60)
    return view


VIEWS = {
    "explorer": lambda r: DensityExplorer(r),
    "strip": lambda r: TokenStrip(r),
    "slider": lambda r: SubgraphSlider(r, metric="kl"),
    "preview": lambda r: PredictionPreview(r),
    "grid": lambda r: HeadGrid(r),
    "compare": lambda r: _compare_view(),
    "live": lambda r: _live(),
    "live-empty": lambda r: LiveTrace("m", ["a", " b"], total=2, unit="steps"),
}


@pytest.mark.parametrize("name", VIEWS)
def test_every_view_saves_svg_and_png(name, result, tmp_path):
    w = VIEWS[name](result)
    svg = w.save(tmp_path / f"{name}.svg")
    root = parse(svg.read_text(encoding="utf-8"))
    png = w.save(tmp_path / f"{name}.PNG")
    width, height, rows = png_pixels(png.read_bytes())
    assert (width, height) == tuple(PNG_SCALE * x for x in size(root))
    assert rows[0][:3] == b"\xff\xff\xff"  # the white background
    # the text is drawn: pixels darker than the background and the token colours exist in the PNG
    assert any(min(row[j : j + 3]) < 90 and max(row[j : j + 3]) < 90 for row in rows[::4] for j in range(0, len(row), 12))
    assert not list(tmp_path.glob(".*.tmp")), "atomic_write left a temp file"


def test_fonts_render_in_the_png(tmp_path):
    """vl-convert finds a sans and a monospace font: text changes pixels."""
    w = TokenStrip(make_result(tokens=["a", "b"], n_strata=3, n_layers=1, n_heads=1))
    plain = w.to_svg()
    no_text = re.sub(r"<text[^>]*>.*?</text>", "", plain)
    assert no_text != plain
    from density_nb.views.export import write_image

    a = png_pixels(write_image(plain, tmp_path / "a.png").read_bytes())[2]
    b = png_pixels(write_image(no_text, tmp_path / "b.png").read_bytes())[2]
    assert a != b


def test_bad_suffix_says_what_to_do(result, tmp_path):
    w = TokenStrip(result)
    for name in ("x.pdf", "x"):
        with pytest.raises(ValueError, match=r"name the file \.svg or \.png"):
            w.save(tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    path = w.save(tmp_path / "x.svg")
    w.root = int(result.roots[0])
    assert w.save(path).read_text(encoding="utf-8") == w.to_svg()  # an existing file is replaced


def test_snapshot_in_the_mimebundle(result):
    """Front ends with widgets show the live view; GitHub and nbviewer fall back to the static SVG."""
    for w in (DensityExplorer(result), _compare_view(), VIEWS["live-empty"](result)):
        data, _meta = w._repr_mimebundle_()
        assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == w.model_id
        assert data["image/svg+xml"] == w.to_svg()
        parse(data["image/svg+xml"])
    big = DensityExplorer(result)
    assert len(big._repr_mimebundle_()[0]["image/svg+xml"]) < 60_000


def test_common_module_carries_the_export_buttons():
    """Every view's ESM is its own file (a path, so anywidget's hot reload re-sends it when saved) and imports
    static/common.js, sent as the ``_common`` trait, which holds the export buttons."""
    w = DensityExplorer(make_result(n_tokens=4, n_strata=3))
    common = (STATIC / "common.js").read_text(encoding="utf-8")
    assert w._esm == (STATIC / "density.js").read_text(encoding="utf-8") and w._common == common
    assert w._esm.count("export default") == 1 and "export function addExportButtons(toolbarEl, viewEl, baseName)" in common
    assert "addExportButtons(" in w._esm and "loadCommon(model)" in w._esm
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "fetch(", "http://", "https://"):
        assert forbidden not in common.replace("http://www.w3.org/2000/svg", ""), forbidden
    assert common.startswith("// density_nb views")
