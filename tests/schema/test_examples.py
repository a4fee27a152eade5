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
def test_example_validates_on_the_command_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qplan.cli import main

    assert main(["validate", str(path)]) == 0


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
