"""The keys of a config document that the types alone cannot describe: the top-level keys, the
tensor-key and module-type patterns, and which fields hold tensor dicts, regex keys or module specs
(shared by the validator and the JSON Schema).
"""

from __future__ import annotations

__all__ = [
    "MODULE_SPEC_FIELDS",
    "MODULE_TYPE_PATTERN",
    "REGEX_KEY_FIELDS",
    "TENSOR_DICT_FIELDS",
    "TENSOR_INDEX_PATTERN",
    "TENSOR_KEY_PATTERN",
    "TENSOR_NAME_PATTERN",
    "TOP_LEVEL_KEYS",
]

TOP_LEVEL_KEYS = ("quantization_config", "quantization_spec", "$schema")
_INDEX = r"[0-9]+"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
TENSOR_KEY_PATTERN = rf"^(\*|{_INDEX}|{_NAME})$"
"""A tensor key: `"*"`, an index, or a name (an ASCII identifier)."""
TENSOR_INDEX_PATTERN = rf"^(\*|{_INDEX})$"
"""The keys of an index-keyed tensor dict (one dict holds indices or names, not both)."""
TENSOR_NAME_PATTERN = rf"^(\*|{_NAME})$"
"""The keys of a name-keyed tensor dict."""
MODULE_TYPE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
TENSOR_DICT_FIELDS = frozenset(
    ("op_input_spec", "op_output_spec", "op_state_spec", "module_input_spec", "module_output_spec", "module_state_spec")
)
REGEX_KEY_FIELDS = {"op_name_config": "op_name_config", "module_name_configs": "module_name_configs"}
MODULE_SPEC_FIELDS = ("module_input_spec", "module_output_spec", "module_state_spec")
