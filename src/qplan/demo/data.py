"""The digits data set bundled with qplan (``qplan/data/digits.npz``) as tensors, and batching.

8x8 images, 10 classes, a fixed train/test split (see ``qplan/data/README.md``); decoded here
without numpy, so the demo needs no download and no scikit-learn.
"""

from __future__ import annotations

import ast
import io
import zipfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import msgspec
import torch

from qplan.demo.options import DemoError

__all__ = ["Digits", "load_digits", "batches", "subset"]


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


def subset(data: Digits, train_images: int | None, test_images: int | None) -> Digits:
    """The first ``train_images`` / ``test_images`` of each side (None: all of it)."""
    tr = slice(None, train_images)
    te = slice(None, test_images)
    return Digits(data.x_train[tr], data.y_train[tr], data.x_test[te], data.y_test[te])


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
