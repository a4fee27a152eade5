"""Write docs/diagnostics.md: every diagnostic code of the schema stage and of the compiler.

The page is generated from the two code tables (``qplan.schema.codes.SCHEMA_CODES`` and
``qplan.compiler.codes.CODES``); this script sits above both stages, so neither imports the
other. ``tests/test_diagnostics_doc.py`` fails when the page is stale.

Usage: python scripts/gen_diagnostics_doc.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

from qplan.compiler.codes import CODES, codes_markdown
from qplan.diagnostics import code_table_markdown
from qplan.schema.codes import SCHEMA_CODES

PAGE = Path(__file__).resolve().parents[1] / "docs" / "diagnostics.md"
REGENERATE = "python scripts/gen_diagnostics_doc.py"


def diagnostics_markdown() -> str:
    """The whole page: an index of codes, then the schema's codes, then the compiler's."""
    lines = [
        "# Diagnostics",
        "",
        f"Every diagnostic code qplan reports, with what it means, why, and how to fix it. Generated from "
        f"`qplan.schema.codes.SCHEMA_CODES` and `qplan.compiler.codes.CODES` (run `{REGENERATE}`). "
        "`--strict` turns every warning into an error.",
        "",
        "| Code | Level | Stage |",
        "| --- | --- | --- |",
        *(f"| [`{code}`](#{code}-{info.level}) | {info.level} | config |" for code, info in SCHEMA_CODES.items()),
        *(f"| [`{code}`](#{code}-{info.level}) | {info.level} | compiler |" for code, info in CODES.items()),
        "",
        "## Config (schema) diagnostics",
        "",
        "Reported while a config is read, parsed and validated (`qplan validate`, `load_config`), with the "
        "file position and config path of the problem.",
        "",
        code_table_markdown(SCHEMA_CODES, heading="###"),
        "## Compiler diagnostics",
        "",
        "Reported while a config is compiled against a model (`qplan compile-plan`, `compile_plan`).",
        "",
        codes_markdown(),
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = diagnostics_markdown()
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != text:
            print(f"{PAGE} is stale; regenerate: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
