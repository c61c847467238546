"""Where passages come from: WikiText-2 (found locally or online), prompt tables, and unigram counts.

Where the corpus lives is configuration: an explicit path, ``$DENSITY_NB_DATA``, a ``shared/data``
folder beside or above the repository, else ``datasets`` online (``Salesforce/wikitext``).

Passages follow the papers' ``wikitext_40`` recipe: a WikiText paragraph (one line of the file),
detokenised, cut after its first ``words`` words; the word after the cut is the prediction traced.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from density_nb.errors import DensityNBError

DATA_ENV = "DENSITY_NB_DATA"
SPLITS = ("test", "valid")
_HF_SPLIT = {"test": "test", "valid": "validation"}
_HOW_TO = (
    "Provide WikiText-2 in one of these ways: pass a path (data=... / --data PATH: a folder with "
    "wikitext-2/{test,valid}.txt or {test,valid}.txt, or the .txt file itself), set the environment "
    f"variable {DATA_ENV} to such a folder, or run online with `pip install datasets` (loads "
    "Salesforce/wikitext from the Hugging Face hub)."
)


class DataError(DensityNBError):
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
    for candidate in (
        root / "wikitext-2" / f"{split}.txt",
        root / f"{split}.txt",
        root / "wikitext-2" / f"wiki.{split}.tokens",
        root / f"wiki.{split}.tokens",
    ):
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


def _not_utf8(path: str | os.PathLike[str], err: UnicodeDecodeError) -> DataError:
    return DataError(
        f"{str(path)!r} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start}). "
        "Save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 in > out) and give that file instead."
    )


@functools.lru_cache(maxsize=8)
def _file_paragraphs(path: str, mtime: float, size: int) -> tuple[tuple[int, str], ...]:
    try:
        with open(path, encoding="utf-8") as f:
            return tuple(_paragraphs(f.read().split("\n")))
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err) from None


def _hf_lines(split: str) -> list[str]:
    try:
        import datasets  # optional (the data extra): only where no local copy is found
    except ImportError as err:
        raise DataError(f"No local WikiText-2 data found and `datasets` is not installed. {_HOW_TO}") from err
    try:
        ds = datasets.load_dataset("Salesforce/wikitext", "wikitext-2-raw-v1", split=_HF_SPLIT[split])
    except Exception as err:  # offline, hub down, ...
        raise DataError(f"No local WikiText-2 data found and loading it with `datasets` failed ({err}). {_HOW_TO}") from err
    return [row.rstrip("\n") for row in ds["text"]]


_TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
_TABLE_HELP = "give a CSV, TSV or parquet file with columns prompt and next_word (passage_id optional)"


def prompt_table(data: str | os.PathLike[str] | None) -> Path | None:
    """``data`` as a prompt table file (see ``read_prompts``), or None when it is not one.

    A path ending in .csv, .tsv or .parquet is a prompt table: ``DataError`` if it does not exist."""
    if data is None or str(data) in ("wikitext-2", "wikitext2"):
        return None
    path = Path(data).expanduser()
    if path.suffix.lower() in _TABLE_SUFFIXES:
        if not path.is_file():
            raise _missing_table(path)
        return path
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    return path if "\t" in first else None  # WikiText lines have no tabs; the published prompt files do


def _read_table(path: Path) -> pd.DataFrame:
    """The raw prompt table (see ``read_prompts``), before its columns are checked."""
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    read = functools.partial(
        pd.read_csv, path, sep=sep, dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    )
    df = read()
    if "prompt" not in df.columns and sep == "\t":  # the published format: no header
        raw = read(header=None)
        if raw.shape[1] < 4:
            raise DataError(
                f"{str(path)!r}: a header-less TSV needs at least 4 columns (prompt, last word, POS, next word); found {raw.shape[1]}."
            )
        df = pd.DataFrame({"prompt": raw[0], "next_word": raw[3]})
        if raw.shape[1] >= 6:  # the sixth: the next word as it follows the prompt (" boat", or "," attached)
            df["next_word_spaced"] = raw[5]
    return df


_TRUE, _FALSE = ("true", "1", "yes", "y", "t"), ("false", "0", "no", "n", "f")


def _continuations(path: Path, df: pd.DataFrame) -> pd.Series:
    """What follows each prompt, exactly: ``" " + next_word``, or ``next_word`` where the table says it
    attaches (``next_word_spaced`` without its leading space, or ``attaches`` true); a space when it says nothing."""
    words = df["next_word"]
    if "next_word_spaced" in df.columns:
        spaced = df["next_word_spaced"].astype(str)
        bad = np.flatnonzero(spaced.str.strip().to_numpy() != words.to_numpy())
        if len(bad):
            raise DataError(
                f"{str(path)!r}: next_word_spaced must be the next word with or without a leading space, but rows "
                f"{bad[:10].tolist()} hold {[spaced.iloc[i] for i in bad[:3]]} for {[words.iloc[i] for i in bad[:3]]}."
            )
        attaches = ~spaced.str.match(r"^\s").to_numpy()
    elif "attaches" in df.columns:
        flags = df["attaches"].astype(str).str.strip().str.lower()
        bad = np.flatnonzero(~flags.isin(_TRUE + _FALSE).to_numpy())
        if len(bad):
            raise DataError(
                f"{str(path)!r}: column attaches must hold true or false (the next word follows without a space), but rows {bad[:10].tolist()} do not."
            )
        attaches = flags.isin(_TRUE).to_numpy()
    else:
        attaches = np.zeros(len(df), dtype=bool)
    return pd.Series(np.where(attaches, "", " "), index=df.index) + words


def read_prompts(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Prompts from a table: ``passage_id``, ``prompt``, ``next_word``, ``continuation`` (what follows the
    prompt exactly: ``" " + next_word``, or ``next_word`` where it attaches, as ``,`` ``'s`` ``)`` do) and
    ``text`` (= prompt + continuation, the text a corpus run traces).

    A CSV, TSV or parquet file with columns ``prompt`` and ``next_word`` (``passage_id`` optional, else
    the row number; whether the next word attaches: ``next_word_spaced``, the next word with its leading
    space when it has one, or ``attaches``, true/false; neither: it follows a space), or the published
    code's header-less TSV (``wikitext_40.txt``: prompt, last word, its POS, next word, its POS, the next
    word as it follows the prompt).
    """
    path = Path(path)
    if not path.is_file():
        raise _missing_table(path)
    try:
        df = _read_table(path)
    except UnicodeDecodeError as err:
        raise _not_utf8(path, err) from None
    except DataError:
        raise
    except (ValueError, OSError) as err:  # pandas' and pyarrow's parse errors
        raise DataError(
            f"{str(path)!r} could not be read as a prompt table ({err}); give a CSV, TSV or parquet file with columns prompt and next_word."
        ) from None
    missing = [c for c in ("prompt", "next_word") if c not in df.columns]
    if missing:
        raise DataError(f"{str(path)!r} has no column {' or '.join(map(repr, missing))}: {_TABLE_HELP}.")
    if df.empty:
        raise DataError(f"{str(path)!r} has no rows (only a header): add a row per prompt, with its prompt and next_word.")
    df = df.astype({"prompt": str, "next_word": str})
    df["prompt"], df["next_word"] = df["prompt"].str.strip(), df["next_word"].str.strip()
    empty = df.index[(df["prompt"] == "") | (df["next_word"] == "")].tolist()
    if empty:
        raise DataError(f"{str(path)!r}: rows {empty[:10]} have an empty prompt or next word.")
    ids = _passage_ids(path, df["passage_id"]) if "passage_id" in df.columns else pd.Series(np.arange(len(df), dtype=np.int64))
    if ids.duplicated().any():
        raise DataError(f"{str(path)!r}: passage_id values repeat ({ids[ids.duplicated()].tolist()[:10]}); each row needs its own id.")
    continuation = _continuations(path, df)
    return pd.DataFrame({"passage_id": ids.to_numpy(), "prompt": df["prompt"].to_numpy(), "next_word": df["next_word"].to_numpy(),
                         "continuation": continuation.to_numpy(), "text": (df["prompt"] + continuation).to_numpy()})  # fmt: skip


