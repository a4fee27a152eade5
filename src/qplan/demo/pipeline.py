"""The demo's pipeline: float training, W8A8 PTQ, W4A8 QAT, export, chained by :func:`run_demo`.

Every run with the same options is deterministic: fixed train/test split, seeded model
initialisation and batch order, fixed-size batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qplan.demo.data import Digits, load_digits, subset
from qplan.demo.options import PTQ_TARGET, QAT_TARGET, DemoOptions, check_options
from qplan.demo.outputs import exported_accuracy, prepare_out, quiet_export, save_program
from qplan.demo.progress import Clock, NullReporter, Reporter
from qplan.demo.results import DemoResult, StageResult
from qplan.demo.training import calibrate, evaluate, train_float, train_qat

__all__ = ["run_demo"]

PTQ_CONFIG = "demo_w8a8.yaml"
QAT_CONFIG = "demo_w4a8_qat.yaml"

ModelFactory = Callable[[], tuple[nn.Module, tuple[Any, ...]]]


def run_demo(
    options: DemoOptions | None = None,
    reporter: Reporter | None = None,
    *,
    model_factory: ModelFactory | None = None,
) -> DemoResult:
    """Train a float CNN on digits, then W8A8 PTQ and W4A8 QAT, export all three, and measure.

    Raises :class:`~qplan.demo.DemoError` for bad options or an unusable output folder; errors
    of a stage (config, compile, runtime) propagate as they are (``QplanError`` subclasses for
    qplan's own).
    """
    options = options or DemoOptions()
    check_options(options)
    with _torch_threads(options.threads), quiet_export():
        return _run(options, reporter or NullReporter(), model_factory or _default_factory)


def _run(options: DemoOptions, reporter: Reporter, model_factory: ModelFactory) -> DemoResult:
    configs = {
        "ptq": _load_config(options.ptq_config, PTQ_CONFIG),
        "qat": _load_config(options.qat_config, QAT_CONFIG),
    }
    out = Path(options.out)
    prepare_out(out)
    data = subset(load_digits(), options.train_images, options.test_images)
    clock = Clock()
    # The factory's example inputs are not used: the demo captures on a real batch of digits
    # (cloned: a saved program stores its example inputs, and a slice would keep the whole set).
    model, _ = model_factory()
    _reinitialize(model, options.seed)
    example = (data.x_train[: options.batch_size].clone(),)

    stages = [_float_stage(model, example, data, options, reporter, clock)]
    for key, title, max_drop in (("ptq", "PTQ W8A8", PTQ_TARGET), ("qat", "QAT W4A8", QAT_TARGET)):
        stage = _QuantizedStage(key, title, max_drop, configs[key])
        stages.append(stage.run(model, example, data, options, reporter, clock))
    return DemoResult(
        mode=options.mode,
        seed=options.seed,
        out=str(out),
        train_images=len(data.x_train),
        test_images=len(data.x_test),
        stages=tuple(stages),
        timings=clock.timings,
    )


def _float_stage(
    model: nn.Module, example: tuple, data: Digits, options: DemoOptions, reporter: Reporter, clock: Clock
) -> StageResult:
    bs = options.batch_size
    reporter.stage("Train the float model")
    with clock("float"):
        with clock("float.train"):
            train_float(
                model, data, epochs=options.epochs, batch_size=bs, lr=options.lr, seed=options.seed, reporter=reporter
            )
        accuracy = evaluate(model, data.x_test, data.y_test, bs)
        reporter.info(f"float test accuracy: {accuracy:.2f}%")
        with clock("float.export"):
            path = Path(options.out) / "float.pt2"
            file_bytes, weight_bytes = save_program(torch.export.export(model, example), path)
        exported = exported_accuracy(path, data, bs)
    return StageResult(
        name="float",
        accuracy=accuracy,
        exported_accuracy=exported,
        file=str(path),
        file_bytes=file_bytes,
        weight_bytes=weight_bytes,
        seconds=clock.timings["float"],
    )


class _QuantizedStage:
    """One quantized stage: ``key`` ``ptq`` calibrates, ``qat`` trains; ``title`` names its row."""

    def __init__(self, key: str, title: str, max_drop: float, config: Any) -> None:
        self.key, self.title, self.max_drop, self.config = key, title, max_drop, config

    def run(
        self, model: nn.Module, example: tuple, data: Digits, options: DemoOptions, reporter: Reporter, clock: Clock
    ) -> StageResult:
        """Compile the config, prepare, calibrate or train, evaluate, finalize, save and reload."""
        from qplan.runtime.quantizer import Quantizer

        key, bs, out = self.key, options.batch_size, Path(options.out)
        reporter.stage(f"{self.title}: compile, prepare, {'calibrate' if key == 'ptq' else 'train'}, finalize")
        with clock(key):
            plan = self._compile(model, example, options, reporter, clock)
            quantizer = Quantizer(model, plan)  # prepare() works on its own copy of the model
            with clock(f"{key}.prepare"):
                prepared = quantizer.prepare(example)
            self._fit(quantizer, prepared, data, options, reporter, clock)
            quantizer.inference_mode()
            accuracy = evaluate(prepared, data.x_test, data.y_test, bs)
            reporter.info(f"{self.title} test accuracy: {accuracy:.2f}%")
            with clock(f"{key}.finalize"):
                path = out / f"{key}.pt2"
                file_bytes, weight_bytes = save_program(quantizer.finalize(), path)
            exported = exported_accuracy(path, data, bs)
        return StageResult(
            name=self.title,
            accuracy=accuracy,
            exported_accuracy=exported,
            file=str(path),
            file_bytes=file_bytes,
            weight_bytes=weight_bytes,
            seconds=clock.timings[key],
            max_drop=self.max_drop,
        )

    def _compile(self, model: nn.Module, example: tuple, options: DemoOptions, reporter: Reporter, clock: Clock) -> Any:
        """Compile the stage's plan, write it next to the programs and report it."""
        from qplan.compiler import compile_plan
        from qplan.compiler.plan import encode_plan

        with clock(f"{self.key}.compile"):
            plan = compile_plan(model, self.config, example, mode=options.mode)
        (Path(options.out) / f"{self.key}.plan.json").write_bytes(encode_plan(plan))
        reporter.plan(self.title, plan)
        for d in plan.diagnostics:
            reporter.info(d.concise())
        return plan

    def _fit(
        self, quantizer: Any, prepared: Any, data: Digits, options: DemoOptions, reporter: Reporter, clock: Clock
    ) -> None:
        """Calibrate (``ptq``) or train with the QAT schedule (``qat``) the prepared model."""
        bs = options.batch_size
        if self.key == "ptq":
            with clock(f"{self.key}.calibrate"):
                quantizer.calibration_mode()
                calibrate(prepared, data, images=options.calibration_images, batch_size=bs, reporter=reporter)
            return
        with clock(f"{self.key}.train"):
            quantizer.training_mode()
            train_qat(
                prepared,
                data,
                epochs=options.qat_epochs,
                step=quantizer.step,
                batch_size=bs,
                lr=options.qat_lr,
                seed=options.seed + 1,
                reporter=reporter,
            )


def _load_config(path: Path | None, bundled: str) -> Any:
    """A ``LoadedConfig`` (so plans cite file and line): ``path``, or the bundled example ``bundled``."""
    from qplan.schema.loader import load_config

    if path is not None:
        return load_config(Path(path))
    data = resources.files("qplan").joinpath("examples", bundled).read_bytes()
    return load_config(data, name=f"qplan/examples/{bundled}")


def _reinitialize(model: nn.Module, seed: int) -> None:
    """Seeded fresh parameters (factories may seed their own), so ``seed`` picks the initialisation."""
    torch.manual_seed(seed)
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _default_factory() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    from qplan.models import cnn

    return cnn()
