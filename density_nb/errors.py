"""``DensityNBError``: the one base class of every error a user can cause (bad input, missing data,
unreadable files). The CLI reports these in one line; anything else is a bug and shows its traceback.
"""

from __future__ import annotations


class DensityNBError(ValueError):
    """Something the user gave cannot be used; the message names it and says what to do."""


class TraceInputError(DensityNBError):
    """The text, roots, grid or settings given to a trace cannot be used; the message says how to fix it."""
