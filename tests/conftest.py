"""Fixtures for the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _inventory_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CLI caches captured inventories in the user's cache directory: point it at a
    temporary one, so the suite neither reads nor fills the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("QPLAN_CACHE_DIR", str(tmp_path_factory.mktemp("qplan-cache")))
    yield
    mp.undo()
