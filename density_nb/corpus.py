"""Corpus passages (WikiText-2), unigram counts, and corpus-scale density runs (local or Ray).

Where the corpus lives is configuration: an explicit path, ``$DENSITY_NB_DATA``, a ``shared/data``
folder beside or above the repository, else ``datasets`` online (``Salesforce/wikitext``).

Passages follow the papers' ``wikitext_40`` recipe: a WikiText paragraph (one line of the file),
detokenised, cut after its first ``words`` words; the word after the cut is the prediction traced.
"""

from __future__ import annotations

import collections
import csv
import concurrent.futures
import functools
import hashlib
import json
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from density_nb.models import BUILTIN_MODELS, load_model, model_name
from density_nb.stratify import make_grid
from density_nb.result import DensityResult
from density_nb.trace import tokenize, trace_many

DATA_ENV = "DENSITY_NB_DATA"
SPLITS = ("test", "valid")
_HF_SPLIT = {"test": "test", "valid": "validation"}
_HOW_TO = (
    "Provide WikiText-2 in one of these ways: pass a path (data=... / --data PATH: a folder with "
    "wikitext-2/{test,valid}.txt or {test,valid}.txt, or the .txt file itself), set the environment "
    f"variable {DATA_ENV} to such a folder, or run online with `pip install datasets` (loads "
    "Salesforce/wikitext from the Hugging Face hub)."
)


class DataError(ValueError):
    """The corpus could not be found or read; the message says how to provide it."""


# ---- finding the data ------------------------------------------------------------------------------
def _search_upward(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        for candidate in (folder / "shared" / "data", folder.parent / "shared" / "data"):
            if candidate.is_dir():
                return candidate
    return None


def find_data(data: str | os.PathLike[str] | None = None) -> Path | None:
    """The corpus location: ``data`` if given, else ``$DENSITY_NB_DATA``, else a ``shared/data`` folder
    found by searching upward from this package and from the working directory; None if none.

    An explicit path or environment variable that does not exist raises ``DataError``.
    """
    if data is not None and str(data) not in ("wikitext-2", "wikitext2"):
        path = Path(data).expanduser()
        if not path.exists():
            raise DataError(f"Data path {str(path)!r} does not exist. {_HOW_TO}")
        return path
    env = os.environ.get(DATA_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.exists():
            raise DataError(f"${DATA_ENV} points to {env!r}, which does not exist. {_HOW_TO}")
        return path
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        found = _search_upward(start)
        if found is not None:
            return found
    return None


def _split_file(root: Path, split: str) -> Path:
    """The ``{split}.txt`` file under a data location (file, wikitext-2 folder or data folder)."""
    if root.is_file():
        return root
    for candidate in (root / "wikitext-2" / f"{split}.txt", root / f"{split}.txt",
                      root / "wikitext-2" / f"wiki.{split}.tokens", root / f"wiki.{split}.tokens"):
        if candidate.is_file():
            return candidate
    raise DataError(f"No WikiText-2 {split!r} split under {str(root)!r} (looked for wikitext-2/{split}.txt). {_HOW_TO}")


# ---- detokenisation --------------------------------------------------------------------------------
_NO_SPACE_BEFORE = {",", ".", ";", ":", "!", "?", ")", "]", "}", "%", "...", "'", "’", "”"}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "£", "“", "¥", "#"}
_JOINERS = {"@-@": "-", "@,@": ",", "@.@": "."}
_CONTRACTIONS = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "n't", "'S"}


def detokenize(line: str) -> str:
    """WikiText's tokenized text back to ordinary prose.

    ``" @-@ "`` -> ``-``, ``" @,@ "`` -> ``,``, ``" @.@ "`` -> ``.``; punctuation, ``'s``-style
    contractions and closing brackets attach to the previous word, opening brackets to the next;
    straight double quotes alternate opening/closing within the line.
    """
    out: list[str] = []
    glue_next = False  # the previous token asked for no space after it
    quote_open = False
    for tok in line.split():
        if tok in _JOINERS:
            out.append(_JOINERS[tok])
            glue_next = True
            continue
        space = bool(out) and not glue_next
        glue_next = False
        if tok == '"':
            if quote_open:
                space = False
            else:
                glue_next = True
            quote_open = not quote_open
        elif tok in _NO_SPACE_BEFORE or tok in _CONTRACTIONS:
            space = False
        if tok in _NO_SPACE_AFTER:
            glue_next = True
        out.append((" " if space else "") + tok)
    return "".join(out)


