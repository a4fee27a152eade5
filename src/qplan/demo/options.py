"""What ``qplan demo`` takes: :class:`DemoOptions`, the accuracy targets, and option checks."""

from __future__ import annotations

from pathlib import Path

import msgspec

from qplan.diagnostics import QplanError

__all__ = ["DEFAULT_OUT", "PTQ_TARGET", "QAT_TARGET", "DemoError", "DemoOptions", "check_options"]

DEFAULT_OUT = Path("qplan-demo-out")
PTQ_TARGET = 1.0  # W8A8 PTQ: at most 1 accuracy point below float
QAT_TARGET = 2.0  # W4A8 QAT: at most 2 accuracy points below float


class DemoError(QplanError):
    """A demo stage could not run (bad option, unusable output folder, a failing stage)."""


class DemoOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of :func:`~qplan.demo.run_demo`; the defaults are the README's demo."""

    mode: str = "graph"  # graph | eager
    out: Path = DEFAULT_OUT
    epochs: int = 10  # float training epochs
    qat_epochs: int = 8  # 352 steps: the bundled schedule freezes observers at step 300
    seed: int = 0
    batch_size: int = 32
    lr: float = 3e-3  # float training (Adam, cosine decay)
    qat_lr: float = 1e-3
    calibration_images: int = 512
    train_images: int | None = None  # use only the first N training images (tests); None = all
    test_images: int | None = None  # evaluate on the first N test images (tests); None = all
    ptq_config: Path | None = None  # None = the bundled examples/demo_w8a8.yaml
    qat_config: Path | None = None  # None = the bundled examples/demo_w4a8_qat.yaml
    threads: int | None = 1  # torch intra-op threads while the demo runs (a tiny model: 1 is fastest)


def check_options(options: DemoOptions) -> None:
    """Raise :class:`DemoError` for an option no run can use (before anything touches the disk)."""
    if options.mode not in ("graph", "eager"):
        raise DemoError(f"mode `{options.mode}` is not one of `graph`, `eager`")
    for name in ("epochs", "qat_epochs", "batch_size", "calibration_images"):
        if getattr(options, name) < 1:
            raise DemoError(f"{name} must be >= 1, got {getattr(options, name)}")
    if options.threads is not None and options.threads < 1:
        raise DemoError(f"threads must be >= 1, got {options.threads}")
    if options.train_images is not None and options.train_images < options.batch_size:
        raise DemoError(f"train_images ({options.train_images}) must be >= batch_size ({options.batch_size})")
    if options.test_images is not None and options.test_images < 1:
        raise DemoError(f"test_images must be >= 1, got {options.test_images}")
