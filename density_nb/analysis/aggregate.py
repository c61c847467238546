"""Corpus-level summaries of a run's tables: mean curves on a common log grid, composition against
its base rate, head inclusion frequencies, and two runs joined on their prompts. Plain pandas/numpy,
no torch: what a dashboard draws, computed here and sent small."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from density_nb.analysis.stats import Correlation, spearman
from density_nb.errors import DensityNBError
from density_nb.method.measures import LOG_S_MIN

COMMON_GRID = np.logspace(LOG_S_MIN, 0.0, 51)  # 10 points a decade, 1e-5 … 1
CONSTRUCTION = (1e-4, 1e-2)  # the published phases: a sparse core is built …
REFINEMENT = (1e-2, 1.0)  # … then refined


def _need(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DensityNBError(
            f"{what} needs the column(s) {', '.join(missing)}, which this run's tables lack; run it again with this density_nb."
        )


def on_grid(
    curves: pd.DataFrame, value: str = "tv", grid: np.ndarray = COMMON_GRID, passages: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each passage's ``value`` interpolated (linearly in log10 s, over its actual sizes ``s_actual``) onto
    ``grid``, as the papers average curves; a curve is held at its first (last) value below (above) its
    sizes. Returns the passage ids [P] (sorted) and the values [P, G]; passages with no positive size
    are left out."""
    _need(curves, ["passage_id", "s_actual", value], "on_grid")
    frame = curves if passages is None else curves[curves["passage_id"].isin(list(passages))]
    frame = frame[frame["s_actual"] > 0].sort_values(["passage_id", "s_actual"], kind="stable")
    pids = frame["passage_id"].to_numpy()
    x, y = np.log10(frame["s_actual"].to_numpy(dtype=float)), frame[value].to_numpy(dtype=float)
    starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]]) if len(pids) else np.zeros(0, dtype=np.int64)
    ends = np.r_[starts[1:], len(pids)].astype(np.int64)
    log_grid = np.log10(grid)
    values = np.array([np.interp(log_grid, x[a:b], y[a:b]) for a, b in zip(starts, ends)]).reshape(len(starts), len(grid))
    return pids[starts], values


def mean_curve(
    curves: pd.DataFrame, value: str = "tv", grid: np.ndarray = COMMON_GRID, passages: Sequence[int] | None = None
) -> pd.DataFrame:
    """Mean and 25–75 % band of ``value`` across passages, each passage's curve first interpolated onto
    ``grid`` (``on_grid``). Returns columns ``s``, ``mean``, ``q25``, ``q75``, ``n``."""
    _, values = on_grid(curves, value, grid, passages)  # [passages, grid]
    n = len(values)
    with np.errstate(all="ignore"):
        stats = {
            "mean": values.mean(0) if n else np.full(len(grid), np.nan),
            "q25": np.quantile(values, 0.25, axis=0) if n else np.full(len(grid), np.nan),
            "q75": np.quantile(values, 0.75, axis=0) if n else np.full(len(grid), np.nan),
        }
    return pd.DataFrame({"s": grid, **stats, "n": n})


COMPOSITION_PARTS = ["attention", "mlp", "residual", "depth_q1", "depth_q2", "depth_q3", "depth_q4"]


def _composition_columns(random: bool) -> list[str]:
    suffix = "_random" if random else ""
    return [f"edges_attn{suffix}", f"edges_mlp{suffix}", f"edges_res{suffix}", f"layer_edges{suffix}"]


def composition_counts(curves: pd.DataFrame, random: bool = False) -> np.ndarray:
    """[rows, 7] each curves row's edges by ``COMPOSITION_PARTS``: attention, MLP and residual edges, then
    edges in each quarter of the layers (split as evenly as np.array_split does). ``random``: of the
    random baseline's strata."""
    columns = _composition_columns(random)
    _need(curves, columns, "composition")
    parts = curves[columns[:3]].to_numpy(dtype=float)  # [rows, 3]
    layers = np.stack(list(curves[columns[3]].to_numpy())).astype(float)  # [rows, L]
    quarters = np.stack([part.sum(-1) for part in np.array_split(layers, 4, axis=-1)], axis=-1)  # [rows, 4]
    return np.concatenate([parts, quarters], axis=-1)


def composition_rows(curves: pd.DataFrame, random: bool = False) -> np.ndarray:
    """[rows, 7] ``composition_counts`` as shares of the stratum's own edges; NaN for an empty stratum."""
    counts = composition_counts(curves, random)  # [rows, 7]
    total = counts[:, :3].sum(-1, keepdims=True)
    with np.errstate(all="ignore"):
        return np.where(total > 0, counts / total, np.nan)


def composition(curves: pd.DataFrame, random: bool = False, passages: Sequence[int] | None = None) -> pd.DataFrame:
    """Mean share of attention, MLP and residual edges, and of edges in each quarter of the layers,
    per stratum (``s``) across passages; the last stratum (s = 1, the full graph) is the base rate.
    ``random``: of the random baseline's strata. Shares are of each stratum's own edges (empty
    strata left out)."""
    _need(curves, ["passage_id", "s", *_composition_columns(random)], "composition")
    frame = curves if passages is None else curves[curves["passage_id"].isin(list(passages))]
    if not len(frame):  # no passage (e.g. an empty selection): no stratum
        return pd.DataFrame(columns=["s", *COMPOSITION_PARTS], dtype=float)
    shares = composition_rows(frame, random)  # [rows, 7]
    kept = ~np.isnan(shares[:, 0])
    table = pd.DataFrame(shares[kept], columns=COMPOSITION_PARTS)
    table["s"] = frame["s"].to_numpy()[kept]
    return table.groupby("s", as_index=False)[COMPOSITION_PARTS].mean()


def head_frequency(curves: pd.DataFrame, s: float, n_layers: int, n_heads: int, passages: Sequence[int] | None = None) -> np.ndarray:
    """[L, H] mean share of each head's edges kept at the grid size nearest ``s``, across passages."""
    _need(curves, ["passage_id", "s", "head_share"], "head_frequency")
    frame = curves if passages is None else curves[curves["passage_id"].isin(list(passages))]
    sizes = np.unique(frame["s"].to_numpy())
    if not len(sizes):
        return np.full((n_layers, n_heads), np.nan)
    nearest = sizes[np.argmin(np.abs(np.log10(sizes) - np.log10(s)))]
    shares = np.stack(list(frame.loc[frame["s"] == nearest, "head_share"].to_numpy())).astype(float)  # [passages, L*H]
    return shares.mean(0).reshape(n_layers, n_heads)


def join_runs(
    a: pd.DataFrame, b: pd.DataFrame, value: str = "density", suffixes: tuple[str, str] = ("_a", "_b")
) -> tuple[pd.DataFrame, Correlation]:
    """Two runs' summaries (e.g. two models on the same prompts) joined on ``passage_id``, with the
    Spearman correlation of ``value`` across the prompts both traced."""
    _need(a, ["passage_id", value], "join_runs")
    _need(b, ["passage_id", value], "join_runs")
    both = a.merge(b, on="passage_id", suffixes=suffixes)
    return both, spearman(both[value + suffixes[0]], both[value + suffixes[1]])
