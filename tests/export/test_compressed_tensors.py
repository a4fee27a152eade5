"""compressed-tensors export: round trip through the library's own decompression, and the error paths."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

pytest.importorskip("compressed_tensors")

from compressed_tensors.compressors import ModelCompressor
from compressed_tensors.quantization import QuantizationConfig, apply_quantization_config
from safetensors.torch import load_file

from qplan.export.compressed_tensors import ExportError, export_compressed_tensors
from qplan.models import cnn, mlp
from qplan.runtime import Quantizer
from qplan.schema.types import (
    ModuleQuantizerConfig,
    PerBlockGranularity,
    PerChannelGranularity,
    QuantizationSpec,
    QuantizerConfig,
)

LINEAR = "torch.nn.Linear"


def _linear_only(weight: QuantizationSpec, inputs: QuantizationSpec | None = None, mode: str = "graph"):
    """Quantize only Linear modules: their weight, and their input when given."""
    module = ModuleQuantizerConfig(
        op_input_spec=None if inputs is None else {"0": inputs},
        op_output_spec=None,
        op_state_spec={"weight": weight},
    )
    return QuantizerConfig(global_config=None, module_type_configs={LINEAR: module}, execution_mode=mode)


def _calibrated(model: nn.Module, args: tuple, config: QuantizerConfig) -> Quantizer:
    q = Quantizer(model, config)
    prepared = q.prepare(args)
    q.calibration_mode()
    with torch.no_grad():
        for k in range(3):
            prepared(*(a * (1 + 0.5 * k) if a.is_floating_point() else a for a in args))
    q.inference_mode()
    return q


def _qplan_weights(q: Quantizer) -> dict[str, torch.Tensor]:
    """Each quantized weight as qplan's fake-quant (inference mode) gives it, by module path."""
    out = {}
    for p in q.placements:
        if p.entry.role == "state":
            w = q.model.get_parameter(p.entry.source)
            with torch.no_grad():
                out[p.entry.source.rpartition(".")[0]] = q.fake_quants[p.name](w)
    return out


def _load_with_compressed_tensors(model: nn.Module, out_dir) -> nn.Module:
    """What transformers does on load: apply the config, compress the skeleton, load, decompress."""
    skeleton = copy.deepcopy(model)
    qdict = json.loads((out_dir / "config.json").read_text())["quantization_config"]
    qconfig = QuantizationConfig.model_validate(qdict)
    apply_quantization_config(skeleton, qconfig)
    compressor = ModelCompressor(quantization_config=qconfig)
    compressor.compress_model(skeleton)
    missing, unexpected = skeleton.load_state_dict(load_file(out_dir / "model.safetensors"), strict=False)
    assert not unexpected, unexpected
    assert not [k for k in missing if not k.endswith(("_zero_point", "_scale"))], missing
    compressor.decompress_model(skeleton)
    return skeleton


WEIGHT_SPECS = {
    "int8-per-channel": QuantizationSpec(dtype="int8", granularity=PerChannelGranularity()),
    "int8-per-tensor-asym": QuantizationSpec(dtype="int8", qscheme="asymmetric"),
    "int4-per-channel-asym": QuantizationSpec(dtype="int4", qscheme="asymmetric", granularity=PerChannelGranularity()),
    "int4-group8": QuantizationSpec(dtype="int4", granularity=PerBlockGranularity(block_size=8)),
    "int4-group8-asym": QuantizationSpec(
        dtype="int4", qscheme="asymmetric", granularity=PerBlockGranularity(block_size=8)
    ),
    "uint8-per-channel-asym": QuantizationSpec(
        dtype="uint8", qscheme="asymmetric", granularity=PerChannelGranularity()
    ),
    "uint4-group8-sym": QuantizationSpec(dtype="uint4", granularity=PerBlockGranularity(block_size=8)),
    "fp8-per-channel": QuantizationSpec(dtype="float8_e4m3fn", granularity=PerChannelGranularity()),
    "int2-per-channel-clip": QuantizationSpec(
        dtype="int2", qscheme="symmetric_with_clipping", granularity=PerChannelGranularity()
    ),
}


