"""Write ``src/qplan/data/digits.npz``, the demo's bundled copy of the digits data set.

Source: scikit-learn's ``load_digits`` (no network), which is the test part of the UCI
"Optical Recognition of Handwritten Digits" data set: 1,797 8x8 images, pixels 0..16.
The split is fixed (seeded permutation, 80/20 stratified by class) so every run of the demo
sees the same train and test images. Run from the repository root::

    .venv/bin/python scripts/make_digits.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SEED = 0
TEST_FRACTION = 0.2
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "src" / "qplan" / "data" / "digits.npz"


def split(labels: np.ndarray, seed: int = SEED, test_fraction: float = TEST_FRACTION):
    """Return (train_idx, test_idx): a seeded per-class split, each sorted."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        test.extend(idx[: round(len(idx) * test_fraction)].tolist())
    test_mask = np.zeros(len(labels), dtype=bool)
    test_mask[test] = True
    return np.flatnonzero(~test_mask), np.flatnonzero(test_mask)


def main() -> None:
    from sklearn.datasets import load_digits

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    digits = load_digits()
    images = digits.images.astype(np.uint8)  # integers 0..16, exact
    labels = digits.target.astype(np.uint8)
    assert np.array_equal(images, digits.images)
    train, test = split(labels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        x_train=images[train],
        y_train=labels[train],
        x_test=images[test],
        y_test=labels[test],
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): {len(train)} train, {len(test)} test")


if __name__ == "__main__":
    main()
