"""Benchmark: the compiler's own work against torch.export, on N Linear+ReLU layers.

For each N, builds ``qplan.models.mlp(n_layers=N, width=16)`` and times, in one process:

- ``torch.export.export(model, example, strict=False)`` (one run: it dominates capture);
- the compiler alone: ``compile_inventory(inventory, W8A8)`` on the captured inventory
  (median of several repeats after a warm-up), i.e. everything after capture.

The compiler must stay below 10% of the export time and grow linearly in N (per-layer time
about constant). Usage: python benchmarks/bench_compile.py [--sizes 128 256 512 1024] [--repeat 5]
[-o benchmarks/results/compile.md]
"""

from __future__ import annotations

import argparse
import os
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("-o", "--output", default=None)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import torch

    import qplan.models as models
    from qplan.compiler.capture import capture
    from qplan.compiler.pipeline import compile_inventory
    from qplan.schema.types import QuantizerConfig

    rows = []
    for n in args.sizes:
        model, example = models.mlp(n_layers=n, width=16)
        t = time.perf_counter()
        torch.export.export(model, example, strict=False)
        export_s = time.perf_counter() - t
        inventory = capture(model, example, "graph").inventory
        config = QuantizerConfig()
        compile_inventory(inventory, config)  # warm-up
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            plan = compile_inventory(inventory, config)
            times.append(time.perf_counter() - t)
        compile_s = statistics.median(times)
        rows.append((n, len(inventory.ops), len(plan.quantizers), export_s, compile_s))
        print(f"N={n}: export {export_s:.3f}s, compile {compile_s * 1000:.1f}ms "
              f"({100 * compile_s / export_s:.1f}%)", file=sys.stderr)

    lines = [
        "# Compiler overhead vs torch.export (N Linear+ReLU layers, W8A8)",
        "",
        f"Command: `python benchmarks/bench_compile.py --sizes {' '.join(map(str, args.sizes))} --repeat {args.repeat}`",
        "",
        f"- machine: {_machine()}, {os.cpu_count()} CPUs (shared with other jobs while measured; load varies)",
        f"- Python {platform.python_version()}, torch {torch.__version__}",
        "",
        "| N layers | ops | fake-quants | torch.export (s) | compile (ms) | compile / export | compile per layer (µs) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, ops, fq, e, c in rows:
        lines.append(f"| {n} | {ops} | {fq} | {e:.3f} | {c * 1000:.1f} | {100 * c / e:.1f}% | {1e6 * c / n:.0f} |")
    text = "\n".join(lines) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
