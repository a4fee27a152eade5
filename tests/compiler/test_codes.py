"""The diagnostic code table: levels and strict mode (the docs page: tests/test_diagnostics_doc.py)."""

from __future__ import annotations

from qplan.compiler.codes import CODES, diagnostic, strictify

SPEC_CODES = {
    "unmatched-selector",
    "shadowed-rule",
    "reset-to-default",
    "edge-override",
    "shared-weight-conflict",
    "block-not-divisible",
    "unknown-op-type",
}


def test_every_spec_code_is_in_the_table():
    assert SPEC_CODES <= set(CODES)
    assert all(info.what and info.why and info.fix for info in CODES.values())


def test_levels_come_from_the_table_and_strict_raises_warnings():
    d = diagnostic("block-not-divisible", "x")
    assert d.level == "warning"
    assert [x.level for x in strictify([d, diagnostic("edge-override", "y")])] == ["error", "info"]
