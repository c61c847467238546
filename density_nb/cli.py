"""The ``density-nb`` command: trace a text, run a corpus, list/prepare models, open the notebooks.

    density-nb trace "The cat sat on the" --model tiny-llama --roots last
    density-nb corpus --passages 100 --words 40 --model smollm2-135m --out runs/smollm2
    density-nb export r.parquet --out tables --format csv --subgraph 5:3
    density-nb view runs/smollm2 --out smollm2.html [--compare runs/gemma3]
    density-nb models [--prepare smollm2-135m]
    density-nb lab

Bad input (unknown model, untraceable text, bad grid, missing data, resume with other settings:
any ``DensityNBError``) prints one line to stderr and exits with status 2; anything else is a bug
and shows its traceback.

Each command imports what it needs when it runs: tracing brings torch and transformers (seconds to
import), which ``models``, ``view``, ``export`` and ``lab`` do not need.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from density_nb.config import BASELINES, BUILTIN_MODELS, DEFAULT_MODEL, GRIDS, NORMS, WEIGHTINGS, TraceConfig
from density_nb.errors import DensityNBError

PROG = "density-nb"
LAB_NOTEBOOK = "00_quickstart.ipynb"  # where `density-nb lab` opens: the tour, ending with the playground
_MODEL_HELP = f"built-in name ({', '.join(BUILTIN_MODELS)}), hub name or local path (default: {DEFAULT_MODEL})"


class _UsageError(DensityNBError):
    pass


def _grid(value: str) -> str | list[float]:
    if value in GRIDS:
        return value
    try:
        return [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid must be 'fast', 'paper' or comma-separated sizes in (0, 1], got {value!r}") from None


def _roots(value: str) -> str | list[int]:
    if value in ("all", "last"):
        return value
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"roots must be 'all', 'last' or comma-separated positions like 0,3,5, got {value!r}") from None


def _baselines(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    return names


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def _json_object(value: str) -> dict[str, Any]:
    """A JSON object given inline or as @FILE."""
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        obj = json.loads(text)
    except (OSError, ValueError) as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object or @FILE.json, got {value!r} ({err})") from None
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError(f'expected a JSON object like \'{{"pip": ["..."]}}\', got {value!r}')
    return obj


def _trace_settings(p: argparse.ArgumentParser, grid: str, refine: bool) -> None:
    """The arguments that make a ``TraceConfig`` (shared by trace and corpus)."""
    strata = {name: len(sizes) for name, sizes in GRIDS.items()}
    p.add_argument(
        "--grid",
        type=_grid,
        default=grid,
        help=f"'fast' ({strata['fast']} strata), 'paper' ({strata['paper']}) or comma-separated sizes in (0, 1] (default: {grid})",
    )
    p.add_argument(
        "--weighting", choices=WEIGHTINGS, default=TraceConfig.weighting, help=f"edge weights (default: {TraceConfig.weighting})"
    )
    p.add_argument(
        "--norms",
        choices=NORMS,
        default=TraceConfig.norms,
        help=f"post-norm scales: recomputed (published) or frozen at the full run's (default: {TraceConfig.norms})",
    )
    p.add_argument(
        "--baselines",
        type=_baselines,
        default=(),
        metavar="NAMES",
        help="also evaluate these, comma-separated: " + "; ".join(f"{name}: {what}" for name, what in BASELINES.items()),
    )
    p.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=refine,
        help="find the required sizes (TV <= 0.1 and 0.5, top-1, nucleus) by bisection between the grid's sizes: "
        f"more masked passes (default: {'on' if refine else 'off'})",
    )


def _config(args: argparse.Namespace) -> TraceConfig:
    return TraceConfig(grid=args.grid, weighting=args.weighting, norms=args.norms, baselines=args.baselines, refine=args.refine)


def _add_trace(sub: Any) -> None:
    """``density-nb trace``."""
    p = sub.add_parser(
        "trace",
        help="trace every next-token prediction of a text",
        description="Trace the density of the next-token predictions of TEXT and print one row per traced position.",
    )
    p.add_argument("text", metavar="TEXT", help="the text to trace")
    p.add_argument("--model", default=DEFAULT_MODEL, help=_MODEL_HELP)
    p.add_argument("--roots", type=_roots, default="all", help="'all', 'last' or positions like 0,3,5 (default: all)")
    _trace_settings(p, grid="fast", refine=False)
    p.add_argument("--out", metavar="FILE", help="save the result: FILE.parquet (data) or FILE.html (standalone explorer)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_corpus(sub: Any) -> None:
    """``density-nb corpus``."""
    c = sub.add_parser(
        "corpus",
        help="trace the next word of many WikiText passages",
        description="Trace the prediction of the word after the first W words of N WikiText-2 passages. Results go to DIR as parquet shards plus manifest.json; an interrupted run continues with --resume.",
    )
    c.add_argument(
        "--data",
        default="wikitext-2",
        metavar="wikitext-2|PATH",
        help="'wikitext-2' (found via $DENSITY_NB_DATA, ../shared/data or `datasets` online), a WikiText folder/file, or a prompt table: CSV/TSV/parquet with prompt,next_word columns or the published wikitext_40.txt (default: wikitext-2)",
    )
    c.add_argument("--split", choices=("test", "valid"), default="test", help="WikiText-2 split (default: test)")
    c.add_argument("--passages", type=_positive, default=100, metavar="N", help="number of passages (default: 100)")
    c.add_argument("--words", type=_positive, default=40, metavar="W", help="prompt length in words (default: 40)")
    c.add_argument("--model", default=DEFAULT_MODEL, help=_MODEL_HELP)
    _trace_settings(c, grid="paper", refine=True)
    c.add_argument("--out", required=True, metavar="DIR", help="output directory (shards + manifest.json)")
    c.add_argument("--resume", action="store_true", help="continue a run in DIR, skipping passages already done")
    c.add_argument(
        "--force", action="store_true", help="with --resume: continue a run made by other versions of density_nb, torch or transformers"
    )
    c.add_argument(
        "--backend", choices=("local", "ray"), default="local", help="run here, or on Ray workers (pip install 'density_nb[ray]')"
    )
    c.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="with --backend ray: the cluster to run on, HOST:PORT (as `ray start --head` prints it), ray://HOST:10001 or 'auto' "
        "(default: $RAY_ADDRESS; without either, a private Ray on this machine)",
    )
    c.add_argument(
        "--runtime-env",
        type=_json_object,
        metavar="JSON",
        help="with --backend ray: the workers' Ray runtime_env as JSON, or @FILE.json (default on a cluster: this density_nb "
        "and the model's packaged weights as py_modules; '{}': none)",
    )
    c.add_argument(
        "--gpus-per-worker",
        type=float,
        metavar="G",
        help="with --backend ray --device cuda: each worker's share of a GPU (default: 0.25 for the small built-in models, else 1)",
    )
    c.add_argument(
        "--workers",
        type=_positive,
        default=None,
        help="passages traced at once: threads sharing the model (local) or Ray actors (default: 2)",
    )
    c.add_argument("--threads", type=_positive, default=None, help="torch CPU threads per worker (default: torch's count / workers)")
    c.add_argument(
        "--batch", type=_positive, default=1, metavar="B", help="passages per masked pass, local backend; pays on GPU, not CPU (default: 1)"
    )
    c.add_argument(
        "--shard-size",
        type=_positive,
        default=1,
        metavar="S",
        help="passages per shard file (default: 1, every passage saved as it completes; more: fewer files at high rates)",
    )
    c.add_argument("--device", default=None, help="cpu, cuda, cuda:0, ... (default: the model's)")
    c.add_argument(
        "--drop-unk",
        choices=("paragraph", "passage"),
        default="paragraph",
        help="drop paragraphs with <unk> anywhere, or only passages with <unk> in prompt/next word",
    )
    c.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_models(sub: Any) -> None:
    """``density-nb models``."""
    m = sub.add_parser(
        "models",
        help="list the built-in models (and prepare one)",
        description="List the built-in models and whether each is installed and converted; --prepare converts and caches one.",
    )
    m.add_argument("--prepare", metavar="NAME", help="convert a packaged model's weights and cache them")


def _add_export(sub: Any) -> None:
    """``density-nb export``."""
    e = sub.add_parser(
        "export",
        help="write a result's or a run's tables (and subgraphs) to files",
        description="Write the summary and curves tables of SOURCE (a result .parquet file or a corpus run directory) "
        "to DIR as CSV or parquet (layout: docs/exports.md); with --subgraph, also strata as graph files (JSON and GraphML).",
    )
    e.add_argument("source", metavar="SOURCE", help="a result file (.parquet) or a corpus run directory")
    e.add_argument("--out", required=True, metavar="DIR", help="output directory")
    e.add_argument("--format", choices=("csv", "parquet"), default="csv", help="table format (default: csv)")
    e.add_argument(
        "--subgraph",
        action="append",
        default=[],
        metavar="POSITION:STRATUM",
        help="also write the stratum STRATUM (an index into the grid) of the prediction at token POSITION as "
        "subgraph-POSITION-STRATUM.json and .graphml (result files only; repeatable)",
    )
    e.add_argument("--model", default=None, help="the model the result was traced with (default: the name recorded in it)")


def _add_view(sub: Any) -> None:
    """``density-nb view``."""
    v = sub.add_parser(
        "view",
        help="write a corpus run's dashboard as an offline HTML page",
        description="Write the corpus dashboard of the run in DIR (distribution with brushing, density against a column "
        "with Spearman rho, mean TV curve, composition, head frequencies) as a standalone HTML page that works offline. "
        "The page has no kernel: a click on a passage shows its numbers; its explorer opens in a notebook (load_runs(DIR).widget()).",
    )
    v.add_argument(
        "run", metavar="DIR", help="a corpus run directory (density-nb corpus --out DIR), or results/NAME: a run shipped with the package"
    )
    v.add_argument("--out", metavar="FILE", default=None, help="the page to write (default: DIR/dashboard.html; NAME-dashboard.html here)")
    v.add_argument("--compare", metavar="DIR2", default=None, help="a run of another model on the same prompts: per-prompt scatter and rho")
    v.add_argument(
        "--counts", metavar="FILE", default=None, help="unigram counts (parquet with token_id,count) for the next-token frequency column"
    )
    v.add_argument("--no-text", action="store_true", help="numbers and ids only: leave the prompts' text out of the page")


def _add_lab(sub: Any) -> None:
    """``density-nb lab``."""
    sub.add_parser(
        "lab",
        help="open JupyterLab on the notebooks",
        description=f"Open JupyterLab on the project's notebooks/ folder, at {LAB_NOTEBOOK} (which ends with the playground: type a "
        "sentence, see its density). Extra arguments go to JupyterLab (e.g. density-nb lab --no-browser --port 8899).",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Computation density (s-Trace) of transformer language models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (_add_trace, _add_corpus, _add_models, _add_export, _add_view, _add_lab):
        add(sub)
    return parser


def _cmd_trace(args: argparse.Namespace) -> int:
    import pandas as pd

    from density_nb.models import cached_model
    from density_nb.tracing import trace

    if args.out and Path(args.out).suffix.lower() not in (".parquet", ".html", ".htm"):
        raise _UsageError(f"--out must end in .parquet or .html, got {args.out!r}")
    result = trace(args.model, args.text, args.roots, _config(args), progress=not args.quiet)
    s = result.summary()
    table = pd.DataFrame(
        {
            "position": s["position"],
            "token": [repr(t) for t in s["token_text"]],
            "next token": [repr(t) if t else "" for t in s["next_text"]],
            "density": s["density"].round(3),
            "s_top1": s["s_top1"],
            "entropy": s["entropy_full"].round(3),
            "top prediction": [repr(t) for t in s["top_text_full"]],
        }
    )
    print(f"{result.model}: {len(result.tokens)} tokens, {len(result.roots)} traced, grid of {len(result.grid)} strata")
    print(table.to_string(index=False))
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() in (".html", ".htm"):
            result.to_html(out, tokenizer=cached_model(args.model))  # loaded once by trace: names the top-k
        else:
            result.to_parquet(out)
        print(f"saved {out}")
    return 0


def _cmd_corpus(args: argparse.Namespace) -> int:
    from density_nb.corpus.runner import run_corpus

    data = None if args.data in ("wikitext-2", "wikitext2") else args.data
    try:
        summary = run_corpus(
            args.model,
            args.out,
            _config(args),
            data=data,
            split=args.split,
            n_passages=args.passages,
            words=args.words,
            resume=args.resume,
            force=args.force,
            backend=args.backend,
            device=args.device,
            workers=args.workers,
            threads=args.threads,
            batch=args.batch,
            shard_size=args.shard_size,
            ray_address=args.ray_address,
            runtime_env=args.runtime_env,
            gpus_per_worker=args.gpus_per_worker,
            drop_unk=args.drop_unk,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; completed passages are saved in {args.out}; continue with --resume", file=sys.stderr)
        return 130
    print(
        f"{len(summary)} passages in {args.out}: mean density {summary['density'].mean():.3f}, "
        f"median s_top1 {summary['s_top1'].median():.3g}, mean entropy {summary['entropy_full'].mean():.3f}"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from density_nb.exports import tables, write_tables

    for path in write_tables(tables(args.source), args.out, args.format):
        print(f"saved {path}")
    if args.subgraph:
        from density_nb.result import DensityResult

        if Path(args.source).is_dir():
            raise _UsageError("--subgraph needs a result file: a corpus run stores no per-passage results to derive strata from.")
        result = DensityResult.from_parquet(args.source)
        for spec in args.subgraph:
            try:
                position, stratum = (int(v) for v in spec.split(":"))
            except ValueError:
                raise _UsageError(f"--subgraph takes POSITION:STRATUM like 7:3, got {spec!r}") from None
            if not 0 <= stratum < len(result.grid):
                raise _UsageError(f"stratum {stratum} is outside the result's grid (0..{len(result.grid) - 1})")
            graph = result.subgraph(args.model or result.model, position, stratum)
            stem = Path(args.out) / f"subgraph-{position}-{stratum}"
            print(f"saved {graph.to_json(stem.with_suffix('.json'))} and {graph.to_graphml(stem.with_suffix('.graphml'))}")
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    import pandas as pd

    from density_nb.corpus.runs import load_runs

    folder = Path(args.run)  # a run's folder, or a shipped run (results/<name>): its page goes here, not into the package
    out = Path(args.out) if args.out else folder / "dashboard.html" if folder.is_dir() else Path(f"{folder.name}-dashboard.html")
    if out.suffix.lower() not in (".html", ".htm"):
        raise _UsageError(f"--out must end in .html, got {str(out)!r}")
    counts = None
    if args.counts:
        table = pd.read_parquet(args.counts)
        if not {"token_id", "count"} <= set(table.columns):
            raise _UsageError(
                f"--counts needs a parquet file with token_id and count columns; {args.counts!r} has {', '.join(table.columns)}"
            )
        counts = pd.Series(table["count"].to_numpy(), index=table["token_id"].to_numpy())
    run = load_runs(args.run)
    other = load_runs(args.compare) if args.compare else None
    print(f"saved {run.to_html(out, compare=other, counts=counts, text=not args.no_text)}")
    return 0


def _model_rows() -> list[tuple[str, str]]:
    from density_nb import models

    rows = []
    packaged: dict[str, Any] = getattr(models, "_PACKAGED", {})
    for name in models.BUILTIN_MODELS:
        if name.startswith("tiny-"):
            rows.append((name, "built in (random weights, for tests; nothing to install)"))
            continue
        info = packaged.get(name)
        module = info.package.replace("-", "_") if info else None
        installed = module is not None and importlib.util.find_spec(module) is not None
        if not installed:
            rows.append((name, f"not installed: {info.install if info else 'see the README'}"))
        elif models.is_cached(name):
            rows.append((name, "installed, converted (loads from the cache, no conversion)"))
        else:
            rows.append((name, f"installed, not converted yet (first load converts it; or: {PROG} models --prepare {name})"))
    return rows


def _cmd_models(args: argparse.Namespace) -> int:
    from density_nb.models import cache_dir, prepare

    if args.prepare:
        path = prepare(args.prepare)
        print(f"{args.prepare}: cached in {path}")
        return 0
    width = max(len(name) for name, _ in _model_rows())
    for name, status in _model_rows():
        print(f"{name:<{width}}  {status}")
    print(f"cache: {cache_dir()}  (set DENSITY_NB_CACHE to move it)")
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("jupyterlab") is None:
        raise _UsageError("JupyterLab is not installed: pip install jupyterlab (then run `density-nb lab` again)")
    root = Path(__file__).resolve().parent.parent
    notebooks = root / "notebooks"
    if not notebooks.is_dir():
        notebooks = Path.cwd() / "notebooks"
    if not notebooks.is_dir():
        raise _UsageError(f"No notebooks/ folder found in {root} or the current directory; run from the repository root.")
    extra = [a for a in args.extra if a != "--"]
    first = notebooks / LAB_NOTEBOOK  # JupyterLab serves its folder and opens it
    return subprocess.call([sys.executable, "-m", "jupyterlab", str(first if first.is_file() else notebooks), *extra])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``density-nb``: runs the command and exits with its status (2 on bad input)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    commands = {
        "trace": _cmd_trace,
        "corpus": _cmd_corpus,
        "export": _cmd_export,
        "view": _cmd_view,
        "models": _cmd_models,
        "lab": _cmd_lab,
    }
    try:
        code = commands[args.command](args)
    except DensityNBError as err:
        message = " ".join(str(err).split())  # one line
        print(f"{PROG}: error: {message}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
