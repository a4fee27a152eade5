"""Benchmark: what capture costs on top of torch.export (graph) and a plain forward (eager).

For each model (the bundled ``mlp``/``cnn``/``transformer``, ``mlp(n_layers=N, width=16)`` and a
2-layer Llama from ``transformers`` when installed), in one process with one torch thread:

- ``torch.export.export(model, args, strict=False)`` and ``capture(model, args, "graph")``
  (median of the repeats): the difference is capture's own graph walk;
- a plain ``model(*args)`` under ``torch.no_grad()``, ``capture(model, args, "eager")``, and one
  forward inside ``EagerOpNamer.session`` (the runtime's eager naming cost, per listed op).

Usage: python benchmarks/bench_capture.py [--quick] [--repeat 5] [--mlp-layers 256] [-o benchmarks/results/capture.md]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from _benchenv import Run, write_report


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _models(mlp_layers: int, llama: bool = True):
    from qplan import models

    yield "mlp()", models.mlp()
    yield "cnn()", models.cnn()
    yield "transformer()", models.transformer()
    yield f"mlp({mlp_layers}, 16)", models.mlp(n_layers=mlp_layers, width=16)
    if not llama:
        return
    try:
        import torch
        import transformers as hf
    except ImportError:
        return
    torch.manual_seed(0)
    cfg = hf.LlamaConfig(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, use_cache=False, attn_implementation="eager",
    )  # fmt: skip
    yield "Llama (2 layers)", (hf.LlamaForCausalLM(cfg).eval(), (torch.randint(0, 128, (1, 8)),))


TITLE = "Capture cost (graph: on top of torch.export; eager: on top of a plain forward)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mlp-layers", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, mlp(8, 16), no Llama")
    parser.add_argument("-o", "--output", default=None)
    ns = parser.parse_args(argv)
    run = Run(__file__, argv, threads=1)
    if ns.quick:
        ns.repeat, ns.mlp_layers = 1, 8
    warnings.filterwarnings("ignore")

    import torch

    from qplan.compiler.capture import EagerOpNamer, capture

    torch.set_num_threads(1)
    rows = []
    for label, (model, args) in _models(ns.mlp_layers, llama=not ns.quick):
        torch.export.export(model, args, strict=False)  # warm-up
        export = _median(lambda: torch.export.export(model, args, strict=False), ns.repeat)
        graph = _median(lambda: capture(model, args, "graph"), ns.repeat)
        inv = capture(model, args, "eager").inventory
        with torch.no_grad():
            plain = _median(lambda: model(*args), ns.repeat * 4)
            eager = _median(lambda: capture(model, args, "eager"), ns.repeat)
            namer = EagerOpNamer(model)

            def named() -> None:
                with namer.session(args):
                    model(*args)

            session = _median(named, ns.repeat * 4)
        n = len(inv.ops)
        rows.append(
            f"| {label} | {n} | {export:.3f} | {graph:.3f} | {(graph - export) * 1e3:+.1f} | "
            f"{plain * 1e3:.2f} | {eager * 1e3:.1f} | {session * 1e3:.2f} | {(session - plain) / n * 1e6:.0f} |"
        )
    body = "\n".join(
        [
            "| model | ops | torch.export (s) | graph capture (s) | graph walk (ms) | forward (ms) "
            "| eager capture (ms) | named forward (ms) | naming/op (µs) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    notes = [
        f"medians of {ns.repeat} repeats (forwards: {ns.repeat * 4}), wall time (`time.perf_counter`);"
        " `graph walk` = graph capture - torch.export; `naming/op` = (named forward - forward) / listed ops",
    ]
    write_report(TITLE, run, body, ns.output, notes, extra_versions=("transformers",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
