"""Benchmark: QAT step time relative to the float model, qplan vs coreai-opt 0.3.0 and torchao.

Models (train mode, batch 32): ``qplan.models.MLP(N, W, in_features=W)`` for N in (16, 64) and
W in (64, 512) (N Linear layers of width W, ReLU between), and ``qplan.models.DigitsCNN`` (two
conv-BN-ReLU, max-pool, linear; input (32, 1, 8, 8)). Config W8A8 for every tool: int8
per-channel symmetric weights, int8 per-tensor activations (qplan and coreai-opt:
``QuantizerConfig()``, observers and fake-quant both on in training mode; torchao:
``prepare_qat_pt2e`` with ``XNNPACKQuantizer`` + ``get_symmetric_quantization_config(
is_per_channel=True, is_qat=True)``, whose activations are int8 per-tensor affine).

One step = ``out = m(x); loss = out.square().mean(); loss.backward(); opt.step();
opt.zero_grad()`` with ``torch.optim.SGD(lr=1e-4)``, identical for all. All tools of one model
are prepared in the same process and alternate in rounds of a few steps (so load changes on the
shared machine hit all alike); each tool's time is the median over all its timed steps.

Usage: python benchmarks/bench_qat.py [--quick] [--rounds 6] [--steps 7] [-o benchmarks/results/qat.md]
       python benchmarks/bench_qat.py --profile "mlp N=16 W=512" [--tools qplan-graph qplan-eager]
       python benchmarks/bench_qat.py --models "mlp N=16 W=512" --tools float qplan-graph qplan-graph-sunk qplan-eager
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import sys
from collections.abc import Callable
from typing import Any

from _benchenv import Run, Sample, load_average, quiet, write_report

TOOLS = ("float", "qplan-graph", "qplan-eager", "coreai-graph", "coreai-eager", "torchao")
# experiment, not run by default: qplan graph with each weight fake-quant moved next to its reader
EXPERIMENTS = ("qplan-graph-sunk",)
TARGET = 1.5  # qplan / float on the width-512 MLPs and the CNN


def model_zoo(quick: bool) -> list[tuple[str, Callable[[], tuple]]]:
    import torch

    import qplan.models as models

    def mlp(n: int, w: int) -> Callable[[], tuple]:
        def make() -> tuple:
            torch.manual_seed(0)
            return models.MLP(n, w, in_features=w).train(), (torch.randn(32, w),)

        return make

    def cnn() -> tuple:
        torch.manual_seed(0)
        return models.DigitsCNN().train(), (torch.randn(32, 1, 8, 8),)

    shapes = [(16, 64), (16, 512)] if quick else [(16, 64), (64, 64), (16, 512), (64, 512)]
    return [(f"mlp N={n} W={w}", mlp(n, w)) for n, w in shapes] + [("cnn", cnn)]


def count_fake_quants(m: Any) -> int:
    """Distinct fake-quant modules in a prepared model (any library: matched by class name)."""
    return len({id(x) for x in m.modules() if "fakequant" in type(x).__name__.lower()})


def prepare(tool: str, model: Any, example: tuple) -> tuple[Any, contextlib.AbstractContextManager]:
    """(module to train, context to train it in) for one tool; `model` is a private copy."""
    if tool == "float":
        return model, contextlib.nullcontext()
    with quiet():
        if tool.startswith("qplan"):
            from qplan.runtime import Quantizer
            from qplan.schema.types import QuantizerConfig

            q = Quantizer(model, QuantizerConfig().set_execution_mode(tool.split("-")[1]))
            pm = q.prepare(example)
            q.training_mode()
            if tool == "qplan-graph-sunk":
                sink_weight_fake_quants(pm)
            return pm, contextlib.nullcontext()
        if tool.startswith("coreai"):
            from coreai_opt.quantization import Quantizer, QuantizerConfig

            q = Quantizer(model, QuantizerConfig().set_execution_mode(tool.split("-")[1]))
            pm = q.prepare(tuple(example))
            return pm, q.training_mode()
        import torch
        from torchao.quantization.pt2e import move_exported_model_to_train
        from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
        from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

        gm = torch.export.export(model, tuple(example), strict=False).module()
        qz = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
        pm = prepare_qat_pt2e(gm, qz)
        move_exported_model_to_train(pm)
        return pm, contextlib.nullcontext()


def sink_weight_fake_quants(gm: Any) -> None:
    """Move every weight fake-quant call (and its ``get_attr``) to just before its first reader.

    torch.export hoists parameter reads to the top of the graph, so qplan's prepared GraphModule
    fake-quantizes all weights before the first layer runs; this experiment measures what running
    each weight fake-quant next to its layer (as eager mode does) would save."""
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    for n in list(gm.graph.nodes):
        if n.op == "call_module" and n.target.endswith("_weight") and n.users:
            first = min(n.users, key=order.__getitem__)
            src = n.args[0]
            first.prepend(n)
            if src.op == "get_attr" and len(src.users) == 1:
                n.prepend(src)
    gm.graph.lint()
    gm.recompile()


def make_step(m: Any, x: Any) -> Callable[[], None]:
    import torch

    opt = torch.optim.SGD(m.parameters(), lr=1e-4)

    def step() -> None:
        out = m(x)
        loss = out.square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()

    return step


def bench_model(
    name: str, factory: Callable[[], tuple], tools: tuple[str, ...], rounds: int, steps: int, warmup: int
) -> dict[str, Any]:
    import time

    base, example = factory()
    steps_of, fqs, stack = {}, {}, contextlib.ExitStack()
    with stack:
        for tool in tools:
            pm, ctx = prepare(tool, copy.deepcopy(base), example)
            stack.enter_context(ctx)
            fqs[tool] = count_fake_quants(pm)
            steps_of[tool] = make_step(pm, example[0])
        samples = {t: Sample() for t in tools}
        for t in tools:
            for _ in range(warmup):
                steps_of[t]()
        gc.collect()
        for r in range(rounds):
            for t in tools:
                step = steps_of[t]
                for _ in range(steps):
                    w, c = time.perf_counter(), time.process_time()
                    step()
                    samples[t].add(time.perf_counter() - w, time.process_time() - c)
            print(f"  {name}: round {r + 1}/{rounds} (load {load_average()})", file=sys.stderr, flush=True)
    return {"name": name, "samples": samples, "fqs": fqs}


TITLE = "QAT step time relative to the float model: qplan vs coreai-opt and torchao"


def report(rows: list[dict[str, Any]], tools: tuple[str, ...], args: argparse.Namespace) -> tuple[list[str], str]:
    """(run notes, results body) of the run."""
    peers = [t for t in tools if t not in ("float",) and not t.startswith("qplan")]
    mine = [t for t in tools if t.startswith("qplan")]
    notes = [
        "every time is the median of repeats, given as wall / CPU (`time.perf_counter` / `time.process_time`"
        " of this process)",
        "step: `out = m(x); loss = out.square().mean(); loss.backward(); opt.step(); opt.zero_grad()`,"
        " `torch.optim.SGD(lr=1e-4)`, batch 32, train mode; the same for every tool",
        f"per model: {args.warmup} warm-up steps per tool, then {args.rounds} rounds of {args.steps} steps per tool,"
        f" tools alternating within each round; median over the {args.rounds * args.steps} timed steps",
        "models: `qplan.models.MLP(N, W, in_features=W)` (N Linear layers of width W, ReLU between, input (32, W)),"
        " `qplan.models.DigitsCNN()` (2 x conv-BN-ReLU, max-pool, linear; input (32, 1, 8, 8))",
        "configs: W8A8. qplan / coreai-opt: `QuantizerConfig()` (int8 per-channel symmetric weights, int8"
        " per-tensor symmetric activations), graph or eager via `set_execution_mode`; qplan `q.training_mode()`,"
        " coreai-opt inside `with q.training_mode():` (observers + fake-quant on). torchao: `torch.export.export(...)"
        ".module()` + `prepare_qat_pt2e` with `XNNPACKQuantizer().set_global(get_symmetric_quantization_config("
        "is_per_channel=True, is_qat=True))` (`torchao.testing.pt2e._xnnpack_quantizer`, warns `XNNPACKQuantizer is"
        " deprecated!`; int8 per-channel weights, int8 per-tensor affine activations) + `move_exported_model_to_train`",
    ]
    out = [
        "## ms per step (wall / CPU)",
        "",
        "| model | " + " | ".join(tools) + " |",
        "|---|" + "---:|" * len(tools),
    ]
    for r in rows:
        s = r["samples"]
        out.append(f"| {r['name']} | " + " | ".join(f"{1e3 * s[t].w:.2f} / {1e3 * s[t].c:.2f}" for t in tools) + " |")
    out += [
        "",
        "## Ratio to float (CPU time; wall in parentheses); fake-quant modules in brackets",
        "",
        "| model | "
        + " | ".join(t for t in tools if t != "float")
        + " | target: qplan <= 1.5x (W=512, cnn) | target: qplan below every peer |",
        "|---|" + "---:|" * (len(tools) - 1) + "---|---|",
    ]
    for r in rows:
        s, f = r["samples"], r["samples"]["float"]
        ratio = {t: s[t].c / f.c for t in tools}
        cells = [f"{ratio[t]:.2f}x ({s[t].w / f.w:.2f}x) [{r['fqs'][t]}]" for t in tools if t != "float"]
        applies = "W=512" in r["name"] or r["name"] == "cnn"
        t1 = ", ".join(f"{t} {'yes' if ratio[t] <= TARGET else 'NO'}" for t in mine) if applies else "n/a"
        best_peer = min(ratio[t] for t in peers) if peers else float("inf")
        t2 = ", ".join(f"{t} {'yes' if ratio[t] < best_peer else 'NO'}" for t in mine) if peers else "n/a (no peer run)"
        out.append(f"| {r['name']} | " + " | ".join(cells) + f" | {t1} | {t2} |")
    out.append("")
    return notes, "\n".join(out)


def profile(name: str, zoo: list[tuple[str, Callable[[], tuple]]], tools: tuple[str, ...], steps: int) -> str:
    """torch.profiler table (self CPU time) of `steps` QAT steps per tool on one model."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    factory = dict(zoo)[name]
    base, example = factory()
    out = []
    for tool in tools:
        pm, ctx = prepare(tool, copy.deepcopy(base), example)
        with ctx:
            step = make_step(pm, example[0])
            for _ in range(5):
                step()
            with tprofile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(steps):
                    step()
        out.append(f"## {tool} on {name}: {steps} steps, torch.profiler, sorted by self CPU time\n")
        out.append(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    torch.set_num_threads(1)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=7, help="steps per tool per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS + EXPERIMENTS)
    parser.add_argument("--models", nargs="+", default=None, help="model names to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 MLPs + cnn, 2 rounds of 3 steps")
    parser.add_argument("--profile", default=None, metavar="MODEL", help="print a torch.profiler table instead")
    parser.add_argument("-o", "--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps, args.warmup = 2, 3, 2
    run = Run(__file__, argv, threads=1)
    tools = tuple(t for t in TOOLS + EXPERIMENTS if t in args.tools)
    if "float" not in tools and args.profile is None:
        tools = ("float", *tools)

    import torch

    torch.set_num_threads(1)
    zoo = model_zoo(args.quick)
    if args.profile is not None:
        sys.stdout.write(profile(args.profile, zoo, tuple(t for t in tools), args.steps))
        return 0
    rows = []
    for name, factory in zoo:
        if args.models and name not in args.models:
            continue
        print(f"{name} (load {load_average()})", file=sys.stderr, flush=True)
        rows.append(bench_model(name, factory, tools, args.rounds, args.steps, args.warmup))
        gc.collect()
    notes, body = report(rows, tools, args)
    write_report(TITLE, run, body, args.output, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
