"""The compile-plan, diff and explain subcommands (exit codes, files, rendering)."""

from __future__ import annotations

import json

import pytest

from qplan.cli import main
from qplan.compiler.plan import load_plan

W8A8 = "quantization_config: {}\n"
W4 = """\
quantization_config:
  module_name_configs:
    "layers\\\\.0":
      op_state_spec: {weight: {dtype: int4, granularity: {type: per_channel}}}
"""


@pytest.fixture
def configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text(W8A8)
    (tmp_path / "b.yaml").write_text(W4)
    (tmp_path / "typo.yaml").write_text('quantization_config:\n  module_name_configs:\n    "fcc": null\n')
    return tmp_path


def test_compile_plan_writes_json_and_summarises(configs, capsys):
    assert main(["compile-plan", "a.yaml", "--model", "qplan.models:mlp", "-o", "p.json"]) == 0
    out = capsys.readouterr().out
    assert "fake-quants by dtype and role" in out and "plan written to p.json" in out
    plan = load_plan(configs / "p.json")
    assert plan.config.source == "a.yaml" and plan.quantizers
    # stdout JSON (piped) is the same bytes as the file
    assert main(["compile-plan", "a.yaml", "--model", "qplan.models:mlp"]) == 0
    assert capsys.readouterr().out.encode() == (configs / "p.json").read_bytes()


def test_plan_holds_no_absolute_path(configs, capsys):
    """A config given by absolute path is named by its file name, in provenance too."""
    assert main(["compile-plan", str(configs / "b.yaml"), "--model", "qplan.models:mlp", "-o", "p.json"]) == 0
    text = (configs / "p.json").read_text()
    assert str(configs) not in text
    plan = load_plan(configs / "p.json")
    sources = {q.provenance.source for q in plan.quantizers if q.provenance.source}
    assert sources and all(s.startswith("b.yaml:") for s in sources)
    # diagnostics too: their spans name the config as the plan does
    assert main(["compile-plan", str(configs / "typo.yaml"), "--model", "qplan.models:mlp", "-o", "t.json"]) == 0
    out = capsys.readouterr().out
    assert f"{configs / 'typo.yaml'}:3:5" in out  # shown under the path as given
    text = (configs / "t.json").read_text()
    assert str(configs) not in text
    assert [d.span.file for d in load_plan(configs / "t.json").diagnostics] == ["typo.yaml"]


