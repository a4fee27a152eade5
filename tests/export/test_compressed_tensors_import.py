"""compressed-tensors `quantization_config` -> qplan config, and what the mapping reports."""

from __future__ import annotations

import torch

from qplan.export.compressed_tensors import config_from_compressed_tensors
from qplan.models import mlp
from qplan.runtime import Quantizer
from qplan.schema.types import PerBlockGranularity, PerChannelGranularity, PerTensorGranularity

W4A16 = {
    "quant_method": "compressed-tensors",
    "format": "pack-quantized",
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "weights": {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 8},
            "input_activations": None,
            "output_activations": None,
        }
    },
    "ignore": ["lm_head", "re:.*layers\\.6$"],
}


def test_w4a16_group_maps_to_per_block_weights():
    config, problems = config_from_compressed_tensors(W4A16)
    assert problems == []
    assert config.global_config is None
    linear = config.module_type_configs["torch.nn.Linear"]
    w = linear.op_state_spec["weight"]
    assert (w.dtype, str(w.qscheme)) == ("int4", "symmetric")
    assert w.granularity == PerBlockGranularity(block_size=8, axis=1)
    assert linear.op_input_spec == {"*": None} and linear.op_output_spec == {"*": None}
    assert config.module_name_configs == {"lm_head": None, "(?:.*layers\\.6$).*": None}


def test_w8a8_static_and_dynamic_activations():
    qc = {
        "config_groups": {
            "g": {
                "targets": ["re:.*proj"],
                "weights": {"num_bits": 8, "type": "int", "symmetric": False, "strategy": "channel"},
                "input_activations": {"num_bits": 8, "type": "int", "symmetric": True, "dynamic": True},
                "output_activations": {"num_bits": 8, "type": "int", "strategy": "tensor", "symmetric": False},
            }
        }
    }
    config, problems = config_from_compressed_tensors(qc)
    assert problems == []
    m = config.module_name_configs["(?:.*proj).*"]
    assert m.op_state_spec["weight"].granularity == PerChannelGranularity(axis=0)
    assert str(m.op_state_spec["weight"].qscheme) == "asymmetric"
    assert m.op_input_spec["0"].qparam_calculator_cls == "dynamic"
    assert m.op_output_spec["0"].granularity == PerTensorGranularity()


def test_what_qplan_cannot_express_is_reported():
    qc = {
        "config_groups": {
            "nvfp4": {
                "targets": ["Linear"],
                "weights": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16},
                "input_activations": {"num_bits": 8, "type": "int", "strategy": "token", "dynamic": True},
            },
            "gptq": {
                "targets": ["model.layers.0.mlp.up_proj"],
                "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, "actorder": "group"},
            },
        },
        "kv_cache_scheme": {"num_bits": 8, "type": "float"},
    }
    config, problems = config_from_compressed_tensors(qc)
    text = "\n".join(problems)
    assert "`kv_cache_scheme`" in text
    assert "config_groups.nvfp4.weights: float4" in text
    assert "config_groups.nvfp4.input_activations: strategy `token`" in text
    assert "config_groups.gptq.weights: actorder `group`" in text
    assert config.module_name_configs["model\\.layers\\.0\\.mlp\\.up_proj"].op_state_spec == {"*": None}


def test_imported_config_prepares_a_model():
    config, _ = config_from_compressed_tensors(W4A16)
    model, args = mlp(width=32)
    q = Quantizer(model, config)
    prepared = q.prepare(args)
    weights = sorted(p.entry.source for p in q.placements if p.entry.role == "state")
    assert weights == ["layers.0.weight", "layers.2.weight", "layers.4.weight"]  # layers.6 is ignored
    assert all(p.entry.role == "state" for p in q.placements)
    with torch.no_grad():
        assert prepared(*args).shape == (8, 10)
