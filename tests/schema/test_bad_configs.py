"""Each file in `bad/` has known problems; `qplan validate` reports exactly those, at the right place.

The expectations are the `# expect: LINE:COL CODE MESSAGE-FRAGMENT` lines at the top of each file
(or a sibling `<file>.expect` for JSON, which has no comments). They were written by hand from
the files, not copied from qplan's output.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qplan.cli import main

pytestmark = pytest.mark.usefixtures("composer")  # every test under both YAML composers (conftest.py)

BAD = Path(__file__).parent / "bad"
FILES = sorted(p for p in BAD.iterdir() if p.suffix in (".yaml", ".json"))
_EXPECT = re.compile(r"(\d+):(\d+) (\S+) (.+)")


def _expectations(path: Path) -> list[tuple[int, int, str, str]]:
    sidecar = path.with_name(path.name + ".expect")
    if sidecar.exists():
        lines = sidecar.read_text().splitlines()
    else:
        head = path.read_bytes().decode("utf-8", "replace").splitlines()
        lines = [line.removeprefix("# expect: ") for line in head if line.startswith("# expect: ")]
    out = []
    for line in lines:
        m = _EXPECT.fullmatch(line.strip())
        assert m, f"bad expectation line in {path.name}: {line!r}"
        out.append((int(m[1]), int(m[2]), m[3], m[4]))
    return out


def test_there_are_enough_bad_configs() -> None:
    assert len(FILES) >= 25
    assert any(len(_expectations(p)) >= 3 for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_validate_reports_each_problem(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} has no expectations"
    assert main(["validate", "--format", "concise", str(path)]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if ": error[" in line]
    assert len(lines) == len(expected), "\n".join(lines)
    for line, (row, col, code, fragment) in zip(lines, expected):
        assert line.startswith(f"{path}:{row}:{col}: error[{code}] "), line
        assert fragment in line, line
