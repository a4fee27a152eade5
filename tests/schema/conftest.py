"""Shared fixtures for the schema tests."""

from __future__ import annotations

import pytest

from qplan.schema import yamldoc


@pytest.fixture(params=["libyaml", "pure"])
def composer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once with libyaml's parser (when ruamel.yaml.clib is installed) and once with
    ruamel's pure-Python composer alone: both must give the same values, spans and errors."""
    if request.param == "pure":
        monkeypatch.setattr(yamldoc, "_CParser", None)
    elif yamldoc._CParser is None:
        pytest.skip("ruamel.yaml.clib is not installed")
    return request.param
