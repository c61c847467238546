"""Jupyter widgets (anywidget) for density results: token strip, s-slider, head grid, and the linked explorer.

Imports numpy, traitlets and anywidget only (no torch). Every view is drawn by one plain ESM module,
``static/density.js``, from compact data sent once; the explorer links its parts in the browser, so
it also works in the standalone HTML that ``to_html`` writes.
"""

from density_nb.widgets._widgets import DensityExplorer, HeadGrid, SubgraphSlider, TokenStrip, link

__all__ = ["DensityExplorer", "HeadGrid", "SubgraphSlider", "TokenStrip", "link"]
