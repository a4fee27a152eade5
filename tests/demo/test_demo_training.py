"""The demo's training and evaluation loops (:mod:`qplan.demo.training`)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qplan import demo


@pytest.fixture(scope="module")
def digits() -> demo.Digits:
    return demo.load_digits()


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
