"""The schema stage's diagnostic codes: one table of code -> level and What / Why / Example / Fix.

Every code that reading, parsing or validating a config can report is listed here once (a test
checks the table against the codes the stage's modules emit, and each code's level); the docs page
``docs/diagnostics.md`` is generated from this table and the compiler's.
"""

from __future__ import annotations

from qplan.diagnostics import CodeInfo

__all__ = ["SCHEMA_CODES"]

SCHEMA_CODES: dict[str, CodeInfo] = {
    # -- reading the file ------------------------------------------------------------------
    "unreadable-file": CodeInfo(
        level="error",
        what="The config file cannot be read (it does not exist, is a directory, or is not readable).",
        why="qplan reads the whole file before parsing it.",
        fix="Check the path and the file's permissions.",
    ),
    "invalid-encoding": CodeInfo(
        level="error",
        what="The config file is not valid UTF-8; the message gives the first bad byte and its offset.",
        why="Configs are read as UTF-8 text (a UTF-8 byte order mark is allowed).",
        fix="Save the config as UTF-8.",
    ),
    "empty-document": CodeInfo(
        level="error",
        what="The config holds no document at all (empty, or only comments).",
        why="A config is a mapping with `quantization_config`.",
        example="# nothing but a comment\n",
        fix="Write the config under `quantization_config:`.",
    ),
    # -- YAML ------------------------------------------------------------------------------
    "yaml-syntax": CodeInfo(
        level="error",
        what="The text is not valid YAML (or JSON), holds several documents, or is nested too deeply. JSON "
        "with `//` or `/* */` comments is reported as such: JSON has no comments.",
        why="The config must parse as one YAML 1.2 document before it can be checked.",
        example="quantization_config:\n  module_name_configs:\n    *: {}\n",
        fix='Fix the syntax at the reported position; a bare `*` starts an alias, so quote wildcard keys: `"*"`. '
        "For comments, write the config as YAML (`#`).",
    ),
    "duplicate-anchor": CodeInfo(
        level="warning",
        what="A YAML anchor name is defined a second time.",
        why="Aliases after the second definition refer to it, which is easy to miss.",
        example="a: &spec {dtype: int8}\nb: &spec {dtype: int4}\n",
        fix="Give each anchor its own name.",
    ),
    "recursive-alias": CodeInfo(
        level="error",
        what="An alias refers to a node that contains it.",
        why="A recursive document has no finite value.",
        example="a: &loop [*loop]\n",
        fix="Remove the alias from inside the anchored node.",
    ),
    "alias-bomb": CodeInfo(
        level="error",
        what="Expanding the document's aliases would make it more than 10 times as large as written (counted in "
        "nodes, an alias as one), and larger than 100,000 nodes.",
        why="Nested aliases can grow exponentially (a 'billion laughs' document); qplan refuses before expanding. "
        "The limit is a ratio, so a large document without aliases always loads.",
        fix="Write the repeated parts out, or nest aliases less.",
    ),
    "unsafe-tag": CodeInfo(
        level="error",
        what="A node carries a YAML tag (such as `!!python/object`) other than the plain scalar, list and "
        "mapping tags.",
        why="Configs hold only plain data; a tag never builds an object.",
        example="quantization_config: !!python/object:os.system {}\n",
        fix="Remove the tag.",
    ),
    "duplicate-key": CodeInfo(
        level="error",
        what='A mapping has the same key twice (for tensor keys: as an index and as a string, `0` and `"0"`).',
        why="YAML keys are unique; silently keeping one of the values would hide a mistake.",
        example="quantization_config:\n  execution_mode: graph\n  execution_mode: eager\n",
        fix="Keep one of the entries.",
    ),
    "invalid-key": CodeInfo(
        level="error",
        what="A key has a kind or form its mapping does not allow: a list or null as a key, a tensor key "
        'that is not `"*"`, an index or a name, or a module type key that is not a class name or import path.',
        why="Keys are strings or integers; tensor keys and module type keys have a fixed form.",
        example="quantization_config:\n  global_config:\n    op_input_spec:\n      in-0: {}\n",
        fix='Use `"*"`, an index (`0`) or a name (`input`) for tensor keys, and `Linear` or `torch.nn.Linear` for '
        "module types.",
    ),
    # -- the config types ------------------------------------------------------------------
    "invalid-type": CodeInfo(
        level="error",
        what="A value has the wrong type: a string where a number is expected, a list where a mapping is "
        "expected, a plan passed as a config, ...",
        why="Every field of the config has one type (see docs/config-language.md); nothing is converted silently.",
        example="quantization_config:\n  preserved_attributes: config\n",
        fix="Write the value with the type the message names (here: `[config]`).",
    ),
    "invalid-value": CodeInfo(
        level="error",
        what="A value has the right type but is not allowed: an unknown dtype or enum value, a number out of "
        "range, a list of the wrong length, a scalar YAML cannot read as its type, a key or string holding a lone "
        "surrogate (an unpaired escape such as `\\udc80`, which is not a character).",
        why="Each field accepts a fixed set or range of values (see docs/config-language.md#quantizationspec-how-one-tensor-is-quantized); the message lists them.",
        example="quantization_config:\n  global_config:\n    op_state_spec:\n      weight: {dtype: int3}\n",
        fix="Use one of the values the message lists (see the did-you-mean suggestion).",
    ),
    "missing-key": CodeInfo(
        level="error",
        what="A required key is missing: `quantization_config` at the top level, `type` of a granularity, "
        "`block_size` of a per-block granularity.",
        why="These keys have no default.",
        example="quantization_config:\n  global_config:\n    op_state_spec:\n      weight:\n"
        "        granularity: {axis: 0}\n",
        fix="Add the key.",
    ),
    "unknown-key": CodeInfo(
        level="error",
        what="A mapping has a key its type does not define (often a typo).",
        why="Unknown keys would be ignored silently, so the config would not do what it says.",
        example="quantization_config:\n  global_config:\n    op_state_spec:\n      weight: {dtyp: int4}\n",
        fix="Correct the key (see the did-you-mean suggestion) or remove it.",
    ),
    "empty-value": CodeInfo(
        level="warning",
        what="A key has no value, which YAML reads as `null` (for many fields: quantize nothing there).",
        why="An empty value is easy to write by accident and often means the opposite of what was meant.",
        example="quantization_config:\n  global_config:\n",
        fix="Write `null` explicitly if that is meant, or `{}` for the defaults.",
    ),
    "deprecated": CodeInfo(
        level="warning",
        what="A deprecated spelling is used: `execution_mode: pt2e`.",
        why="`pt2e` is an old alias of `graph` and will be removed.",
        example="quantization_config:\n  execution_mode: pt2e\n",
        fix="Write `execution_mode: graph`.",
    ),
    "invalid-regex": CodeInfo(
        level="error",
        what="A `module_name_configs` or `op_name_config` key is not a valid regular expression.",
        why="These keys are regexes matched in full (`re.fullmatch`) against module paths and op names, in linear "
        "time (RE2): Python-only syntax (lookarounds, backreferences, possessive quantifiers) is refused.",
        example='quantization_config:\n  module_name_configs:\n    "blocks.[0-3": {}\n',
        fix="Correct the regex; escape `.`, `[`, `(` and other special characters meant literally. Instead of a "
        "lookaround, add a more specific rule (a later key, or a null config) for the names to exclude.",
    ),
    "regex-warning": CodeInfo(
        level="warning",
        what="A regex key compiles, but Python warns about it (for example a possible nested set in `[...]`).",
        why="Such regexes may change meaning in a future Python version.",
        example='quantization_config:\n  module_name_configs:\n    "[[a]": {}\n',
        fix="Escape `[`, `-`, `&`, `~` and `|` inside `[...]` with a backslash.",
    ),
    "mixed-tensor-keys": CodeInfo(
        level="error",
        what="A tensor dict mixes index keys (`0`) and name keys (`input`).",
        why='A tensor is selected either by position or by name; one dict uses one kind (`"*"` mixes with both).',
        example="quantization_config:\n  global_config:\n    op_input_spec: {0: {}, input: {}}\n",
        fix="Use indices only or names only in each tensor dict.",
    ),
    "cross-field": CodeInfo(
        level="error",
        what="Fields that are valid alone contradict each other: a float dtype with an asymmetric qscheme, "
        "`dynamic` qparams with a fixed float_range, a QAT schedule out of order, module specs in "
        "global_config, ...",
        why="These are the cross-field rules of docs/config-language.md#quantizationspec-how-one-tensor-is-quantized, docs/config-language.md#module-configs-and-the-whole-config and docs/config-language.md#qat-schedules; the message names both fields.",
        example="quantization_config:\n  global_config:\n    op_state_spec:\n"
        "      weight: {dtype: float8_e4m3fn, qscheme: asymmetric}\n",
        fix="Change one of the two fields as the message says.",
    ),
    "invalid-config": CodeInfo(
        level="error",
        what="A config value was refused while building the config (a rule the validator did not catch, or "
        "a config built in Python).",
        why="The config types check their own rules when they are constructed.",
        fix="Correct the value the message names; please report a config that reaches this code from a file.",
    ),
}
