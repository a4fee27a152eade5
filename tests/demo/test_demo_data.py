"""The bundled digits data set and batching (:mod:`qplan.demo.data`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from qplan import demo
from qplan.demo import DemoError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits() -> demo.Digits:
    return demo.load_digits()


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
