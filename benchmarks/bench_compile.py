"""Benchmark: `compile-plan` against coreai-opt 0.3.0 `prepare` and torchao `prepare_pt2e`.

Models: ``qplan.models.mlp(N, 64)`` (N Linear layers of width 64 with ReLU between them) for
each N, and ``qplan.models.transformer()``. Config: W8A8 default for every tool (qplan
``QuantizerConfig()``, coreai-opt ``QuantizerConfig()``, torchao XNNPACKQuantizer with
``get_symmetric_quantization_config(is_per_channel=True)``). All in one process, one thread.

Measured per model (each a median over rounds; the tools alternate within every round so that
load changes on the shared machine hit all of them alike):

- qplan ``capture(model, example, "graph")`` (torch.export + building the op inventory);
- qplan ``compile_inventory(inventory, config)``: the compiler's own work, everything after capture;
- qplan ``compile_plan(model, config, example, mode)`` end to end, graph and eager mode;
- coreai-opt ``Quantizer(model, cfg).prepare((x,))``, graph and eager, warm (a warm-up prepare
  of every mode runs first in the process, so each timed call is at least the second);
- torchao ``torch.export.export(...).module()`` and ``prepare_pt2e(gm, XNNPACKQuantizer)``;
- ``torch.export.export(model, example, strict=False)`` alone (the floor under graph capture).

Usage: python benchmarks/bench_compile.py [--quick] [--sizes 64 256 1024] [--repeat 3]
[--coreai-repeat 2] [-o benchmarks/results/compile.md]
"""

from __future__ import annotations

import argparse
import copy
import gc
import sys
import warnings
from collections.abc import Callable
from typing import Any

from _benchenv import Run, Sample, fmt_s, load_average, measure, quiet, timed, write_report

TARGET_RATIO = 0.10  # compiler / capture
TARGET_GRAPH = 4.0  # coreai warm graph prepare / qplan graph compile-plan (N = 1024)
TARGET_EAGER = 20.0  # coreai warm graph prepare / qplan eager compile-plan (N = 1024)


def _collect() -> None:
    gc.collect()


class Tools:
    """The calls under test, each taking a fresh (model, example) pair built outside the timing."""

    def __init__(self) -> None:
        with quiet():
            import torch
            from coreai_opt.quantization import Quantizer as CQuantizer
            from coreai_opt.quantization import QuantizerConfig as CConfig
            from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

            from qplan.compiler import compile_inventory, compile_plan
            from qplan.compiler.capture import capture
            from qplan.schema.types import QuantizerConfig

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from torchao.testing.pt2e._xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config

            XNNPACKQuantizer()
        self.xnnpack_warnings = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
        self.torch = torch
        self.CQuantizer, self.CConfig = CQuantizer, CConfig
        self.prepare_pt2e = prepare_pt2e
        self.XNNPACKQuantizer, self.xnn_config = XNNPACKQuantizer, get_symmetric_quantization_config
        self.compile_inventory, self.compile_plan, self.capture = compile_inventory, compile_plan, capture
        self.config = QuantizerConfig()  # W8A8 default, graph mode

    # qplan
    def qplan_capture(self, me: tuple) -> Any:
        return self.capture(me[0], me[1], "graph")

    def qplan_compile(self, inventory: Any) -> Any:
        return self.compile_inventory(inventory, self.config)

    def qplan_graph(self, me: tuple) -> Any:
        return self.compile_plan(me[0], self.config, me[1], "graph")

    def qplan_eager(self, me: tuple) -> Any:
        return self.compile_plan(me[0], self.config, me[1], "eager")

    # coreai-opt
    def coreai(self, mode: str) -> Callable[[tuple], Any]:
        def run(me: tuple) -> Any:
            with quiet():
                return self.CQuantizer(me[0], self.CConfig().set_execution_mode(mode)).prepare(tuple(me[1]))

        return run

    def export(self, me: tuple) -> Any:
        """torch.export alone, as qplan's graph capture calls it."""
        with quiet():
            return self.torch.export.export(me[0], tuple(me[1]), strict=False)

    # torchao
    def ao_export(self, me: tuple) -> Any:
        with quiet():
            return self.torch.export.export(me[0], tuple(me[1]), strict=False).module()

    def ao_prepare(self, gm: Any) -> Any:
        with quiet():
            qz = self.XNNPACKQuantizer().set_global(self.xnn_config(is_per_channel=True))
            return self.prepare_pt2e(gm, qz)


