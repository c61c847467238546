"""Jupyter widgets (anywidget) for density results: token strip, s-slider with baselines, prediction
preview, head grid, the linked explorer, the live view, the character-aligned comparison and the corpus
dashboard (``static/dashboard.js``); two results with their per-token difference (``difference``) and the
playground (``Playground``: type, trace, compare; its tracer comes from ``teaching.playground``).

Imports numpy, scipy, traitlets and anywidget only (no torch). Every view is drawn by one plain ESM
module, ``static/density.js`` (the dashboard's: ``static/dashboard.js``), from compact data sent once; the
views link their parts in the browser, so they also work in the standalone HTML that ``to_html`` writes.
Each ESM imports ``static/common.js`` (formats, colours, statistics, saving), and every colour, label and
number format comes from one theme, ``static/theme.json`` (``theme``), read alike by the browser, the Python
SVG and the Altair charts. Every view saves itself as SVG or PNG: from its buttons and from Python
(``save``, drawn by ``svg``), and leaves that SVG in the notebook for readers without a kernel. The files
are sent as paths, so ``ANYWIDGET_HMR=1`` reloads a view while it is edited (``assets``).

May import: ``analysis``, ``errors``, ``files``. Never torch, ``method`` or ``corpus``: a view draws what a
result or a run holds (held by CI: ``[tool.importlinter]`` in pyproject.toml).
"""

from density_nb.views.compare import CompareError, CompareView, compare
from density_nb.views.dashboard import CorpusDashboard, DashboardError
from density_nb.views.difference import difference
from density_nb.views.explorer import DensityExplorer, HeadGrid, PredictionPreview, SubgraphSlider, TokenStrip, link
from density_nb.views.live import LiveTrace
from density_nb.views.playground import Playground

__all__ = [
    "CompareError",
    "CompareView",
    "CorpusDashboard",
    "DashboardError",
    "DensityExplorer",
    "HeadGrid",
    "LiveTrace",
    "Playground",
    "PredictionPreview",
    "SubgraphSlider",
    "TokenStrip",
    "compare",
    "difference",
    "link",
]
