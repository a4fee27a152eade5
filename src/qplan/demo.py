"""The end-to-end demo behind ``qplan demo``: float training, W8A8 PTQ, W4A8 QAT, export.

Everything runs on the digits data set bundled with qplan (``qplan/data/digits.npz``: 8x8
images, 10 classes; see ``qplan/data/README.md``), so no download and no scikit-learn are needed.
The stages are plain functions over plain values; :func:`run_demo` chains them and returns a
:class:`DemoResult`. Nothing here prints: progress goes through a :class:`Reporter` that the
caller passes in (the CLI renders it with rich; tests pass :class:`NullReporter`).

Every run with the same options is deterministic: fixed train/test split, seeded model
initialisation and batch order, fixed-size batches (graph-mode programs are captured at one
batch size, so the last partial batch of training is dropped and evaluation pads its last one).
"""

from __future__ import annotations

import ast
import contextlib
import io
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import msgspec
import torch
from torch import nn

from qplan.diagnostics import QplanError

__all__ = [
    "DEFAULT_OUT",
    "Digits",
    "DemoOptions",
    "StageResult",
    "DemoResult",
    "Reporter",
    "NullReporter",
    "DemoError",
    "load_digits",
    "batches",
    "evaluate",
    "train_float",
    "calibrate",
    "train_qat",
    "run_demo",
]


def __dir__() -> list[str]:
    return __all__


DEFAULT_OUT = Path("qplan-demo-out")
MARKER = ".qplan-demo"  # marks a folder as the demo's own, so reruns may replace its files
PTQ_CONFIG = "demo_w8a8.yaml"
QAT_CONFIG = "demo_w4a8_qat.yaml"
PTQ_TARGET = 1.0  # W8A8 PTQ: at most 1 accuracy point below float
QAT_TARGET = 2.0  # W4A8 QAT: at most 2 accuracy points below float


class DemoError(QplanError):
    """A demo stage could not run (bad option, unusable output folder, a failing stage)."""


# --------------------------------------------------------------------------------------------- data


class Digits(msgspec.Struct, frozen=True):
    """The bundled digits split as tensors: images ``(N, 1, 8, 8)`` float in [0, 1], labels int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _read_npy(data: bytes) -> torch.Tensor:
    """Decode one uint8 ``.npy`` member (format 1.x/2.x, C order) without needing numpy."""
    if data[:6] != b"\x93NUMPY":
        raise DemoError("bundled digits data is not in .npy format")
    major = data[6]
    size_len = 2 if major == 1 else 4
    header_len = int.from_bytes(data[8 : 8 + size_len], "little")
    start = 8 + size_len
    header = ast.literal_eval(data[start : start + header_len].decode("latin1"))
    if header["descr"] not in ("|u1", "<u1") or header["fortran_order"]:
        raise DemoError(f"bundled digits data has unexpected layout {header!r}")
    body = bytearray(data[start + header_len :])
    return torch.frombuffer(body, dtype=torch.uint8).reshape(header["shape"]).clone()


def load_digits(path: str | Path | None = None) -> Digits:
    """Load the digits split (default: the copy bundled with qplan)."""
    if path is None:
        raw = resources.files("qplan").joinpath("data", "digits.npz").read_bytes()
    else:
        raw = Path(path).read_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        arrays = {name.removesuffix(".npy"): _read_npy(zf.read(name)) for name in zf.namelist()}

    def images(key: str) -> torch.Tensor:
        return (arrays[key].to(torch.float32) / 16.0).unsqueeze(1)

    return Digits(
        x_train=images("x_train"),
        y_train=arrays["y_train"].long(),
        x_test=images("x_test"),
        y_test=arrays["y_test"].long(),
    )


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Full batches of ``batch_size`` (a trailing partial batch is dropped)."""
    order = torch.randperm(len(x), generator=generator) if shuffle else torch.arange(len(x))
    for start in range(0, len(x) - batch_size + 1, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]


# ----------------------------------------------------------------------------------------- progress