def bench_model(
    tools: Tools,
    name: str,
    factory: Callable[[], tuple],
    layers: int | None,
    repeat: int,
    coreai_repeat: int,
    warmup: int,
    compile_repeat: int,
) -> dict[str, Any]:
    """One row: every tool, alternating, `warmup` + `repeat` rounds (coreai-opt: its own count)."""
    base = factory()

    def fresh() -> tuple:
        return copy.deepcopy(base[0]), base[1]

    def run(fn: Callable[[Any], Any], arg: Any = None) -> tuple[Any, float, float]:
        """Time ``fn(arg)`` (default: a fresh model copy); the copy and a GC run happen before the clock starts."""
        arg = fresh() if arg is None else arg
        _collect()
        return timed(lambda: fn(arg))

    r: dict[str, Any] = {"name": name, "layers": layers}
    keys = ["export", "ao_export", "ao_prepare", "capture", "compile", "graph", "eager", "coreai_graph", "coreai_eager"]
    s = {k: Sample() for k in keys}
    rounds = warmup + max(repeat, coreai_repeat)
    for k in range(rounds):
        keep = k >= warmup

        def add(key: str, w: float, c: float) -> None:
            if keep:
                s[key].add(w, c)

        _, w, c = run(tools.export)
        add("export", w, c)
        gm, w, c = run(tools.ao_export)
        add("ao_export", w, c)
        _, w, c = run(tools.ao_prepare, gm)
        add("ao_prepare", w, c)
        del gm
        if k < warmup + repeat:
            cap, w, c = run(tools.qplan_capture)
            add("capture", w, c)
            _collect()
            comp, plan = measure(lambda: tools.qplan_compile(cap.inventory), repeat=compile_repeat, warmup=1)
            if keep:  # the median of this round's compiles stands for the round
                s["compile"].add(comp.w, comp.c)
            r["ops"], r["fq"] = len(cap.inventory.ops), len(plan.quantizers)
            del cap
            _, w, c = run(tools.qplan_graph)
            add("graph", w, c)
            _, w, c = run(tools.qplan_eager)
            add("eager", w, c)
        if k < warmup + coreai_repeat:
            for mode in ("graph", "eager"):
                pm, w, c = run(tools.coreai(mode))
                add(f"coreai_{mode}", w, c)
                del pm
        print(f"  {name}: round {k + 1}/{rounds} done (load {load_average()})", file=sys.stderr, flush=True)
    r.update(s)
    return r


def _ratio(a: Sample, b: Sample) -> tuple[float, float]:
    return a.w / b.w, a.c / b.c


TITLE = "compile-plan vs coreai-opt `prepare` and torchao `prepare_pt2e`"


