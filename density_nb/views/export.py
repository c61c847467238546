"""Saving views from Python: ``write_image`` writes an SVG document (``svg.render``, or the dashboard's chart) as
``.svg`` or converts it to ``.png``. (The browser's SVG / PNG buttons are in ``static/common.js``.)"""

from __future__ import annotations

import os
from pathlib import Path

from density_nb.files import write_bytes, write_text

PNG_SCALE = 2  # PNG pixels per SVG pixel, as the browser's export at 2× device pixels
SUFFIXES = (".svg", ".png")


def write_image(svg: str, path: str | os.PathLike[str]) -> Path:
    """Write the SVG document ``svg`` to ``path`` as SVG or PNG (by its suffix), atomically; PNG offline with
    vl-convert at ``PNG_SCALE``×. Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"Cannot save a view as {suffix or 'a file without a suffix'!r} ({path.name}): name the file .svg or .png.")
    if suffix == ".svg":
        return write_text(path, svg)
    try:
        import vl_convert  # optional (the notebooks extra): only for PNG
    except ImportError as err:
        raise ImportError(f"Saving {path.name} as PNG needs vl-convert-python: pip install vl-convert-python (or save as .svg).") from err
    png = bytes(vl_convert.svg_to_png(svg, scale=PNG_SCALE))
    return write_bytes(path, png)
