"""Prepare time and output error per architecture: the zoo's transformers models in both modes.

Models: the transformers architectures of ``tests/compiler/test_zoo_compile.py`` (tiny configs,
random weights, default sdpa attention, caches on). For each (model, mode): the time of
``Quantizer.prepare`` (capture + compile + inserting the fake-quants; CPU time, 1 thread, the
first export of the process is taken before timing), then a calibration on the example and on a
batch of 2, finalize, and the finalized program's relative error against the float model on the
example (``||y_q - y|| / ||y||`` over the logits), with W8A8 (`QuantizerConfig()`).

Usage: python benchmarks/bench_zoo.py [--quick] [-o benchmarks/results/zoo.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _benchenv import REPO, Run, load_average, quiet, write_report

TITLE = "Prepare time and W8A8 output error per architecture (the zoo)"


def _resized(args: tuple, batch: int) -> tuple:
    import torch

    g = torch.Generator().manual_seed(1)
    out: list = []
    for a in args:
        if a is None:
            out.append(None)
        elif a.is_floating_point():
            out.append(torch.randn([batch, *a.shape[1:]], generator=g))
        else:
            out.append(torch.randint(3, 100, [batch, *a.shape[1:]], generator=g))
    return tuple(out)


def measure(zoo, name: str, mode: str) -> dict:
    import torch

    from qplan import Quantizer, QuantizerConfig

    logits = lambda out: out.logits if hasattr(out, "logits") else out[0]  # noqa: E731
    model, args = zoo.build(name)
    with torch.no_grad():
        ref = logits(model(*args))
    q = Quantizer(model, QuantizerConfig().set_execution_mode(mode))
    t0 = time.process_time()
    prepared = q.prepare(args)
    prepare_s = time.process_time() - t0
    q.calibration_mode()
    with torch.no_grad():
        prepared(*args)
        prepared(*_resized(args, 2))
    q.inference_mode()
    with torch.no_grad():
        out = logits(q.finalize().module()(*args))
    err = float((out - ref).norm() / ref.norm())
    weights = sum(1 for e in q.plan.quantizers if e.role == "state")
    return {"name": name, "mode": mode, "prepare": prepare_s, "err": err, "weights": weights}


def report(rows: list[dict]) -> str:
    lines = [
        "| architecture | mode | prepare (CPU s) | quantized weights | rel. error vs float |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['mode']} | {r['prepare']:.2f} | {r['weights']} | {r['err']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: Llama and BERT only")
    parser.add_argument("-o", "--output", default=None)
    args = parser.parse_args(argv)
    run = Run(__file__, argv, threads=1)
    with quiet():
        import torch

        torch.set_num_threads(1)
        sys.path.insert(0, str(Path(REPO) / "tests" / "compiler"))
        import test_zoo_compile as zoo

        names = ["llama", "bert"] if args.quick else list(zoo.HF)
        measure(zoo, "bert", "graph")  # warm-up: the first export of the process
        rows = []
        for name in names:
            for mode in ("graph", "eager"):
                print(f"{name} {mode} (load {load_average()})", file=sys.stderr, flush=True)
                rows.append(measure(zoo, name, mode))
    notes = ["models: tiny configs from tests/compiler/test_zoo_compile.py (hidden 32, one layer, vocabulary 100)"]
    write_report(TITLE, run, report(rows), args.output, notes, extra_versions=("transformers",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
