"""``qplan export --format compressed-tensors`` and ``qplan import compressed-tensors`` through ``qplan.cli.main``."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch

pytest.importorskip("compressed_tensors")

from safetensors.torch import load_file

from qplan.cli import main
from qplan.schema.loader import load_config

W8A8 = "quantization_config: {}\n"


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w8a8.yaml").write_text(W8A8)
    return tmp_path


def test_export_writes_a_compressed_tensors_directory(work, capsys):
    assert (
        main(["export", "--format", "compressed-tensors", "w8a8.yaml", "--model", "qplan.models:mlp", "-o", "out"]) == 0
    )
    out = capsys.readouterr().out
    assert "quantized modules" in out and "calibrated on 1 batch" in out
    qc = json.loads((work / "out" / "config.json").read_text())["quantization_config"]
    assert qc["quantization_status"] == "compressed" and qc["config_groups"]
    tensors = load_file(str(work / "out" / "model.safetensors"))
    assert any(k.endswith("weight_scale") for k in tensors)
    assert all(t.dtype == torch.int8 for k, t in tensors.items() if k.endswith(".weight") and "layers" in k)


def test_export_accepts_a_plan_and_a_calibration_hook(work, capsys, monkeypatch):
    assert main(["compile-plan", "w8a8.yaml", "--model", "qplan.models:mlp", "-o", "p.json"]) == 0
    hook = types.ModuleType("qplan_test_calib")
    hook.batches = lambda: [(torch.randn(4, 16) * k,) for k in (1, 2, 3)]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "qplan_test_calib", hook)
    argv = ["export", "--format", "compressed-tensors", "p.json", "--model", "qplan.models:mlp", "-o", "out"]
    assert main([*argv, "--calibration", "qplan_test_calib:batches"]) == 0
    assert "calibrated on 3 batches" in capsys.readouterr().out
    # a larger calibration range than the example inputs' changes the stored input scales
    scale_hook = load_file(str(work / "out" / "model.safetensors"))
    assert main(argv[:-1] + ["out2"]) == 0
    scale_default = load_file(str(work / "out2" / "model.safetensors"))
    key = next(k for k in scale_hook if k.endswith("input_scale"))
    assert not torch.equal(scale_hook[key], scale_default[key])


def test_export_reports_what_the_format_cannot_express(work, capsys):
    argv = ["export", "--format", "compressed-tensors", "w8a8.yaml", "--model", "qplan.models:cnn", "-o", "out"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "cannot be written as compressed-tensors" in err and not (work / "out" / "config.json").exists()
    assert main([*argv, "--skip-unsupported"]) == 0
    assert "left in float" in capsys.readouterr().err


def test_export_bad_usage(work, capsys):
    base = ["export", "--format", "compressed-tensors", "w8a8.yaml", "-o", "out"]
    assert main([*base, "--model", "qplan.models:nope"]) == 2
    assert main([*base, "--model", "qplan.models:mlp", "--calibration", "nocolon"]) == 2
    assert main(["export", "--format", "onnx", "w8a8.yaml", "--model", "qplan.models:mlp", "-o", "out"]) == 2


def test_import_prints_a_loadable_config_and_reports_the_rest(work, capsys):
    quantization_config = {
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 32},
            }
        },
        "ignore": ["lm_head"],
        "kv_cache_scheme": {"num_bits": 8, "type": "float"},
    }
    (work / "config.json").write_text(json.dumps({"model_type": "llama", "quantization_config": quantization_config}))
    assert main(["import", "compressed-tensors", "config.json"]) == 1  # kv_cache_scheme is not expressible
    captured = capsys.readouterr()
    assert "torch.nn.Linear" in captured.out and "block_size: 32" in captured.out
    assert "kv_cache_scheme" in captured.err
    del quantization_config["kv_cache_scheme"]
    (work / "config.json").write_text(json.dumps({"quantization_config": quantization_config}))
    assert main(["import", "compressed-tensors", "config.json", "-o", "q.yaml"]) == 0
    loaded = load_config(work / "q.yaml")
    cfg = loaded.config if hasattr(loaded, "config") else loaded
    assert cfg.module_name_configs == {"lm_head": None}


def test_import_round_trips_an_export(work, capsys):
    assert (
        main(["export", "--format", "compressed-tensors", "w8a8.yaml", "--model", "qplan.models:mlp", "-o", "out"]) == 0
    )
    assert main(["import", "compressed-tensors", "out/config.json", "-o", "back.yaml"]) == 0
    # the imported config quantizes the same modules again
    assert (
        main(["export", "--format", "compressed-tensors", "back.yaml", "--model", "qplan.models:mlp", "-o", "o2"]) == 0
    )
    a = json.loads((work / "out" / "config.json").read_text())["quantization_config"]["config_groups"]
    b = json.loads((work / "o2" / "config.json").read_text())["quantization_config"]["config_groups"]
    assert sorted(t for g in a.values() for t in g["targets"]) == sorted(t for g in b.values() for t in g["targets"])


def test_import_bad_input(work, capsys):
    (work / "bad.json").write_text("{not json")
    (work / "plain.json").write_text('{"model_type": "llama"}')
    assert main(["import", "compressed-tensors", "bad.json"]) == 2
    assert main(["import", "compressed-tensors", "plain.json"]) == 2
    assert main(["import", "compressed-tensors", "missing.json"]) == 2
    assert "no `quantization_config`" in capsys.readouterr().err