@pytest.mark.parametrize("name", sorted(WEIGHT_SPECS))
@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_weights_round_trip_through_compressed_tensors(tmp_path, name, mode):
    model, args = mlp(width=32)
    q = _calibrated(model, args, _linear_only(WEIGHT_SPECS[name], mode=mode))
    result = export_compressed_tensors(q, tmp_path)
    assert result.skipped == []
    expected = _qplan_weights(q)
    assert set(result.modules) == set(expected) == {"layers.0", "layers.2", "layers.4", "layers.6"}
    loaded = _load_with_compressed_tensors(model, tmp_path)
    for path, want in expected.items():
        got = loaded.get_submodule(path).weight
        assert not torch.equal(want, model.get_submodule(path).weight)  # really quantized
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, msg=f"{name}: {path}")
        # the decompressed model runs on the library's dequantized weights; biases are stored as given
        torch.testing.assert_close(loaded.get_submodule(path).bias, model.get_submodule(path).bias)


def test_storage_is_packed_and_int8(tmp_path):
    model, args = mlp(width=32)
    q = _calibrated(model, args, _linear_only(WEIGHT_SPECS["int4-group8"]))
    export_compressed_tensors(q, tmp_path / "w4")
    q8 = _calibrated(model, args, _linear_only(WEIGHT_SPECS["int8-per-channel"]))
    export_compressed_tensors(q8, tmp_path / "w8")
    t4 = load_file(tmp_path / "w4" / "model.safetensors")
    t8 = load_file(tmp_path / "w8" / "model.safetensors")
    assert t4["layers.2.weight_packed"].dtype == torch.int32
    assert t4["layers.2.weight_packed"].shape == (32, 32 * 4 // 32)  # eight int4 values per int32
    assert t4["layers.2.weight_scale"].shape == (32, 32 // 8)
    assert t8["layers.2.weight"].dtype == torch.int8 and t8["layers.2.weight_scale"].shape == (32, 1)
    cfg4 = json.loads((tmp_path / "w4" / "config.json").read_text())["quantization_config"]
    assert cfg4["quant_method"] == "compressed-tensors" and cfg4["format"] == "pack-quantized"
    group = cfg4["config_groups"]["group_0"]
    assert group["weights"]["group_size"] == 8 and group["weights"]["num_bits"] == 4


def test_static_and_dynamic_input_activations(tmp_path):
    model, args = mlp(width=32)
    static = QuantizationSpec(dtype="int8", qscheme="asymmetric", qparam_calculator_cls="global_minmax")
    q = _calibrated(model, args, _linear_only(WEIGHT_SPECS["int8-per-channel"], static))
    result = export_compressed_tensors(q, tmp_path / "static")
    group = result.quantization_config["config_groups"]["group_0"]
    assert group["input_activations"]["dynamic"] is False and group["input_activations"]["symmetric"] is False
    tensors = load_file(tmp_path / "static" / "model.safetensors")
    for p in q.placements:
        for r in p.readers:
            if p.entry.role != "state" and r.kind == "input":
                path = r.op.rpartition(".")[0]
                scale, zp = q.fake_quants[p.name].qparams()
                torch.testing.assert_close(tensors[f"{path}.input_scale"], scale.reshape(1))
                assert torch.equal(tensors[f"{path}.input_zero_point"], zp.to(torch.int8).reshape(1))
    _load_with_compressed_tensors(model, tmp_path / "static")  # the library accepts the qparams

    dynamic = QuantizationSpec(dtype="int8", qparam_calculator_cls="dynamic")
    qd = _calibrated(model, args, _linear_only(WEIGHT_SPECS["int4-group8"], dynamic))
    result = export_compressed_tensors(qd, tmp_path / "dynamic")
    act = result.quantization_config["config_groups"]["group_0"]["input_activations"]
    assert act["dynamic"] is True and act["strategy"] == "tensor"
    assert not any(k.endswith("input_scale") for k in load_file(tmp_path / "dynamic" / "model.safetensors"))


def test_unsupported_entries_are_named(tmp_path):
    model, args = cnn()
    q = _calibrated(model, args, QuantizerConfig())  # W8A8 everywhere: conv weights, pooling inputs, ...
    with pytest.raises(ExportError, match=r"(?s)cannot be written as compressed-tensors.*conv1\.weight: .*Linear"):
        export_compressed_tensors(q, tmp_path / "strict")
    result = export_compressed_tensors(q, tmp_path / "loose", skip_unsupported=True)
    assert any(s.startswith("relu2.relu:out0: ") and "`pool.max_pool2d:in0`" in s for s in result.skipped)
    assert result.modules == {"fc": "group_0"}
    _load_with_compressed_tensors(model, tmp_path / "loose")


def test_linear_activations_of_an_mlp_map_fully(tmp_path):
    model, args = mlp(width=32)
    q = _calibrated(model, args, QuantizerConfig())  # every activation is some Linear's input or output
    result = export_compressed_tensors(q, tmp_path)
    assert result.skipped == []
    groups = list(result.quantization_config["config_groups"].values())
    assert all(g["input_activations"]["strategy"] == "tensor" for g in groups)
    assert any(g["output_activations"] is not None for g in groups)  # the last layer's output (the model output)
    assert len(result.modules) == 4
    _load_with_compressed_tensors(model, tmp_path)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        (QuantizationSpec(dtype="int8", qformulation="minval"), "minval"),
        (QuantizationSpec(dtype="float8_e5m2"), "float8_e5m2"),
        (QuantizationSpec(dtype="int8", granularity=PerChannelGranularity(axis=1)), "axis 1"),
        (QuantizationSpec(dtype="int4", granularity=PerBlockGranularity(block_size=(4, 8))), "2-D blocks"),
    ],
)
def test_inexpressible_weight_specs_raise(tmp_path, spec, why):
    model, args = mlp(width=32)
    q = _calibrated(model, args, _linear_only(spec))
    with pytest.raises(ExportError, match=rf"`layers\.0\.weight` \(weights\): .*{why}"):
        export_compressed_tensors(q, tmp_path)


