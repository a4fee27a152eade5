"""The README's 30-second example runs as written (YAML, shell commands and Python)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from qplan.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my.yaml").write_text(_blocks("yaml")[0])
    return tmp_path


def test_readme_shell_example(workdir, capsys):
    lines = [ln.split("#")[0].strip() for ln in _blocks("sh")[1].splitlines()]
    commands = [shlex.split(ln)[1:] for ln in lines if ln.startswith("qplan ")]
    assert [c[0] for c in commands] == ["validate", "compile-plan", "explain", "diff"]
    validate, compile_plan, explain, diff = commands
    assert main(validate) == 0
    assert main(compile_plan) == 0 and (workdir / "plan.json").exists()
    assert main(explain) == 0
    assert "per_block" in capsys.readouterr().out  # the int4 rule of the example won
    # the diff example compares with another plan: compile one from a W8A8 config
    (workdir / "other.yaml").write_text("quantization_config: {}\n")
    assert main(["compile-plan", "other.yaml", "--model", "qplan.models:transformer", "-o", "other-plan.json"]) == 0
    assert main(diff) == 1  # the plans differ (int4 vs int8 in block 0)


def test_readme_python_example(workdir):
    namespace: dict = {}
    exec(compile(_blocks("python")[0], str(README), "exec"), namespace)
    program = namespace["program"]
    assert (workdir / "model.pt2").stat().st_size > 0
    weights = [t for t in program.state_dict.values()] + list(program.constants.values())
    import torch

    assert any(t.dtype == torch.int8 for t in weights)
