"""How token text is shown, as static/common.js shows it: every character visible (a mark for a space, a tab,
a newline, other whitespace and control characters, and for a token of invisible characters only), and the
monospace columns it takes, which lay out the strip and the comparison alike in the browser and in the SVG."""

from __future__ import annotations

import re
import unicodedata

CONTINUATION = "◌"  # a token whose text is "" continues a character split over several tokens
MARKS = {" ": "·", "\t": "→", "\n": "↵"}
SPACE = re.compile(r"[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]")  # JS's \s
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _invisible(ch: str) -> bool:
    return bool(SPACE.match(ch) or CONTROL.match(ch)) or unicodedata.category(ch) == "Cf"


def _mark(ch: str, alone: bool) -> tuple[str, bool]:
    """One character as shown: (text, is a mark). Format characters (zero-width joiners, ...) are marked only
    in a token of invisible characters (``alone``); elsewhere they join what is around them."""
    if ch in MARKS:
        return MARKS[ch], True
    if SPACE.match(ch):
        return "␣", True
    if CONTROL.match(ch):
        return f"\\x{ord(ch):02x}", True
    if alone and unicodedata.category(ch) == "Cf":
        return f"\\u{ord(ch):04x}", True
    return ch, False


def visible_parts(text: str) -> list[tuple[str, bool]]:
    """``text`` as runs of (shown text, is a mark): a continuation is ◌; a carriage return is dropped."""
    if text == "":
        return [(CONTINUATION, True)]
    alone = all(_invisible(ch) for ch in text)
    parts: list[tuple[str, bool]] = []
    for ch in text:
        if ch == "\r":
            continue
        shown, mark = _mark(ch, alone)
        if parts and parts[-1][1] == mark:
            parts[-1] = (parts[-1][0] + shown, mark)
        else:
            parts.append((shown, mark))
    return parts


def shown(text: str) -> str:
    """``text`` with its marks, as the strip shows a token."""
    return "".join(part for part, _ in visible_parts(text))


def show_text(text: str) -> str:
    """``text`` with its marks, for titles, tooltips and lists (a continuation says what it is)."""
    return f"{CONTINUATION} (rest of the character before)" if text == "" else shown(text)


def show_char(c: str) -> str:
    """One character as the comparison view draws it (one column: see ``compare.char_widths``)."""
    if c == "\r":
        return ""
    return "·" if c == " " else "→" if c == "\t" else "↵" if c == "\n" else "�" if CONTROL.match(c) else c


def columns(text: str) -> int:
    """Monospace columns of ``text``: 2 for wide characters, 0 for combining and format characters."""
    return sum(
        0 if unicodedata.category(c) in ("Mn", "Me", "Cf") else 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text
    )
