"""End-to-end tests of the runtime: prepare, calibrate, QAT steps, finalize, save/load (SPEC §4)."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from qplan import models
from qplan.compiler import compile_plan
from qplan.compiler.plan import encode_plan
from qplan.diagnostics import QplanError
from qplan.runtime.eager import FAKE_QUANTS, QplanUnknownOpWarning
from qplan.runtime.finalize import load_program
from qplan.runtime.graph import fake_quant_nodes
from qplan.runtime.match import PlanMismatchError, module_name
from qplan.runtime.quantizer import Quantizer, ScheduleError
from qplan.schema.types import ModuleQuantizerConfig, QATSchedule, QuantizerConfig

MODES = ("graph", "eager")


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _inserted(q: Quantizer) -> list[str]:
    """Names of the fake-quant call sites / modules actually inserted in the prepared model."""
    if q.plan.mode == "graph":
        return [str(n.target) for n in fake_quant_nodes(q.prepared)]
    return list(getattr(q.prepared, FAKE_QUANTS).keys())


def _config(name: str, mode: str) -> QuantizerConfig:
    # the transformer's attention adds a -inf mask: quantizing that sum is meaningless, so it runs W8
    cfg = QuantizerConfig.presets.w8() if name == "transformer" else QuantizerConfig.presets.w8a8()
    return cfg.set_execution_mode(mode)


def _batches(args: tuple, n: int, seed: int) -> list[tuple]:
    g = torch.Generator().manual_seed(seed)
    x = args[0]
    if x.is_floating_point():
        return [(torch.randn(x.shape, generator=g),) for _ in range(n)]
    return [(torch.randint(0, 64, x.shape, generator=g),) for _ in range(n)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer"])
def test_end_to_end(name: str, mode: str, tmp_path) -> None:
    model, args = getattr(models, name)()
    before = _snapshot(model)
    q = Quantizer(model, _config(name, mode))
    prepared = q.prepare(args)
    assert isinstance(prepared, torch.fx.GraphModule) == (mode == "graph")

    # exactly the plan's fake-quants, one per entry, named from their addresses
    names = [module_name(e.address) for e in q.plan.quantizers]
    assert len(q.plan.quantizers) > 0
    assert sorted(_inserted(q)) == sorted(names)

    q.calibration_mode()
    assert not prepared.training
    with torch.no_grad():
        for b in _batches(args, 3, seed=1):
            prepared(*b)

    q.training_mode()
    assert prepared.training
    opt = torch.optim.SGD(prepared.parameters(), lr=1e-3)
    for b in _batches(args, 2, seed=2):
        out = prepared(*b)
        out.float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        q.step()
    assert q.step_count == 2

    q.inference_mode()
    with torch.no_grad():
        ref = prepared(*args)
    ep = q.finalize()
    assert isinstance(ep, torch.export.ExportedProgram)
    path = tmp_path / "model.pt2"
    torch.export.save(ep, path)
    loaded = load_program(path)
    with torch.no_grad():
        got = loaded.module()(*args)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)

    # both the prepared model and the program take another batch size
    big = tuple(torch.cat([a, a, a]) for a in args)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module()(*big), prepared(*big), atol=1e-5, rtol=1e-5)

    # weights are stored quantized, read through dequantize ops
    int8 = [k for k, v in ep.state_dict.items() if v.dtype == torch.int8]
    assert int8, "no int8 weight in the finalized program"
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any("dequantize_per_channel" in t for t in targets)
    if name != "transformer":
        assert "quantized_decomposed.quantize_per_tensor.default" in targets

    # graph mode folds BatchNorm into the conv weights (plan `bn-fold` decisions) before quantizing;
    batch_norms = [t for t in targets if "batch_norm" in t]
    if name == "cnn":
        assert q.folded == (["bn1.batch_norm", "bn2.batch_norm"] if mode == "graph" else [])
        assert not batch_norms  # eager programs fold eval BatchNorm into the quantized conv's weight scale

    # the user's model is untouched (values, no fake-quants, same forward)
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    assert not any("fq__" in n for n, _ in model.named_modules())
    assert "forward" not in model.__dict__


def test_graph_and_eager_agree() -> None:
    """Same model, same config: both modes insert the same fake-quants and compute the same values."""
    model, args = models.mlp()
    outs = {}
    for mode in MODES:
        q = Quantizer(model, QuantizerConfig.presets.w8a8().set_execution_mode(mode))
        p = q.prepare(args)
        q.calibration_mode()
        with torch.no_grad():
            for b in _batches(args, 2, seed=3):
                p(*b)
        q.inference_mode()
        with torch.no_grad():
            outs[mode] = (sorted(_inserted(q)), p(*args))
    assert outs["graph"][0] == outs["eager"][0]
    torch.testing.assert_close(outs["graph"][1], outs["eager"][1], atol=1e-6, rtol=1e-6)
    with torch.no_grad():
        assert not torch.equal(outs["graph"][1], model(*args))  # quantization did something


def test_graph_weight_fake_quants_run_next_to_their_layer() -> None:
    """Export hoists parameter reads to the top; each unshared fake-quant runs just before its reader,
    and a training step still matches eager mode."""
    model, args = models.mlp()
    q = Quantizer(model, QuantizerConfig().set_execution_mode("graph"))
    gm = q.prepare(args)
    nodes = fake_quant_nodes(gm)
    weights = [n for n in nodes if n.args[0].op == "get_attr"]
    assert weights
    order = {n: k for k, n in enumerate(gm.graph.nodes)}
    fq_set = set(nodes)
    for n in nodes:  # only other fake-quants of the same reader in between
        first, cur = min(n.users, key=order.__getitem__), n.next
        while cur is not first:
            assert cur in fq_set, f"{cur} runs between {n} and its reader {first}"
            cur = cur.next
    qe = Quantizer(model, QuantizerConfig().set_execution_mode("eager"))
    pe = qe.prepare(args)
    q.training_mode()
    qe.training_mode()
    for p in (gm, pe):
        p(*args).square().mean().backward()
    grads = {k: v.grad for k, v in pe.named_parameters()}
    for k, v in gm.named_parameters():
        torch.testing.assert_close(v.grad, grads[k], rtol=0, atol=0)


class _Child(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))


class _DirectForward(nn.Module):
    """Calls one child through ``.forward()`` (no module boundary for the capture) and one normally."""

    def __init__(self) -> None:
        super().__init__()
        self.a = _Child()
        self.b = _Child()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a.forward(x))


def test_eager_module_boundaries_match_the_capture() -> None:
    """Eager mode tracks module boundaries where the capture does: a child entered through
    ``.forward()`` directly is not a boundary, one entered through ``__call__`` is."""
    torch.manual_seed(0)
    model, args = _DirectForward().train(), (torch.randn(4, 6),)
    q = Quantizer(model, QuantizerConfig().set_execution_mode("eager"))
    p = q.prepare(args)
    addresses = {e.address for e in q.plan.quantizers}
    # `a`'s own relu runs in the root's scope (its fc is still a boundary); `b`'s relu in `b`'s
    assert any(a.startswith("relu") for a in addresses) and any(a.startswith("b.relu") for a in addresses)
    assert not any(a.startswith("a.relu") for a in addresses)
    with warnings.catch_warnings():
        warnings.simplefilter("error", QplanUnknownOpWarning)
        for _ in range(2):  # the second forward runs with the observers' state from the first
            p(*args).sum().backward()
    assert p.a.forward(args[0]).shape == (4, 6)  # outside a forward: the plain child


@pytest.mark.parametrize("mode", MODES)
def test_fingerprint_mismatch_names_the_op(mode: str) -> None:
    model, args = models.mlp(n_layers=4)
    plan = compile_plan(model, QuantizerConfig.presets.w8a8(), args, mode)
    other, _ = models.mlp(n_layers=3)  # `layers.4` is now the last layer (10 outputs)
    with pytest.raises(PlanMismatchError, match=r"op `layers\.4\.linear`: .*\[10, 64\]") as info:
        Quantizer(other, plan).prepare(args)
    assert isinstance(info.value, QplanError)
    assert "recompile" in str(info.value)

    narrow, _ = models.mlp(n_layers=4, width=32)  # same ops, other weight shapes
    with pytest.raises(PlanMismatchError, match=r"op `layers\.0\.linear`: parameter `layers\.0\.weight`.*\[32, 16\]"):
        Quantizer(narrow, plan).prepare(args)


def test_plan_file_round_trip(tmp_path) -> None:
    model, args = models.mlp()
    plan = compile_plan(model, QuantizerConfig.presets.w8a8(), args, "graph")
    path = tmp_path / "plan.json"
    path.write_bytes(encode_plan(plan))
    q = Quantizer(model, path)
    q.prepare(args)
    assert q.plan == plan
    with pytest.raises(QplanError, match="already prepared"):
        q.prepare(args)


def _flags(q: Quantizer) -> set[tuple[int, int]]:
    return {(int(m.observer_enabled[0]), int(m.fake_quant_enabled[0])) for m in q._unique}


@pytest.mark.parametrize("mode", MODES)
def test_schedule_follows_step(mode: str) -> None:
    model, args = models.mlp(n_layers=2)
    sched = QATSchedule(enable_observer=1, enable_fake_quant=2, disable_observer=4)
    cfg = QuantizerConfig(global_config=ModuleQuantizerConfig(qat_schedule=sched)).set_execution_mode(mode)
    q = Quantizer(model, cfg)
    q.prepare(args)
    q.training_mode()
    seen = [_flags(q)]
    for _ in range(5):
        q.step()
        seen.append(_flags(q))
    # SPEC §1.5: observer on iff 1 <= s < 4, fake-quant on iff s >= 2
    assert seen == [{(0, 0)}, {(1, 0)}, {(1, 1)}, {(1, 1)}, {(0, 1)}, {(0, 1)}]
    # training_mode re-applies the schedule at the current step; calibration overrides it
    q.calibration_mode()
    assert _flags(q) == {(1, 0)}
    q.training_mode()
    assert _flags(q) == {(0, 1)}
    for switch in (q.enable_observer, q.disable_observer, q.enable_fake_quant, q.disable_fake_quant):
        with pytest.raises(ScheduleError, match="schedule"):
            switch()


def test_manual_switches_and_modes_without_schedule() -> None:
    model, args = models.mlp(n_layers=2)
    q = Quantizer(model, QuantizerConfig.presets.w8a8())
    with pytest.raises(QplanError, match="prepare"):
        q.calibration_mode()
    p = q.prepare(args)
    q.training_mode()
    assert _flags(q) == {(1, 1)} and p.training
    q.disable_observer()
    assert _flags(q) == {(0, 1)}
    q.disable_fake_quant()
    assert _flags(q) == {(0, 0)}
    with torch.no_grad():
        torch.testing.assert_close(p(*args), model(*args))  # all off: the float model
    q.enable_observer()
    q.enable_fake_quant()
    assert _flags(q) == {(1, 1)}
    q.inference_mode()
    assert _flags(q) == {(0, 1)} and not p.training


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.extra = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        if x[0, 0] > 0:  # data-dependent: only one branch is seen by the eager capture
            y = self.extra(y)
        return y


def test_unknown_op_in_eager_is_reported_once() -> None:
    model = _Branchy().eval()
    neg = -torch.ones(2, 4)
    q = Quantizer(model, QuantizerConfig.presets.w8a8().set_execution_mode("eager"))
    p = q.prepare((neg,))
    assert all("extra" not in e.address for e in q.plan.quantizers)
    q.calibration_mode()
    p(neg)  # calibrates every fake-quant; the branch with the unknown op is not taken
    q.inference_mode()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        p(neg)
        assert not [w for w in rec if issubclass(w.category, QplanUnknownOpWarning)]
        with torch.no_grad():
            out = p(torch.ones(2, 4))
            p(torch.ones(2, 4))
    hits = [w for w in rec if issubclass(w.category, QplanUnknownOpWarning)]
    assert len(hits) == 1 and "`extra.linear`" in str(hits[0].message)
    # the unknown op ran in float on the (quantized) output of `fc`
    assert out.shape == (2, 4)


def test_eager_prepared_model_is_a_module_that_moves_and_saves(tmp_path) -> None:
    def prepared() -> tuple[Quantizer, nn.Module, tuple]:
        model, args = models.mlp(n_layers=2)
        q = Quantizer(model, QuantizerConfig.presets.w8a8().set_execution_mode("eager"))
        return q, q.prepare(args), args

    q, p, args = prepared()
    q.calibration_mode()
    with torch.no_grad():
        p(torch.randn(32, *args[0].shape[1:], generator=torch.Generator().manual_seed(3)) * 5)
    q.inference_mode()
    with torch.no_grad():
        expected = p(*args)
    fq_buffers = dict(getattr(p, FAKE_QUANTS).named_buffers())
    scales = [k for k in fq_buffers if k.endswith(".scale")]
    assert len(scales) == 5  # 2 weights + input, relu output, last output
    assert not all(torch.all(fq_buffers[k] == 1) for k in scales)  # calibrated: not the initial scale
    model_buffers = dict(p.named_buffers())
    assert all(model_buffers[f"{FAKE_QUANTS}.{k}"] is t for k, t in fq_buffers.items())  # registered under the model

    # Moves: every floating buffer of every fake-quant follows the model to float64, the forward runs there.
    p.to(torch.float64)
    moved = dict(getattr(p, FAKE_QUANTS).named_buffers())
    assert all(moved[k].dtype == torch.float64 for k, t in fq_buffers.items() if t.is_floating_point())
    with torch.no_grad():
        out64 = p(*(a.double() for a in args))
    assert out64.dtype == torch.float64
    p.to(torch.float32)
    assert all(t.dtype == fq_buffers[k].dtype for k, t in getattr(p, FAKE_QUANTS).named_buffers())

    # Saves: the state dict (weights and fake-quant state) goes through a file into a fresh prepared model.
    torch.save(p.state_dict(), tmp_path / "prepared.pt")
    q2, fresh, _ = prepared()
    q2.inference_mode(allow_uncalibrated=True)
    with torch.no_grad():
        assert not torch.allclose(fresh(*args), expected)  # uncalibrated: differs before loading
    fresh.load_state_dict(torch.load(tmp_path / "prepared.pt"))
    q2.inference_mode()  # the loaded state counts as calibrated
    with torch.no_grad():
        torch.testing.assert_close(fresh(*args), expected, rtol=0, atol=0)
        clone = copy.deepcopy(p)
        torch.testing.assert_close(clone(*args), expected, rtol=0, atol=0)
    assert clone.__dict__["_qplan_interceptor"] is not p.__dict__["_qplan_interceptor"]


def test_w8_program_is_a_quarter_of_float(tmp_path) -> None:
    torch.manual_seed(0)
    model = models.MLP(n_layers=4, width=256).eval()
    args = (torch.randn(8, 16),)
    q = Quantizer(model, QuantizerConfig.presets.w8())
    q.prepare(args)
    q.inference_mode()
    quant, flt = tmp_path / "w8.pt2", tmp_path / "float.pt2"
    torch.export.save(q.finalize(), quant)
    torch.export.save(torch.export.export(model, args), flt)
    ratio = quant.stat().st_size / flt.stat().st_size
    assert ratio < 0.35, ratio


_FORMATS = {
    # name: (config document or preset, storage dtype expected for the first layer's weight)
    "w4_per_block": ("w4_per_block", torch.uint8),  # two int4 codes per byte
    "fp8": ("fp8", torch.float8_e4m3fn),
    "mxfp4": ("mxfp4", torch.uint8),  # two e2m1 codes per byte
    "dynamic_int8_acts": (
        {"global_config": {"op_input_spec": {"*": {"qparam_calculator_cls": "dynamic"}}, "op_output_spec": None}},
        torch.int8,
    ),
    "uint8_asym_acts_int4_minval_weights": (
        {
            "global_config": {
                "op_input_spec": {"*": {"dtype": "uint8", "qscheme": "asymmetric"}},
                "op_output_spec": None,
                "op_state_spec": {
                    "weight": {"dtype": "int4", "qformulation": "minval", "granularity": {"type": "per_channel"}}
                },
            }
        },
        torch.uint8,  # packed int4
    ),
}


@pytest.mark.parametrize("fmt", list(_FORMATS))
def test_finalize_formats(fmt: str, tmp_path) -> None:
    source, storage = _FORMATS[fmt]
    model, args = models.mlp(n_layers=2)
    if isinstance(source, str):
        cfg = getattr(QuantizerConfig.presets, source)()
    else:
        cfg = QuantizerConfig.from_dict({"quantization_config": source})
    q = Quantizer(model, cfg)
    p = q.prepare(args)
    q.calibration_mode()
    with torch.no_grad():
        p(*args)
        q.inference_mode()
        ref = p(*args)
    assert not torch.equal(ref, model(*args))
    path = tmp_path / "m.pt2"
    torch.export.save(q.finalize(), path)
    loaded = load_program(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded.module()(*args), ref, atol=1e-5, rtol=1e-5)
    states = {e.source for e in q.plan.quantizers if e.role == "state"}
    weights = [v for k, v in loaded.state_dict.items() if k in states]
    assert len(weights) == len(states) and all(w.dtype == storage for w in weights), [w.dtype for w in weights]


def test_batch_norm_fold_is_exact_before_quantization() -> None:
    model, args = models.cnn()
    with torch.no_grad():  # non-trivial statistics
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    q = Quantizer(model, QuantizerConfig.presets.w8a8())
    p = q.prepare(args)
    assert q.folded == ["bn1.batch_norm", "bn2.batch_norm"]
    q.disable_fake_quant()  # the folded float model
    with torch.no_grad():
        torch.testing.assert_close(p(*args), model(*args), atol=1e-5, rtol=1e-4)


def test_fingerprint_mismatch_outside_quantized_ops_is_still_an_error() -> None:
    model, args = models.mlp(n_layers=2)
    plan = compile_plan(model, QuantizerConfig.presets.w8(), args, "graph")  # weights only
    changed = copy.deepcopy(model)
    changed.layers[1] = nn.Tanh()  # `layers.1.relu` becomes `layers.1.tanh`; no plan address moves
    with pytest.raises(PlanMismatchError, match="other ops changed"):
        Quantizer(changed, plan).prepare(args)


class _Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.transpose(0, 1).transpose(0, 1))


class _Mixed(nn.Module):
    """cat (shared qparams), a view before a reader, a declining reader (sum), a module boundary."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = nn.Linear(8, 8)
        self.head = nn.Linear(16, 4)
        self.blk = _Inner()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ya = torch.relu(self.a(x))
        yb = self.b(x)
        h = self.head(torch.cat([ya, yb.view(yb.shape)], dim=1))
        s = h.sum(dim=1, keepdim=True)  # declines its input: reads `head`'s output in float
        return self.blk(h) + s


