"""Tensor keys through the CLI: compile-plan reports them (errors under --strict), validate checks
op_type_config statically. Each input of issue 10's first bullet is a case."""

from __future__ import annotations

import json

import pytest

from qplan.cli import main

_HEAD = "quantization_config:\n  global_config:\n"
BAD_KEYS = {
    "typo": _HEAD + "    op_state_spec: {weigth: {dtype: int4}}\n",
    "index": _HEAD + "    op_type_config:\n      matmul: {op_input_spec: {7: {dtype: int4}}}\n",
    "output": _HEAD + "    op_output_spec: {3: null}\n",
    "huge": _HEAD + "    op_input_spec: {100000000000000000000000: {dtype: int4}}\n",
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, text in BAD_KEYS.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


@pytest.mark.parametrize("name", sorted(BAD_KEYS))
def test_compile_plan_reports_unknown_tensor_keys(workdir, capsys, name):
    model = "qplan.models:transformer" if name == "index" else "qplan.models:mlp"
    args = ["compile-plan", f"{name}.yaml", "--model", model, "--format", "json"]
    assert main(args) == 0
    out = capsys.readouterr()
    found = [d for d in json.loads(out.out)["diagnostics"] if d["code"] == "unknown-tensor-key"]
    assert len(found) == 1, out
    assert found[0]["level"] == "warning"
    assert found[0]["span"]["file"] == f"{name}.yaml" and found[0]["span"]["line"] >= 3
    assert main(["compile-plan", f"{name}.yaml", "--model", model, "--strict", "-o", "s.json"]) == 1
    err = capsys.readouterr().err
    assert f"{name}.yaml:" in err and "error[unknown-tensor-key]" in err


def test_typo_gets_did_you_mean_and_config_path(workdir, capsys):
    assert main(["compile-plan", "typo.yaml", "--model", "qplan.models:mlp", "-o", "p.json"]) == 0
    err = "".join(capsys.readouterr())
    assert "typo.yaml:3:21: warning[unknown-tensor-key] op_state_spec key `weigth`" in err
    assert "quantization_config.global_config.op_state_spec.weigth" in err
    assert "did you mean `weight`?" in err


def test_validate_checks_op_type_config_statically(tmp_path, capsys):
    path = tmp_path / "v.yaml"
    path.write_text(
        _HEAD
        + "    op_type_config:\n      lineer: {}\n      linear:\n"
        + "        op_input_spec: {inptu: null}\n        op_output_spec: {output: null, out: null}\n"
    )
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().out
    assert "v.yaml:4:7: warning[unknown-op-type] op type `lineer`" in err and "did you mean `linear`?" in err
    assert "v.yaml:6:25: warning[unknown-tensor-key] op_input_spec key `inptu`" in err
    assert "did you mean `input`?" in err
    assert "v.yaml:7:40: warning[unknown-tensor-key] op_output_spec key `out`" in err
    assert "key `output`" not in err  # the op table names the output
    assert main(["validate", "--strict", str(path)]) == 1
    assert "error[unknown-tensor-key]" in capsys.readouterr().out


def test_validate_accepts_keys_only_a_model_can_judge(tmp_path, capsys):
    # indices and state names depend on the model (custom states such as `scale` of `x * self.scale`)
    path = tmp_path / "ok.yaml"
    path.write_text(_HEAD + "    op_state_spec: {scale: null}\n    op_input_spec: {5: null}\n")
    assert main(["validate", "--strict", str(path)]) == 0
    assert "unknown-tensor-key" not in "".join(capsys.readouterr())
