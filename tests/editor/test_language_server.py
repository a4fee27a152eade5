"""Editor support, end to end: the real yaml-language-server with qplan's shipped JSON Schema.

Users get completion and checking in their editor by putting
``# yaml-language-server: $schema=<path or URI of schema.json>`` at the top of a config. These tests
start the server (installed by ``npm ci`` from the repo's package-lock.json), give it no schema
settings at all, and check that the modeline alone brings completion of keys and `dtype` values
and a diagnostic for an unknown key, and that every bundled example is clean.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from lsp_client import LspClient

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
PACKAGE = ROOT / "src" / "qplan"
SCHEMA = PACKAGE / "schema" / "schema.json"
EXAMPLES = sorted((PACKAGE / "examples").glob("*.yaml"))
NODE = shutil.which("node")

if NODE is None:
    MISSING = "node is not installed (needed to run yaml-language-server)"
elif not SERVER.exists():
    MISSING = "node_modules/yaml-language-server is missing: run `npm ci` at the repo root"
else:
    MISSING = None
# Under CI the set-up installs both, so a missing server is a failure there, not a skip.
pytestmark = pytest.mark.skipif(MISSING is not None and not os.environ.get("CI"), reason=str(MISSING))

# Client settings as an editor sends them; deliberately no `yaml.schemas`: the modeline must do it.
SETTINGS = {
    "yaml": {
        "validate": True,
        "completion": True,
        "hover": True,
        "format": {"enable": False},
        "schemaStore": {"enable": False},
    }
}
RELATIVE_MODELINE = "# yaml-language-server: $schema=../schema/schema.json\n"


@pytest.fixture(scope="module")
def server():
    assert MISSING is None, MISSING
    assert SCHEMA.exists(), f"the shipped schema {SCHEMA} is missing"
    client = LspClient([NODE, str(SERVER), "--stdio"], root=ROOT, settings=SETTINGS, timeout=20.0)
    try:
        capabilities = client.initialize()
        assert capabilities.get("completionProvider") is not None
        yield client
    finally:
        client.close()


def uri_modeline() -> str:
    """The modeline form with an absolute file URI, as `qplan schema -o` users write it."""
    return f"# yaml-language-server: $schema={SCHEMA.as_uri()}\n"


def open_text(server: LspClient, path: Path, text: str) -> str:
    """Open an (unsaved) document at ``path`` and wait for its first diagnostics."""
    uri = path.as_uri()
    server.open_document(uri, text)
    server.wait_for_diagnostics(uri)
    return uri


def test_dtype_values_complete(server: LspClient, tmp_path: Path) -> None:
    text = uri_modeline() + (
        "quantization_config:\n  global_config:\n    op_state_spec:\n      weight:\n        dtype: \n"
    )
    uri = open_text(server, tmp_path / "dtype.yaml", text)
    labels = server.completion_labels(uri, 5, len("        dtype: "))
    expected = {
        "int8",
        "int4",
        "int2",
        "uint8",
        "uint4",
        "uint2",
        "float8_e4m3fn",
        "float8_e5m2",
        "float4_e2m1fn_x2",
    }
    assert expected <= set(labels), labels
    # Only dtype names are offered at a dtype value, not keys or other enums.
    assert "qscheme" not in labels and "symmetric" not in labels


def test_granularity_kinds_complete(server: LspClient, tmp_path: Path) -> None:
    text = uri_modeline() + (
        "quantization_config:\n  global_config:\n    op_state_spec:\n      weight:\n        granularity:\n          \n"
    )
    uri = open_text(server, tmp_path / "granularity.yaml", text)
    inserts = [item.get("insertText") or item["label"] for item in server.completion_items(uri, 6, 10)]
    # The `type` key offers the three kinds as choices...
    type_items = [t for t in inserts if t.startswith("type:")]
    assert any(all(k in t for k in ("per_tensor", "per_channel", "per_block")) for t in type_items), inserts
    # ...and the per-block form comes with its required `block_size`.
    assert any("per_block" in t and "block_size:" in t for t in type_items), inserts


def test_top_level_keys_complete(server: LspClient, tmp_path: Path) -> None:
    uri = open_text(server, tmp_path / "top.yaml", uri_modeline() + "\n")
    labels = server.completion_labels(uri, 1, 0)
    assert "quantization_config" in labels, labels
    assert "quantization_spec" in labels, labels


def test_quantization_config_keys_complete(server: LspClient, tmp_path: Path) -> None:
    text = uri_modeline() + "quantization_config:\n  \n"
    uri = open_text(server, tmp_path / "inner.yaml", text)
    labels = server.completion_labels(uri, 2, 2)
    for key in ("global_config", "module_name_configs", "module_type_configs", "execution_mode"):
        assert key in labels, labels
    assert "quantization_config" not in labels, labels


def test_hover_shows_allowed_values(server: LspClient, tmp_path: Path) -> None:
    uri = open_text(server, tmp_path / "hover.yaml", uri_modeline() + "quantization_config:\n  execution_mode: graph\n")
    hover = server.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 2, "character": 5}}
    )
    text = hover["contents"]["value"]
    assert "`graph`" in text and "`eager`" in text, text


BAD = "quantization_config:\n  global_config:\n    op_state_spec:\n      weight:\n        dtyp: int8\n"


def test_unknown_key_is_reported_through_the_relative_modeline(server: LspClient) -> None:
    # An unsaved document next to the bundled examples, with the same relative modeline they use.
    uri = open_text(server, PACKAGE / "examples" / "_unsaved_probe.yaml", RELATIVE_MODELINE + BAD)
    diagnostics = server.wait_for_diagnostics(uri)
    hits = [d for d in diagnostics if "dtyp" in d["message"]]
    assert len(hits) == 1, diagnostics
    assert hits[0]["range"]["start"] == {"line": 5, "character": 8}


def test_without_modeline_there_is_no_schema(server: LspClient, tmp_path: Path) -> None:
    # Control for the test above: no settings name a schema, so the modeline is what checks.
    uri = open_text(server, tmp_path / "plain.yaml", BAD)
    assert server.wait_for_diagnostics(uri) == []


def test_wrong_enum_value_is_reported(server: LspClient, tmp_path: Path) -> None:
    text = uri_modeline() + (
        "quantization_config:\n"
        "  execution_mode: graph\n"
        "  global_config:\n"
        "    op_input_spec:\n"
        "      '*': {dtype: int9}\n"
    )
    uri = open_text(server, tmp_path / "enum.yaml", text)
    diagnostics = server.wait_for_diagnostics(uri)
    assert any(d["range"]["start"]["line"] == 5 and "int8" in d["message"] for d in diagnostics), diagnostics


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_bundled_example_is_clean(server: LspClient, path: Path) -> None:
    uri = path.as_uri()
    server.open_document(uri, path.read_text())
    assert server.wait_for_diagnostics(uri) == []


def test_tensor_keys_index_only_is_clean_and_mixed_is_reported(server: LspClient, tmp_path: Path) -> None:
    # YAML integer keys (`0:`) reach the server as non-strings; a dict of them alone must be clean.
    head = uri_modeline() + "quantization_config:\n  global_config:\n    op_input_spec:\n"
    clean = open_text(server, tmp_path / "index_keys.yaml", head + "      0: {dtype: int8}\n      1: null\n")
    assert server.wait_for_diagnostics(clean) == []
    mixed = open_text(server, tmp_path / "mixed_keys.yaml", head + "      '0': {dtype: int8}\n      input: null\n")
    diagnostics = server.wait_for_diagnostics(mixed)
    assert [d["range"]["start"] for d in diagnostics] == [{"line": 5, "character": 6}], diagnostics  # at `input`
