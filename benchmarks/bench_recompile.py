"""Benchmark: the edit loop, a first compile vs a recompile of an edited config (inventory cache).

Models: ``qplan.models.mlp(1024, 64)`` (1024 Linear layers, ReLU between them; ``--quick``: 64)
and a tiny random-weight transformers ``LlamaForCausalLM`` (2 layers, width 64, default
attention, built from a ``LlamaConfig``: no download). Configs: W8A8 (``{}``) for the first
compile, and an edited one for the recompile (int4 per-channel weights for the Linear modules
``layers.0``, ``layers.10``, ... and the projections of Llama's first layer). In one process, one torch thread; every time a median over the rounds.

Measured per model and capture mode:

- the factory (building the model; the user's cost, paid by every CLI run, cache or not);
- **first compile**: ``compile_plan(model, W8A8, x, mode, cache=InventoryCache(empty dir))``,
  i.e. the key, capture, the passes and writing the cache entry;
- **recompile**: ``compile_plan(model, edited, x, mode, cache=<the same cache>)``, i.e. the key,
  reading the entry and the passes, with its parts timed alone: the key, the read, the passes;
- ratio recompile / first compile (target: at most 10% in graph mode, the default);
- the ``qplan compile-plan`` CLI as a user runs it, one process per call (Python start, imports,
  factory): cold cache then edited config on the warm cache (one call each, wall time).

Usage: python benchmarks/bench_recompile.py [--quick] [--repeat 3] [--no-cli] [-o benchmarks/results/recompile.md]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _benchenv import REPO, Run, Sample, fmt_ms, load_average, quiet, timed, write_report

TITLE = "Edit loop: first compile vs recompile of an edited config (inventory cache)"
TARGET = 0.10  # recompile / first compile, graph mode
EDITED = {
    "quantization_config": {
        "module_name_configs": {
            "layers\\.\\d*0|model\\.layers\\.0\\..*_proj": {
                "op_state_spec": {"weight": {"dtype": "int4", "granularity": {"type": "per_channel"}}}
            }
        }
    }
}
EDITED_YAML = """\
quantization_config:
  module_name_configs:
    "layers\\\\.\\\\d*0|model\\\\.layers\\\\.0\\\\..*_proj":
      op_state_spec: {weight: {dtype: int4, granularity: {type: per_channel}}}
