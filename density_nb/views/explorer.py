"""anywidget classes: one ESM (``static/density.js``) renders every view from the same compact data; every view
also sends ``static/common.js`` (the module its ESM imports) and ``static/theme.json``."""

from __future__ import annotations

import base64
import html
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets
from ipywidgets.embed import dependency_state, embed_data
from ipywidgets.widgets.widget import _remove_buffers

from density_nb.files import write_text
from density_nb.views import svg as _svg
from density_nb.views.assets import STATIC, compact_json, hot_reload, watched
from density_nb.views.data import compact_data, share_codes
from density_nb.views.export import write_image

SVG_MIME = "image/svg+xml"


class _Widget(anywidget.AnyWidget):
    """Shared base: one ESM (``static/density.js``) draws the view named by ``view`` from ``data``; ``save`` and
    the notebook snapshot draw the same view in Python (``_svg``). ``_esm`` and ``_css`` are paths, so that
    anywidget's hot reload (``ANYWIDGET_HMR=1``) re-sends them when they are saved; ``_common`` and ``_theme``
    (static/common.js, which the ESM imports, and static/theme.json) reload the same way."""

    _esm: str | os.PathLike[str] = STATIC / "density.js"
    _css = STATIC / "density.css"
    _COMMON, _THEME = watched("common.js"), watched("theme.json")  # one file (and watcher) for every widget

    view = traitlets.Unicode("explorer").tag(sync=True)
    data = traitlets.Dict().tag(sync=True)
    _common = traitlets.Unicode().tag(sync=True)
    _theme = traitlets.Unicode().tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(_common=str(self._COMMON), _theme=compact_json(str(self._THEME)), **kwargs)
        if hot_reload():  # re-send them when they are saved, as anywidget re-sends _esm and _css
            self._COMMON.changed.connect(lambda text: setattr(self, "_common", text))
            self._THEME.changed.connect(lambda text: setattr(self, "_theme", compact_json(text)))

    def state_nbytes(self) -> int:
        """Bytes this widget's synced state takes on the wire (JSON part + binary buffers)."""
        state, _paths, buffers = _remove_buffers(self.get_state())
        return len(json.dumps(state, separators=(",", ":")).encode()) + sum(memoryview(b).nbytes for b in buffers)

    def to_html(self, path: str | os.PathLike[str], title: str | None = None) -> Path:
        """Write a standalone HTML file (no network: ESM, CSS and state inline) and return its path."""
        return write_standalone_html(self, path, title=title)

    def to_svg(self) -> str:
        """The view as it stands (selected root, current s) as an SVG document, drawn in Python."""
        return _svg.render(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the view as it stands as ``.svg`` or ``.png`` (offline, no browser; written atomically)."""
        return write_image(self.to_svg(), path)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The live view, plus a static SVG snapshot of the views ``_svg`` draws, for readers without a
        kernel (GitHub, nbviewer); front ends with widgets show the live view."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None and self.view in _svg.VIEWS:
            bundle[0][SVG_MIME] = self.to_svg()
        return bundle


def check_measure(value: Any, measures: Any) -> str:
    """``value`` if it names one of ``measures`` (the measures a view's data holds; None: not known yet)."""
    if measures is not None and value not in measures:
        raise traitlets.TraitError(f"measure must be one of {', '.join(measures)} (the measures this result holds), not {value!r}.")
    return str(value)


def check_colour_scale(value: Any) -> str:
    """``value`` if it is "fitted" or "fixed" (lower case)."""
    text = str(value).lower()
    if text not in ("fitted", "fixed"):
        raise traitlets.TraitError(f"colour_scale must be 'fitted' or 'fixed', not {value!r}.")
    return text


class _DensityWidget(_Widget):
    """The views of one result (None: nothing yet, as in a live view before its first step): traits
    ``data`` (dict), ``shares`` (bytes), the selection ``root``/``stratum``/``metric``/``scale`` and what
    colours the strip: ``measure`` (one of the theme's measures the result holds) on a ``colour_scale``
    "fitted" to its values (the 2nd–98th percentile; ``fit={measure: (lo, hi)}`` gives another range, such
    as a corpus run's) or "fixed" (the measure's range in the theme). ``tokenizer`` (a tokenizer or the loaded
    model) names the top-k tokens of the prediction preview."""

    _view: str = "explorer"
    _needs_shares: bool = True

    shares = traitlets.Bytes(b"").tag(sync=True)
    root = traitlets.Int(0).tag(sync=True)  # token position of the selected root (a value of result.roots)
    stratum = traitlets.Int(0).tag(sync=True)  # index into result.grid
    metric = traitlets.Unicode("tv").tag(sync=True)  # "tv" or "kl"
    scale = traitlets.Unicode("log").tag(sync=True)  # head grid colours: "log" or "linear"
    measure = traitlets.Unicode("density").tag(sync=True)  # what colours the strip (a key of data["measures"])
    colour_scale = traitlets.Unicode("fitted").tag(sync=True)  # "fitted" to the values shown, or "fixed"

    def __init__(
        self,
        result: Any,
        *,
        root: int | None = None,
        stratum: int | None = None,
        metric: str = "tv",
        scale: str = "log",
        tokenizer: Any = None,
        fit: Mapping[str, Sequence[float]] | None = None,
        **kwargs: Any,
    ) -> None:
        self._tokenizer = tokenizer
        self._fit = {str(m): [float(x) for x in bounds] for m, bounds in (fit or {}).items()}
        state = {} if result is None else self._result_state(result, root, stratum)
        super().__init__(view=self._view, metric=metric, scale=scale, **state, **kwargs)
        self.result = result

    def _result_state(self, result: Any, root: int | None, stratum: int | None) -> dict[str, Any]:
        """The synced state that shows ``result`` (selection defaults: median-density root, its s_top1)."""
        data = compact_data(result, self._tokenizer)
        if self._fit:
            data["fit"] = self._fit
        shares = b""
        if self._needs_shares:
            shares, data["share_floor"] = share_codes(result)
        if root is None:
            root = _default_root(result)
        if stratum is None:
            stratum = _default_stratum(result, root)
        self._roots = set(data["roots"])
        self._k = len(data["grid"])
        return {"data": data, "shares": shares, "root": int(root), "stratum": int(stratum)}

    # ---- validation --------------------------------------------------------------------------
    @traitlets.validate("root")
    def _check_root(self, proposal: Any) -> int:
        value = int(proposal["value"])
        roots = getattr(self, "_roots", None)
        if roots is not None and roots and value not in roots:
            raise traitlets.TraitError(f"root {value} is not a traced root position (roots: {min(roots)}…{max(roots)}).")
        return value

    @traitlets.validate("stratum")
    def _check_stratum(self, proposal: Any) -> int:
        value = int(proposal["value"])
        k = getattr(self, "_k", None)
        if k is not None and not 0 <= value < max(k, 1):
            raise traitlets.TraitError(f"stratum {value} is outside the size grid (0…{k - 1}).")
        return value

    @traitlets.validate("metric")
    def _check_metric(self, proposal: Any) -> str:
        value = str(proposal["value"]).lower()
        if value not in ("tv", "kl"):
            raise traitlets.TraitError(f"metric must be 'tv' or 'kl', not {proposal['value']!r}.")
        return value

    @traitlets.validate("measure")
    def _check_measure(self, proposal: Any) -> str:
        return check_measure(proposal["value"], (self.data or {}).get("measures"))

    @traitlets.validate("colour_scale")
    def _check_colour_scale(self, proposal: Any) -> str:
        return check_colour_scale(proposal["value"])

    @traitlets.validate("scale")
    def _check_scale(self, proposal: Any) -> str:
        value = str(proposal["value"]).lower()
        if value not in ("log", "linear"):
            raise traitlets.TraitError(f"scale must be 'log' or 'linear', not {proposal['value']!r}.")
        return value

    @property
    def s(self) -> float:
        """The nominal size of the current stratum."""
        return float(self.data["grid"][self.stratum])


def _default_root(result: Any) -> int:
    """The root with the median density among those that predict a token of the text."""
    roots = np.asarray(result.roots)
    if not len(roots):
        return 0
    has_next = np.asarray(result.next_token) >= 0
    candidates = np.flatnonzero(has_next) if has_next.any() else np.arange(len(roots))
    dens = np.nan_to_num(np.asarray(result.density, dtype=float)[candidates], nan=0.0)
    return int(roots[candidates[np.argsort(dens, kind="stable")[len(candidates) // 2]]])


def _default_stratum(result: Any, root: int) -> int:
    """The first stratum whose top-1 agrees with the full model (the s_top1 step) for ``root``."""
    if root not in result.roots or not len(result.grid):
        return max(len(result.grid) - 1, 0)
    agree = np.flatnonzero(result.at(root).top1)
    return int(agree[0]) if agree.size else len(result.grid) - 1


class DensityExplorer(_DensityWidget):
    """Token strip + s-slider with TV/KL curve and baselines + what the subgraph predicts + layer × head grid, linked in the browser."""

    _view = "explorer"


class TokenStrip(_DensityWidget):
    """The text as tokens coloured by the density of the step that predicts them; click selects a root."""

    _view = "strip"
    _needs_shares = False


class SubgraphSlider(_DensityWidget):
    """A range input over the size grid with the TV/KL curve of the selected root and its baselines."""

    _view = "slider"
    _needs_shares = False


class PredictionPreview(_DensityWidget):
    """What the subgraph at the current s predicts (its top-k) beside the full model's, the text's next token marked."""

    _view = "preview"
    _needs_shares = False


class HeadGrid(_DensityWidget):
    """Layers × heads (+ MLP): share of each component's edges in the subgraph at the current s (log or linear colours)."""

    _view = "grid"


def link(
    *widgets: _DensityWidget, names: tuple[str, ...] = ("root", "stratum", "metric", "scale", "measure", "colour_scale")
) -> list[traitlets.link]:
    """Link the selection of separate widgets through the kernel (the explorer links in the browser)."""
    links = []
    for a, b in itertools.pairwise(widgets):
        for name in names:
            links.append(traitlets.link((a, name), (b, name)))
    return links


# ---- standalone HTML ------------------------------------------------------------------------------
_BOOTSTRAP = r"""
const raw = document.getElementById("dnb-state").textContent;
const S = JSON.parse(raw);
const spec = S.view_specs[0];
const entry = S.manager_state.state[spec.model_id];
const state = Object.assign({}, entry.state);
for (const b of entry.buffers || []) {
  const bin = atob(b.data);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  let obj = state;
  for (let i = 0; i < b.path.length - 1; i++) obj = obj[b.path[i]];
  obj[b.path[b.path.length - 1]] = new DataView(bytes.buffer);
}
const listeners = new Map();
const model = {
  get: (k) => state[k],
  set(k, v) {
    if (state[k] === v) return;
    state[k] = v;
    for (const cb of listeners.get("change:" + k) || []) cb(model, v);
    for (const cb of listeners.get("change") || []) cb(model);
  },
  on(evt, cb) { for (const e of evt.split(" ")) { if (!listeners.has(e)) listeners.set(e, new Set()); listeners.get(e).add(cb); } },
  off(evt, cb) {
    if (!evt) { listeners.clear(); return; }
    for (const e of evt.split(" ")) { if (cb) listeners.get(e)?.delete(cb); else listeners.delete(e); }
  },
  save_changes() {},
  send() {},
  widget_manager: null,
};
const esm = state._esm;
const mod = await import("data:text/javascript;charset=utf-8," + encodeURIComponent(esm));
let widget = mod.default;
if (typeof widget === "function") widget = await widget();
const el = document.getElementById("dnb-root");
el.classList.add("dnb-standalone");
await widget.initialize?.({ model });
await widget.render({ model, el });
window.dnbModel = model;
document.body.dataset.dnbReady = "1";
"""


def _script_json(obj: Any) -> str:
    """JSON that is safe inside <script type="application/json"> (no '<', '>', '&', U+2028/9 literally)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def write_standalone_html(widget: _Widget, path: str | os.PathLike[str], title: str | None = None) -> Path:
    state = dependency_state([widget], drop_defaults=False)
    emb = embed_data(views=[widget], drop_defaults=False, state=state)
    manager_state = emb["manager_state"]
    # buffers are already base64 in embed_data's output; keep only this widget's model (drop layout etc.)
    entry = manager_state["state"][widget.model_id]
    for b in entry.get("buffers", []):
        if isinstance(b.get("data"), (bytes, bytearray, memoryview)):
            b["data"] = base64.b64encode(bytes(b["data"])).decode("ascii")
            b["encoding"] = "base64"
    payload = {
        "manager_state": {
            "version_major": manager_state["version_major"],
            "version_minor": manager_state["version_minor"],
            "state": {widget.model_id: entry},
        },
        "view_specs": emb["view_specs"],
    }
    css = entry["state"].get("_css", "")
    if "</style" in css.lower():
        raise ValueError("widget CSS must not contain '</style'")
    data = widget.data
    title = title or data.get("title") or f"density_nb — {data.get('model', '')} ({len(data.get('tokens', []))} tokens)"
    doc = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' data:; style-src 'unsafe-inline'; img-src data:; connect-src 'none'">
<title>{html.escape(title)}</title>
<style>
{css}
</style>
</head>
<body class="dnb-page">
<main id="dnb-root" aria-label="{html.escape(title, quote=True)}"></main>
<noscript>This page needs JavaScript to draw the density views.</noscript>
<script type="application/json" id="dnb-state">{_script_json(payload)}</script>
<script type="module">{_BOOTSTRAP}</script>
</body>
</html>
"""
    return write_text(path, doc)
