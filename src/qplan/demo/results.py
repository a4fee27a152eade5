"""What ``qplan demo`` measured: one :class:`StageResult` per stage, gathered in a :class:`DemoResult`."""

from __future__ import annotations

import msgspec

__all__ = ["StageResult", "DemoResult"]


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
