"""Saving views: the browser's export buttons (``static/export.js``, joined to each view's ESM by ``esm``)
and the Python side, ``write_image`` (an SVG document written as ``.svg`` or converted to ``.png``)."""

from __future__ import annotations

import os
from pathlib import Path

from density_nb.files import write_bytes, write_text

STATIC = Path(__file__).parent / "static"
PNG_SCALE = 2  # PNG pixels per SVG pixel, as the browser's export at 2× device pixels
SUFFIXES = (".svg", ".png")


def esm(*names: str) -> str:
    """One ESM string: ``static/common.js`` (colour maps, DOM helpers), ``static/export.js`` (which defines
    ``addExportButtons(toolbarEl, viewEl, baseName)``), then the named modules of ``static/`` (e.g.
    ``esm("density.js")``), for a widget's ``_esm``."""
    return "\n".join((STATIC / name).read_text(encoding="utf-8") for name in ("common.js", "export.js", *names))


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