def test_per_channel_activations_raise(tmp_path):
    model, args = mlp(width=32)
    act = QuantizationSpec(dtype="int8", granularity=PerChannelGranularity(axis=1))
    q = _calibrated(model, args, _linear_only(WEIGHT_SPECS["int8-per-channel"], act))
    with pytest.raises(ExportError, match=r"input_activations.*per_channel activations"):
        export_compressed_tensors(q, tmp_path)


def test_export_is_deterministic(tmp_path):
    model, args = mlp(width=32)
    q = _calibrated(model, args, _linear_only(WEIGHT_SPECS["int4-group8-asym"]))
    export_compressed_tensors(q, tmp_path / "a")
    export_compressed_tensors(q, tmp_path / "b")
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_tiny_llama_loads_through_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    from transformers.utils.quantization_config import CompressedTensorsConfig

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        use_cache=False,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    q = _calibrated(model, (ids,), _linear_only(WEIGHT_SPECS["int4-group8-asym"]))
    result = export_compressed_tensors(q, tmp_path)
    assert len(result.modules) == 15  # 7 projections per layer, and lm_head
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "llama"
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path, quantization_config=CompressedTensorsConfig(dequantize=True)
    ).eval()
    for path, want in _qplan_weights(q).items():
        torch.testing.assert_close(loaded.get_submodule(path).weight, want, rtol=1e-6, atol=1e-7, msg=path)
    with torch.no_grad():
        want_logits = q.prepared(ids)
        want_logits = getattr(want_logits, "logits", want_logits)
        torch.testing.assert_close(loaded(ids).logits, want_logits, rtol=1e-4, atol=1e-5)


def test_dynamic_per_token_inputs(tmp_path):
    model, args = mlp(width=32)
    per_token = QuantizationSpec(
        dtype="int8", granularity=PerBlockGranularity(block_size=(1, -1)), qparam_calculator_cls="dynamic"
    )
    q = _calibrated(model, args, _linear_only(WEIGHT_SPECS["int8-per-channel"], per_token))
    result = export_compressed_tensors(q, tmp_path)
    act = result.quantization_config["config_groups"]["group_0"]["input_activations"]
    assert (act["strategy"], act["dynamic"]) == ("token", True)
    _load_with_compressed_tensors(model, tmp_path)