class Reporter(Protocol):
    """Where the demo sends progress; the CLI implements it with rich, tests with :class:`NullReporter`."""

    def stage(self, title: str) -> None:
        """A new stage starts."""

    def track(self, description: str, total: int) -> contextlib.AbstractContextManager[Callable[[int], None]]:
        """A long step of ``total`` units; the context yields ``advance(n)``."""

    def plan(self, title: str, plan: Any) -> None:
        """Show a compiled plan's summary."""

    def info(self, text: str) -> None:
        """One line of information."""


class NullReporter:
    """A reporter that shows nothing."""

    def stage(self, title: str) -> None:
        pass

    @contextlib.contextmanager
    def track(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        yield lambda n=1: None

    def plan(self, title: str, plan: Any) -> None:
        pass

    def info(self, text: str) -> None:
        pass


# ------------------------------------------------------------------------------------ train and eval


@torch.no_grad()
def evaluate(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Top-1 accuracy in percent; every call sees batches of exactly ``batch_size`` (the last is padded)."""
    correct = 0
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        n = len(xb)
        if n < batch_size:
            xb = torch.cat([xb, xb.new_zeros((batch_size - n, *xb.shape[1:]))])
        logits = model(xb)[:n]
        correct += int((logits.argmax(dim=1) == y[start : start + n]).sum())
    return 100.0 * correct / len(x)


def _train_epochs(
    model: nn.Module,
    data: Digits,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    reporter: Reporter,
    description: str,
    on_step: Callable[[], None] | None = None,
) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = len(data.x_train) // batch_size
    total = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))
    loss_fn = nn.CrossEntropyLoss()
    with reporter.track(description, total) as advance:
        for _ in range(epochs):
            for xb, yb in batches(data.x_train, data.y_train, batch_size, shuffle=True, generator=generator):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), yb)
                loss.backward()
                optimizer.step()
                scheduler.step()
                if on_step is not None:
                    on_step()
                advance(1)


def train_float(
    model: nn.Module,
    data: Digits,
    *,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-2,
    seed: int = 0,
    reporter: Reporter | None = None,
) -> nn.Module:
    """Train ``model`` in place with Adam and a cosine schedule; returns it in eval mode."""
    model.train()
    _train_epochs(
        model,
        data,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        reporter=reporter or NullReporter(),
        description="train float",
    )
    return model.eval()


@torch.no_grad()
def calibrate(
    model: Callable[[torch.Tensor], torch.Tensor],
    data: Digits,
    *,
    images: int,
    batch_size: int = 32,
    reporter: Reporter | None = None,
) -> None:
    """Run the first ``images`` training images (whole batches) through ``model``, for observers."""
    reporter = reporter or NullReporter()
    n = max(batch_size, images - images % batch_size)
    x, y = data.x_train[:n], data.y_train[:n]
    with reporter.track("calibrate", len(x) // batch_size) as advance:
        for xb, _ in batches(x, y, batch_size):
            model(xb)
            advance(1)


def train_qat(
    model: nn.Module,
    data: Digits,
    *,
    epochs: int,
    step: Callable[[], None],
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    reporter: Reporter | None = None,
) -> None:
    """Fine-tune a prepared model, calling ``step()`` (the QAT schedule) after every batch."""
    _train_epochs(
        model,
        data,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        reporter=reporter or NullReporter(),
        description="QAT",
        on_step=step,
    )


# ------------------------------------------------------------------------------------------- stages


class DemoOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Knobs of :func:`run_demo`; the defaults are the README's demo."""

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


class StageResult(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the demo's table."""

    name: str  # "float", "PTQ W8A8", "QAT W4A8"
    accuracy: float  # test accuracy (percent) of the model as trained / prepared (fake-quant)
    exported_accuracy: float  # test accuracy of the saved program, loaded back from disk
    file: str  # the saved torch.export program
    file_bytes: int  # its size on disk
    weight_bytes: int  # bytes of the program's parameters, buffers and constants
    seconds: float  # wall time of the whole stage (compile, prepare, calibrate/train, evaluate, save, reload)
    max_drop: float | None = None  # allowed accuracy drop from float, in points (the target)

    def drop(self, baseline: float) -> float:
        """Points lost against ``baseline``, by the worse of the prepared model and the saved program."""
        return baseline - min(self.accuracy, self.exported_accuracy)


class DemoResult(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the demo measured."""

    mode: str
    seed: int
    out: str
    train_images: int
    test_images: int
    stages: tuple[StageResult, ...]
    timings: dict[str, float]  # seconds per stage ("ptq") and per step ("ptq.calibrate"), in run order

    @property
    def float_accuracy(self) -> float:
        return self.stages[0].accuracy

    def missed_targets(self) -> list[str]:
        """One message per stage whose accuracy drop exceeds its target."""
        base = self.float_accuracy
        return [
            f"{s.name}: accuracy {base - s.drop(base):.2f}% is {s.drop(base):.2f} points below float {base:.2f}%"
            f" (target: at most {s.max_drop:g})"
            for s in self.stages
            if s.max_drop is not None and s.drop(base) > s.max_drop
        ]


def _load_config(path: Path | None, bundled: str) -> Any:
    """A ``LoadedConfig`` (so plans cite file and line): ``path``, or the bundled example ``bundled``."""
    from qplan.schema.loader import load_config

    if path is not None:
        return load_config(Path(path))
    data = resources.files("qplan").joinpath("examples", bundled).read_bytes()
    return load_config(data, name=f"qplan/examples/{bundled}")


def _prepare_out(out: Path) -> None:
    """Create ``out``, refusing a non-empty folder that the demo did not make."""
    if out.exists():
        if not out.is_dir():
            raise DemoError(f"output path `{out}` exists and is not a folder; choose another with --out")
        if any(out.iterdir()) and not (out / MARKER).exists():
            raise DemoError(
                f"output folder `{out}` is not empty and was not made by `qplan demo`;"
                " choose another with --out (the demo only replaces its own outputs)"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `qplan demo`; its files here are replaced on each run\n", encoding="utf-8")
    (out / ".gitignore").write_text("# outputs of `qplan demo`\n*\n", encoding="utf-8")


def _save_program(program: torch.export.ExportedProgram, path: Path) -> tuple[int, int]:
    """Save ``program``; return (file bytes, parameter + buffer + constant bytes)."""
    torch.export.save(program, str(path))
    tensors = list(program.state_dict.values()) + list(program.constants.values())
    weight_bytes = sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))
    return path.stat().st_size, weight_bytes


def _exported_accuracy(path: Path, data: Digits, batch_size: int) -> float:
    from qplan.runtime.finalize import load_program  # torch.export.load with qplan's ops registered

    module = load_program(path).module()
    return evaluate(module, data.x_test, data.y_test, batch_size)


class _Clock:
    """Accumulates named step timings."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def _subset(data: Digits, options: DemoOptions) -> Digits:
    tr = slice(None, options.train_images)
    te = slice(None, options.test_images)
    return Digits(data.x_train[tr], data.y_train[tr], data.x_test[te], data.y_test[te])


def _check(options: DemoOptions) -> None:
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


def _reinitialize(model: nn.Module, seed: int) -> None:
    """Seeded fresh parameters (factories may seed their own), so ``seed`` picks the initialisation."""
    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Hide a FutureWarning that torch's own export save/load code raises (not actionable here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        yield


def _default_factory() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    from qplan.models import cnn

    return cnn()


def run_demo(
    options: DemoOptions | None = None,
    reporter: Reporter | None = None,
    *,
    model_factory: Callable[[], tuple[nn.Module, tuple[Any, ...]]] | None = None,
) -> DemoResult:
    """Train a float CNN on digits, then W8A8 PTQ and W4A8 QAT, export all three, and measure.

    Raises :class:`DemoError` for bad options or an unusable output folder; errors of a stage
    (config, compile, runtime) propagate as they are (``QplanError`` subclasses for qplan's own).
    """
    options = options or DemoOptions()
    _check(options)
    with _torch_threads(options.threads), _quiet_export():
        return _run(options, reporter or NullReporter(), model_factory or _default_factory)


def _run(
    options: DemoOptions, reporter: Reporter, model_factory: Callable[[], tuple[nn.Module, tuple[Any, ...]]]
) -> DemoResult:
    configs = {
        "ptq": _load_config(options.ptq_config, PTQ_CONFIG),
        "qat": _load_config(options.qat_config, QAT_CONFIG),
    }
    out = Path(options.out)
    _prepare_out(out)
    data = _subset(load_digits(), options)
    clock = _Clock()
    # The factory's example inputs are not used: the demo captures on a real batch of digits
    # (cloned: a saved program stores its example inputs, and a slice would keep the whole set).
    model, _ = model_factory()
    _reinitialize(model, options.seed)
    example = (data.x_train[: options.batch_size].clone(),)

    stages = [_float_stage(model, example, data, options, reporter, clock)]
    for key, title, max_drop in (("ptq", "PTQ W8A8", PTQ_TARGET), ("qat", "QAT W4A8", QAT_TARGET)):
        stages.append(
            _quantized_stage(key, title, max_drop, configs[key], model, example, data, options, reporter, clock)
        )
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
    model: nn.Module, example: tuple, data: Digits, options: DemoOptions, reporter: Reporter, clock: _Clock
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
            file_bytes, weight_bytes = _save_program(torch.export.export(model, example), path)
        exported = _exported_accuracy(path, data, bs)
    return StageResult(
        name="float",
        accuracy=accuracy,
        exported_accuracy=exported,
        file=str(path),
        file_bytes=file_bytes,
        weight_bytes=weight_bytes,
        seconds=clock.timings["float"],
    )


def _quantized_stage(
    key: str,
    title: str,
    max_drop: float,
    config: Any,
    model: nn.Module,
    example: tuple,
    data: Digits,
    options: DemoOptions,
    reporter: Reporter,
    clock: _Clock,
) -> StageResult:
    """Compile ``config``, prepare, calibrate (``ptq``) or train (``qat``), evaluate, finalize, save."""
    from qplan.compiler import compile_plan
    from qplan.compiler.plan import encode_plan
    from qplan.runtime.quantizer import Quantizer

    bs = options.batch_size
    out = Path(options.out)
    reporter.stage(f"{title}: compile, prepare, {'calibrate' if key == 'ptq' else 'train'}, finalize")
    with clock(key):
        with clock(f"{key}.compile"):
            plan = compile_plan(model, config, example, mode=options.mode)
        (out / f"{key}.plan.json").write_bytes(encode_plan(plan))
        reporter.plan(title, plan)
        for d in plan.diagnostics:
            reporter.info(d.concise())
        quantizer = Quantizer(model, plan)  # prepare() works on its own copy of the model
        with clock(f"{key}.prepare"):
            prepared = quantizer.prepare(example)
        if key == "ptq":
            with clock(f"{key}.calibrate"):
                quantizer.calibration_mode()
                calibrate(prepared, data, images=options.calibration_images, batch_size=bs, reporter=reporter)
        else:
            with clock(f"{key}.train"):
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
        quantizer.inference_mode()
        accuracy = evaluate(prepared, data.x_test, data.y_test, bs)
        reporter.info(f"{title} test accuracy: {accuracy:.2f}%")
        with clock(f"{key}.finalize"):
            path = out / f"{key}.pt2"
            file_bytes, weight_bytes = _save_program(quantizer.finalize(), path)
        exported = _exported_accuracy(path, data, bs)
    return StageResult(
        name=title,
        accuracy=accuracy,
        exported_accuracy=exported,
        file=str(path),
        file_bytes=file_bytes,
        weight_bytes=weight_bytes,
        seconds=clock.timings[key],
        max_drop=max_drop,
    )
