"""Execute the tutorial notebooks top to bottom on a fresh kernel, with parameters; rebuild docs/findings.md.

    python scripts/run_notebooks.py                          # class mode (shipped results + live runs), nothing written
    python scripts/run_notebooks.py --mode full --inplace    # the committed outputs: full settings, written back
    python scripts/run_notebooks.py 03_cross_model -p N_SHOW=5 --out /tmp/nb
    python scripts/run_notebooks.py --mode class --record-time   # measure class mode; record only the times (header check)
    python scripts/run_notebooks.py --results                # compute every full corpus run (resume-safe), write results/
    python scripts/run_notebooks.py --findings               # only rebuild docs/findings.md from the notebooks' outputs

Modes (``DENSITY_NB_MODE``): ``class`` reads the full-setting corpus results shipped in ``results/`` and
traces the teaching corpus live (each notebook a few minutes on 2 CPU cores); ``full`` computes every corpus
run into ``runs/`` (``--runs DIR`` / ``$DENSITY_NB_RUNS``; resumed, never recomputed) — hours on a CPU.

Parameters: every notebook has a cell tagged ``parameters``; ``-p NAME=VALUE`` (a Python literal) injects a
cell right after it, as papermill does. Outputs written back (``--inplace``) never show WikiText text
(``DENSITY_NB_CORPUS_TEXT=hide``): it is not ours to redistribute. Each finding notebook displays its verdict
table tagged in the output's metadata; ``--findings`` collects those tables into ``docs/findings.md``.
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
BINDER_URL = "https://mybinder.org/v2/gh/OWNER/REPO/HEAD?urlpath=lab/tree/notebooks/00_anatomy.ipynb"
sys.path.insert(0, str(ROOT))
from density_nb.teaching.tutorial import NOTEBOOKS as INFO  # noqa: E402
from density_nb.teaching.tutorial import RUN_SPECS, VERDICT_COLUMNS  # noqa: E402

TITLES = {key: info.title for key, info in INFO.items() if not key.startswith("00_")}
ENV_KEYS = ("DENSITY_NB_MODE", "DENSITY_NB_RUNS", "DENSITY_NB_CORPUS_TEXT", "DENSITY_NB_SMALL")


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
    mode: str = "class",
    runs: str | None = None,
    timeout: int = 1800,
    output: Path | None = None,
    kernel: str = "python3",
    hide_text: bool = False,
    small: bool = False,
) -> float:
    """Run one notebook on a fresh kernel (cwd: its folder) in ``mode``; raise on the first failing cell.
    Writes the executed notebook to ``output`` when given. Returns the wall time in seconds.
    (``small`` is the old name of class mode.)"""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    inject_parameters(nb, params or {})
    env_before = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ["DENSITY_NB_MODE"] = "class" if small else mode
    os.environ.pop("DENSITY_NB_SMALL", None)
    if runs:
        os.environ["DENSITY_NB_RUNS"] = str(Path(runs).resolve())
    if hide_text:
        os.environ["DENSITY_NB_CORPUS_TEXT"] = "hide"
    start = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        except Exception:
            if output is not None and output != path:  # keep what ran, to read the error in context (never over the source)
                nbformat.write(nb, output)
            raise
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    elapsed = time.perf_counter() - start
    nb.metadata["density_nb"] = timing(nb.metadata.get("density_nb"), "class" if small else mode, elapsed)
    if output is not None:
        nbformat.write(nb, output)
    return elapsed


def timing(before: dict | None, mode: str, seconds: float) -> dict:
    """A notebook's ``metadata["density_nb"]`` after an execution in ``mode``: that execution's ``mode`` and
    ``seconds``, and ``seconds_by_mode``, the latest recorded seconds of each mode (an execution in one mode
    keeps the other's). tests/test_teaching.py checks the headers' class times against them."""
    by_mode = dict((before or {}).get("seconds_by_mode", {}))
    if before and "mode" in before and "seconds" in before:
        by_mode.setdefault(before["mode"], before["seconds"])
    by_mode[mode] = round(seconds)
    return {"mode": mode, "seconds": round(seconds), "seconds_by_mode": by_mode}


def record_time(path: Path, mode: str, seconds: float) -> None:
    """Write only an execution's time into the committed notebook's metadata (``--record-time``): its
    outputs stay as they are (e.g. a class-mode time recorded beside the committed full-mode outputs)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    before = nb.metadata.get("density_nb", {})
    nb.metadata["density_nb"] = {**before, "seconds_by_mode": timing(before, mode, seconds)["seconds_by_mode"]}
    nbformat.write(nb, path)


def verdict_rows(path: Path) -> list[dict[str, str]]:
    """The verdict table a notebook displayed (tagged in its output metadata), or [] if it has none."""
    nb = json.loads(path.read_text())
    rows: list[dict[str, str]] = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("density_nb", {})
            if "verdicts" in meta:
                rows += meta["rows"]
    return rows


def write_findings() -> Path:
    """docs/findings.md from the verdict tables in the committed notebooks' outputs."""
    import pandas as pd

    from density_nb.views.charts import markdown_table

    lines = [
        "# Published findings: what reproduces on small models",
        "",
        "Generated by `python scripts/run_notebooks.py --findings` from the verdict tables in the committed "
        "notebooks' outputs; the notebooks hold the charts, the evidence and the verdict rules. They were executed "
        "in class mode, which reads the full-setting corpus runs shipped in `density_nb/results/` (written from the "
        "full-mode runs: the same numbers as `--mode full`).",
        "",
        f"[![Binder](https://mybinder.org/badge_logo.svg)]({BINDER_URL})",
        "(`OWNER/REPO` is a placeholder: replace it with the GitHub repository's owner and name.)",
        "",
        "**How these were run.** Data: WikiText-2 paragraphs cut after 40 words (passages whose prompt or next word "
        "contain `<unk>` dropped; the traced prediction is the next word, root = the prompt's last token), from two "
        "disjoint splits: the validation split (200 passages), where the findings were explored, and the test split "
        "(all 186 such passages), where each finding's primary measure is computed again. Models: "
        'SmolLM2-135M-Instruct (30 layers) and Gemma-3-270M (18 layers, post-norms `norms="live"` and '
        '`"frozen"`), from packaged GGUF weights. Grid: the published one (26 sizes + the full graph) everywhere. '
        "The published findings come from 7–14B models, so a finding that does not reproduce here is evidence about "
        "these small models, not a refutation. The runs:",
        "",
    ]
    lines += [f"- `{name}`: {spec.describe()}" for name, spec in RUN_SPECS.items()]
    lines += [
        "",
        "**Reading the tables.** Each finding has one primary measure and rule, declared in the notebook's code "
        "before its numbers are printed (the `primary measure and rule` column); its verdict on each split follows "
        "that rule: *not reproduced* (95 % CI inside the smallest effect of interest, tested first), else "
        "*reproduced* (CI on the claimed side of 0), *opposite* (CI on the other side), *inconclusive* (none of "
        "these). The finding's verdict is the one both splits give; where they "
        "differ it is *inconclusive* and says what each gave. Secondary checks are exploratory: reported, with no "
        "correction for their number, and they never change a verdict. Every CI says its bootstrap resamples and "
        "every permutation p its number of permutations. The primaries were chosen after the validation split's "
        "numbers had been seen (earlier versions of these notebooks reported them), so the test split is the "
        "replication that counts. Each primary was committed before its test-split run had been computed "
        "(git history: 01, 02, 04, 06 and 08 by 04:39 UTC on 2026-12-06, `smollm2_test` done at 04:46; 03 and 05 at "
        "04:49, `gemma3_test` and `smollm2_test_last10` done at 05:06 and 05:12), except 07's, committed at 04:49 "
        "with the rule its earlier version already used (ρ(entropy, density), margin 0.2).",
        "",
    ]
    for key, title in TITLES.items():
        path = NOTEBOOKS / f"{key}.ipynb"
        lines += [f"## {title}", "", f"Notebook: [`notebooks/{key}.ipynb`](../notebooks/{key}.ipynb)", ""]
        rows = verdict_rows(path) if path.exists() else []
        if rows:
            lines.append(markdown_table(pd.DataFrame(rows, columns=list(VERDICT_COLUMNS)).fillna("")))
        else:
            lines.append("*(no verdict table in the committed outputs yet: execute the notebook with `--mode full --inplace`)*")
        lines.append("")
    FINDINGS.parent.mkdir(parents=True, exist_ok=True)
    FINDINGS.write_text("\n".join(lines))
    return FINDINGS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all in notebooks/)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="override a parameter (Python literal)")
    parser.add_argument(
        "--mode", choices=("class", "full"), default=os.environ.get("DENSITY_NB_MODE", "class"), help="class (default) or full"
    )
    parser.add_argument("--small", action="store_true", help="(old name) the same as --mode class")
    parser.add_argument(
        "--runs", default=os.environ.get("DENSITY_NB_RUNS", str(ROOT / "runs")), help="cache folder for full-mode corpus runs"
    )
    parser.add_argument("--inplace", action="store_true", help="write the executed notebooks back (the committed outputs)")
    parser.add_argument("--out", default=None, help="folder for the executed notebooks (default: none written)")
    parser.add_argument(
        "--record-time", action="store_true", help="write only each execution's time into the notebook's metadata (not its outputs)"
    )
    parser.add_argument("--timeout", type=int, default=7200, help="seconds per cell")
    parser.add_argument("--findings", action="store_true", help="only rebuild docs/findings.md from the notebooks' outputs")
    parser.add_argument("--results", action="store_true", help="compute every full corpus run (resume-safe) and write results/")
    args = parser.parse_args(argv)
    if args.findings:
        print(write_findings())
        return 0
    if args.results:
        from density_nb.teaching import tutorial

        os.environ["DENSITY_NB_RUNS"] = str(Path(args.runs).resolve())
        return tutorial.main([])
    mode = "class" if args.small else args.mode
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
            seconds = execute(path, params, mode=mode, runs=args.runs, timeout=args.timeout, output=output, hide_text=output is not None)
            print(f"ok    {path.name}  {seconds:.0f} s ({mode} mode)", flush=True)
            if args.record_time and output != path:
                record_time(path, mode, seconds)
        except Exception as err:  # report and go on with the next notebook
            failed += 1
            print(f"FAIL  {path.name}: {type(err).__name__}: {str(err)[-2000:]}", flush=True)
    if args.inplace and mode == "full" and not failed:
        print(write_findings())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
