"""docs/diagnostics.md is generated from the schema's and the compiler's code tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from qplan.compiler.codes import CODES
from qplan.schema.codes import SCHEMA_CODES

ROOT = Path(__file__).parents[1]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_diagnostics_doc", ROOT / "scripts" / "gen_diagnostics_doc.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_page_is_generated_from_both_tables() -> None:
    gen = _generator()
    page = ROOT / "docs" / "diagnostics.md"
    assert page.read_text(encoding="utf-8") == gen.diagnostics_markdown(), f"stale; regenerate: {gen.REGENERATE}"


def test_docs_page_lists_every_code_once() -> None:
    text = _generator().diagnostics_markdown()
    assert not set(SCHEMA_CODES) & set(CODES)  # one code, one meaning
    for code, info in [*SCHEMA_CODES.items(), *CODES.items()]:
        assert text.count(f"### `{code}` ({info.level})") == 1, code
