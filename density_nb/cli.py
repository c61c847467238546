"""The ``density-nb`` command: trace a text, run a corpus, list/prepare models, open the notebooks.

    density-nb trace "The cat sat on the" --model tiny-llama --roots last
    density-nb corpus --passages 100 --words 40 --model smollm2-135m --out runs/smollm2
    density-nb models [--prepare smollm2-135m]
    density-nb lab

Bad input (unknown model, untraceable text, bad grid, missing data, resume with other settings)
prints one line to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

PROG = "density-nb"


class _UsageError(ValueError):
    pass


def _grid(value: str) -> str | list[float]:
    if value in ("fast", "paper"):
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


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def _parser() -> argparse.ArgumentParser:
    from density_nb.models import BUILTIN_MODELS, DEFAULT_MODEL

    models = ", ".join(BUILTIN_MODELS)
    parser = argparse.ArgumentParser(prog=PROG, description="Computation density (s-Trace) of transformer language models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("trace", help="trace every next-token prediction of a text", description="Trace the density of the next-token predictions of TEXT and print one row per traced position.")
    p.add_argument("text", metavar="TEXT", help="the text to trace")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"built-in name ({models}), hub name or local path (default: {DEFAULT_MODEL})")
    p.add_argument("--grid", type=_grid, default="fast", help="'fast' (9 strata), 'paper' (27) or comma-separated sizes in (0, 1] (default: fast)")
    p.add_argument("--roots", type=_roots, default="all", help="'all', 'last' or positions like 0,3,5 (default: all)")
    p.add_argument("--weighting", choices=("l1", "ifr", "random"), default="l1", help="edge weights (default: l1)")
    p.add_argument("--norms", choices=("live", "frozen"), default="live", help="post-norm scales: recomputed (published) or frozen at the full run's (default: live)")
    p.add_argument("--random-baseline", action="store_true", help="also evaluate random connected subgraphs of the same sizes")
    p.add_argument("--out", metavar="FILE", help="save the result: FILE.parquet (data) or FILE.html (standalone explorer)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    c = sub.add_parser("corpus", help="trace the next word of many WikiText passages", description="Trace the prediction of the word after the first W words of N WikiText-2 passages. Results go to DIR as parquet shards plus manifest.json; an interrupted run continues with --resume.")
    c.add_argument("--data", default="wikitext-2", metavar="wikitext-2|PATH", help="'wikitext-2' (found via $DENSITY_NB_DATA, ../shared/data or `datasets` online), a WikiText folder/file, or a prompt table: CSV/TSV/parquet with prompt,next_word columns or the published wikitext_40.txt (default: wikitext-2)")
    c.add_argument("--split", choices=("test", "valid"), default="test", help="WikiText-2 split (default: test)")
    c.add_argument("--passages", type=_positive, default=100, metavar="N", help="number of passages (default: 100)")
    c.add_argument("--words", type=_positive, default=40, metavar="W", help="prompt length in words (default: 40)")
    c.add_argument("--model", default=DEFAULT_MODEL, help=f"built-in name ({models}), hub name or local path (default: {DEFAULT_MODEL})")
    c.add_argument("--grid", type=_grid, default="paper", help="'paper' (27 strata), 'fast' (9) or comma-separated sizes (default: paper)")
    c.add_argument("--weighting", choices=("l1", "ifr", "random"), default="l1", help="edge weights (default: l1)")
    c.add_argument("--norms", choices=("live", "frozen"), default="live", help="post-norm scales: recomputed (published) or frozen at the full run's (default: live)")
    c.add_argument("--random-baseline", action="store_true", help="also evaluate random connected subgraphs of the same sizes")
    c.add_argument("--out", required=True, metavar="DIR", help="output directory (shards + manifest.json)")
    c.add_argument("--resume", action="store_true", help="continue a run in DIR, skipping passages already done")
    c.add_argument("--backend", choices=("local", "ray"), default="local", help="run here, or on Ray workers (pip install 'density_nb[ray]')")
    c.add_argument("--workers", type=_positive, default=None, help="passages traced at once: threads sharing the model (local) or Ray actors (default: 2)")
    c.add_argument("--threads", type=_positive, default=None, help="torch CPU threads per worker (default: torch's count / workers)")
    c.add_argument("--batch", type=_positive, default=1, metavar="B", help="passages per masked pass, local backend; pays on GPU, not CPU (default: 1)")
    c.add_argument("--device", default=None, help="cpu, cuda, cuda:0, ... (default: the model's)")
    c.add_argument("--drop-unk", choices=("paragraph", "passage"), default="paragraph", help="drop paragraphs with <unk> anywhere, or only passages with <unk> in prompt/next word")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    m = sub.add_parser("models", help="list the built-in models (and prepare one)", description="List the built-in models and whether each is installed and converted; --prepare converts and caches one.")
    m.add_argument("--prepare", metavar="NAME", help="convert a packaged model's weights and cache them")

    lab = sub.add_parser("lab", help="open JupyterLab on the notebooks", description="Open JupyterLab on the project's notebooks/ folder. Extra arguments go to JupyterLab.")
    lab.add_argument("lab_args", nargs=argparse.REMAINDER, help="arguments passed on to jupyter lab (e.g. --no-browser)")
    return parser


def _cmd_trace(args: argparse.Namespace) -> int:
    import pandas as pd

    from density_nb.trace import trace

    if args.out and Path(args.out).suffix.lower() not in (".parquet", ".html", ".htm"):
        raise _UsageError(f"--out must end in .parquet or .html, got {args.out!r}")
    result = trace(args.model, args.text, roots=args.roots, grid=args.grid, weighting=args.weighting, norms=args.norms, random_baseline=args.random_baseline, progress=not args.quiet)
    s = result.summary()
    table = pd.DataFrame(
        {
            "position": s["root"],
            "token": [repr(t) for t in s["context_token"]],
            "next token": [repr(t) if t else "" for t in s["next_token"]],
            "density": s["density"].round(3),
            "s_top1": s["s_top1"],
            "entropy": s["entropy"].round(3),
            "top prediction": [repr(t) for t in s["top_prediction"]],
        }
    )
    print(f"{result.model}: {len(result.tokens)} tokens, {len(result.roots)} traced, grid of {len(result.grid)} strata")
    print(table.to_string(index=False))
    if args.out:
        out = Path(args.out)
        if out.suffix.lower() in (".html", ".htm"):
            result.to_html(out)
        else:
            result.to_parquet(out)
        print(f"saved {out}")
    return 0


def _cmd_corpus(args: argparse.Namespace) -> int:
    from density_nb.corpus import run_corpus

    data = None if args.data in ("wikitext-2", "wikitext2") else args.data
    try:
        summary = run_corpus(
            args.model, args.out, data=data, split=args.split, n_passages=args.passages, words=args.words, grid=args.grid,
            weighting=args.weighting, random_baseline=args.random_baseline, resume=args.resume, backend=args.backend,
            device=args.device, workers=args.workers, threads=args.threads, batch=args.batch, norms=args.norms, drop_unk=args.drop_unk, progress=not args.quiet,
        )
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; completed passages are saved in {args.out}; continue with --resume", file=sys.stderr)
        return 130
    print(f"{len(summary)} passages in {args.out}: mean density {summary['density'].mean():.3f}, "
          f"median s_top1 {summary['s_top1'].median():.3g}, mean entropy {summary['entropy'].mean():.3f}")
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
    extra = [a for a in args.lab_args if a != "--"]
    return subprocess.call([sys.executable, "-m", "jupyterlab", str(notebooks), *extra])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``density-nb``: runs the command and exits with its status (2 on bad input)."""
    args = _parser().parse_args(argv)
    from density_nb.models import ModelError
    from density_nb.trace import TraceInputError

    commands = {"trace": _cmd_trace, "corpus": _cmd_corpus, "models": _cmd_models, "lab": _cmd_lab}
    try:
        code = commands[args.command](args)
    except (ModelError, TraceInputError, ValueError, FileNotFoundError) as err:
        message = " ".join(str(err).split())  # one line
        print(f"{PROG}: error: {message}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
