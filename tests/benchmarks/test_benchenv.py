"""The benchmarks' results writer: a whole file per run, the analysis below the marker kept verbatim."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import _benchenv
from _benchenv import ANALYSIS_MARKER, Run, write_report

ANALYSIS = "## Analysis\n\nHand-written reading, kept.\n\n| kept | table |\n|---|---|\n| 1 | 2 |\n"


def _write(path: Path, body: str, capsys: pytest.CaptureFixture[str]) -> str:
    text = write_report("Title", Run("bench_x.py", ["--quick"]), body, path, notes=["a note"])
    capsys.readouterr()
    return text


def test_rewrite_replaces_the_results_and_keeps_the_analysis(tmp_path, capsys) -> None:
    out = tmp_path / "results" / "x.md"
    first = _write(out, "| old | results |", capsys)
    assert out.read_text(encoding="utf-8") == first
    assert first.endswith(ANALYSIS_MARKER + "\n" + _benchenv.NO_ANALYSIS)
    out.write_text(first.replace(_benchenv.NO_ANALYSIS, ANALYSIS), encoding="utf-8")

    second = _write(out, "| new | results |", capsys)
    assert out.read_text(encoding="utf-8") == second
    head, tail = second.split(ANALYSIS_MARKER + "\n")
    assert tail == ANALYSIS
    assert "| new | results |" in head and "old" not in head
    assert second.count(ANALYSIS_MARKER) == 1
    assert head.startswith("# Title\n")


def test_header_records_the_run(tmp_path, capsys, monkeypatch) -> None:
    loads = iter([(1.0, 2.0, 3.0), (4.0, 5.0, 6.0)])
    monkeypatch.setattr(os, "getloadavg", lambda: next(loads))
    run = Run("bench_x.py", ["--quick", "-o", "out.md"], threads=1)  # reads the load before
    text = write_report("Title", run, "body", None)  # reads it after
    capsys.readouterr()
    assert "before the run 1.00, 2.00, 3.00; after the run 4.00, 5.00, 6.00" in text
    assert "- command: `python benchmarks/bench_x.py --quick -o out.md`" in text
    assert f"{os.cpu_count()} logical CPUs (os.cpu_count())" in text
    assert f"`{_benchenv.cpu_model()}`" in text
    for dist in ("Python ", "torch ", "torchao ", "coreai-opt ", "qplan "):
        assert dist in text
    assert f"- qplan commit: {_benchenv.git_commit()}\n" in text
    assert "- torch.set_num_threads(1)" in text


def test_analysis_of_a_file_without_marker_is_a_placeholder(tmp_path) -> None:
    old = tmp_path / "old.md"
    old.write_text("# hand-written, no marker\n", encoding="utf-8")
    assert _benchenv.kept_analysis(old) == _benchenv.NO_ANALYSIS
    assert _benchenv.kept_analysis(tmp_path / "missing.md") == _benchenv.NO_ANALYSIS
