"""``qplan demo`` on the command line (:mod:`qplan.cli.commands.demo`): the table, exit codes 0 / 1 / 2."""

from __future__ import annotations

from qplan import demo
from qplan.cli import main
from qplan.demo import DemoResult, StageResult


def _stage(name, acc, max_drop=None):
    return StageResult(
        name=name,
        accuracy=acc,
        exported_accuracy=acc,
        file="f",
        file_bytes=1,
        weight_bytes=1,
        seconds=0.0,
        max_drop=max_drop,
    )


def _result(*stages):
    return DemoResult(mode="graph", seed=0, out="o", train_images=1, test_images=1, stages=stages, timings={})


def test_cli_demo_prints_the_table_and_exits_zero(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["demo", "--out", str(out), "--epochs", "3", "--qat-epochs", "1", "--mode", "eager"])
    text = capsys.readouterr().out
    assert code == 0, text
    for needle in ("Train the float model", "fake-quants by dtype and role", "PTQ W8A8", "QAT W4A8", "✓"):
        assert needle in text
    assert (out / "qat.pt2").is_file()


def test_cli_demo_refuses_a_foreign_folder_with_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "not made by `qplan demo`" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_cli_demo_exits_1_and_says_so_when_a_target_is_missed(monkeypatch, capsys):
    missed = _result(_stage("float", 98.0), _stage("PTQ W8A8", 90.0, 1.0))
    monkeypatch.setattr(demo, "run_demo", lambda options, reporter: missed)
    assert main(["demo", "--out", "unused"]) == 1
    text = capsys.readouterr().out
    assert "✗" in text and "target missed: PTQ W8A8: accuracy 90.00% is 8.00 points below float 98.00%" in text


def test_cli_demo_rejects_bad_numbers_with_exit_2(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "o"), "--epochs", "0"]) == 2
    assert "epochs must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
