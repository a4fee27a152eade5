"""Training and evaluation loops of the demo: float training, calibration, QAT, top-1 accuracy.

Every loop sees fixed-size batches (graph-mode programs are captured at one batch size): training
drops the last partial batch, evaluation pads it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from qplan.demo.data import Digits, batches
from qplan.demo.progress import NullReporter, Reporter

__all__ = ["evaluate", "train_float", "calibrate", "train_qat"]


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
