"""The ``qplan demo`` pipeline: bundled data, training helpers, the stages end to end, the CLI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import msgspec
import pytest
import torch
from torch import nn

from qplan import demo
from qplan.demo import DemoError, DemoOptions, DemoResult, StageResult

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def digits() -> demo.Digits:
    return demo.load_digits()


# ------------------------------------------------------------------------------------------- data


def test_bundled_digits_shapes_and_values(digits):
    assert digits.x_train.shape == (1438, 1, 8, 8) and digits.x_test.shape == (359, 1, 8, 8)
    assert digits.y_train.shape == (1438,) and digits.y_test.shape == (359,)
    for x in (digits.x_train, digits.x_test):
        assert x.dtype == torch.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert torch.equal(x * 16, (x * 16).round())  # the 0..16 pixel counts, exactly
    for y in (digits.y_train, digits.y_test):
        assert y.dtype == torch.int64
        assert torch.equal(y.unique(), torch.arange(10))  # every class on both sides of the split


def test_bundled_digits_are_sklearns_digits_with_the_scripted_split(digits):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ref = sklearn_datasets.load_digits()
    images = torch.tensor(ref.images, dtype=torch.float32).unsqueeze(1) / 16
    labels = torch.tensor(ref.target, dtype=torch.int64)
    spec = importlib.util.spec_from_file_location("make_digits", ROOT / "scripts" / "make_digits.py")
    make_digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_digits)
    train, test = make_digits.split(ref.target)
    assert set(train.tolist()).isdisjoint(test.tolist()) and len(train) + len(test) == len(labels)
    assert torch.equal(digits.x_train, images[train]) and torch.equal(digits.y_train, labels[train])
    assert torch.equal(digits.x_test, images[test]) and torch.equal(digits.y_test, labels[test])


def test_load_digits_rejects_a_file_that_is_not_npy(tmp_path):
    import zipfile

    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("x_train.npy", b"not numpy")
    with pytest.raises(DemoError, match="not in .npy format"):
        demo.load_digits(bad)


def test_batches_are_full_seeded_and_cover_each_image_at_most_once():
    x = torch.arange(10).float()
    y = torch.arange(10)
    got = list(demo.batches(x, y, 3, shuffle=True, generator=torch.Generator().manual_seed(1)))
    again = list(demo.batches(x, y, 3, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert [len(b) for b, _ in got] == [3, 3, 3]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(got, again))
    seen = torch.cat([b for b, _ in got])
    assert len(seen.unique()) == 9
    assert all(torch.equal(b.long(), c) for b, c in got)  # images and labels stay paired


def test_evaluate_always_calls_the_model_at_the_batch_size():
    seen = []

    def model(x):
        seen.append(x.shape[0])
        return nn.functional.one_hot(x[:, 0].long(), 3).float()  # predicts the label stored in the input

    x = torch.tensor([[0.0], [1.0], [2.0], [1.0], [0.0]])
    y = torch.tensor([0, 1, 2, 0, 0])
    assert demo.evaluate(model, x, y, batch_size=2) == pytest.approx(80.0)
    assert seen == [2, 2, 2]


def test_train_float_learns_the_digits(digits):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: 1 thread is several times faster on a busy machine
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        before = demo.evaluate(model, digits.x_test, digits.y_test, 64)
        demo.train_float(model, digits, epochs=2, batch_size=32, lr=1e-2, seed=0)
        after = demo.evaluate(model, digits.x_test, digits.y_test, 64)
    finally:
        torch.set_num_threads(threads)
    assert before < 30 and after > 85
    assert not model.training


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
    assert any(t.dtype == torch.int8 for t in program.state_dict.values())
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


def test_cli_demo_prints_the_table_and_exits_zero(tmp_path, capsys):
    from qplan.cli import main

    out = tmp_path / "cli"
    code = main(["demo", "--out", str(out), "--epochs", "3", "--qat-epochs", "1", "--mode", "eager"])
    text = capsys.readouterr().out
    assert code == 0, text
    for needle in ("Train the float model", "fake-quants by dtype and role", "PTQ W8A8", "QAT W4A8", "✓"):
        assert needle in text
    assert (out / "qat.pt2").is_file()


def test_cli_demo_refuses_a_foreign_folder_with_exit_2(tmp_path, capsys):
    from qplan.cli import main

    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "not made by `qplan demo`" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_cli_demo_exits_1_and_says_so_when_a_target_is_missed(monkeypatch, capsys):
    from qplan.cli import main

    missed = _result(_stage("float", 98.0), _stage("PTQ W8A8", 90.0, 1.0))
    monkeypatch.setattr(demo, "run_demo", lambda options, reporter: missed)
    assert main(["demo", "--out", "unused"]) == 1
    text = capsys.readouterr().out
    assert "✗" in text and "target missed: PTQ W8A8: accuracy 90.00% is 8.00 points below float 98.00%" in text


def test_cli_demo_rejects_bad_numbers_with_exit_2(tmp_path, capsys):
    from qplan.cli import main

    assert main(["demo", "--out", str(tmp_path / "o"), "--epochs", "0"]) == 2
    assert "epochs must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