_MIXED_CONFIG = {
    "quantization_config": {
        "global_config": {"op_type_config": {"sum": {"op_input_spec": None, "op_output_spec": None}}},
        "module_name_configs": {"blk": {"module_input_spec": {"0": {"dtype": "int8"}}}},
    }
}


def test_modes_agree_on_shared_qparams_boundaries_and_float_readers(tmp_path) -> None:
    torch.manual_seed(0)
    model = _Mixed().eval()
    args = (torch.randn(4, 8),)
    results = {}
    for mode in MODES:
        cfg = QuantizerConfig.from_dict(_MIXED_CONFIG).set_execution_mode(mode)
        q = Quantizer(model, cfg)
        p = q.prepare(args)
        roles = {e.role for e in q.plan.quantizers}
        assert {"boundary", "state", "output"} <= roles
        groups = [e.group for e in q.plan.quantizers if e.group]
        assert groups, "the cat should share qparams"
        # entries of one group share one module instance
        by_group: dict[str, set[int]] = {}
        for e in q.plan.quantizers:
            if e.group:
                by_group.setdefault(e.group, set()).add(id(q.fake_quants[module_name(e.address)]))
        assert all(len(ids) == 1 for ids in by_group.values())
        q.calibration_mode()
        with torch.no_grad():
            for b in _batches(args, 2, seed=5):
                p(*b)
            q.inference_mode()
            ref = p(*args)
        path = tmp_path / f"{mode}.pt2"
        torch.export.save(q.finalize(), path)
        with torch.no_grad():
            torch.testing.assert_close(load_program(path).module()(*args), ref, atol=1e-5, rtol=1e-5)
        results[mode] = (sorted(e.address for e in q.plan.quantizers), ref)
    assert results["graph"][0] == results["eager"][0]
    torch.testing.assert_close(results["graph"][1], results["eager"][1], atol=1e-6, rtol=1e-6)


