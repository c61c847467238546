"""What the corpus dashboard sends to the page: ``dashboard_state`` of a ``CorpusRun`` (numpy, pandas and
scipy only; no widget, no torch).

The whole run's aggregates are computed here (``density_nb.analysis.aggregate``) and sent as JSON; what a
brushed selection needs is sent once per passage, small and quantised, in one binary trait (zlib-compressed,
``data["layout"]`` gives each array's offset in the inflated buffer):

    ids    int32   [N]            passage ids, in ``summary`` order (sorted by id)
    cols   float32 [C, N]         the scalar columns of ``data["columns"]`` (NaN where missing)
    tv     uint8   [N, G]         TV on ``data["grid"]``: round(254 · tv), 255 where the passage has no curve
    comp   uint8   [N, K, 7]      per stratum: attention share (linear), MLP and residual shares (log code),
                                  the four depth quarters' shares (linear); all 0 for an empty stratum
    heads  uint8   [N, S, L · H]  share of each head's edges kept at ``data["heads"]["sizes"]`` (linear)
    cmp_a  int32   [M]            (compare) index into the passages of each prompt both runs traced
    cmp_b  float32 [D, M]         (compare) the other run's ``data["measures"]`` on those prompts

Linear codes are round(255 · share) (±0.002); the log code is ``_data.encode_shares`` (±1.8 % of the share).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from density_nb.analysis import aggregate
from density_nb.analysis.frequency import token_frequency
from density_nb.analysis.stats import spearman
from density_nb.errors import DensityNBError
from density_nb.views.data import Decode, encode_shares, sig4
from density_nb.views.theme import LABELS
from density_nb.views.theme import MEASURES as THEME_MEASURES

GRID = aggregate.COMMON_GRID[::2]  # the dashboard's common log grid: 5 points a decade, 1e-5 … 1 (26 points)
LOG_FLOOR = 1e-4  # bottom of the MLP / residual share log code
# the measures of the theme the dashboard's distributions and scatters read on a linear axis (s_top1 is a column)
MEASURES = {name: spec["label"] for name, spec in THEME_MEASURES.items() if spec["scale"] == "linear"}
COLUMNS = {key: column["label"] for key, column in LABELS["columns"].items()}
PARTS = aggregate.COMPOSITION_PARTS
HEAD_SIZES = (1e-2, 1e-1, 0.4)  # default sizes of the head view: the phase boundary, then refinement (SmolLM2 keeps no head at 1e-3)
TEXT_TAIL = 60  # characters of each prompt's end sent with the page (``text=True``)


class DashboardError(DensityNBError):
    """The run cannot be shown (empty, or its tables lack what a view needs); the message says what to do."""


# ---- per-passage arrays -------------------------------------------------------------------------------
def _rows(ids: np.ndarray, passage_ids: np.ndarray) -> np.ndarray:
    """[n] int64 the row in ``ids`` of each of ``passage_ids``; -1 for a passage not in ``ids``."""
    return pd.Series(np.arange(len(ids)), index=ids).reindex(passage_ids).fillna(-1).to_numpy(dtype=np.int64, copy=True)


def tv_on_grid(curves: pd.DataFrame, ids: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """[N, G] each passage of ``ids``'s TV on ``grid`` (``aggregate.on_grid``); NaN rows for passages without a curve."""
    out = np.full((len(ids), len(grid)), np.nan)
    have, values = aggregate.on_grid(curves, "tv", grid)
    rows = _rows(ids, have)
    ok = rows >= 0
    out[rows[ok]] = values[ok]
    return out