_HEADING = re.compile(r"^\s*=(\s*=)*\s.*\s=(\s*=)*\s*$")


def _paragraphs(lines: Iterable[str]) -> list[tuple[int, str]]:
    """``(line number, detokenised paragraph)`` for every non-empty, non-heading line."""
    out = []
    for i, line in enumerate(lines):
        if not line.strip() or _HEADING.match(line):
            continue
        out.append((i, detokenize(line)))
    return out


@functools.lru_cache(maxsize=8)
def _file_paragraphs(path: str, mtime: float, size: int) -> tuple[tuple[int, str], ...]:
    with open(path, encoding="utf-8") as f:
        return tuple(_paragraphs(f.read().split("\n")))


def _hf_lines(split: str) -> list[str]:
    try:
        import datasets
    except ImportError as err:
        raise DataError(f"No local WikiText-2 data found and `datasets` is not installed. {_HOW_TO}") from err
    try:
        ds = datasets.load_dataset("Salesforce/wikitext", "wikitext-2-raw-v1", split=_HF_SPLIT[split])
    except Exception as err:  # offline, hub down, ...
        raise DataError(f"No local WikiText-2 data found and loading it with `datasets` failed ({err}). {_HOW_TO}") from err
    return [row.rstrip("\n") for row in ds["text"]]


