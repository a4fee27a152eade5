"""Micro-benchmark: forward+backward of qplan's FakeQuantize against torch.ao and coreai-opt.

Cases (int8 symmetric, observer and fake-quant on unless the mode says otherwise):

- a [32, 512] activation, per-tensor, moving average;
- a [512, 512] weight, per-channel (axis 0), static min/max;
- a Linear(512, 512) layer on a [32, 512] batch: float, then with both fake-quants (input + weight).

Implementations: qplan, ``torch.ao.quantization.FakeQuantize`` (MovingAverageMinMaxObserver /
PerChannelMinMaxObserver), ``torch.ao``'s ``FusedMovingAvgObsFakeQuantize`` and coreai-opt 0.3.0's
fake quantizer built from the equivalent spec. Prints a markdown table of microseconds per call, the
best of ``--repeats`` runs. With one thread (the default) the clock is the process CPU time, which
filters out load from other processes on a shared machine; with more threads it is wall time.

    .venv/bin/python benchmarks/fake_quant_micro.py [--quick] [--threads 1] [--repeats 7] [--iters 100]
        [-o benchmarks/results/fake_quant_micro.md]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from _benchenv import Run, write_report
from torch import nn
from torch.ao.quantization import FakeQuantize as AOFakeQuantize
from torch.ao.quantization import FusedMovingAvgObsFakeQuantize
from torch.ao.quantization.observer import (
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)

from qplan.compiler.plan import ResolvedSpec
from qplan.runtime.fake_quant import make_fake_quantize


def _spec(**kw) -> ResolvedSpec:
    base = dict(
        dtype="int8",
        qscheme="symmetric",
        qformulation="zp",
        granularity="per_tensor",
        qparam_calculator="moving_average",
    )
    base.update(kw)
    return ResolvedSpec(**base)


def _coreai(weight: bool):
    """coreai-opt's fake quantizer for the same spec, or None when the package is missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from coreai_opt.config.spec import CompressionTargetTensor
            from coreai_opt.quantization.spec.factory import QuantizationComponentFactory
            from coreai_opt.quantization.spec.spec import QuantizationSpec
    except ImportError:
        return None
    if weight:
        spec = QuantizationSpec(
            dtype="int8", granularity={"type": "per_channel", "axis": 0}, qparam_calculator_cls="static"
        )
        return QuantizationComponentFactory.create_fake_quantizer(spec, CompressionTargetTensor.WEIGHT)
    spec = QuantizationSpec(dtype="int8", qparam_calculator_cls="moving_average")
    return QuantizationComponentFactory.create_fake_quantizer(spec, CompressionTargetTensor.ACTIVATION)


def _ao(weight: bool, fused: bool):
    if weight:
        obs = MovingAveragePerChannelMinMaxObserver if fused else PerChannelMinMaxObserver
        kw = dict(qscheme=torch.per_channel_symmetric, ch_axis=0)
        if fused:
            kw["averaging_constant"] = 1.0  # the current tensor's range: static
    else:
        obs = MovingAverageMinMaxObserver
        kw = dict(qscheme=torch.per_tensor_symmetric)
    cls = FusedMovingAvgObsFakeQuantize if fused else AOFakeQuantize
    return cls(observer=obs, quant_min=-128, quant_max=127, dtype=torch.qint8, **kw)


def _qplan(weight: bool):
    if weight:
        return make_fake_quantize(
            _spec(granularity="per_channel", axis=0, qparam_calculator="static"), (512, 512), "w", role="state"
        )
    return make_fake_quantize(_spec(), (32, 512), "act")


IMPLS = {
    "qplan": _qplan,
    "torch.ao FakeQuantize": lambda w: _ao(w, fused=False),
    "torch.ao Fused": lambda w: _ao(w, fused=True),
    "coreai-opt 0.3.0": _coreai,
}


def _timer(threads: int):
    return time.process_time if threads == 1 else time.perf_counter


