"""Tables out of a result or a corpus run: CSV or parquet files in one documented layout (docs/exports.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from density_nb.corpus.runs import load_runs
from density_nb.corpus.store import MANIFEST
from density_nb.errors import DensityNBError
from density_nb.files import atomic_write
from density_nb.result import DensityResult

FORMATS = ("csv", "parquet")


def tables(source: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """``{"summary": ..., "curves": ...}`` of a result file (``DensityResult.to_parquet``) or of a
    corpus run directory (``run_corpus``)."""
    path = Path(source)
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            raise DensityNBError(f"{str(path)!r} is a folder without {MANIFEST}: give a corpus run directory or a result .parquet file.")
        run = load_runs(path)
        return {"summary": run.summary, "curves": run.curves}
    result = DensityResult.from_parquet(path)
    return {"summary": result.summary(), "curves": result.curves()}


def write_tables(frames: dict[str, pd.DataFrame], out_dir: str | os.PathLike[str], fmt: str = "csv") -> list[Path]:
    """Write each table as ``out_dir/<name>.<fmt>``; in CSV, list cells (per-layer edges, top-k) are JSON arrays."""
    if fmt not in FORMATS:
        raise DensityNBError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    return [_write(frame, Path(out_dir) / f"{name}.{fmt}", fmt) for name, frame in frames.items()]


def _write(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    if fmt == "parquet":
        return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    flat = frame.apply(lambda col: col.map(_json_cell) if col.dtype == object else col)
    return atomic_write(path, lambda tmp: flat.to_csv(tmp, index=False))


def _json_cell(value: object) -> object:
    if isinstance(value, np.ndarray):
        return json.dumps(value.tolist())
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return value
