"""Benchmark: config text -> validated config objects, qplan vs. coreai-opt 0.3.0.

Generates one config with 200 `module_name_configs` entries (per-layer and per-group regexes over
Llama-style module paths, each with an input spec and a weight spec), writes it to a temporary
file, and times in one process, after a warm-up, the median wall and CPU time of many rounds in
which the loaders alternate:

- qplan: `qplan.schema.loader.load_config(path)` (YAML parse with positions, full validation
  with every error collected, then msgspec conversion to `QuantizerConfig`);
- coreai-opt 0.3.0: `coreai_opt.quantization.QuantizerConfig.from_yaml(path)` (PyYAML
  `safe_load`, then pydantic models);
- for reference, qplan's YAML stage alone (`yamldoc.parse_document`) and `load_config` with
  ruamel.yaml.clib hidden (the pure-Python composer every document falls back to without it).

Usage: python benchmarks/bench_validate.py [--quick] [--repeat N] [--entries N] [-o benchmarks/results/validate.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from _benchenv import Run, write_report

PROJECTIONS = (
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
    ("mlp", "down_proj"),
)


def _input_spec(dtype: str) -> str:
    return (
        "      op_input_spec:\n"
        '        "*":\n'
        f"          dtype: {dtype}\n"
        "          qscheme: symmetric\n"
        "          granularity: {type: per_tensor}\n"
        "          qparam_calculator_cls: moving_average\n"
    )


def _weight_spec(dtype: str, granularity: str) -> str:
    return (
        "      op_state_spec:\n"
        "        weight:\n"
        f"          dtype: {dtype}\n"
        "          qscheme: symmetric\n"
        f"          granularity: {granularity}\n"
    )


def make_config(entries: int) -> str:
    """A config text with `entries` module-name rules (deterministic)."""
    blocks = []
    # A few group rules first (later, more specific per-layer rules win: last match wins).
    groups = [
        (r"model\.layers\.(\d+)\.self_attn\.(q|k|v|o)_proj", "int8", "{type: per_channel}"),
        (r"model\.layers\.(\d+)\.mlp\.(gate|up)_proj", "int8", "{type: per_block, block_size: 64}"),
        (r"model\.layers\.(\d+)\.mlp\.down_proj", "int8", "{type: per_block, block_size: 128}"),
        (r"model\.embed_tokens|lm_head", "int8", "{type: per_channel, axis: 0}"),
    ]
    rules = groups[: min(len(groups), entries)]
    layer = 0
    while len(rules) < entries:
        for module, proj in PROJECTIONS:
            if len(rules) == entries:
                break
            wide = proj in ("q_proj", "k_proj", "down_proj") and layer % 4 == 0
            dtype = "int8" if wide else "int4"
            block = 32 if proj != "down_proj" else 64
            rules.append(
                (rf"model\.layers\.{layer}\.{module}\.{proj}", dtype, f"{{type: per_block, block_size: {block}}}")
            )
        layer += 1
    for pattern, dtype, granularity in rules:
        blocks.append(
            f"    '{pattern}':\n"
            + _input_spec("int8")
            + "      op_output_spec: null\n"
            + _weight_spec(dtype, granularity)
        )
    return (
        "quantization_config:\n"
        "  execution_mode: graph\n"
        "  global_config:\n"
        "    op_state_spec:\n"
        "      weight: {dtype: int8, granularity: {type: per_channel}}\n"
        "  module_name_configs:\n" + "".join(blocks)
    )


def interleaved_medians(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per function; one warm-up each, then the functions alternate
    every round, so a load change on the machine hits all of them alike. The garbage collector
    stays on: a full collection (costly with torch imported) lands in whichever call triggers it,
    and the median over many rounds keeps such rounds out."""
    for fn in fns.values():
        fn()  # warm-up: lazy imports, caches
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in fns}


def _without_clib(fn: Callable[[], object]) -> Callable[[], object]:
    """`fn` with ruamel.yaml.clib hidden from qplan's YAML reader."""
    from qplan.schema import yamldoc

    def run() -> object:
        saved, yamldoc._CParser = yamldoc._CParser, None
        try:
            return fn()
        finally:
            yamldoc._CParser = saved

    return run


TITLE = "Config validation: text to objects"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=41)
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 rounds")
    parser.add_argument("-o", "--output", type=Path, help="also write the markdown report here")
    args = parser.parse_args(argv)
    run = Run(__file__, argv)
    if args.quick:
        args.repeat = 3

    from qplan.schema.loader import load_config
    from qplan.schema.yamldoc import parse_document

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from coreai_opt.quantization import QuantizerConfig as CoreaiQuantizerConfig

    text = make_config(args.entries)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config_200.yaml"
        path.write_text(text, encoding="utf-8")

        # Both must accept the file and see the same number of rules.
        ours = load_config(path).config
        theirs = CoreaiQuantizerConfig.from_yaml(path)
        assert len(ours.module_name_configs) == args.entries, len(ours.module_name_configs)
        assert len(theirs.module_name_configs) == args.entries, len(theirs.module_name_configs)

        text_in_file = path.read_text(encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            medians = interleaved_medians(
                {
                    "qplan": lambda: load_config(path),
                    "coreai": lambda: CoreaiQuantizerConfig.from_yaml(path),
                    "qplan_parse": lambda: parse_document(text_in_file, str(path)),
                    "qplan_pure": _without_clib(lambda: load_config(path)),
                },
                args.repeat,
            )
    (w_qplan, c_qplan), (w_coreai, c_coreai) = medians["qplan"], medians["coreai"]
    (w_parse, c_parse), (w_pure, c_pure) = medians["qplan_parse"], medians["qplan_pure"]
    lines = text.count("\n")

    def row(label: str, wall: float, cpu: float) -> str:
        return f"| {label} | {wall * 1e3:.1f} ms | {cpu * 1e3:.1f} ms |"

    body = "\n".join(
        [
            f"One config with {args.entries} `module_name_configs` entries ({lines} lines, {len(text.encode())} bytes), "
            f"loaded from a file; median of {args.repeat} rounds after one warm-up, all loaders in the same process, "
            "alternating every round (wall clock and process CPU time).",
            "",
            "| loader | median wall | median CPU |",
            "|---|---|---|",
            row("qplan `load_config(path)` (parse with positions + full validation + build)", w_qplan, c_qplan),
            row("coreai-opt 0.3.0 `QuantizerConfig.from_yaml(path)`", w_coreai, c_coreai),
            f"| **ratio qplan / coreai-opt** | **{w_qplan / w_coreai:.2f}** | **{c_qplan / c_coreai:.2f}** |",
            row(
                f"of qplan's time: YAML parse with positions (`yamldoc.parse_document`, {w_parse / w_qplan:.0%})",
                w_parse,
                c_parse,
            ),
            row("qplan `load_config(path)` without ruamel.yaml.clib (pure-Python composer)", w_pure, c_pure),
        ]
    )
    extra = ("msgspec", "ruamel.yaml", "ruamel.yaml.clib", "pydantic", "PyYAML")
    write_report(TITLE, run, body, args.output, extra_versions=extra)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
