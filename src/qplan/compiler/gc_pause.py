"""Pausing Python's cyclic garbage collector around allocation-heavy phases (capture, compile)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC: compiling allocates many small acyclic records, and full collections
    over them (with a large model alive in the process) would make compile time superlinear."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
