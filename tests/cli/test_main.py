"""The ``qplan`` entry point (:mod:`qplan.cli.main`): dispatch, the subcommand interface, error exits."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from qplan.cli import main
from qplan.cli.main import SUBCOMMANDS, build_parser

GOOD = "quantization_config:\n  global_config: {}\n"
BAD = "quantization_config:\n  execution_mode: graf\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    out = {}
    for name, text in (("good.yaml", GOOD), ("bad.yaml", BAD)):
        (tmp_path / name).write_text(text)
        out[name] = str(tmp_path / name)
    return out


def test_internal_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*_a, **_k):
        raise RuntimeError("kaput")

    monkeypatch.setattr("qplan.schema.loader.load_config", boom)
    assert main(["validate", files["good.yaml"]]) == 2
    err = capsys.readouterr().err
    assert "qplan: internal error: RuntimeError: kaput" in err and "Traceback" not in err


def test_console_script_piped_output_is_plain(files: dict[str, str]) -> None:
    script = Path(sys.executable).parent / "qplan"
    proc = subprocess.run([str(script), "validate", files["bad.yaml"]], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"{files['bad.yaml']}:2:19: error[invalid-value]") and "\x1b[" not in proc.stdout
    assert "Traceback" not in proc.stderr


def test_deliberate_errors_share_one_exit_code_rule(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any subcommand: an unreadable-file diagnostic exits 2, other qplan errors 1, in one line each."""
    from qplan.diagnostics import ConfigError, Diagnostic

    def unreadable():
        raise ConfigError(Diagnostic(code="unreadable-file", level="error", message="cannot read `x`"))

    monkeypatch.setattr("qplan.schema.jsonschema.schema_text", unreadable)
    assert main(["schema"]) == 2
    assert "error[unreadable-file] cannot read `x`" in capsys.readouterr().err

    def invalid():
        raise ConfigError("bad")

    monkeypatch.setattr("qplan.schema.jsonschema.schema_text", invalid)
    assert main(["schema"]) == 1
    assert "error[invalid-config] bad" in capsys.readouterr().err


def test_config_commands_do_not_import_torch(files: dict[str, str]) -> None:
    """`qplan validate` / `schema` / `presets` register only their own subparser: torch (which
    `qplan demo`'s options need) stays unimported, so they start fast; `--help` still lists all."""
    code = (
        "import sys; from qplan.cli import main\n"
        f"assert main(['validate', {files['good.yaml']!r}]) == 0\n"
        "assert main(['schema']) == 0 and main(['presets']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    helptext = subprocess.run(
        [sys.executable, "-m", "qplan.cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert all(c in helptext.stdout for c in ("validate", "compile-plan", "explain", "demo"))


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_every_subcommand_module_registers_its_parser_with_a_run_default(name: str) -> None:
    """The interface of :mod:`qplan.cli.commands`: ``register(subparsers)`` adds the parser named
    after the subcommand, whose ``run`` default is the module's ``run(args) -> int``."""
    module = importlib.import_module(SUBCOMMANDS[name])
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    assert module.register(subparsers) is None
    assert list(subparsers.choices) == [name]
    assert subparsers.choices[name].get_default("run") is module.run
    assert callable(module.run)


def test_every_module_in_the_commands_package_is_a_subcommand() -> None:
    """A new module under ``qplan/cli/commands/`` must be listed in SUBCOMMANDS to be reachable."""
    import qplan.cli.commands

    folder = Path(qplan.cli.commands.__file__).parent
    modules = {f"qplan.cli.commands.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"}
    assert modules == set(SUBCOMMANDS.values())


def test_build_parser_registers_only_the_command_being_run() -> None:
    def commands(parser: argparse.ArgumentParser) -> list[str]:
        (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return list(sub.choices)

    assert commands(build_parser("validate")) == ["validate"]
    assert commands(build_parser("compile-plan")) == ["compile-plan"]
    assert commands(build_parser(None)) == list(SUBCOMMANDS)
    assert commands(build_parser("frobnicate")) == list(SUBCOMMANDS)


def test_python_dash_m_help_lists_every_subcommand() -> None:
    run = subprocess.run([sys.executable, "-m", "qplan.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    listed = [line.split()[0] for line in run.stdout.splitlines() if line[:4] == "    " and line[4:5].strip()]
    assert listed == list(SUBCOMMANDS)


def test_python_dash_m_runs_a_subcommand_with_its_exit_code(files: dict[str, str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "qplan.cli", "validate", files["bad.yaml"]], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1 and run.stdout.startswith(f"{files['bad.yaml']}:2:19: error[invalid-value]")


def test_errors_of_commands_with_their_own_format_print_as_default_diagnostics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`compile-plan --format json` is the plan's format, not the diagnostics': an unreadable config
    still prints one concise diagnostic line (not a JSON list) and exits 2."""
    missing = str(tmp_path / "missing.yaml")
    assert main(["compile-plan", missing, "--model", "qplan.models:mlp", "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{missing}:1:1: error[unreadable-file]") and not err.lstrip().startswith("[")
