"""compressed-tensors ``quantization_config`` -> qplan :class:`QuantizerConfig`, with what does not map.

Each config group becomes one :class:`ModuleQuantizerConfig` (weight spec as ``op_state_spec.weight``,
input/output activations as ``op_input_spec`` / ``op_output_spec`` of input/output 0), placed by its
targets: ``re:`` patterns become ``module_name_configs`` regexes (prefix match, as compressed-tensors
matches them), exact module names are escaped, class names (``Linear``) go to ``module_type_configs``.
``ignore`` entries become declined (null) name configs; nothing is quantized by default. KV-cache
schemes, transforms, sparsity, GPTQ ``actorder``, per-token activations and float4 formats are reported.
"""

from __future__ import annotations

import re
from typing import Any

from qplan.export.ct_args import Unsupported, spec_from_args
from qplan.schema.types import ModuleQuantizerConfig, QuantizerConfig

__all__ = ["config_from_compressed_tensors"]


def __dir__() -> list[str]:
    return __all__


def config_from_compressed_tensors(quantization_config: dict[str, Any]) -> tuple[QuantizerConfig, list[str]]:
    """A qplan config for a compressed-tensors ``quantization_config`` dict, and what it could not express.

    Each config group becomes a ``module_name_configs`` entry per module-name target (``re:`` patterns
    become regexes, exact names are escaped) or a ``module_type_configs`` entry per class-name target;
    ``ignore`` entries become null (declined) name configs. Nothing is quantized by default.
    """
    problems: list[str] = []
    by_type: dict[str, ModuleQuantizerConfig | None] = {}
    by_name: dict[str, ModuleQuantizerConfig | None] = {}
    for key in ("kv_cache_scheme", "transform_config", "sparsity_config"):
        if quantization_config.get(key):
            problems.append(f"`{key}`: not expressible in qplan; ignored")
    for gname, group in sorted((quantization_config.get("config_groups") or {}).items()):
        module_cfg = _module_config(f"config_groups.{gname}", group, problems)
        for target in group.get("targets", ()):
            _place(str(target), module_cfg, by_type, by_name)
    for target in quantization_config.get("ignore") or ():
        _place(str(target), None, by_type, by_name)
    config = QuantizerConfig(global_config=None, module_type_configs=by_type, module_name_configs=by_name)
    return config, problems


def _module_config(where: str, group: dict[str, Any], problems: list[str]) -> ModuleQuantizerConfig:
    specs: dict[str, Any] = {}
    for key, weight in (("weights", True), ("input_activations", False), ("output_activations", False)):
        args = group.get(key)
        if args is None:
            specs[key] = None
            continue
        try:
            specs[key] = spec_from_args(args, weight=weight)
        except (Unsupported, ValueError) as e:
            problems.append(f"{where}.{key}: {e}; left in float")
            specs[key] = None
    return ModuleQuantizerConfig(
        op_input_spec=None if specs["input_activations"] is None else {"0": specs["input_activations"]},
        op_output_spec=None if specs["output_activations"] is None else {"0": specs["output_activations"]},
        op_state_spec=None if specs["weights"] is None else {"weight": specs["weights"]},
    )


_TORCH_CLASSES = {"Linear": "torch.nn.Linear", "Embedding": "torch.nn.Embedding"}


def _place(
    target: str,
    cfg: ModuleQuantizerConfig | None,
    by_type: dict[str, ModuleQuantizerConfig | None],
    by_name: dict[str, ModuleQuantizerConfig | None],
) -> None:
    if target.startswith("re:"):
        by_name[f"(?:{target[3:]}).*"] = cfg  # compressed-tensors matches a prefix (`re.match`)
    elif target in _TORCH_CLASSES or (target[:1].isupper() and "." not in target):
        by_type[_TORCH_CLASSES.get(target, target)] = cfg
    else:
        by_name[re.escape(target)] = cfg
