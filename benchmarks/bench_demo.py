"""Benchmark: what `qplan demo` reaches with its default settings (accuracy, sizes, time), both modes.

Runs ``qplan.demo.run_demo`` in graph mode and in eager mode, in one process, each into a temporary
output folder: float training, PTQ W8A8 (calibration), QAT W4A8, every stage exported, saved and
loaded back. The table is the demo's own result table, one row per (mode, stage); the whole run of
each mode is timed (wall and process CPU time).

Usage: python benchmarks/bench_demo.py [--quick] [--seed 0] [-o benchmarks/results/demo.md]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

from _benchenv import Run, timed, write_report

TITLE = "`qplan demo`: accuracy, size and time (default settings)"


def _size(n: int) -> str:
    return f"{n / 1000:.1f} KB"


def _rows(result) -> list[str]:
    base = result.float_accuracy
    rows = []
    for s in result.stages:
        vs, target = "", ""
        if s.max_drop is not None:
            vs = f"{s.accuracy - base:+.2f}"
            target = f"≥ -{s.max_drop:g} {'✓' if s.drop(base) <= s.max_drop else '✗'}"
        rows.append(
            f"| {result.mode} | {s.name} | {s.accuracy:.2f}% | {vs} | {target} | {s.exported_accuracy:.2f}% |"
            f" {_size(s.file_bytes)} | {_size(s.weight_bytes)} | {s.seconds:.1f} s |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 256 train / 64 test images, 1 epoch each")
    parser.add_argument("-o", "--output", default=None)
    args = parser.parse_args(argv)
    run = Run(__file__, argv, threads=1)
    warnings.filterwarnings("ignore")

    from qplan.demo import DemoOptions, run_demo

    small = {"train_images": 256, "test_images": 64, "epochs": 1, "qat_epochs": 1} if args.quick else {}
    rows, totals = [], []
    for mode in ("graph", "eager"):
        with tempfile.TemporaryDirectory() as tmp:
            options = DemoOptions(mode=mode, out=Path(tmp) / "demo", seed=args.seed, **small)
            result, wall, cpu = timed(lambda options=options: run_demo(options))
        rows += _rows(result)
        totals.append(f"{mode}: {wall:.1f} s wall / {cpu:.1f} s CPU")
        train, test = result.train_images, result.test_images
    options = DemoOptions(**small)
    notes = [
        f"data: bundled digits ({train} train / {test} test images, 8x8); model: `qplan.models.cnn` (DigitsCNN);"
        f" seed {args.seed}",
        f"float: {options.epochs} epochs, Adam lr {options.lr:g}, cosine decay, batch {options.batch_size};"
        f" PTQ: `examples/demo_w8a8.yaml`, {options.calibration_images} calibration images; QAT:"
        f" `examples/demo_w4a8_qat.yaml`, {options.qat_epochs} epochs, Adam lr {options.qat_lr:g}",
        "stage time: wall time of the stage (compile, prepare, calibration or training, evaluation, save, reload"
        " check); `saved program` = accuracy of the saved program loaded back; sizes: 1 KB = 1000 B",
    ]
    body = "\n".join(
        [
            "| mode | stage | accuracy | vs float | target | saved program | file | weights | stage time |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|",
            *rows,
            "",
            "Whole `run_demo` per mode (in this process, after imports): " + "; ".join(totals) + ".",
        ]
    )
    write_report(TITLE, run, body, args.output, notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