def prompt_table(data: str | os.PathLike[str] | None) -> Path | None:
    """``data`` as a prompt table file (see ``read_prompts``), or None when it is not one."""
    if data is None or str(data) in ("wikitext-2", "wikitext2"):
        return None
    path = Path(data).expanduser()
    if not path.is_file():
        return None
    if path.suffix.lower() in (".csv", ".tsv", ".parquet"):
        return path
    with path.open(encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    return path if "\t" in first else None  # WikiText lines have no tabs; the published prompt files do


def read_prompts(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Prompts from a table: ``passage_id``, ``prompt``, ``next_word``, ``text`` (= prompt + next word).

    A CSV, TSV or parquet file with columns ``prompt`` and ``next_word`` (``passage_id`` optional,
    else the row number), or the published code's header-less TSV (``wikitext_40.txt``: prompt,
    last word, its POS, next word, its POS, " next word").
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        df = pd.read_parquet(path)
    else:
        sep = "," if path.suffix.lower() == ".csv" else "\t"
        read = functools.partial(pd.read_csv, path, sep=sep, dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL)
        df = read()
        if "prompt" not in df.columns and sep == "\t":  # the published format: no header
            raw = read(header=None)
            if raw.shape[1] < 4:
                raise DataError(f"{str(path)!r}: a header-less TSV needs at least 4 columns (prompt, last word, POS, next word); found {raw.shape[1]}.")
            df = pd.DataFrame({"prompt": raw[0], "next_word": raw[3]})
    missing = [c for c in ("prompt", "next_word") if c not in df.columns]
    if missing:
        raise DataError(f"{str(path)!r} has no column {' or '.join(map(repr, missing))}: give a table with columns prompt and next_word (passage_id optional).")
    df = df.astype({"prompt": str, "next_word": str})
    df["prompt"], df["next_word"] = df["prompt"].str.strip(), df["next_word"].str.strip()
    empty = df.index[(df["prompt"] == "") | (df["next_word"] == "")].tolist()
    if empty:
        raise DataError(f"{str(path)!r}: rows {empty[:10]} have an empty prompt or next word.")
    ids = df["passage_id"].astype(np.int64) if "passage_id" in df.columns else pd.Series(np.arange(len(df), dtype=np.int64))
    if ids.duplicated().any():
        raise DataError(f"{str(path)!r}: passage_id values repeat ({ids[ids.duplicated()].tolist()[:10]}); each row needs its own id.")
    return pd.DataFrame({"passage_id": ids.to_numpy(), "prompt": df["prompt"].to_numpy(), "next_word": df["next_word"].to_numpy(),
                         "text": (df["prompt"] + " " + df["next_word"]).to_numpy()})  # fmt: skip


def data_source(data: str | os.PathLike[str] | None = None, split: str = "test") -> str:
    """A fingerprint of where passages come from: ``sha256:<hex of the split file>`` or the hub name."""
    table = prompt_table(data)
    if table is not None:
        return "sha256:" + hashlib.sha256(table.read_bytes()).hexdigest()
    root = find_data(data)
    if root is None:
        return f"hf:Salesforce/wikitext/wikitext-2-raw-v1/{_HF_SPLIT[split]}"
    path = _split_file(root, split)
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def passages(
    n: int | None = None,
    words: int = 40,
    split: str = "test",
    data: str | os.PathLike[str] | None = None,
    *,
    drop_unk: str = "paragraph",
) -> pd.DataFrame:
    """The first ``n`` (all if None) WikiText-2 passages of more than ``words`` words, in file order.

    Columns: ``passage_id`` (the paragraph's 0-based line number in the split file: stable across
    ``n`` and ``words``, so the same paragraph cut at 10 and 50 words shares its id), ``prompt``
    (the first ``words`` words), ``next_word`` (the word right after the cut) and ``text`` (the
    whole detokenised paragraph). Headings are dropped, and so are paragraphs containing ``<unk>``
    (``drop_unk="paragraph"``, the default; the local test split then has only ~39 passages of 40
    words) or only passages whose prompt or next word contains it (``drop_unk="passage"``: ~186).
    Data: see ``find_data``; with no local copy, ``datasets`` loads ``wikitext-2-raw-v1`` online
    (its paragraphs have no ``<unk>``, so it yields more passages than the local tokenized files).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}.")
    if int(words) < 1:
        raise ValueError(f"words must be at least 1, got {words}.")
    if drop_unk not in ("paragraph", "passage"):
        raise ValueError(f"drop_unk must be 'paragraph' or 'passage', got {drop_unk!r}.")
    if n is not None and int(n) < 0:
        raise ValueError(f"n must be non-negative or None, got {n}.")
    root = find_data(data)
    if root is not None:
        path = _split_file(root, split)
        stat = path.stat()
        paras: Sequence[tuple[int, str]] = _file_paragraphs(str(path), stat.st_mtime, stat.st_size)
    else:
        paras = _paragraphs(_hf_lines(split))
    rows: dict[str, list[Any]] = {"passage_id": [], "prompt": [], "next_word": [], "text": []}
    for line_no, text in paras:
        if n is not None and len(rows["passage_id"]) >= n:
            break
        if drop_unk == "paragraph" and "<unk>" in text:
            continue
        tokens = text.split()
        if len(tokens) <= words or (drop_unk == "passage" and any("<unk>" in t for t in tokens[: words + 1])):
            continue
        rows["passage_id"].append(line_no)
        rows["prompt"].append(" ".join(tokens[:words]))
        rows["next_word"].append(tokens[words])
        rows["text"].append(text)
    df = pd.DataFrame(rows)
    df["passage_id"] = df["passage_id"].astype(np.int64)
    return df


# ---- unigram frequencies ---------------------------------------------------------------------------
def unigram_counts(tokenizer: Any, texts: Iterable[str]) -> pd.Series:
    """Token id -> count of the model's own tokenization of ``texts`` (no special tokens added).

    ``tokenizer``: a Hugging Face tokenizer, or a bridge from ``load_model`` (its own tokenizer is
    used). As in the papers, the counts come from the evaluation corpus itself.
    """
    if hasattr(tokenizer, "original_model"):
        from density_nb.models import hf_tokenizer

        tokenizer = hf_tokenizer(tokenizer)
    texts = list(texts)
    counts: dict[int, int] = {}
    if texts:
        for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
            for i in ids:
                counts[i] = counts.get(i, 0) + 1
    series = pd.Series(counts, dtype=np.int64, name="count").sort_index()
    series.index = series.index.astype(np.int64)
    series.index.name = "token_id"
    return series


def token_frequency(counts: pd.Series, ids: Any) -> np.ndarray:
    """Normalised frequency (count / total count) of each token id in ``ids``; 0 for unseen ids."""
    ids_arr = np.asarray(ids, dtype=np.int64)
    total = float(counts.sum())
    if total == 0:
        return np.zeros(ids_arr.shape)
    freq = counts.reindex(ids_arr.ravel(), fill_value=0).to_numpy(dtype=np.float64) / total
    return freq.reshape(ids_arr.shape)


# ---- corpus runs ---------------------------------------------------------------------------------
RUN_FORMAT = 1
MANIFEST = "manifest.json"
SHARDS = "shards"
BACKENDS = ("local", "ray")
_MAX_ATTEMPTS = 3  # per passage, across worker deaths (Ray backend)


class CorpusError(ValueError):
    """A corpus run cannot start or continue (e.g. resume with other settings); the message says why."""


@dataclass
class CorpusRun:
    """What ``load_runs`` returns: unpacks as ``summary, curves = load_runs(out_dir)``.

    ``summary``: one row per passage (``passage_id``, ``model``, ``words``, ``prompt``,
    ``next_word``, ``aligned``, ``n_tokens``, ``next_token_id``, ``top_token_id`` and the columns of
    ``DensityResult.summary()``: ``density``, ``auc_tv``, ``auc_kl``, ``s_top1``, ``entropy``,
    ``loss``, ...), sorted by ``passage_id``.
    ``curves``: one row per (passage, stratum): ``passage_id``, ``model``, ``words`` and the columns of
    ``DensityResult.curves()`` (``s``, ``s_actual``, ``tv``, ``kl``, ``top1``, ``nu``, ...), plus
    ``edges_attn``, ``edges_mlp``, ``edges_res`` and ``layer_edges`` (edges per layer, a list).
    ``manifest``: the run's settings and completed shards.
    """

    summary: pd.DataFrame
    curves: pd.DataFrame
    manifest: dict[str, Any]

    def __iter__(self) -> Iterator[pd.DataFrame]:
        yield self.summary
        yield self.curves


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write to a temp file beside ``path``, then rename: a reader never sees a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_json(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CorpusError(f"{path} is not valid JSON ({err}); it was not written by density_nb.") from err
    if manifest.get("format") != RUN_FORMAT:
        raise CorpusError(f"{path} has run format {manifest.get('format')}; this density_nb writes {RUN_FORMAT}.")
    return manifest


def trace_passages(
    bridge: Any,
    rows: Sequence[tuple[int, str, str]],
    *,
    words: int | None,
    grid: str | Sequence[float] = "paper",
    weighting: str = "l1",
    norms: str = "live",
    random_baseline: bool = False,
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Trace the prediction of each ``next_word`` after its ``prompt``, the passages sharing masked
    passes (``trace_many``): one ``(summary row, curves rows)`` per ``(passage_id, prompt, next_word)``.

    The traced text is ``prompt + " " + next_word`` and the root is the prompt's last token, so the
    gold next token is in the text and the loss is defined. When the prompt's tokenization is not a
    prefix of the joined text's, the prompt alone is traced at its last token (``aligned`` False,
    loss NaN). ``words``: the prompt length recorded with each passage (None: its word count).
    """
    texts, roots, aligned, n_tokens = [], [], [], []
    for _, prompt, next_word in rows:
        joined = prompt + " " + next_word
        prompt_ids, _ = tokenize(bridge, prompt)
        joined_ids, _ = tokenize(bridge, joined)
        n = len(prompt_ids)
        ok = 0 < n < len(joined_ids) and bool(torch.equal(joined_ids[:n], prompt_ids))
        texts.append(joined if ok else prompt)
        roots.append([n - 1] if ok else "last")
        aligned.append(ok)
        n_tokens.append(n)
    results = trace_many(bridge, texts, roots, grid=grid, weighting=weighting, norms=norms, random_baseline=random_baseline, progress=False)  # type: ignore[arg-type]
    return [
        _passage_tables(result, passage_id, prompt, next_word, len(prompt.split()) if words is None else words, ok, n)
        for result, (passage_id, prompt, next_word), ok, n in zip(results, rows, aligned, n_tokens)
    ]


def trace_passage(bridge: Any, passage_id: int, prompt: str, next_word: str, **kwargs: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``trace_passages`` of one passage."""
    return trace_passages(bridge, [(passage_id, prompt, next_word)], **kwargs)[0]


def _passage_tables(result: DensityResult, passage_id: int, prompt: str, next_word: str, words: int, aligned: bool, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    name = result.model
    summary = result.summary()
    front = pd.DataFrame(
        {
            "passage_id": np.int64(passage_id),
            "model": name,
            "words": np.int64(words),
            "prompt": prompt,
            "next_word": next_word,
            "aligned": aligned,
            "n_tokens": np.int64(n),
            "next_token_id": result.next_token.astype(np.int64),
            "top_token_id": result.top_token_full.astype(np.int64),
        },
        index=summary.index,
    )
    summary = pd.concat([front, summary], axis=1)
    curves = result.curves()
    k = len(result.grid)
    curves.insert(0, "words", np.int64(words))
    curves.insert(0, "model", name)
    curves.insert(0, "passage_id", np.int64(passage_id))
    comp = result.component_edges.reshape(-1, 3)
    curves["edges_attn"], curves["edges_mlp"], curves["edges_res"] = comp[:, 0], comp[:, 1], comp[:, 2]
    curves["layer_edges"] = list(result.layer_edges.reshape(len(result.roots) * k, -1))
    return summary, curves


class _ShardWriter:
    """Appends completed passages as parquet shards and records them in the manifest (atomically)."""

    def __init__(self, out_dir: Path, manifest: dict[str, Any], shard_size: int) -> None:
        self.out_dir, self.manifest, self.shard_size = out_dir, manifest, max(1, int(shard_size))
        self.done: set[int] = set(int(p) for p in manifest["passage_ids"])
        self.buffer: list[tuple[int, pd.DataFrame, pd.DataFrame]] = []
        (out_dir / SHARDS).mkdir(parents=True, exist_ok=True)
        self._clean_orphans()

    def _clean_orphans(self) -> None:
        """Remove shard files a killed run wrote but never recorded (and stray temp files)."""
        listed = {f for shard in self.manifest["shards"] for f in (shard["summary"], shard["curves"])}
        for path in (self.out_dir / SHARDS).iterdir():
            if f"{SHARDS}/{path.name}" not in listed:
                path.unlink()

    def add(self, passage_id: int, summary: pd.DataFrame, curves: pd.DataFrame) -> bool:
        """Queue one passage's rows; False (and nothing written) if it is already recorded."""
        pid = int(passage_id)
        if pid in self.done or any(p == pid for p, _, _ in self.buffer):
            return False
        self.buffer.append((pid, summary, curves))
        if len(self.buffer) >= self.shard_size:
            self.flush()
        return True

    def flush(self) -> None:
        if not self.buffer:
            return
        seq = self.manifest["next_shard"]
        name = f"{seq:06d}"
        summary = pd.concat([s for _, s, _ in self.buffer], ignore_index=True)
        curves = pd.concat([c for _, _, c in self.buffer], ignore_index=True)
        ids = [p for p, _, _ in self.buffer]
        shard = {"name": name, "summary": f"{SHARDS}/{name}.summary.parquet", "curves": f"{SHARDS}/{name}.curves.parquet", "passage_ids": ids}
        _write_parquet(curves, self.out_dir / shard["curves"])
        _write_parquet(summary, self.out_dir / shard["summary"])
        manifest = {
            **self.manifest,
            "shards": [*self.manifest["shards"], shard],
            "passage_ids": sorted(self.done | set(ids)),
            "next_shard": seq + 1,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_json(manifest, self.out_dir / MANIFEST)  # the shard counts only from here on
        self.manifest = manifest
        self.done.update(ids)
        self.buffer.clear()


class _RunLock:
    """``out_dir/run.lock`` holding the writer's pid: two runs never write one directory at once.

    A lock left by a process that no longer exists (killed) is taken over.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / "run.lock"

    def __enter__(self) -> _RunLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _alive(pid):
                    raise CorpusError(
                        f"Another run (pid {pid}) is writing {str(self.path.parent)!r}; wait for it, or stop it and use --resume."
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its writer is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise CorpusError(f"Could not lock {str(self.path)!r}; remove it if no run is writing that directory.")

    def __exit__(self, *exc: Any) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _model_label(model: Any) -> str:
    if isinstance(model, str):
        key = model.strip().lower()
        return key if key in BUILTIN_MODELS else model
    return model_name(load_model(model))


def _grid_setting(grid: str | Sequence[float]) -> Any:
    return grid if isinstance(grid, str) else [float(g) for g in grid]


_SETTING_DEFAULTS = {"norms": "live"}


def load_runs(out_dir: str | os.PathLike[str]) -> CorpusRun:
    """Read a corpus run directory: ``CorpusRun(summary, curves, manifest)`` (unpacks as a pair).

    Only shards recorded in the manifest are read; rows are sorted by ``passage_id`` and each
    passage appears once.
    """
    out = Path(out_dir)
    manifest = _read_manifest(out)
    if manifest is None:
        raise CorpusError(f"{str(out)!r} holds no corpus run (no {MANIFEST}); run `run_corpus` or `density-nb corpus` first.")
    summaries = [pd.read_parquet(out / shard["summary"]) for shard in manifest["shards"]]
    curves = [pd.read_parquet(out / shard["curves"]) for shard in manifest["shards"]]
    if not summaries:
        return CorpusRun(pd.DataFrame(), pd.DataFrame(), manifest)
    summary = pd.concat(summaries, ignore_index=True).drop_duplicates("passage_id", keep="first")
    summary = summary.sort_values("passage_id", kind="stable").reset_index(drop=True)
    curve = pd.concat(curves, ignore_index=True).drop_duplicates(["passage_id", "stratum"], keep="first")
    curve = curve.sort_values(["passage_id", "stratum"], kind="stable").reset_index(drop=True)
    return CorpusRun(summary, curve, manifest)


def run_corpus(
    model: Any,
    out_dir: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    split: str = "test",
    n_passages: int | None = 100,
    words: int = 40,
    grid: str | Sequence[float] = "paper",
    weighting: str = "l1",
    norms: str = "live",
    random_baseline: bool = False,
    resume: bool = False,
    backend: str = "local",
    device: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    drop_unk: str = "paragraph",
    shard_size: int = 1,
    threads: int | None = None,
    batch: int = 1,
) -> pd.DataFrame:
    """Trace the next-word prediction of ``n_passages`` WikiText passages; returns the summary table.

    ``data``: WikiText-2 (see ``find_data``), or a prompt table file (``read_prompts``: CSV, TSV or
    parquet with prompt and next_word, or the published ``wikitext_40.txt`` format), whose prompts
    are traced as given (``words``, ``split`` and ``drop_unk`` then do not apply).
    ``norms``: ``"live"`` or ``"frozen"`` post-norm scales, as in ``trace``.

    Results go to ``out_dir`` as parquet shards (``shards/NNNNNN.{summary,curves}.parquet``) plus a
    ``manifest.json`` (settings, model, grid, shards, completed passage ids); read them back with
    ``load_runs``. Every file is written to a temp name and renamed, and a shard counts only once the
    manifest lists it, so an interrupted run loses at most the passages in flight (up to ``batch``;
    and, with ``shard_size > 1``, completed passages not yet flushed when the process is killed outright).
    ``resume=True`` skips passages already recorded and refuses if the settings differ; without it,
    an ``out_dir`` that already holds a run is refused.
    ``workers``: passages traced at once. Local: threads sharing one model in this process (the
    serial parts of one passage, stratification and small ops, overlap the other's GEMMs); Ray:
    actors that each load the model once (``model`` must then be a name or path; one GPU per actor
    when ``device="cuda"``). Default: 2 (local: 1 on a single core).
    ``threads``: torch CPU threads per worker. Default: this process's count divided among the
    workers, the same for both backends, so Ray gives bitwise the local backend's numbers (float
    sums depend on the thread count).
    ``batch``: passages whose strata share one masked pass (local backend; Ray runs one passage per
    task). On CPU it does not pay (measured: benchmarks/bench_corpus.py); on a GPU it fills the
    device. The numbers do not depend on it beyond float rounding.
    """
    if not isinstance(batch, int) or batch < 1:
        raise CorpusError(f"batch must be a positive integer (passages per masked pass), got {batch!r}.")
    if backend not in BACKENDS:
        raise CorpusError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "ray" and not isinstance(model, str):
        raise CorpusError("backend='ray' needs the model as a name or path (each worker loads it itself).")
    if norms not in ("live", "frozen"):
        raise CorpusError(f"norms must be 'live' or 'frozen', got {norms!r}.")
    make_grid(grid)  # fail early on a bad grid
    table = prompt_table(data)
    if table is not None:
        df = read_prompts(table)
        df = df if n_passages is None else df.head(n_passages)
        words_setting: int | None = None
    else:
        df = passages(n_passages, words=words, split=split, data=data, drop_unk=drop_unk)
        words_setting = int(words)
    if n_passages is not None and len(df) < n_passages:
        what = f"prompts are in {str(table)!r}" if table is not None else f"passages of more than {words} words are available in the {split!r} split"
        warnings.warn(f"Only {len(df)} {what} (asked for {n_passages}); running those.", stacklevel=2)
    label = _model_label(model)
    settings = {
        "model": label,
        "split": split,
        "words": words_setting,
        "grid": _grid_setting(grid),
        "weighting": weighting,
        "norms": norms,
        "random_baseline": bool(random_baseline),
        "drop_unk": drop_unk,
        "data": data_source(data, split),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _RunLock(out):
        _run_locked(model, out, df, settings, grid=grid, resume=resume, backend=backend, device=device, workers=workers,
                    progress=progress, shard_size=shard_size, threads=threads, weighting=weighting, random_baseline=random_baseline,
                    words=words_setting, batch=batch, norms=norms)
    return load_runs(out).summary


def _run_locked(model: Any, out: Path, df: pd.DataFrame, settings: dict[str, Any], *, grid: Any, resume: bool, backend: str,
                device: str | None, workers: int, progress: bool, shard_size: int, threads: int | None, weighting: str,
                random_baseline: bool, words: int | None, batch: int, norms: str) -> None:
    label = settings["model"]
    manifest = _read_manifest(out)
    if manifest is not None and not resume:
        raise CorpusError(
            f"{str(out)!r} already holds a corpus run ({len(manifest['passage_ids'])} passages); pass "
            "resume=True (--resume) to continue it, or choose another output directory."
        )
    if manifest is not None:
        recorded = {**_SETTING_DEFAULTS, **manifest["settings"]}  # runs from before a setting existed used its default
        diff = {k: (recorded.get(k), v) for k, v in settings.items() if recorded.get(k) != v}
        if diff:
            lines = "; ".join(f"{k}: recorded {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise CorpusError(f"Cannot resume {str(out)!r}: its settings differ ({lines}). Use the same settings or another directory.")
    else:
        manifest = {
            "format": RUN_FORMAT,
            "settings": settings,
            "grid_sizes": make_grid(grid).tolist(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "shards": [],
            "passage_ids": [],
            "next_shard": 0,
        }
        _write_json(manifest, out / MANIFEST)
    writer = _ShardWriter(out, manifest, shard_size)
    todo = df[~df["passage_id"].isin(writer.done)]
    if workers is None:
        workers = 2 if backend == "ray" else min(2, torch.get_num_threads())
    threads = int(threads) if threads else max(1, torch.get_num_threads() // workers)
    kwargs = {"words": words, "grid": grid, "weighting": weighting, "norms": norms, "random_baseline": bool(random_baseline)}
    bar = tqdm(total=len(df), initial=len(df) - len(todo), desc=f"corpus {label}", unit="passage", disable=not progress, smoothing=0.1)
    try:
        if len(todo):
            if backend == "local":
                bridge = load_model(model, device=device)
                before = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    _run_local(bridge, todo, kwargs, workers, batch, writer, bar)
                finally:
                    torch.set_num_threads(before)
            else:
                _run_ray(model, device, threads, todo, kwargs, workers, writer, bar)
    finally:
        writer.flush()  # Ctrl-C or an error: keep every completed passage
        bar.close()


def _run_local(bridge: Any, todo: pd.DataFrame, kwargs: dict[str, Any], workers: int, batch: int, writer: _ShardWriter, bar: Any) -> None:
    """Trace ``todo`` in batches on ``workers`` threads; results are written here, as they complete.

    On an error or Ctrl-C, queued batches are dropped, running ones finish, and every completed
    batch is written before the exception goes on."""
    rows = [(int(r.passage_id), r.prompt, r.next_word) for r in todo.itertuples(index=False)]
    chunks = [rows[start : start + batch] for start in range(0, len(rows), batch)]

    def write(chunk: list[tuple[int, str, str]], tables: list[tuple[pd.DataFrame, pd.DataFrame]]) -> None:
        for (passage_id, _, _), (summary, curves) in zip(chunk, tables):
            writer.add(passage_id, summary, curves)
        bar.update(len(chunk))

    if workers == 1:
        for chunk in chunks:
            write(chunk, trace_passages(bridge, chunk, **kwargs))
        return
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="density-nb")
    futures = {pool.submit(trace_passages, bridge, chunk, **kwargs): chunk for chunk in chunks}
    written: set[Any] = set()
    try:
        for future in concurrent.futures.as_completed(futures):
            write(futures[future], future.result())
            written.add(future)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        for future, chunk in futures.items():
            if future not in written and future.done() and not future.cancelled() and future.exception() is None:
                write(chunk, future.result())
        raise
    finally:
        pool.shutdown(wait=True)


# ---- Ray backend ---------------------------------------------------------------------------------
_active_actors: list[Any] = []  # the running Ray actors (for tests that kill one mid-run)


class _TraceWorker:
    """A Ray actor body: loads the model once, then traces passages."""

    def __init__(self, model: str, device: str | None, threads: int) -> None:
        torch.set_num_threads(threads)
        self.bridge = load_model(model, device=device)

    def pid(self) -> int:
        return os.getpid()

    def run(self, passage_id: int, prompt: str, next_word: str, kwargs: dict[str, Any]) -> tuple[int, pd.DataFrame, pd.DataFrame]:
        summary, curves = trace_passage(self.bridge, passage_id, prompt, next_word, **kwargs)
        return passage_id, summary, curves


def _run_ray(model: str, device: str | None, threads: int, todo: pd.DataFrame, kwargs: dict[str, Any], workers: int, writer: _ShardWriter, bar: Any) -> None:
    try:
        import ray
        from ray.exceptions import ActorDiedError, RayActorError, RayTaskError
    except ImportError as err:
        raise CorpusError("backend='ray' needs Ray: pip install 'density_nb[ray]' (or pip install ray).") from err
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=max(1, workers), include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    gpu = device is not None and str(device).startswith("cuda")
    actor_cls = ray.remote(_TraceWorker).options(
        num_cpus=1, num_gpus=1 if gpu else 0, max_restarts=_MAX_ATTEMPTS, max_task_retries=_MAX_ATTEMPTS
    )

    def new_actor() -> Any:
        return actor_cls.remote(model, device, threads)

    actors = [new_actor() for _ in range(max(1, workers))]
    _active_actors[:] = actors
    queue = collections.deque(todo.itertuples(index=False))
    attempts: collections.Counter[int] = collections.Counter()
    pending: dict[Any, tuple[int, Any]] = {}

    def submit(slot: int) -> None:
        if queue:
            row = queue.popleft()
            ref = actors[slot].run.remote(int(row.passage_id), row.prompt, row.next_word, kwargs)
            pending[ref] = (slot, row)

    try:
        for slot in range(len(actors)):
            for _ in range(2):  # two in flight per actor hides the round trip
                submit(slot)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                slot, row = pending.pop(ref)
                try:
                    pid, summary, curves = ray.get(ref)
                except RayActorError as err:  # the worker died (killed, OOM): run the passage again
                    attempts[int(row.passage_id)] += 1
                    if attempts[int(row.passage_id)] >= _MAX_ATTEMPTS:
                        raise CorpusError(f"Passage {row.passage_id} failed {_MAX_ATTEMPTS} times on Ray workers: {err}") from err
                    if isinstance(err, ActorDiedError):  # out of restarts: replace the worker
                        actors[slot] = new_actor()
                        _active_actors[slot] = actors[slot]
                    queue.appendleft(row)
                    submit(slot)
                    continue
                except RayTaskError as err:  # the trace itself raised: same error as the local backend
                    raise err.as_instanceof_cause() from None
                if writer.add(pid, summary, curves):  # driver-side dedup by passage id
                    bar.update(1)
                submit(slot)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        _active_actors.clear()
        if started:
            ray.shutdown()