def _missing_table(path: Path) -> DataError:
    return DataError(f"Prompt table {str(path)!r} does not exist: check the path, or {_TABLE_HELP}.")


def _passage_ids(path: Path, column: pd.Series) -> pd.Series:
    """The ``passage_id`` column as integers; ``DataError`` naming the rows that hold anything else."""
    ids = pd.to_numeric(column.astype(str).str.strip(), errors="coerce")
    bad = np.flatnonzero(ids.isna() | (ids % 1 != 0))
    if len(bad):
        rows = ", ".join(f"row {i} holds {column.iloc[i]!r}" for i in bad[:10])
        raise DataError(
            f"{str(path)!r}: column passage_id must hold whole numbers, but {rows}{' ...' if len(bad) > 10 else ''} "
            "(rows count from 0 after the header). Fix those ids, or drop the column to number the rows 0, 1, 2, ..."
        )
    return ids.astype(np.int64)


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
    (the first ``words`` words), ``next_word`` (the word right after the cut), ``continuation`` (what
    follows the prompt in the paragraph: the cut is at a space, so ``" " + next_word``) and ``text``
    (the whole detokenised paragraph). Headings are dropped, and so are paragraphs containing ``<unk>``
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
    df.insert(3, "continuation", " " + df["next_word"].astype(str))  # words are split at whitespace: the next one follows a space
    return df


# ---- unigram frequencies ---------------------------------------------------------------------------
def unigram_counts(tokenizer: Any, texts: Iterable[str]) -> pd.Series:
    """Token id -> count of the model's own tokenization of ``texts`` (no special tokens added).

    ``tokenizer``: a Hugging Face tokenizer, or a bridge from ``load_model`` (its own tokenizer is
    used). As in the papers, the counts come from the evaluation corpus itself.
    """
    if hasattr(tokenizer, "original_model"):
        from density_nb.models import hf_tokenizer  # torch: only when given a loaded model

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
