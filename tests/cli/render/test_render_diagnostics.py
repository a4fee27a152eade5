"""Every diagnostic format, on one shared set of diagnostics (expected texts written by hand)."""

from __future__ import annotations

import json

import pytest

from qplan.cli.render.diagnostics import FORMATS, render, summary
from qplan.diagnostics import Diagnostic, Span

SOURCE = "quantization_config:\n  global_config:\n    op_state_spec:\n      weight: {granularity: {type: per_chanel}}\n"
DIAGNOSTICS = [
    Diagnostic(
        code="empty-value",
        level="warning",
        message="`x` is left empty",
        path="quantization_config.x",
        span=Span(file="c.yaml", line=2, col=3),
    ),
    Diagnostic(
        code="invalid-value",
        level="error",
        message="`per_chanel` is not a valid granularity type; expected one of `per_tensor`, `per_channel`, `per_block`",
        path="quantization_config.global_config.op_state_spec.weight.granularity.type",
        span=Span(file="c.yaml", line=4, col=36, end_line=4, end_col=46),
        help="did you mean `per_channel`?",
    ),
    Diagnostic(code="unmatched-selector", level="info", message="no span, 100% plain"),
]


def test_concise_sorted_one_line_each() -> None:
    assert render(DIAGNOSTICS, "concise").splitlines() == [
        "info[unmatched-selector] no span, 100% plain",
        "c.yaml:2:3: warning[empty-value] `x` is left empty (at `quantization_config.x`)",
        "c.yaml:4:36: error[invalid-value] `per_chanel` is not a valid granularity type; expected one of `per_tensor`, "
        "`per_channel`, `per_block` (at `quantization_config.global_config.op_state_spec.weight.granularity.type`); "
        "help: did you mean `per_channel`?",
    ]


def test_full_has_snippet_and_caret() -> None:
    text = render([DIAGNOSTICS[1]], "full", sources={"c.yaml": SOURCE})
    assert text.splitlines()[:8] == [
        "error[invalid-value]: `per_chanel` is not a valid granularity type; expected one of `per_tensor`, `per_channel`, `per_block`",
        "  --> c.yaml:4:36",
        "   |",
        " 4 |       weight: {granularity: {type: per_chanel}}",
        "   | " + " " * 35 + "^" * 10,
        "   = at: quantization_config.global_config.op_state_spec.weight.granularity.type",
        "   = help: did you mean `per_channel`?",
        "",
    ]
    # Unreadable file: no snippet, still the location.
    assert " --> c.yaml:4:36" in render([DIAGNOSTICS[1]], "full") and "^" not in render([DIAGNOSTICS[1]], "full")


def test_full_with_color_has_ansi_codes() -> None:
    assert "\x1b[" in render(DIAGNOSTICS, "full", color=True)


def test_json() -> None:
    records = json.loads(render(DIAGNOSTICS, "json"))
    assert [r["code"] for r in records] == ["unmatched-selector", "empty-value", "invalid-value"]
    r = records[2]
    assert r["location"] == {"row": 4, "column": 36} and r["end_location"] == {"row": 4, "column": 46}
    assert (r["filename"], r["level"], r["help"]) == ("c.yaml", "error", "did you mean `per_channel`?")
    assert records[0]["location"] is None and records[0]["filename"] is None


def test_github_annotations_escape_data_and_properties() -> None:
    d = Diagnostic(
        code="x", level="warning", message="50% off\nnext", span=Span(file="a,b:c.yaml", line=1, col=2), help="h"
    )
    assert (
        render([d], "github")
        == "::warning title=qplan x,file=a%2Cb%3Ac.yaml,line=1,col=2::50%25 off%0Anext%0Ahelp: h\n"
    )
    lines = render(DIAGNOSTICS, "github").splitlines()
    assert lines[0].startswith("::notice title=qplan unmatched-selector::")
    assert lines[2].startswith("::error title=qplan invalid-value,file=c.yaml,line=4,col=36,endLine=4,endColumn=46::")


def test_unknown_format_and_summary() -> None:
    assert FORMATS == ("concise", "full", "json", "github")
    with pytest.raises(ValueError, match="unknown format"):
        render(DIAGNOSTICS, "xml")
    assert summary(DIAGNOSTICS) == "1 error, 1 warning, 1 info"
    assert summary([]) == "no problems"
