"""The example configs shipped in `qplan/examples/` are valid and carry the editor modeline."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from qplan.schema.loader import load_config
from qplan.schema.types import PerBlockGranularity, PerChannelGranularity, QATSchedule, QuantizationSpec

MODELINE = "# yaml-language-server: $schema=../schema/schema.json\n"
EXAMPLES_DIR = Path(str(resources.files("qplan") / "examples"))
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))
IDS = [p.name for p in EXAMPLES]


def test_examples_are_shipped() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"demo_w8a8.yaml", "demo_w4a8_qat.yaml", "anchors.yaml", "w8a8.yaml"} <= names
    # The modeline's relative path resolves to the shipped schema from the examples folder.
    assert (EXAMPLES_DIR / "../schema/schema.json").resolve().is_file()


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_starts_with_modeline(path: Path) -> None:
    assert path.read_text(encoding="utf-8").startswith(MODELINE)


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_loads_without_warnings(path: Path) -> None:
    loaded = load_config(path)
    assert loaded.warnings == []


@pytest.mark.parametrize("path", EXAMPLES, ids=IDS)
def test_example_validates_on_the_command_line(path: Path) -> None:
    from qplan.cli import main

    assert main(["validate", str(path)]) == 0


# Bare class names as module type keys are a qplan extension (SPEC §1.4) the reference rejects.
BARE_CLASS_NAME_KEYS = {"mixed_precision.yaml", "ref_skip_softmax_in_module_type.yaml"}


@pytest.mark.conformance
def test_examples_load_in_the_reference_library() -> None:
    """Same keys, same value forms: the reference loads every example without qplan extensions."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from coreai_opt.quantization import QuantizerConfig as ReferenceConfig

        checked = 0
        for path in EXAMPLES:
            if path.name in BARE_CLASS_NAME_KEYS:
                with pytest.raises(Exception, match="fully-qualified"):
                    ReferenceConfig.from_yaml(path)
                continue
            reference = ReferenceConfig.from_yaml(path)
            ours = load_config(path).config
            assert set(reference.module_name_configs) == set(ours.module_name_configs), path.name
            checked += 1
    assert checked >= len(EXAMPLES) - len(BARE_CLASS_NAME_KEYS)


def test_reference_doc_examples_mean_what_they_say() -> None:
    only_op = load_config(EXAMPLES_DIR / "ref_only_one_op_by_name.yaml").config.global_config
    assert only_op.op_input_spec == only_op.op_output_spec == only_op.op_state_spec == {"*": None}
    assert only_op.op_name_config["linear_23"].op_state_spec["weight"].granularity == PerChannelGranularity()
    mha = load_config(EXAMPLES_DIR / "ref_mha_boundaries.yaml").config.module_type_configs[
        "torch.nn.modules.activation.MultiheadAttention"
    ]
    assert list(mha.module_input_spec) == ["0", "1", "2"]
    assert mha.op_input_spec == {"*": None}
    assert mha.op_state_spec == {"weight": QuantizationSpec(granularity=PerChannelGranularity())}


def test_yaml_mirrors_of_python_doc_examples_equal_the_python_api() -> None:
    import torch.nn as nn

    from qplan import ModuleQuantizerConfig, QuantizerConfig

    w4 = QuantizerConfig.presets.w4
    expected = {
        "ref_w4_without.yaml": w4().without(nn.LayerNorm, nn.Embedding, "model.lm_head"),
        "ref_w4_only_for.yaml": w4().only_for(nn.Linear, nn.Conv2d),
        "ref_w4_embedding_w8.yaml": w4().set_module_type(nn.Embedding, ModuleQuantizerConfig.presets.w8()),
        "ref_qat_schedule.yaml": QuantizerConfig(
            global_config=ModuleQuantizerConfig(
                qat_schedule=QATSchedule(enable_observer=0, enable_fake_quant=500, disable_observer=1500)
            )
        ),
    }
    for name, config in expected.items():
        assert load_config(EXAMPLES_DIR / name).config == config, name


def test_demo_qat_schedule() -> None:
    config = load_config(EXAMPLES_DIR / "demo_w4a8_qat.yaml").config
    glob = config.global_config
    assert glob.qat_schedule == QATSchedule(enable_observer=0, enable_fake_quant=10, disable_observer=300)
    weight = glob.op_state_spec["weight"]
    assert weight.dtype == "int4" and weight.granularity == PerChannelGranularity()
    assert glob.op_input_spec["*"].dtype == "int8"


def test_anchor_aliases_and_merge_keys_expand() -> None:
    config = load_config(EXAMPLES_DIR / "anchors.yaml").config
    act8 = QuantizationSpec(dtype="int8", qparam_calculator_cls="moving_average")
    glob = config.global_config
    assert glob.op_input_spec == {"*": act8} and glob.op_output_spec == {"*": act8}
    assert glob.op_state_spec["weight"].granularity == PerBlockGranularity(block_size=32)
    encoder = config.module_name_configs[r"encoder\.layers\.[0-5]\..*"]
    # `<<: *w4a8` brought the activation specs; the nested merge changed only the block size.
    assert encoder.op_input_spec == {"*": act8}
    assert encoder.op_state_spec["weight"] == QuantizationSpec(
        dtype="int4", granularity=PerBlockGranularity(block_size=64)
    )
