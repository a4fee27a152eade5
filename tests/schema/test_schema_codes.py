"""The schema stage's code table: every code the stage emits is listed once, with its level, and
every listed code is emitted somewhere; each example really reports its code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qplan.diagnostics import ConfigError
from qplan.schema import codes
from qplan.schema.codes import SCHEMA_CODES
from qplan.schema.loader import load_config

SCHEMA_DIR = Path(codes.__file__).parent


def _const(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _emitted() -> set[tuple[str, str, str]]:
    """(code, level, where) of every diagnostic made in the schema stage's modules: ``Diagnostic(...)``,
    ``Reporter.report(code, ...)`` and ``ValueBuilder.fail(node, message, code)``. A code that is not a
    string literal must be the forwarding parameter `code` (as in report and fail themselves)."""
    found = set()
    for path in sorted(SCHEMA_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            kw = {k.arg: k.value for k in node.keywords}
            func = node.func
            if isinstance(func, ast.Name) and func.id == "Diagnostic":
                code_node, level_node, default = kw.get("code"), kw.get("level"), None
            elif isinstance(func, ast.Attribute) and func.attr == "report" and node.args:
                code_node, level_node, default = node.args[0], kw.get("level"), "error"
            elif isinstance(func, ast.Attribute) and func.attr == "fail" and len(node.args) >= 3:
                code_node, level_node, default = node.args[2], None, "error"
            else:
                continue
            where = f"{path.name}:{node.lineno}"
            code = _const(code_node)
            if code is None:
                assert isinstance(code_node, ast.Name) and code_node.id == "code", f"{where}: code is not a literal"
                continue
            level = _const(level_node) if level_node is not None else default
            assert level is not None, f"{where}: level of `{code}` is not a literal"
            found.add((code, level, where))
    return found


def test_every_emitted_code_is_in_the_table_with_its_level() -> None:
    emitted = _emitted()
    assert len(emitted) > 20  # the scan sees the stage's diagnostics
    for code, level, where in sorted(emitted):
        assert code in SCHEMA_CODES, f"{where}: `{code}` is not in qplan.schema.codes.SCHEMA_CODES"
        assert SCHEMA_CODES[code].level == level, f"{where}: `{code}` is emitted as {level}"


def test_every_code_in_the_table_is_emitted() -> None:
    assert set(SCHEMA_CODES) == {code for code, _, _ in _emitted()}


def test_every_code_is_explained() -> None:
    assert all(info.what and info.why and info.fix for info in SCHEMA_CODES.values())


def _reported(text: str) -> set[str]:
    try:
        loaded = load_config(text)
    except ConfigError as e:
        return {d.code for d in e.diagnostics}
    return {d.code for d in loaded.warnings}


@pytest.mark.parametrize("code", [c for c, info in SCHEMA_CODES.items() if info.example is not None])
def test_each_example_reports_its_code(code: str, composer: str) -> None:
    example = SCHEMA_CODES[code].example
    assert example is not None
    assert code in _reported(example)
