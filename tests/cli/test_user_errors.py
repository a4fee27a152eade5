"""A user's mistake is never qplan's internal error: exit codes as documented (2 for usage),
`-o -` is standard output, `--version`, the user's own code failing shown as theirs, and nothing
of the user's overwritten when a command fails."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

import qplan
from qplan.cli import main

CONFIG = "quantization_config: {}\n"
_names = itertools.count()


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "c.yaml").write_text(CONFIG)
    return tmp_path


def _module(work: Path, source: str) -> str:
    """Write a user module with a fresh name (never cached in sys.modules) and return the name."""
    name = f"user_model_{next(_names)}"
    (work / f"{name}.py").write_text(source)
    return name


def _no_internal_error(err: str) -> None:
    assert "internal error" not in err and "Traceback" not in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"qplan {qplan.__version__}\n"


def test_compile_plan_dash_o_dash_is_stdout(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile-plan", "c.yaml", "--model", "qplan.models:mlp", "-o", "-"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["format"] == "qplan.plan"
    assert not (work / "-").exists()
    # stdout cannot hold both the plan and the table
    assert main(["compile-plan", "c.yaml", "--model", "qplan.models:mlp", "-o", "-", "--format", "table"]) == 2
    assert "standard output" in capsys.readouterr().err and not (work / "-").exists()


def test_schema_dash_o_dash_is_stdout(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["$schema"].startswith("https://json-schema.org/")
    assert not (work / "-").exists()


def test_missing_config_leaves_an_existing_output_untouched(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "existing.json").write_text("mine\n")
    assert main(["compile-plan", "missing.yaml", "--model", "qplan.models:mlp", "-o", "existing.json"]) == 2
    err = capsys.readouterr().err
    _no_internal_error(err)
    assert "cannot read `missing.yaml`" in err
    assert (work / "existing.json").read_text() == "mine\n"


def test_failed_compile_leaves_an_existing_plan_untouched(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "typo.yaml").write_text('quantization_config:\n  module_name_configs:\n    "fcc": null\n')
    (work / "plan.json").write_text("mine\n")
    assert main(["compile-plan", "typo.yaml", "--model", "qplan.models:mlp", "--strict", "-o", "plan.json"]) == 1
    _no_internal_error(capsys.readouterr().err)
    assert (work / "plan.json").read_text() == "mine\n"
    assert [p.name for p in work.iterdir() if p.name.endswith(".tmp")] == []


def test_model_module_calling_sys_exit_is_reported(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = _module(work, "import sys\nsys.exit(0)\n")
    assert main(["compile-plan", "c.yaml", "--model", f"{name}:f", "-o", "p.json"]) == 2
    err = capsys.readouterr().err
    assert f"importing `{name}`" in err and "sys.exit(0)" in err and f"{name}.py" in err
    assert not (work / "p.json").exists()


def test_factory_calling_sys_exit_is_reported(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = _module(work, "import sys\ndef f():\n    sys.exit(3)\n")
    assert main(["compile-plan", "c.yaml", "--model", f"{name}:f"]) == 2
    assert f"`{name}:f` called sys.exit(3)" in capsys.readouterr().err


def test_model_module_raising_on_import_shows_the_users_frames(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = _module(work, "def helper():\n    raise RuntimeError('boom')\n\n\nhelper()\n")
    assert main(["compile-plan", "c.yaml", "--model", f"{name}:f"]) == 2
    err = capsys.readouterr().err
    _no_internal_error(err)
    assert f"qplan: error: importing `{name}` (from --model {name}:f) raised RuntimeError: boom" in err
    assert f'{name}.py", line 5, in <module>' in err and f'{name}.py", line 2, in helper' in err
    assert "raise RuntimeError('boom')" in err
    assert "importlib" not in err and "qplan/cli" not in err and "<frozen" not in err


def test_import_error_inside_the_users_module_is_theirs(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = _module(work, "import no_such_dependency_xyz\n")
    assert main(["compile-plan", "c.yaml", "--model", f"{name}:f"]) == 2
    err = capsys.readouterr().err
    assert "No module named 'no_such_dependency_xyz'" in err and f'{name}.py", line 1' in err
    assert "PYTHONPATH" not in err  # the module itself was found
    assert main(["compile-plan", "c.yaml", "--model", "no_such_module_xyz:f"]) == 2
    err = capsys.readouterr().err
    assert "No module named 'no_such_module_xyz'" in err and "PYTHONPATH" in err and "File" not in err


def test_factory_raising_shows_the_users_frames(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = _module(work, "def f():\n    return 1 / 0\n")
    assert main(["compile-plan", "c.yaml", "--model", f"{name}:f"]) == 2
    err = capsys.readouterr().err
    assert (
        f"`{name}:f` raised ZeroDivisionError" in err and "return 1 / 0" in err and "qplan" not in err.split("\n", 1)[1]
    )


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("return 3", "got `int`"),
        ("return (1, 2)", "with a `torch.nn.Module` model, got `int`"),
        ("import torch\n    return torch.nn.Linear(2, 2), 5", "example inputs as a tuple"),
    ],
)
def test_factory_returning_the_wrong_type_is_a_usage_error(
    work: Path, capsys: pytest.CaptureFixture[str], body: str, what: str
) -> None:
    name = _module(work, f"def f():\n    {body}\n")
    assert main(["compile-plan", "c.yaml", "--model", f"{name}:f"]) == 2
    err = capsys.readouterr().err
    assert f"`{name}:f` must return `(model, example_inputs)`" in err and what in err


def test_explain_empty_address_is_a_usage_error(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile-plan", "c.yaml", "--model", "qplan.models:mlp", "-o", "plan.json"]) == 0
    capsys.readouterr()
    for address in ("", "  "):
        assert main(["explain", "plan.json", address]) == 2
        captured = capsys.readouterr()
        assert "ADDRESS is empty" in captured.err and captured.out == ""


@pytest.mark.parametrize("command", ["explain", "diff"])
def test_deeply_nested_json_is_not_an_internal_error(
    work: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    depth = sys.getrecursionlimit() * 2
    (work / "deep.json").write_text("[" * depth + "]" * depth + "\n")
    (work / "deep_plan.json").write_text('{"format": "qplan.plan", "x": ' + "[" * depth + "]" * depth + "}\n")
    for path in ("deep.json", "deep_plan.json"):
        args = [command, path, "x"] if command == "explain" else [command, path, path]
        assert main(args) == 2
        err = capsys.readouterr().err
        _no_internal_error(err)
        if path == "deep.json":
            assert f"`{path}` is not a" in err
        else:  # it says it is a plan: the plan loader reports where its JSON cannot be read
            assert f"{path}:1:1: error[plan-syntax]" in err


def test_lone_surrogate_key_fails_validate_strict(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "s.json").write_text('{"quantization_config": {"module_name_configs": {"a\\udc80b": {}}}}\n')
    assert main(["validate", "--strict", "s.json"]) == 1
    out = capsys.readouterr().out
    assert "s.json:1:50: error[invalid-value]" in out and "lone surrogate" in out
    assert main(["compile-plan", "s.json", "--model", "qplan.models:mlp", "-o", "p.json"]) == 1
    _no_internal_error(capsys.readouterr().err)