def _time(fn, iters: int, repeats: int, clock) -> float:
    for _ in range(10):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = clock()
        for _ in range(iters):
            fn()
        best = min(best, (clock() - t) / iters * 1e6)
    return best


def _set_observer(mod, on: bool) -> None:
    if hasattr(mod, "enable_observer"):
        mod.enable_observer(on)
    else:  # coreai-opt
        mod.enable_observer() if on else mod.disable_observer()


TITLE = "Fake-quant micro-benchmark: one fake-quant, forward + backward"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--quick", action="store_true", help="smoke run: best of 2 runs of 5 calls")
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args(argv)
    run = Run(__file__, argv, threads=args.threads)
    if args.quick:
        args.repeats, args.iters = 2, 5
    torch.set_num_threads(args.threads)
    clock = _timer(args.threads)
    torch.manual_seed(0)
    x = torch.randn(32, 512, requires_grad=True)
    gx = torch.randn(32, 512)
    w = torch.randn(512, 512, requires_grad=True)
    gw = torch.randn(512, 512)
    linear = nn.Linear(512, 512)

    results: list[tuple[str, str, dict[str, float]]] = []
    for label, weight, inp, grad in (
        ("act [32,512] per-tensor EMA", False, x, gx),
        ("weight [512,512] per-channel static", True, w, gw),
    ):
        for mode in ("observer + fake-quant", "fake-quant only"):
            row = {}
            for impl, make in IMPLS.items():
                mod = make(weight)
                if mod is None:
                    continue
                mod(inp.detach())  # initialise qparams
                _set_observer(mod, mode == "observer + fake-quant")

                def step(mod=mod, inp=inp, grad=grad):
                    inp.grad = None
                    mod(inp).backward(grad)

                row[impl] = _time(step, args.iters, args.repeats, clock)
            results.append((label, mode, row))

    def layer_step(fa, fw):
        def step():
            x.grad = None
            linear.weight.grad = None
            xin = fa(x) if fa is not None else x
            wq = fw(linear.weight) if fw is not None else linear.weight
            nn.functional.linear(xin, wq, linear.bias).backward(gx)

        return step

    float_us = _time(layer_step(None, None), args.iters, args.repeats, clock)
    layer = {"float": float_us}
    for impl, make in IMPLS.items():
        fa, fw = make(False), make(True)
        if fa is None:
            continue
        layer[impl] = _time(layer_step(fa, fw), args.iters, args.repeats, clock)

    clock_name = "process CPU time" if args.threads == 1 else "wall time"
    names = [n for n in IMPLS if any(n in r for _, _, r in results)]
    out = [
        "qplan's `FakeQuantize` against `torch.ao.quantization.FakeQuantize`, torch.ao's"
        " `FusedMovingAvgObsFakeQuantize` and coreai-opt's fake quantizer, all int8 symmetric: a `[32, 512]`"
        " activation (per-tensor, moving-average observer) and a `[512, 512]` weight (per-channel on axis 0, static"
        " min/max observer), with the observer on (the QAT steady state) and off; then one `Linear(512, 512)` layer"
        " on a batch of 32 with both fake-quants (input + weight) against the float layer. Microseconds per forward"
        f" + backward ({clock_name}), best of {args.repeats} runs of {args.iters} calls.",
        "",
        "| tensor | mode | " + " | ".join(f"{n} (us)" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for label, mode, row in results:
        out.append(f"| {label} | {mode} | " + " | ".join(f"{row[n]:.1f}" if n in row else "-" for n in names) + " |")
    out += [
        "",
        "| Linear(512,512), batch 32, fwd+bwd | " + " | ".join(layer) + " |",
        "|---|" + "---|" * len(layer),
        "| us | " + " | ".join(f"{v:.0f}" for v in layer.values()) + " |",
        "| x float | " + " | ".join(f"{v / float_us:.2f}" for v in layer.values()) + " |",
    ]
    write_report(TITLE, run, "\n".join(out), args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
