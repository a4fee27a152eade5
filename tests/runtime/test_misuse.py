"""Runtime misuse is an error (issue 10 item 6): running or finalizing with never-observed activation
qparams, and `step()` outside training mode, raise a QplanError that says what to call instead."""

from __future__ import annotations

import pytest
import torch

from qplan import models
from qplan.diagnostics import QplanError
from qplan.runtime import ModeError, UncalibratedError
from qplan.runtime.quantizer import Quantizer
from qplan.schema.types import ModuleQuantizerConfig, QATSchedule, QuantizerConfig

MODES = ("graph", "eager")


def _prepared(mode: str, preset: str = "w8a8") -> tuple[Quantizer, torch.nn.Module, tuple]:
    model, args = models.mlp(n_layers=2)
    q = Quantizer(model, getattr(QuantizerConfig.presets, preset)().set_execution_mode(mode))
    return q, q.prepare(args), args


@pytest.mark.parametrize("mode", MODES)
def test_uncalibrated_inference_raises_and_names_the_fix(mode: str) -> None:
    q, p, args = _prepared(mode)
    q.inference_mode()
    with pytest.raises(UncalibratedError) as err, torch.no_grad():
        p(*args)
    assert isinstance(err.value, QplanError)
    msg = str(err.value)
    assert "never observed" in msg and ":in0`" in msg
    assert "calibration_mode()" in msg and "inference_mode(allow_uncalibrated=True)" in msg
    # opted in: runs on the default qparams
    q.inference_mode(allow_uncalibrated=True)
    with torch.no_grad():
        assert p(*args).shape[0] == args[0].shape[0]
    # another mode switch withdraws the opt-in
    q.calibration_mode()
    q.inference_mode()
    q._unique[0].observed.zero_()  # keep the test independent of which fake-quants calibration reached
    with pytest.raises(UncalibratedError), torch.no_grad():
        p(*args)


@pytest.mark.parametrize("mode", MODES)
def test_uncalibrated_finalize_raises_listing_every_activation(mode: str) -> None:
    q, _, _ = _prepared(mode)
    q.inference_mode()
    with pytest.raises(UncalibratedError) as err:
        q.finalize()
    msg = str(err.value)
    acts = [e.address for e in q.plan.quantizers if e.role != "state"]
    assert acts and all(f"`{a}`" in msg for a in acts[:5])
    assert f"{len(set(acts))} fake-quants" in msg
    assert "finalize(allow_uncalibrated=True)" in msg and "calibration_mode()" in msg
    ep = q.finalize(allow_uncalibrated=True)  # on purpose: the default qparams are baked in
    assert ep.module() is not None


@pytest.mark.parametrize("mode", MODES)
def test_calibrated_model_runs_and_finalizes_without_opt_in(mode: str) -> None:
    q, p, args = _prepared(mode)
    q.calibration_mode()
    with torch.no_grad():
        p(*args)
        q.inference_mode()
        ref = p(*args)
        torch.testing.assert_close(q.finalize().module()(*args), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_weight_only_needs_no_calibration(mode: str) -> None:
    """Weights observe themselves: a weight-only plan runs and finalizes without data, and the
    prepared model agrees with the finalized program."""
    q, p, args = _prepared(mode, "w8")
    q.inference_mode()
    with torch.no_grad():
        ref = p(*args)
        torch.testing.assert_close(q.finalize().module()(*args), ref, atol=1e-6, rtol=1e-6)
    assert not torch.equal(ref, q.model(*args))


@pytest.mark.parametrize("mode", MODES)
def test_step_outside_training_mode_raises(mode: str) -> None:
    model, args = models.mlp(n_layers=2)
    sched = QATSchedule(enable_observer=0, enable_fake_quant=2)
    cfg = QuantizerConfig(global_config=ModuleQuantizerConfig(qat_schedule=sched)).set_execution_mode(mode)
    q = Quantizer(model, cfg)
    q.prepare(args)
    for switch in (q.calibration_mode, q.inference_mode):
        switch()
        flags = [(bool(m.observer_enabled), bool(m.fake_quant_enabled)) for m in q._unique]
        with pytest.raises(ModeError, match=r"call `q\.training_mode\(\)`"):
            for _ in range(4):
                q.step()
        assert q.step_count == 0
        # nothing switched behind the mode's back (the old `step()` turned fake-quant on in calibration)
        assert flags == [(bool(m.observer_enabled), bool(m.fake_quant_enabled)) for m in q._unique]
    q.training_mode()
    assert [q.step() for _ in range(4)] == [1, 2, 3, 4]