def report(rows: list[dict[str, Any]], args: argparse.Namespace, tools: Tools) -> tuple[list[str], str]:
    """(run notes, results body) of the run."""
    big = [r for r in rows if r["layers"] is not None]
    nmax = max(big, key=lambda r: r["layers"]) if big else None
    notes = [
        "every time is the median of repeats, given as wall / CPU (`time.perf_counter` / `time.process_time`"
        " of this process)",
        f"rounds: {args.warmup} warm-up + {args.repeat} timed (qplan, torchao), {args.coreai_repeat} timed for"
        f" coreai-opt (after one warm-up prepare per mode at the start of the process); the compiler alone is the"
        f" median of {args.compile_repeat} calls per round",
        "models: `qplan.models.mlp(N, 64)` (N Linear layers, width 64, ReLU between, input (8, 16)) and"
        " `qplan.models.transformer()` (1 block, width 32, tied embedding; ids (2, 8)); W8A8 default config for"
        " every tool; a fresh deep copy of the model per call (copy not timed)",
        "torchao: `torch.export.export(m, x, strict=False).module()` then `prepare_pt2e` with"
        " `XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))` from"
        " `torchao.testing.pt2e._xnnpack_quantizer`; constructing it warns: "
        + ("; ".join(f"`{w}`" for w in tools.xnnpack_warnings) or "nothing"),
    ]
    out = [
        "All times: wall / CPU. s = seconds.",
        "",
        "## qplan: capture vs the compiler's own work",
        "",
        "| model | ops | fake-quants | torch.export alone (s) | capture graph (s) | capture - export, CPU (s) |"
        " compiler (ms) | compiler / capture (CPU) | compiler per layer, CPU (µs) | capture per layer, CPU (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per = f"{1e6 * r['compile'].c / r['layers']:.0f}" if r["layers"] else "–"
        cper = f"{1e3 * r['capture'].c / r['layers']:.2f}" if r["layers"] else "–"
        out.append(
            f"| {r['name']} | {r['ops']} | {r['fq']} | {fmt_s(r['export'])} | {fmt_s(r['capture'])} |"
            f" {r['capture'].c - r['export'].c:.3f} |"
            f" {1e3 * r['compile'].w:.1f} / {1e3 * r['compile'].c:.1f} | {100 * r['compile'].c / r['capture'].c:.2f}% |"
            f" {per} | {cper} |"
        )
    out += [
        "",
        "## End to end: qplan compile-plan vs the peers",
        "",
        "| model | qplan compile-plan graph (s) | qplan compile-plan eager (s) | coreai-opt prepare graph, warm (s) |"
        " coreai-opt prepare eager, warm (s) | torchao export + .module() (s) | torchao prepare_pt2e (s) |"
        " coreai graph / qplan graph (CPU) | coreai graph / qplan eager (CPU) | coreai eager / qplan eager (CPU) |"
        " torchao export+prepare / qplan graph (CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ao_c = r["ao_export"].c + r["ao_prepare"].c
        out.append(
            f"| {r['name']} | {fmt_s(r['graph'])} | {fmt_s(r['eager'])} | {fmt_s(r['coreai_graph'])} |"
            f" {fmt_s(r['coreai_eager'])} | {fmt_s(r['ao_export'])} | {fmt_s(r['ao_prepare'])} |"
            f" {r['coreai_graph'].c / r['graph'].c:.1f}x | {r['coreai_graph'].c / r['eager'].c:.1f}x |"
            f" {r['coreai_eager'].c / r['eager'].c:.1f}x | {ao_c / r['graph'].c:.2f}x |"
        )
    out += ["", "## Targets", "", "| target | measured (CPU) | measured (wall) | met |", "|---|---:|---:|---|"]
    worst = max(rows, key=lambda r: r["compile"].c / r["capture"].c)
    ok = worst["compile"].c / worst["capture"].c < TARGET_RATIO
    out.append(
        f"| compiler < 10% of capture (worst model: {worst['name']}) | {100 * worst['compile'].c / worst['capture'].c:.2f}% |"
        f" {100 * worst['compile'].w / worst['capture'].w:.2f}% | {'yes' if ok else 'NO'} |"
    )
    if len(big) >= 2:
        lo = min(big, key=lambda r: r["layers"])
        per_lo, per_hi = lo["compile"].c / lo["layers"], nmax["compile"].c / nmax["layers"]
        per_lo_w, per_hi_w = lo["compile"].w / lo["layers"], nmax["compile"].w / nmax["layers"]
        out.append(
            f"| compiler linear in N: per-layer time N={nmax['layers']} / N={lo['layers']} (1.0 = linear) |"
            f" {per_hi / per_lo:.2f} | {per_hi_w / per_lo_w:.2f} | {'yes' if per_hi / per_lo < 1.5 else 'NO'} |"
        )
    if nmax is not None:
        g_c, g_w = nmax["coreai_graph"].c / nmax["graph"].c, nmax["coreai_graph"].w / nmax["graph"].w
        e_c, e_w = nmax["coreai_graph"].c / nmax["eager"].c, nmax["coreai_graph"].w / nmax["eager"].w
        out.append(
            f"| graph compile-plan N={nmax['layers']} >= 4x faster than coreai warm graph prepare |"
            f" {g_c:.1f}x | {g_w:.1f}x | {'yes' if g_c >= TARGET_GRAPH else 'NO'} |"
        )
        out.append(
            f"| eager compile-plan N={nmax['layers']} >= 20x faster than coreai warm graph prepare |"
            f" {e_c:.1f}x | {e_w:.1f}x | {'yes' if e_c >= TARGET_EAGER else 'NO'} |"
        )
    out.append("")
    return notes, "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds for qplan and torchao")
    parser.add_argument("--coreai-repeat", type=int, default=2, help="timed rounds for coreai-opt")
    parser.add_argument("--warmup", type=int, default=0, help="untimed rounds per model (a global warm-up always runs)")
    parser.add_argument("--compile-repeat", type=int, default=5, help="compiler-only calls per round")
    parser.add_argument("--no-transformer", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: N = 16, 64, one round each")
    parser.add_argument("-o", "--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat, args.coreai_repeat, args.compile_repeat = [16, 64], 1, 1, 3
    run = Run(__file__, argv, threads=1)

    import torch

    torch.set_num_threads(1)
    import qplan.models as models

    tools = Tools()
    print(f"warm-up (load {load_average()})", file=sys.stderr, flush=True)
    warm = models.mlp(8, 64)
    for fn in (tools.qplan_graph, tools.qplan_eager, tools.coreai("graph"), tools.coreai("eager")):
        fn((copy.deepcopy(warm[0]), warm[1]))
    tools.ao_prepare(tools.ao_export(warm))
    tools.qplan_compile(tools.qplan_capture(warm).inventory)

    rows = []
    for n in args.sizes:
        rows.append(
            bench_model(
                tools,
                f"mlp N={n}",
                lambda n=n: models.mlp(n, 64),
                n,
                args.repeat,
                args.coreai_repeat,
                args.warmup,
                args.compile_repeat,
            )
        )
    if not args.no_transformer:
        rows.append(
            bench_model(
                tools,
                "transformer",
                models.transformer,
                None,
                args.repeat,
                args.coreai_repeat,
                max(args.warmup, 1),
                args.compile_repeat,
            )
        )
    notes, body = report(rows, args, tools)
    write_report(TITLE, run, body, args.output, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
