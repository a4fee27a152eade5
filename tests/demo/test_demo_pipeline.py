"""The ``qplan demo`` pipeline (:mod:`qplan.demo.pipeline`): options, out folder, results, the stages end to end."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import torch

from qplan import demo
from qplan.demo import DemoError, DemoOptions, DemoResult, StageResult

# ------------------------------------------------------------------------------------- out folder


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    user_file = tmp_path / "float.pt2"
    user_file.write_text("mine")
    with pytest.raises(DemoError, match="not made by `qplan demo`"):
        demo.run_demo(DemoOptions(out=tmp_path))
    assert user_file.read_text() == "mine"
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(DemoError, match="not a folder"):
        demo.run_demo(DemoOptions(out=not_a_dir))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DemoOptions(mode="pt2e"), "mode `pt2e`"),
        (DemoOptions(epochs=0), "epochs must be >= 1"),
        (DemoOptions(train_images=8, batch_size=32), r"train_images \(8\) must be >= batch_size \(32\)"),
    ],
)
def test_demo_rejects_bad_options_before_touching_disk(tmp_path, options, message):
    out = tmp_path / "out"
    with pytest.raises(DemoError, match=message):
        demo.run_demo(msgspec_replace(options, out=out))
    assert not out.exists()


def msgspec_replace(options: DemoOptions, **changes) -> DemoOptions:
    return msgspec.structs.replace(options, **changes)


def _stage(name, acc, max_drop=None, exported=None):
    return StageResult(
        name=name,
        accuracy=acc,
        exported_accuracy=acc if exported is None else exported,
        file="f",
        file_bytes=1,
        weight_bytes=1,
        seconds=0.0,
        max_drop=max_drop,
    )


def _result(*stages):
    return DemoResult(mode="graph", seed=0, out="o", train_images=1, test_images=1, stages=stages, timings={})


def test_missed_targets_compares_each_stage_with_float():
    result = _result(_stage("float", 98.0), _stage("PTQ W8A8", 97.0, 1.0), _stage("QAT W4A8", 95.5, 2.0))
    missed = result.missed_targets()
    assert len(missed) == 1 and missed[0].startswith("QAT W4A8: accuracy 95.50% is 2.50 points below float 98.00%")
    # the saved program counts too: a good fake-quant model does not hide a worse export
    result = _result(_stage("float", 98.0), _stage("PTQ W8A8", 98.0, 1.0, exported=96.5))
    assert result.missed_targets() == [
        "PTQ W8A8: accuracy 96.50% is 1.50 points below float 98.00% (target: at most 1)"
    ]


# ------------------------------------------------------------------------------------ end to end

FAST = dict(epochs=2, qat_epochs=1, train_images=640, test_images=160, calibration_images=128)


@pytest.mark.parametrize("mode", ["graph", "eager"])
def test_fast_demo_runs_every_stage_and_saves_loadable_programs(tmp_path, mode):
    from qplan.compiler.plan import load_plan
    from qplan.runtime.finalize import load_program

    out = tmp_path / "demo"
    events = []

    class Recorder(demo.NullReporter):
        def stage(self, title):
            events.append(("stage", title))

        def plan(self, title, plan):
            events.append(("plan", title, plan.mode))

    result = demo.run_demo(DemoOptions(mode=mode, out=out, **FAST), Recorder())
    assert [s.name for s in result.stages] == ["float", "PTQ W8A8", "QAT W4A8"]
    assert [e[1] for e in events if e[0] == "plan"] == ["PTQ W8A8", "QAT W4A8"]
    assert all(e[2] == mode for e in events if e[0] == "plan")
    assert result.test_images == 160 and result.train_images == 640
    flt, ptq, qat = result.stages
    assert flt.accuracy > 80  # 2 epochs on 640 images: far above chance (10%)
    assert ptq.accuracy > flt.accuracy - 5 and qat.accuracy > 50
    for s in result.stages:
        assert 0 <= s.accuracy <= 100 and s.seconds > 0
        # the saved program, loaded back, classifies like the model it was exported from
        assert abs(s.exported_accuracy - s.accuracy) <= 2.0
        assert Path(s.file).stat().st_size == s.file_bytes > 0
    assert ptq.weight_bytes < flt.weight_bytes / 2  # int8 weights vs float32
    program = load_program(qat.file)
    assert any(t.dtype == torch.uint8 for t in program.state_dict.values())  # W4: two int4 codes per byte
    assert qat.weight_bytes < ptq.weight_bytes
    assert load_plan(out / "qat.plan.json").mode == mode
    assert {p.name for p in out.iterdir()} == {
        ".qplan-demo",
        ".gitignore",
        "float.pt2",
        "ptq.pt2",
        "qat.pt2",
        "ptq.plan.json",
        "qat.plan.json",
    }
    assert set(result.timings) >= {"float.train", "ptq.calibrate", "qat.train", "qat.finalize"}


def test_demo_is_deterministic_and_reruns_into_its_own_folder(tmp_path):
    options = DemoOptions(out=tmp_path, epochs=1, qat_epochs=1, train_images=320, test_images=96, calibration_images=64)
    first = demo.run_demo(options)
    plans = {name: (tmp_path / name).read_bytes() for name in ("ptq.plan.json", "qat.plan.json")}
    second = demo.run_demo(options)  # the folder is the demo's own now: replaced, not refused
    assert [(s.accuracy, s.exported_accuracy) for s in first.stages] == [
        (s.accuracy, s.exported_accuracy) for s in second.stages
    ]
    assert {name: (tmp_path / name).read_bytes() for name in plans} == plans


def test_default_demo_meets_its_accuracy_targets(tmp_path):
    """The README's demo as shipped (graph mode, default options): float ~98%, both targets met."""
    result = demo.run_demo(DemoOptions(out=tmp_path))
    assert result.train_images == 1438 and result.test_images == 359
    assert result.float_accuracy >= 97.0
    assert result.missed_targets() == []


# ------------------------------------------------------------------------------------------- CLI


def test_the_package_exports_what_its_all_names() -> None:
    assert all(getattr(demo, name) is not None for name in demo.__all__)
    assert sorted(dir(demo)) == sorted(demo.__all__)
