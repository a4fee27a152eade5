"""The one "did you mean" helper, for misspelled keys, enum values, op types and module names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "closest"]


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice closest to `word` (case-insensitive), or None when nothing is close."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return lowered[word.lower()]
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[match[0]] if match else None


def did_you_mean(word: object, choices: Iterable[str]) -> str | None:
    """``"did you mean `x`?"`` for the closest choice, or None."""
    if not isinstance(word, str):
        return None
    best = closest(word, choices)
    return f"did you mean `{best}`?" if best is not None and best != word else None