class _WithDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


@pytest.mark.parametrize("captured_training", [True, False])
def test_graph_dropout_follows_train_and_eval(captured_training: bool) -> None:
    """Export records dropout's training flag as a constant; the prepared graph must still follow
    `training_mode()` / `inference_mode()` whatever mode the model was captured in."""
    model = _WithDropout().train(captured_training)
    x = torch.randn(6, 8)
    q = Quantizer(model, QuantizerConfig.presets.w8a8())
    p = q.prepare((x,))
    q.training_mode()
    with torch.no_grad():
        assert not torch.equal(p(x), p(x))  # dropout active
        q.inference_mode()
        ref = p(x)
        assert torch.equal(ref, p(x))
        torch.testing.assert_close(q.finalize().module()(x), ref, atol=1e-6, rtol=1e-6)


class _Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.scale = nn.Parameter(torch.rand(8) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.scale  # a parameter read by an op input slot is also a state


def test_parameter_read_by_an_input_slot_is_quantized_as_a_state() -> None:
    cfg = {
        "quantization_config": {
            "global_config": {"op_type_config": {"mul": {"op_state_spec": {"scale": {"dtype": "int4"}}}}}
        }
    }
    torch.manual_seed(0)
    model = _Scaled().eval()
    x = torch.randn(4, 8)
    outs = []
    for mode in MODES:
        q = Quantizer(model, QuantizerConfig.from_dict(cfg).set_execution_mode(mode))
        p = q.prepare((x,))
        assert [e.readers for e in q.plan.quantizers if e.source == "scale"] == [("mul:scale",)]
        q.calibration_mode()
        with torch.no_grad():
            p(x)
            q.inference_mode()
            outs.append(p(x))
            torch.testing.assert_close(q.finalize().module()(x), outs[-1], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(outs[0], outs[1])
    # int4 on `scale` is coarse: the result differs from the float model
    assert not torch.allclose(outs[0], model(x), atol=1e-3)