def test_compile_plan_never_overwrites_the_config(configs, capsys):
    before = (configs / "a.yaml").read_text()
    assert main(["compile-plan", "a.yaml", "--model", "qplan.models:mlp", "-o", "a.yaml"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (configs / "a.yaml").read_text() == before


def test_strict_turns_warnings_into_errors(configs, capsys):
    assert main(["compile-plan", "typo.yaml", "--model", "qplan.models:mlp", "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [d["code"] for d in plan["diagnostics"]] == ["unmatched-selector"]
    assert main(["compile-plan", "typo.yaml", "--model", "qplan.models:mlp", "--strict"]) == 1
    err = capsys.readouterr().err
    assert "typo.yaml:3:5" in err and "unmatched-selector" in err


def test_bad_model_factory_is_a_usage_error(configs, capsys):
    assert main(["compile-plan", "a.yaml", "--model", "qplan.models:mpl"]) == 2
    assert "did you mean `mlp`?" in capsys.readouterr().err
    assert main(["compile-plan", "a.yaml", "--model", "nomodule"]) == 2


def test_diff_plans_and_configs(configs, capsys):
    assert main(["compile-plan", "a.yaml", "--model", "qplan.models:mlp", "-o", "a.json"]) == 0
    assert main(["compile-plan", "b.yaml", "--model", "qplan.models:mlp", "-o", "b.json"]) == 0
    capsys.readouterr()
    assert main(["diff", "a.json", "a.json"]) == 0
    assert "plans are equal" in capsys.readouterr().out
    assert main(["diff", "a.json", "b.json"]) == 1
    text = capsys.readouterr().out
    assert "layers.0.weight" in text and "spec.dtype: int8 -> int4" in text
    assert main(["diff", "a.json", "b.json", "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["equal"] is False and any(e["address"] == "layers.0.weight" for e in data["entries"])
    assert main(["diff", "a.yaml", "b.yaml", "--model", "qplan.models:mlp", "--format", "markdown"]) == 1
    assert "#### changed (" in capsys.readouterr().out
    assert main(["diff", "a.yaml", "b.json"]) == 2
    assert "pass --model" in capsys.readouterr().err


def test_explain(configs, capsys):
    assert main(["compile-plan", "b.yaml", "--model", "qplan.models:mlp", "-o", "b.json"]) == 0
    capsys.readouterr()
    assert main(["explain", "b.json", "layers.0.weight"]) == 0
    out = capsys.readouterr().out
    assert 'rule:    quantization_config.module_name_configs["layers\\\\.0"].op_state_spec.weight  (b.yaml:4)' in out
    assert "| op_state_spec: {weight: {dtype: int4" in out  # the source line itself
    assert "beat:    quantization_config.global_config" in out
    assert main(["explain", "b.json", "layers.0.wieght"]) == 1
    assert "did you mean `layers.0.weight`?" in capsys.readouterr().err
    # the config edited since compiling: its line 4 is something else now, so no source line is shown
    (configs / "b.yaml").write_text("# a comment shifts every line\n" + W4)
    assert main(["explain", "b.json", "layers.0.weight"]) == 0
    out = capsys.readouterr().out
    assert "(b.yaml:4)" in out and "| " not in out


def test_capture_failure_is_a_clean_error(configs, capsys, monkeypatch):
    import sys
    import types

    import torch

    class Bad(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.export cannot capture it
                return x
            return -x

    mod = types.ModuleType("bad_models")
    mod.bad = lambda: (Bad(), (torch.randn(2),))
    monkeypatch.setitem(sys.modules, "bad_models", mod)
    assert main(["compile-plan", "a.yaml", "--model", "bad_models:bad", "--mode", "graph"]) == 1
    err = capsys.readouterr().err
    assert "qplan: error: torch.export failed" in err and "internal error" not in err


def test_factory_that_raises_is_a_usage_error(configs, capsys, monkeypatch):
    """The user's factory failing is their error (exit 2, one line), not a qplan internal error."""
    import sys
    import types

    mod = types.ModuleType("raising_models")

    def broken():
        raise RuntimeError("no weights here")

    mod.broken = broken
    monkeypatch.setitem(sys.modules, "raising_models", mod)
    assert main(["compile-plan", "a.yaml", "--model", "raising_models:broken"]) == 2
    err = capsys.readouterr().err
    assert "`raising_models:broken` raised RuntimeError: no weights here" in err and "internal error" not in err


def test_explain_and_diff_reject_what_is_not_a_plan(configs, capsys):
    assert main(["compile-plan", "a.yaml", "--model", "qplan.models:mlp", "-o", "a.json"]) == 0
    capsys.readouterr()
    # a config given where a plan is expected: said plainly, not as a JSON parser message
    assert main(["explain", "a.yaml", "layers.0.weight"]) == 2
    err = capsys.readouterr().err
    assert "`a.yaml` is not a plan" in err and "malformed" not in err
    (configs / "bytes.bin").write_bytes(b"\xff\xfe\x00bad")
    assert main(["explain", "bytes.bin", "x"]) == 2
    assert "`bytes.bin` is not a plan" in capsys.readouterr().err
    assert main(["explain", str(configs), "x"]) == 2
    assert "cannot read" in capsys.readouterr().err
    # a quantizer naming a spec the plan does not define: rejected on load, by both commands
    data = json.loads((configs / "a.json").read_text())
    data["quantizers"][0]["spec"] = "s999"
    (configs / "dangling.json").write_text(json.dumps(data))
    for argv in (["explain", "dangling.json", "layers.0.weight"], ["diff", "a.json", "dangling.json"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "dangling.json:" in err and "spec id `s999` is not in `specs`" in err and "`$.quantizers[0].spec`" in err


def test_compile_plan_unreadable_config_or_unwritable_output_is_a_usage_error(configs, capsys):
    # a directory (or a suffix-less missing file) is a path that cannot be read, not YAML text
    (configs / "cfgdir").mkdir()
    for bad in ("cfgdir", "no_such_config"):
        assert main(["compile-plan", bad, "--model", "qplan.models:mlp"]) == 2
        err = capsys.readouterr().err
        assert f"cannot read `{bad}`" in err and "the string" not in err
    # an output path that cannot be written: one line, exit 2, not an internal error
    for out in ("cfgdir", "missing_dir/p.json"):
        assert main(["compile-plan", "a.yaml", "--model", "qplan.models:mlp", "-o", out]) == 2
        err = capsys.readouterr().err
        assert f"qplan: error: cannot write `{out}`" in err and "internal error" not in err
