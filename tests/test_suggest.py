"""The one did-you-mean helper."""

from qplan.suggest import closest, did_you_mean


def test_did_you_mean() -> None:
    assert did_you_mean("per_chanel", ["per_tensor", "per_channel", "per_block"]) == "did you mean `per_channel`?"
    assert did_you_mean("DTYPE", ["dtype", "qscheme"]) == "did you mean `dtype`?"  # case-insensitive
    assert did_you_mean("dtype", ["dtype"]) is None  # exact: nothing to suggest
    assert did_you_mean("zzzzzz", ["dtype", "qscheme"]) is None
    assert did_you_mean(3, ["dtype"]) is None
    assert closest("Graph", ["graph", "eager"]) == "graph"
