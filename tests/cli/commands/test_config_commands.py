"""`qplan schema`, `qplan validate` and `qplan presets`: outputs and exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from qplan import QuantizerConfig
from qplan.cli import main
from qplan.schema.jsonschema import schema_text
from qplan.schema.loader import load_config
from qplan.schema.presets import PRESETS

GOOD = "quantization_config:\n  global_config: {}\n"
WARN = "quantization_config:\n  global_config:\n"
BAD = "quantization_config:\n  execution_mode: graf\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, text in (("good.yaml", GOOD), ("warn.yaml", WARN), ("bad.yaml", BAD)):
        (tmp_path / name).write_text(text)
        out[name] = str(tmp_path / name)
    return out


def test_schema_stdout_and_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == schema_text()
    target = tmp_path / "s.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text())["$schema"].endswith("2020-12/schema")
    assert main(["schema", "-o", str(tmp_path / "missing" / "s.json")]) == 2


def test_validate_exit_codes(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", files["good.yaml"]]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "1 config checked, valid: no problems" in out.err

    assert main(["validate", files["warn.yaml"]]) == 0  # warnings do not fail
    out = capsys.readouterr()
    assert (
        out.out == f"{files['warn.yaml']}:2:3: warning[empty-value] `global_config` is left empty, which means `null` "
        "(quantize nothing by default) (at `quantization_config.global_config`); help: write `null` explicitly if "
        "that is what you mean or `{}` for the defaults\n"
    )

    assert main(["validate", files["good.yaml"], files["bad.yaml"], files["warn.yaml"]]) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{files['bad.yaml']}:2:19: error[invalid-value] `graf`")
    assert "3 configs checked, invalid: 1 error, 1 warning" in out.err


def test_validate_unreadable_and_usage_errors(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "no/such/file.yaml"]) == 2
    assert "cannot read `no/such/file.yaml`" in capsys.readouterr().out
    assert main(["validate", files["bad.yaml"], "no/such/file.yaml"]) == 2
    assert main(["validate"]) == 2
    assert main(["validate", "--format", "xml", files["good.yaml"]]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0


def test_validate_json_and_github(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--format", "json", files["bad.yaml"], files["warn.yaml"]]) == 1
    out = capsys.readouterr()
    records = json.loads(out.out)
    assert [(r["code"], r["level"]) for r in records] == [("invalid-value", "error"), ("empty-value", "warning")]
    assert out.err == ""  # machine formats print nothing else
    assert main(["validate", "--format", "github", files["bad.yaml"]]) == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"::error title=qplan invalid-value,file={files['bad.yaml']},line=2,col=19")


def test_presets_lists_each_with_loadable_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    blocks = capsys.readouterr().out.split("\n# ")
    assert len(blocks) == len(PRESETS)
    for block, name in zip(blocks, PRESETS):
        header, _, yaml_text = block.lstrip("# ").partition("\n")
        assert header.startswith(f"{name}(")
        assert load_config(yaml_text).config == getattr(QuantizerConfig.presets, name)()


def test_validate_reads_stdin_and_never_treats_a_path_as_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(BAD))
    assert main(["validate", "-"]) == 1
    assert capsys.readouterr().out.startswith("<stdin>:2:19: error[invalid-value]")
    assert main(["validate", "no_suffix_and_missing"]) == 2  # a path, even without a .yaml suffix
    assert "error[unreadable-file]" in capsys.readouterr().out


def test_validate_strict_fails_on_warnings(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--strict", files["warn.yaml"]]) == 1
    assert f"{files['warn.yaml']}:2:3: error[empty-value]" in capsys.readouterr().out
    assert main(["validate", "--strict", files["good.yaml"]]) == 0
