"""``DensityResult``: what a trace produced, as tables, a parquet file, and views.

This is the only object that crosses from computation to views; it holds numpy arrays, no tensors.
Shapes: R roots, K strata (the last is the full graph), L layers, H heads, T tokens.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from density_nb.config import TV_LEVELS, TV_MID, Baseline, TraceConfig, tv_level_name
from density_nb.errors import DensityNBError
from density_nb.files import atomic_write
from density_nb.method.measures import (
    LOG_S_MIN,
    NUCLEUS_SIZES,
    auc_log,
    smallest_agreeing,
    smallest_at_least,
    tv_between,
    tv_post_input,
    tv_post_input_over_empty,
)

if TYPE_CHECKING:
    from density_nb.method.subgraphs import Subgraph

SCHEMA_VERSION = 4  # 2: names settled; 3: input_edges, tv_empty, top-k; 4: required sizes by bisection
_RENAMED = {1: {"top_tokens": "top_text_full"}}  # per older schema version: metadata key -> today's name
# summary / run columns renamed since: old name -> today's (``renamed_columns`` applies it to a table read back)
RENAMED_COLUMNS = {"density_plateau_free": "tv_post_input_over_empty"}
# Each field with one entry per root says its layout (R roots, K strata, k top tokens); the optional
# ones are None where not computed (a baseline not asked for) or in results of older versions.
Layout = Literal["root", "root_vector", "stratum", "nested", "root_text"]
LAYOUTS: tuple[Layout, ...] = ("root", "root_vector", "stratum", "nested", "root_text")  # [R], [R, k], [R, K], [R, K, ...], list [R]
ROOT = {"layout": "root"}  # a field's metadata: what its first axes are
ROOT_VECTOR = {"layout": "root_vector"}
STRATUM = {"layout": "stratum"}
NESTED = {"layout": "nested"}


_META_KEYS = ("model", "text", "token_ids", "tokens", "grid", "n_layers", "n_heads", "top_text_full", "settings")


def _metadata(path: str | os.PathLike[str], raw: bytes | None) -> dict[str, Any]:
    """A result file's density_nb metadata in today's names; ``ResultFileError`` if it is missing, damaged or too new."""
    if raw is None:
        raise ResultFileError(f"{str(path)!r} was not written by DensityResult.to_parquet (no density_nb metadata).")
    try:
        meta = json.loads(raw)
    except ValueError:  # not JSON, or not UTF-8
        meta = None
    if not isinstance(meta, dict):
        raise ResultFileError(
            f"{str(path)!r}: its density_nb metadata is damaged (not a JSON object); "
            "the file cannot be read as a result. Write it again with result.to_parquet."
        )
    version = meta.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
        raise ResultFileError(
            f"{str(path)!r} has schema version {version!r}; this density_nb reads versions 1 to {SCHEMA_VERSION}. "
            "Upgrade density_nb (pip install -U density_nb), or re-run the trace with this version."
        )
    for old, new in _RENAMED.get(version, {}).items():
        meta[new] = meta.pop(old, None)
    missing = [key for key in _META_KEYS if meta.get(key) is None]
    if missing:
        raise ResultFileError(
            f"{str(path)!r}: its density_nb metadata is damaged (no {', '.join(missing)}); "
            "the file cannot be read as a result. Write it again with result.to_parquet."
        )
    return meta


@dataclass(eq=False)
class DensityResult:
    """Per-root density curves of one text.

    Per root (length R): ``roots`` (position whose next-token prediction is traced), ``total_edges``
    (|E| of that root's graph), ``entropy_full``, ``top_token_full``, ``top_prob_full``, ``loss_full``
    and ``next_token`` (-1 where the text ends).
    Per (root, stratum) ``[R, K]``: ``n_edges``, ``tv``, ``kl``, ``top1``, ``nu``, ``entropy``,
    ``loss``; ``top_token`` (each subgraph's top-1 token id); the baselines asked for (see
    ``config.BASELINES``): ``{tv,kl,top1}_random`` (random connected subgraphs, like for like),
    ``{tv,kl,top1}_random_residual`` (the same with every residual edge kept) and
    ``{tv,kl,top1}_inverse`` (the stratum ablated, the rest kept).
    Composition ``head_share [R, K, L, H]`` and ``mlp_share [R, K, L]``: share of that head's
    (MLP's) edges included; ``component_edges [R, K, 3]``: attention, MLP, residual edge counts;
    ``layer_edges [R, K, L]``: edges per layer.

    Naming: ``*_token`` is a token id, ``*_text`` its decoded text; ``*_full`` is the full model's
    (per root), the same name without it is each subgraph's (per root and stratum). Results are
    stored in root order; select by token position with ``at(position)``.
    """

    model: str
    text: str
    token_ids: np.ndarray  # [T] int64
    tokens: list[str]  # [T] the text piece of each token
    grid: np.ndarray  # [K] nominal sizes, increasing, last == 1.0 (the full graph)
    n_layers: int
    n_heads: int
    roots: np.ndarray = field(metadata=ROOT)  # [R] int64
    total_edges: np.ndarray = field(metadata=ROOT)  # [R] int64
    entropy_full: np.ndarray = field(metadata=ROOT)  # [R]
    top_token_full: np.ndarray = field(metadata=ROOT)  # [R] int64
    top_prob_full: np.ndarray = field(metadata=ROOT)  # [R]
    loss_full: np.ndarray = field(metadata=ROOT)  # [R] nan where the text has no next token
    next_token: np.ndarray = field(metadata=ROOT)  # [R] int64, -1 where the text ends
    n_edges: np.ndarray = field(metadata=STRATUM)  # [R, K] int64
    tv: np.ndarray = field(metadata=STRATUM)  # [R, K]
    kl: np.ndarray = field(metadata=STRATUM)  # [R, K]
    top1: np.ndarray = field(metadata=STRATUM)  # [R, K] bool
    nu: np.ndarray = field(metadata=STRATUM)  # [R, K] percent
    entropy: np.ndarray = field(metadata=STRATUM)  # [R, K]
    loss: np.ndarray = field(metadata=STRATUM)  # [R, K]
    head_share: np.ndarray = field(metadata=NESTED)  # [R, K, L, H] float32
    mlp_share: np.ndarray = field(metadata=NESTED)  # [R, K, L] float32
    component_edges: np.ndarray = field(metadata=NESTED)  # [R, K, 3] int64: attention, mlp, residual
    layer_edges: np.ndarray = field(metadata=NESTED)  # [R, K, L] int64
    top_token: np.ndarray | None = field(default=None, metadata=STRATUM)  # [R, K] int64 top-1 token of each subgraph
    tv_random: np.ndarray | None = field(default=None, metadata=STRATUM)  # [R, K]
    kl_random: np.ndarray | None = field(default=None, metadata=STRATUM)  # [R, K]
    top1_random: np.ndarray | None = field(default=None, metadata=STRATUM)  # [R, K] bool
    tv_random_residual: np.ndarray | None = field(
        default=None, metadata=STRATUM
    )  # [R, K] the same random subgraphs, every residual edge kept
    kl_random_residual: np.ndarray | None = field(default=None, metadata=STRATUM)  # [R, K]
    top1_random_residual: np.ndarray | None = field(default=None, metadata=STRATUM)  # [R, K] bool
    tv_inverse: np.ndarray | None = field(
        default=None, metadata=STRATUM
    )  # [R, K] the stratum's attention/MLP edges ablated, the rest and residuals kept
    kl_inverse: np.ndarray | None = field(default=None, metadata=STRATUM)  # [R, K]
    top1_inverse: np.ndarray | None = field(default=None, metadata=STRATUM)  # [R, K] bool
    topk_token: np.ndarray | None = field(default=None, metadata=NESTED)  # [R, K, k] int64 each subgraph's k most probable next tokens
    topk_prob: np.ndarray | None = field(default=None, metadata=NESTED)  # [R, K, k] their probabilities
    component_edges_random: np.ndarray | None = field(default=None, metadata=NESTED)  # [R, K, 3] the random strata's composition
    layer_edges_random: np.ndarray | None = field(default=None, metadata=NESTED)  # [R, K, L]
    input_edges: np.ndarray | None = field(default=None, metadata=ROOT)  # [R] int64 edges of the smallest stratum that reaches the input
    tv_empty: np.ndarray | None = field(
        default=None, metadata=ROOT
    )  # [R] TV(p_empty, p_full), the empty graph's output: uniform under RMSNorm (docs/method.md §5)
    topk_token_full: np.ndarray | None = field(default=None, metadata=ROOT_VECTOR)  # [R, k] int64 the full model's
    topk_prob_full: np.ndarray | None = field(default=None, metadata=ROOT_VECTOR)  # [R, k]
    edges_tv: np.ndarray | None = field(
        default=None, metadata=ROOT_VECTOR
    )  # [R, len(tv_levels)] int64 required edges for TV <= each level, by bisection (refine=True; docs/method.md §5)
    edges_top1: np.ndarray | None = field(default=None, metadata=ROOT)  # [R] int64 required edges for top-1 agreement, by bisection
    edges_nu: np.ndarray | None = field(default=None, metadata=ROOT_VECTOR)  # [R, 8] int64 required edges for nu >= each NUCLEUS_SIZES
    generated: np.ndarray | None = None  # [T] bool: tokens the model wrote (generation.generate), None for a given text
    top_text_full: list[str] = field(default_factory=list, metadata={"layout": "root_text"})  # [R] the full model's top-1 token, decoded
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fields_of(cls, *layouts: Layout) -> tuple[str, ...]:
        """The names of the per-root fields of these layouts (every per-root field when none is given),
        layout by layout, each in declaration order."""
        return tuple(f.name for layout in layouts or LAYOUTS for f in fields(cls) if f.metadata.get("layout") == layout)

    @classmethod
    def from_roots(
        cls, picks: Sequence[tuple[DensityResult, int]], text: str, token_ids: Any, tokens: list[str], generated: np.ndarray | None = None
    ) -> DensityResult:
        """One result of ``text`` from roots traced separately (each pick: a result of a prefix of the text,
        or of the text itself, and the index of one of its roots), in the order given."""
        first = picks[0][0]
        per_root = {
            name: np.stack([getattr(r, name)[j] for r, j in picks])
            for name in cls.fields_of("root", "root_vector", "stratum", "nested")
            if getattr(first, name) is not None
        }
        return cls(
            model=first.model,
            text=text,
            token_ids=np.asarray(token_ids, dtype=np.int64),
            tokens=list(tokens),
            grid=first.grid,
            n_layers=first.n_layers,
            n_heads=first.n_heads,
            top_text_full=[r.top_text_full[j] for r, j in picks] if first.top_text_full else [],
            settings=dict(first.settings),
            generated=generated,
            **per_root,
        )

    def take(self, indices: Sequence[int] | np.ndarray) -> DensityResult:
        """The same result holding only the roots at these indices (rows of every ``[R, ...]`` array), in that order."""
        rows = np.asarray(indices, dtype=np.int64)
        per_root = {
            name: getattr(self, name)[rows]
            for name in self.fields_of("root", "root_vector", "stratum", "nested")
            if getattr(self, name) is not None
        }
        top_text = [self.top_text_full[i] for i in rows] if self.top_text_full else []
        return dataclasses.replace(self, top_text_full=top_text, **per_root)

    # ---- derived numbers -------------------------------------------------------------------
    @property
    def auc_tv(self) -> np.ndarray:
        """[R] area under TV over log10 s from 1e-5 to 1 (0–5); higher = denser."""
        return np.array([auc_log(self.grid, row) for row in self.tv])

    @property
    def density(self) -> np.ndarray:
        """[R] ``auc_tv / 5`` in [0, 1]."""
        return self.auc_tv / -LOG_S_MIN

    @property
    def auc_kl(self) -> np.ndarray:
        """[R] the same area for KL(full ‖ subgraph) (nats × decades)."""
        return np.array([auc_log(self.grid, row) for row in self.kl])

    @property
    def s_top1(self) -> np.ndarray:
        """[R] smallest grid size whose stratum agrees with the full model's top-1 token."""
        return np.array([smallest_agreeing(self.grid, row)[0] for row in self.top1])

    def _need(self, name: str, why: str = "") -> np.ndarray:
        """Field ``name``, or an error that says why it is missing (default: saved by an older density_nb)."""
        value = getattr(self, name)
        if value is None:
            why = why or (
                f"it was saved by an older density_nb (schema before {SCHEMA_VERSION}). Trace the text again with this version to get it."
            )
            raise DensityNBError(f"This result has no {name}: {why}")
        return value

    @property
    def s_input(self) -> np.ndarray:
        """[R] ``input_edges / total_edges``: the size from which a subgraph reaches the input; every
        smaller stratum outputs the uniform distribution (the plateau, docs/method.md §8)."""
        return self._need("input_edges") / self.total_edges

    @property
    def tv_post_input(self) -> np.ndarray:
        """[R] mean TV over log10 s from the first grid size that reaches the input to 1 (docs/method.md §5):
        the density without the uniform plateau, not normalised. Its range starts at ``s_input``, which
        shrinks as the prompt grows: compare prompt lengths over a shared range (``analysis``)."""
        return np.array([tv_post_input(self.grid, row, si) for row, si in zip(self.tv, self.s_input)])

    @property
    def tv_post_input_over_empty(self) -> np.ndarray:
        """[R] ``tv_post_input`` divided by ``tv_empty`` (each TV over the empty graph's, then averaged):
        can exceed 1. ``tv_empty`` is a function of the full distribution, so this ratio re-couples to it
        (ρ with the entropy changes sign on SmolLM2: docs/method.md, the measure card). Formerly
        ``density_plateau_free``."""
        tv_empty, s_input = self._need("tv_empty"), self.s_input
        return np.array([tv_post_input_over_empty(self.grid, row, e, si) for row, e, si in zip(self.tv, tv_empty, s_input)])

    @property
    def density_plateau_free(self) -> np.ndarray:
        """Deprecated name of ``tv_post_input_over_empty`` (it divides by ``tv_empty``; the plateau-free
        measure is now ``tv_post_input``)."""
        warnings.warn(
            "density_plateau_free is now tv_post_input_over_empty (it divides by tv_empty, which re-couples it to the full "
            "distribution); the plateau-free density is tv_post_input.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.tv_post_input_over_empty

    @property
    def tv_mid(self) -> np.ndarray:
        """[R] mean TV over log10 s across the sizes ``settings["tv_mid"]`` (default 0.1–0.8), the curve linear
        in log10 s between grid sizes: a range that is the same for every prediction."""
        low, high = self.settings.get("tv_mid") or TV_MID
        return np.array([tv_between(self.grid, row, low, high) for row in self.tv])

    @property
    def tv_levels(self) -> tuple[float, ...]:
        """The TV levels of ``edges_tv``'s columns (``settings["tv_levels"]``)."""
        return tuple(self.settings.get("tv_levels") or TV_LEVELS)

    def required(self, condition: str) -> np.ndarray:
        """[R] the required size (edges / |E|) of ``condition``, found by bisection (``refine=True``):
        ``"tv10"`` (TV ≤ 0.1; any of ``tv_levels``), ``"top1"`` or ``"nu20"`` (ν ≥ 20 %, any of NUCLEUS_SIZES);
        docs/method.md §5 says exactly which size. The grid's sizes are ``s_top1`` and ``s_nucleus``."""
        return self.required_edges(condition) / self.total_edges

    def required_edges(self, condition: str) -> np.ndarray:
        """[R] int64 the edge count behind ``required(condition)``."""
        names = {tv_level_name(level): i for i, level in enumerate(self.tv_levels)}
        if condition in names:
            return self._refined("edges_tv")[:, names[condition]]
        if condition == "top1":
            return self._refined("edges_top1")
        if condition.startswith("nu") and condition[2:].isdigit() and int(condition[2:]) in NUCLEUS_SIZES:
            return self._refined("edges_nu")[:, NUCLEUS_SIZES.index(int(condition[2:]))]
        known = [*names, "top1", *(f"nu{c}" for c in NUCLEUS_SIZES)]
        raise DensityNBError(f"Unknown condition {condition!r}; this result's are: {', '.join(known)}.")

    def _refined(self, name: str) -> np.ndarray:
        return self._need(
            name, "required sizes are found by bisection only when traced with refine=True (the default for corpus runs). "
            "Trace again with trace(..., refine=True)."
        )  # fmt: skip

    def component_share(self, random: bool = False) -> np.ndarray:
        """[R, K, 3] share of each stratum's edges that are attention, MLP and residual edges; the
        last stratum (the full graph) is the base rate. ``random``: of the random baseline's strata."""
        edges = self._need("component_edges_random") if random else self.component_edges
        with np.errstate(invalid="ignore", divide="ignore"):
            return edges / edges.sum(-1, keepdims=True)

    def quartile_share(self, random: bool = False) -> np.ndarray:
        """[R, K, 4] share of each stratum's edges in each quarter of the layers (first quarter
        first; layers split as evenly as np.array_split does); the last stratum is the base rate."""
        edges = self._need("layer_edges_random") if random else self.layer_edges
        quarters = np.stack([part.sum(-1) for part in np.array_split(edges, 4, axis=-1)], axis=-1)  # [R, K, 4]
        with np.errstate(invalid="ignore", divide="ignore"):
            return quarters / quarters.sum(-1, keepdims=True)

    def s_nucleus(self, level: float) -> np.ndarray:
        """[R] the smallest grid size whose shared nucleus ν is at least ``level`` percent (the
        published "required size for nucleus k"); the full graph always has ν = 99."""
        return np.array([smallest_at_least(self.grid, row, level) for row in self.nu])

    @property
    def s_top1_stable(self) -> np.ndarray:
        """[R] smallest grid size from which on every larger stratum agrees on the top-1 token."""
        return np.array([smallest_agreeing(self.grid, row)[1] for row in self.top1])

    # ---- tables ------------------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """One row per root: the token, what comes next, the full model's view and the density numbers."""
        has_next = self.roots + 1 < len(self.tokens)
        df = pd.DataFrame(
            {
                "position": self.roots,
                "n_tokens": self.roots + 1,
                "token_text": [self.tokens[r] for r in self.roots],
                "next_token": self.next_token,
                "next_text": [self.tokens[r + 1] if ok else "" for r, ok in zip(self.roots, has_next)],
                "top_token_full": self.top_token_full,
                "top_text_full": self.top_text_full or [""] * len(self.roots),
                "top_prob_full": self.top_prob_full,
                "entropy_full": self.entropy_full,
                "loss_full": self.loss_full,
                "density": self.density,
                "auc_tv": self.auc_tv,
                "auc_kl": self.auc_kl,
                "s_top1": self.s_top1,
                "s_top1_stable": self.s_top1_stable,
                "total_edges": self.total_edges,
            }
        )
        for name in ("random", "random_residual", "inverse"):
            tv = getattr(self, f"tv_{name}")
            if tv is not None:
                df[f"density_{name}"] = np.array([auc_log(self.grid, row) for row in tv]) / -LOG_S_MIN
        if self.input_edges is not None:
            df["input_edges"] = self.input_edges
            df["s_input"] = self.s_input
            df["tv_empty"] = self.tv_empty
            df["tv_post_input"] = self.tv_post_input
            df["tv_post_input_over_empty"] = self.tv_post_input_over_empty
        df["tv_mid"] = self.tv_mid
        for level in NUCLEUS_SIZES:
            df[f"s_nu{level}"] = self.s_nucleus(level)
        if self.edges_tv is not None:
            for j, tv_level in enumerate(self.tv_levels):
                df[f"s_{tv_level_name(tv_level)}"] = self.edges_tv[:, j] / self.total_edges
                df[f"edges_{tv_level_name(tv_level)}"] = self.edges_tv[:, j]
        if self.edges_top1 is not None:
            df["s_top1_exact"] = self.edges_top1 / self.total_edges
            df["edges_top1"] = self.edges_top1
        if self.edges_nu is not None:
            for i, level in enumerate(NUCLEUS_SIZES):
                df[f"s_nu{level}_exact"] = self.edges_nu[:, i] / self.total_edges
                df[f"edges_nu{level}"] = self.edges_nu[:, i]
        for name in self.fields_of("root"):  # a per-root number the columns above do not show yet
            value = getattr(self, name)
            if name != "roots" and name not in df and value is not None:
                df[name] = value
        return df

    def index(self, position: int) -> int:
        """The root index (row of every ``[R, ...]`` array) of the prediction at token ``position``."""
        n_tokens = len(self.tokens)
        if not isinstance(position, (int, np.integer)) or not -n_tokens <= position < n_tokens:
            raise IndexError(f"position must be a token position in 0..{n_tokens - 1}, got {position!r}.")
        hits = np.flatnonzero(self.roots == position % n_tokens)
        if not hits.size:
            raise KeyError(
                f"Position {position} was not traced; traced positions: {_positions_text(self.roots)}. "
                f"Trace it with trace(model, text, roots=[{position}])."
            )
        return int(hits[0])

    def at(self, position: int) -> RootResult:
        """Everything about the prediction made at token ``position`` (negative counts from the end)."""
        i = self.index(position)
        known = {f.name for f in fields(RootResult)}
        present = [
            name for name in self.fields_of("root", "root_vector", "stratum", "nested") if name in known and getattr(self, name) is not None
        ]
        values = {name: getattr(self, name)[i] for name in present}
        return RootResult(
            position=int(self.roots[i]),
            token_text=self.tokens[int(self.roots[i])],
            grid=self.grid,
            density=float(self.density[i]),
            auc_tv=float(self.auc_tv[i]),
            auc_kl=float(self.auc_kl[i]),
            s_top1=float(self.s_top1[i]),
            s_top1_stable=float(self.s_top1_stable[i]),
            top_text_full=self.top_text_full[i] if self.top_text_full else "",
            **{name: value.item() if name in self.fields_of("root") else value for name, value in values.items() if name != "roots"},
        )

    def curves(self, composition: bool = False) -> pd.DataFrame:
        """Long format: one row per (root, stratum). ``composition``: each stratum's composition behind
        (edges per component ``edges_attn``, ``edges_mlp``, ``edges_res`` and per layer ``layer_edges``, of
        the random strata too where traced, with ``_random``; head shares; top-k), as corpus runs keep it."""
        r_count, k_count = self.tv.shape
        cols: dict[str, Any] = {
            "position": np.repeat(self.roots, k_count),
            "stratum": np.tile(np.arange(k_count), r_count),
            "s": np.tile(self.grid, r_count),
            "s_actual": (self.n_edges / self.total_edges[:, None]).ravel(),
        }
        if self.input_edges is not None:  # strata that hold an edge leaving an input embedding: only these compute anything (§8)
            cols["reaches_input"] = (self.n_edges >= self.input_edges[:, None]).ravel()
        for name in self.fields_of("stratum"):
            value = getattr(self, name)
            if value is not None:
                cols[name] = value.ravel()
        curves = pd.DataFrame(cols)
        if not composition:
            return curves
        rows = r_count * k_count
        for suffix, edges, layers in (
            ("", self.component_edges, self.layer_edges),
            ("_random", self.component_edges_random, self.layer_edges_random),
        ):
            if edges is not None and layers is not None:
                comp = edges.reshape(-1, 3)
                curves[f"edges_attn{suffix}"], curves[f"edges_mlp{suffix}"], curves[f"edges_res{suffix}"] = (
                    comp[:, 0],
                    comp[:, 1],
                    comp[:, 2],
                )
                curves[f"layer_edges{suffix}"] = list(layers.reshape(rows, -1))
        curves["head_share"] = list(self.head_share.reshape(rows, -1))  # [L * H] share of each head's edges kept
        for name in ("topk_token", "topk_prob"):
            value = getattr(self, name)
            if value is not None:
                curves[name] = list(value.reshape(rows, -1))
        return curves

    def corpus_tables(self, passage_id: int, words: int, **columns: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
        """This result as a corpus run's rows (``corpus.store``): the summary with ``passage_id``, ``model``,
        ``words`` and ``columns`` (the passage's prompt, next word, ...) in front; the curves with
        ``passage_id``, ``model`` and ``words`` in front and each stratum's composition behind
        (``curves(composition=True)``)."""
        front = {"passage_id": np.int64(passage_id), "model": self.model, "words": np.int64(words)}
        summary = self.summary()
        summary = pd.concat([pd.DataFrame({**front, **columns}, index=summary.index), summary], axis=1)
        curves = self.curves(composition=True)
        for name, value in reversed(front.items()):
            curves.insert(0, name, value)
        return summary, curves

    # ---- persistence ----------------------------------------------------------------------------
    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write one parquet file (one row per (root, stratum)); written to a temp file, then renamed."""
        r_count, k_count = self.tv.shape
        table = pa.Table.from_pandas(self.curves(), preserve_index=False)
        for name in self.fields_of("root", "root_vector"):
            value = getattr(self, name)
            if value is not None:  # [R, ...] -> one row per (root, stratum)
                column = np.repeat(value, k_count, axis=0)
                table = table.append_column(f"root_{name}", pa.array(list(column) if column.ndim > 1 else column))
        for name in self.fields_of("nested"):
            value = getattr(self, name)
            if value is not None:
                table = table.append_column(name, pa.array(list(value.reshape(r_count * k_count, -1))))
        meta = {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "text": self.text,
            "token_ids": self.token_ids.tolist(),
            "tokens": self.tokens,
            "grid": self.grid.tolist(),
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "top_text_full": self.top_text_full,
            "settings": self.settings,
            "generated": None if self.generated is None else self.generated.tolist(),
            "shapes": {name: list(getattr(self, name).shape[2:]) for name in self.fields_of("nested") if getattr(self, name) is not None},
        }
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"density_nb": json.dumps(meta).encode()})
        return atomic_write(path, lambda tmp: pq.write_table(table, tmp))

    @classmethod
    def from_parquet(cls, path: str | os.PathLike[str]) -> DensityResult:
        """Read what ``to_parquet`` wrote (exact round trip); files of older schema versions load too."""
        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            raise ResultFileError(f"{str(path)!r} does not exist: give the path of a file written by DensityResult.to_parquet.") from None
        except (pa.ArrowInvalid, OSError) as err:
            raise ResultFileError(
                f"{str(path)!r} is not a readable parquet file ({err}); it is damaged or not a result: write it again with result.to_parquet."
            ) from None
        meta = _metadata(path, (table.schema.metadata or {}).get(b"density_nb"))
        grid = np.array(meta["grid"], dtype=np.float64)
        k_count, n_layers, n_heads = len(grid), meta["n_layers"], meta["n_heads"]
        r_count = table.num_rows // k_count
        topk = len(table.column("root_topk_token_full")[0]) if r_count and "root_topk_token_full" in table.column_names else 0

        def column(name: str) -> np.ndarray:
            return table.column(name).to_numpy(zero_copy_only=False)

        def nested(name: str, tail: tuple[int, ...], dtype: Any) -> np.ndarray:
            flat = np.stack(list(column(name))) if r_count else np.zeros((0, *tail))
            return flat.astype(dtype).reshape(r_count, k_count, *tail)

        tails = {
            "head_share": (n_layers, n_heads),
            "mlp_share": (n_layers,),
            "component_edges": (3,),
            "layer_edges": (n_layers,),
            "component_edges_random": (3,),
            "layer_edges_random": (n_layers,),
        }
        dtypes = {"head_share": np.float32, "mlp_share": np.float32, "topk_prob": np.float64, "topk_prob_full": np.float64}

        kwargs: dict[str, Any] = {
            "model": meta["model"],
            "text": meta["text"],
            "token_ids": np.array(meta["token_ids"], dtype=np.int64),
            "tokens": list(meta["tokens"]),
            "grid": grid,
            "n_layers": n_layers,
            "n_heads": n_heads,
            "top_text_full": list(meta["top_text_full"]),
            "settings": meta["settings"],
            "generated": None if meta.get("generated") is None else np.array(meta["generated"], dtype=bool),
        }
        names = set(table.column_names)
        for name in cls.fields_of("nested"):
            if name in names:
                tail = (
                    tuple(meta["shapes"][name]) if name in meta.get("shapes", {}) else tails.get(name, (topk,))
                )  # older files: known tails
                kwargs[name] = nested(name, tail, dtypes.get(name, np.int64))
        for name in cls.fields_of("root"):
            if f"root_{name}" in names:
                kwargs[name] = column(f"root_{name}")[::k_count].copy()
        for name in cls.fields_of("root_vector"):
            if f"root_{name}" in names:
                values = column(f"root_{name}")[::k_count]
                kwargs[name] = (np.stack(list(values)) if r_count else np.zeros((0, topk))).astype(dtypes.get(name, np.int64))
        for name in cls.fields_of("stratum"):
            if name in names:
                kwargs[name] = column(name).reshape(r_count, k_count).copy()
        return cls(**kwargs)

    def equals(self, other: DensityResult) -> bool:
        """True when every field is identical (arrays bitwise, NaNs equal)."""
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if a is None or b is None or a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                    return False
            elif a != b:
                return False
        return True

    def subgraph(self, model: Any, position: int, stratum: int) -> Subgraph:
        """Stratum ``stratum`` of the prediction at token ``position`` as a graph (edges with weights),
        derived again from ``model`` (the one this result was traced with) and the result's settings."""
        from density_nb.method.subgraphs import subgraph  # torch: only to derive a stratum again

        i = self.index(position)
        known = {k: self.settings[k] for k in ("weighting", "prepend_bos", "seed") if k in self.settings}
        sub = subgraph(model, self.text, int(self.roots[i]), float(self.grid[stratum]), TraceConfig(**known))
        if sub.model != self.model or sub.n_edges != self.n_edges[i, stratum] or list(sub.tokens) != list(self.tokens):
            raise DensityNBError(
                f"This result was traced with another model or tokenization than {sub.model!r} "
                f"({self.n_edges[i, stratum]} edges in this stratum, {sub.n_edges} now): pass the model it was traced with ({self.model!r})."
            )
        return sub

    def with_baselines(self, model: Any, baselines: Sequence[str]) -> DensityResult:
        """This result with the baselines ``baselines`` (any of ``config.BASELINES``) added: only their
        masked passes run (one forward for the weights, the strata again; the traced passes are kept),
        and the numbers are bitwise those of ``trace(..., baselines=...)`` with the same settings from the
        start (a result from ``trace_steps`` or ``generate`` groups its roots otherwise, so there they agree
        to float rounding). ``model``: the one this result was traced with."""
        from density_nb.method.pipeline import baseline_fields  # torch: only to run the baselines' passes

        config = TraceConfig.from_settings(self.settings)
        wanted = TraceConfig(baselines=cast("tuple[Baseline, ...]", tuple(baselines))).baselines  # checked and ordered
        added, settings = baseline_fields(model, self.text, self.roots.tolist(), self.token_ids, self.settings, wanted)
        if not added:
            return dataclasses.replace(self)
        extra = {k: v for k, v in self.settings.items() if k not in config.settings()}  # e.g. a generation's own settings
        return dataclasses.replace(self, **added, settings={**settings, **extra})

    # ---- views ---------------------------------------------------------------------------------
    def widget(self, tokenizer: Any = None) -> Any:
        """The linked explorer (token strip, s-slider with TV/KL curve and baselines, what the subgraph
        predicts, layer × head grid); ``tokenizer`` (or the loaded model) names the predicted tokens."""
        from density_nb.views import DensityExplorer  # anywidget: the widgets extra

        return DensityExplorer(self, tokenizer=tokenizer)

    def to_html(self, path: str | os.PathLike[str], tokenizer: Any = None) -> Path:
        """A standalone HTML file with the explorer that works offline from disk."""
        return self.widget(tokenizer).to_html(path)

    def __repr__(self) -> str:
        return (
            f"DensityResult(model={self.model!r}, tokens={len(self.tokens)}, roots={len(self.roots)}, "
            f"strata={len(self.grid)}, mean density={np.nanmean(self.density) if len(self.roots) else float('nan'):.3f})"
        )


class ResultFileError(DensityNBError):
    """A result file cannot be read; the message names the file and what to do."""


def _positions_text(roots: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in roots[:12])
    return shown + (f", ... ({len(roots)} in all)" if len(roots) > 12 else "")


@dataclass(eq=False)
class RootResult:
    """One prediction's numbers, from ``DensityResult.at(position)``; [K] arrays are per stratum."""

    position: int
    token_text: str
    grid: np.ndarray  # [K]
    density: float
    auc_tv: float
    auc_kl: float
    s_top1: float
    s_top1_stable: float
    total_edges: int
    entropy_full: float
    top_token_full: int
    top_text_full: str
    top_prob_full: float
    loss_full: float
    next_token: int  # -1 where the text ends
    n_edges: np.ndarray  # [K]
    tv: np.ndarray  # [K]
    kl: np.ndarray  # [K]
    top1: np.ndarray  # [K] bool
    nu: np.ndarray  # [K]
    entropy: np.ndarray  # [K]
    loss: np.ndarray  # [K]
    head_share: np.ndarray  # [K, L, H]
    mlp_share: np.ndarray  # [K, L]
    component_edges: np.ndarray  # [K, 3]
    layer_edges: np.ndarray  # [K, L]
    top_token: np.ndarray | None = None  # [K]
    tv_random: np.ndarray | None = None  # [K]
    kl_random: np.ndarray | None = None  # [K]
    top1_random: np.ndarray | None = None  # [K]
    tv_random_residual: np.ndarray | None = None  # [K]
    kl_random_residual: np.ndarray | None = None  # [K]
    top1_random_residual: np.ndarray | None = None  # [K]
    tv_inverse: np.ndarray | None = None  # [K]
    kl_inverse: np.ndarray | None = None  # [K]
    top1_inverse: np.ndarray | None = None  # [K]
    component_edges_random: np.ndarray | None = None  # [K, 3]
    layer_edges_random: np.ndarray | None = None  # [K, L]
    input_edges: int | None = None  # edges of the smallest stratum that reaches the input
    tv_empty: float | None = None  # TV(p_empty, p_full)
    topk_token: np.ndarray | None = None  # [K, k]
    topk_prob: np.ndarray | None = None  # [K, k]
    topk_token_full: np.ndarray | None = None  # [k]
    topk_prob_full: np.ndarray | None = None  # [k]
    edges_tv: np.ndarray | None = None  # [len(tv_levels)] required edges for TV <= each level (refine=True)
    edges_top1: int | None = None  # required edges for top-1 agreement (refine=True)
    edges_nu: np.ndarray | None = None  # [8] required edges for nu >= each NUCLEUS_SIZES (refine=True)
