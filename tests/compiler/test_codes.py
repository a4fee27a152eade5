"""The diagnostic code table: levels, strict mode, and the generated docs page."""

from __future__ import annotations

from pathlib import Path

from qplan.compiler.codes import CODES, codes_markdown, diagnostic, strictify

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


def test_docs_page_is_generated_from_the_table():
    page = Path(__file__).parents[2] / "docs" / "compiler-diagnostics.md"
    assert page.read_text() == codes_markdown(), (
        "regenerate: python -m qplan.compiler.codes > docs/compiler-diagnostics.md"
    )
