"""The files a view sends to the browser, from ``static/``: its ESM and CSS as paths (anywidget re-sends a
path's file when it is saved, under its hot reload: ``ANYWIDGET_HMR=1`` with watchfiles installed), and the
module every view imports, ``common.js``, with the theme, ``theme.json``, as texts that reload the same way."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from anywidget._file_contents import FileContents  # anywidget's own watched file (what a path _esm becomes)

STATIC = Path(__file__).parent / "static"


def hot_reload() -> bool:
    """True when anywidget's hot reload is on (``ANYWIDGET_HMR=1``) and can watch files (watchfiles)."""
    return os.environ.get("ANYWIDGET_HMR") == "1" and importlib.util.find_spec("watchfiles") is not None


def compact_json(text: str) -> str:
    """JSON ``text`` as the browser needs it: without its "about" notes and spaces (what ``_theme`` sends)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "about"}
        return [strip(v) for v in value] if isinstance(value, list) else value

    return json.dumps(strip(json.loads(text)), separators=(",", ":"), ensure_ascii=False)


def watched(name: str) -> FileContents:
    """The text of ``static/<name>`` (``str()`` of it); under hot reload a thread re-reads it on every save and
    emits its ``changed`` signal with the new text."""
    return FileContents(STATIC / name, start_thread=hot_reload())
