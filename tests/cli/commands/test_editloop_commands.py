"""The edit loop: compile-plan's inventory cache, ``qplan lint`` and ``qplan diff --format github``."""

from __future__ import annotations

import pytest

from qplan.cli import main

W8A8 = "quantization_config: {}\n"
W4 = """\
quantization_config:
  module_name_configs:
    "layers\\\\.0":
      op_state_spec: {weight: {dtype: int4, granularity: {type: per_channel}}}
"""
DIRTY = """\
quantization_config:
  module_name_configs:
    "layers\\\\.0":
      op_state_spec: {weight: {dtype: int4}}
    "layers":
      op_state_spec: {weight: {dtype: int8}}
    "fcc": null
"""
MODEL = ["--model", "qplan.models:mlp"]


@pytest.fixture
def configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QPLAN_CACHE_DIR", str(tmp_path / "cache"))
    for name, text in (("a.yaml", W8A8), ("b.yaml", W4), ("dirty.yaml", DIRTY)):
        (tmp_path / name).write_text(text)
    return tmp_path


def _entries(path):
    return sorted(path.glob("inventory-*.bin")) if path.exists() else []


def test_compile_plan_caches_the_inventory(configs, capsys, monkeypatch):
    assert main(["compile-plan", "a.yaml", *MODEL, "-o", "p1.json", "--no-cache"]) == 0
    assert not _entries(configs / "cache")  # --no-cache stores nothing
    assert main(["compile-plan", "a.yaml", *MODEL, "-o", "p2.json"]) == 0
    (entry,) = _entries(configs / "cache")
    assert (configs / "p1.json").read_bytes() == (configs / "p2.json").read_bytes()
    # the second compile reads the entry: capture is never called
    from qplan.compiler import capture as capture_pkg

    def no_capture(*a, **k):
        raise AssertionError("captured although the inventory is cached")

    monkeypatch.setattr(capture_pkg, "capture", no_capture)
    assert main(["compile-plan", "a.yaml", *MODEL, "-o", "p3.json"]) == 0
    assert (configs / "p3.json").read_bytes() == (configs / "p1.json").read_bytes()
    # a corrupt entry is recaptured, not an error
    entry.write_bytes(b"\0" * 10)
    monkeypatch.undo()
    monkeypatch.chdir(configs)
    monkeypatch.setenv("QPLAN_CACHE_DIR", str(configs / "cache"))
    assert main(["compile-plan", "a.yaml", *MODEL, "-o", "p4.json"]) == 0
    assert (configs / "p4.json").read_bytes() == (configs / "p1.json").read_bytes()
    assert entry.stat().st_size > 10


def test_lint_reports_shadowed_and_dead_rules(configs, capsys):
    assert main(["lint", "a.yaml", "b.yaml", *MODEL]) == 0
    assert "2 configs linted: no problems" in capsys.readouterr().err
    assert main(["lint", "dirty.yaml", "a.yaml", *MODEL]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("dirty.yaml:3:5: warning[shadowed-rule]")
    assert lines[1].startswith("dirty.yaml:7:5: warning[unmatched-selector]")
    assert len(lines) == 2  # nothing but rule hygiene (no edge-override infos)
    assert "2 warnings" in captured.err


def test_lint_formats_and_errors(configs, capsys):
    assert main(["lint", str(configs / "dirty.yaml"), *MODEL, "--format", "github"]) == 1
    out = capsys.readouterr().out
    assert f"file={configs / 'dirty.yaml'},line=3,col=5" in out and "title=qplan shadowed-rule" in out
    (configs / "bad.yaml").write_text("quantization_config: {module_name_configs: {x: {op_state_spec: 3}}}\n")
    assert main(["lint", "bad.yaml", *MODEL]) == 1
    assert "bad.yaml:1:" in capsys.readouterr().out
    assert main(["lint", "missing.yaml", *MODEL]) == 2
    assert main(["lint", "a.yaml"]) == 2  # --model is required


def test_lint_code_set():
    from qplan.cli.commands.lint import is_lint_code

    assert is_lint_code("shadowed-rule") and is_lint_code("unmatched-selector")
    assert is_lint_code("dead-rule") and is_lint_code("unknown-tensor-key")
    assert not is_lint_code("edge-override") and not is_lint_code("reset-to-default")


def test_lint_reports_a_dead_rule(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dead.yaml").write_text(
        "quantization_config:\n  global_config:\n    op_input_spec: {'*': {dtype: int4}, 0: {dtype: int8}}\n"
    )
    assert main(["lint", "dead.yaml", *MODEL, "--format", "concise"]) == 1
    out = capsys.readouterr()
    assert "dead.yaml:3:" in out.out + out.err and "dead-rule" in out.out + out.err


def test_pre_commit_hook_declares_qplan_lint():
    from pathlib import Path

    from ruamel.yaml import YAML

    root = Path(__file__).resolve().parents[3]
    (hook,) = YAML(typ="safe").load((root / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "qplan-lint" and hook["entry"] == "qplan lint" and hook["language"] == "python"
    import re

    assert re.search(hook["files"], "quant/w4.yaml") and re.search(hook["files"], "cfg.json")
    assert not re.search(hook["files"], "model.py")
    own = YAML(typ="safe").load((root / ".pre-commit-config.yaml").read_text())
    entries = [h["entry"] for r in own["repos"] for h in r["hooks"]]
    assert any(e.startswith(".venv/bin/ruff check") for e in entries)
    assert any(e.startswith(".venv/bin/ruff format") for e in entries)


def test_diff_github_annotates_the_rule_lines(configs, capsys):
    assert main(["compile-plan", "a.yaml", *MODEL, "-o", "a.json"]) == 0
    assert main(["compile-plan", "b.yaml", *MODEL, "-o", "b.json"]) == 0
    capsys.readouterr()
    assert main(["diff", "a.json", "b.json", "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    weight = [x for x in lines if "layers.0.weight changed" in x]
    assert len(weight) == 1
    # the new plan's winning rule: b.yaml line 4 (`op_state_spec: {weight: ...}`), indented 7
    assert weight[0].startswith("::warning title=qplan diff%3A layers.0.weight changed,file=b.yaml,line=4,col=7::")
    assert "%0Aspec.dtype: int8 -> int4" in weight[0] and "\n" not in weight[0]
    assert lines[-1].startswith("::notice title=qplan diff::a.json -> b.json: ")
    assert all(x.startswith(("::warning ", "::notice ")) for x in lines)
    assert main(["diff", "a.json", "a.json", "--format", "github"]) == 0
    assert capsys.readouterr().out == "::notice title=qplan diff::a.json -> a.json: plans are equal\n"


def test_diff_github_added_and_removed(configs, capsys):
    (configs / "c.yaml").write_text(
        'quantization_config:\n  module_name_configs:\n    "layers\\\\.2":\n      op_output_spec: null\n'
    )
    assert main(["diff", "a.yaml", "c.yaml", *MODEL, "--format", "github"]) == 1
    lines = capsys.readouterr().out.splitlines()
    added = [x for x in lines if x.startswith("::warning ") and " added,file=" in x]
    removed = [x for x in lines if x.startswith("::warning ") and " removed,file=" in x]
    assert added and removed
    assert all("file=c.yaml,line=" in x for x in added)  # the rule in the new config
    assert all("file=a.yaml,line=" in x for x in removed)  # the rule that placed it, in the old one
