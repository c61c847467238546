"""Execute the tutorial notebooks top to bottom on a fresh kernel, with parameters.

    python scripts/run_notebooks.py                      # full settings, outputs written back (slow)
    python scripts/run_notebooks.py --small              # DENSITY_NB_SMALL=1: tiny settings (CI)
    python scripts/run_notebooks.py 03_cross_model -p N_PASSAGES_B=120 --inplace
    python scripts/run_notebooks.py --findings           # only rebuild docs/findings.md from runs/claims

Parameters: every notebook has a cell tagged ``parameters``; ``-p NAME=VALUE`` (a Python literal)
injects a cell right after it, as papermill does. Corpus runs are cached under ``runs/`` (or
``--runs DIR`` / ``$DENSITY_NB_RUNS``), so a second execution with the same settings only loads them.
Each notebook writes its claim table to ``<runs>/claims/``; ``--findings`` collects them into
``docs/findings.md``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FINDINGS = ROOT / "docs" / "findings.md"
BINDER_URL = "https://mybinder.org/v2/gh/OWNER/REPO/HEAD?urlpath=lab/tree/notebooks/00_quickstart.ipynb"
TITLES = {
    "01_dense_vs_random": "Findings 1 and 9: dense computation; traced vs random subgraphs",
    "02_dynamic_density": "Finding 2: density varies across inputs",
    "03_cross_model": "Finding 3: correlation across models",
    "04_rarity": "Finding 4: rarer predicted tokens",
    "05_context_length": "Finding 5: longer context",
    "06_two_phases": "Finding 6: two phases",
    "07_entropy": "Finding 7: density and uncertainty",
    "08_unigram": "Finding 8: sparse subgraphs and unigram frequency",
}


def find_notebooks(names: list[str]) -> list[Path]:
    """Notebook paths from names (``03_cross_model``, ``03_cross_model.ipynb`` or a path); all if empty."""
    if not names:
        return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    out = []
    for name in names:
        path = Path(name)
        if not path.suffix:
            path = path.with_suffix(".ipynb")
        if not path.exists():
            path = NOTEBOOKS / path.name
        if not path.exists():
            raise SystemExit(f"No notebook {name!r} (looked in {NOTEBOOKS}).")
        out.append(path)
    return out


def inject_parameters(nb, params: dict[str, object]) -> None:
    """Insert a cell setting ``params`` right after the cell tagged ``parameters`` (papermill style)."""
    import nbformat

    if not params:
        return
    index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if index is None:
        raise SystemExit("The notebook has no cell tagged 'parameters'.")
    source = "# Injected parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, cell)


def execute(
    path: Path,
    params: dict[str, object] | None = None,
    *,
    small: bool = False,
    runs: str | None = None,
    timeout: int = 1800,
    output: Path | None = None,
    kernel: str = "python3",
) -> float:
    """Run one notebook on a fresh kernel (cwd: its folder); raise on the first failing cell.
    Writes the executed notebook to ``output`` when given. Returns the wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, params or {})
    env_before = {k: os.environ.get(k) for k in ("DENSITY_NB_SMALL", "DENSITY_NB_RUNS")}
    os.environ["DENSITY_NB_SMALL"] = "1" if small else "0"
    if runs:
        os.environ["DENSITY_NB_RUNS"] = str(Path(runs).resolve())
    start = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    elapsed = time.perf_counter() - start
    if output is not None:
        nbformat.write(nb, output)
    return elapsed


def write_findings(runs: Path) -> Path:
    """Collect ``<runs>/claims/*.json`` (written by the notebooks) into docs/findings.md."""
    claims = runs / "claims"
    lines = [
        "# Published findings: what reproduces on small models",
        "",
        "Each table comes from the notebook named above it, executed with its full settings "
        "(`python scripts/run_notebooks.py --inplace`); the notebooks hold the charts and the evidence.",
        "The verdict rules were fixed before the numbers were seen; they are stated in each notebook.",
        "",
        "Try it without installing anything:",
        "",
        f"[![Binder](https://mybinder.org/badge_logo.svg)]({BINDER_URL})",
        "",
        "(`OWNER/REPO` is a placeholder: replace it with the GitHub repository's owner and name.)",
        "",
        "**How these were run.** Data: the WikiText-2 validation split as shipped in `shared/data` "
        "(paragraphs cut after 40 words, passages whose prompt or next word contain `<unk>` dropped; "
        "the traced prediction is the next word, root = the last prompt token). Models: SmolLM2-135M-Instruct "
        '(30 layers) and Gemma-3-270M (18 layers, `norms="live"`), both small models from packaged '
        "GGUF weights: the published findings come from 7–14B models, so a finding that does not reproduce "
        "here is evidence about these small models, not a refutation. Grids: `fast` (8 sizes + the full "
        "graph) for the 200-passage statistics, `paper` (26 sizes + full) for the 40-passage random-baseline "
        "curves. N, model and grid are given in every row.",
        "",
    ]

    from density_nb.charts import claims_table, markdown_table

    for key, title in TITLES.items():
        path = claims / f"{key}.json"
        lines += [f"## {title}", "", f"Notebook: [`notebooks/{key}.ipynb`](../notebooks/{key}.ipynb)", ""]
        if path.exists():
            lines.append(markdown_table(claims_table(json.loads(path.read_text()))))
        else:
            lines.append("*(not run yet)*")
        lines.append("")
    FINDINGS.parent.mkdir(parents=True, exist_ok=True)
    FINDINGS.write_text("\n".join(lines))
    return FINDINGS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all in notebooks/)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="override a parameter (Python literal)")
    parser.add_argument("--small", action="store_true", help="tiny settings (DENSITY_NB_SMALL=1), as the tests use")
    parser.add_argument("--runs", default=os.environ.get("DENSITY_NB_RUNS", str(ROOT / "runs")), help="cache folder for corpus runs")
    parser.add_argument("--inplace", action="store_true", help="write the executed notebooks back (the committed outputs)")
    parser.add_argument("--out", default=None, help="folder for the executed notebooks (default: none written)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--findings", action="store_true", help="only rebuild docs/findings.md from <runs>/claims")
    args = parser.parse_args(argv)
    if args.findings:
        print(write_findings(Path(args.runs)))
        return 0
    params = {}
    for item in args.param:
        name, _, value = item.partition("=")
        try:
            params[name.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name.strip()] = value
    failed = 0
    for path in find_notebooks(args.notebooks):
        output = path if args.inplace else (Path(args.out) / path.name if args.out else None)
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
        try:
            seconds = execute(path, params, small=args.small, runs=args.runs, timeout=args.timeout, output=output)
            print(f"ok    {path.name}  {seconds:.0f} s", flush=True)
        except Exception as err:  # report and go on with the next notebook
            failed += 1
            print(f"FAIL  {path.name}: {type(err).__name__}: {str(err)[-2000:]}", flush=True)
    if args.inplace and not args.small and not failed:
        print(write_findings(Path(args.runs)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
