"""``TraceConfig``: the settings of a trace, one frozen object shared by ``trace``, ``trace_many``,
corpus runs and the CLI (whose choices come from the constants here). Validated when built, so
bad settings fail before any model work. Imports no torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from density_nb.errors import TraceInputError

BUILTIN_MODELS = ("smollm2-135m", "gemma3-270m", "tiny-llama", "tiny-gemma3")  # load_model's names (models.py)
DEFAULT_MODEL = "smollm2-135m"

Weighting = Literal["l1", "ifr", "random"]
WEIGHTINGS: tuple[Weighting, ...] = ("l1", "ifr", "random")
Norms = Literal["live", "frozen"]
NORMS: tuple[Norms, ...] = ("live", "frozen")
Baseline = Literal["random", "random_residual", "inverse"]
BASELINES: dict[Baseline, str] = {
    "random": "random connected subgraphs of the same sizes, grown by the same rules (like for like)",
    "random_residual": "the same random subgraphs with every residual edge kept (as the published baselines keep them)",
    "inverse": "the stratum's attention and MLP edges ablated, every other edge and every residual kept (the published inverse)",
}
PAPER_GRID = (
    1e-5, 2e-5, 4e-5, 8e-5, 1e-4, 2e-4, 4e-4, 8e-4, 1e-3, 1.2e-3, 1.4e-3, 2e-3, 3e-3, 4e-3, 6e-3, 8e-3,
    1e-2, 2e-2, 4e-2, 6e-2, 8e-2, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0,
)  # fmt: skip
FAST_GRID = (1e-5, 4.4e-5, 1.9e-4, 8.5e-4, 3.7e-3, 1.6e-2, 7.2e-2, 0.32, 1.0)  # 10**linspace(-5, -0.5, 8), 2 digits
GRIDS = {"fast": FAST_GRID, "paper": PAPER_GRID}
DEFAULT_MAX_TOKENS = 256
TV_LEVELS = (0.1, 0.5)  # required sizes s_tv10, s_tv50: the smallest subgraph with TV <= level (docs/method.md §5)
TV_MID = (0.1, 0.8)  # tv_mid: the mean TV over this range of sizes
REFINE_RTOL = 0.05  # required sizes are bisected until the bracket is at most this share of its upper end (or one edge)


def make_grid(grid: str | Sequence[float] | np.ndarray) -> np.ndarray:
    """``"paper"`` (26 sizes + full), ``"fast"`` (8 log-spaced sizes + full) or a list of sizes in
    (0, 1]; the full graph (1.0) is always appended as the last stratum."""
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise TraceInputError(f"Unknown grid {grid!r}: use 'paper', 'fast' or a list of sizes in (0, 1].")
        return np.array(GRIDS[grid], dtype=np.float64)
    try:
        sizes = np.asarray(grid, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise TraceInputError(f"grid must be 'paper', 'fast' or a list of sizes in (0, 1], got {grid!r}.") from None
    if sizes.size == 0:
        raise TraceInputError("The grid is empty: give at least one size in (0, 1], e.g. [1e-3, 1e-2, 0.1].")
    bad = sizes[~((sizes > 0) & (sizes <= 1))]
    if bad.size:
        raise TraceInputError(f"Grid sizes must lie in (0, 1] (a share of the graph's edges); got {bad.tolist()}.")
    return np.unique(np.append(sizes, 1.0))


def _choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise TraceInputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}.")


def _fraction(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not low <= value < high:
        raise TraceInputError(f"{name} must be a number in [{low}, {high}), got {value!r}.")


def _level_name(level: float) -> str:
    return f"{round(100 * level)}"


def tv_level_name(level: float) -> str:
    """The column suffix of a TV level: 0.1 -> ``tv10`` (``s_tv10``, ``edges_tv10``)."""
    return f"tv{_level_name(level)}"


def _integer(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise TraceInputError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")


@dataclass(frozen=True)
class TraceConfig:
    """How to trace. ``grid``: ``"fast"`` (8 sizes + full), ``"paper"`` (26 + full) or sizes in (0, 1];
    ``weighting``: edge weights ``"l1"`` (the papers'), ``"ifr"`` or ``"random"``; ``norms``:
    ``"live"`` (published) or ``"frozen"`` post-norm scales (only post-norm models differ);
    ``baselines``: also evaluate these (any of ``BASELINES``; each costs one more set of masked
    passes); ``prepend_bos``:
    None keeps the tokenizer's default, True/False forces a BOS token; ``max_tokens``: longest text
    accepted; ``seed``: for random weights and the baseline; ``max_rows``: strata × roots × positions
    per masked pass (memory; several roots share a pass); ``topk``: how many of each subgraph's most
    probable next tokens to keep (what "the subgraph predicts"); ``refine``: also find the required
    sizes (TV ≤ each of ``tv_levels``, top-1 agreement, each nucleus level) by bisection over the edge
    ranking between the grid sizes that bracket them (extra masked passes: docs/method.md §5), to one
    edge or ``refine_rtol`` of the size; ``tv_mid``: the range of sizes ``tv_mid`` averages TV over."""

    grid: str | tuple[float, ...] = "fast"
    weighting: Weighting = "l1"
    norms: Norms = "live"
    baselines: tuple[Baseline, ...] = ()
    prepend_bos: bool | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS
    seed: int = 0
    max_rows: int = 4096
    topk: int = 5
    refine: bool = False
    refine_rtol: float = REFINE_RTOL
    tv_levels: tuple[float, ...] = TV_LEVELS
    tv_mid: tuple[float, float] = TV_MID

    def __post_init__(self) -> None:
        if not isinstance(self.grid, str):
            object.__setattr__(self, "grid", tuple(float(g) for g in make_grid(self.grid)[:-1]) or (1.0,))
        make_grid(self.grid)
        _choice("weighting", self.weighting, WEIGHTINGS)
        _choice("norms", self.norms, NORMS)
        if isinstance(self.baselines, str):
            raise TraceInputError(
                f"baselines takes a list of names, e.g. baselines=[{self.baselines!r}]; choose from {', '.join(BASELINES)}."
            )
        for name in self.baselines:
            _choice("each baseline", name, tuple(BASELINES))
        object.__setattr__(self, "baselines", tuple(name for name in BASELINES if name in self.baselines))
        _choice("prepend_bos", self.prepend_bos, (None, True, False))
        _integer("max_tokens", self.max_tokens, 2)
        _integer("seed", self.seed, 0)
        _integer("max_rows", self.max_rows, 1)
        _integer("topk", self.topk, 1)
        if not isinstance(self.refine, (bool, np.bool_)):
            raise TraceInputError(f"refine must be True or False, got {self.refine!r}.")
        object.__setattr__(self, "refine", bool(self.refine))
        _fraction("refine_rtol", self.refine_rtol, 0.0, 1.0)
        try:
            levels = tuple(sorted({float(v) for v in self.tv_levels}))
            mid = tuple(float(v) for v in self.tv_mid)
        except (TypeError, ValueError):
            raise TraceInputError(
                f"tv_levels and tv_mid take numbers, e.g. tv_levels=(0.1, 0.5), tv_mid=(0.1, 0.8); got {self.tv_levels!r}, {self.tv_mid!r}."
            ) from None
        if not levels or any(not 0 < v < 1 for v in levels) or len({_level_name(v) for v in levels}) < len(levels):
            raise TraceInputError(
                f"tv_levels must be distinct TV levels in (0, 1) (whole percents apart), e.g. (0.1, 0.5); got {self.tv_levels!r}."
            )
        if len(mid) != 2 or not 0 < mid[0] < mid[1] <= 1:
            raise TraceInputError(
                f"tv_mid must be a range of sizes (low, high) with 0 < low < high <= 1, e.g. (0.1, 0.8); got {self.tv_mid!r}."
            )
        object.__setattr__(self, "tv_levels", levels)
        object.__setattr__(self, "tv_mid", mid)

    @property
    def sizes(self) -> np.ndarray:
        """[K] the grid's sizes, increasing, the full graph (1.0) last."""
        return make_grid(self.grid)

    def replace(self, **changes: Any) -> TraceConfig:
        """A copy with some settings changed; an unknown name is an error that lists the known ones."""
        known = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(known))
        if unknown:
            raise TraceInputError(f"Unknown trace setting(s) {', '.join(unknown)}; the settings are: {', '.join(known)}.")
        return dataclasses.replace(self, **changes)

    def settings(self) -> dict[str, Any]:
        """The settings as plain JSON values (what results and run manifests record)."""
        out = dataclasses.asdict(self)
        out["grid"] = self.grid if isinstance(self.grid, str) else list(self.grid)
        out["baselines"] = list(self.baselines)
        out["tv_levels"], out["tv_mid"] = list(self.tv_levels), list(self.tv_mid)
        return out

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> TraceConfig:
        """The config that ``settings()`` recorded; names that are not trace settings (a run
        manifest's ``model``, ``words``, ...) are skipped."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls().replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items() if k in known})


def resolve(config: TraceConfig | None, changes: dict[str, Any], default: TraceConfig | None = None) -> TraceConfig:
    """``config`` (or ``default``, or ``TraceConfig()``) with ``changes`` applied."""
    return (config or default or TraceConfig()).replace(**changes) if changes else (config or default or TraceConfig())
