"""``CorpusDashboard``: a corpus run's density distribution, density against a column with Spearman ρ,
mean TV curve, composition and head frequencies, linked by brushing in the browser; a click opens a
passage's explorer. What it sends is ``dashboard_state``'s; its static drawing is ``dashboard_chart``'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets
import numpy as np
import pandas as pd
import traitlets

from density_nb.views.assets import STATIC
from density_nb.views.dashboard_state import COLUMNS, HEAD_SIZES, MEASURES, DashboardError, dashboard_state, summary_columns
from density_nb.views.data import decoder
from density_nb.views.explorer import SVG_MIME, DensityExplorer, _Widget
from density_nb.views.theme import colour_range, known_measures

SNAPSHOT_MAX = 2000  # passages up to which a notebook keeps the static SVG (5,000: 1.9 MB, 1.6 s)


# ---- the widget -------------------------------------------------------------------------------------------
class CorpusDashboard(_Widget):
    """A corpus run's views, linked in the browser: density distribution (published and plateau-free) with
    a brush, density against a column with Spearman ρ, mean TV curve with its 25–75 % band (phases marked),
    composition against s beside its base rate, layer × head inclusion frequency, two runs' per-prompt
    scatter. Traits: ``measure``, ``column``, ``head_size`` (index), ``brush`` (the selection) and
    ``opened`` (the passage whose explorer is open). A click on a passage (or ``open_passage(passage_id)``)
    shows its explorer below, re-traced with the run's settings, its tokens named by ``tokenizer`` (a tokenizer, a
    loaded model, or a function returning one when first needed; default ``model``; ``CorpusRun.widget`` gives the
    run's recorded one) and coloured on the run's scale (``fit``)."""

    _esm = STATIC / "dashboard.js"
    _css = "\n".join((STATIC / name).read_text(encoding="utf-8") for name in ("density.css", "dashboard.css"))  # type: ignore[assignment]  # CSS text: the shared base styles first

    arrays = traitlets.Bytes(b"").tag(sync=True)
    measure = traitlets.Unicode("density").tag(sync=True)
    column = traitlets.Unicode("entropy_full").tag(sync=True)
    head_size = traitlets.Int(0).tag(sync=True)
    # {} (no selection), {"kind": "range", "measure", "lo", "hi"} or {"kind": "box", "measure", "column", "x": [lo, hi], "y": [lo, hi]}
    brush = traitlets.Dict().tag(sync=True)
    opened = traitlets.Dict().tag(sync=True)  # {"passage_id", "state": "tracing" | "done" | "failed", "note"}

    def __init__(
        self,
        run: Any,
        compare: Any = None,
        *,
        model: Any = None,
        results: Mapping[int, Any] | None = None,
        counts: pd.Series | None = None,
        head_sizes: Sequence[float] = HEAD_SIZES,
        text: bool = True,
        labels: tuple[str, str] | None = None,
        tokenizer: Any = None,
        **kwargs: Any,
    ) -> None:
        self._tokenizer_source = tokenizer if tokenizer is not None else model
        decode = decoder(self.tokenizer) if "prompt" not in run.summary else None  # names the next tokens a run holds no text of
        data, arrays = dashboard_state(run, compare, counts=counts, head_sizes=head_sizes, text=text, labels=labels, decode=decode)
        super().__init__(view="dashboard", data=data, arrays=arrays, **kwargs)
        self.run, self.compare = run, compare
        self._model = model
        self._results: dict[int, Any] = dict(results or {})
        self._summary = summary_columns(run.summary.drop_duplicates("passage_id").sort_values("passage_id", kind="stable"), counts)
        self.explorer: Any = None
        self._panel: Any = None
        self.on_msg(self._on_message)

    # ---- validation ------------------------------------------------------------------------------
    @traitlets.validate("measure", "column")
    def _check_choice(self, proposal: Any) -> str:
        name = proposal["trait"].name  # "measure" or "column": one of this run's measures / columns
        offered = self.data.get(name + "s", []) if self.data else []
        keys = [o["key"] for o in offered] if self.data else list(MEASURES if name == "measure" else COLUMNS)
        if proposal["value"] not in keys:
            raise traitlets.TraitError(f"{name} must be one of {', '.join(keys)}, not {proposal['value']!r}.")
        return str(proposal["value"])

    # ---- selection -------------------------------------------------------------------------------------
    def selected(self) -> pd.DataFrame:
        """The summary rows of the brushed passages (all rows when nothing is brushed), by the browser's
        rule: bounds inclusive, on the values as float32 (what the page holds)."""
        b = self.brush
        frame = self._summary
        if not b:
            return frame
        if b.get("kind") == "range":
            v = frame[b["measure"]].to_numpy(dtype=np.float32)
            keep = (v >= np.float32(b["lo"])) & (v <= np.float32(b["hi"]))
        elif b.get("kind") == "box":
            x = frame[b["column"]].to_numpy(dtype=np.float32)
            y = frame[b["measure"]].to_numpy(dtype=np.float32)
            keep = (x >= np.float32(b["x"][0])) & (x <= np.float32(b["x"][1])) & (y >= np.float32(b["y"][0])) & (y <= np.float32(b["y"][1]))
        else:
            raise DashboardError(f"brush must be {{}}, a 'range' or a 'box', got {b!r}.")
        return frame[keep]

    # ---- click-through ---------------------------------------------------------------------------------
    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "open":
            self.open_passage(int(content["passage_id"]))

    def open_passage(self, passage_id: int) -> Any:
        """The explorer of one passage: from ``results`` (given or opened before), else re-traced with the
        run's settings (``CorpusRun.passage``); shown below the dashboard and returned."""
        pid = int(passage_id)
        if pid not in set(self._summary["passage_id"].tolist()):
            raise DashboardError(f"Passage {pid} is not in this run ({len(self._summary)} passages); pick one the dashboard shows.")
        self.opened = {"passage_id": pid, "state": "tracing", "note": ""}
        try:
            if pid not in self._results:
                self._results[pid] = self.run.passage(pid, model=self._model)
            result = self._results[pid]
            self.explorer = DensityExplorer(result, tokenizer=self.tokenizer, fit=self.fit())
        except Exception as err:
            self.opened = {"passage_id": pid, "state": "failed", "note": f"{type(err).__name__}: {err}"}
            raise
        self.panel.children = (self, self.explorer)
        self.opened = {"passage_id": pid, "state": "done", "note": ""}
        return self.explorer

    @property
    def tokenizer(self) -> Any:
        """What names the tokens: the ``tokenizer`` given (a function that returns one is called now, once), else
        the ``model``; None: ids only."""
        source = self._tokenizer_source
        if callable(source) and not hasattr(source, "decode") and not hasattr(source, "tokenizer"):
            self._tokenizer_source = source = source()
        return source

    def fit(self) -> dict[str, tuple[float, float]]:
        """The run's fitted colour range of each measure it holds: an explorer opened from the dashboard colours its
        tokens on the run's scale, so passages compare."""
        return {m: colour_range(self._summary[m].to_numpy(dtype=float), m) for m in known_measures(self._summary.columns)}

    @property
    def panel(self) -> Any:
        """What a notebook displays: the dashboard, and below it the explorer of the passage last opened."""
        if self._panel is None:
            self._panel = ipywidgets.VBox([self])
        return self._panel

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The panel (dashboard and explorer), plus a static SVG of the views for readers without a kernel
        (up to ``SNAPSHOT_MAX`` passages: a larger run's SVG is megabytes; ``save`` it instead)."""
        bundle = self.panel._repr_mimebundle_(**kwargs)  # ipywidgets: a dict (or None without a kernel)
        if bundle is not None and self.data["n"] <= SNAPSHOT_MAX:
            with contextlib.suppress(ImportError):  # vl-convert-python draws it (the notebooks extra)
                bundle[SVG_MIME] = self.to_svg()
        return bundle

    # ---- static export -----------------------------------------------------------------------------
    def chart(self) -> Any:
        """The views as one Altair chart, for the current measure, column, head size and selection."""
        from density_nb.views.dashboard_chart import dashboard_chart  # altair: only for the static drawing

        return dashboard_chart(self)

    def to_svg(self) -> str:
        """``chart()`` as an SVG document (vl-convert: offline, no browser); ``save`` writes it as .svg or .png."""
        try:
            import vl_convert  # optional (the notebooks extra): only for static images
        except ImportError as err:
            raise ImportError("Drawing the dashboard as SVG needs vl-convert-python: pip install vl-convert-python.") from err
        from density_nb.views.charts import _vl_version  # altair, as above

        return str(vl_convert.vegalite_to_svg(self.chart().to_dict(), vl_version=_vl_version()))