"""


def llama() -> tuple[Any, tuple[Any, ...]]:
    """A tiny random-weight LlamaForCausalLM (2 layers, width 64, default attention); ids (1, 16)."""
    import torch
    import transformers as hf

    torch.manual_seed(0)
    cfg = hf.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, use_cache=False,
    )  # fmt: skip
    ids = torch.randint(0, 128, (1, 16), generator=torch.Generator().manual_seed(1))
    return hf.LlamaForCausalLM(cfg).eval(), (ids,)


def mlp1024() -> tuple[Any, tuple[Any, ...]]:
    from qplan.models import mlp

    return mlp(1024, 64)


def mlp64() -> tuple[Any, tuple[Any, ...]]:
    from qplan.models import mlp

    return mlp(64, 64)


def bench_mode(factory: Callable[[], tuple], mode: str, repeat: int) -> dict[str, Any]:
    """Rounds of: a first compile on an empty cache, then a recompile of the edited config."""
    from qplan.compiler import compile_inventory, compile_plan
    from qplan.compiler.inventory_cache import InventoryCache, inventory_key
    from qplan.compiler.plan import encode_plan
    from qplan.schema.types import QuantizerConfig

    w8a8, edited = QuantizerConfig(), QuantizerConfig.from_dict(EDITED)
    r: dict[str, Any] = {k: Sample() for k in ("factory", "first", "recompile", "key", "read", "passes")}
    for k in range(repeat):
        (model, x), w, c = timed(factory)
        r["factory"].add(w, c)
        with tempfile.TemporaryDirectory() as d:
            cache = InventoryCache(d)
            _, w, c = timed(lambda: compile_plan(model, w8a8, x, mode, cache=cache))
            r["first"].add(w, c)
            again, w, c = timed(lambda: compile_plan(model, edited, x, mode, cache=cache))
            r["recompile"].add(w, c)
            assert (cache.hits, cache.misses) == (1, 1), (cache.hits, cache.misses)
            key, w, c = timed(lambda: inventory_key(model, x, mode))
            r["key"].add(w, c)
            inventory, w, c = timed(lambda: cache.get(key))
            r["read"].add(w, c)
            _, w, c = timed(lambda: compile_inventory(inventory, edited))
            r["passes"].add(w, c)
        if k == 0:
            uncached = compile_plan(model, edited, x, mode)
            assert encode_plan(uncached) == encode_plan(again), "a cached recompile must equal an uncached compile"
    r["ops"], r["fq"] = len(inventory.ops), len(again.quantizers)
    return r


FLOOR = (
    "import sys, qplan.compiler.capture, qplan.schema.loader, qplan.cli.commands.compile_plan\n"
    "from qplan.cli.inputs import load_factory\n"
    "load_factory(sys.argv[1])\n"
)


def bench_cli(factory_spec: str, mode: str) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of fresh processes: `qplan compile-plan` on a cold cache (W8A8), then
    the edited config on the warm cache, then the floor: the same imports and the factory alone."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO / "benchmarks")]))
    out = []
    with tempfile.TemporaryDirectory() as d:
        env["QPLAN_CACHE_DIR"] = str(Path(d) / "cache")
        (Path(d) / "a.yaml").write_text("quantization_config: {}\n")
        (Path(d) / "b.yaml").write_text(EDITED_YAML)
        compile_cmd = [sys.executable, "-m", "qplan.cli", "compile-plan", "--model", factory_spec, "--mode", mode]
        compile_cmd += ["-o", str(Path(d) / "plan.json")]
        for cmd in (
            [*compile_cmd, "a.yaml"],
            [*compile_cmd, "b.yaml"],
            [sys.executable, "-c", FLOOR, factory_spec],
        ):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, cwd=d, env=env, check=True, capture_output=True)
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            out.append((wall, cpu))
    return out


def report(rows: list[dict[str, Any]]) -> str:
    out = [
        "All times: wall / CPU, median over the rounds. ms = milliseconds.",
        "",
        "## In process: first compile vs recompile",
        "",
        "| model | mode | ops | fake-quants | factory (ms) | first compile (ms) | recompile (ms) |"
        " recompile / first (CPU) | recompile / first (wall) | key (ms) | cache read (ms) | passes (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['name']} | {r['mode']} | {r['ops']} | {r['fq']} | {fmt_ms(r['factory'])} | {fmt_ms(r['first'])} |"
            f" {fmt_ms(r['recompile'])} | {100 * r['recompile'].c / r['first'].c:.1f}% |"
            f" {100 * r['recompile'].w / r['first'].w:.1f}% | {fmt_ms(r['key'])} | {fmt_ms(r['read'])} |"
            f" {fmt_ms(r['passes'])} |"
        )
    cli = [r for r in rows if r.get("cli")]
    if cli:
        out += [
            "",
            "## The CLI, one process per call (seconds, wall / CPU of the child process, one call each)",
            "",
            "Each call pays Python start-up, importing torch and qplan, and the factory, cache or not: the",
            "floor is a process doing just that (the imports compile-plan needs, then the factory).",
            "",
            "| model | mode | compile-plan, cold cache (s) | compile-plan, edited config, warm cache (s) |"
            " floor: imports + factory (s) | (warm - floor) / (cold - floor), CPU |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in cli:
            (cw, cc), (ww, wc), (fw, fc) = r["cli"]
            share = f"{100 * (wc - fc) / (cc - fc):.0f}%" if cc > fc else "–"
            out.append(
                f"| {r['name']} | {r['mode']} | {cw:.2f} / {cc:.2f} | {ww:.2f} / {wc:.2f} | {fw:.2f} / {fc:.2f} | {share} |"
            )
    out += ["", "## Target", "", "| target | measured (CPU) | measured (wall) | met |", "|---|---:|---:|---|"]
    for r in rows:
        if r["mode"] != "graph":
            continue
        rc, rw = r["recompile"].c / r["first"].c, r["recompile"].w / r["first"].w
        out.append(
            f"| {r['name']}: recompile <= 10% of the first compile (graph) | {100 * rc:.1f}% | {100 * rw:.1f}% |"
            f" {'yes' if rc <= TARGET and rw <= TARGET else 'NO'} |"
        )
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: mlp N=64 instead of 1024, one round")
    parser.add_argument("--no-cli", action="store_true", help="skip the one-process-per-call CLI timings")
    parser.add_argument("-o", "--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat = 1
    run = Run(__file__, argv, threads=1)
    with quiet():
        import torch
        import transformers  # noqa: F401 - imported before timing, not inside the first factory call

        import qplan.compiler.capture  # noqa: F401 - imports torch.export and friends before timing

        torch.set_num_threads(1)
        models = [("mlp N=64", mlp64, "bench_recompile:mlp64")] if args.quick else []
        models += [] if args.quick else [("mlp N=1024", mlp1024, "bench_recompile:mlp1024")]
        models.append(("Llama (2 layers, sdpa)", llama, "bench_recompile:llama"))
        bench_mode(mlp64, "graph", 1)  # warm-up: first export in the process
        rows = []
        for name, factory, spec in models:
            for mode in ("graph", "eager"):
                print(f"{name} {mode} (load {load_average()})", file=sys.stderr, flush=True)
                row = bench_mode(factory, mode, args.repeat)
                row.update(name=name, mode=mode)
                if not args.no_cli:
                    row["cli"] = bench_cli(spec, mode)
                rows.append(row)
    notes = [
        f"rounds: {args.repeat} per model and mode (after one warm-up compile); a fresh empty cache directory per round",
        "first compile: W8A8 `{}`; recompile: int4 per-channel weights under `module_name_configs` on the Linear modules `layers.0`, `layers.10`, ... (MLP) and `model.layers.0.*_proj` (Llama)",
        "every recompiled plan is checked byte-identical to an uncached compile of the same config",
    ]
    write_report(TITLE, run, report(rows), args.output, notes, extra_versions=("transformers",))
    return 0


if __name__ == "__main__":
    sys.exit(main())
