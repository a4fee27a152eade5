"""Benchmark: what capture costs on top of torch.export (graph) and a plain forward (eager).

For each model (the bundled ``mlp``/``cnn``/``transformer``, ``mlp(n_layers=N, width=16)`` and a
2-layer Llama from ``transformers`` when installed), in one process with one torch thread:

- ``torch.export.export(model, args, strict=False)`` and ``capture(model, args, "graph")``
  (median of the repeats): the difference is capture's own graph walk;
- a plain ``model(*args)`` under ``torch.no_grad()``, ``capture(model, args, "eager")``, and one
  forward inside ``EagerOpNamer.session`` (the runtime's eager naming cost, per listed op).

Usage: python benchmarks/bench_capture.py [--repeat 5] [--mlp-layers 256] [-o benchmarks/results/capture.md]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
import warnings


def _machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _models(mlp_layers: int):
    from qplan import models

    yield "mlp()", models.mlp()
    yield "cnn()", models.cnn()
    yield "transformer()", models.transformer()
    yield f"mlp({mlp_layers}, 16)", models.mlp(n_layers=mlp_layers, width=16)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mlp-layers", type=int, default=256)
    parser.add_argument("-o", "--output", default=None)
    ns = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import torch

    from qplan.compiler.capture import EagerOpNamer, capture

    torch.set_num_threads(1)
    rows = []
    for label, (model, args) in _models(ns.mlp_layers):
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
    lines = [
        "# Capture cost (graph: on top of torch.export; eager: on top of a plain forward)",
        "",
        f"Command: `python benchmarks/bench_capture.py --repeat {ns.repeat} --mlp-layers {ns.mlp_layers}`",
        "",
        f"- machine: {_machine()}, 1 torch thread (2 CPUs shared with other jobs; load varies)",
        f"- Python {platform.python_version()}, torch {torch.__version__}",
        "- medians; `naming/op` = (session forward - plain forward) / listed ops",
        "",
        "| model | ops | torch.export (s) | graph capture (s) | graph walk (ms) | forward (ms) "
        "| eager capture (ms) | named forward (ms) | naming/op (µs) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    if ns.output:
        with open(ns.output, "w") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