def _strata(curves: pd.DataFrame, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and stratum index of each curves row (rows of passages not in ``ids`` get -1)."""
    rows = _rows(ids, curves["passage_id"].to_numpy())
    strata = curves["stratum"].to_numpy(dtype=np.int64)
    rows[(strata < 0) | (strata >= k)] = -1
    return rows, strata


def composition_shares(curves: pd.DataFrame, ids: np.ndarray, k: int) -> np.ndarray:
    """[N, K, 7] shares of ``PARTS`` per passage and stratum (of the stratum's own edges; NaN when empty)."""
    out = np.full((len(ids), k, len(PARTS)), np.nan)
    rows, strata = _strata(curves, ids, k)
    shares = aggregate.composition_rows(curves)  # [rows, 7]
    ok = rows >= 0
    out[rows[ok], strata[ok]] = shares[ok]
    return out


def encode_composition(shares: np.ndarray) -> np.ndarray:
    """``composition_shares`` as uint8 codes (see the module docstring); empty strata all 0."""
    x = np.nan_to_num(shares, nan=0.0)
    codes = np.rint(255 * np.clip(x, 0, 1)).astype(np.uint8)
    codes[..., 1:3] = encode_shares(x[..., 1:3], LOG_FLOOR)
    return codes


def head_shares(curves: pd.DataFrame, ids: np.ndarray, sizes: Sequence[float], n_cells: int) -> np.ndarray:
    """[N, S, L · H] share of each head's edges kept at each of ``sizes`` (grid sizes), NaN where missing."""
    out = np.full((len(ids), len(sizes), n_cells), np.nan)
    for j, size in enumerate(sizes):
        at = curves[np.isclose(curves["s"].to_numpy(dtype=float), size)]
        rows = _rows(ids, at["passage_id"].to_numpy())
        ok = rows >= 0
        if ok.any():
            out[rows[ok], j] = np.stack(list(at["head_share"].to_numpy()[ok])).astype(float)
    return out


def _pack(arrays: dict[str, np.ndarray]) -> tuple[bytes, dict[str, Any]]:
    """Arrays as one little-endian buffer (each starting on a 4-byte boundary) and their layout."""
    layout, chunks, offset = {}, [], 0
    for name, arr in arrays.items():
        dtype = {"int32": "<i4", "float32": "<f4", "uint8": "u1"}[str(arr.dtype)]
        raw = np.ascontiguousarray(arr, dtype=dtype).tobytes()
        layout[name] = {"offset": offset, "dtype": str(arr.dtype), "shape": list(arr.shape)}
        pad = -len(raw) % 4
        chunks.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    return b"".join(chunks), layout


# ---- what the page draws ---------------------------------------------------------------------------------
def _rho(x: Any, y: Any) -> dict[str, Any]:
    corr = spearman(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), n_boot=0)
    return {"rho": sig4(corr.rho), "n": int(corr.n)}


def _model(run: Any) -> str:
    settings = run.manifest.get("settings", {})
    return str(settings.get("model") or (run.summary["model"].iloc[0] if "model" in run.summary else "?"))


def _run_label(run: Any) -> str:
    settings = run.manifest.get("settings", {})
    grid = settings.get("grid")
    grid_text = grid if isinstance(grid, str) else f"{len(run.manifest.get('grid_sizes', []))} sizes"
    return f"{_model(run)}, {grid_text} grid, norms {settings.get('norms', 'live')}"


def _pair_labels(a: Any, b: Any) -> tuple[str, str]:
    """The two runs' model names, or their full labels when the models are the same."""
    return (_model(a), _model(b)) if _model(a) != _model(b) else (_run_label(a), _run_label(b))


def summary_columns(summary: pd.DataFrame, counts: pd.Series | None) -> pd.DataFrame:
    """The run's summary with ``log10_freq_next`` added when unigram ``counts`` are given."""
    if counts is None:
        return summary

    if "next_token" not in summary:
        raise DashboardError("counts= needs the run's next_token column, which this run lacks; run it again with this density_nb.")
    frame = summary.copy()
    floor = 0.5 / float(counts.sum())  # a token never seen gets half a count
    ids = frame["next_token"].to_numpy(dtype=np.int64)
    freq = np.log10(np.maximum(token_frequency(counts, np.maximum(ids, 0)), floor))
    frame["log10_freq_next"] = np.where(ids >= 0, freq, np.nan)
    return frame


def nearest_sizes(grid: Sequence[float], wanted: Sequence[float]) -> list[float]:
    """The grid sizes nearest (in log s) to each of ``wanted``, without repeats, in increasing order."""
    sizes = np.asarray(grid, dtype=float)
    picked = {float(sizes[np.argmin(np.abs(np.log10(sizes) - np.log10(w)))]) for w in wanted}
    return sorted(picked)


def dashboard_state(
    run: Any,
    compare: Any = None,
    *,
    counts: pd.Series | None = None,
    head_sizes: Sequence[float] = HEAD_SIZES,
    text: bool = True,
    labels: tuple[str, str] | None = None,
    decode: Decode | None = None,
) -> tuple[dict[str, Any], bytes]:
    """The dashboard's JSON ``data`` and binary ``arrays`` for a ``CorpusRun`` (see the module docstring).
    ``compare``: a second run of the same prompts (joined on ``passage_id``); ``counts``: unigram counts
    (token id -> count, ``data.unigram_counts``) for the next-token frequency column; ``head_sizes``:
    the sizes of the head view (the nearest grid sizes are used); ``text``: send each prompt's last
    characters and next word (False: numbers and ids only); ``decode`` (token id -> text): names each passage's
    next token where the run holds no text (the shipped WikiText runs)."""
    summary, curves, manifest = run.summary, run.curves, run.manifest
    if summary is None or not len(summary):
        raise DashboardError("This run holds no passages yet; wait for its first shard (or run it) and load it again.")
    missing = [c for c in ("passage_id", "density") if c not in summary]
    if missing:
        raise DashboardError(f"The run's summary lacks {', '.join(missing)}: it was not written by run_corpus.")
    summary = summary_columns(summary.drop_duplicates("passage_id").sort_values("passage_id", kind="stable"), counts)
    ids = summary["passage_id"].to_numpy(dtype=np.int64)
    sizes = [float(x) for x in manifest.get("grid_sizes") or np.unique(curves["s"]).tolist()]
    k = len(sizes)
    measures = [m for m in MEASURES if m in summary]
    columns = [c for c in COLUMNS if c in summary]
    names = measures + columns
    cols32 = np.stack([summary[c].to_numpy(dtype=np.float32) for c in names])  # [C, N]
    arrays: dict[str, np.ndarray] = {"ids": ids.astype(np.int32), "cols": cols32}

    tv = tv_on_grid(curves, ids)
    arrays["tv"] = np.where(np.isnan(tv), 255, np.rint(254 * np.clip(np.nan_to_num(tv), 0, 1))).astype(np.uint8)
    traced = tv[~np.isnan(tv).any(axis=1)]  # [passages with a curve, G]: aggregate.mean_curve's statistics, without interpolating twice
    whole = {"mean": traced.mean(0), "q25": np.quantile(traced, 0.25, axis=0), "q75": np.quantile(traced, 0.75, axis=0)}
    data: dict[str, Any] = {
        "title": f"density_nb — corpus run: {_run_label(run)} ({len(ids):,} passages)",
        "n": len(ids),
        "grid": sig4(GRID),
        "sizes": sig4(sizes),
        "phases": {"construction": list(aggregate.CONSTRUCTION), "refinement": list(aggregate.REFINEMENT)},
        "measures": [{"key": m, "label": MEASURES[m]} for m in measures],
        "columns": [
            {"key": c, "label": COLUMNS[c], "rho": {m: _rho(cols32[names.index(m)], cols32[names.index(c)]) for m in measures}}
            for c in columns
        ],
        "curve": {"mean": sig4(whole["mean"]), "q25": sig4(whole["q25"]), "q75": sig4(whole["q75"]), "n": len(traced)},
    }
    if "tv_post_input" not in summary:
        data["notes"] = [
            "This run has no plateau-free density, tv_post_input (made before it was recorded); only the published density is shown."
        ]
    if counts is None:
        data.setdefault("notes", []).append(
            "No next-token frequency column: add it with unigram counts (widget(counts=...), or density-nb view --counts FILE)."
        )

    data["comp"] = _composition(curves, ids, k, arrays)
    data["heads"] = _heads(curves, ids, sizes, head_sizes, arrays)

    if text and {"prompt", "next_word"} <= set(summary.columns):
        data["text"] = [[_tail(str(p)), str(w)] for p, w in zip(summary["prompt"], summary["next_word"])]
    elif "prompt" not in summary:  # a shipped run: numbers and ids only
        data["no_text"] = True
        if decode is not None and "next_token" in summary:
            data["next"] = [decode(int(t)) if t >= 0 else "" for t in summary["next_token"].to_numpy(dtype=np.int64)]

    if compare is not None:
        label_a, label_b = labels or _pair_labels(run, compare)
        data["compare"] = _compare(summary, compare.summary, {m: cols32[names.index(m)] for m in measures}, (label_a, label_b), arrays)
    buffer, layout = _pack(arrays)
    data["layout"] = layout
    return data, zlib.compress(buffer, 6)  # head shares are mostly 0 at small s: a third of the size on real runs


def _composition(curves: pd.DataFrame, ids: np.ndarray, k: int, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The composition view's data (and its per-passage array ``comp`` into ``arrays``)."""
    if not {"edges_attn", "edges_mlp", "edges_res", "layer_edges", "stratum"} <= set(curves.columns):
        return {"missing": "This run's curves lack edge counts per component and layer; run it again with this density_nb."}
    arrays["comp"] = encode_composition(composition_shares(curves, ids, k))
    comp = aggregate.composition(curves[curves["passage_id"].isin(ids)])
    return {"s": sig4(comp["s"]), "values": {p: sig4(comp[p]) for p in PARTS}, "log_floor": LOG_FLOOR}


def _heads(
    curves: pd.DataFrame, ids: np.ndarray, sizes: list[float], head_sizes: Sequence[float], arrays: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The head view's data (and its per-passage array ``heads`` into ``arrays``)."""
    if not ("head_share" in curves and "layer_edges" in curves and len(curves)):
        return {"missing": "This run's curves hold no head shares (head_share), so the head view is empty."}
    n_layers = len(curves["layer_edges"].iloc[0])
    n_cells = len(curves["head_share"].iloc[0])
    n_heads = n_cells // max(n_layers, 1)
    chosen = nearest_sizes(sizes, head_sizes)
    arrays["heads"] = np.rint(255 * np.clip(np.nan_to_num(head_shares(curves, ids, chosen, n_cells)), 0, 1)).astype(np.uint8)
    return {
        "L": n_layers,
        "H": n_heads,
        "sizes": sig4(chosen),
        "freq": [sig4(aggregate.head_frequency(curves[curves["passage_id"].isin(ids)], s, n_layers, n_heads).ravel()) for s in chosen],
    }


def _compare(
    summary: pd.DataFrame,
    other_summary: pd.DataFrame,
    measures: dict[str, np.ndarray],
    labels: tuple[str, str],
    arrays: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The two-run scatter's data, joined on ``passage_id`` (``cmp_a``, ``cmp_b`` into ``arrays``);
    ``measures``: this run's values [N] of each measure."""
    other = other_summary.drop_duplicates("passage_id")
    both_measures = [m for m in measures if m in other]
    joined = summary[["passage_id"]].reset_index(drop=True).reset_index().merge(other[["passage_id", *both_measures]], on="passage_id")
    arrays["cmp_a"] = joined["index"].to_numpy(dtype=np.int32)
    arrays["cmp_b"] = (
        np.stack([joined[m].to_numpy(dtype=np.float32) for m in both_measures]) if both_measures else np.zeros((0, 0), np.float32)
    )
    out: dict[str, Any] = {
        "a": labels[0],
        "b": labels[1],
        "n": len(joined),
        "measures": both_measures,
        "rho": {m: _rho(measures[m][arrays["cmp_a"]], arrays["cmp_b"][i]) for i, m in enumerate(both_measures)},
    }
    if not len(joined):
        out["note"] = "The two runs share no passage ids: trace the same prompts with both models to compare them."
    return out


def _tail(prompt: str) -> str:
    return prompt if len(prompt) <= TEXT_TAIL else "…" + prompt[-TEXT_TAIL:].lstrip()
